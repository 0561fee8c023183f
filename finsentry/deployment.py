"""``--env ENV`` to the resources of one deployment: the one resolver of the CLI's AWS commands.

Names that ``finsentry.layout`` fixes (Glue database, Athena workgroup, model package group, SSM
pointer, state machine) are computed; the values CDK generates (the data bucket, the SageMaker
role, the training image, the KMS key) are read back from the deployed training state machine,
whose definition the CDK app built from ``stepfunctions/training_pipeline.asl.json`` with exactly
these values (``pipeline_definition.deployed_substitutions`` inverts that substitution). So the CLI
uses the image, the role and the key the scheduled pipeline uses, and needs no stack outputs or
extra configuration: AWS credentials and a region (the usual ``AWS_PROFILE``/``AWS_REGION``) are
enough.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from finsentry.layout import RESOURCES, glue_database_name, model_parameter_name, resource_name
from finsentry.pipeline_definition import DefinitionError, deployed_substitutions


class DeploymentError(ValueError):
    """No deployment of that name can be reached (no region, no credentials, not deployed)."""


@dataclass(frozen=True)
class Deployment:
    """The resources of one deployed environment."""

    env: str
    region: str
    account: str
    bucket: str
    database: str
    workgroup: str
    model_package_group: str
    model_parameter: str
    state_machine_arn: str
    training_image: str
    sagemaker_role_arn: str
    kms_key_arn: str
    session: Any = field(default=None, compare=False, repr=False)  # the boto3.Session everything uses

    def client(self, service: str):
        return self.session.client(service, region_name=self.region)

    def uri(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"


def resolve(env: str, session=None) -> Deployment:
    """The deployment ``env`` in the session's account and region (default: a new boto3 session)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    if not env or not env.replace("-", "").isalnum():
        raise DeploymentError(f"--env {env!r}: an environment name is letters, digits and hyphens")
    session = session or boto3.Session()
    region = session.region_name
    if not region:
        raise DeploymentError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)")
    try:
        identity = session.client("sts", region_name=region).get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        raise DeploymentError(f"cannot reach AWS ({type(exc).__name__}): {exc}") from None
    account, partition = identity["Account"], identity["Arn"].split(":")[1]
    name = resource_name(env, RESOURCES.training_pipeline)
    arn = f"arn:{partition}:states:{region}:{account}:stateMachine:{name}"
    try:
        definition = session.client("stepfunctions", region_name=region).describe_state_machine(
            stateMachineArn=arn)["definition"]  # fmt: skip
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("StateMachineDoesNotExist", "ResourceNotFoundException"):
            raise DeploymentError(f"no deployment {env!r} in account {account}, {region}: state machine {name} "
                                  f"not found (deploy with `cdk deploy --all -c env={env}`)") from None  # fmt: skip
        raise
    try:
        subs = deployed_substitutions(definition)
    except DefinitionError as exc:
        raise DeploymentError(f"deployment {env!r} runs another version of the pipeline: {exc}") from None
    return Deployment(
        env=env, region=region, account=account, bucket=subs["DataBucket"], database=subs["GlueDatabase"],
        workgroup=subs["AthenaWorkgroup"], model_package_group=subs["ModelPackageGroupName"],
        model_parameter=subs["ModelParameterName"], state_machine_arn=arn, training_image=subs["TrainingImageUri"],
        sagemaker_role_arn=subs["SageMakerRoleArn"], kms_key_arn=subs["KmsKeyArn"], session=session,
    )  # fmt: skip


def expected_names(env: str) -> dict[str, str]:
    """The names ``layout`` gives the deployment ``env`` (a resolved deployment must carry them)."""
    return {"database": glue_database_name(env), "workgroup": resource_name(env, RESOURCES.athena_workgroup),
            "model_package_group": resource_name(env, RESOURCES.model_package_group),
            "model_parameter": model_parameter_name(env)}  # fmt: skip


@dataclass(frozen=True)
class StreamResources:
    """What the deployed scorer reads and writes, from its own configuration (``smoke``)."""

    function: str  # the scorer Lambda
    source: str  # "kinesis" | "msk" | "kafka" (what its event source mapping reads)
    source_detail: str  # the stream's or cluster's ARN, or the Kafka brokers
    stream_name: str  # the Kinesis stream ("" for Kafka sources)
    alerts_topic_arn: str
    quarantine_queue_url: str
    scored_firehose: str


def source_of(mapping: dict[str, Any]) -> tuple[str, str]:
    """(kind, detail) of one event source mapping as Lambda describes it."""
    arn = str(mapping.get("EventSourceArn", ""))
    if ":kinesis:" in arn:
        return "kinesis", arn
    if ":kafka:" in arn:
        return "msk", f"Amazon MSK cluster {arn}"
    brokers = (mapping.get("SelfManagedEventSource") or {}).get("Endpoints", {}).get("KAFKA_BOOTSTRAP_SERVERS", [])
    if brokers:
        return "kafka", f"self-managed Kafka {','.join(brokers)}"
    return "other", arn or "an unknown source"


def stream_resources(deployment: Deployment) -> StreamResources:
    """The scorer's stream and outputs: its environment (``SCORER_ENV``) and its event source mapping."""
    from botocore.exceptions import ClientError

    from finsentry.layout import SCORER_ENV

    name = resource_name(deployment.env, RESOURCES.scorer_function)
    lam = deployment.client("lambda")
    try:
        variables = lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise DeploymentError(f"deployment {deployment.env!r} has no scorer function {name}") from None
        raise
    wanted = {"alerts_topic_arn": SCORER_ENV.alerts_topic_arn, "quarantine_queue_url": SCORER_ENV.quarantine_queue_url,
              "scored_firehose": SCORER_ENV.scored_firehose}  # fmt: skip
    missing = sorted(var for var in wanted.values() if not variables.get(var))
    if missing:
        raise DeploymentError(f"the scorer {name} lacks the environment variables {', '.join(missing)}")
    mappings = lam.list_event_source_mappings(FunctionName=name).get("EventSourceMappings", [])
    if not mappings:
        raise DeploymentError(f"the scorer {name} has no event source mapping: nothing feeds it")
    kind, detail = source_of(mappings[0])
    stream = detail.rsplit("/", 1)[-1] if kind == "kinesis" else ""
    return StreamResources(function=name, source=kind, source_detail=detail, stream_name=stream,
                           **{k: variables[v] for k, v in wanted.items()})  # fmt: skip
