"""Analyst verdicts on transactions: the one label validator and the label history.

A label is ``(trans_id, verdict, who, when, note)``: ``verdict`` is ``confirmed_fraud``,
``dismissed`` (a false positive: the transaction is normal) or one of the anomaly catalog's
types (``finsentry.anomalies.AnomalyType``, or ``other``): a confirmed anomaly of that kind.
``when`` is the moment the verdict was given (ISO 8601; a time zone is converted to UTC and
dropped, as transaction times are naive); it is also the moment the label becomes KNOWN to the
pipeline, which the label-derived risk features respect (``finsentry.label_risk``).

Every door (``finsentry label`` on the local run, the S3 ``feedback/`` prefix, the HTTPS
endpoint) goes through ``validate_labels``: the valid rows in canonical form, and every bad row
with its reason (``LabelReason``), its detail and the raw record, so nothing is dropped silently
(``len(valid) + len(rejected) == received``).

History: ``merge_labels`` appends the new labels to the history, once each: a label is
identified by the hash of its five fields (``label_id``), so re-sending the same label (a
retried upload, an export sent twice) changes nothing. ``current_verdicts`` gives, per
transaction, the latest verdict (the greatest ``when``; on equal ``when`` the one received
last), while the history keeps every earlier one.

Supervised use: ``is_fraud_verdict`` (confirmed fraud or a confirmed anomaly type = positive;
dismissed = negative) and ``labels_suffice`` (the documented minimum, ``MIN_FRAUDS`` /
``MIN_NEGATIVES``) decide whether the supervised candidate is trained and whether model selection
ranks on real labels.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finsentry.anomalies import OTHER, AnomalyType
from finsentry.schema import is_unicode

CONFIRMED_FRAUD = "confirmed_fraud"
DISMISSED = "dismissed"
VERDICTS: tuple[str, ...] = (CONFIRMED_FRAUD, DISMISSED, *(str(t) for t in AnomalyType), OTHER)
LABEL_COLUMNS: tuple[str, ...] = ("trans_id", "verdict", "who", "when", "note")
REQUIRED_COLUMNS: tuple[str, ...] = ("trans_id", "verdict", "who", "when")
CSV_SEPARATORS = (",", ";", "\t", "|")  # a label CSV's separator: the one that splits its header into the columns
HISTORY_COLUMNS: tuple[str, ...] = (*LABEL_COLUMNS, "label_id", "received_at")
REJECTION_COLUMNS: tuple[str, ...] = ("row", "reason", "detail", "raw")
MAX_ID_CHARS = 128  # trans_id and who
MAX_NOTE_CHARS = 2000
FUTURE_SLACK = pd.Timedelta(hours=1)  # clocks drift: a verdict up to an hour "ahead" is accepted

# The documented minimum for labels to be used (README, user guide): below it the supervised
# candidate is not trained and model selection keeps ranking on the injected validation set.
MIN_FRAUDS = 30  # confirmed frauds (or confirmed anomaly types)
MIN_NEGATIVES = 30  # dismissed alerts


class LabelReason(StrEnum):
    """Why a label row was refused (one per row: the first failing check)."""

    MALFORMED = "malformed"  # not a record (a JSON line that is not an object)
    MISSING_TRANS_ID = "missing_trans_id"
    MISSING_VERDICT = "missing_verdict"
    UNKNOWN_VERDICT = "unknown_verdict"
    MISSING_WHO = "missing_who"
    MISSING_WHEN = "missing_when"
    BAD_WHEN = "bad_when"
    FUTURE_WHEN = "future_when"
    TOO_LONG = "too_long"
    BAD_TEXT = "bad_text"  # a field that is not text: bytes that are not UTF-8, or a lone surrogate (JSON "\ud800")


class LabelInputError(ValueError):
    """A label file that cannot be read as labels at all (no such columns, unknown format)."""


@dataclass
class LabelBatch:
    """``valid``: ``LABEL_COLUMNS`` + ``label_id``; ``rejected``: ``REJECTION_COLUMNS`` (``row``
    is the 0-based position in the input)."""

    valid: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def received(self) -> int:
        return len(self.valid) + len(self.rejected)

    def reason_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.rejected["reason"].value_counts().items()}


def is_fraud_verdict(verdict: pd.Series | np.ndarray | Iterable[str]) -> np.ndarray:
    """True where a verdict confirms fraud or an anomaly, False for ``dismissed``."""
    return np.asarray(pd.Series(list(verdict) if not isinstance(verdict, pd.Series) else verdict,
                                dtype=object).astype(str) != DISMISSED)  # fmt: skip


def label_id(trans_id: str, verdict: str, who: str, when: pd.Timestamp, note: str) -> str:
    """The identity of one label: a SHA-256 of its five fields (re-sent labels share it)."""
    text = "\x1f".join((trans_id, verdict, who, when.isoformat(), note))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    return str(value).strip()


def _when(value: Any) -> pd.Timestamp | None:
    """A naive timestamp (UTC when the input had a zone), or None when unparseable."""
    text = _text(value)
    if not text:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        return None
    if ts is pd.NaT:
        return None
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _check(record: Any, now: pd.Timestamp) -> tuple[dict | None, LabelReason | None, str]:
    """One record: (the canonical label, None, '') or (None, reason, detail)."""
    if not isinstance(record, Mapping):
        expected = ", ".join(LABEL_COLUMNS)
        return None, LabelReason.MALFORMED, f"expected a record of {expected}, got {type(record).__name__}"
    trans_id, verdict = _text(record.get("trans_id")), _text(record.get("verdict")).lower()
    who, note = _text(record.get("who")), _text(record.get("note"))
    for name in LABEL_COLUMNS:
        if not is_unicode(_text(record.get(name))):
            return None, LabelReason.BAD_TEXT, f"{name} holds bytes that are not UTF-8 text (or a lone surrogate)"
    if not trans_id:
        return None, LabelReason.MISSING_TRANS_ID, "trans_id is empty"
    if not verdict:
        return None, LabelReason.MISSING_VERDICT, "verdict is empty"
    if verdict not in VERDICTS:
        return None, LabelReason.UNKNOWN_VERDICT, f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}"
    if not who:
        return None, LabelReason.MISSING_WHO, "who (the analyst or system giving the verdict) is empty"
    if not _text(record.get("when")):
        return None, LabelReason.MISSING_WHEN, "when (the time of the verdict) is empty"
    when = _when(record.get("when"))
    if when is None:
        return None, LabelReason.BAD_WHEN, f"when {_text(record.get('when'))!r} is not an ISO 8601 time"
    if when > now + FUTURE_SLACK:
        detail = f"when {when.isoformat()} is after now ({now.isoformat(timespec='seconds')})"
        return None, LabelReason.FUTURE_WHEN, detail
    for name, value, limit in (("trans_id", trans_id, MAX_ID_CHARS), ("who", who, MAX_ID_CHARS),
                               ("note", note, MAX_NOTE_CHARS)):  # fmt: skip
        if len(value) > limit:
            return None, LabelReason.TOO_LONG, f"{name} has {len(value)} characters (at most {limit})"
    label = {"trans_id": trans_id, "verdict": verdict, "who": who, "when": when, "note": note}
    label["label_id"] = label_id(trans_id, verdict, who, when, note)
    return label, None, ""


def _raw(record: Any) -> str:
    try:
        return json.dumps(record, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return repr(record)


def validate_labels(records: pd.DataFrame | Iterable[Any], now: datetime | pd.Timestamp | None = None) -> LabelBatch:
    """Split label records (a frame, or an iterable of dicts, e.g. parsed JSON) into valid
    canonical labels and rejected rows with reasons; ``now`` (UTC, naive; default the clock)
    bounds ``when``."""
    if isinstance(records, pd.DataFrame):
        missing = [c for c in REQUIRED_COLUMNS if c not in records.columns]
        if missing:
            raise LabelInputError(f"the labels lack the column(s) {', '.join(missing)} "
                                  f"(expected {', '.join(LABEL_COLUMNS)}; note optional)")  # fmt: skip
        rows: list[Any] = records.to_dict(orient="records")
    else:
        rows = list(records)
    clock = pd.Timestamp(now) if now is not None else pd.Timestamp(datetime.now(UTC)).tz_localize(None)
    if clock.tzinfo is not None:
        clock = clock.tz_convert("UTC").tz_localize(None)
    valid, rejected = [], []
    for i, record in enumerate(rows):
        label, reason, detail = _check(record, clock)
        if label is not None:
            valid.append(label)
        else:
            rejected.append({"row": i, "reason": str(reason), "detail": detail, "raw": _raw(record)})
    return LabelBatch(_label_frame(valid), pd.DataFrame(rejected, columns=list(REJECTION_COLUMNS)))


def _label_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*LABEL_COLUMNS, "label_id"])
    frame["when"] = pd.to_datetime(frame["when"])
    return frame


def read_label_file(path: Path) -> list[Any]:
    """A CSV file (header ``trans_id,verdict,who,when[,note]``; separated by ``,``, ``;``, a tab
    or ``|``, whichever splits the header into those columns: exports of European case systems
    use ``;``) or a JSON-lines file
    (``.jsonl``/``.json``) as a list of records for ``validate_labels``. Judged per row, never
    for the whole file: a JSON line that is not JSON stays a string and a CSV row with more fields
    than the header a list (both rejected as malformed), bytes that are not UTF-8 stay escaped
    in their field (rejected as ``bad_text``); a CSV row with fewer fields leaves the rest empty."""
    return parse_label_bytes(path.name, path.read_bytes())


def parse_label_bytes(name: str, body: bytes) -> list[Any]:
    """``read_label_file`` on bytes named ``name`` (an S3 object of the ``feedback/`` prefix)."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    # undecodable bytes become surrogate escapes, which the validator refuses in their own row
    text = body.decode("utf-8-sig", errors="surrogateescape")
    if ".jsonl" in suffixes or ".json" in suffixes:
        out: list[Any] = []
        for line in text.splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    out.append(line)
        return out
    if ".csv" in suffixes:
        first = text.lstrip().split("\n", 1)[0]  # the header says the separator: the one that splits out the columns
        sep = next((d for d in CSV_SEPARATORS if set(REQUIRED_COLUMNS) <= {h.strip() for h in first.split(d)}), ",")
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=sep) if any(f.strip() for f in r)]
        header = [h.strip() for h in rows[0]] if rows else []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise LabelInputError(f"{name}: the labels lack the column(s) {', '.join(missing)} "
                                  f"(expected a header {','.join(LABEL_COLUMNS)}; note optional)")  # fmt: skip
        return [dict(zip(header, r + [""] * (len(header) - len(r)), strict=True)) if len(r) <= len(header) else r
                for r in rows[1:]]  # fmt: skip
    got = "".join(Path(name).suffixes) or "no suffix"
    raise LabelInputError(f"{name}: labels come as .csv or .jsonl (JSON lines), got {got}")


# --- history ---------------------------------------------------------------------------------


def empty_history() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in HISTORY_COLUMNS})
    frame["when"] = pd.to_datetime(frame["when"])
    frame["received_at"] = pd.to_datetime(frame["received_at"])
    return frame


@dataclass
class MergeResult:
    history: pd.DataFrame
    new: int  # labels added to the history
    repeated: int  # labels already in it (or repeated within the batch): nothing changed


def merge_labels(history: pd.DataFrame, valid: pd.DataFrame, received_at: pd.Timestamp | None = None) -> MergeResult:
    """The history with the batch's labels not already in it appended (by ``label_id``), in
    arrival order; ``received_at`` (default now, UTC) stamps the new ones."""
    stamp = received_at if received_at is not None else pd.Timestamp(datetime.now(UTC)).tz_localize(None)
    fresh = valid.drop_duplicates("label_id", keep="first")
    fresh = fresh[~fresh["label_id"].isin(set(history["label_id"]))]
    added = fresh.assign(received_at=stamp)[list(HISTORY_COLUMNS)]
    merged = pd.concat([history, added], ignore_index=True) if len(history) else added.reset_index(drop=True)
    return MergeResult(merged, new=len(added), repeated=len(valid) - len(added))


def current_verdicts(history: pd.DataFrame) -> pd.DataFrame:
    """One row per trans_id: its latest verdict (greatest ``when``, then the last received),
    with ``verdicts`` = how many labels the transaction has had and ``is_fraud``."""
    if history.empty:
        return history.assign(verdicts=pd.Series(dtype="int64"), is_fraud=pd.Series(dtype=bool))
    ordered = history.reset_index(drop=True).reset_index(names="_arrival")
    ordered = ordered.sort_values(["trans_id", "when", "_arrival"], kind="stable")
    counts = ordered.groupby("trans_id", sort=False)["label_id"].transform("size")
    latest = ordered.assign(verdicts=counts).groupby("trans_id", sort=False).tail(1)
    latest = latest.drop(columns="_arrival").sort_values("when", kind="stable").reset_index(drop=True)
    return latest.assign(is_fraud=is_fraud_verdict(latest["verdict"]))


def labels_suffice(current: pd.DataFrame) -> tuple[bool, str]:
    """Whether the current verdicts reach the documented minimum; the reason in words."""
    frauds = int(current["is_fraud"].sum()) if len(current) else 0
    negatives = len(current) - frauds
    ok = frauds >= MIN_FRAUDS and negatives >= MIN_NEGATIVES
    return ok, (f"{frauds} confirmed fraud(s) and {negatives} dismissed alert(s): "
                f"{'enough' if ok else 'below the minimum'} ({MIN_FRAUDS} and {MIN_NEGATIVES})")  # fmt: skip


# --- the local run's label store -----------------------------------------------------------


class LabelStore:
    """The label history of the local run: one Parquet file, ``<out>/feedback/labels.parquet``
    (``finsentry label --out``; the demo's output folder by default). Writes replace the file
    atomically (write beside, then rename)."""

    FILE = Path("feedback") / "labels.parquet"

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / self.FILE

    def history(self) -> pd.DataFrame:
        if not self.path.is_file():
            return empty_history()
        return pd.read_parquet(self.path)

    def add(self, valid: pd.DataFrame) -> MergeResult:
        result = merge_labels(self.history(), valid)
        if result.new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".parquet.partial")
            result.history.to_parquet(partial, index=False)
            os.replace(partial, self.path)
        return result

    def current(self) -> pd.DataFrame:
        return current_verdicts(self.history())


# --- labels in training and evaluation -----------------------------------------------------

INJECTED, ANALYST = "injected", "analyst_labels"  # what model selection ranked on


def history_from_files(files: Iterable[Path]) -> tuple[pd.DataFrame, LabelBatch]:
    """The label history held in files (the pipeline's ``feedback/`` prefix, a job's ``labels``
    channel): a stored history (Parquet with ``label_id``) as it is, exports (CSV, JSON lines)
    through the validator; returns the merged history and the rejected rows of the exports."""
    history, rejected = empty_history(), []
    for path in sorted(Path(p) for p in files):
        if path.suffix.lower() == ".parquet":
            stored = pd.read_parquet(path)
            batch = validate_labels(stored[[c for c in LABEL_COLUMNS if c in stored.columns]]
                                    .astype({"when": str}))  # fmt: skip
        else:
            batch = validate_labels(read_label_file(path))
        history = merge_labels(history, batch.valid).history
        rejected.append(batch.rejected.assign(file=path.name))
    rejects = pd.concat(rejected, ignore_index=True) if rejected else pd.DataFrame(columns=list(REJECTION_COLUMNS))
    return history, LabelBatch(history[list(LABEL_COLUMNS) + ["label_id"]], rejects)


@dataclass
class LabelTruth:
    """The truth of an evaluation period from analysts' verdicts, and whether it is enough."""

    is_anomaly: np.ndarray  # confirmed fraud or anomaly; dismissed and unlabelled rows are normal
    anomaly_type: np.ndarray  # the verdict where confirmed, '' elsewhere
    frauds: int
    dismissed: int
    sufficient: bool
    reason: str


def label_truth(trans_ids: pd.Series, current: pd.DataFrame) -> LabelTruth:
    """Per row of an evaluation period (its ``trans_id``s), the latest verdict: enough when the
    period holds ``MIN_FRAUDS`` confirmed frauds and ``MIN_NEGATIVES`` dismissed alerts."""
    verdict = trans_ids.astype(str).map(current.set_index(current["trans_id"].astype(str))["verdict"]
                                        if len(current) else pd.Series(dtype=object))  # fmt: skip
    labelled = verdict.notna().to_numpy()
    fraud = labelled & is_fraud_verdict(verdict.fillna(DISMISSED))
    matched = current[current["trans_id"].astype(str).isin(set(trans_ids.astype(str)))] if len(current) else current
    ok, why = labels_suffice(matched)
    types = np.where(fraud, verdict.fillna("").astype(str).to_numpy(), "")
    return LabelTruth(fraud, types, int(fraud.sum()), int((labelled & ~fraud).sum()), ok, why)
