"""In-process AWS (moto) for the local run: the same boto3 calls the deployment makes."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from moto import mock_aws

from finsentry.layout import PARTITION_KEY, bucket_name, partition_path

LOCAL_REGION = "eu-west-1"


@contextmanager
def local_aws() -> Iterator[None]:
    """Start moto's in-process AWS with throw-away credentials (no real account is touched)."""
    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - moto's dummy credentials
        "AWS_SESSION_TOKEN": "testing",  # noqa: S105
        "AWS_DEFAULT_REGION": LOCAL_REGION,
    }
    saved = {k: os.environ.get(k) for k in fake}
    os.environ.update(fake)
    try:
        with mock_aws():
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class DataBucket:
    """The project's data bucket (raw/, quarantine/, curated/, scored/, models/ ...)."""

    name: str
    client: object

    @classmethod
    def create(cls, env: str = "local") -> DataBucket:
        s3 = boto3.client("s3", region_name=LOCAL_REGION)
        name = bucket_name(env=env, region=LOCAL_REGION)
        s3.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": LOCAL_REGION}
        )
        return cls(name=name, client=s3)

    def put_bytes(self, key: str, body: bytes) -> str:
        self.client.put_object(Bucket=self.name, Key=key, Body=body)
        return f"s3://{self.name}/{key}"

    def upload_dir(self, directory: Path, prefix: str) -> list[str]:
        """Upload every file under ``directory`` below ``prefix`` (keeps relative paths)."""
        keys = []
        for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
            key = prefix + path.relative_to(directory).as_posix()
            self.put_bytes(key, path.read_bytes())
            keys.append(key)
        return keys

    def write_partitioned(self, frame: pd.DataFrame, prefix: str, ts_col: str = "ts") -> list[str]:
        """Write ``frame`` as Parquet, one object per day: ``prefix/dt=YYYY-MM-DD/part-00000``.

        The partition column is not stored inside the files (Hive convention: the path has it).
        """
        days = pd.to_datetime(frame[ts_col]).dt.strftime("%Y-%m-%d")
        keys = []
        for day, part in frame.groupby(days, sort=True):
            buf = io.BytesIO()
            table = pa.Table.from_pandas(part.drop(columns=[PARTITION_KEY], errors="ignore"),
                                         preserve_index=False)
            pq.write_table(table, buf, compression="zstd")
            key = partition_path(prefix, str(day))
            self.put_bytes(key, buf.getvalue())
            keys.append(key)
        return keys

    def list_keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def read_parquet(self, prefix: str) -> pd.DataFrame:
        """Read every Parquet object under ``prefix`` back, with the ``dt`` partition column."""
        parts = []
        for key in self.list_keys(prefix):
            body = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
            part = pq.read_table(io.BytesIO(body)).to_pandas()
            day = next(s.split("=", 1)[1] for s in key.split("/") if s.startswith("dt="))
            part[PARTITION_KEY] = day
            parts.append(part)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
