"""Where things live: bucket prefixes and resource names, the one source of truth.

The CDK app, the Lambda handlers, the Glue jobs and the local (moto) run all take names from
here, so the local run lays out S3 exactly as the AWS deployment does.
"""

from __future__ import annotations

from dataclasses import dataclass

PROJECT = "finsentry"


@dataclass(frozen=True)
class Prefixes:
    raw: str = "raw/"
    quarantine: str = "quarantine/"
    firehose_errors: str = "quarantine/firehose/"  # the scored Firehose's delivery and conversion errors
    curated: str = "curated/features/"
    validation: str = "curated/validation/"  # labelled validation period (injected anomalies) for evaluation
    transactions: str = "curated/transactions/"  # canonical transactions (Glue ingest), dt= partitions
    scored: str = "scored/"
    models: str = "models/"
    reports: str = "reports/"
    athena_results: str = "athena-results/"
    feedback_inbox: str = "feedback/incoming/"  # case-management exports of verdicts (CSV / JSON lines)
    feedback_processed: str = "feedback/processed/"  # the exports once read
    feedback_labels: str = "feedback/labels/"  # the label history (Parquet, dt = day received; Glue table labels)
    feedback_rejected: str = "quarantine/feedback/"  # refused label rows with their reasons


PREFIXES = Prefixes()
PARTITION_KEY = "dt"  # Hive-style date partitions: scored/dt=1998-07-01/<file>.parquet (finsentry.lake)
# Codec of the scored table's Parquet (Firehose's ParquetSerDe, the Glue table, local writes). GZIP,
# not Firehose's default SNAPPY: 29 % fewer bytes per row (bench.lake: 35 vs 50 B on 90,000-row files),
# and Athena bills the compressed bytes it scans; reading GZIP pages costs Athena CPU, not money.
SCORED_PARQUET_COMPRESSION = "GZIP"


def bucket_name(env: str = "local", account: str = "000000000000", region: str = "eu-west-1") -> str:
    """The data bucket of one deployment (unique per account and region, as S3 requires)."""
    return f"{PROJECT}-{env}-data-{account}-{region}"


def partition_path(prefix: str, day: str, part: int = 0) -> str:
    """Object key of one date partition file, e.g. ``scored/dt=1998-07-01/part-00000.parquet``."""
    return f"{prefix}{PARTITION_KEY}={day}/part-{part:05d}.parquet"


# --- resource names shared by the CDK app, the handlers, the state machine and the local run ---

ENVIRONMENTS = ("local", "dev", "prod")


def resource_name(env: str, what: str) -> str:
    """Physical name of one resource of a deployment, e.g. ``finsentry-prod-profiles``."""
    return f"{PROJECT}-{env}-{what}"


@dataclass(frozen=True)
class Resources:
    """Logical names (suffixes for ``resource_name``) of the pipeline's resources."""

    stream: str = "transactions"  # Kinesis data stream the producers write to
    profiles_table: str = "profiles"  # DynamoDB: AccountProfile per account, PartnerProfile per "partner#<key>"
    alerts_topic: str = "alerts"  # SNS: one message per anomaly
    oncall_topic: str = "oncall"  # SNS: CloudWatch alarms and pipeline failures
    quarantine_queue: str = "quarantine"  # SQS: bad input with its reason and raw payload
    scorer_dlq: str = "scorer-dlq"  # SQS: on-failure destination of the event source mapping
    scored_firehose: str = "scored"  # Firehose: scored rows -> s3://<data>/scored/dt=.../ (Parquet)
    scorer_function: str = "stream-scorer"  # Lambda
    ingest_job: str = "ingest"  # Glue job: raw tables -> canonical transactions
    features_job: str = "features"  # Glue job: canonical transactions -> curated features
    training_pipeline: str = "training-pipeline"  # Step Functions state machine
    model_package_group: str = "detectors"  # SageMaker model registry group
    athena_workgroup: str = "analytics"
    feedback_function: str = "feedback-ingest"  # Lambda: the S3 label door (feedback/incoming/ -> labels)
    feedback_dlq: str = "feedback-dlq"  # SQS: ingest events the function failed on after its retries
    labels_api: str = "labels-api"  # API Gateway REST API: POST /labels (IAM auth), the HTTPS label door
    labels_function: str = "labels-api"  # Lambda behind it
    label_submitter: str = "label-submitter"  # IAM role a case-management system assumes to call the API


RESOURCES = Resources()


def glue_database_name(env: str) -> str:
    """The Glue catalog (Athena) database of a deployment, e.g. ``finsentry_prod``.

    Underscores, not hyphens: Athena needs a hyphenated database name quoted in every query,
    view and Tableau schema, so the database is the one name that does not use ``resource_name``.
    """
    return f"{PROJECT}_{env}"


def model_parameter_name(env: str) -> str:
    """SSM parameter the scorer reads to find its model; the training pipeline rewrites it.

    Its value is JSON: ``{"model_uri": "s3://.../model.tar.gz" or a local dir, "version": "...",
    "threshold": 0.87}``.
    """
    return f"/{PROJECT}/{env}/model/current"


def mask_key_parameter_name(env: str) -> str:
    """SSM SecureString holding the HMAC key that masks client ids (created by the operator, never in code)."""
    return f"/{PROJECT}/{env}/mask-key"


@dataclass(frozen=True)
class ScorerEnv:
    """Environment variables of the scorer Lambda (the handler checks them at start-up)."""

    profiles_table: str = "PROFILES_TABLE"
    quarantine_queue_url: str = "QUARANTINE_QUEUE_URL"
    alerts_topic_arn: str = "ALERTS_TOPIC_ARN"
    scored_firehose: str = "SCORED_FIREHOSE_NAME"
    model_parameter: str = "MODEL_PARAMETER_NAME"
    mask_key_parameter: str = "MASK_KEY_PARAMETER_NAME"  # SecureString: the HMAC key for client ids


SCORER_ENV = ScorerEnv()


@dataclass(frozen=True)
class FeedbackEnv:
    """Environment variables of the two label-door Lambdas (the handlers read them at start-up)."""

    data_bucket: str = "DATA_BUCKET"
    env: str = "FINSENTRY_ENV"  # the deployment (its Glue database, glue_database_name)
    profiles_table: str = "PROFILES_TABLE"  # the scorer's state table: the doors write its risk items


FEEDBACK_ENV = FeedbackEnv()
LABELS_API_STAGE = "v1"  # the API's one stage: https://<api>.execute-api.<region>.amazonaws.com/v1/labels
