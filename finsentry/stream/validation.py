"""A fast path in front of ``finsentry.schema.validate_records`` for stream batches.

``validate_records`` checks a batch column by column through pandas, with Python callbacks per
value: about 0.2 ms per record, the largest cost of a streaming batch. Almost every record on
a stream is well formed, so this module first checks each record with plain Python type tests
that admit ONLY records the reference validator would accept unchanged (strings that are
strings, numbers that are finite numbers, vocabulary values, ISO timestamps). Every other record
(wrong type, numeric string, missing field, ...) goes through ``validate_records`` itself, so
reasons and details are the reference ones. Duplicated trans_ids are then resolved across both
groups exactly as the reference does (the first valid occurrence in input order wins).

Every record is first judged on its own by ``finsentry.schema.screen_record`` (what the reference
does too): values that cannot be represented faithfully are rejected with a reason, timestamps
with an offset become naive UTC. Nothing a single record holds can fail the batch.

The result equals ``validate_records(records, known_accounts)`` (a property test checks it):
same valid rows in the same order with the same values and dtypes, same reasons per position.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from finsentry.schema import (
    MAX_STRING_LENGTH,
    TRANSACTION_SCHEMA,
    TS_MAX,
    TS_MIN,
    Reason,
    ValidationResult,
    _empty_rejections,
    _raw_text,
    empty_transactions,
    screen_record,
    validate_records,
)

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?")
_STR = [(c.name, c.required, frozenset(c.allowed) if c.allowed else None) for c in TRANSACTION_SCHEMA
        if c.kind == "str"]  # fmt: skip
_FLOAT = [(c.name, c.required) for c in TRANSACTION_SCHEMA if c.kind == "float"]
_INT = [c.name for c in TRANSACTION_SCHEMA if c.kind == "int"]
_NAMES = {c.name for c in TRANSACTION_SCHEMA}
_EMPTY: dict[str, pd.DataFrame] = {}  # the reference's empty frames, built once


def _empty(kind: str) -> pd.DataFrame:
    if not _EMPTY:
        _EMPTY["valid"], _EMPTY["rejected"] = empty_transactions(), _empty_rejections()
    return _EMPTY[kind].copy()


def _typed_frame(rows: list[dict[str, Any]], ts: pd.Series) -> pd.DataFrame:
    """The canonical frame of fast-path rows, with the reference validator's dtypes."""
    empty = _empty("valid")
    columns: dict[str, Any] = {}
    for c in TRANSACTION_SCHEMA:
        if c.kind == "datetime":
            columns[c.name] = ts.to_numpy().astype("datetime64[ns]")
        else:
            columns[c.name] = pd.array([r[c.name] for r in rows], dtype=empty[c.name].dtype)
    return pd.DataFrame(columns)


def _plain_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _fast_row(rec: Any, known: set[str] | None) -> dict[str, Any] | None:
    """The canonical values of a record the reference surely accepts, else None."""
    if not isinstance(rec, dict):
        return None
    rec, why = screen_record(rec)
    if why is not None:
        return None
    row: dict[str, Any] = {}
    for name, required, allowed in _STR:
        v = rec.get(name)
        if v is None or v == "":
            if required:
                return None
            v = ""
        elif not isinstance(v, str) or len(v) > MAX_STRING_LENGTH or (allowed is not None and v not in allowed):
            return None
        row[name] = v
    for name, required in _FLOAT:
        v = rec.get(name)
        if v is None:
            if required:
                return None
            v = math.nan
        elif not _plain_number(v) or abs(v) >= 2**53 or (required and not math.isfinite(v)) or math.isinf(v):
            return None  # inf, huge: the reference decides
        row[name] = float(v)
    if row["amount"] < 0:
        return None
    for name in _INT:
        v = rec.get(name)
        if v is None:
            v = -1
        elif not isinstance(v, int) or isinstance(v, bool) or abs(v) >= 2**53:
            return None
        row[name] = v
    ts = rec.get("ts")
    if not isinstance(ts, str) or not _ISO.fullmatch(ts):
        return None
    row["ts"] = ts
    row["_extras"] = rec
    if known is not None and row["account_id"] not in known:
        return None
    return row


def validate_stream_records(records: Iterable[Any], known_accounts: Iterable[str] | None = None) -> ValidationResult:
    """``validate_records`` with a fast path for well-formed records (same result)."""
    records = list(records)
    known = set(map(str, known_accounts)) if known_accounts is not None else None
    rows, row_at, slow_at = [], [], []
    for position, rec in enumerate(records):
        row = _fast_row(rec, known)
        if row is None:
            slow_at.append(position)
        else:
            rows.append(row)
            row_at.append(position)
    frame = None
    if rows:
        parsed = pd.to_datetime(pd.Series([r["ts"] for r in rows], dtype=object), errors="coerce", format="ISO8601")
        inside = ((parsed >= TS_MIN) & (parsed < TS_MAX)).to_numpy()  # else astype("datetime64[ns]") wraps
        unparsed = parsed.isna().to_numpy() | ~inside
        if unparsed.any():  # let the reference explain those
            slow_at = sorted(slow_at + [row_at[i] for i in np.flatnonzero(unparsed)])
            rows = [r for r, bad in zip(rows, unparsed, strict=True) if not bad]
            row_at = [p for p, bad in zip(row_at, unparsed, strict=True) if not bad]
            parsed = parsed[~unparsed].reset_index(drop=True)
        if rows:
            frame = _typed_frame(rows, parsed)
            extras = list(dict.fromkeys(k for r in rows for k in r["_extras"] if k not in _NAMES))
            for k in extras:
                frame[k] = [r["_extras"].get(k) for r in rows]
    slow = validate_records([records[p] for p in slow_at], known_accounts) if slow_at else None
    return _merge(records, frame, np.asarray(row_at, dtype=np.int64), slow, np.asarray(slow_at, dtype=np.int64))


def _merge(records: list[Any], fast: pd.DataFrame | None, fast_at: np.ndarray, slow: ValidationResult | None,
           slow_at: np.ndarray) -> ValidationResult:  # fmt: skip
    """Both groups' valid rows in input order, the cross-group duplicates rejected."""
    parts, at = [], []
    if fast is not None and len(fast):
        parts.append(fast)
        at.append(fast_at)
    if slow is not None and len(slow.valid):
        parts.append(slow.valid)
        at.append(slow_at[slow.valid_positions])
    if not parts:
        valid = _empty("valid")
        valid_at = np.zeros(0, dtype=np.int64)
    else:
        valid = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        valid_at = np.concatenate(at)
        order = np.argsort(valid_at, kind="stable")
        valid, valid_at = valid.iloc[order].reset_index(drop=True), valid_at[order]
    dup = valid["trans_id"].duplicated(keep="first").to_numpy()
    rejected_parts, rejected_at = [], []
    if slow is not None and len(slow.rejected):
        rejected_parts.append(slow.rejected)
        rejected_at.append(slow_at[slow.rejected_positions])
    if dup.any():
        dup_at = valid_at[dup]
        rejected_parts.append(pd.DataFrame({"reason": str(Reason.DUPLICATE_ID), "detail": "trans_id",
                                            "raw": [_raw_text(records[p]) for p in dup_at]}))  # fmt: skip
        rejected_at.append(dup_at)
        valid, valid_at = valid[~dup].reset_index(drop=True), valid_at[~dup]
    if rejected_parts:
        rejected = pd.concat(rejected_parts, ignore_index=True)
        r_at = np.concatenate(rejected_at)
        malformed = (rejected["reason"] == str(Reason.MALFORMED)).to_numpy()
        order = np.lexsort((r_at, ~malformed))  # malformed first, then input order (as the reference)
        rejected, r_at = rejected.iloc[order].reset_index(drop=True), r_at[order]
    else:
        rejected, r_at = _empty("rejected"), np.zeros(0, dtype=np.int64)
    return ValidationResult(valid=valid, rejected=rejected, valid_positions=valid_at, rejected_positions=r_at)
