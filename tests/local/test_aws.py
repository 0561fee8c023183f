"""The in-process data bucket lays objects out as the deployment does."""

from __future__ import annotations

import boto3
import pandas as pd

from finsentry.layout import PREFIXES, bucket_name
from finsentry.local.aws import LOCAL_REGION, DataBucket, local_aws


def test_partitioned_parquet_round_trips_through_moto_s3(tmp_path):
    frame = pd.DataFrame(
        {
            "trans_id": ["1", "2", "3"],
            "ts": pd.to_datetime(["1998-01-01 10:00", "1998-01-01 12:00", "1998-01-02 09:00"]),
            "score": [0.1, 0.9, 0.5],
        }
    )
    with local_aws():
        bucket = DataBucket.create()
        keys = bucket.write_partitioned(frame, PREFIXES.scored)
        assert [k.rsplit("/", 1)[0] for k in keys] == ["scored/dt=1998-01-01", "scored/dt=1998-01-02"]
        assert all(k.endswith(".parquet") for k in keys)
        glue = boto3.client("glue", region_name=LOCAL_REGION)  # the lake registered the table and its days
        parts = glue.get_partitions(DatabaseName="finsentry_local", TableName="scored")["Partitions"]
        assert sorted(p["Values"][0] for p in parts) == ["1998-01-01", "1998-01-02"]
        back = bucket.read_parquet(PREFIXES.scored).sort_values("trans_id")
        assert back["dt"].tolist() == ["1998-01-01", "1998-01-01", "1998-01-02"]
        assert back["score"].tolist() == [0.1, 0.9, 0.5]
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / "f.txt").write_text("x")
        assert bucket.upload_dir(tmp_path, PREFIXES.raw) == ["raw/a/f.txt"]
        assert bucket.name == bucket_name(env="local", region=LOCAL_REGION)
