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

Two tiers before the reference: ``_columns`` checks the batch's columns at once (one pass over
the records, a set of types per column, one UTF-8 encode of a column's joined text, numbers as
one array) and admits a record only where every value is one that ``screen_record`` leaves
unchanged and ``_fast_row`` accepts, with the same canonical value (a test checks every poison
value in every column); any other record takes ``_fast_row`` itself (``screen_record`` then the
type tests above: offsets are converted there), then the reference.

The result equals ``validate_records(records, known_accounts)`` (a property test checks it):
same valid rows in the same order with the same values and dtypes, same reasons per position.
"""

from __future__ import annotations

import math
import operator
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
    is_unicode,
    screen_record,
    validate_records,
)

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?")
_STR = [(c.name, c.required, frozenset(c.allowed) if c.allowed else None) for c in TRANSACTION_SCHEMA
        if c.kind == "str"]  # fmt: skip
_FLOAT = [(c.name, c.required) for c in TRANSACTION_SCHEMA if c.kind == "float"]
_INT = [c.name for c in TRANSACTION_SCHEMA if c.kind == "int"]
_NAMES = {c.name for c in TRANSACTION_SCHEMA}
_ALL_COLUMNS = operator.itemgetter(*(c.name for c in TRANSACTION_SCHEMA))
_EMPTY: dict[str, pd.DataFrame] = {}  # the reference's empty frames, built once


_DTYPES: dict[str, Any] = {}  # the reference's dtype of each canonical column


def _empty(kind: str) -> pd.DataFrame:
    if not _EMPTY:
        _EMPTY["valid"], _EMPTY["rejected"] = empty_transactions(), _empty_rejections()
        _DTYPES.update(_EMPTY["valid"].dtypes.items())
    return _EMPTY[kind].copy()


def _typed_frame(cols: dict[str, Any], ok: np.ndarray, ts: pd.Series) -> pd.DataFrame:
    """The canonical frame of the fast-path rows (``ok``), with the reference validator's dtypes."""
    if not _DTYPES:
        _empty("valid")
    every = bool(ok.all())
    columns: dict[str, Any] = {}
    for c in TRANSACTION_SCHEMA:
        if c.kind == "datetime":
            columns[c.name] = ts.to_numpy().astype("datetime64[ns]")
            continue
        values = cols[c.name]
        if isinstance(values, np.ndarray):
            columns[c.name] = pd.array(values if every else values[ok], dtype=_DTYPES[c.name])
        else:
            columns[c.name] = pd.array(values if every else [v for v, good in zip(values, ok, strict=True) if good],
                                       dtype=_DTYPES[c.name])  # fmt: skip
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


_EXACT = 2**53  # integers from here on are not exactly representable as a float64
_STR_OK = {name: (required, None if allowed is None else (allowed if required else allowed | {""}))
           for name, required, allowed in _STR}  # fmt: skip
_NONE = type(None)


def _str_value_ok(v: Any, required: bool, ok_set: frozenset[str] | None) -> bool:
    if v is None or (type(v) is str and v == ""):
        return not required
    return (type(v) is str and len(v) <= MAX_STRING_LENGTH and (ok_set is None or v in ok_set)
            and is_unicode(v))  # fmt: skip


def _str_column(col: list[Any], required: bool, ok_set: frozenset[str] | None) -> tuple[list[Any], np.ndarray | None]:
    """The column's canonical texts ("" for None) and where they are surely good (None: everywhere)."""
    types = set(map(type, col))
    if types <= {str, _NONE} and not (required and _NONE in types):
        vals = ["" if v is None else v for v in col] if _NONE in types else col
        if (max(map(len, vals), default=0) <= MAX_STRING_LENGTH and (not required or all(vals))
                and (ok_set is None or ok_set.issuperset(vals)) and is_unicode("".join(vals))):  # fmt: skip
            return vals, None
    ok = np.fromiter((_str_value_ok(v, required, ok_set) for v in col), dtype=bool, count=len(col))
    return ["" if v is None or not o else v for v, o in zip(col, ok, strict=True)], ok


def _float_value_ok(v: Any, required: bool) -> bool:
    if v is None:
        return not required
    if type(v) is float:
        return not abs(v) >= _EXACT and not math.isinf(v) and (not required or math.isfinite(v))
    return type(v) is int and abs(v) < _EXACT


def _float_column(col: list[Any], required: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The column as float64 (NaN for None) and where it is surely good (None: everywhere)."""
    types = set(map(type, col))
    if types <= {float, int, _NONE} and not (required and _NONE in types) and (
            int not in types or all(-_EXACT < v < _EXACT for v in col if type(v) is int)):  # fmt: skip
        arr = np.array([math.nan if v is None else v for v in col] if _NONE in types else col, dtype=np.float64)
        ok = ~(np.abs(arr) >= _EXACT) & ~np.isinf(arr)
        if required:
            ok &= np.isfinite(arr)
        return arr, None if ok.all() else ok
    ok = np.fromiter((_float_value_ok(v, required) for v in col), dtype=bool, count=len(col))
    return np.array([float(v) if o and v is not None else math.nan for v, o in zip(col, ok, strict=True)],
                    dtype=np.float64), ok  # fmt: skip


def _int_column(col: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """The column as int64 (-1 for None) and where it is surely good (None: everywhere)."""
    types = set(map(type, col))
    if types <= {int, _NONE} and all(-_EXACT < v < _EXACT for v in col if v is not None):
        return np.array([-1 if v is None else v for v in col], dtype=np.int64), None
    ok = np.fromiter((v is None or (type(v) is int and abs(v) < _EXACT) for v in col), dtype=bool, count=len(col))
    return np.array([-1 if v is None or not o else v for v, o in zip(col, ok, strict=True)], dtype=np.int64), ok


def _ts_ok(v: Any) -> bool:
    return type(v) is str and _ISO.fullmatch(v) is not None and "1678" <= v[:4] <= "2261"


def _columns(objs: list[dict[str, Any]], known: set[str] | None) -> tuple[dict[str, Any], np.ndarray]:
    """Every schema column of ``objs`` at once, canonical, and the records whose every value is
    one the per-record check (``screen_record`` then ``_fast_row``) surely accepts unchanged:
    plain dicts; texts that are text, short, of the vocabulary, valid Unicode; numbers that are
    finite and exact (below 2**53); naive ISO timestamps inside pandas' range. The values of
    the other records are placeholders: those records take the per-record path."""
    m = len(objs)
    ok = np.fromiter((type(r) is dict for r in objs), dtype=bool, count=m)
    every: list[Any] | None = None
    if ok.all():
        try:  # every record holds every column: one pass over the records
            every = list(zip(*map(_ALL_COLUMNS, objs), strict=True))
        except KeyError:
            every = None
    cols: dict[str, Any] = {}
    for n, c in enumerate(TRANSACTION_SCHEMA):
        col = list(every[n]) if every is not None else [r.get(c.name) for r in objs]
        if c.kind == "str":
            cols[c.name], good = _str_column(col, *_STR_OK[c.name])
        elif c.kind == "float":
            cols[c.name], good = _float_column(col, c.required)
            if c.name == "amount":
                good = (~(cols[c.name] < 0)) if good is None else good & ~(cols[c.name] < 0)
        elif c.kind == "int":
            cols[c.name], good = _int_column(col)
        else:
            good = np.fromiter(map(_ts_ok, col), dtype=bool, count=m)
            cols[c.name] = ["" if not g else v for v, g in zip(col, good, strict=True)]
        if good is not None:
            ok &= good
    if known is not None:
        ok &= np.fromiter((a in known for a in cols["account_id"]), dtype=bool, count=m)
    return cols, ok


def validate_stream_records(records: Iterable[Any], known_accounts: Iterable[str] | None = None) -> ValidationResult:
    """``validate_records`` with a fast path for well-formed records (same result).

    The batch's columns are checked at once (``_columns``); a record with a value they do not
    surely accept takes the per-record check (``_fast_row``), and what that does not accept
    either goes to the reference validator."""
    records = list(records)
    known = set(map(str, known_accounts)) if known_accounts is not None else None
    obj_at = [p for p, rec in enumerate(records) if isinstance(rec, dict)]
    objs = [records[p] for p in obj_at]
    cols, ok = _columns(objs, known) if objs else ({}, np.zeros(0, dtype=bool))
    sources = list(objs)  # the record each row's extra columns come from
    slow_at = [p for p, rec in enumerate(records) if not isinstance(rec, dict)]
    for j in np.flatnonzero(~ok):
        row = _fast_row(objs[j], known)
        if row is None:
            slow_at.append(obj_at[j])
            continue
        ok[j] = True
        for name in _NAMES:
            cols[name][j] = row[name]
        sources[j] = row["_extras"]
    slow_at.sort()
    row_at = [p for p, good in zip(obj_at, ok, strict=True) if good]
    frame = None
    if row_at:
        texts = cols["ts"] if ok.all() else [v for v, good in zip(cols["ts"], ok, strict=True) if good]
        parsed = pd.to_datetime(pd.Series(texts, dtype=object), errors="coerce", format="ISO8601")
        inside = ((parsed >= TS_MIN) & (parsed < TS_MAX)).to_numpy()  # else astype("datetime64[ns]") wraps
        unparsed = parsed.isna().to_numpy() | ~inside
        if unparsed.any():  # let the reference explain those
            at = np.flatnonzero(ok)
            slow_at = sorted(slow_at + [row_at[i] for i in np.flatnonzero(unparsed)])
            ok[at[unparsed]] = False
            row_at = [p for p, bad in zip(row_at, unparsed, strict=True) if not bad]
            parsed = parsed[~unparsed].reset_index(drop=True)
        if row_at:
            frame = _typed_frame(cols, ok, parsed)
            kept = sources if ok.all() else [s for s, good in zip(sources, ok, strict=True) if good]
            if set().union(*kept) - _NAMES:
                for k in dict.fromkeys(k for r in kept for k in r if k not in _NAMES):
                    frame[k] = [r.get(k) for r in kept]
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
