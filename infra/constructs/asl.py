"""The training state machine's ASL as the CDK app reads it: the service integrations it uses.

The ASL file (``stepfunctions/training_pipeline.asl.json``) is the state machine; its placeholders
are filled by ``finsentry.pipeline_definition.load_definition`` (the one implementation, shared
with the tests that execute the file under moto). The state machine role is derived from the
integrations its Task states actually use, so the role grows and shrinks with the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

# SDK calls whose IAM action is not the API's name
_IAM_ACTION_OF_API = {"s3:ListObjectsV2": "s3:ListBucket"}


class AslError(ValueError):
    """The ASL uses a service integration the CDK app does not know how to permit."""


def task_resources(definition: Mapping) -> Iterator[str]:
    """The ``Resource`` of every Task state, including those inside Parallel branches and Maps."""
    for state in definition.get("States", {}).values():
        if state.get("Type") == "Task":
            yield state["Resource"]
        for branch in state.get("Branches", []):
            yield from task_resources(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from task_resources(state[key])


@dataclass(frozen=True)
class Integration:
    """One Task resource, parsed: ``arn:aws:states:::<service>:<api>[.sync|.waitForTaskToken]``."""

    service: str
    api: str
    pattern: str  # "", "sync", "waitForTaskToken"
    sdk: bool  # aws-sdk:<service>:<api>

    @property
    def iam_action(self) -> str:
        action = f"{self.service}:{self.api[0].upper()}{self.api[1:]}"
        return _IAM_ACTION_OF_API.get(action, action)


def parse_resource(resource: str) -> Integration:
    prefix = "arn:aws:states:::"
    if not resource.startswith(prefix):
        raise AslError(f"Task resource {resource!r} is not a Step Functions service integration")
    rest = resource[len(prefix) :]
    sdk = rest.startswith("aws-sdk:")
    if sdk:
        rest = rest[len("aws-sdk:") :]
    service, _, api = rest.partition(":")
    api, _, pattern = api.partition(".")
    if pattern.startswith("sync"):
        pattern = "sync"
    return Integration(service=service, api=api, pattern=pattern, sdk=sdk)


def integrations(path) -> list[Integration]:
    """The distinct service integrations of the ASL file at ``path``."""
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise AslError(f"{path}: not valid JSON: {err}") from err
    return sorted({parse_resource(r) for r in task_resources(definition)}, key=lambda i: (i.service, i.api))
