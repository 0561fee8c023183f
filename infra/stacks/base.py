"""What every finsentry stack shares: its config, names from ``finsentry.layout``, removal policy."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack, Tags
from constructs import Construct

from finsentry.layout import PROJECT, resource_name
from infra.config import EnvConfig


class FinsentryStack(Stack):
    """A stack of one deployment; ``name(what)`` is ``finsentry-<env>-<what>``."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, description: str) -> None:
        super().__init__(
            scope, construct_id, description=description, stack_name=f"{PROJECT}-{config.env}-{construct_id}"
        )
        self.config = config
        Tags.of(self).add("project", PROJECT)
        Tags.of(self).add("environment", config.env)

    def name(self, what: str) -> str:
        return resource_name(self.config.env, what)

    @property
    def removal(self) -> RemovalPolicy:
        """Dev is torn down with its data; prod keeps stores when the stack goes."""
        return RemovalPolicy.DESTROY if self.config.destroy_on_removal else RemovalPolicy.RETAIN
