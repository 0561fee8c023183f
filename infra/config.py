"""Deployment environments, in one place: sizes, retention, alarm e-mail, by ``-c env=dev|prod``.

Every stack reads its knobs from one ``EnvConfig``; nothing else in ``infra/`` hard-codes a size,
a retention period or an address. Context keys may override single fields (``-c alarm_email=...``,
``-c source=msk``), so a deployment never needs a code change for its own account.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, fields, replace
from typing import Any

from finsentry.layout import ENVIRONMENTS

SOURCES = ("kinesis", "msk", "kafka")  # where the scorer reads transactions from


@dataclass(frozen=True)
class EnvConfig:
    """Knobs of one deployment (units in the field names)."""

    env: str
    # ingestion
    source: str = "kinesis"  # kinesis | msk (Amazon MSK) | kafka (self-managed Kafka)
    stream_on_demand: bool = True  # Kinesis capacity mode; False = provisioned with stream_shards
    stream_shards: int = 1
    stream_retention_hours: int = 24
    kafka_cluster_arn: str = ""  # source=msk: the MSK cluster
    kafka_bootstrap_servers: str = ""  # source=kafka: comma-separated host:port list
    kafka_secret_arn: str = ""  # source=kafka: Secrets Manager secret with SASL/SCRAM credentials
    kafka_topic: str = "transactions"
    # scorer Lambda and its event source mapping
    # the scorer scores a batch on one thread (scikit-learn n_jobs=1, no parallel numba): 1,769 MB is
    # one full vCPU, more buys no speed; prod keeps headroom for a sequence model (finsentry.cost prices it)
    scorer_memory_mb: int = 1769
    scorer_timeout_s: int = 60
    # 0 = no reservation (the default): a reservation is taken from the account's unreserved pool,
    # which new accounts keep at 10 (a quota of 10 leaves nothing to reserve) -- raise the quota first
    scorer_reserved_concurrency: int = 0
    scorer_batch_size: int = 500
    scorer_batching_window_s: int = 1
    scorer_retry_attempts: int = 3
    scorer_max_record_age_s: int = 3600
    scorer_parallelization: int = 1  # must stay 1: the state protocol orders each shard (docs/architecture.md)
    # profiles table: on-demand (dev: nothing to pay while idle) or provisioned with auto scaling
    # (prod: the capacity the load needs at a 70 % target, ~2.5x cheaper per write than on-demand)
    profiles_provisioned: bool = False
    profiles_min_capacity: int = 5  # RCU and WCU each, the floor auto scaling keeps
    profiles_max_capacity: int = 4000
    profiles_target_utilization: int = 70  # percent
    # Firehose -> scored/ (Parquet); dynamic partitioning needs a buffer of at least 64 MiB. 900 s (the
    # most Firehose allows): one object per 15 minutes, a third of the objects Athena opens at 300 s;
    # alerts do not wait for it (SNS), only the analysts' tables (finsentry.cost prices this)
    firehose_buffer_mb: int = 64
    firehose_buffer_s: int = 900
    # Glue
    glue_worker_type: str = "G.1X"
    glue_workers: int = 2
    glue_timeout_min: int = 60
    # training pipeline
    training_schedule_cron: str = "cron(0 3 * * ? *)"  # daily 03:00 UTC (prod: weekly, below)
    # the label doors (infra/stacks/feedback.py)
    labels_api_rate_limit: int = 10  # requests per second, steady, for the whole stage
    labels_api_burst_limit: int = 20
    feedback_sweep_schedule: str = "rate(1 hour)"  # the S3 door's sweep of feedback/incoming/
    # retention
    log_retention_days: int = 30
    raw_retention_days: int = 365
    quarantine_retention_days: int = 90
    athena_results_retention_days: int = 30
    noncurrent_version_days: int = 30
    # analytics
    athena_bytes_scanned_cutoff: int = 10 * 1024**3  # per query
    # monitoring
    alarm_email: str = ""  # subscribed to the on-call topic when set; prod refuses to synthesize without it
    # network: "" = today's layout (AWS public endpoints); "new" = a VPC with isolated subnets and
    # endpoints; "vpc-..." = an existing VPC's private subnets (with vpc_subnets and vpc_azs)
    vpc: str = ""
    vpc_cidr: str = "10.40.0.0/20"  # vpc=new
    vpc_subnets: str = ""  # vpc=vpc-...: comma-separated private subnet ids
    vpc_azs: str = ""  # vpc=vpc-...: their availability zones, in the same order
    # base images: "" = the Dockerfile's tag; a release pins each by digest, <image>@sha256:<64 hex>
    # (docs/operations.md, "Base images"); the build gets it as the BASE_IMAGE build argument
    scorer_base_image: str = ""
    sagemaker_base_image: str = ""
    # source database (PostgreSQL / RDS / Aurora) for the Glue ingest job; "" = raw/ files only.
    # source_db = the full ARN of its Secrets Manager secret (RDS form: host, port, dbname, username,
    # password); needs -c vpc; the job reads it through a Glue JDBC connection (infra/stacks/processing.py)
    source_db: str = ""
    source_db_mapping: str = ""  # mapping YAML with a database: section (path from the repo root), an asset
    source_db_port: int = 5432  # the only port the job's security group may reach the database on
    source_db_cidr: str = ""  # the database's address range (e.g. its subnets), or
    source_db_security_group: str = ""  # the database's security group (sg-..., in a VPC the job's reaches)
    source_db_key: str = ""  # the KMS key ARN of the secret when it is encrypted with a customer managed key
    # the bank's own CSV/Parquet files under raw/ (not Czech files): a mapping YAML WITHOUT a database:
    # section (path from the repo root), an asset; the ingest job reads raw/ through it (finsentry.etl.files)
    source_mapping: str = ""
    # removal: dev tears down with its data, prod keeps it
    destroy_on_removal: bool = True


CONFIGS: dict[str, EnvConfig] = {
    "dev": EnvConfig(env="dev"),
    "prod": EnvConfig(
        env="prod",
        stream_on_demand=False,
        stream_shards=4,
        stream_retention_hours=168,
        scorer_memory_mb=2048,
        profiles_provisioned=True,
        profiles_min_capacity=50,
        firehose_buffer_mb=128,
        glue_worker_type="G.2X",
        glue_workers=10,
        glue_timeout_min=180,
        # weekly, Mondays 03:00 UTC: the retraining cadence bench.feedback measures (verdicts arrive
        # within 7 days); daily runs would pay 7x the Glue and SageMaker time (docs/cost.md)
        training_schedule_cron="cron(0 3 ? * MON *)",
        log_retention_days=365,
        raw_retention_days=2555,  # 7 years: bank record keeping
        quarantine_retention_days=365,
        athena_results_retention_days=90,
        noncurrent_version_days=90,
        athena_bytes_scanned_cutoff=100 * 1024**3,
        destroy_on_removal=False,
    ),
}

_BOOL_TRUE = {"1", "true", "yes", "on"}
ENVS_NEEDING_ONCALL = {"prod"}  # no default address: a placeholder would swallow every alarm
_DIGEST_REF = re.compile(r"[^\s@]+@sha256:[0-9a-f]{64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _coerce(value: Any, like: Any, key: str) -> Any:
    """Cast a context value (always a string on the command line) to the field's type."""
    if isinstance(like, bool):
        return value if isinstance(value, bool) else str(value).lower() in _BOOL_TRUE
    if isinstance(like, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"context {key}={value!r} is not an integer") from None
    return str(value)


def load_config(env: str, overrides: dict[str, Any] | None = None) -> EnvConfig:
    """The config of ``env`` with context overrides applied; clear errors for unknown values."""
    if env not in CONFIGS:
        known = ", ".join(CONFIGS)
        raise ValueError(f"unknown env {env!r} (from -c env=...); known: {known}")
    assert env in ENVIRONMENTS
    base = CONFIGS[env]
    names = {f.name for f in fields(EnvConfig)} - {"env"}
    changes = {k: _coerce(v, getattr(base, k), k) for k, v in (overrides or {}).items() if k in names and v is not None}
    config = replace(base, **changes)
    _check(config)
    return config


def _check(config: EnvConfig) -> None:
    if config.source not in SOURCES:
        raise ValueError(f"source={config.source!r}; known: {', '.join(SOURCES)}")
    if config.source == "msk" and not config.kafka_cluster_arn:
        raise ValueError("source=msk needs -c kafka_cluster_arn=arn:aws:kafka:...")
    if config.source == "kafka" and not (config.kafka_bootstrap_servers and config.kafka_secret_arn):
        raise ValueError("source=kafka needs -c kafka_bootstrap_servers=host:port,... and -c kafka_secret_arn=...")
    if config.firehose_buffer_mb < 64:
        raise ValueError("firehose_buffer_mb must be >= 64 (Firehose dynamic partitioning minimum)")
    for name in ("scorer_base_image", "sagemaker_base_image"):
        value = getattr(config, name)
        if value and not _DIGEST_REF.fullmatch(value):
            raise ValueError(f"{name}={value!r}: pin the base by digest, <image>@sha256:<64 hex digits> "
                             "(docker buildx imagetools inspect <image> prints it)")  # fmt: skip
    if config.scorer_reserved_concurrency < 0:
        raise ValueError("scorer_reserved_concurrency must be >= 0 (0 = no reservation)")
    if config.env in ENVS_NEEDING_ONCALL and not _EMAIL.fullmatch(config.alarm_email):
        got = f" (got {config.alarm_email!r})" if config.alarm_email else ""
        raise ValueError(
            f"env={config.env} needs an on-call address{got}: -c alarm_email=team@yourbank.example "
            "(alarms go nowhere without one)"
        )
    if config.vpc and config.vpc != "new":
        if not re.fullmatch(r"vpc-[0-9a-f]{8,17}", config.vpc):
            raise ValueError(f"vpc={config.vpc!r}: use -c vpc=new or an existing VPC id (vpc-...)")
        subnets, azs = config.vpc_subnets.split(","), config.vpc_azs.split(",")
        if not config.vpc_subnets or len(subnets) != len(azs) or not all(s.startswith("subnet-") for s in subnets):
            raise ValueError(
                "an existing VPC needs its private subnets and their zones: "
                "-c vpc_subnets=subnet-a,subnet-b -c vpc_azs=eu-west-1a,eu-west-1b (same order, same count)"
            )
    _check_source_mapping(config)  # first: with source_db too, the one error is that they are two sources
    _check_source_db(config)
    if not 60 <= config.scorer_max_record_age_s <= 604_800:
        raise ValueError("scorer_max_record_age_s must be within 60 s .. 7 days")


SOURCE_DB_OPTIONS = ("source_db_mapping", "source_db_cidr", "source_db_security_group", "source_db_key")
_SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+-[A-Za-z0-9]{6}")
_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/(?:[0-9a-f-]{36}|mrk-[0-9a-f]{32})")


def _check_source_db(config: EnvConfig) -> None:
    """The source database options: complete, well-formed, inside a VPC, with a mapping that reads a database."""
    if not config.source_db:
        given = [k for k in SOURCE_DB_OPTIONS if getattr(config, k)]
        if given:
            raise ValueError(f"{', '.join(given)} without -c source_db=<secret ARN>: nothing would use it")
        return
    if not _SECRET_ARN.fullmatch(config.source_db):
        raise ValueError(
            f"source_db={config.source_db!r}: give the secret's full ARN, arn:aws:secretsmanager:REGION:ACCOUNT:"
            "secret:NAME-XXXXXX (aws secretsmanager describe-secret --secret-id NAME --query ARN)"
        )
    if not config.vpc:
        raise ValueError(
            "source_db needs a VPC: -c vpc=vpc-... (the database's VPC, with vpc_subnets and vpc_azs) "
            "or -c vpc=new (with a route to the database): Glue reaches a database only from a VPC"
        )
    if bool(config.source_db_cidr) == bool(config.source_db_security_group):
        raise ValueError(
            "source_db needs where the database is, exactly one of: -c source_db_security_group=sg-... "
            "(the database's security group) or -c source_db_cidr=10.0.8.0/24 (its address range)"
        )
    group = config.source_db_security_group
    if group and not re.fullmatch(r"sg-(?:[0-9a-f]{8}|[0-9a-f]{17})", group):
        raise ValueError(f"source_db_security_group={config.source_db_security_group!r} is not a security group id")
    if config.source_db_cidr:
        try:
            network = ipaddress.ip_network(config.source_db_cidr, strict=True)
        except ValueError:
            raise ValueError(
                f"source_db_cidr={config.source_db_cidr!r}: not an address range like 10.0.8.0/24"
            ) from None
        if network.version != 4 or network.prefixlen < 8:
            raise ValueError(f"source_db_cidr={config.source_db_cidr!r}: an IPv4 range of /8 or narrower")
    if not 1 <= config.source_db_port <= 65535:
        raise ValueError(f"source_db_port={config.source_db_port} is not a TCP port")
    if config.source_db_key and not _KEY_ARN.fullmatch(config.source_db_key):
        raise ValueError(
            f"source_db_key={config.source_db_key!r}: give the key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)"
        )
    if not config.source_db_mapping:
        raise ValueError("source_db needs -c source_db_mapping=bank.mapping.yaml (a mapping with a database: section)")
    from finsentry.mapping import load_mapping
    from infra.paths import REPO_ROOT

    # relative to the repository (where cdk runs); MappingError (a ValueError) names the problem
    mapping = load_mapping(REPO_ROOT / config.source_db_mapping)
    if not (mapping.database.table or mapping.database.query):
        raise ValueError(
            f"source_db_mapping={config.source_db_mapping}: the mapping's database: section names no table or query"
        )


def _check_source_mapping(config: EnvConfig) -> None:
    """The bank's own files' mapping: it parses, reads no database, and is the only source given."""
    if not config.source_mapping:
        return
    if config.source_db:
        raise ValueError("source_mapping (the bank's own files under raw/) and source_db (a database) are two "
                         "sources: give one; a database's mapping is -c source_db_mapping")  # fmt: skip
    from finsentry.mapping import DatabaseSpec, load_mapping
    from infra.paths import REPO_ROOT

    mapping = load_mapping(REPO_ROOT / config.source_mapping)  # MappingError (a ValueError) names the problem
    if mapping.database != DatabaseSpec():
        raise ValueError(f"source_mapping={config.source_mapping}: the mapping has a database: section; a "
                         "database is read with -c source_db=<secret ARN> -c source_db_mapping=...")  # fmt: skip
