"""Ingestion: Kinesis (or MSK / self-managed Kafka) -> scorer Lambda -> Firehose, SNS alerts, SQS quarantine.

The scorer is the container image built from ``lambdas/stream_scorer/Dockerfile`` (repo root as
build context). Its event source mapping reports partial batch failures, bisects failing batches,
caps retries and record age, and sends what it finally gives up on to the scorer DLQ.
"""

from __future__ import annotations

import json

from aws_cdk import Aws, Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from finsentry.layout import (
    PARTITION_KEY,
    PREFIXES,
    RESOURCES,
    SCORED_PARQUET_COMPRESSION,
    SCORER_ENV,
    mask_key_parameter_name,
    model_parameter_name,
)
from finsentry.monitoring import METRIC_NAMESPACE
from finsentry.stream.risk import INDEX_EXPIRY
from infra.config import EnvConfig
from infra.constructs.bootstrap_parameter import BootstrapParameter, parameter_arn
from infra.constructs.logs import encrypted_log_group
from infra.constructs.nag import acknowledge
from infra.constructs.policy import (
    DataBucketRef,
    ServiceRole,
    allow,
    allow_glue_catalog,
    allow_key,
    allow_prefixes,
    allow_wildcard_resource,
)
from infra.constructs.queue_dlq import ExplicitSqsDlq
from infra.images import SCORER, base_image_args
from infra.paths import DOCKER_EXCLUDES, REPO_ROOT, require
from infra.stacks.base import FinsentryStack
from infra.stacks.network import Network, acknowledge_function_network, function_placement

# the value the model parameter starts with: no model yet, so the scorer runs its rule checks
NO_MODEL = {"model_uri": "", "version": "none", "threshold": 1.0}
FIREHOSE_ERRORS_PREFIX = PREFIXES.firehose_errors


class IngestionStack(FinsentryStack):
    """Stream, scorer, profiles, alerts, quarantine, scored output."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        key: kms.IKey,
        data: s3.IBucket,
        glue_database: str,
        scored_table: str,
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, construct_id, config=config, description="finsentry: streaming scorer")
        self.key = key
        self.network = network
        self.quarantine = self._queue(
            "QuarantineQueue",
            RESOURCES.quarantine_queue,
            "terminal sink of invalid records: kept for review with their reason, "
            "never consumed automatically, so there is nothing to redrive",
        )
        self.dlq = self._queue(
            "ScorerDlq",
            RESOURCES.scorer_dlq,
            "it is itself the on-failure destination of the event source mapping: the last "
            "stop of records the scorer gave up on",
        )
        self.profiles = dynamodb.Table(
            self,
            "Profiles",
            table_name=self.name(RESOURCES.profiles_table),
            partition_key=dynamodb.Attribute(name="account_id", type=dynamodb.AttributeType.STRING),
            **self._profiles_capacity(config),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            time_to_live_attribute=INDEX_EXPIRY,  # the alert index's items expire (finsentry.stream.risk)
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=not config.destroy_on_removal,
            removal_policy=self.removal,
        )
        if config.profiles_provisioned:  # auto scaling follows the load at the target utilization
            for scaling in (self.profiles.auto_scale_read_capacity(min_capacity=config.profiles_min_capacity,
                                                                   max_capacity=config.profiles_max_capacity),
                            self.profiles.auto_scale_write_capacity(min_capacity=config.profiles_min_capacity,
                                                                    max_capacity=config.profiles_max_capacity)):
                scaling.scale_on_utilization(target_utilization_percent=config.profiles_target_utilization)
        self.alerts = sns.Topic(
            self,
            "AlertsTopic",
            topic_name=self.name(RESOURCES.alerts_topic),
            display_name=f"finsentry {config.env} anomaly alerts",
            master_key=key,
            enforce_ssl=True,
        )
        self.model_parameter = BootstrapParameter(
            self,
            "ModelParameter",
            name=model_parameter_name(config.env),
            value=json.dumps(NO_MODEL),
            description="Current scoring model (JSON: model_uri, version, threshold); the training pipeline sets it",
            key=key,
            log_retention_days=config.log_retention_days,
            removal=self.removal,
        )
        self.firehose = self._firehose(data, glue_database, scored_table)
        self.stream: kinesis.Stream | None = None
        self.scorer = self._scorer(data)
        self.scorer.add_event_source(self._event_source())
        self.scorer_role.policies_first(self.scorer)

    def _queue(self, construct_id: str, what: str, why_no_dlq: str) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            construct_id,
            queue_name=self.name(what),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(queue, "AwsSolutions-SQS3", f"No DLQ behind this queue: {why_no_dlq}.")
        return queue

    # --- Firehose: scored rows -> s3://<data>/scored/dt=YYYY-MM-DD/ as Parquet -------------------
    def _firehose(self, data: s3.IBucket, database: str, table: str) -> firehose.CfnDeliveryStream:
        name = self.name(RESOURCES.scored_firehose)
        log_group = encrypted_log_group(
            self,
            "FirehoseLogs",
            name=f"/aws/kinesisfirehose/{name}",
            key=self.key,
            days=self.config.log_retention_days,
            removal=self.removal,
        )
        role = ServiceRole(
            self,
            "FirehoseRole",
            service="firehose.amazonaws.com",
            description="finsentry Firehose: scored rows to S3 as Parquet",
        )
        bucket = DataBucketRef(self.config.env)
        allow_prefixes(role, bucket, write=[PREFIXES.scored, FIREHOSE_ERRORS_PREFIX])
        allow(role, ["s3:ListBucketMultipartUploads"], [bucket.arn])
        allow_glue_catalog(role, ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"], database, table)
        allow_wildcard_resource(
            role,
            ["logs:PutLogEvents", "logs:CreateLogStream"],
            "logs",
            f"log-group:/aws/kinesisfirehose/{name}:*",
            "Streams of this one log group (the :* suffix is the log-stream part of its ARN).",
        )
        allow_key(role, self.key)
        stream = firehose.CfnDeliveryStream(
            self,
            "ScoredFirehose",
            delivery_stream_name=name,
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="CUSTOMER_MANAGED_CMK", key_arn=self.key.key_arn
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=data.bucket_arn,
                role_arn=role.role_arn,
                prefix=f"{PREFIXES.scored}{PARTITION_KEY}=!{{partitionKeyFromQuery:{PARTITION_KEY}}}/",
                error_output_prefix=f"{FIREHOSE_ERRORS_PREFIX}!{{firehose:error-output-type}}/"
                f"{PARTITION_KEY}=!{{timestamp:yyyy-MM-dd}}/",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    size_in_m_bs=self.config.firehose_buffer_mb, interval_in_seconds=self.config.firehose_buffer_s
                ),
                compression_format="UNCOMPRESSED",  # Parquet pages are SNAPPY-compressed by the serializer
                encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                    kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                        awskms_key_arn=self.key.key_arn
                    )
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=log_group.log_group_name, log_stream_name="S3Delivery"
                ),
                dynamic_partitioning_configuration=firehose.CfnDeliveryStream.DynamicPartitioningConfigurationProperty(
                    enabled=True, retry_options=firehose.CfnDeliveryStream.RetryOptionsProperty(duration_in_seconds=300)
                ),
                processing_configuration=firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
                    enabled=True,
                    processors=[
                        firehose.CfnDeliveryStream.ProcessorProperty(
                            type="MetadataExtraction",
                            parameters=[
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="MetadataExtractionQuery",
                                    parameter_value=f"{{{PARTITION_KEY}: (.ts | tostring | .[0:10])}}",
                                ),
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="JsonParsingEngine", parameter_value="JQ-1.6"
                                ),
                            ],
                        )
                    ],
                ),
                data_format_conversion_configuration=firehose.CfnDeliveryStream.DataFormatConversionConfigurationProperty(
                    enabled=True,
                    input_format_configuration=firehose.CfnDeliveryStream.InputFormatConfigurationProperty(
                        deserializer=firehose.CfnDeliveryStream.DeserializerProperty(
                            open_x_json_ser_de=firehose.CfnDeliveryStream.OpenXJsonSerDeProperty()
                        )
                    ),
                    output_format_configuration=firehose.CfnDeliveryStream.OutputFormatConfigurationProperty(
                        serializer=firehose.CfnDeliveryStream.SerializerProperty(
                            parquet_ser_de=firehose.CfnDeliveryStream.ParquetSerDeProperty(
                                compression=SCORED_PARQUET_COMPRESSION
                            )
                        )
                    ),
                    schema_configuration=firehose.CfnDeliveryStream.SchemaConfigurationProperty(
                        catalog_id=Aws.ACCOUNT_ID,
                        database_name=database,
                        table_name=table,
                        region=Aws.REGION,
                        role_arn=role.role_arn,
                        version_id="LATEST",
                    ),
                ),
            ),
        )
        stream.node.add_dependency(role.policy)
        return stream

    # --- the scorer Lambda ----------------------------------------------------------------------
    @staticmethod
    def _profiles_capacity(config: EnvConfig) -> dict:
        if not config.profiles_provisioned:
            return {"billing_mode": dynamodb.BillingMode.PAY_PER_REQUEST}
        return {"billing_mode": dynamodb.BillingMode.PROVISIONED, "read_capacity": config.profiles_min_capacity,
                "write_capacity": config.profiles_min_capacity}

    def _scorer(self, data: s3.IBucket) -> lambda_.DockerImageFunction:
        name = self.name(RESOURCES.scorer_function)
        require(SCORER.dockerfile)
        log_group = encrypted_log_group(
            self,
            "ScorerLogs",
            name=f"/aws/lambda/{name}",
            key=self.key,
            days=self.config.log_retention_days,
            removal=self.removal,
        )
        role = ServiceRole(self, "ScorerRole", service="lambda.amazonaws.com", description="finsentry stream scorer")
        allow_wildcard_resource(
            role,
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            "logs",
            f"log-group:/aws/lambda/{name}:*",
            "Streams of this one log group (the :* suffix is the log-stream part of its ARN).",
        )
        allow(
            role,
            [
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:DescribeTable",
            ],
            [self.profiles.table_arn],
        )
        allow(role, ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"], [self.quarantine.queue_arn])
        allow(role, ["sns:Publish"], [self.alerts.topic_arn])
        allow(role, ["firehose:PutRecordBatch", "firehose:PutRecord"], [self.firehose.attr_arn])
        allow(
            role,
            ["ssm:GetParameter"],
            [self.model_parameter.parameter_arn, parameter_arn(mask_key_parameter_name(self.config.env))],
        )
        allow_prefixes(role, DataBucketRef(self.config.env), read=[PREFIXES.models])
        allow_key(role, self.key)
        function = lambda_.DockerImageFunction(
            self,
            "Scorer",
            function_name=name,
            description="finsentry: scores transactions from the stream",
            code=lambda_.DockerImageCode.from_image_asset(
                directory=str(REPO_ROOT), file=SCORER.dockerfile, exclude=DOCKER_EXCLUDES,
                platform=ecr_assets.Platform.custom(SCORER.docker_platform),
                build_args=base_image_args(self.config.scorer_base_image),
            ),
            architecture=lambda_.Architecture.ARM_64,  # Graviton (20 % less per GB-second), image built for it
            **function_placement(self.network, "scorer"),
            role=role.role,
            memory_size=self.config.scorer_memory_mb,
            timeout=Duration.seconds(self.config.scorer_timeout_s),
            reserved_concurrent_executions=self.config.scorer_reserved_concurrency or None,  # 0 = none
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            environment={
                SCORER_ENV.profiles_table: self.profiles.table_name,
                SCORER_ENV.quarantine_queue_url: self.quarantine.queue_url,
                SCORER_ENV.alerts_topic_arn: self.alerts.topic_arn,
                SCORER_ENV.scored_firehose: self.firehose.ref,
                SCORER_ENV.model_parameter: model_parameter_name(self.config.env),
                SCORER_ENV.mask_key_parameter: mask_key_parameter_name(self.config.env),
                "POWERTOOLS_SERVICE_NAME": RESOURCES.scorer_function,
                "POWERTOOLS_METRICS_NAMESPACE": METRIC_NAMESPACE,
                "NUMBA_CACHE_DIR": "/tmp/numba",  # noqa: S108 - Lambda's only writable path
                "FINSENTRY_ENV": self.config.env,
            },
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing: xray:PutTraceSegments/PutTelemetryRecords have no resource-level permissions.",
        )
        acknowledge(
            role,
            "PCI.DSS.321-IAMNoInlinePolicy",
            "CDK writes the grants of Lambda tracing and of the event source mapping (read of this one "
            "stream or cluster) as the role's default policy; all our own statements are in its managed policy.",
        )
        self.scorer_role = role
        acknowledge_function_network(function, role, self.network, "the scorer reaches only AWS regional service "
                                     "endpoints (DynamoDB, SQS, SNS, Firehose, SSM)")
        return function

    def _event_source(self) -> lambda_.IEventSource:
        cfg = self.config
        on_failure = ExplicitSqsDlq(self.dlq, self.key, self.scorer_role)
        if cfg.source == "msk":
            acknowledge(
                self.scorer_role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaMSKExecutionRole]",
                "CDK attaches AWS's AWSLambdaMSKExecutionRole for the MSK poller: cluster discovery (kafka Describe, "
                "GetBootstrapBrokers) and the network interfaces Lambda creates in the cluster's subnets, which AWS "
                "keeps current with the service and which support no resource-level scoping.",
            )
            return sources.ManagedKafkaEventSource(
                cluster_arn=cfg.kafka_cluster_arn,
                topic=cfg.kafka_topic,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=cfg.scorer_batch_size,
                max_batching_window=Duration.seconds(cfg.scorer_batching_window_s),
                on_failure=on_failure,
            )
        if cfg.source == "kafka":
            secret = secretsmanager.Secret.from_secret_complete_arn(self, "KafkaSecret", cfg.kafka_secret_arn)
            return sources.SelfManagedKafkaEventSource(
                bootstrap_servers=cfg.kafka_bootstrap_servers.split(","),
                topic=cfg.kafka_topic,
                secret=secret,
                authentication_method=sources.AuthenticationMethod.SASL_SCRAM_512_AUTH,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=cfg.scorer_batch_size,
                max_batching_window=Duration.seconds(cfg.scorer_batching_window_s),
                on_failure=on_failure,
            )
        self.stream = kinesis.Stream(
            self,
            "Stream",
            stream_name=self.name(RESOURCES.stream),
            encryption=kinesis.StreamEncryption.KMS,
            encryption_key=self.key,
            retention_period=Duration.hours(cfg.stream_retention_hours),
            stream_mode=kinesis.StreamMode.ON_DEMAND if cfg.stream_on_demand else kinesis.StreamMode.PROVISIONED,
            shard_count=None if cfg.stream_on_demand else cfg.stream_shards,
        )
        acknowledge(
            self.stream,
            "AwsSolutions-KDS3",
            "The stream is encrypted with the project's customer-managed key on purpose (rotation, key "
            "policy and audit under our control) rather than the AWS-managed aws/kinesis key.",
        )
        return sources.KinesisEventSource(
            self.stream,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=cfg.scorer_batch_size,
            max_batching_window=Duration.seconds(cfg.scorer_batching_window_s),
            report_batch_item_failures=True,
            bisect_batch_on_error=True,
            retry_attempts=cfg.scorer_retry_attempts,
            max_record_age=Duration.seconds(cfg.scorer_max_record_age_s),
            parallelization_factor=cfg.scorer_parallelization,
            on_failure=on_failure,
        )
