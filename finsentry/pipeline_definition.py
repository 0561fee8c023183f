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

from finsentry.layout import PREFIXES

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
CANDIDATES: tuple[str, ...] = ("isolation_forest", "lof", "lstm", "ensemble")
# The fifth branch: trained on analysts' verdicts when there are any, skipped (not failed) when the
# training job finds fewer than finsentry.labels' minimum on its rows.
SUPERVISED = "supervised"

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_JOB_PREFIXES = {
    "isolation_forest": "finsentry-iforest",
    "lof": "finsentry-lof",
    "lstm": "finsentry-lstm",
    "ensemble": "finsentry-ensemble",
    "supervised": "finsentry-supervised",
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
    return f"{PREFIXES.reports}evaluation/{execution_name}/evaluation.json"


# What the state machine's role must be allowed, per Task resource (the .sync patterns poll the
# job and may stop it; SageMaker .sync also installs an EventBridge managed rule; the jobs need
# iam:PassRole on the SageMaker role). The CDK app scopes these to the deployment's resources.
_SAGEMAKER_SYNC_EVENTS = ("events:PutTargets", "events:PutRule", "events:DescribeRule")
TASK_ACTIONS: dict[str, tuple[str, ...]] = {
    "arn:aws:states:::glue:startJobRun.sync": (
        "glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"),
    "arn:aws:states:::sagemaker:createTrainingJob.sync": (
        "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
        "sagemaker:AddTags", "iam:PassRole", *_SAGEMAKER_SYNC_EVENTS),
    "arn:aws:states:::sagemaker:createProcessingJob.sync": (
        "sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
        "sagemaker:AddTags", "iam:PassRole", *_SAGEMAKER_SYNC_EVENTS),
    "arn:aws:states:::sagemaker:createTransformJob.sync": (
        "sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
        "sagemaker:AddTags", *_SAGEMAKER_SYNC_EVENTS),
    "arn:aws:states:::sagemaker:createModel": (
        "sagemaker:CreateModel", "sagemaker:DescribeModelPackage", "sagemaker:AddTags", "iam:PassRole"),
    "arn:aws:states:::aws-sdk:sagemaker:createModelPackage": ("sagemaker:CreateModelPackage",),
    "arn:aws:states:::aws-sdk:s3:getObject": ("s3:GetObject", "kms:Decrypt"),
    "arn:aws:states:::aws-sdk:s3:listObjectsV2": ("s3:ListBucket",),
    "arn:aws:states:::aws-sdk:ssm:putParameter": ("ssm:PutParameter",),
    "arn:aws:states:::aws-sdk:ssm:getParameter": ("ssm:GetParameter",),
    "arn:aws:states:::athena:startQueryExecution.sync": (
        "athena:StartQueryExecution", "athena:GetQueryExecution", "athena:StopQueryExecution",
        "glue:GetDatabase", "glue:GetTable", "glue:GetPartitions", "glue:BatchCreatePartition",
        "s3:GetBucketLocation", "s3:ListBucket", "s3:GetObject", "s3:PutObject", "kms:Decrypt",
        "kms:GenerateDataKey"),
    "arn:aws:states:::sns:publish": ("sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"),
}  # fmt: skip


def task_resources(definition: str) -> set[str]:
    """The ``Resource`` of every Task state, Parallel branches included."""

    def walk(states: dict) -> set[str]:
        out: set[str] = set()
        for state in states.values():
            if state.get("Type") == "Task":
                out.add(state["Resource"])
            for branch in state.get("Branches", []):
                out |= walk(branch["States"])
        return out

    return walk(json.loads(definition)["States"])


def iam_actions(definition: str | None = None) -> list[str]:
    """Every IAM action the state machine's role needs for the Tasks of ``definition`` (default:
    the raw ASL file), sorted. Raises ``DefinitionError`` for a Task resource not in ``TASK_ACTIONS``."""
    resources = task_resources(definition if definition is not None else read_definition())
    unknown = sorted(resources - set(TASK_ACTIONS))
    if unknown:
        raise DefinitionError(f"no IAM actions known for Task resource(s) {unknown}: add them to TASK_ACTIONS")
    return sorted({action for r in resources for action in TASK_ACTIONS[r]})


def deployed_substitutions(deployed: str, path: Path = DEFINITION_PATH) -> dict[str, str]:
    """The placeholder values a deployed definition was built with: the inverse of ``load_definition``.

    The template and the deployed text are walked together; every template string holding
    ``${Name}`` placeholders is matched against the deployed string at the same place. Raises
    ``DefinitionError`` when the deployed definition does not have the template's shape (another
    version of the file) or a placeholder took two different values.
    """
    template, actual = json.loads(read_definition(path)), json.loads(deployed)
    found: dict[str, str] = {}

    def walk(t, a, where: str) -> None:
        if isinstance(t, dict) and isinstance(a, dict):
            for key in t:
                if key in a:
                    walk(t[key], a[key], f"{where}.{key}")
        elif isinstance(t, list) and isinstance(a, list) and len(t) == len(a):
            for i, (ti, ai) in enumerate(zip(t, a, strict=True)):
                walk(ti, ai, f"{where}[{i}]")
        elif isinstance(t, str) and _PLACEHOLDER.search(t):
            names = _PLACEHOLDER.findall(t)
            pattern = "".join(re.escape(part) if i % 2 == 0 else "(.+?)"
                              for i, part in enumerate(_PLACEHOLDER.split(t)))  # fmt: skip
            match = re.fullmatch(pattern, a) if isinstance(a, str) else None
            if match is None:
                raise DefinitionError(f"the deployed definition differs from {path.name} at {where}")
            for name, value in zip(names, match.groups(), strict=True):
                if found.setdefault(name, value) != value:
                    raise DefinitionError(f"placeholder {name} has two values in the deployed definition")

    walk(template, actual, "$")
    missing = sorted(placeholders_in(read_definition(path)) - set(found))
    if missing:
        raise DefinitionError(f"the deployed definition lacks the placeholder(s) {missing} of {path.name}")
    return found
