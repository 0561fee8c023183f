"""Tests of the Lambda handlers, each invoked as Lambda invokes it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LambdaContext:
    """The fields of Lambda's context object that the handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    account: str = "111122223333"
    aws_request_id: str = "req-1"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-west-1:{self.account}:function:{self.function_name}"
