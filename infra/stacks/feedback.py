"""The label doors: analysts' verdicts come in through S3 (``feedback/incoming/``) and HTTPS (``POST /labels``).

Both doors run ``finsentry.feedback`` from the scorer's image (another CMD), validate with the one
validator and append to the same history (``feedback/labels/``, Glue table ``labels``):

- **S3 door**: the data bucket sends its events to EventBridge (``storage``); a rule matches
  "Object Created" under ``feedback/incoming/`` and invokes ``feedback-ingest`` with that key; an
  hourly schedule invokes it with no key (the whole inbox: what an earlier run missed, and the
  Glue partitions of days the HTTPS door wrote). Failed invocations are retried twice by Lambda,
  then land in the ``feedback-dlq`` (EventBridge's own delivery failures too). Its role reads
  and writes ``feedback/`` and writes ``quarantine/feedback/`` only, and adds partitions to the
  ``labels`` table (the table itself is defined here, so the function needs no CreateTable).
- **HTTPS door**: a REST API with IAM (SigV4) authorization, one method ``POST /labels`` (the
  Lambda proxy integration), stage ``v1`` throttled, access-logged (JSON, with the caller's
  ARN) and execution-logged (errors) to CMK-encrypted log groups, X-Ray traced. Its function
  reads and writes ``feedback/labels/`` only. Who may call it: a principal allowed
  ``execute-api:Invoke`` on that method, e.g. the ``label-submitter`` role created here for the
  bank's case-management system (any principal of this account the account lets assume it).

Both doors feed the stream's label-derived risk: they read the scorer's alert index (``txn#``)
and write the risk items (``risk#``) of the profiles table (``finsentry.stream.risk``), and no
other item of it (``dynamodb:LeadingKeys``).

Under ``-c vpc`` both functions run in the private subnets (security group ``label_doors``: HTTPS
to the endpoints only; they call S3, Glue, DynamoDB, CloudWatch Logs and X-Ray). Alarms
(``finsentry.monitoring.SERVICE_ALARMS``, the monitoring stack): ingest errors, DLQ depth,
unreadable exports, 5xx answers of the API, and, summed over both doors, risk items not written
and the share of verdicts the scorer's alert index does not know.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Fn, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from finsentry.lake import LABELS_TABLE, TABLES
from finsentry.layout import FEEDBACK_ENV, LABELS_API_STAGE, PARTITION_KEY, PREFIXES, RESOURCES, bucket_name
from finsentry.monitoring import METRIC_NAMESPACE
from finsentry.stream.risk import INDEX_PREFIX, RISK_PREFIX
from infra.config import EnvConfig
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
    arn,
)
from infra.images import SCORER
from infra.paths import DOCKER_EXCLUDES, REPO_ROOT, require
from infra.stacks.base import FinsentryStack
from infra.stacks.network import Network, acknowledge_function_network, function_placement

FEEDBACK_ROOT = PREFIXES.feedback_inbox.split("/")[0] + "/"  # feedback/: incoming/, processed/, labels/
HANDLERS = {"ingest": "lambdas.feedback_ingest.handler.handler", "api": "lambdas.label_api.handler.handler"}
LABEL_TABLE_ACTIONS = ["glue:GetDatabase", "glue:GetTable", "glue:GetPartitions", "glue:BatchCreatePartition"]


def labels_table_input(bucket: str) -> glue.CfnTable.TableInputProperty:
    """Parquet table over ``feedback/labels/`` with the columns of ``finsentry.lake.TABLES``; its ``dt``
    partitions (the day a label was received) are added by the ingest function."""
    location = f"s3://{bucket}/{PREFIXES.feedback_labels}"
    return glue.CfnTable.TableInputProperty(
        name=LABELS_TABLE,
        description="Analysts' verdicts, one row per label (finsentry.labels.HISTORY_COLUMNS); latest `when` wins",
        table_type="EXTERNAL_TABLE",
        parameters={"classification": "parquet", "parquet.compression": "SNAPPY"},
        partition_keys=[glue.CfnTable.ColumnProperty(name=PARTITION_KEY, type="string")],
        storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
            columns=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in TABLES[LABELS_TABLE][1].items()],
            location=location,
            input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            serde_info=glue.CfnTable.SerdeInfoProperty(
                serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
            ),
        ),
    )


class FeedbackStack(FinsentryStack):
    """The S3 and HTTPS label doors, their table, DLQ and the submitter role."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, key: kms.IKey, glue_database: str,
                 network: Network | None = None) -> None:  # fmt: skip
        super().__init__(scope, construct_id, config=config, description="finsentry: analysts' label doors")
        self.key = key
        self.network = network
        self.bucket = DataBucketRef(config.env)
        self.labels_table = glue.CfnTable(
            self, "LabelsTable", catalog_id=Aws.ACCOUNT_ID, database_name=glue_database,
            table_input=labels_table_input(bucket_name(config.env, Aws.ACCOUNT_ID, Aws.REGION)),
        )  # fmt: skip
        self.dlq = sqs.Queue(
            self,
            "FeedbackDlq",
            queue_name=self.name(RESOURCES.feedback_dlq),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(self.dlq, "AwsSolutions-SQS3", "It is itself the dead-letter queue of the feedback-ingest "
                    "function and of its EventBridge rules: the last stop, reviewed by on-call (alarmed).")  # fmt: skip
        self.ingest = self._ingest_function(glue_database)
        self._triggers()
        self.api_function = self._api_function()
        self.api = self._api()
        self.submitter = self._submitter_role()

    # --- the functions (the scorer's image, another CMD) ---------------------------------------------
    def _function(self, construct_id: str, what: str, role: ServiceRole, handler: str, *, memory_mb: int,
                  timeout: Duration, description: str, **extra) -> lambda_.DockerImageFunction:  # fmt: skip
        name = self.name(what)
        require(SCORER.dockerfile)
        logs = encrypted_log_group(self, f"{construct_id}Logs", name=f"/aws/lambda/{name}", key=self.key,
                                   days=self.config.log_retention_days, removal=self.removal)  # fmt: skip
        allow_wildcard_resource(role, ["logs:CreateLogStream", "logs:PutLogEvents"], "logs",
                                f"log-group:/aws/lambda/{name}:*",
                                "Streams of this one log group (the :* suffix is the log-stream part of its ARN).")
        allow_key(role, self.key)
        self._allow_stream_risk(role)
        function = lambda_.DockerImageFunction(
            self,
            construct_id,
            function_name=name,
            description=description,
            code=lambda_.DockerImageCode.from_image_asset(
                directory=str(REPO_ROOT), file=SCORER.dockerfile, exclude=DOCKER_EXCLUDES,
                platform=ecr_assets.Platform.custom(SCORER.docker_platform), cmd=[handler],
            ),  # fmt: skip
            architecture=lambda_.Architecture.ARM_64,
            role=role.role,
            memory_size=memory_mb,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=logs,
            **function_placement(self.network, "label_doors"),
            environment={
                FEEDBACK_ENV.data_bucket: self.bucket.name,
                FEEDBACK_ENV.env: self.config.env,
                FEEDBACK_ENV.profiles_table: self.name(RESOURCES.profiles_table),
                "POWERTOOLS_SERVICE_NAME": what,
                "POWERTOOLS_METRICS_NAMESPACE": METRIC_NAMESPACE,
                "NUMBA_CACHE_DIR": "/tmp/numba",  # noqa: S108 - Lambda's only writable path
            },
            **extra,
        )
        role.policies_first(function)
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]",
                    "X-Ray tracing: xray:PutTraceSegments/PutTelemetryRecords have no resource-level permissions.")
        acknowledge(role, "PCI.DSS.321-IAMNoInlinePolicy",
                    "CDK writes the grants of Lambda tracing (and of the function's dead-letter queue) as the "
                    "role's default policy; all our own statements are in its managed policy.")  # fmt: skip
        acknowledge_function_network(function, role, self.network, "the label doors reach only S3, Glue, "
                                     "DynamoDB, CloudWatch and X-Ray regional endpoints")
        return function

    def _allow_stream_risk(self, role: ServiceRole) -> None:
        """The stream's label-derived risk (``finsentry.stream.risk``): both doors read the
        scorer's alert index (``txn#``) and read and conditionally write the risk items
        (``risk#``) of the profiles table, and no other item (``dynamodb:LeadingKeys``): never
        an account, partner or channel item of the scorer's exactly-once protocol."""
        table = arn("dynamodb", f"table/{self.name(RESOURCES.profiles_table)}")
        allow(role, ["dynamodb:BatchGetItem"], [table],
              conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{INDEX_PREFIX}*", f"{RISK_PREFIX}*"]}})
        allow(role, ["dynamodb:PutItem"], [table],
              conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{RISK_PREFIX}*"]}})

    def _ingest_function(self, database: str) -> lambda_.DockerImageFunction:
        role = ServiceRole(self, "IngestRole", service="lambda.amazonaws.com",
                           description="finsentry S3 label door: feedback/ exports -> the label history")  # fmt: skip
        allow_prefixes(role, self.bucket, write=[FEEDBACK_ROOT, PREFIXES.feedback_rejected])
        allow_glue_catalog(role, LABEL_TABLE_ACTIONS, database, LABELS_TABLE)
        return self._function(
            "IngestFunction", RESOURCES.feedback_function, role, HANDLERS["ingest"], memory_mb=1024,
            timeout=Duration.minutes(5), description="finsentry: label exports under feedback/incoming/ -> labels",
            dead_letter_queue=self.dlq, retry_attempts=2, max_event_age=Duration.hours(6),
        )  # fmt: skip

    def _triggers(self) -> None:
        """EventBridge: each new export (the bucket's events), and the hourly sweep."""
        target = targets.LambdaFunction(self.ingest, dead_letter_queue=self.dlq, retry_attempts=4,
                                        max_event_age=Duration.hours(2))  # fmt: skip
        self.export_rule = events.Rule(
            self,
            "ExportArrived",
            rule_name=self.name("feedback-export-arrived"),
            description="A label export was written under feedback/incoming/ of the data bucket",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [self.bucket.name]},
                        "object": {"key": [{"prefix": PREFIXES.feedback_inbox}]}},  # fmt: skip
            ),
            targets=[target],
        )
        self.sweep_rule = events.Rule(
            self,
            "FeedbackSweep",
            rule_name=self.name("feedback-sweep"),
            description="Hourly: labels left in feedback/incoming/, Glue partitions of the days the HTTPS door wrote",
            schedule=events.Schedule.expression(self.config.feedback_sweep_schedule),
            targets=[target],
        )

    def _api_function(self) -> lambda_.DockerImageFunction:
        role = ServiceRole(self, "ApiRole", service="lambda.amazonaws.com",
                           description="finsentry HTTPS label door: POST /labels -> the label history")  # fmt: skip
        allow(role, ["s3:GetObject", "s3:PutObject"], [self.bucket.objects(PREFIXES.feedback_labels)])
        allow(role, ["s3:ListBucket"], [self.bucket.arn],
              conditions={"StringLike": {"s3:prefix": [f"{PREFIXES.feedback_labels}*"]}})  # fmt: skip
        acknowledge(role.policy, f"AwsSolutions-IAM5[Resource::{self.bucket.nag_objects(PREFIXES.feedback_labels)}]",
                    f"Object access is limited to the {PREFIXES.feedback_labels} prefix (the label history); keys "
                    "below it are date partitions and content digests, not known in advance.")  # fmt: skip
        return self._function(
            "ApiFunction", RESOURCES.labels_function, role, HANDLERS["api"], memory_mb=1024,
            timeout=Duration.seconds(28), description="finsentry: POST /labels (API Gateway, IAM auth) -> labels",
        )  # fmt: skip

    # --- the REST API ----------------------------------------------------------------------------------
    def _api(self) -> apigw.RestApi:
        cfg = self.config
        access = encrypted_log_group(self, "ApiAccessLogs", name=f"/aws/apigateway/{self.name(RESOURCES.labels_api)}",
                                     key=self.key, days=cfg.log_retention_days, removal=self.removal)  # fmt: skip
        api = apigw.RestApi(
            self,
            "LabelsApi",
            rest_api_name=self.name(RESOURCES.labels_api),
            description="finsentry: analysts' verdicts from case-management systems (SigV4, IAM authorization)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,  # the account's role for execution logs (API Gateway needs one per region)
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,  # the account setting may serve other APIs
            deploy_options=apigw.StageOptions(
                stage_name=LABELS_API_STAGE,
                access_log_destination=apigw.LogGroupLogDestination(access),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True, resource_path=True,
                    response_length=True, status=True, user=True,
                ),  # fmt: skip
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies hold analysts' names and notes: never logged
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=cfg.labels_api_rate_limit,
                throttling_burst_limit=cfg.labels_api_burst_limit,
            ),
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
        )
        # the execution log group API Gateway would create unencrypted: created first, on the CMK
        encrypted_log_group(
            self, "ApiExecutionLogs", name=Fn.join("", ["API-Gateway-Execution-Logs_", api.rest_api_id,
                                                        f"/{LABELS_API_STAGE}"]),
            key=self.key, days=cfg.log_retention_days, removal=self.removal,
        )  # fmt: skip
        # the gateway checks the body's shape only (JSON, an object or an array): each label is checked by
        # finsentry's validator in the handler, the one validator of every door
        validator = api.add_request_validator("BodyShape", validate_request_parameters=True,
                                              validate_request_body=True)  # fmt: skip
        shape = api.add_model("LabelBody", content_type="application/json", model_name="LabelBody",
                              description="One label object or a list of them (fields checked by the handler)",
                              schema=apigw.JsonSchema(schema=apigw.JsonSchemaVersion.DRAFT4, type=[
                                  apigw.JsonSchemaType.OBJECT, apigw.JsonSchemaType.ARRAY]))  # fmt: skip
        self.labels_method = api.root.add_resource("labels").add_method(
            "POST",
            apigw.LambdaIntegration(self.api_function, proxy=True, allow_test_invoke=False),
            authorization_type=apigw.AuthorizationType.IAM,
            request_validator=validator,
            request_parameters={"method.request.header.Content-Type": True},
            request_models={"application/json": shape},
        )
        for response, message in ((apigw.ResponseType.BAD_REQUEST_BODY,
                                   "the body is not JSON holding one label object or a list of them"),
                                  (apigw.ResponseType.BAD_REQUEST_PARAMETERS, "send Content-Type: application/json"),
                                  (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
                                   "sign the request (SigV4) and send it to POST /v1/labels"),
                                  (apigw.ResponseType.ACCESS_DENIED, "the caller may not post labels"),
                                  (apigw.ResponseType.THROTTLED, "too many requests: retry later")):  # fmt: skip
            api.add_gateway_response(f"Response{response.response_type}", type=response,
                                     templates={"application/json": f'{{"message": "{message}"}}'})  # fmt: skip
        self._acknowledge_api(api)
        return api

    def _acknowledge_api(self, api: apigw.RestApi) -> None:
        acknowledge(api, "AwsSolutions-APIG3", "Every request must carry a SigV4 signature of an IAM principal this "
                    "account allows execute-api:Invoke on POST /labels; unsigned calls are refused before the "
                    "integration and the stage is throttled. A WAF web ACL is left to the bank's perimeter policy.")
        acknowledge(api, "PCI.DSS.321-APIGWAssociatedWithWAF", "IAM (SigV4) authorization on the only method and "
                    "stage throttling bound who and how fast; a WAF web ACL is left to the bank's perimeter policy.")
        acknowledge(api, "AwsSolutions-COG4", "The callers are IAM principals (case-management systems, analysts' "
                    "roles) signing with SigV4: AWS_IAM authorization, not a Cognito user pool.")
        acknowledge(api, "PCI.DSS.321-APIGWCacheEnabledAndEncrypted", "The only method is a POST that writes labels: "
                    "nothing to cache (no stage cache cluster is created).")
        acknowledge(api, "PCI.DSS.321-APIGWSSLEnabled", "The integration is a Lambda proxy (invoked by API Gateway "
                    "over AWS's signed API), not an HTTP backend that a client certificate would authenticate.")
        acknowledge(api, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AmazonAPIGatewayPushToCloudWatchLogs]", "API Gateway's account-level role for execution logs; "
                    "AWS's managed policy is the documented one (log groups are created per API and stage).")

    # --- who may call it --------------------------------------------------------------------------------
    def _submitter_role(self) -> iam.Role:
        """The role a case-management system assumes to post labels (and nothing else)."""
        policy = iam.ManagedPolicy(self, "SubmitLabels", description="finsentry: POST /labels of the label API only")
        policy.add_statements(iam.PolicyStatement(
            actions=["execute-api:Invoke"], resources=[self.labels_method.method_arn],
        ))  # fmt: skip
        return iam.Role(
            self,
            "LabelSubmitterRole",
            role_name=self.name(RESOURCES.label_submitter),
            assumed_by=iam.AccountRootPrincipal(),  # the account's IAM decides who may assume it
            description="finsentry: a case-management system posting analysts' verdicts (POST /labels)",
            managed_policies=[policy],
            max_session_duration=Duration.hours(1),
        )
