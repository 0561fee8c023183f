"""IAM statements for the training state machine, one set per service integration its ASL uses."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_kms as kms

from finsentry.layout import PREFIXES
from infra.constructs.asl import AslError, Integration
from infra.constructs.policy import (
    DataBucketRef,
    ServiceRole,
    allow,
    allow_glue_catalog,
    allow_key,
    allow_prefixes,
    allow_wildcard_resource,
    arn,
)

_SM_JOB = {  # optimized SageMaker integrations: API -> (resource type, extra actions, events rule of .sync)
    "createTrainingJob": ("training-job", ["sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"],
                          "StepFunctionsGetEventsForSageMakerTrainingJobsRule"),
    "createProcessingJob": ("processing-job", ["sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"],
                            "StepFunctionsGetEventsForSageMakerProcessingJobsRule"),
    "createTransformJob": ("transform-job", ["sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob"],
                           "StepFunctionsGetEventsForSageMakerTransformJobsRule"),
    "createModel": ("model", ["sagemaker:DescribeModel"], None),
}  # fmt: skip


@dataclass(frozen=True)
class PipelineTargets:
    """What the pipeline may touch (everything else is denied by omission)."""

    data: DataBucketRef
    key: kms.IKey
    glue_job_names: list[str]
    glue_database: str
    sagemaker_role_arn: str
    model_package_group: str
    model_parameter_name: str
    notify_topic_arn: str
    athena_workgroup: str


_SM_NAMES = (
    "SageMaker job names are unique per execution (finsentry-<kind>-<md5 of the execution name>, see "
    "finsentry.pipeline_definition.job_names), so only their finsentry- prefix is known in advance."
)


def grant_integrations(role: ServiceRole, integrations: list[Integration], t: PipelineTargets) -> list[str]:
    """Add the statements each integration needs; return the IAM actions granted (for tests)."""
    granted: list[str] = []

    def add(actions: list[str], resources: list[str], **kw) -> None:
        allow(role, actions, resources, **kw)
        granted.extend(actions)

    def add_pattern(actions: list[str], service: str, resource: str, reason: str) -> None:
        allow_wildcard_resource(role, actions, service, resource, reason)
        granted.extend(actions)

    uses_sagemaker = False
    for i in integrations:
        if i.service == "glue" and not i.sdk and i.api == "startJobRun":
            add(
                ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
                [arn("glue", f"job/{n}") for n in t.glue_job_names],
            )
        elif i.service == "sagemaker" and not i.sdk and i.api in _SM_JOB:
            kind, extra, rule = _SM_JOB[i.api]
            add_pattern([i.iam_action, "sagemaker:AddTags", *extra], "sagemaker", f"{kind}/finsentry-*", _SM_NAMES)
            if i.pattern == "sync" and rule:
                add(["events:PutTargets", "events:PutRule", "events:DescribeRule"], [arn("events", f"rule/{rule}")])
            uses_sagemaker = True
        elif i.service == "sns" and i.api == "publish":
            add(["sns:Publish"], [t.notify_topic_arn])
        elif i.service == "athena":
            add(
                [i.iam_action, "athena:GetQueryExecution", "athena:GetQueryResults", "athena:StopQueryExecution"],
                [arn("athena", f"workgroup/{t.athena_workgroup}")],
            )
            actions = [
                "glue:GetDatabase",
                "glue:GetTable",
                "glue:GetTables",
                "glue:GetPartition",
                "glue:GetPartitions",
                "glue:BatchCreatePartition",
                "glue:CreatePartition",
                "glue:UpdatePartition",
            ]
            allow_glue_catalog(role, actions, t.glue_database)
            granted.extend(actions)
            allow_prefixes(role, t.data, read=[PREFIXES.scored, PREFIXES.curated], write=[PREFIXES.athena_results])
        elif i.sdk and i.service == "ssm":
            add([i.iam_action], [arn("ssm", f"parameter{t.model_parameter_name}")])
        elif i.sdk and i.service == "sagemaker":
            add([i.iam_action], [arn("sagemaker", f"model-package-group/{t.model_package_group}")])
            add_pattern(
                [i.iam_action],
                "sagemaker",
                f"model-package/{t.model_package_group}/*",
                "Versions of our one model package group; the registry numbers them.",
            )
            uses_sagemaker = True
        elif i.sdk and i.service == "glue":
            allow_glue_catalog(role, [i.iam_action], t.glue_database)
            granted.append(i.iam_action)
        elif i.sdk and i.service == "s3" and i.api == "listObjectsV2":
            # is there any verdict yet (the supervised branch); ListObjectsV2 is allowed by s3:ListBucket
            labels_only = {"StringLike": {"s3:prefix": [f"{PREFIXES.feedback_labels}*"]}}
            add(["s3:ListBucket"], [t.data.arn], conditions=labels_only)
        elif i.sdk and i.service == "s3":
            allow_prefixes(role, t.data, read=[PREFIXES.reports])  # the evaluation.json of the run
            add([i.iam_action], [t.data.objects(PREFIXES.reports)])
        else:
            raise AslError(
                f"the CDK app does not know which permissions {i} needs: add it to infra/constructs/pipeline_role.py"
            )
    if uses_sagemaker:
        add(
            ["iam:PassRole"],
            [t.sagemaker_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
    allow_key(role, t.key)
    return granted
