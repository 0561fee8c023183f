"""The S3 feedback/ door under moto: exports validated, history appended once, rejects quarantined, Glue table."""

from __future__ import annotations

import json
from datetime import datetime

import boto3
import pandas as pd
import pytest

from finsentry.feedback import (
    FeedbackConfigError,
    LabelBodyError,
    compact_label_days,
    door_from_environment,
    door_metrics,
    event_keys,
    ingest_feedback,
    read_history,
    store_labels,
    submit_labels,
)
from finsentry.labels import current_verdicts, empty_history, validate_labels
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


# --- one write path for both doors; the HTTPS door's core --------------------------------------------

GOOD = {"trans_id": "T9", "verdict": "confirmed_fraud", "who": "case-system", "when": "2026-12-01T08:00:00Z"}


def _label(i: int, verdict: str = "dismissed") -> dict:
    return {"trans_id": f"T{i}", "verdict": verdict, "who": "case-system", "when": "2026-12-01T08:00:00"}


def test_a_list_body_is_stored_once_with_a_result_per_row_and_a_resend_adds_nothing(aws):
    s3, bucket, _ = aws
    body = json.dumps([_label(1, "confirmed_fraud"), _label(2), _label(3, "fraudulent"), _label(1, "confirmed_fraud")])
    first = submit_labels(s3, bucket, body, now=NOW)
    assert first.counts() == {"received": 4, "accepted": 3, "rejected": 1, "new": 2, "already_known": 1}
    assert [r["status"] for r in first.results] == ["accepted", "accepted", "rejected", "accepted"]
    assert [r.get("new") for r in first.results] == [True, True, None, False]  # repeated in the body: new once
    assert first.results[2]["reason"] == "unknown_verdict" and "fraudulent" in first.results[2]["detail"]
    assert first.written and first.written.startswith(f"{PREFIXES.feedback_labels}dt=2026-12-02/part-")
    again = submit_labels(s3, bucket, body, now=NOW)
    assert again.counts() == {"received": 4, "accepted": 3, "rejected": 1, "new": 0, "already_known": 3}
    assert again.written is None
    assert sorted(read_history(s3, bucket)["trans_id"]) == ["T1", "T2"]
    counts = again.counts()
    assert counts["received"] == counts["accepted"] + counts["rejected"] == len(again.results)
    assert counts["accepted"] == counts["new"] + counts["already_known"]


def test_one_object_is_one_label_and_both_doors_share_the_history(aws):
    s3, bucket, glue = aws
    assert submit_labels(s3, bucket, json.dumps(GOOD).encode(), now=NOW).counts()["new"] == 1
    csv = "trans_id,verdict,who,when\nT9,confirmed_fraud,case-system,2026-12-01T08:00:00Z\n"
    s3.put_object(Bucket=bucket, Key=f"{PREFIXES.feedback_inbox}same.csv", Body=csv.encode())
    run = ingest_feedback(s3, bucket, glue, now=NOW)
    assert (run.accepted, run.new) == (1, 0)  # the S3 door knows the label the HTTPS door stored
    assert len(read_history(s3, bucket)) == 1


@pytest.mark.parametrize(("body", "says"), [
    ("{not json", "not JSON"), ("", "empty"), (None, "empty"), ("[]", "empty list"), ('"T1"', "JSON str"),
    ("42", "JSON int"), (json.dumps([GOOD] * 1001), "at most 1000"),
])  # fmt: skip
def test_a_bad_body_is_one_clear_error_and_nothing_is_written(aws, body, says):
    s3, bucket, _ = aws
    with pytest.raises(LabelBodyError) as err:
        submit_labels(s3, bucket, body, now=NOW)
    assert says in str(err.value) and "\n" not in str(err.value)
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="feedback/").get("Contents")


def test_a_label_written_twice_at_once_is_read_once(aws):
    """Two doors storing the same label at the same moment: two objects, one history row."""
    s3, bucket, _ = aws
    batch = validate_labels([GOOD], now=NOW).valid
    stamp = pd.Timestamp(NOW)
    first = store_labels(s3, bucket, batch, stamp, history=read_history(s3, bucket))
    other = store_labels(s3, bucket, pd.concat([batch, validate_labels([_label(5)], now=NOW).valid]), stamp,
                         history=empty_history())  # fmt: skip - a run that had not seen the first write
    assert first.key != other.key
    history = read_history(s3, bucket)
    assert sorted(history["trans_id"]) == ["T5", "T9"] and history["label_id"].is_unique


def test_an_event_names_one_export_and_a_schedule_the_whole_inbox(aws):
    s3, bucket, glue = aws
    for name in ("a b.csv", "other.csv"):
        s3.put_object(Bucket=bucket, Key=f"{PREFIXES.feedback_inbox}{name}", Body=CSV.encode())
    created = {"source": "aws.s3", "detail-type": "Object Created",
               "detail": {"bucket": {"name": bucket}, "object": {"key": f"{PREFIXES.feedback_inbox}a+b.csv"}}}
    assert event_keys(created) == [f"{PREFIXES.feedback_inbox}a+b.csv", f"{PREFIXES.feedback_inbox}a b.csv"]
    assert event_keys({"source": "aws.events", "detail-type": "Scheduled Event"}) is None
    elsewhere = {**created, "detail": {"object": {"key": f"{PREFIXES.raw}x.csv"}}}
    assert event_keys(elsewhere) == []
    run = ingest_feedback(s3, bucket, glue, now=NOW, keys=event_keys(created))
    assert (run.files, run.new, run.gone) == (1, 2, [f"{PREFIXES.feedback_inbox}a+b.csv"])  # the encoded form
    inbox = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=PREFIXES.feedback_inbox)["Contents"]]
    assert inbox == [f"{PREFIXES.feedback_inbox}other.csv"]
    late = ingest_feedback(s3, bucket, glue, now=NOW, keys=event_keys(created))  # its file taken meanwhile
    assert len(late.gone) == 2 and late.files == 0
    sweep = ingest_feedback(s3, bucket, glue, now=NOW, keys=event_keys({"source": "aws.events"}))
    assert (sweep.files, sweep.new) == (1, 0)
    assert not s3.list_objects_v2(Bucket=bucket, Prefix=PREFIXES.feedback_inbox).get("Contents")


def test_the_next_ingest_registers_the_days_the_https_door_wrote(aws):
    s3, bucket, glue = aws
    database = glue_database_name("local")
    s3.put_object(Bucket=bucket, Key=f"{PREFIXES.feedback_inbox}export-1.csv", Body=CSV.encode())
    ingest_feedback(s3, bucket, glue, now=NOW)  # creates the table, registers 2026-12-02
    submit_labels(s3, bucket, json.dumps(GOOD), now=datetime(2026, 12, 3, 9, 0))  # S3 only, no Glue
    run = ingest_feedback(s3, bucket, glue, now=datetime(2026, 12, 3, 10, 0))  # the hourly sweep, empty inbox
    assert run.partitions == ["2026-12-03"]
    partitions = glue.get_partitions(DatabaseName=database, TableName="labels")["Partitions"]
    assert sorted(p["Values"][0] for p in partitions) == ["2026-12-02", "2026-12-03"]
    assert ingest_feedback(s3, bucket, glue, now=datetime(2026, 12, 3, 11, 0)).partitions == []


def test_the_door_names_its_missing_environment():
    with pytest.raises(FeedbackConfigError, match="DATA_BUCKET"):
        door_from_environment({"FINSENTRY_ENV": "dev"})
    assert door_metrics({"received": 3, "accepted": 2, "rejected": 1, "new": 2, "already_known": 0}) == {
        "LabelsReceived": 3, "LabelsAccepted": 2, "LabelsNew": 2, "LabelsRejected": 1}


def test_the_sweep_folds_earlier_days_into_one_file_and_keeps_every_label_once(aws):
    s3, bucket, glue = aws
    day1, day2 = datetime(2026, 12, 1, 9, 0), datetime(2026, 12, 2, 9, 0)
    for i in range(3):
        submit_labels(s3, bucket, json.dumps(_label(i)), now=day1)
    submit_labels(s3, bucket, json.dumps(_label(7)), now=day2)
    submit_labels(s3, bucket, json.dumps(_label(8)), now=day2)
    before = read_history(s3, bucket)

    def files(day: str) -> list[str]:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIXES.feedback_labels}dt={day}/")
        return [o["Key"] for o in listing.get("Contents", [])]

    assert (len(files("2026-12-01")), len(files("2026-12-02"))) == (3, 2)
    run = ingest_feedback(s3, bucket, glue, now=datetime(2026, 12, 2, 10, 0))  # the sweep
    assert run.compacted == {"2026-12-01": 3}
    assert (len(files("2026-12-01")), len(files("2026-12-02"))) == (1, 2)  # today's still written to: left
    after = read_history(s3, bucket)
    pd.testing.assert_frame_equal(before.sort_values("label_id").reset_index(drop=True),
                                  after.sort_values("label_id").reset_index(drop=True))  # fmt: skip
    assert compact_label_days(s3, bucket, before="2026-12-02") == {}  # nothing left to fold
    event = {"source": "aws.s3", "detail-type": "Object Created",
             "detail": {"object": {"key": f"{PREFIXES.feedback_inbox}none.csv"}}}  # fmt: skip
    assert ingest_feedback(s3, bucket, glue, now=datetime(2026, 12, 3), keys=event_keys(event)).compacted == {}
