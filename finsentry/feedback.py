"""The deployment's label door: verdict exports dropped under ``feedback/incoming/`` in S3.

A case-management system (or an analyst) drops CSV or JSON-lines files of labels
(``finsentry.labels``: trans_id, verdict, who, when, note) under ``PREFIXES.feedback_inbox``.
``ingest_feedback`` reads every file there through the one validator, then:

* appends the labels not yet in the history to ``feedback/labels/dt=<day received>/`` as one
  Parquet object per run (a label already known — a re-sent export — is not written again);
* writes each file's refused rows, with their reasons, to ``quarantine/feedback/<file>.jsonl``;
* moves the file to ``feedback/processed/`` (re-reading it would change nothing anyway);
* registers the Glue table ``labels`` and its new partitions (``finsentry.lake``), so
  Athena and Tableau see the verdicts next to the scored transactions.

``read_history`` returns the whole history from S3; ``current_verdicts`` of it is what the
evaluation and the supervised candidate read (their ``labels`` input is this prefix).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

import pandas as pd

from finsentry.labels import (
    HISTORY_COLUMNS,
    LabelInputError,
    empty_history,
    merge_labels,
    parse_label_bytes,
    validate_labels,
)
from finsentry.layout import PARTITION_KEY, PREFIXES, partition_path

LABEL_SUFFIXES = (".csv", ".jsonl", ".json")


@dataclass
class FeedbackRun:
    """What one ingestion did; ``received == accepted + rejected`` over the files read."""

    files: int = 0
    received: int = 0
    accepted: int = 0  # valid labels (new or already known)
    new: int = 0
    rejected: int = 0
    unreadable: list[str] = field(default_factory=list)  # files that are not label files at all
    written: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def read_history(s3, bucket: str) -> pd.DataFrame:
    """Every label of the history under ``feedback/labels/`` (empty history when none)."""
    parts = [pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read()))
             for k in _keys(s3, bucket, PREFIXES.feedback_labels) if k.endswith(".parquet")]  # fmt: skip
    if not parts:
        return empty_history()
    frame = pd.concat(parts, ignore_index=True).drop(columns=[PARTITION_KEY], errors="ignore")
    return frame.sort_values("received_at", kind="stable").reset_index(drop=True)[list(HISTORY_COLUMNS)]


def _move(s3, bucket: str, key: str) -> None:
    target = PREFIXES.feedback_processed + key[len(PREFIXES.feedback_inbox):]
    s3.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": key})
    s3.delete_object(Bucket=bucket, Key=key)


def ingest_feedback(s3, bucket: str, glue=None, env: str = "local", now: datetime | None = None) -> FeedbackRun:
    """Read, validate and store every export under ``feedback/incoming/``; see the module doc."""
    stamp = pd.Timestamp(now) if now is not None else pd.Timestamp(datetime.now(UTC))
    clock = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
    run = FeedbackRun()
    history = read_history(s3, bucket)
    known = len(history)
    for key in _keys(s3, bucket, PREFIXES.feedback_inbox):
        if not key.lower().endswith(LABEL_SUFFIXES):
            continue
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        name = PurePosixPath(key).name
        try:
            batch = validate_labels(parse_label_bytes(name, body), now=clock)
        except (LabelInputError, ValueError, UnicodeDecodeError) as exc:
            run.unreadable.append(f"{key}: {exc}")
            _quarantine(s3, bucket, name, clock, [{"row": None, "reason": "unreadable_file", "detail": str(exc)}])
            _move(s3, bucket, key)
            continue
        run.files += 1
        run.received += batch.received
        run.accepted += len(batch.valid)
        run.rejected += len(batch.rejected)
        if len(batch.rejected):
            _quarantine(s3, bucket, name, clock, batch.rejected.to_dict(orient="records"))
        history = merge_labels(history, batch.valid, received_at=clock).history
        _move(s3, bucket, key)
    fresh = history.iloc[known:]
    run.new = len(fresh)
    if run.new:
        day = clock.strftime("%Y-%m-%d")
        digest = hashlib.sha256("".join(fresh["label_id"]).encode()).hexdigest()[:12]
        key = partition_path(PREFIXES.feedback_labels, day).replace("part-00000", f"part-{digest}")
        buffer = io.BytesIO()
        fresh.to_parquet(buffer, index=False)
        s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        run.written.append(key)
        run.partitions.append(day)
    if glue is not None:
        import boto3

        from finsentry import lake

        lake.publish(env, "labels", f"s3://{bucket}", run.partitions, boto3.Session(region_name=glue.meta.region_name))
    return run


def _quarantine(s3, bucket: str, name: str, clock: pd.Timestamp, rows: list[dict]) -> None:
    """``quarantine/feedback/<file>.<UTC time>.jsonl``: one refused row per line, with its reason."""
    body = "\n".join(json.dumps(r, default=str) for r in rows).encode()
    s3.put_object(Bucket=bucket, Key=f"{PREFIXES.feedback_rejected}{name}.{clock:%Y%m%dT%H%M%S}.jsonl", Body=body)
