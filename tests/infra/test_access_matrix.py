"""The access matrix: every interaction of the architecture allowed, every forbidden one denied.

The synthesized identity policies (inline, managed, CDK's default policies), resource policies
(topics, queues, buckets) and the key policy are resolved for one account (``cfn_model``) and
each request is evaluated by a real IAM policy simulator, ``@cloud-copilot/iam-simulate``
(pinned in package.json, run under the Node.js the CDK already needs; ``npm ci`` installs it).

What a simulator cannot know is which request context a service sends. Where AWS documents it,
the case encodes it:

- CloudWatch alarms and EventBridge rules publish to SNS with ``aws:SourceAccount`` and
  ``aws:SourceArn`` (the alarm / the rule): CloudWatch user guide, "Using Amazon SNS topics with
  alarms" / confused-deputy example
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Notify_Users_Alarm_Changes.html);
  EventBridge user guide, "Amazon SNS permissions"
  (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sns-permissions).
- The KMS requests SNS makes for those publishers carry no ``aws:SourceAccount`` /
  ``aws:SourceArn``: the key-policy statements AWS documents for them have no condition
  (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services,
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-troubleshooting.html, "My rule
  runs, but I don't see any messages published into my Amazon SNS topic"). Those cases send an
  empty context, so a key-policy condition on either key denies them, as it would in the account.
- Every SDK call goes over TLS (``aws:SecureTransport`` true) unless the case says otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from finsentry.layout import LABELS_API_STAGE, PREFIXES, mask_key_parameter_name, model_parameter_name
from infra.paths import REPO_ROOT
from tests.infra.cfn_model import ACCOUNT, PARTITION, REGION, CfnModel

SIMULATOR = Path(__file__).with_name("simulate.mjs")
OTHER_ACCOUNT = "444455556666"
ALLOW, DENY = True, False


@dataclass(frozen=True)
class Case:
    """One request: who (a role's logical-id prefix, or a service principal), what, on which ARN."""

    what: str
    principal: str
    action: str
    resource: str
    allowed: bool
    context: dict = field(default_factory=dict)
    tls: bool = True


def ensure_simulator() -> None:
    """The pinned simulator in node_modules (``npm ci`` from package-lock.json when missing)."""
    if shutil.which("node") is None:
        pytest.fail("Node.js is required (the CDK runs on it): install it, e.g. `make system-packages`")
    if not (REPO_ROOT / "node_modules" / "@cloud-copilot" / "iam-simulate").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=REPO_ROOT, check=True)  # noqa: S603,S607


def simulate(simulations: list[dict]) -> list[dict]:
    run = subprocess.run(["node", str(SIMULATOR)], input=json.dumps(simulations), capture_output=True,  # noqa: S603,S607
                         text=True, cwd=REPO_ROOT, check=False, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


class Matrix:
    """The cases of one deployment, their simulations and outcomes."""

    def __init__(self, synth) -> None:
        self.env = synth.deployment.config.env
        self.model = CfnModel(synth.templates)
        self.resource_policies = self.model.resource_policies()
        m = self.model
        self.bucket = m.find("AWS::S3::Bucket", "Data").name
        self.key = m.get_att(m.find("AWS::KMS::Key", "DataKey"), "Arn")
        self.oncall = m.ref(m.find("AWS::SNS::Topic", "OncallTopic"))
        self.alerts = m.ref(m.find("AWS::SNS::Topic", "AlertsTopic"))
        self.quarantine = m.get_att(m.find("AWS::SQS::Queue", "QuarantineQueue"), "Arn")
        self.dlq = m.get_att(m.find("AWS::SQS::Queue", "ScorerDlq"), "Arn")
        self.table = m.get_att(m.find("AWS::DynamoDB::Table", "Profiles"), "Arn")
        self.stream = m.get_att(m.find("AWS::Kinesis::Stream", "Stream"), "Arn")
        self.firehose = m.get_att(m.find("AWS::KinesisFirehose::DeliveryStream", "ScoredFirehose"), "Arn")
        self.sagemaker_role = m.role_arn(m.find("AWS::IAM::Role", "SageMakerRole"))
        self.state_machine = m.ref(m.find("AWS::StepFunctions::StateMachine", "TrainingPipeline"))
        job = m.find("AWS::Glue::Job", "IngestJob")
        script = m.resolve(job.properties["Command"]["ScriptLocation"], job.stack).removeprefix("s3://")
        self.glue_script = f"arn:{PARTITION}:s3:::{script}"
        self.glue_job = f"arn:{PARTITION}:glue:{REGION}:{ACCOUNT}:job/{job.name}"
        self.ecr_repo = (f"arn:{PARTITION}:ecr:{REGION}:{ACCOUNT}:repository/"
                         f"cdk-hnb659fds-container-assets-{ACCOUNT}-{REGION}")  # fmt: skip
        self.ingest_function = m.get_att(m.find("AWS::Lambda::Function", "IngestFunction"), "Arn")
        self.label_function = m.get_att(m.find("AWS::Lambda::Function", "ApiFunction"), "Arn")
        self.feedback_dlq = m.get_att(m.find("AWS::SQS::Queue", "FeedbackDlq"), "Arn")
        self.export_rule = m.get_att(m.find("AWS::Events::Rule", "ExportArrived"), "Arn")
        self.sweep_rule = m.get_att(m.find("AWS::Events::Rule", "FeedbackSweep"), "Arn")
        api, stage = m.ref(m.find("AWS::ApiGateway::RestApi", "LabelsApi")), LABELS_API_STAGE
        self.post_labels = self.arn("execute-api", f"{api}/{stage}/POST/labels")
        self.get_labels = self.arn("execute-api", f"{api}/{stage}/GET/labels")
        self.other_api = self.arn("execute-api", f"other-api/{stage}/POST/labels")
        self.config = synth.deployment.config
        self.cases = self._cases() + self._label_door_cases() + self._source_db_cases()

    def obj(self, key: str) -> str:
        return f"arn:{PARTITION}:s3:::{self.bucket}/{key}"

    def arn(self, service: str, resource: str, account: str = ACCOUNT) -> str:
        return f"arn:{PARTITION}:{service}:{REGION}:{account}:{resource}"

    def _cases(self) -> list[Case]:
        env, obj, arn = self.env, self.obj, self.arn
        model_param = arn("ssm", f"parameter{model_parameter_name(env)}")
        mask_param = arn("ssm", f"parameter{mask_key_parameter_name(env)}")
        alarm = {"aws:SourceAccount": ACCOUNT,
                 "aws:SourceArn": arn("cloudwatch", f"alarm:finsentry-{env}-scorer-errors")}  # fmt: skip
        rule = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": arn("events", f"rule/finsentry-{env}-glue-job-failed")}
        foreign_alarm = {"aws:SourceAccount": OTHER_ACCOUNT,
                         "aws:SourceArn": arn("cloudwatch", "alarm:finsentry-x", OTHER_ACCOUNT)}  # fmt: skip
        foreign_rule = {"aws:SourceAccount": OTHER_ACCOUNT, "aws:SourceArn": arn("events", "rule/x", OTHER_ACCOUNT)}
        day = "dt=2026-12-01/part-0.parquet"
        cases = [
            # --- failures reach on-call ------------------------------------------------------
            Case("CloudWatch alarm -> on-call topic", "cloudwatch.amazonaws.com", "sns:Publish", self.oncall, ALLOW,
                 alarm),
            Case("CloudWatch alarm -> CMK data key (encrypted topic)", "cloudwatch.amazonaws.com",
                 "kms:GenerateDataKey", self.key, ALLOW),
            Case("CloudWatch alarm -> CMK decrypt (encrypted topic)", "cloudwatch.amazonaws.com", "kms:Decrypt",
                 self.key, ALLOW),
            Case("EventBridge rule -> on-call topic", "events.amazonaws.com", "sns:Publish", self.oncall, ALLOW, rule),
            Case("EventBridge rule -> CMK data key (encrypted topic)", "events.amazonaws.com", "kms:GenerateDataKey",
                 self.key, ALLOW),
            Case("EventBridge rule -> CMK decrypt (encrypted topic)", "events.amazonaws.com", "kms:Decrypt",
                 self.key, ALLOW),
            Case("pipeline -> on-call topic (notify)", "StateMachineRole", "sns:Publish", self.oncall, ALLOW),
            Case("pipeline -> CMK data key (notify)", "StateMachineRole", "kms:GenerateDataKey", self.key, ALLOW),
            # --- the scorer Lambda --------------------------------------------------------------
            Case("scorer <- Kinesis records", "ScorerRole", "kinesis:GetRecords", self.stream, ALLOW),
            Case("scorer <- Kinesis shard iterator", "ScorerRole", "kinesis:GetShardIterator", self.stream, ALLOW),
            Case("scorer <- Kinesis stream list shards", "ScorerRole", "kinesis:ListShards", self.stream, ALLOW),
            Case("scorer <- profile", "ScorerRole", "dynamodb:BatchGetItem", self.table, ALLOW),
            Case("scorer -> profile (conditional update)", "ScorerRole", "dynamodb:UpdateItem", self.table, ALLOW),
            Case("scorer -> Firehose scored rows", "ScorerRole", "firehose:PutRecordBatch", self.firehose, ALLOW),
            Case("scorer -> alerts topic", "ScorerRole", "sns:Publish", self.alerts, ALLOW),
            Case("scorer -> quarantine queue", "ScorerRole", "sqs:SendMessage", self.quarantine, ALLOW),
            Case("scorer (event source mapping) -> DLQ", "ScorerRole", "sqs:SendMessage", self.dlq, ALLOW),
            Case("scorer <- model pointer", "ScorerRole", "ssm:GetParameter", model_param, ALLOW),
            Case("scorer <- mask key", "ScorerRole", "ssm:GetParameter", mask_param, ALLOW),
            Case("scorer <- model artifact", "ScorerRole", "s3:GetObject", obj(f"{PREFIXES.models}run-1/model.tar.gz"),
                 ALLOW),
            Case("scorer -> CMK data key", "ScorerRole", "kms:GenerateDataKey", self.key, ALLOW),
            Case("scorer -> CMK decrypt", "ScorerRole", "kms:Decrypt", self.key, ALLOW),
            # --- Firehose -------------------------------------------------------------------------
            Case("Firehose -> scored/", "FirehoseRole", "s3:PutObject", obj(f"{PREFIXES.scored}{day}"), ALLOW),
            Case("Firehose -> its error prefix", "FirehoseRole", "s3:PutObject",
                 obj(f"{PREFIXES.quarantine}firehose/format-conversion-failed/x"), ALLOW),
            Case("Firehose <- scored table schema", "FirehoseRole", "glue:GetTable",
                 arn("glue", f"table/finsentry_{env}/scored"), ALLOW),
            Case("Firehose -> CMK data key", "FirehoseRole", "kms:GenerateDataKey", self.key, ALLOW),
            # --- Glue -----------------------------------------------------------------------------
            Case("Glue <- raw/", "JobRole", "s3:GetObject", obj(f"{PREFIXES.raw}czech/trans.asc"), ALLOW),
            Case("Glue -> curated/", "JobRole", "s3:PutObject", obj(f"{PREFIXES.curated}{day}"), ALLOW),
            Case("Glue -> quarantine/", "JobRole", "s3:PutObject", obj(f"{PREFIXES.quarantine}etl/x.json"), ALLOW),
            Case("Glue <- its script (CDK asset)", "JobRole", "s3:GetObject", self.glue_script, ALLOW),
            Case("Glue -> catalog table", "JobRole", "glue:CreateTable", arn("glue", f"table/finsentry_{env}/features"),
                 ALLOW),
            Case("Glue -> CMK data key", "JobRole", "kms:GenerateDataKey", self.key, ALLOW),
            Case("Glue -> its metrics", "JobRole", "cloudwatch:PutMetricData", "*", ALLOW,
                 {"cloudwatch:namespace": "Glue"}),
            # --- SageMaker ------------------------------------------------------------------------
            Case("SageMaker <- curated features", "SageMakerRole", "s3:GetObject", obj(f"{PREFIXES.curated}{day}"),
                 ALLOW),
            Case("SageMaker <- labelled validation", "SageMakerRole", "s3:GetObject",
                 obj(f"{PREFIXES.validation}part-0.parquet"), ALLOW),
            Case("SageMaker -> models/", "SageMakerRole", "s3:PutObject", obj(f"{PREFIXES.models}run-1/model.tar.gz"),
                 ALLOW),
            Case("SageMaker -> reports/", "SageMakerRole", "s3:PutObject", obj(f"{PREFIXES.reports}run-1/eval.json"),
                 ALLOW),
            Case("SageMaker <- training image layers", "SageMakerRole", "ecr:BatchGetImage", self.ecr_repo, ALLOW),
            Case("SageMaker -> CMK data key", "SageMakerRole", "kms:GenerateDataKey", self.key, ALLOW),
            # --- Step Functions ---------------------------------------------------------------------
            Case("pipeline -> SageMaker training job", "StateMachineRole", "sagemaker:CreateTrainingJob",
                 arn("sagemaker", "training-job/finsentry-train-0a1b2c"), ALLOW),
            Case("pipeline -> Glue job run", "StateMachineRole", "glue:StartJobRun", self.glue_job, ALLOW),
            Case("pipeline passes the SageMaker role to SageMaker", "StateMachineRole", "iam:PassRole",
                 self.sagemaker_role, ALLOW, {"iam:PassedToService": "sagemaker.amazonaws.com"}),
            Case("pipeline -> model pointer", "StateMachineRole", "ssm:PutParameter", model_param, ALLOW),
            Case("pipeline -> Athena workgroup", "StateMachineRole", "athena:StartQueryExecution",
                 arn("athena", f"workgroup/finsentry-{env}-analytics"), ALLOW),
            Case("Athena (as the pipeline) -> query results", "StateMachineRole", "s3:PutObject",
                 obj(f"{PREFIXES.athena_results}q-1.csv"), ALLOW),
            Case("schedule -> pipeline", "TrainingPipelineEventsRole", "states:StartExecution", self.state_machine,
                 ALLOW),
            Case("deploy-time bootstrap -> model pointer", "AWS679f53fac002430cb0da5b7982bd2287ServiceRole",
                 "ssm:PutParameter", model_param, ALLOW),
            # --- must be denied -------------------------------------------------------------------
            Case("scorer <- raw/", "ScorerRole", "s3:GetObject", obj(f"{PREFIXES.raw}czech/trans.asc"), DENY),
            Case("scorer <- curated/", "ScorerRole", "s3:GetObject", obj(f"{PREFIXES.curated}{day}"), DENY),
            Case("scorer -> model pointer", "ScorerRole", "ssm:PutParameter", model_param, DENY),
            Case("scorer -> on-call topic", "ScorerRole", "sns:Publish", self.oncall, DENY),
            Case("scorer -> drop the profiles table", "ScorerRole", "dynamodb:DeleteTable", self.table, DENY),
            Case("Firehose <- raw/", "FirehoseRole", "s3:GetObject", obj(f"{PREFIXES.raw}czech/trans.asc"), DENY),
            Case("Glue -> model pointer", "JobRole", "ssm:PutParameter", model_param, DENY),
            Case("SageMaker <- raw/ (unmasked source files)", "SageMakerRole", "s3:GetObject",
                 obj(f"{PREFIXES.raw}czech/trans.asc"), DENY),
            Case("pipeline <- raw/", "StateMachineRole", "s3:GetObject", obj(f"{PREFIXES.raw}czech/trans.asc"), DENY),
            Case("pipeline passes the SageMaker role to Lambda", "StateMachineRole", "iam:PassRole",
                 self.sagemaker_role, DENY, {"iam:PassedToService": "lambda.amazonaws.com"}),
            Case("bootstrap -> mask key", "AWS679f53fac002430cb0da5b7982bd2287ServiceRole", "ssm:PutParameter",
                 mask_param, DENY),
            Case("another account's alarm -> on-call topic", "cloudwatch.amazonaws.com", "sns:Publish", self.oncall,
                 DENY, foreign_alarm),
            Case("another account's rule -> on-call topic", "events.amazonaws.com", "sns:Publish", self.oncall, DENY,
                 foreign_rule),
            Case("another account's role -> CMK decrypt", f"arn:{PARTITION}:iam::{OTHER_ACCOUNT}:role/x",
                 "kms:Decrypt", self.key, DENY),
            Case("pipeline -> on-call topic without TLS", "StateMachineRole", "sns:Publish", self.oncall, DENY,
                 tls=False),
            Case("SageMaker <- curated/ without TLS", "SageMakerRole", "s3:GetObject", obj(f"{PREFIXES.curated}{day}"),
                 DENY, tls=False),
        ]
        # nobody but the SageMaker jobs writes models/ (the scorer and the pipeline only point at them)
        for role in ("ScorerRole", "FirehoseRole", "JobRole", "StateMachineRole", "TrainingPipelineEventsRole",
                     "AWS679f53fac002430cb0da5b7982bd2287ServiceRole"):  # fmt: skip
            cases.append(Case(f"{role} -> models/", role, "s3:PutObject",
                              obj(f"{PREFIXES.models}run-1/model.tar.gz"), DENY))  # fmt: skip
        return cases

    def _stream_risk_cases(self) -> list[Case]:
        """The doors feed the stream's risk (finsentry.stream.risk): they read the scorer's alert
        index and write risk items, never an item of the scorer's exactly-once protocol."""
        def keys(*k: str) -> dict:
            return {"dynamodb:LeadingKeys": list(k)}

        cases = []
        for role, door in (("ApiRole", "label function"), ("IngestRole", "ingest")):
            cases += [
                Case(f"{door} <- the alert index", role, "dynamodb:BatchGetItem", self.table, ALLOW,
                     keys("txn#T1", "txn#T2")),
                Case(f"{door} <- risk items", role, "dynamodb:BatchGetItem", self.table, ALLOW,
                     keys("risk#account#A1", "risk#partner#B/P1")),
                Case(f"{door} -> a risk item (conditional put)", role, "dynamodb:PutItem", self.table, ALLOW,
                     keys("risk#partner#B/P1")),
                Case(f"{door} <- an account profile", role, "dynamodb:BatchGetItem", self.table, DENY,
                     keys("txn#T1", "A1")),
                Case(f"{door} -> an account profile", role, "dynamodb:PutItem", self.table, DENY, keys("A1")),
                Case(f"{door} -> a channel mark", role, "dynamodb:PutItem", self.table, DENY,
                     keys("channel#shardId-000")),
                Case(f"{door} -> the alert index", role, "dynamodb:PutItem", self.table, DENY, keys("txn#T1")),
                Case(f"{door} -> update a partner profile", role, "dynamodb:UpdateItem", self.table, DENY,
                     keys("partner#B/P1")),
                Case(f"{door} -> delete a risk item", role, "dynamodb:DeleteItem", self.table, DENY,
                     keys("risk#account#A1")),
                Case(f"{door} scans the profiles", role, "dynamodb:Scan", self.table, DENY),
                Case(f"{door} -> CMK decrypt (the table's key)", role, "kms:Decrypt", self.key, ALLOW),
            ]
        return cases

    def _label_door_cases(self) -> list[Case]:
        """The S3 and HTTPS label doors (infra/stacks/feedback.py): who may post labels, what each function touches."""
        env, obj, arn = self.env, self.obj, self.arn
        day = "dt=2026-12-01/part-0a1b2c3d4e5f.parquet"
        labels_table = arn("glue", f"table/finsentry_{env}/labels")
        history = {"s3:prefix": PREFIXES.feedback_labels}
        cases = [
            # --- the HTTPS door ----------------------------------------------------------------------------
            Case("case-management (submitter role) -> POST /labels", "LabelSubmitterRole", "execute-api:Invoke",
                 self.post_labels, ALLOW),
            Case("API Gateway (POST /labels) -> label function", "apigateway.amazonaws.com", "lambda:InvokeFunction",
                 self.label_function, ALLOW, {"aws:SourceArn": self.post_labels}),
            Case("label function -> the label history", "ApiRole", "s3:PutObject",
                 obj(f"{PREFIXES.feedback_labels}{day}"), ALLOW),
            Case("label function <- the label history", "ApiRole", "s3:GetObject",
                 obj(f"{PREFIXES.feedback_labels}{day}"), ALLOW),
            Case("label function lists the label history", "ApiRole", "s3:ListBucket", f"arn:{PARTITION}:s3:::"
                 f"{self.bucket}", ALLOW, history),
            Case("label function -> CMK data key", "ApiRole", "kms:GenerateDataKey", self.key, ALLOW),
            # --- the S3 door -------------------------------------------------------------------------------
            Case("export-arrived rule -> ingest function", "events.amazonaws.com", "lambda:InvokeFunction",
                 self.ingest_function, ALLOW, {"aws:SourceArn": self.export_rule}),
            Case("hourly sweep rule -> ingest function", "events.amazonaws.com", "lambda:InvokeFunction",
                 self.ingest_function, ALLOW, {"aws:SourceArn": self.sweep_rule}),
            Case("export rule -> feedback DLQ (undeliverable event)", "events.amazonaws.com", "sqs:SendMessage",
                 self.feedback_dlq, ALLOW, {"aws:SourceArn": self.export_rule}),
            Case("ingest function (async failure) -> feedback DLQ", "IngestRole", "sqs:SendMessage", self.feedback_dlq,
                 ALLOW),
            Case("ingest <- an export", "IngestRole", "s3:GetObject", obj(f"{PREFIXES.feedback_inbox}export.csv"),
                 ALLOW),
            Case("ingest removes the export it read", "IngestRole", "s3:DeleteObject",
                 obj(f"{PREFIXES.feedback_inbox}export.csv"), ALLOW),
            Case("ingest -> feedback/processed/", "IngestRole", "s3:PutObject",
                 obj(f"{PREFIXES.feedback_processed}export.csv"), ALLOW),
            Case("ingest -> the label history", "IngestRole", "s3:PutObject", obj(f"{PREFIXES.feedback_labels}{day}"),
                 ALLOW),
            Case("ingest -> quarantine/feedback/ (refused rows)", "IngestRole", "s3:PutObject",
                 obj(f"{PREFIXES.feedback_rejected}export.csv.20261201T000000.jsonl"), ALLOW),
            Case("ingest -> labels table partitions", "IngestRole", "glue:BatchCreatePartition", labels_table, ALLOW),
            Case("ingest <- labels table partitions", "IngestRole", "glue:GetPartitions", labels_table, ALLOW),
            Case("ingest -> CMK data key", "IngestRole", "kms:GenerateDataKey", self.key, ALLOW),
            # the training pipeline's supervised branch (analysts' verdicts as a SageMaker channel)
            Case("pipeline lists feedback/labels/ (FindLabels)", "StateMachineRole", "s3:ListBucket",
                 f"arn:{PARTITION}:s3:::{self.bucket}", ALLOW, history),
            Case("SageMaker <- the label history (labels channel)", "SageMakerRole", "s3:GetObject",
                 obj(f"{PREFIXES.feedback_labels}{day}"), ALLOW),
            # --- must be denied ------------------------------------------------------------------------------
            Case("SageMaker -> the label history", "SageMakerRole", "s3:PutObject",
                 obj(f"{PREFIXES.feedback_labels}{day}"), DENY),
            Case("SageMaker <- feedback/incoming/ (raw exports)", "SageMakerRole", "s3:GetObject",
                 obj(f"{PREFIXES.feedback_inbox}export.csv"), DENY),
            Case("submitter -> any other method (GET /labels)", "LabelSubmitterRole", "execute-api:Invoke",
                 self.get_labels, DENY),
            Case("submitter -> another API", "LabelSubmitterRole", "execute-api:Invoke", self.other_api, DENY),
            Case("submitter -> drop an export in S3 itself", "LabelSubmitterRole", "s3:PutObject",
                 obj(f"{PREFIXES.feedback_inbox}x.csv"), DENY),
            Case("scorer -> POST /labels", "ScorerRole", "execute-api:Invoke", self.post_labels, DENY),
            Case("another API -> label function", "apigateway.amazonaws.com", "lambda:InvokeFunction",
                 self.label_function, DENY, {"aws:SourceArn": self.other_api}),
            Case("another account's rule -> ingest function", "events.amazonaws.com", "lambda:InvokeFunction",
                 self.ingest_function, DENY, {"aws:SourceArn": arn("events", "rule/x", OTHER_ACCOUNT)}),
            Case("label function -> feedback/incoming/", "ApiRole", "s3:PutObject",
                 obj(f"{PREFIXES.feedback_inbox}x.csv"), DENY),
            Case("label function -> quarantine/", "ApiRole", "s3:PutObject",
                 obj(f"{PREFIXES.feedback_rejected}x.jsonl"), DENY),
            Case("label function lists raw/", "ApiRole", "s3:ListBucket", f"arn:{PARTITION}:s3:::{self.bucket}", DENY,
                 {"s3:prefix": PREFIXES.raw}),
            Case("label function <- raw/", "ApiRole", "s3:GetObject", obj(f"{PREFIXES.raw}czech/trans.asc"), DENY),
            Case("label function -> the catalog", "ApiRole", "glue:BatchCreatePartition", labels_table, DENY),
            Case("ingest <- raw/", "IngestRole", "s3:GetObject", obj(f"{PREFIXES.raw}czech/trans.asc"), DENY),
            Case("ingest -> another quarantine (etl)", "IngestRole", "s3:PutObject",
                 obj(f"{PREFIXES.quarantine}etl/x.json"), DENY),
            Case("ingest -> drop the labels table", "IngestRole", "glue:DeleteTable", labels_table, DENY),
            Case("ingest -> rewrite the labels table", "IngestRole", "glue:UpdateTable", labels_table, DENY),
            Case("ingest -> scored table partitions", "IngestRole", "glue:BatchCreatePartition",
                 arn("glue", f"table/finsentry_{env}/scored"), DENY),
        ]
        cases += self._stream_risk_cases()
        for role in ("ApiRole", "IngestRole", "LabelSubmitterRole"):
            cases.append(Case(f"{role} -> models/", role, "s3:PutObject", obj(f"{PREFIXES.models}run-1/model.tar.gz"),
                              DENY))  # fmt: skip
        return cases

    def _source_db_cases(self) -> list[Case]:
        """-c source_db: the database's secret (and its CMK) for the Glue role, nobody else.

        The secret and its key are the bank's (not in our templates): the secret has no resource
        policy here, the key AWS's default key policy (the account's IAM policies decide); a bank
        whose key policy does not delegate to IAM must name the Glue role in it. Analysts have no
        role in this deployment (their access is the bank's IAM): their case is an account role
        holding no finsentry policy, which finsentry must not open.
        """
        secret, key = self.config.source_db, self.config.source_db_key
        if not secret:
            return []
        other_secret = secret.rsplit(":", 1)[0] + ":other-AbCdEf"
        cases = [
            Case("Glue <- the source database's secret", "JobRole", "secretsmanager:GetSecretValue", secret, ALLOW),
            Case("Glue <- another secret", "JobRole", "secretsmanager:GetSecretValue", other_secret, DENY),
            Case("Glue -> change the database's secret", "JobRole", "secretsmanager:PutSecretValue", secret, DENY),
            Case("analyst (no finsentry policy) <- the database's secret",
                 f"arn:{PARTITION}:iam::{ACCOUNT}:role/analyst", "secretsmanager:GetSecretValue", secret, DENY),
        ]  # fmt: skip
        for role in ("ScorerRole", "SageMakerRole", "StateMachineRole", "FirehoseRole", "TrainingPipelineEventsRole",
                     "AWS679f53fac002430cb0da5b7982bd2287ServiceRole", "ApiRole", "IngestRole",
                     "LabelSubmitterRole"):  # fmt: skip
            cases.append(Case(f"{role} <- the database's secret", role, "secretsmanager:GetSecretValue", secret, DENY))
        if key:  # the bank's key, under the default key policy: the account's IAM policies decide
            self.resource_policies[key] = {"Version": "2012-10-17", "Statement": [{
                "Sid": "Enable IAM User Permissions", "Effect": "Allow", "Action": "kms:*", "Resource": "*",
                "Principal": {"AWS": f"arn:{PARTITION}:iam::{ACCOUNT}:root"}}]}  # fmt: skip
            # The Glue role's grant also requires kms:EncryptionContext:SecretARN = the secret, a key the
            # simulator (0.1.173) drops from the request (it matches variable keys after a '/', not a
            # ':'), so the allowed request cannot be simulated: tests/infra/test_source_db.py checks
            # that statement's conditions. These denials do not depend on that key.
            via = {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}
            cases += [
                Case("Glue -> the secret's CMK directly (not through Secrets Manager)", "JobRole", "kms:Decrypt", key,
                     DENY),
                Case("scorer (through Secrets Manager) -> the secret's CMK", "ScorerRole", "kms:Decrypt", key, DENY,
                     via),
                Case("SageMaker (through Secrets Manager) -> the secret's CMK", "SageMakerRole", "kms:Decrypt", key,
                     DENY, via),
            ]  # fmt: skip
        return cases

    def simulation(self, case: Case) -> dict:
        """The simulator's input: the principal's identity policies and the target's resource policy."""
        identity, principal = [], case.principal
        if not principal.startswith("arn:") and not principal.endswith(".amazonaws.com"):
            role = self.model.find("AWS::IAM::Role", principal)
            principal, identity = self.model.role_arn(role), self.model.identity_policies(role)
        target = case.resource.split("/", 1)[0] if case.resource.startswith(f"arn:{PARTITION}:s3:::") else case.resource
        context = {"aws:SecureTransport": "true" if case.tls else "false", **case.context}
        simulation = {
            "request": {"principal": principal, "action": case.action, "contextVariables": context,
                        "resource": {"resource": case.resource, "accountId": ACCOUNT}},
            "identityPolicies": identity,
            "serviceControlPolicies": [],
            "resourceControlPolicies": [],
        }  # fmt: skip
        if target in self.resource_policies:
            simulation["resourcePolicy"] = self.resource_policies[target]
        unresolved = "<unresolved" in json.dumps(simulation)
        assert not unresolved, f"{case.what}: the policies refer to something cfn_model cannot resolve"
        return simulation

    def outcomes(self) -> list[tuple[Case, dict]]:
        return list(zip(self.cases, simulate([self.simulation(c) for c in self.cases]), strict=True))


@pytest.fixture(scope="module")
def simulator_ready():
    ensure_simulator()


def test_every_interaction_is_allowed_and_every_forbidden_one_denied(synth, simulator_ready, capsys):
    check_matrix(Matrix(synth), capsys)


def check_matrix(matrix: Matrix, capsys) -> None:
    """Every case simulated: none refused by the simulator, none with the wrong outcome."""
    outcomes = matrix.outcomes()
    errors = [(c.what, o["errors"]) for c, o in outcomes if o["result"] == "Error"]
    assert not errors, f"the simulator refused requests: {json.dumps(errors, indent=1)[:3000]}"
    wrong = [f"{c.what}: {c.principal} {c.action} {c.resource} -> {o['result']}, expected "
             f"{'Allowed' if c.allowed else 'denied'}" for c, o in outcomes
             if (o["result"] == "Allowed") != c.allowed]  # fmt: skip
    allowed = sum(c.allowed for c in matrix.cases)
    with capsys.disabled():
        layout = f"{matrix.env} + source_db" if matrix.config.source_db else matrix.env
        print(f"\naccess matrix [{layout}]: {allowed} allowed + {len(matrix.cases) - allowed} denied cases, "
              f"{len(wrong)} wrong")  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_publishers_key_statement_carries_no_source_condition(dev):
    """Documented: SNS's KMS requests for CloudWatch/EventBridge publishers carry no aws:Source* key."""
    [(_, _, key)] = dev.resources("AWS::KMS::Key")
    statements = [s for s in key["Properties"]["KeyPolicy"]["Statement"]
                  if "events.amazonaws.com" in json.dumps(s.get("Principal"))]  # fmt: skip
    assert statements, "the key policy must let EventBridge use the key for the encrypted on-call topic"
    for statement in statements:
        assert "aws:Source" not in json.dumps(statement.get("Condition", {})), statement


def test_the_matrix_catches_the_conditions_that_used_to_drop_notifications(dev, simulator_ready):
    """The cases would have failed on the old policies: EventBridge's KMS use under an aws:SourceAccount
    condition, CloudWatch's publish under an events-only topic policy."""
    matrix = Matrix(dev)
    by_what = {c.what: c for c in matrix.cases}
    kms_case = by_what["EventBridge rule -> CMK data key (encrypted topic)"]
    publish_case = by_what["CloudWatch alarm -> on-call topic"]
    publishers = {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]}
    old_key_statement = {"Sid": "Old", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                         "Resource": "*", "Principal": publishers,
                         "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}  # fmt: skip
    old_topic_statement = {"Sid": "Old", "Effect": "Allow", "Action": "sns:Publish", "Resource": matrix.oncall,
                           "Principal": {"Service": "events.amazonaws.com"},
                           "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}  # fmt: skip
    sims = []
    for case, statement in ((kms_case, old_key_statement), (publish_case, old_topic_statement)):
        sim = matrix.simulation(case)
        policy = sim["resourcePolicy"]
        keep = [s for s in policy["Statement"] if s.get("Effect") == "Deny" or "root" in json.dumps(s.get("Principal"))]
        sim["resourcePolicy"] = {**policy, "Statement": [*keep, statement]}
        sims.append(sim)
    assert [r["result"] for r in simulate(sims)] == ["ImplicitlyDenied", "ImplicitlyDenied"]


def test_the_label_door_cases_rest_on_the_policies_they_name(dev, simulator_ready):
    """Without API Gateway's permission on the function, or the submitter's managed policy, or the
    rule's permission, the same requests are denied: the allowed cases test those statements."""
    matrix = Matrix(dev)
    by_what = {c.what: c for c in matrix.cases}
    invoke = matrix.simulation(by_what["API Gateway (POST /labels) -> label function"])
    invoke.pop("resourcePolicy")
    post = matrix.simulation(by_what["case-management (submitter role) -> POST /labels"])
    post["identityPolicies"] = []
    rule = matrix.simulation(by_what["export-arrived rule -> ingest function"])
    rule["resourcePolicy"] = {**rule["resourcePolicy"], "Statement": [
        s for s in rule["resourcePolicy"]["Statement"] if "ExportArrived" not in s["Sid"]]}  # fmt: skip
    assert [r["result"] for r in simulate([invoke, post, rule])] == ["ImplicitlyDenied"] * 3
