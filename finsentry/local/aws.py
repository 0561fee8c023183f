"""In-process AWS (moto) for the local run: the same boto3 calls the deployment makes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pandas as pd
from moto import mock_aws

from finsentry.layout import PARTITION_KEY, bucket_name

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
    env: str = "local"

    @classmethod
    def create(cls, env: str = "local") -> DataBucket:
        s3 = boto3.client("s3", region_name=LOCAL_REGION)
        name = bucket_name(env=env, region=LOCAL_REGION)
        s3.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": LOCAL_REGION}
        )
        return cls(name=name, client=s3, env=env)

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
        """Write ``frame`` as the data-lake table of ``prefix`` (``finsentry.lake.write``: Parquet
        partitioned by day, ``prefix/dt=YYYY-MM-DD/``, with its Glue table and partitions)."""
        from finsentry import lake

        root = f"s3://{self.name}"
        paths = lake.write(frame, self.env, lake.table_of_prefix(prefix), root, self.session(), ts_col=ts_col)
        return sorted(p.removeprefix(f"{root}/") for p in paths)

    def list_keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def read_parquet(self, prefix: str) -> pd.DataFrame:
        """The data-lake table of ``prefix`` back, with its ``dt`` partition column (``finsentry.lake.read``)."""
        from finsentry import lake

        frame = lake.read(self.env, lake.table_of_prefix(prefix), self.session())
        frame[PARTITION_KEY] = frame[PARTITION_KEY].astype(str)
        return frame

    def session(self) -> boto3.Session:
        return boto3.Session(region_name=LOCAL_REGION)
