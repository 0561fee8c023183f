"""The training state machine's ASL: placeholder substitution and the IAM it needs, read from the file.

The ASL file (``stepfunctions/training_pipeline.asl.json``) is the state machine; the CDK app only
fills its ``${Placeholder}``s and derives the state machine role's permissions from the service
integrations its Task states actually use, so the role grows and shrinks with the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

PLACEHOLDERS = (
    "DataBucket", "GlueIngestJobName", "GlueFeaturesJobName", "GlueDatabase", "SageMakerRoleArn", "TrainingImageUri",
    "KmsKeyArn", "ModelPackageGroupName", "ModelParameterName", "NotifyTopicArn", "AthenaWorkgroup",
)  # fmt: skip
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


class AslError(ValueError):
    """The ASL file does not keep the contract (unknown placeholder, unsupported integration)."""


def placeholders(text: str) -> set[str]:
    """The ``${Name}`` placeholders used in ``text``."""
    return set(_PLACEHOLDER.findall(text))


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace EXACTLY the contract's placeholders; refuse unknown ones and leave no ``${`` behind."""
    if set(values) != set(PLACEHOLDERS):
        raise AslError(f"substitutions must be exactly {sorted(PLACEHOLDERS)}, got {sorted(values)}")
    unknown = placeholders(text) - set(PLACEHOLDERS)
    if unknown:
        raise AslError(f"the ASL uses placeholders outside the contract: {sorted(unknown)}")
    out = _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    left = [p for p in placeholders(out) if not p.startswith("Token[")]  # CDK tokens resolve at synth
    if left:
        raise AslError(f"placeholders left after substitution: {left}")
    return out


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
        return f"{self.service}:{self.api[0].upper()}{self.api[1:]}"


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


def load(path) -> tuple[str, dict, list[Integration]]:
    """The ASL text, its parsed JSON and its integrations (parsed before substitution)."""
    text = path.read_text(encoding="utf-8")
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as err:
        raise AslError(f"{path}: not valid JSON: {err}") from err
    integrations = sorted({parse_resource(r) for r in task_resources(definition)}, key=lambda i: (i.service, i.api))
    return text, definition, integrations
