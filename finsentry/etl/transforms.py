"""The per-partition transforms of the batch jobs: pandas in, pandas out, engine-neutral.

Each function is what one Spark task runs (through ``mapInPandas`` / ``applyInPandas``) and
what the pandas engine runs once on the whole data. They only call the core library:

* ``parse_trans_chunk`` -> ``czech.parse_table`` (the one reader of both file forms);
* ``canonical_chunk`` -> ``czech.to_canonical`` (the join of accounts, dispositions, clients
  and districts, then ``schema.validate_frame``, the one validator) on whole accounts;
* ``account_features`` -> ``features.features_with_sequence`` (the one feature definition, plus
  the LSTM's sequence columns).

Frames crossing an engine boundary have fixed columns and dtypes (``*_SCHEMA`` give them as
Spark DDL), so Spark and pandas see the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from finsentry.datasets import czech
from finsentry.datasets.raw import TRANS_COLUMNS, RawTables
from finsentry.etl import quality
from finsentry.features import CURATED_COLUMNS, features_with_sequence
from finsentry.schema import TRANSACTION_SCHEMA, Reason

LINE = "_line"  # 1-based line number in the source file
SEQ = "seq"  # posting order within the account (0-based), as the loader orders and chains it
STATUS_VALID, STATUS_REJECTED = "valid", "rejected"
QUARANTINE_FIELDS = ("q_table", "q_reason", "q_detail", "q_raw")

_TRANS_TYPES = {
    "trans_id": "bigint", "account_id": "bigint", "ts": "timestamp", "type": "string",
    "operation": "string", "amount": "double", "balance": "double", "k_symbol": "string",
    "bank": "string", "account": "string",
}  # fmt: skip
_SPARK_OF_KIND = {"str": "string", "float": "double", "int": "bigint", "datetime": "timestamp"}

# rows of a parsed trans chunk: the raw trans columns, or (q_reason set) an unreadable line
PARSED_SCHEMA = ", ".join(
    [f"{LINE} bigint"] + [f"{c} {_TRANS_TYPES[c]}" for c in TRANS_COLUMNS] + [f"{q} string" for q in QUARANTINE_FIELDS]
)
CANONICAL_COLUMNS = tuple(c.name for c in TRANSACTION_SCHEMA)
# rows of a canonical chunk: a valid canonical transaction, or a rejected one with its reason
CANONICAL_SCHEMA = ", ".join(
    [f"{c.name} {_SPARK_OF_KIND[c.kind]}" for c in TRANSACTION_SCHEMA]
    + [f"{LINE} bigint", f"{SEQ} bigint", "status string", "reason string", "detail string", "raw string"]
    + [f"{f} boolean" for f in quality.ROW_FLAGS]
)
# transactions as the features job reads them from curated/transactions/
FEATURE_INPUT_COLUMNS = (
    "trans_id", "account_id", "ts", "amount", "direction", "operation", "k_symbol", "partner_bank",
    "partner_account", "balance_before", "balance_after", SEQ,
)  # fmt: skip
FEATURES_SCHEMA = ", ".join(
    ["trans_id string", "account_id string", "ts timestamp", f"{SEQ} bigint"]
    + [f"{c} double" for c in CURATED_COLUMNS]
)


@dataclass
class Dimensions:
    """The small relations joined onto every transaction (broadcast to every task)."""

    district: pd.DataFrame
    client: pd.DataFrame
    account: pd.DataFrame
    disp: pd.DataFrame

    @classmethod
    def of(cls, raw: RawTables) -> Dimensions:
        return cls(district=raw.district, client=raw.client, account=raw.account, disp=raw.disp)


# --- stage 1: parse ---------------------------------------------------------------------------


def empty_parsed() -> pd.DataFrame:
    return _typed_parsed(pd.DataFrame({c: [] for c in (LINE, *TRANS_COLUMNS, *QUARANTINE_FIELDS)}))


def parse_trans_chunk(lines: pd.DataFrame, header: str | None, form: czech.Form) -> pd.DataFrame:
    """Parse a chunk of trans file lines (columns ``line``: file line number, ``value``: the
    line's bytes, or text).

    ``header`` is the file's first line for the asc form (it is put before the chunk so the
    parser sees a whole file), None for the headerless tsv form. Line numbers in the output
    are the file's.
    """
    if lines.empty:
        return empty_parsed()
    body = "\n".join(_line_text(v) for v in lines["value"])
    text = body if header is None else header + "\n" + body
    frame, bad = czech.parse_table("trans", text, form, keep_line=True)
    file_lines = lines["line"].to_numpy(dtype=np.int64)
    offset = 0 if header is None else 1

    def to_file(chunk_line: np.ndarray) -> np.ndarray:
        idx = np.clip(np.asarray(chunk_line, dtype=np.int64) - 1 - offset, 0, len(file_lines) - 1)
        return file_lines[idx]

    frame[LINE] = to_file(frame[LINE].to_numpy())
    bad = bad.assign(line=to_file(bad["line"].to_numpy()) if len(bad) else bad["line"])
    return parsed_rows(frame, bad)


def _line_text(value: bytes | str) -> str:
    """A line as Spark hands it over (bytes: not yet decoded) -> text, decoded as the pandas
    reader decodes a file (``czech.decode_text``), so an undecodable line is quarantined alike."""
    return czech.decode_text(value) if isinstance(value, bytes | bytearray) else str(value)


def parsed_rows(frame: pd.DataFrame, bad: pd.DataFrame) -> pd.DataFrame:
    """Parsed trans rows (with ``_line``) and unreadable lines, in the PARSED_SCHEMA layout."""
    good = frame[[LINE, *TRANS_COLUMNS]].copy()
    for q in QUARANTINE_FIELDS:
        good[q] = ""
    unread = pd.DataFrame({
        LINE: bad["line"].to_numpy(), "q_table": bad["table"].astype(str).to_numpy(),
        "q_reason": bad["reason"].astype(str).to_numpy(), "q_detail": bad["detail"].astype(str).to_numpy(),
        "q_raw": bad["raw"].astype(str).to_numpy(),
    })  # fmt: skip
    return _typed_parsed(pd.concat([good, unread], ignore_index=True))


def _typed_parsed(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out[LINE] = pd.to_numeric(frame[LINE]).fillna(0).astype("int64")
    for c in TRANS_COLUMNS:
        kind = _TRANS_TYPES[c]
        if kind == "bigint":
            out[c] = pd.to_numeric(frame[c]).fillna(0).astype("int64")
        elif kind == "double":
            out[c] = pd.to_numeric(frame[c]).astype("float64")
        elif kind == "timestamp":
            out[c] = pd.to_datetime(frame[c]).astype("datetime64[ns]")
        else:
            out[c] = _text(frame[c])
    for q in QUARANTINE_FIELDS:
        out[q] = _text(frame[q])
    return out


def _text(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "").astype(str).astype(object)


def mark_repeated_ids(parsed: pd.DataFrame) -> pd.DataFrame:
    """Quarantine (``duplicate_id``) every readable row whose trans_id an earlier readable line
    already has: the first in file order is kept. Done before the join so that a repeated
    posting never enters an account's history (nor its balance checks)."""
    readable = parsed[parsed["q_reason"] == ""].sort_values(LINE, kind="stable")
    repeated = readable.index[readable.duplicated("trans_id", keep="first").to_numpy()]
    if len(repeated) == 0:
        return parsed
    out = parsed.copy()
    records = out.loc[repeated, list(TRANS_COLUMNS)].to_dict("records")
    out.loc[repeated, "q_raw"] = [duplicate_record(r) for r in records]
    out.loc[repeated, ["q_table", "q_reason", "q_detail"]] = ["trans", DUPLICATE_ID, "trans_id"]
    return out


DUPLICATE_ID = str(Reason.DUPLICATE_ID)


def duplicate_record(row: dict) -> str:
    return json.dumps({k: (str(v) if k == "ts" else v) for k, v in row.items()}, default=str)


# --- stage 2: canonical records ---------------------------------------------------------------


def canonical_chunk(parsed: pd.DataFrame, dims: Dimensions) -> pd.DataFrame:
    """Canonical transactions of whole accounts (valid, with ``seq`` and the quality row
    flags) and the rejected ones (reason, detail, raw), in the CANONICAL_SCHEMA layout.

    ``parsed`` holds readable trans rows only; every row of an account must be in the chunk
    (Spark groups by a hash of the account). Rows go in file order, so the first of two equal
    trans_ids is kept, as the loader does.
    """
    trans = parsed.sort_values(LINE, kind="stable")[[*TRANS_COLUMNS, LINE]].reset_index(drop=True)
    raw = RawTables(district=dims.district, client=dims.client, account=dims.account, disp=dims.disp, trans=trans)
    result = czech.to_canonical(raw)
    valid = result.valid
    valid[SEQ] = valid.groupby("account_id", sort=False).cumcount().astype("int64")
    flags = quality.row_flags(valid)
    valid = pd.concat([valid, flags], axis=1).assign(status=STATUS_VALID, reason="", detail="", raw="")
    rejected = result.rejected
    lines = [int(json.loads(r).get(LINE) or 0) for r in rejected["raw"]]
    bad = pd.DataFrame({LINE: lines, SEQ: -1, "status": STATUS_REJECTED, "reason": rejected["reason"].to_numpy(),
                        "detail": rejected["detail"].to_numpy(), "raw": rejected["raw"].to_numpy()})  # fmt: skip
    return typed_canonical(pd.concat([valid, bad], ignore_index=True))


def typed_canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` in the CANONICAL_SCHEMA column order and dtypes (missing values filled)."""
    out = pd.DataFrame(index=frame.index)
    for col in TRANSACTION_SCHEMA:
        s = frame[col.name]
        if col.kind == "str":
            out[col.name] = _text(s)
        elif col.kind == "float":
            out[col.name] = pd.to_numeric(s).astype("float64")
        elif col.kind == "int":
            out[col.name] = pd.to_numeric(s).fillna(-1).astype("int64")
        else:
            out[col.name] = pd.to_datetime(s).astype("datetime64[ns]")
    out[LINE] = pd.to_numeric(frame[LINE]).fillna(0).astype("int64")
    out[SEQ] = pd.to_numeric(frame[SEQ]).fillna(-1).astype("int64")
    for c in ("status", "reason", "detail", "raw"):
        out[c] = _text(frame[c])
    for f in quality.ROW_FLAGS:
        out[f] = frame[f].fillna(False).astype(bool) if f in frame else False
    return out


# --- stage 3: features ------------------------------------------------------------------------


def account_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """Features of whole accounts' transactions (FEATURES_SCHEMA), via ``features_with_sequence``
    (the point-in-time features plus the LSTM's sequence columns).

    Rows are taken in ``seq`` order within the account (ties in time keep that order), as the
    batch and streaming forms do with the loader's order.
    """
    ordered = transactions.sort_values(["account_id", SEQ], kind="stable").reset_index(drop=True)
    features = features_with_sequence(ordered)
    out = pd.DataFrame({
        "trans_id": _text(ordered["trans_id"]), "account_id": _text(ordered["account_id"]),
        "ts": pd.to_datetime(ordered["ts"]).astype("datetime64[ns]"),
        SEQ: pd.to_numeric(ordered[SEQ]).astype("int64"),
    })  # fmt: skip
    return pd.concat([out, features.astype("float64")], axis=1)
