"""Fault injection by wrapping a boto3 client: chosen calls fail, the rest reach moto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, operation)


class Faulty:
    """Proxy of a boto3 client; ``faults[op](call_number, kwargs, real)`` replaces a call."""

    def __init__(self, client, **faults: Callable[[int, dict, Callable[..., Any]], Any]) -> None:
        self._client = client
        self._faults = faults
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str):
        real = getattr(self._client, name)
        if name not in self._faults:
            return real

        def call(**kwargs):
            n = self.calls[name] = self.calls.get(name, 0) + 1
            return self._faults[name](n, kwargs, real)

        return call
