"""ML pipeline: SageMaker role, image and model registry group; the training state machine and its schedule.

The state machine is ``stepfunctions/training_pipeline.asl.json`` verbatim, with its contract
placeholders substituted; its role is derived from the integrations the file uses.
"""

from __future__ import annotations

import json

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from finsentry.layout import PREFIXES, RESOURCES, model_parameter_name
from finsentry.monitoring import METRIC_NAMESPACE
from finsentry.pipeline_definition import load_definition
from infra.config import EnvConfig
from infra.constructs import asl
from infra.constructs.logs import encrypted_log_group
from infra.constructs.nag import acknowledge
from infra.constructs.pipeline_role import PipelineTargets, grant_integrations
from infra.constructs.policy import (
    DataBucketRef,
    ServiceRole,
    allow,
    allow_key,
    allow_logs,
    allow_metrics,
    allow_prefixes,
    allow_vpc_networking,
)
from infra.images import SAGEMAKER, base_image_args
from infra.paths import DOCKER_EXCLUDES, REPO_ROOT, TRAINING_ASL, require
from infra.stacks.base import FinsentryStack
from infra.stacks.network import Network

# where each SageMaker integration takes its network settings
_VPC_FIELD = {
    "createTrainingJob": ("VpcConfig",),
    "createModel": ("VpcConfig",),  # Batch Transform runs the model's containers with it
    "createProcessingJob": ("NetworkConfig", "VpcConfig"),
}


def with_vpc_config(definition: str, subnet_ids: list[str], security_group_ids: list[str]) -> str:
    """The ASL with every SageMaker job (training, processing, the transform's model) in our subnets.

    The ASL file stays VPC-agnostic (it runs as is under moto and without ``-c vpc``); the
    deployment adds the network settings to the tasks' parameters.
    """
    doc = json.loads(definition)
    vpc = {"Subnets": subnet_ids, "SecurityGroupIds": security_group_ids}

    def visit(states: dict) -> None:
        for state in states.values():
            api = state.get("Resource", "").rsplit(":", 1)[-1].removesuffix(".sync")
            if state.get("Type") == "Task" and ":sagemaker:" in state.get("Resource", "") and api in _VPC_FIELD:
                *outer, field = _VPC_FIELD[api]
                target = state["Parameters"]
                for name in outer:
                    target = target.setdefault(name, {})
                target[field] = vpc
            for branch in state.get("Branches", []):
                visit(branch["States"])
            for key in ("ItemProcessor", "Iterator"):
                if key in state:
                    visit(state[key]["States"])

    visit(doc["States"])
    return json.dumps(doc, indent=2)


class MlPipelineStack(FinsentryStack):
    """Everything the scheduled training run needs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        key: kms.IKey,
        data: s3.IBucket,
        oncall: sns.ITopic,
        glue_jobs: dict[str, str],
        glue_database: str,
        athena_workgroup: str,
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, construct_id, config=config, description="finsentry: training pipeline")
        require(SAGEMAKER.dockerfile)
        self.image = ecr_assets.DockerImageAsset(
            self,
            "TrainingImage",
            directory=str(REPO_ROOT),
            file=SAGEMAKER.dockerfile,
            exclude=DOCKER_EXCLUDES,
            platform=ecr_assets.Platform.custom(SAGEMAKER.docker_platform),
            build_args=base_image_args(config.sagemaker_base_image),
        )
        bucket = DataBucketRef(config.env)
        self.sagemaker_role = self._sagemaker_role(key, bucket)
        self.model_package_group_name = self.name(RESOURCES.model_package_group)
        sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=self.model_package_group_name,
            model_package_group_description="finsentry detectors promoted by the training pipeline",
        )
        self.substitutions = {
            "DataBucket": data.bucket_name,
            "GlueIngestJobName": glue_jobs["ingest"],
            "GlueFeaturesJobName": glue_jobs["features"],
            "GlueDatabase": glue_database,
            "SageMakerRoleArn": self.sagemaker_role.role_arn,
            "TrainingImageUri": self.image.image_uri,
            "KmsKeyArn": key.key_arn,
            "ModelPackageGroupName": self.model_package_group_name,
            "ModelParameterName": model_parameter_name(config.env),
            "NotifyTopicArn": oncall.topic_arn,
            "AthenaWorkgroup": athena_workgroup,
        }
        asl_path = require(TRAINING_ASL)
        self.integrations = asl.integrations(asl_path)
        self.definition = load_definition(self.substitutions, path=asl_path)
        if network is not None:
            allow_vpc_networking(self.sagemaker_role, "sagemaker")
            self.definition = with_vpc_config(
                self.definition, network.subnet_ids, [network.sagemaker.security_group_id]
            )

        role = ServiceRole(
            self, "StateMachineRole", service="states.amazonaws.com", description="finsentry training pipeline"
        )
        self.granted_actions = grant_integrations(
            role,
            self.integrations,
            PipelineTargets(
                data=bucket,
                key=key,
                glue_job_names=list(glue_jobs.values()),
                glue_database=glue_database,
                sagemaker_role_arn=self.sagemaker_role.role_arn,
                model_package_group=self.model_package_group_name,
                model_parameter_name=model_parameter_name(config.env),
                notify_topic_arn=oncall.topic_arn,
                athena_workgroup=athena_workgroup,
            ),
        )
        allow(role, ["kms:CreateGrant"], [key.key_arn], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}})
        name = self.name(RESOURCES.training_pipeline)
        log_group = encrypted_log_group(
            self,
            "StateMachineLogs",
            name=f"/aws/vendedlogs/states/{name}",
            key=key,
            days=config.log_retention_days,
            removal=self.removal,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "TrainingPipeline",
            state_machine_name=name,
            role=role.role,
            definition_body=sfn.DefinitionBody.from_string(self.definition),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        role.policies_first(self.state_machine)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery (logs:CreateLogDelivery etc.) and X-Ray tracing actions support "
            "no resource-level permissions; CDK adds them for logging and tracing.",
        )
        acknowledge(
            role,
            "PCI.DSS.321-IAMNoInlinePolicy",
            "CDK writes the log-delivery and X-Ray grants of the state machine as the role's default "
            "policy; all statements of the pipeline's own integrations are in its managed policy.",
        )
        acknowledge(
            self.state_machine,
            "PCI.DSS.321-IAMNoInlinePolicy",
            "The EventBridge schedule's role holds one inline statement written by CDK: "
            "states:StartExecution on this state machine only.",
        )
        self.schedule = events.Rule(
            self,
            "DailyTraining",
            rule_name=self.name("training-schedule"),
            description="Retrain, evaluate and maybe promote the detectors",
            schedule=events.Schedule.expression(config.training_schedule_cron),
            targets=[targets.SfnStateMachine(self.state_machine, input=events.RuleTargetInput.from_object({}))],
        )

    def _sagemaker_role(self, key: kms.IKey, bucket: DataBucketRef) -> ServiceRole:
        role = ServiceRole(
            self,
            "SageMakerRole",
            service="sagemaker.amazonaws.com",
            description="finsentry SageMaker training, evaluation and batch transform",
        )
        allow_prefixes(
            role,
            bucket,
            # validation: training and evaluation; feedback_labels: the supervised candidate's verdicts
            read=[PREFIXES.curated, PREFIXES.validation, PREFIXES.models, PREFIXES.feedback_labels],
            write=[PREFIXES.models, PREFIXES.reports, PREFIXES.scored],
        )
        allow(
            role,
            ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
            [self.image.repository.repository_arn],
        )
        allow(role, ["ecr:GetAuthorizationToken"], ["*"])
        allow_logs(
            role,
            "/aws/sagemaker/",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
        )
        allow_metrics(
            role,
            [
                METRIC_NAMESPACE,
                "/aws/sagemaker/TrainingJobs",
                "/aws/sagemaker/ProcessingJobs",
                "/aws/sagemaker/TransformJobs",
            ],
        )
        allow_key(role, key)
        return role
