"""The S3 feedback/ door under moto: exports validated, history appended once, rejects quarantined, Glue table."""

from __future__ import annotations

import json
from datetime import datetime

import boto3
import pandas as pd
import pytest

from finsentry.feedback import ingest_feedback, read_history
from finsentry.labels import current_verdicts
from finsentry.layout import PREFIXES, glue_database_name
from finsentry.local.aws import DataBucket, local_aws

CSV = ("trans_id,verdict,who,when,note\n"
       "T1,confirmed_fraud,case-system,2026-11-30T10:00:00Z,card blocked\n"
       "T2,dismissed,case-system,2026-11-30T11:00:00Z,\n"
       "T3,fraudulent,case-system,2026-11-30T11:00:00Z,\n")  # fmt: skip
JSONL = ('{"trans_id": "T1", "verdict": "dismissed", "who": "ana", "when": "2026-12-01T09:00:00"}\n'
         "not json\n")  # fmt: skip
NOW = datetime(2026, 12, 2, 12, 0)


@pytest.fixture
def aws():
    with local_aws():
        bucket = DataBucket.create()
        yield bucket.client, bucket.name, boto3.client("glue", region_name="eu-west-1")


def test_exports_become_one_history_with_reasons_for_bad_rows_and_a_glue_table(aws):
    s3, bucket, glue = aws
    s3.put_object(Bucket=bucket, Key=f"{PREFIXES.feedback_inbox}export-1.csv", Body=CSV.encode())
    s3.put_object(Bucket=bucket, Key=f"{PREFIXES.feedback_inbox}2026/12/export-2.jsonl", Body=JSONL.encode())
    run = ingest_feedback(s3, bucket, glue, env="local", now=NOW)
    assert (run.files, run.received, run.accepted, run.rejected, run.new) == (2, 5, 3, 2, 3)
    assert run.received == run.accepted + run.rejected
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=PREFIXES.feedback_rejected)["Contents"]]
    rejected = [json.loads(line) for key in keys
                for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()]  # fmt: skip
    assert sorted(r["reason"] for r in rejected) == ["malformed", "unknown_verdict"]
    assert not s3.list_objects_v2(Bucket=bucket, Prefix=PREFIXES.feedback_inbox).get("Contents")  # moved
    assert len(s3.list_objects_v2(Bucket=bucket, Prefix=PREFIXES.feedback_processed)["Contents"]) == 2
    current = current_verdicts(read_history(s3, bucket)).set_index("trans_id")
    assert current.loc["T1", "verdict"] == "dismissed" and current.loc["T1", "verdicts"] == 2
    table = glue.get_table(DatabaseName=glue_database_name("local"), Name="labels")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{bucket}/{PREFIXES.feedback_labels}"
    assert {c["Name"] for c in table["StorageDescriptor"]["Columns"]} >= {"trans_id", "verdict", "when"}
    partitions = glue.get_partitions(DatabaseName=glue_database_name("local"), TableName="labels")["Partitions"]
    assert [p["Values"] for p in partitions] == [["2026-12-02"]]


def test_a_re_sent_export_adds_nothing_and_an_unreadable_file_is_quarantined(aws):
    s3, bucket, glue = aws
    s3.put_object(Bucket=bucket, Key=f"{PREFIXES.feedback_inbox}export-1.csv", Body=CSV.encode())
    ingest_feedback(s3, bucket, glue, now=NOW)
    s3.put_object(Bucket=bucket, Key=f"{PREFIXES.feedback_inbox}export-1-again.csv", Body=CSV.encode())
    s3.put_object(Bucket=bucket, Key=f"{PREFIXES.feedback_inbox}broken.csv", Body=b"a,b\n1,2\n")
    run = ingest_feedback(s3, bucket, glue, now=NOW)
    assert (run.files, run.accepted, run.new, run.written) == (1, 2, 0, [])
    assert len(run.unreadable) == 1 and "lack the column" in run.unreadable[0]
    assert len(read_history(s3, bucket)) == 2
    history = pd.DataFrame(read_history(s3, bucket))
    assert history["label_id"].is_unique
