"""The S3 label door's handler: EventBridge "Object Created" and schedule events under moto (S3 + Glue)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from finsentry.feedback import read_history
from finsentry.layout import FEEDBACK_ENV, PREFIXES, glue_database_name
from finsentry.local.aws import LOCAL_REGION, DataBucket, local_aws
from lambdas.feedback_ingest import handler as module
from tests.lambdas import LambdaContext, create_profiles_table, seed_alert_index

CSV = ("trans_id,verdict,who,when,note\n"
       "T1,confirmed_fraud,case-system,2026-11-30T10:00:00Z,card blocked\n"
       "T2,maybe,case-system,2026-11-30T11:00:00Z,\n")  # fmt: skip


CONTEXT = LambdaContext("finsentry-dev-feedback-ingest")


@pytest.fixture
def door(monkeypatch):
    with local_aws():
        bucket = DataBucket.create("dev")
        glue = boto3.client("glue", region_name=LOCAL_REGION)
        glue.create_database(DatabaseInput={"Name": glue_database_name("dev")})  # the CDK app's
        monkeypatch.setenv(FEEDBACK_ENV.data_bucket, bucket.name)
        monkeypatch.setenv(FEEDBACK_ENV.env, "dev")
        monkeypatch.setenv(FEEDBACK_ENV.profiles_table, create_profiles_table())
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "feedback-ingest")
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        module._door = None
        yield bucket, glue
        module._door = None


def created(bucket: str, key: str) -> dict:
    return {"version": "0", "source": "aws.s3", "detail-type": "Object Created", "account": "111122223333",
            "region": LOCAL_REGION, "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "size": 1},
                       "reason": "PutObject"}}  # fmt: skip


SCHEDULE = {"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_an_object_created_event_ingests_that_export_and_emits_the_counts(door, capsys):
    bucket, glue = door
    key = f"{PREFIXES.feedback_inbox}2026/12/export.csv"
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=CSV.encode())
    counts = module.handler(created(bucket.name, key), CONTEXT)
    assert counts == {"files": 1, "received": 2, "accepted": 1, "new": 1, "rejected": 1, "unreadable": 0, "gone": 0,
                      "unresolved": 1, "risk_write_failures": 0}  # T1: no alert index entry in this table
    assert list(read_history(bucket.client, bucket.name)["trans_id"]) == ["T1"]
    quarantined = bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=PREFIXES.feedback_rejected)["Contents"]
    assert len(quarantined) == 1
    partitions = glue.get_partitions(DatabaseName=glue_database_name("dev"), TableName="labels")["Partitions"]
    assert len(partitions) == 1
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line][-1]
    assert (emf["LabelsReceived"], emf["LabelsAccepted"], emf["LabelsRejected"]) == ([2.0], [1.0], [1.0])
    assert emf["service"] == "feedback-ingest"


def test_the_schedule_sweeps_the_inbox_and_an_unreadable_file_is_counted(door, capsys):
    bucket, _ = door
    bucket.client.put_object(Bucket=bucket.name, Key=f"{PREFIXES.feedback_inbox}a.csv", Body=CSV.encode())
    bucket.client.put_object(Bucket=bucket.name, Key=f"{PREFIXES.feedback_inbox}b.csv", Body=b"x,y\n1,2\n")
    counts = module.handler(SCHEDULE, CONTEXT)
    assert (counts["files"], counts["unreadable"], counts["new"]) == (1, 1, 1)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line][-1]
    assert emf["FeedbackFilesUnreadable"] == [1.0]
    assert not bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=PREFIXES.feedback_inbox).get("Contents")


def test_a_missing_variable_fails_the_invocation_with_its_name(door, monkeypatch):
    monkeypatch.delenv(FEEDBACK_ENV.data_bucket)
    with pytest.raises(Exception, match="DATA_BUCKET"):
        module.handler(SCHEDULE, CONTEXT)


def test_the_handler_is_thin():
    text = Path(module.__file__).read_text()
    code = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(code) < 40 and "boto3" not in text and "validate_labels" not in text


def test_a_verdict_on_an_alerted_transaction_reaches_the_streams_risk_and_others_are_counted(door, capsys):
    """The stream's side of the door: T1 was alerted (the scorer's index knows its account and
    partner), T3 was not: T1's verdict is in the risk items, T3's counted as unresolved."""
    bucket, _ = door
    seed_alert_index("finsentry-dev-profiles", {"T1": ("A1", "BK/P1")})
    body = CSV.replace("T2,maybe", "T3,dismissed").encode()
    bucket.client.put_object(Bucket=bucket.name, Key=f"{PREFIXES.feedback_inbox}x.csv", Body=body)
    counts = module.handler(SCHEDULE, CONTEXT)
    assert (counts["accepted"], counts["unresolved"], counts["risk_write_failures"]) == (2, 1, 0)
    ddb = boto3.client("dynamodb", region_name=LOCAL_REGION)
    keys = {i["account_id"]["S"] for i in ddb.scan(TableName="finsentry-dev-profiles")["Items"]}
    assert {"risk#account#A1", "risk#partner#BK/P1"} <= keys
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line][-1]
    assert emf["LabelsUnresolved"] == [1.0] and emf["RiskWriteFailures"] == [0.0]
