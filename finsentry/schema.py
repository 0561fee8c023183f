"""The canonical transaction record and its validation.

Every source (the Czech dataset in either public form, the synthetic bank, a Kinesis record, a
foreign table mapped onto this schema) is turned into a frame with exactly the columns of
``TRANSACTION_COLUMNS``. ``validate_frame`` is the one validator: it splits any frame of raw
values into valid canonical rows and rejected rows, each rejection carrying a typed reason.
One bad record never aborts a batch, and ``len(valid) + len(rejected) == len(input)`` always.

Units: amounts and balances in the account currency (CZK for the Czech data), ``amount`` is a
non-negative magnitude and ``direction`` gives its sign; ``ts`` is naive local bank time. A
timestamp given WITH an offset (``Z``, ``+02:00``) is converted to UTC and stored naive (the
producer said which instant it meant); one outside pandas' range (1677-09-22 .. 2262-04-11) is
rejected as ``unparseable_date``, never wrapped around.

Every value is judged on its own (``screen_record``): a value that cannot be represented
faithfully (an integer too large for a float, a non-integral or infinite ``district_id``, a
boolean where an identifier is expected, text that is not valid Unicode) is a rejection with a
reason, never an exception for the whole batch and never a silently changed value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

# --- vocabularies ---------------------------------------------------------------------------


class Direction(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"


class TxnType(StrEnum):
    """The bank's transaction type (PRIJEM / VYDAJ / VYBER; Teradata C / D / P)."""

    CREDIT = "credit"
    DEBIT = "debit"
    CASH_WITHDRAWAL = "cash_withdrawal"


class Operation(StrEnum):
    """How the money moved (the Czech ``operation`` column); NONE for interest and fees."""

    CARD_WITHDRAWAL = "card_withdrawal"  # VYBER KARTOU / CCW
    CASH_CREDIT = "cash_credit"  # VKLAD / CIC
    COLLECTION = "collection_other_bank"  # PREVOD Z UCTU / COB
    CASH_WITHDRAWAL = "cash_withdrawal"  # VYBER / WIC
    REMITTANCE = "remittance_other_bank"  # PREVOD NA UCET / ROB
    NONE = "none"  # empty in the source (interest, fees)


class Purpose(StrEnum):
    """The ``k_symbol`` characterisation of a transaction or permanent order."""

    INSURANCE = "insurance"  # POJISTNE / IN
    STATEMENT = "statement"  # SLUZBY / ST
    INTEREST = "interest"  # UROK / IC
    PENALTY_INTEREST = "penalty_interest"  # SANKC. UROK / IO
    HOUSEHOLD = "household"  # SIPO / HH
    PENSION = "pension"  # DUCHOD / PE
    LOAN = "loan_payment"  # UVER / LO
    LEASING = "leasing"  # LEASING / LE
    SALARY = "salary"  # synthetic only: the real data leaves salaries uncharacterised
    NONE = "none"


class Channel(StrEnum):
    """Where the transaction was made, derived from the operation."""

    CARD = "card"
    BRANCH = "branch"  # cash over the counter
    TRANSFER = "transfer"  # bank-to-bank
    SYSTEM = "system"  # posted by the bank itself (interest, fees)


class Frequency(StrEnum):
    """Statement frequency of the account (POPLATEK MESICNE / TYDNE / PO OBRATU)."""

    MONTHLY = "monthly"
    WEEKLY = "weekly"
    AFTER_TRANSACTION = "after_transaction"


CHANNEL_OF_OPERATION: dict[str, str] = {
    Operation.CARD_WITHDRAWAL: Channel.CARD,
    Operation.CASH_CREDIT: Channel.BRANCH,
    Operation.CASH_WITHDRAWAL: Channel.BRANCH,
    Operation.COLLECTION: Channel.TRANSFER,
    Operation.REMITTANCE: Channel.TRANSFER,
    Operation.NONE: Channel.SYSTEM,
}

DIRECTION_OF_TYPE: dict[str, str] = {
    TxnType.CREDIT: Direction.CREDIT,
    TxnType.DEBIT: Direction.DEBIT,
    TxnType.CASH_WITHDRAWAL: Direction.DEBIT,
}

# --- the canonical record -------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "str" | "float" | "int" | "datetime"
    required: bool
    doc: str
    allowed: tuple[str, ...] | None = None


TRANSACTION_SCHEMA: tuple[Column, ...] = (
    Column("trans_id", "str", True, "transaction identifier, unique"),
    Column("account_id", "str", True, "account the transaction is posted on"),
    Column("client_id", "str", True, "owner of the account (disposition OWNER)"),
    Column("ts", "datetime", True, "posting time, naive local bank time"),
    Column("amount", "float", True, "magnitude, >= 0, account currency"),
    Column("direction", "str", True, "sign of the amount", tuple(Direction)),
    Column("type", "str", True, "bank transaction type", tuple(TxnType)),
    Column("operation", "str", True, "how the money moved", tuple(Operation)),
    Column("k_symbol", "str", True, "purpose of the payment", tuple(Purpose)),
    Column("partner_bank", "str", False, "partner bank code, '' when none"),
    Column("partner_account", "str", False, "partner account number, '' when none"),
    # balances are optional (card tables have none): NaN when the source has neither, never faked
    Column("balance_before", "float", False, "balance before the transaction, NaN when unknown"),
    Column("balance_after", "float", False, "balance after the transaction, NaN when unknown"),
    Column("channel", "str", True, "where it was made", tuple(Channel)),
    # account and client attributes joined to the transaction
    Column("frequency", "str", False, "statement frequency of the account", tuple(Frequency)),
    Column("client_age", "float", False, "client age in years at the transaction"),
    Column("client_gender", "str", False, "M or F", ("M", "F", "")),
    Column("district_id", "int", False, "client's district (1..77 for the Czech data)"),
    Column("region", "str", False, "client's region (8 in the Czech data)"),
)
TRANSACTION_COLUMNS: tuple[str, ...] = tuple(c.name for c in TRANSACTION_SCHEMA)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in TRANSACTION_SCHEMA if c.required)
COLUMN_BY_NAME: dict[str, Column] = {c.name: c for c in TRANSACTION_SCHEMA}

# Labels carried beside the record by the synthetic generator and the anomaly injectors.
LABEL_COLUMNS: tuple[str, ...] = ("is_anomaly", "anomaly_type")

MAX_STRING_LENGTH = 256  # longer identifiers are rejected, never truncated silently

# --- validation -----------------------------------------------------------------------------


class Reason(StrEnum):
    """Why a record was rejected. Stable codes: they are metric dimensions and SQL values."""

    MALFORMED = "malformed"  # not a record at all (bad JSON, not an object)
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NON_FINITE_AMOUNT = "non_finite_amount"
    NEGATIVE_AMOUNT = "negative_amount"
    UNPARSEABLE_DATE = "unparseable_date"
    INVALID_VALUE = "invalid_value"  # not in the column's vocabulary
    TOO_LONG = "too_long"
    UNKNOWN_ACCOUNT = "unknown_account"
    DUPLICATE_ID = "duplicate_id"  # same trans_id seen earlier in the same input


REJECTION_COLUMNS: tuple[str, ...] = ("reason", "detail", "raw")
NOT_UTF8 = "not valid UTF-8"  # detail of a malformed line with undecodable bytes (files of every form)


def wrong_field_count(found: int, expected: int) -> str:
    """The detail of a malformed line with the wrong number of fields (files of every form)."""
    return f"{found} fields, expected {expected}"


@dataclass
class ValidationResult:
    """``valid`` has the canonical columns; ``rejected`` has reason, detail and the raw record.

    ``valid_positions`` / ``rejected_positions`` give, row for row, each row's position in the
    input (0-based), so a caller can tie an outcome back to its source record (a stream's
    sequence number, for instance). None when the producer did not track them.
    """

    valid: pd.DataFrame
    rejected: pd.DataFrame
    valid_positions: np.ndarray | None = None
    rejected_positions: np.ndarray | None = None

    @property
    def received(self) -> int:
        return len(self.valid) + len(self.rejected)

    def reason_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.rejected["reason"].value_counts().items()}


def empty_transactions() -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes."""
    return _apply_dtypes(pd.DataFrame({c: [] for c in TRANSACTION_COLUMNS}))


def _apply_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for col in TRANSACTION_SCHEMA:
        s = df[col.name]
        if col.kind == "str":
            out[col.name] = s.astype(object).where(s.notna(), "").astype(str)
        elif col.kind == "float":
            out[col.name] = pd.to_numeric(s, errors="coerce").astype("float64")
        elif col.kind == "int":
            out[col.name] = pd.to_numeric(s, errors="coerce").fillna(-1).astype("int64")
        else:
            out[col.name] = pd.to_datetime(s, errors="coerce").astype("datetime64[ns]")
    extra = [c for c in df.columns if c not in COLUMN_BY_NAME]
    frame = pd.DataFrame(out, index=df.index)
    for c in extra:
        frame[c] = df[c]
    return frame


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _coerce_float(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Floats and a mask of values that are neither numbers nor numeric strings."""
    num = pd.to_numeric(values, errors="coerce")
    if values.dtype == object:
        bad_type = np.array(
            [not (_is_number(v) or (isinstance(v, str) and _parses_float(v))) for v in values],
            dtype=bool,
        )
    else:
        bad_type = np.zeros(len(values), dtype=bool)
    return num.to_numpy(dtype="float64", na_value=np.nan), bad_type


def _parses_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def validate_frame(
    raw: pd.DataFrame,
    known_accounts: Iterable[str] | None = None,
) -> ValidationResult:
    """Split a frame of raw values into canonical valid rows and rejected rows.

    The first failing check of a row gives its reason (checks run in the order of
    ``Reason``). ``known_accounts``, when given, rejects transactions on other accounts.
    Optional columns that are absent are filled with their empty value.
    """
    n = len(raw)
    raw = raw.reset_index(drop=True)
    reason = np.full(n, "", dtype=object)
    detail = np.full(n, "", dtype=object)
    open_rows = np.ones(n, dtype=bool)  # rows with no reason yet

    def reject(mask: np.ndarray, why: Reason, what: str) -> None:
        hit = np.asarray(mask, dtype=bool) & open_rows
        reason[hit] = str(why)
        detail[hit] = what
        open_rows[hit] = False

    if known_accounts is not None and "account_id" in raw.columns:
        known = set(map(str, known_accounts))
        ids = raw["account_id"].map(lambda v: str(v) if isinstance(v, str | int) else None)
        present = ids.notna() & (ids != "") & (ids.str.len() <= MAX_STRING_LENGTH)
        reject((present & ~ids.isin(known)).to_numpy(), Reason.UNKNOWN_ACCOUNT, "account_id")

    work = pd.DataFrame(index=raw.index)
    for col in TRANSACTION_SCHEMA:
        absent = pd.Series([None] * n, index=raw.index, dtype=object)
        s = raw[col.name] if col.name in raw.columns else absent
        missing = s.isna().to_numpy()
        if col.kind == "str":
            blank = s.astype(object).map(lambda v: isinstance(v, str) and v == "")
            missing = missing | blank.to_numpy(dtype=bool)
        if col.required:
            reject(missing, Reason.MISSING_FIELD, col.name)
        if col.kind == "str":
            obj = s.astype(object)
            wrong = ~missing & ~obj.map(lambda v: isinstance(v, str | int | np.integer)
                                         and not isinstance(v, bool | np.bool_)).to_numpy()
            reject(wrong, Reason.WRONG_TYPE, col.name)
            text = obj.where(~missing, "").map(str)
            reject(text.str.len().to_numpy() > MAX_STRING_LENGTH, Reason.TOO_LONG, col.name)
            if col.allowed is not None:
                ok = text.isin(col.allowed).to_numpy() | (missing & (not col.required))
                reject(~ok, Reason.INVALID_VALUE, col.name)
            work[col.name] = text
        elif col.kind in ("float", "int"):
            vals, bad = _coerce_float(s.astype(object) if s.dtype == object else s)
            reject(~missing & bad, Reason.WRONG_TYPE, col.name)
            if col.name == "amount" or col.name.startswith("balance"):
                reject(~missing & ~bad & ~np.isfinite(vals), Reason.NON_FINITE_AMOUNT, col.name)
            if col.name == "amount":
                reject(np.isfinite(vals) & (vals < 0), Reason.NEGATIVE_AMOUNT, col.name)
            work[col.name] = vals
        else:
            parsed = _parse_timestamps(s)
            reject(~missing & parsed.isna().to_numpy(), Reason.UNPARSEABLE_DATE, col.name)
            work[col.name] = parsed

    ok_so_far = open_rows.copy()
    dup = work["trans_id"].where(ok_so_far).duplicated(keep="first").to_numpy() & ok_so_far
    reject(dup, Reason.DUPLICATE_ID, "trans_id")

    good = open_rows
    valid = _apply_dtypes(work.loc[good])
    for c in raw.columns:
        if c not in COLUMN_BY_NAME:
            valid[c] = raw.loc[good, c].to_numpy()
    valid = valid.reset_index(drop=True)
    bad_idx = np.flatnonzero(~good)
    rejected = pd.DataFrame(
        {
            "reason": pd.Series(reason[bad_idx], dtype=object).astype(str),
            "detail": pd.Series(detail[bad_idx], dtype=object).astype(str),
            "raw": [_raw_text(raw.iloc[i].to_dict()) for i in bad_idx],
        }
    )
    return ValidationResult(valid=valid, rejected=rejected, valid_positions=np.flatnonzero(good),
                            rejected_positions=bad_idx)  # fmt: skip


TS_MIN = pd.Timestamp("1677-09-22")  # pandas' nanosecond range, whole days inside it
TS_MAX = pd.Timestamp("2262-04-11")


def parse_timestamp(value: Any) -> pd.Timestamp | None:
    """One ISO 8601 text as a naive timestamp (an offset converted to UTC); None when it is not
    one or falls outside [TS_MIN, TS_MAX). Never raises."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        t = pd.to_datetime(value, format="ISO8601")
        if t is pd.NaT or not isinstance(t, pd.Timestamp):
            return None
        if t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        if not TS_MIN <= t < TS_MAX:
            return None
        return t.as_unit("ns")
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return None


def _parse_timestamps(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return s.astype("datetime64[ns]")
    obj = s.astype(object)
    as_text = obj.map(lambda v: v if isinstance(v, str) else None)
    try:  # the whole column at once; any surprise (offsets, mixed zones, out of range): value by value
        parsed = pd.to_datetime(as_text, errors="coerce", format="ISO8601")
        if not pd.api.types.is_datetime64_dtype(parsed) or getattr(parsed.dt, "tz", None) is not None:
            raise TypeError("offsets")
        inside = (parsed >= TS_MIN) & (parsed < TS_MAX)
        if not (inside | parsed.isna()).all():
            raise OverflowError("outside the nanosecond range")
        return parsed.astype("datetime64[ns]")
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        values = [parse_timestamp(v) for v in obj]
        return pd.Series([pd.NaT if t is None else t for t in values], index=s.index, dtype="datetime64[ns]")


def _raw_text(record: Mapping[str, Any]) -> str:
    import json

    def default(v: Any) -> str:
        return str(v)

    clean = {
        k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()
    }
    text = json.dumps(clean, default=default, ensure_ascii=False)
    if not is_unicode(text):  # a lone surrogate: keep it as its JSON escape
        text = json.dumps(clean, default=default, ensure_ascii=True)
    return text[:4096]


def validate_records(
    records: Iterable[Any],
    known_accounts: Iterable[str] | None = None,
) -> ValidationResult:
    """Validate decoded records (e.g. JSON objects from a stream).

    Anything that is not a mapping is rejected as ``malformed``; mappings go through
    ``validate_frame``. Rejected rows come back in input order after the malformed ones.
    """
    objects: list[Mapping[str, Any]] = []
    malformed: list[str] = []
    object_at: list[int] = []  # input position of each object
    malformed_at: list[int] = []
    screened: list[tuple[int, Reason, str, str]] = []  # position, reason, detail, raw
    for position, rec in enumerate(records):
        if isinstance(rec, Mapping):
            clean, why = screen_record(rec)
            if why is not None:
                screened.append((position, why[0], why[1], _raw_text(rec)))
                continue
            objects.append({str(k): v for k, v in clean.items()})
            object_at.append(position)
        else:
            malformed.append(repr(rec)[:4096])
            malformed_at.append(position)
    if not objects:
        result = ValidationResult(empty_transactions(), _empty_rejections())
    else:
        result = validate_frame(_object_frame(objects), known_accounts)
    at = np.asarray(object_at, dtype=np.int64)
    result.valid_positions = at[result.valid_positions] if result.valid_positions is not None else at[:0]
    rejected_at = at[result.rejected_positions] if result.rejected_positions is not None else at[:0]
    if malformed:
        bad = pd.DataFrame(
            {"reason": str(Reason.MALFORMED), "detail": "not a JSON object", "raw": malformed}
        )
        result.rejected = pd.concat([bad, result.rejected], ignore_index=True)
    rejected_at = np.concatenate([np.asarray(malformed_at, dtype=np.int64), rejected_at])
    if screened:  # in input order among the rows rejected by the frame checks
        extra = pd.DataFrame({"reason": [str(r) for _, r, _, _ in screened], "detail": [d for _, _, d, _ in screened],
                              "raw": [w for _, _, _, w in screened]})  # fmt: skip
        at_screened = np.asarray([p for p, _, _, _ in screened], dtype=np.int64)
        n_malformed = len(malformed_at)
        head, tail = result.rejected.iloc[:n_malformed], result.rejected.iloc[n_malformed:]
        rest = pd.concat([tail, extra], ignore_index=True)
        rest_at = np.concatenate([rejected_at[n_malformed:], at_screened])
        order = np.argsort(rest_at, kind="stable")
        result.rejected = pd.concat([head, rest.iloc[order]], ignore_index=True)
        rejected_at = np.concatenate([rejected_at[:n_malformed], rest_at[order]])
    result.rejected_positions = rejected_at
    return result


_NAIVE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?")
_FLOAT_LIMIT = 2**53  # integers beyond this are not exactly representable as a float64


def is_unicode(text: str) -> bool:
    """Storable as UTF-8: no lone surrogate (JSON "\\ud800", or an undecodable byte kept as its escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON "\\ud800"): no UTF-8 writer can store it
        return False
    return True


def screen_record(rec: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[Reason, str] | None]:
    """Judge the values of one decoded record that the frame checks cannot represent faithfully.

    Returns the record (its ``ts`` rewritten as naive UTC when it carried an offset) and None, or
    the record and ``(reason, detail)`` when a value must be rejected: a boolean where text is
    expected (``wrong_type``); text that is not valid Unicode (``invalid_value``); an integer too
    large for a float (``non_finite_amount`` for amounts and balances, else ``invalid_value``);
    an infinite or non-integral ``district_id`` or one beyond 2**53, an infinite ``client_age``
    (``invalid_value``); a timestamp outside pandas' range (``unparseable_date``). Everything
    else is left to the frame checks. Never raises."""
    out: dict[str, Any] | None = None
    for col in TRANSACTION_SCHEMA:
        v = rec.get(col.name)
        if v is None:
            continue
        if col.kind == "str":
            if isinstance(v, bool):
                return dict(rec), (Reason.WRONG_TYPE, col.name)
            if isinstance(v, str) and not is_unicode(v):
                return dict(rec), (Reason.INVALID_VALUE, f"{col.name}: not valid Unicode")
        elif col.kind in ("float", "int"):
            if isinstance(v, bool):
                continue  # the frame checks call it wrong_type
            money = col.name == "amount" or col.name.startswith("balance")
            x: float | None = None
            if isinstance(v, int):
                try:
                    x = float(v)
                except OverflowError:
                    return dict(rec), ((Reason.NON_FINITE_AMOUNT, col.name) if money
                                       else (Reason.INVALID_VALUE, f"{col.name}: out of range"))  # fmt: skip
            elif isinstance(v, float):
                x = v
            elif isinstance(v, str) and _parses_float(v):
                x = float(v)
            if x is None or math.isnan(x):
                continue  # not a number (wrong_type) or NaN (missing): the frame checks decide
            if col.kind == "int" and (not math.isfinite(x) or x != math.floor(x) or abs(x) > _FLOAT_LIMIT
                                      or (isinstance(v, int) and abs(v) > _FLOAT_LIMIT)):  # fmt: skip
                return dict(rec), (Reason.INVALID_VALUE, f"{col.name}: not an integer in range")
            if col.kind == "float" and not money and not math.isfinite(x):
                return dict(rec), (Reason.INVALID_VALUE, f"{col.name}: not finite")
        elif isinstance(v, str) and v.strip():
            if _NAIVE_ISO.fullmatch(v) and "1678" <= v[:4] <= "2261":
                continue  # the common case: naive and inside the range (the frame checks parse it)
            t = parse_timestamp(v)
            if t is None:
                if _looks_iso(v):
                    return dict(rec), (Reason.UNPARSEABLE_DATE, col.name)
                continue
            if t.isoformat() != v and _has_offset(v):
                out = dict(rec) if out is None else out
                out[col.name] = t.isoformat()
    return (dict(rec) if out is None else out), None


def _looks_iso(text: str) -> bool:
    return len(text) >= 10 and text[4:5] == "-" and text[:4].lstrip("+-").isdigit()


def _has_offset(text: str) -> bool:
    tail = text[10:]
    return tail.endswith(("Z", "z")) or "+" in tail or "-" in tail


def _object_frame(objects: list[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per object (``{}`` too), every column of dtype object with the values as given.

    No dtype inference: ``DataFrame.from_records`` would turn ``[absent, 0]`` into the floats
    ``[nan, 0.0]``, and a record's verdict would depend on the other records of its batch.
    """
    keys = dict.fromkeys(k for o in objects for k in o)
    columns = {k: pd.Series([o.get(k) for o in objects], dtype=object) for k in keys}
    return pd.DataFrame(columns, index=range(len(objects)))


def _empty_rejections() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=str) for c in REJECTION_COLUMNS})


def to_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready dict of one canonical row (ISO timestamp), as producers send it."""
    out: dict[str, Any] = {}
    for col in TRANSACTION_SCHEMA:
        v = row[col.name]
        if col.kind == "datetime":
            out[col.name] = pd.Timestamp(v).isoformat()
        elif col.kind == "float":
            out[col.name] = None if pd.isna(v) else float(v)  # an unknown balance: null, not NaN
        elif col.kind == "int":
            out[col.name] = int(v)
        else:
            out[col.name] = str(v)
    return out
