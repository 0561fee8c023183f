"""Foreign transaction tables mapped onto the canonical record (``finsentry score --mapping``).

A small YAML file says how a table of another schema (CSV or Parquet) becomes
``finsentry.schema.TRANSACTION_SCHEMA``::

    columns:            # canonical field: source column
      trans_id: TransactionID
      ts: BookingDate
    values:             # canonical field: {source value: canonical value}; others pass through
      direction: {D: debit, C: credit}
    constants:          # canonical field: one value for every row
      k_symbol: none
    date_format: "%d.%m.%Y %H:%M"   # strptime format of ts (default: ISO 8601)
    ts_unit: h                      # or: ts is a number of units after ts_origin (PaySim's step)
    ts_origin: "2024-01-01"
    amount_scale: 0.01              # source amount x scale = canonical amount (cents -> units)
    signed_amount: true             # negative amount = debit (gives direction when unmapped)
    csv: {sep: ";", decimal: ","}   # read options for CSV files
    label: TX_FRAUD                 # optional: 1/0 (true/false, yes/no) anomaly label column
    label_type: TX_FRAUD_SCENARIO   # optional: the kind of anomaly (recall is shown per value)
    database:                       # only for --data postgresql://... (finsentry.database)
      table: payments.transactions  # or query: "SELECT ... FROM ..." (one of the two)
      watermark: booked_at          # optional: read only rows newer than the last run's mark
      key: TransactionID            # optional: order (and Spark's partitioning) when no watermark
      chunk_rows: 50000             # rows per fetch from the server-side cursor

Fields the source lacks are derived where the record allows it: ``type`` from ``direction``
(debit or credit), ``direction`` from ``type`` or the amount's sign,
``channel`` from ``operation``, one balance from the other and the signed amount. A required
field that is neither mapped, constant nor derivable is a ``MappingError`` naming it; an
unmapped optional field is filled with its empty value and reported as a warning saying what
degrades. Values that still do not fit (an unknown code, an unparseable date, a text amount)
are not errors: the rows go through ``schema.validate_frame`` and are quarantined with a reason,
so ``received == valid + rejected`` always holds.

``trans_id`` is optional. Unmapped, it is derived from the row (``derive_trans_ids``):
``"h"`` + the first 20 hex digits of SHA-256 over the texts of every canonical field the mapping
gives the row (mapped, constant or derived, in schema order, after value maps, date parsing and
amount scaling; an empty cell is ``""``), joined by U+001F, then U+001E and the row's occurrence
number among identical rows in file order (0, 1, ...). Re-reading the same file with the same
mapping gives the same ids; true duplicates stay distinct; a changed mapping changes the ids.

Balances are optional too: with neither ``balance_before`` nor ``balance_after`` both are NaN
(never invented), and the balance features cannot be fed (``finsentry train`` says which).

``label`` and ``label_type`` name source columns that only evaluation and model selection read
(``MappedTable.labels``, never part of the canonical rows). A label cell is a number (0 =
normal, anything else = anomaly) or true/false, yes/no; any other cell, an empty one too, is
quarantined (``invalid_value``, detail ``label``).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finsentry.schema import (
    CHANNEL_OF_OPERATION,
    COLUMN_BY_NAME,
    DIRECTION_OF_TYPE,
    NOT_UTF8,
    REJECTION_COLUMNS,
    TRANSACTION_SCHEMA,
    Direction,
    Reason,
    TxnType,
    ValidationResult,
    _raw_text,
    validate_frame,
    wrong_field_count,
)
from finsentry.yaml_files import read_yaml

MAPPING_KEYS = frozenset({"columns", "values", "constants", "date_format", "ts_unit", "ts_origin",
                          "amount_scale", "signed_amount", "csv", "description", "label", "label_type",
                          "database"})  # fmt: skip
DATABASE_KEYS = frozenset({"table", "query", "watermark", "key", "chunk_rows"})
DEFAULT_CHUNK_ROWS = 50_000
CSV_OPTIONS = frozenset({"sep", "decimal", "thousands", "encoding", "quotechar"})
TS_UNITS = ("s", "m", "h", "D")  # pandas offset units for numeric timestamps
_FIELD_COUNT = re.compile(r"Expected \d+ fields? in line \d+, saw \d+")  # pandas' C parser on a too-long line

# What a run loses when an optional field is not mapped (the warning text).
DEGRADES: dict[str, str] = {
    "partner_bank": "partner features see no partner bank: 'unusual_partner' is judged on the account only",
    "partner_account": "partner features see no partner account: 'unusual_partner' cannot fire",
    "frequency": "statement frequency left empty (not used by the detectors)",
    "client_age": "client age left empty (not used by the detectors)",
    "client_gender": "client gender left empty (not used by the detectors)",
    "district_id": "district left empty (-1 in the scored rows and the views)",
    "region": "region left empty: views and the report show it as 'unknown'",
    "balance_before": "no balances: the balance features (balance_error, balance_gap, drain_share) are NaN and not "
                      "fed to the detectors; the 'balance_mismatch' rule cannot fire",
}
LABEL_TRUE = frozenset({"true", "yes", "y", "t"})
LABEL_FALSE = frozenset({"false", "no", "n", "f"})
ANY_ANOMALY = "labelled"  # anomaly_type of a positive label when the mapping has no label_type


class MappingError(ValueError):
    """The mapping file is wrong, or the table lacks what the mapping names."""


@dataclass(frozen=True)
class DatabaseSpec:
    """Where a database source's rows come from (the mapping's ``database:`` section)."""

    table: str | None = None  # [schema.]table
    query: str | None = None  # a SELECT (read as a sub-query)
    watermark: str | None = None  # column of the incremental read (rows > the last run's mark)
    key: str | None = None  # ordering / partitioning column when there is no watermark
    chunk_rows: int = DEFAULT_CHUNK_ROWS


@dataclass(frozen=True)
class TableMapping:
    """A parsed mapping file (see the module docstring for the YAML form)."""

    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    date_format: str | None = None
    ts_unit: str | None = None
    ts_origin: str | None = None
    amount_scale: float = 1.0
    signed_amount: bool = False
    csv: dict[str, str] = field(default_factory=dict)
    label: str | None = None  # source column of the anomaly label (evaluation only)
    label_type: str | None = None  # source column of the anomaly's kind (evaluation only)
    database: DatabaseSpec = field(default_factory=DatabaseSpec)  # --data postgresql://... only


@dataclass
class MappedTable:
    """A foreign table after mapping and validation; ``received == len(valid) + len(rejected)``."""

    result: ValidationResult
    warnings: list[str]
    derived: list[str]  # canonical fields computed from others
    labels: pd.DataFrame | None = None  # is_anomaly, anomaly_type; row for row with result.valid

    @property
    def received(self) -> int:
        return self.result.received


def _known_fields(section: str, names: Any) -> None:
    unknown = sorted(set(map(str, names)) - set(COLUMN_BY_NAME))
    if unknown:
        raise MappingError(f"{section}: {', '.join(unknown)} not in the canonical record "
                           f"(fields: {', '.join(COLUMN_BY_NAME)})")  # fmt: skip


def parse_mapping(data: Any, source: str = "mapping") -> TableMapping:
    """Check a mapping's structure, names and values; raise ``MappingError`` with the offending key."""
    if not isinstance(data, dict):
        raise MappingError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - MAPPING_KEYS)
    if unknown:
        raise MappingError(f"{source}: unknown keys {', '.join(unknown)} (allowed: {', '.join(sorted(MAPPING_KEYS))})")
    sections = {key: _section(data, key, source) for key in ("columns", "values", "constants", "csv")}
    columns = {str(k): str(v) for k, v in sections["columns"].items()}
    values, constants = sections["values"], sections["constants"]
    _known_fields(f"{source}: columns", columns)
    _known_fields(f"{source}: values", values)
    _known_fields(f"{source}: constants", constants)
    both = sorted(set(columns) & set(map(str, constants)))
    if both:
        raise MappingError(f"{source}: {', '.join(both)} both mapped to a column and given a constant")
    if any(not isinstance(v, dict) for v in values.values()):
        raise MappingError(f"{source}: each entry of values must map source values to canonical values")
    _check_constants(constants, source)
    csv_options = _csv_options(sections["csv"], source)
    date_format, ts_unit, ts_origin = _time_options(data, source)
    for key in ("label", "label_type"):
        if data.get(key) is not None and not isinstance(data[key], str | int):
            raise MappingError(f"{source}: {key} must name one source column")
    if data.get("label_type") is not None and data.get("label") is None:
        raise MappingError(f"{source}: label_type needs label (the column saying which rows are anomalies)")
    return TableMapping(
        columns=columns,
        values={str(k): {str(a): str(b) for a, b in v.items()} for k, v in values.items()},
        constants={str(k): v for k, v in constants.items()},
        date_format=date_format, ts_unit=ts_unit, ts_origin=ts_origin,
        amount_scale=_amount_scale(data.get("amount_scale", 1.0), source),
        signed_amount=_flag(data.get("signed_amount", False), "signed_amount", source), csv=csv_options,
        label=None if data.get("label") is None else str(data["label"]),
        label_type=None if data.get("label_type") is None else str(data["label_type"]),
        database=_database_spec(_section(data, "database", source), source),
    )  # fmt: skip


def _database_spec(section: dict, source: str) -> DatabaseSpec:
    """The ``database:`` section: table or query (not both), column names, a positive chunk size."""
    unknown = sorted(set(map(str, section)) - DATABASE_KEYS)
    if unknown:
        raise MappingError(f"{source}: database keys {', '.join(unknown)} not supported "
                           f"({', '.join(sorted(DATABASE_KEYS))})")  # fmt: skip
    for key in ("table", "query", "watermark", "key"):
        if section.get(key) is not None and (not isinstance(section[key], str) or not section[key].strip()):
            raise MappingError(f"{source}: database.{key} must be non-empty text")
    if section.get("table") and section.get("query"):
        raise MappingError(f"{source}: give database.table or database.query, not both")
    rows = section.get("chunk_rows", DEFAULT_CHUNK_ROWS)
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= 10_000_000:
        raise MappingError(f"{source}: database.chunk_rows must be an integer from 1 to 10,000,000, got {rows!r}")
    return DatabaseSpec(table=section.get("table"), query=section.get("query"), watermark=section.get("watermark"),
                        key=section.get("key"), chunk_rows=rows)  # fmt: skip


def _section(data: dict, key: str, source: str) -> dict:
    """A sub-mapping of the file (absent or empty = none)."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{source}: {key} must be a mapping, got {type(value).__name__}")
    return value


def _check_constants(constants: dict, source: str) -> None:
    """A constant is one plain value (text, number, boolean or empty), not a list or mapping."""
    for name, value in constants.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise MappingError(f"{source}: constants.{name} must be one value, got {type(value).__name__}")


def _flag(value: Any, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise MappingError(f"{source}: {key} must be true or false, got {value!r}")
    return value


def _amount_scale(value: Any, source: str) -> float:
    try:
        scale = float(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise MappingError(f"{source}: amount_scale must be a number, got {value!r}") from err
    if isinstance(value, bool) or not np.isfinite(scale) or scale <= 0:
        raise MappingError(f"{source}: amount_scale must be a positive number, got {value!r}")
    return scale


def _time_options(data: dict, source: str) -> tuple[str | None, str | None, str | None]:
    """(date_format, ts_unit, ts_origin), each checked: a strptime format pandas accepts, a unit
    of ``TS_UNITS`` with a parseable origin, never both."""
    date_format, ts_unit, origin = data.get("date_format"), data.get("ts_unit"), data.get("ts_origin")
    if date_format is not None:
        if not isinstance(date_format, str):
            raise MappingError(f"{source}: date_format must be a strptime format text, e.g. \"%d.%m.%Y\", "
                               f"got {date_format!r}")  # fmt: skip
        try:
            pd.to_datetime(pd.Series(["2024-01-01"]), format=date_format, errors="coerce")
        except (ValueError, TypeError) as err:
            raise MappingError(f"{source}: date_format {date_format!r} is not a valid format: {err}") from err
    if ts_unit is not None and (not isinstance(ts_unit, str) or ts_unit not in TS_UNITS or origin is None):
        raise MappingError(f"{source}: ts_unit must be one of {', '.join(TS_UNITS)} and needs ts_origin")
    if ts_unit is not None and date_format:
        raise MappingError(f"{source}: give date_format or ts_unit, not both")
    if origin is not None:
        try:
            if pd.isna(pd.Timestamp(str(origin))):
                raise ValueError("empty")
        except (ValueError, TypeError, OverflowError) as err:
            raise MappingError(f"{source}: ts_origin {origin!r} is not a date (e.g. \"2024-01-01\")") from err
    return date_format or None, ts_unit, None if origin is None else str(origin)


def _csv_options(options: dict, source: str) -> dict[str, str]:
    """The ``csv:`` read options, checked: known names, text values, one-character quotechar,
    decimal and thousands, a known text encoding, a separator that is a character or a regex."""
    unknown = sorted(set(map(str, options)) - CSV_OPTIONS)
    if unknown:
        raise MappingError(f"{source}: csv options {', '.join(unknown)} not supported "
                           f"({', '.join(sorted(CSV_OPTIONS))})")  # fmt: skip
    for key, value in options.items():
        if not isinstance(value, str) or value == "":
            raise MappingError(f"{source}: csv.{key} must be non-empty text, got {value!r}")
    for key in ("quotechar", "decimal", "thousands"):
        if key in options and len(options[key]) != 1:
            raise MappingError(f"{source}: csv.{key} must be one character, got {options[key]!r}")
    if "decimal" in options and options["decimal"] == options.get("thousands"):
        raise MappingError(f"{source}: csv.decimal and csv.thousands must differ")
    if "encoding" in options:
        _check_encoding(options["encoding"], source)
    sep = options.get("sep")
    if sep is not None and len(sep) > 1:  # pandas reads a longer separator as a regular expression
        try:
            re.compile(sep)
        except re.error as err:
            raise MappingError(f"{source}: csv.sep {sep!r} is longer than one character, so a regular "
                               f"expression, and not a valid one: {err}") from err  # fmt: skip
    return dict(options)


def _check_encoding(name: str, source: str) -> None:
    try:
        info = codecs.lookup(name)
    except LookupError as err:
        raise MappingError(f"{source}: csv.encoding {name!r} is not a known encoding (e.g. utf-8, latin-1)") from err
    if not getattr(info, "_is_text_encoding", True):
        raise MappingError(f"{source}: csv.encoding {name!r} is not a text encoding")


def load_mapping(path: Path | str) -> TableMapping:
    path = Path(path)
    return parse_mapping(read_yaml(path, MappingError, f"no such mapping file: {path}"), source=path.name)


@dataclass
class RawTable:
    """A file's rows as read, and its lines that are not a row of the table (``malformed``:
    reason, detail and raw line each; they join the rejections, so the counts add up)."""

    rows: pd.DataFrame
    malformed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(REJECTION_COLUMNS), dtype=object))


def read_table(path: Path | str, mapping: TableMapping) -> RawTable:
    """The file's rows as read (CSV: every cell a string, empty = missing; Parquet: as typed).

    A CSV line with more fields than the header, or (in a UTF-8 file, the default encoding)
    with bytes that are not UTF-8, is not a row: it is set apart as ``malformed`` with its
    reason (``N fields, expected M`` / ``NOT_UTF8``), as the Czech files' parser does; a line
    with fewer fields reads its missing cells as empty (a required one is then quarantined by
    validation). A file the reader cannot read at all (not Parquet, not in the mapping's
    non-UTF-8 encoding, a truncated ``.gz``, an unterminated quote) is a ``MappingError`` naming
    the file and the reader's reason."""
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"no such data file: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        return RawTable(_read(path, "Parquet", pd.read_parquet))
    if ".csv" in suffixes or ".tsv" in suffixes or ".txt" in suffixes:
        options = {"sep": "\t" if ".tsv" in suffixes else ",", **mapping.csv}
        for number_option in ("decimal", "thousands"):  # applied when numbers are parsed (_numeric)
            options.pop(number_option, None)
        return _read_csv(path, options)
    raise MappingError(f"{path.name}: expected a .csv, .tsv or .parquet file")


def _read_csv(path: Path, options: dict[str, str]) -> RawTable:
    """``read_table`` of a CSV file: pandas' C parser, and only when it meets a line with too many
    fields, its Python parser, which hands such lines over (``on_bad_lines``) instead of failing."""
    lenient = codecs.lookup(options.get("encoding", "utf-8")).name in ("utf-8", "utf-8-sig")
    options = {**options, "dtype": str, "keep_default_na": False,
               "encoding_errors": "replace" if lenient else "strict"}  # fmt: skip
    long_lines: list[list[str]] = []
    try:
        rows = _read(path, "CSV", pd.read_csv, **options)
    except MappingError as err:
        if not (isinstance(err.__cause__, pd.errors.ParserError) and _FIELD_COUNT.search(str(err.__cause__))):
            raise
        rows = _read(path, "CSV", pd.read_csv, engine="python", on_bad_lines=long_lines.append, **options)
    sep = options["sep"] if len(options["sep"]) == 1 else " "  # a regex separator: the fields joined by a space
    raw = [sep.join(fields) for fields in long_lines]
    details = [wrong_field_count(len(fields), len(rows.columns)) for fields in long_lines]
    if lenient and len(rows):
        undecodable = rows.apply(lambda col: col.str.contains("\ufffd", regex=False, na=False)).any(axis=1)
        raw += [sep.join(r) for r in rows[undecodable].fillna("").itertuples(index=False)]
        details += [NOT_UTF8] * int(undecodable.sum())
        rows = rows[~undecodable.to_numpy()].reset_index(drop=True)
    details = [NOT_UTF8 if "\ufffd" in line else d for line, d in zip(raw, details, strict=True)]
    malformed = pd.DataFrame({"reason": pd.Series(str(Reason.MALFORMED), index=range(len(raw)), dtype=object),
                              "detail": pd.Series(details, dtype=object),
                              "raw": pd.Series([line[:4096] for line in raw], dtype=object)})  # fmt: skip
    return RawTable(rows, malformed)


def _read(path: Path, kind: str, reader, **options: Any) -> pd.DataFrame:
    """``reader(path, **options)``; what it raises on a bad file becomes a ``MappingError``."""
    try:
        return reader(path, **options)
    except UnicodeDecodeError as err:
        encoding = options.get("encoding", "utf-8")
        raise MappingError(f"{path.name}: not {encoding} text ({err.reason}): set the file's encoding "
                           "under csv: (e.g. csv: {encoding: latin-1})") from err  # fmt: skip
    except (ValueError, OSError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as err:
        raise MappingError(f"{path.name}: cannot be read as {kind}: {' '.join(str(err).split())}") from err


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _numeric(values: pd.Series, scale: float, csv: dict[str, str]) -> pd.Series:
    """Scaled numbers; non-numeric cells keep their raw text so validation names them.

    Text cells are read with the file's ``thousands`` separator and ``decimal`` mark."""
    text_cells = values.map(lambda v: isinstance(v, str))
    cleaned = values.astype(object)
    if text_cells.any():
        as_text = values[text_cells].astype(str).str.strip()
        if csv.get("thousands"):
            as_text = as_text.str.replace(csv["thousands"], "", regex=False)
        if csv.get("decimal", ".") != ".":
            as_text = as_text.str.replace(csv["decimal"], ".", regex=False)
        cleaned = cleaned.where(~text_cells, as_text)
    num = pd.to_numeric(cleaned, errors="coerce") * scale
    text = values.astype(object)
    raw_bad = num.isna() & text.notna() & (text.astype(str) != "")
    return num.astype(object).where(~raw_bad, text)


def _timestamps(values: pd.Series, m: TableMapping) -> pd.Series:
    """ISO 8601 text for the validator; cells that do not parse keep their raw text."""
    if m.ts_unit is not None:
        offsets = pd.to_numeric(values, errors="coerce")
        parsed = pd.Timestamp(m.ts_origin) + pd.to_timedelta(offsets, unit=m.ts_unit)
    elif m.date_format:
        parsed = pd.to_datetime(values.astype(str), format=m.date_format, errors="coerce")
    else:
        return values
    iso = parsed.dt.strftime("%Y-%m-%dT%H:%M:%S")
    return iso.astype(object).where(parsed.notna(), values.astype(object))


def apply_mapping(raw: pd.DataFrame, m: TableMapping) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Canonical-named raw values (not yet validated), the warnings, and the derived fields."""
    sources = [*m.columns.values(), *(c for c in (m.label, m.label_type) if c is not None)]
    absent = sorted({src for src in sources if src not in raw.columns})
    if absent:
        raise MappingError(f"the table has no column {', '.join(absent)} (it has: {', '.join(map(str, raw.columns))})")
    n = len(raw)
    out = pd.DataFrame(index=raw.index)
    for canonical, source in m.columns.items():
        s = raw[source]
        if COLUMN_BY_NAME[canonical].kind == "str" and pd.api.types.is_integer_dtype(s):
            s = s.astype(str)
        out[canonical] = s
    for canonical, value in m.constants.items():
        out[canonical] = pd.Series([value] * n, index=raw.index, dtype=object)
    for canonical, codes in m.values.items():
        if canonical in out:
            out[canonical] = out[canonical].map(lambda v, c=codes: v if _is_null(v) else c.get(str(v), v))
    if "ts" in out:
        out["ts"] = _timestamps(out["ts"], m)
    derived: list[str] = []
    if "amount" in out:
        amount = _numeric(out["amount"], m.amount_scale, m.csv)
        if m.signed_amount:
            num = pd.to_numeric(amount, errors="coerce")
            if "direction" not in out:
                out["direction"] = np.where(num < 0, str(Direction.DEBIT), str(Direction.CREDIT))
                out.loc[num.isna(), "direction"] = None
                derived.append("direction")
            amount = amount.where(num.isna(), num.abs())
        out["amount"] = amount
    for col in ("balance_before", "balance_after"):
        if col in out:
            out[col] = _numeric(out[col], m.amount_scale, m.csv)
    derived += _derive(out)
    missing = [c.name for c in TRANSACTION_SCHEMA if c.required and c.name not in out and c.name != "trans_id"]
    if missing:
        raise MappingError(
            f"required fields not mapped: {', '.join(missing)}. Map each to a source column under "
            "'columns:', or give it under 'constants:' (e.g. k_symbol: none)")  # fmt: skip
    if "trans_id" not in out:  # a deterministic key from the row (module docstring)
        out["trans_id"] = derive_trans_ids(out)
        derived.append("trans_id")
    warnings = [f"optional field {c.name} not mapped: {DEGRADES.get(c.name, 'left empty')}"
                for c in TRANSACTION_SCHEMA if not c.required and c.name not in out
                and not c.name.startswith("balance_")]  # fmt: skip
    if "balance_before" not in out:  # neither balance (one is derived from the other): NaN, never invented
        out["balance_before"] = out["balance_after"] = np.nan
        warnings.append(f"optional fields balance_before, balance_after not mapped: {DEGRADES['balance_before']}")
    return out, warnings, derived


def _derive(out: pd.DataFrame) -> list[str]:
    """Fill derivable canonical fields from the others (in place); return their names."""
    derived = []
    if "direction" not in out and "type" in out:
        out["direction"] = out["type"].map(lambda v: DIRECTION_OF_TYPE.get(str(v), v))
        derived.append("direction")
    if "type" not in out and "direction" in out:  # the bank type VYBER (cash withdrawal) is rare: debit
        type_of = {str(Direction.DEBIT): str(TxnType.DEBIT), str(Direction.CREDIT): str(TxnType.CREDIT)}
        out["type"] = out["direction"].map(lambda v: type_of.get(str(v), v))
        derived.append("type")
    if "channel" not in out and "operation" in out:
        out["channel"] = out["operation"].map(lambda v: CHANNEL_OF_OPERATION.get(str(v), v))
        derived.append("channel")
    if "direction" in out and "amount" in out:
        amount = pd.to_numeric(out["amount"], errors="coerce")
        signed = amount.where(out["direction"].astype(str) != Direction.DEBIT, -amount)
        if "balance_before" not in out and "balance_after" in out:
            out["balance_before"] = (pd.to_numeric(out["balance_after"], errors="coerce") - signed).round(2)
            derived.append("balance_before")
        elif "balance_after" not in out and "balance_before" in out:
            out["balance_after"] = (pd.to_numeric(out["balance_before"], errors="coerce") + signed).round(2)
            derived.append("balance_after")
    return derived


def cell_text(value: Any) -> str:
    """A cell as text, the one rule for derived trans_ids and for the Spark file path's cells:
    empty for a missing value, ``repr`` for a float, ``str`` otherwise."""
    if _is_null(value) or value is pd.NaT:
        return ""
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def derive_trans_ids(frame: pd.DataFrame) -> pd.Series:
    """Deterministic ids for a table without one (see the module docstring for the recipe).

    ``frame`` holds the canonical fields the mapping gives each row (not yet validated)."""
    fields = [c.name for c in TRANSACTION_SCHEMA if c.name in frame.columns and c.name != "trans_id"]
    texts = [frame[f].map(cell_text).astype(str) for f in fields]
    key = texts[0].str.cat(texts[1:], sep="\x1f") if texts else pd.Series("", index=frame.index)
    occurrence = key.groupby(key, sort=False).cumcount().astype(str)
    full = key.str.cat(occurrence, sep="\x1e")
    ids = [("h" + hashlib.sha256(k.encode("utf-8")).hexdigest()[:20]) for k in full]
    return pd.Series(ids, index=frame.index, dtype=object)


def _label_values(raw: pd.DataFrame, m: TableMapping) -> tuple[pd.DataFrame, np.ndarray]:
    """Per source row: is_anomaly (bool) and anomaly_type (str, '' when normal); and a mask of
    rows whose label cell is not a label (quarantined)."""
    cells = raw[m.label].astype(object)
    text = cells.map(lambda v: "" if _is_null(v) else str(v).strip().lower())
    num = pd.to_numeric(text.where(text != "", None), errors="coerce")
    positive = (num.notna() & (num != 0)) | text.isin(LABEL_TRUE)
    negative = (num == 0) | text.isin(LABEL_FALSE)
    bad = ~(positive | negative).to_numpy()
    if m.label_type is None:
        kind = pd.Series(ANY_ANOMALY, index=raw.index, dtype=object)
    else:
        kind = raw[m.label_type].map(lambda v: "" if _is_null(v) else str(v).strip())
        as_num = pd.to_numeric(kind.where(kind != "", None), errors="coerce")
        whole = as_num.notna() & (as_num == as_num.round())  # 2.0 (a float column) reads as 2
        kind = kind.where(~whole, as_num.map(lambda v: str(int(v)) if pd.notna(v) else ""))
        kind = kind.where(kind != "", "unspecified")
    labels = pd.DataFrame({"is_anomaly": positive.to_numpy(dtype=bool),
                           "anomaly_type": np.where(positive, kind.astype(str), "")})  # fmt: skip
    return labels, bad


def _quarantine_bad_labels(result: ValidationResult, raw: pd.DataFrame, labels: pd.DataFrame,
                           bad: np.ndarray) -> tuple[ValidationResult, pd.DataFrame]:  # fmt: skip
    """Move valid rows whose label cell is not a label to the rejections; align the labels."""
    pos = result.valid_positions if result.valid_positions is not None else np.arange(len(result.valid))
    drop = bad[pos]
    if drop.any():
        moved = pd.DataFrame({"reason": str(Reason.INVALID_VALUE), "detail": "label",
                              "raw": [_raw_text(raw.iloc[i].to_dict()) for i in pos[drop]]})  # fmt: skip
        result = ValidationResult(
            valid=result.valid.loc[~drop].reset_index(drop=True),
            rejected=pd.concat([result.rejected, moved], ignore_index=True),
            valid_positions=pos[~drop],
            rejected_positions=np.concatenate([result.rejected_positions, pos[drop]])
            if result.rejected_positions is not None else None,
        )  # fmt: skip
        pos = pos[~drop]
    return result, labels.iloc[pos].reset_index(drop=True)


def load_mapped(data: Path | str, mapping: TableMapping | Path | str) -> MappedTable:
    """Read a foreign table, map it, and validate it into canonical rows plus rejections.

    The label columns (``label``, ``label_type``), when mapped, come back apart in ``labels``,
    row for row with the valid rows: they never enter the canonical frame."""
    m = mapping if isinstance(mapping, TableMapping) else load_mapping(mapping)
    return map_table(read_table(data, m), m)


def map_table(raw: pd.DataFrame | RawTable, m: TableMapping) -> MappedTable:
    """``load_mapped`` of rows already read (a file's, a database query's): map, validate, labels.
    A ``RawTable``'s malformed lines join the rejections (position -1: no row of the table)."""
    malformed = raw.malformed if isinstance(raw, RawTable) else None
    raw = raw.rows if isinstance(raw, RawTable) else raw
    frame, warnings, derived = apply_mapping(raw, m)
    result = validate_frame(frame)
    labels = None
    if m.label is not None:
        label_frame, bad = _label_values(raw.reset_index(drop=True), m)
        result, labels = _quarantine_bad_labels(result, raw.reset_index(drop=True), label_frame, bad)
    if malformed is not None and len(malformed):
        result = ValidationResult(
            valid=result.valid, valid_positions=result.valid_positions,
            rejected=pd.concat([result.rejected, malformed], ignore_index=True),
            rejected_positions=None if result.rejected_positions is None else
            np.concatenate([result.rejected_positions, np.full(len(malformed), -1)]),
        )  # fmt: skip
    return MappedTable(result=result, warnings=warnings, derived=derived, labels=labels)


def quarantine_path(out: Path | str) -> Path:
    """Where ``finsentry score`` writes a mapped table's rejected rows: beside its output."""
    out = Path(out)
    return out.with_name(f"{out.stem}.quarantine.csv")
