"""The deployment's label doors: verdict exports under ``feedback/incoming/`` and the HTTPS endpoint.

Both doors validate with the one validator (``finsentry.labels.validate_labels``) and store the
accepted labels with ONE write path, ``store_labels``: the labels not yet in the history are
appended to ``feedback/labels/dt=<day received>/`` as one Parquet object named by the digest of
their ``label_id``s (a re-sent batch writes nothing; the same batch written twice at once writes
the same object). ``read_history`` drops a ``label_id`` seen twice (two doors receiving the same
label at the same moment), so the history stays one row per label.

* **S3 door** (``ingest_feedback``, the ``feedback_ingest`` Lambda): a case-management system (or
  an analyst) drops CSV or JSON-lines files of labels (trans_id, verdict, who, when, note) under
  ``PREFIXES.feedback_inbox``. Every file (or only the ``keys`` an S3 event names) is read
  through the validator; its refused rows go with their reasons to
  ``quarantine/feedback/<file>.<time>.jsonl``; the file moves to ``feedback/processed/``. The run
  then registers in the Glue table ``labels`` every day partition of the history not yet
  registered (also the days the HTTPS door wrote), so Athena and Tableau see the verdicts; the
  sweep (no ``keys``) also folds each earlier day's files into one (``compact_label_days``).
* **HTTPS door** (``submit_labels``, the ``label_api`` Lambda behind API Gateway): a JSON body
  holding one label object or a list of them; per-row results (accepted, new or already known,
  or rejected with the reason); a body that is not that is one ``LabelBodyError``. It writes
  ``feedback/labels/`` only: its rejects go back to the caller, its new days are registered by
  the next ingest run (scheduled).

Both doors then feed the accepted labels (new or already known: a re-sent label repairs, and
counts once) into the stream's label-derived risk (``finsentry.stream.risk.record_verdicts``: the
risk items of the transactions' accounts and partners in the profiles table, which the stream
scorer reads to serve the supervised candidate). A verdict on a transaction the scorer's alert
index does not know is *unresolved*: in the history, not in the stream's risk; counted
(``unresolved``, metric ``LabelsUnresolved``) and logged with its trans_id.

``current_verdicts(read_history(...))`` is what the evaluation and the supervised candidate read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

import pandas as pd

from finsentry.labels import (
    HISTORY_COLUMNS,
    LabelInputError,
    empty_history,
    merge_labels,
    parse_label_bytes,
    validate_labels,
)
from finsentry.layout import FEEDBACK_ENV, PARTITION_KEY, PREFIXES, partition_path
from finsentry.monitoring import Metric
from finsentry.stream.risk import RiskUpdate, record_verdicts

LABEL_SUFFIXES = (".csv", ".jsonl", ".json")
MAX_LABELS_PER_REQUEST = 1000  # the HTTPS door; larger batches go through the S3 prefix
READ_THREADS = 16  # concurrent GETs when reading the history's files
_DAY = re.compile(rf"{PARTITION_KEY}=(\d{{4}}-\d{{2}}-\d{{2}})/")


@dataclass
class FeedbackRun:
    """What one ingestion did; ``received == accepted + rejected`` over the files read."""

    files: int = 0
    received: int = 0
    accepted: int = 0  # valid labels (new or already known)
    new: int = 0
    rejected: int = 0
    unreadable: list[str] = field(default_factory=list)  # files that are not label files at all
    gone: list[str] = field(default_factory=list)  # event keys already taken by another run
    written: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)  # days registered in the Glue table by this run
    compacted: dict[str, int] = field(default_factory=dict)  # the sweep: day -> label files folded into one
    risk: RiskUpdate | None = None  # the stream's risk fed (None: no profiles table given)

    def counts(self) -> dict[str, int]:
        out = {"files": self.files, "received": self.received, "accepted": self.accepted, "new": self.new,
               "rejected": self.rejected, "unreadable": len(self.unreadable), "gone": len(self.gone)}  # fmt: skip
        return {**out, **_risk_counts(self.risk)}


def _risk_counts(risk: RiskUpdate | None) -> dict[str, int]:
    """The stream-risk counts of a door's run or request (none without a profiles table)."""
    if risk is None:
        return {}
    return {"unresolved": len(risk.unresolved), "risk_write_failures": len(risk.failed)}


# --- the one write path -----------------------------------------------------------------------------


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _history_keys(s3, bucket: str) -> list[str]:
    return [k for k in _keys(s3, bucket, PREFIXES.feedback_labels) if k.endswith(".parquet")]


def _read_parts(s3, bucket: str, keys: list[str]) -> pd.DataFrame:
    """The label files ``keys`` as one frame, one row per ``label_id`` (read concurrently)."""
    def one(key: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        parts = list(pool.map(one, keys))
    if not parts:
        return empty_history()
    frame = pd.concat(parts, ignore_index=True).drop(columns=[PARTITION_KEY], errors="ignore")
    frame = frame.sort_values("received_at", kind="stable").drop_duplicates("label_id", keep="first")
    return frame.reset_index(drop=True)[list(HISTORY_COLUMNS)]


def read_history(s3, bucket: str) -> pd.DataFrame:
    """Every label of the history under ``feedback/labels/``, once each (empty history when none)."""
    return _read_parts(s3, bucket, _history_keys(s3, bucket))


def compact_label_days(s3, bucket: str, before: str) -> dict[str, int]:
    """Fold the label files of each day before ``before`` (YYYY-MM-DD) into one file per day (the
    sweep's housekeeping: every request and export adds a small file, and every writer reads the
    history). Only the files read are deleted, after the folded one is written: a reader in
    between sees labels twice and keeps one; a file written meanwhile (not read) stays.
    Returns day -> files folded."""
    by_day: dict[str, list[str]] = {}
    for key in _history_keys(s3, bucket):
        if (m := _DAY.search(key)) and m.group(1) < before:
            by_day.setdefault(m.group(1), []).append(key)
    folded = {}
    for day, keys in sorted(by_day.items()):
        if len(keys) < 2:
            continue
        frame = _read_parts(s3, bucket, keys)
        digest = hashlib.sha256("".join(frame["label_id"]).encode()).hexdigest()[:12]
        target = partition_path(PREFIXES.feedback_labels, day).replace("part-00000", f"part-{digest}")
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        s3.put_object(Bucket=bucket, Key=target, Body=buffer.getvalue())
        for key in keys:
            if key != target:
                s3.delete_object(Bucket=bucket, Key=key)
        folded[day] = len(keys)
    return folded


def label_days(s3, bucket: str) -> list[str]:
    """The ``dt`` days holding label files (the Glue table's partitions, registered or not)."""
    return sorted({m.group(1) for k in _history_keys(s3, bucket) if (m := _DAY.search(k))})


@dataclass
class StoredLabels:
    """What ``store_labels`` did: the ids it appended, the ids already known, the object written."""

    new_ids: list[str]
    known_ids: list[str]
    key: str | None  # None when nothing was new
    day: str


def _clock(now: datetime | pd.Timestamp | None) -> pd.Timestamp:
    """Naive UTC (the labels' time convention)."""
    stamp = pd.Timestamp(now) if now is not None else pd.Timestamp(datetime.now(UTC))
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def store_labels(s3, bucket: str, valid: pd.DataFrame, received_at: pd.Timestamp,
                 history: pd.DataFrame | None = None) -> StoredLabels:  # fmt: skip
    """Append the labels of ``valid`` (validated, with ``label_id``) not in the history to
    ``feedback/labels/dt=<day of received_at>/part-<digest>.parquet``; both doors write here."""
    history = read_history(s3, bucket) if history is None else history
    before = set(history["label_id"])
    fresh = merge_labels(history, valid, received_at=received_at).history.iloc[len(history):]
    day = received_at.strftime("%Y-%m-%d")
    ids = list(dict.fromkeys(valid["label_id"]))
    stored = StoredLabels(new_ids=list(fresh["label_id"]), known_ids=[i for i in ids if i in before], key=None, day=day)
    if len(fresh):
        digest = hashlib.sha256("".join(fresh["label_id"]).encode()).hexdigest()[:12]
        stored.key = partition_path(PREFIXES.feedback_labels, day).replace("part-00000", f"part-{digest}")
        buffer = io.BytesIO()
        fresh.to_parquet(buffer, index=False)
        s3.put_object(Bucket=bucket, Key=stored.key, Body=buffer.getvalue())
    return stored


# --- the S3 door -----------------------------------------------------------------------------------


def _move(s3, bucket: str, key: str) -> None:
    target = PREFIXES.feedback_processed + key[len(PREFIXES.feedback_inbox):]
    s3.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": key})
    s3.delete_object(Bucket=bucket, Key=key)


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "404", "NotFound")


def event_keys(event: dict[str, Any]) -> list[str] | None:
    """The inbox key an EventBridge "Object Created" event names; None for anything else (the
    schedule): read the whole inbox. S3's classic notifications URL-encode keys (a space as
    ``+``), AWS's EventBridge example shows the key as written (a ``:`` left as is): the key as
    sent comes first and its decoded form second when they differ; whichever does not exist is
    counted as ``gone``."""
    if event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created":
        raw = str(event.get("detail", {}).get("object", {}).get("key", ""))
        keys = list(dict.fromkeys([raw, unquote_plus(raw)]))
        return [k for k in keys if k.startswith(PREFIXES.feedback_inbox)]
    return None


def ingest_feedback(s3, bucket: str, glue=None, env: str = "local", now: datetime | None = None,
                    keys: Iterable[str] | None = None, risk=None) -> FeedbackRun:  # fmt: skip
    """Read, validate and store the exports under ``feedback/incoming/`` (all, or ``keys``);
    feed the stream's risk (with ``risk``, a ``ProfileStore`` on the profiles table); then
    register the label days the Glue table lacks (with ``glue``); see the module doc."""
    clock = _clock(now)
    run = FeedbackRun()
    history = read_history(s3, bucket)
    batches = []
    inbox = _keys(s3, bucket, PREFIXES.feedback_inbox) if keys is None else list(dict.fromkeys(keys))
    for key in inbox:
        if not key.lower().endswith(LABEL_SUFFIXES) or not key.startswith(PREFIXES.feedback_inbox):
            continue
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # noqa: BLE001 - only "already taken" is expected; anything else re-raised
            if not _is_missing(exc):
                raise
            run.gone.append(key)
            continue
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
        batches.append(batch.valid)
        _move(s3, bucket, key)
    if batches:
        stored = store_labels(s3, bucket, pd.concat(batches, ignore_index=True), clock, history)
        run.new = len(stored.new_ids)
        run.written += [stored.key] if stored.key else []
        if risk is not None:
            run.risk = record_verdicts(risk, pd.concat(batches, ignore_index=True), clock)
    if keys is None:  # the sweep: earlier days' small files folded (today's may still be written)
        run.compacted = compact_label_days(s3, bucket, before=clock.strftime("%Y-%m-%d"))
    if glue is not None:
        run.partitions = register_label_days(s3, bucket, glue, env)
    return run


def register_label_days(s3, bucket: str, glue, env: str) -> list[str]:
    """Register in the Glue table ``labels`` the days of the history it lacks (creating the
    table on the local run; the deployment's table comes from the CDK app); returns them."""
    import boto3

    from finsentry import lake

    session = boto3.Session(region_name=glue.meta.region_name)
    days = label_days(s3, bucket)
    if not lake.has_table(env, lake.LABELS_TABLE, session):
        lake.publish(env, lake.LABELS_TABLE, f"s3://{bucket}", days, session)
        return days
    missing = sorted(set(days) - set(lake.registered_days(env, lake.LABELS_TABLE, session)))
    lake.add_partitions(env, lake.LABELS_TABLE, f"s3://{bucket}", missing, session)
    return missing


def _quarantine(s3, bucket: str, name: str, clock: pd.Timestamp, rows: list[dict]) -> None:
    """``quarantine/feedback/<file>.<UTC time>.jsonl``: one refused row per line, with its reason."""
    body = "\n".join(json.dumps(r, default=str) for r in rows).encode()
    s3.put_object(Bucket=bucket, Key=f"{PREFIXES.feedback_rejected}{name}.{clock:%Y%m%dT%H%M%S}.jsonl", Body=body)


# --- the HTTPS door --------------------------------------------------------------------------------


class LabelBodyError(ValueError):
    """A request body that is not one label object or a list of them (HTTP 400, one line)."""


def parse_label_body(body: str | bytes | None) -> list[Any]:
    """The label records of a request body: a JSON object (one label) or a non-empty list."""
    if body is None or not (body.strip() if isinstance(body, str) else body.strip()):
        raise LabelBodyError("the body is empty: send one label as a JSON object or a list of them")
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        raise LabelBodyError(f"the body is not JSON ({exc.msg} at character {exc.pos}): send one label as a "
                             "JSON object or a list of them") from None  # fmt: skip
    except UnicodeDecodeError:
        raise LabelBodyError("the body is not UTF-8 text: send JSON") from None
    if isinstance(parsed, dict):
        return [parsed]
    if not isinstance(parsed, list):
        raise LabelBodyError(f"the body is a JSON {type(parsed).__name__}: send one label as a JSON object "
                             "or a list of them")  # fmt: skip
    if not parsed:
        raise LabelBodyError("the body is an empty list: send at least one label")
    if len(parsed) > MAX_LABELS_PER_REQUEST:
        raise LabelBodyError(f"the body holds {len(parsed)} labels, at most {MAX_LABELS_PER_REQUEST} per request: "
                             f"split it, or drop a file under {PREFIXES.feedback_inbox} of the data bucket")
    return parsed


@dataclass
class Submission:
    """The answer to one request: a result per row, in the body's order, and the counts
    (``received == accepted + rejected``; ``accepted == new + already_known``)."""

    results: list[dict[str, Any]]
    written: str | None
    risk: RiskUpdate | None = None  # the stream's risk fed (None: no profiles table given)

    def counts(self) -> dict[str, int]:
        accepted = [r for r in self.results if r["status"] == "accepted"]
        new = sum(bool(r["new"]) for r in accepted)
        return {"received": len(self.results), "accepted": len(accepted), "rejected": len(self.results) - len(accepted),
                "new": new, "already_known": len(accepted) - new, **_risk_counts(self.risk)}  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        extra = {"unresolved_trans_ids": self.risk.unresolved} if self.risk is not None else {}
        return {**self.counts(), **extra, "results": self.results}


def submit_labels(s3, bucket: str, body: str | bytes | None, now: datetime | None = None, risk=None) -> Submission:
    """The HTTPS door: validate the body's labels, store the new ones, feed the stream's risk
    (with ``risk``, a ``ProfileStore``), say what became of each row."""
    clock = _clock(now)
    records = parse_label_body(body)
    batch = validate_labels(records, now=clock)
    stored = store_labels(s3, bucket, batch.valid, clock) if len(batch.valid) else None
    fed = record_verdicts(risk, batch.valid, clock) if risk is not None else None
    new = set(stored.new_ids) if stored else set()
    results: list[dict[str, Any] | None] = [None] * len(records)
    valid_rows = [i for i in range(len(records)) if i not in set(batch.rejected["row"])]
    for i, label in zip(valid_rows, batch.valid.to_dict(orient="records"), strict=True):
        first = label["label_id"] in new
        new.discard(label["label_id"])  # a label repeated within the body is new once
        results[i] = {"row": i, "status": "accepted", "trans_id": label["trans_id"], "verdict": label["verdict"],
                      "label_id": label["label_id"], "new": first}  # fmt: skip
    for rejected in batch.rejected.to_dict(orient="records"):
        row = int(rejected["row"])
        results[row] = {"row": row, "status": "rejected", "reason": rejected["reason"], "detail": rejected["detail"]}
    return Submission(results=[r for r in results if r is not None], written=stored.key if stored else None, risk=fed)


# --- what the two doors' Lambdas share --------------------------------------------------------------

# the counts of a run or a request -> the metrics the handlers emit (dimension service = the door)
DOOR_METRICS = {"received": Metric.LABELS_RECEIVED, "accepted": Metric.LABELS_ACCEPTED, "new": Metric.LABELS_NEW,
                "rejected": Metric.LABELS_REJECTED, "unreadable": Metric.FEEDBACK_UNREADABLE,
                "unresolved": Metric.LABELS_UNRESOLVED, "risk_write_failures": Metric.RISK_WRITE_FAILED}  # fmt: skip


def door_metrics(counts: dict[str, int]) -> dict[str, int]:
    """Metric name -> value of a run's (``FeedbackRun.counts``) or a request's counts."""
    return {str(metric): int(counts[key]) for key, metric in DOOR_METRICS.items() if key in counts}


class FeedbackConfigError(RuntimeError):
    """A label-door Lambda started without its environment (a deployment error, named once)."""


@dataclass
class Door:
    """A door Lambda's settings and clients, built once per container."""

    bucket: str
    env: str
    s3: Any
    glue: Any
    risk: Any  # ProfileStore on the scorer's profiles table: the stream's label-derived risk


def door_from_environment(environ: dict[str, str] | None = None) -> Door:
    """The bucket, deployment and profiles table from ``FEEDBACK_ENV``'s variables, with S3,
    Glue and DynamoDB clients."""
    environ = os.environ if environ is None else environ
    names = (FEEDBACK_ENV.data_bucket, FEEDBACK_ENV.env, FEEDBACK_ENV.profiles_table)
    missing = [n for n in names if not environ.get(n)]
    if missing:
        raise FeedbackConfigError(f"the label door needs the environment variable(s) {', '.join(missing)}")
    import boto3

    from finsentry.stream.profiles import ProfileStore

    return Door(bucket=environ[FEEDBACK_ENV.data_bucket], env=environ[FEEDBACK_ENV.env],
                s3=boto3.client("s3"), glue=boto3.client("glue"),
                risk=ProfileStore(boto3.client("dynamodb"), environ[FEEDBACK_ENV.profiles_table]))  # fmt: skip
