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
    curated: str = "curated/features/"
    scored: str = "scored/"
    models: str = "models/"
    reports: str = "reports/"
    athena_results: str = "athena-results/"


PREFIXES = Prefixes()
PARTITION_KEY = "dt"  # Hive-style date partitions: scored/dt=1998-07-01/part-00000.parquet


def bucket_name(env: str = "local", account: str = "000000000000", region: str = "eu-west-1") -> str:
    """The data bucket of one deployment (unique per account and region, as S3 requires)."""
    return f"{PROJECT}-{env}-data-{account}-{region}"


def partition_path(prefix: str, day: str, part: int = 0) -> str:
    """Object key of one date partition file, e.g. ``scored/dt=1998-07-01/part-00000.parquet``."""
    return f"{prefix}{PARTITION_KEY}={day}/part-{part:05d}.parquet"
