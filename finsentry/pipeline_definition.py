"""The training state machine's definition: the ASL file, its placeholders, the names it gives.

``stepfunctions/training_pipeline.asl.json`` is the state machine (CDK loads it; the tests run
it under moto). It holds ``${Name}`` placeholders for the deployment's resources, exactly the
names in ``PLACEHOLDERS``; ``load_definition`` substitutes them and refuses a definition with a
placeholder left over or a substitution nobody asked for, so a renamed resource cannot slip
through as a literal ``${...}`` string. ``job_names`` gives the SageMaker job names one
execution uses (the ASL derives them from the MD5 of the execution name), so on-call can find
the jobs of a failed run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

DEFINITION_PATH = Path(__file__).resolve().parent.parent / "stepfunctions" / "training_pipeline.asl.json"

# The deployment values the CDK app substitutes, and only these (see the contracts in COMMON.md).
PLACEHOLDERS: tuple[str, ...] = (
    "DataBucket",  # the data bucket's name (no s3://)
    "GlueIngestJobName",
    "GlueFeaturesJobName",
    "GlueDatabase",
    "SageMakerRoleArn",
    "TrainingImageUri",  # the one image for training, evaluation and inference (sagemaker/Dockerfile)
    "KmsKeyArn",
    "ModelPackageGroupName",
    "ModelParameterName",  # SSM parameter the scorer reads: finsentry.layout.model_parameter_name(env)
    "NotifyTopicArn",
    "AthenaWorkgroup",
)

# The candidates trained in parallel, in the order of the Parallel state's branches.
CANDIDATES: tuple[str, ...] = ("isolation_forest", "lof", "lstm")

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_JOB_PREFIXES = {
    "isolation_forest": "finsentry-iforest",
    "lof": "finsentry-lof",
    "lstm": "finsentry-lstm",
    "evaluation": "finsentry-eval",
    "model": "finsentry-model",
    "transform": "finsentry-score",
}


class DefinitionError(ValueError):
    """The definition cannot be deployed as it is (placeholders missing, unknown or not JSON)."""


def placeholders_in(text: str) -> set[str]:
    """Names of the ``${Name}`` placeholders occurring in ``text``."""
    return set(_PLACEHOLDER.findall(text))


def read_definition(path: Path = DEFINITION_PATH) -> str:
    """The raw ASL text, placeholders included."""
    return path.read_text(encoding="utf-8")


def load_definition(substitutions: Mapping[str, str], path: Path = DEFINITION_PATH) -> str:
    """The ASL with every placeholder replaced by its value, checked to be JSON.

    Raises ``DefinitionError`` naming every problem at once: substitutions for names that are
    not placeholders of the definition, placeholders without a value, values that are not
    non-empty strings. Values are inserted JSON-escaped (they all land inside JSON strings).
    """
    text = read_definition(path)
    wanted = placeholders_in(text)
    problems = []
    unknown = sorted(set(substitutions) - wanted)
    if unknown:
        problems.append(f"unknown placeholder(s) {unknown}; the definition has {sorted(wanted)}")
    missing = sorted(wanted - set(substitutions))
    if missing:
        problems.append(f"unsubstituted placeholder(s) {missing}")
    bad = sorted(k for k, v in substitutions.items() if not isinstance(v, str) or not v)
    if bad:
        problems.append(f"placeholder value(s) for {bad} must be non-empty strings")
    if problems:
        raise DefinitionError(f"{path.name}: " + "; ".join(problems))
    out = _PLACEHOLDER.sub(lambda m: json.dumps(substitutions[m.group(1)])[1:-1], text)
    try:
        json.loads(out)
    except json.JSONDecodeError as exc:  # pragma: no cover - the raw file is checked to be JSON by the tests
        raise DefinitionError(f"{path.name} is not valid JSON after substitution: {exc}") from exc
    return out


def job_names(execution_name: str) -> dict[str, str]:
    """SageMaker names of one execution's jobs, as the state machine builds them.

    ``finsentry-<kind>-<md5 of the execution name>``: unique per execution (execution names are
    unique per state machine), at most 48 characters and always a valid SageMaker name.
    """
    digest = hashlib.md5(execution_name.encode("utf-8"), usedforsecurity=False).hexdigest()
    return {kind: f"{prefix}-{digest}" for kind, prefix in _JOB_PREFIXES.items()}


def evaluation_key(execution_name: str) -> str:
    """S3 key (in the data bucket) of the evaluation.json the evaluation job writes for one execution."""
    return f"reports/evaluation/{execution_name}/evaluation.json"
