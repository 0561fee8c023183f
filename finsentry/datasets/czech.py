"""The 1999 Czech bank dataset (PKDD'99, "Berka") in both public forms.

* **asc** — the original files (``account.asc``, ``trans.asc``, ...): ``;``-separated with a
  header row, quoted strings, dates ``YYMMDD``, Czech codes (``PRIJEM``, ``VYBER KARTOU``,
  ``SIPO``...), ``client.birth_number`` = ``YYMMDD`` with +50 on the month for women.
* **tsv** — the Teradata form (``fin_account.tsv``, ``fin_trans.tsv``, ...): tab-separated, no
  header, English abbreviations (``C``/``D``/``P``, ``CCW``, ``HH``...), dates ``yyyy-mm-dd``
  shifted +20 years, amounts, balances and payments divided by 10.

Readers translate a form into ``RawTables`` (original scale: 1990s dates, CZK); writers do the
inverse, so the synthetic bank exercises the same loader path as the real files. Both forms
may carry an extra trailing time-of-day column on ``trans`` (``time`` HHMMSS in asc,
``HH:MM:SS`` in tsv); the real files have none (time 00:00). A round trip through the tsv form
is exact to 0.1 CZK (the form keeps 2 decimals of amounts divided by 10).

Unreadable lines never abort a read: they are returned as a quarantine frame with a reason.
"""

from __future__ import annotations

import fnmatch
import gzip
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from finsentry.datasets.raw import REQUIRED_TABLES, TABLE_COLUMNS, RawTables
from finsentry.schema import (
    CHANNEL_OF_OPERATION,
    DIRECTION_OF_TYPE,
    NOT_UTF8,
    Direction,
    Frequency,
    Operation,
    Purpose,
    Reason,
    TxnType,
    ValidationResult,
    validate_frame,
    wrong_field_count,
)

Form = Literal["asc", "tsv"]
TERADATA_YEARS = 20
TERADATA_SCALE = 10.0


class DatasetError(Exception):
    """The bank files cannot be read at all (missing folder or table, unknown form)."""


# --- code tables: one per form, used in both directions ---------------------------------------

ASC_CODES: dict[str, dict[str, str]] = {
    "type": {"PRIJEM": TxnType.CREDIT, "VYDAJ": TxnType.DEBIT, "VYBER": TxnType.CASH_WITHDRAWAL},
    "operation": {
        "VYBER KARTOU": Operation.CARD_WITHDRAWAL, "VKLAD": Operation.CASH_CREDIT,
        "PREVOD Z UCTU": Operation.COLLECTION, "VYBER": Operation.CASH_WITHDRAWAL,
        "PREVOD NA UCET": Operation.REMITTANCE, "": Operation.NONE,
    },
    "k_symbol": {
        "POJISTNE": Purpose.INSURANCE, "SLUZBY": Purpose.STATEMENT, "UROK": Purpose.INTEREST,
        "SANKC. UROK": Purpose.PENALTY_INTEREST, "SIPO": Purpose.HOUSEHOLD,
        "DUCHOD": Purpose.PENSION, "UVER": Purpose.LOAN, "LEASING": Purpose.LEASING,
        "": Purpose.NONE,
    },
    "frequency": {
        "POPLATEK MESICNE": Frequency.MONTHLY, "POPLATEK TYDNE": Frequency.WEEKLY,
        "POPLATEK PO OBRATU": Frequency.AFTER_TRANSACTION,
    },
    "disp_type": {"OWNER": "OWNER", "DISPONENT": "DISPONENT"},
}  # fmt: skip
TSV_CODES: dict[str, dict[str, str]] = {
    "type": {"C": TxnType.CREDIT, "D": TxnType.DEBIT, "P": TxnType.CASH_WITHDRAWAL},
    "operation": {
        "CCW": Operation.CARD_WITHDRAWAL, "CIC": Operation.CASH_CREDIT,
        "COB": Operation.COLLECTION, "WIC": Operation.CASH_WITHDRAWAL,
        "ROB": Operation.REMITTANCE, "": Operation.NONE,
    },
    "k_symbol": {
        "IN": Purpose.INSURANCE, "ST": Purpose.STATEMENT, "IC": Purpose.INTEREST,
        "IO": Purpose.PENALTY_INTEREST, "HH": Purpose.HOUSEHOLD, "PE": Purpose.PENSION,
        "LO": Purpose.LOAN, "LE": Purpose.LEASING, "": Purpose.NONE,
    },
    "frequency": {"M": Frequency.MONTHLY, "W": Frequency.WEEKLY, "T": Frequency.AFTER_TRANSACTION},
    "disp_type": {"O": "OWNER", "D": "DISPONENT"},
}  # fmt: skip
# Purposes with no code in the public forms are written empty (the real data leaves salaries
# uncharacterised); they read back as Purpose.NONE.
UNCODED_PURPOSES = (Purpose.SALARY,)

# Column layout of each file, in file order, mapped to RawTables columns.
ASC_FILES: dict[str, tuple[str, ...]] = {
    "account": ("account_id", "district_id", "frequency", "date"),
    "client": ("client_id", "birth_number", "district_id"),
    "disp": ("disp_id", "client_id", "account_id", "type"),
    "district": tuple(f"A{i}" for i in range(1, 17)),
    "order": ("order_id", "account_id", "bank_to", "account_to", "amount", "k_symbol"),
    "trans": ("trans_id", "account_id", "date", "type", "operation", "amount", "balance",
              "k_symbol", "bank", "account"),
    "loan": ("loan_id", "account_id", "date", "amount", "duration", "payments", "status"),
    "card": ("card_id", "disp_id", "type", "issued"),
}  # fmt: skip
TSV_FILES: dict[str, tuple[str, ...]] = {
    "account": ("account_id", "district_id", "create_date", "frequency"),
    "client": ("client_id", "birth_date", "gender", "district_id"),
    "disp": ("disp_id", "client_id", "account_id", "disp_type"),
    "district": TABLE_COLUMNS["district"],
    "order": ("order_id", "account_id", "bank_to", "account_to", "amount", "category"),
    "trans": ("trans_id", "account_id", "trans_date", "amount", "balance", "trans_type",
              "operation", "category", "other_bank_id", "other_account_id"),
    "loan": ("loan_id", "account_id", "granted_date", "amount", "duration", "payments", "status"),
    "card": ("card_id", "disp_id", "card_type", "issued_date"),
}  # fmt: skip
TIME_COLUMN = {"asc": "time", "tsv": "trans_time"}
INT_COLUMNS = {
    "account": ("account_id", "district_id"), "client": ("client_id", "district_id"),
    "disp": ("disp_id", "client_id", "account_id"), "order": ("order_id", "account_id"),
    "trans": ("trans_id", "account_id"), "loan": ("loan_id", "account_id", "duration"),
    "card": ("card_id", "disp_id"), "district": ("district_id",),
}  # fmt: skip
MONEY_COLUMNS = {"order": ("amount",), "trans": ("amount", "balance"),
                 "loan": ("amount", "payments")}  # fmt: skip
QUARANTINE_COLUMNS = ("table", "line", "reason", "detail", "raw")


# --- finding the files ------------------------------------------------------------------------


def table_file_names(names: Iterable[str], table: str, form: Form) -> list[str]:
    """The file names, among ``names`` (one folder's listing), that hold ``table`` in ``form``;
    best first. Used for local folders and for object-store listings (the Glue jobs)."""
    present = set(names)
    stem = f"fin_{table}" if form == "tsv" else table
    ext = "tsv" if form == "tsv" else "asc"
    found = [f"{stem}.{ext}", f"{stem}.{ext}.gz"]
    if table == "trans" and form == "asc":
        found += sorted(fnmatch.filter(present, "trans*.asc.gz")) + sorted(fnmatch.filter(present, "trans*.asc"))
    return [n for n in found if n in present]


def form_of_names(names: Iterable[str], where: str = "the folder") -> Form:
    """Which public form a listing holds: ``asc`` or ``tsv`` (judged by the trans file)."""
    names = list(names)
    for form in ("asc", "tsv"):
        if table_file_names(names, "trans", form):
            return form
    raise DatasetError(
        f"{where} holds neither trans.asc (original PKDD'99 form) nor fin_trans.tsv "
        "(Teradata form)"
    )


def _candidates(directory: Path, table: str, form: Form) -> list[Path]:
    names = [p.name for p in directory.iterdir() if p.is_file()]
    return [directory / n for n in table_file_names(names, table, form)]


def detect_form(directory: Path | str) -> Form:
    """Which public form the folder holds: ``asc`` or ``tsv`` (judged by the trans file)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"no such directory: {directory}")
    return form_of_names([p.name for p in directory.iterdir() if p.is_file()], str(directory))


def _read_text(path: Path) -> str:
    """The file's text; bytes that are not UTF-8 become U+FFFD (their lines are quarantined)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:  # truncated, or not gzip at all
            raise DatasetError(f"{path.name}: truncated or corrupt gzip file ({err}); "
                               "nothing was read from it: copy it again") from err  # fmt: skip
    return decode_text(raw)


def decode_text(raw: bytes) -> str:
    """Bytes as read from a bank file -> text, undecodable bytes as U+FFFD. The one decoding of
    both engines: the parser quarantines every line holding U+FFFD (``NOT_UTF8``)."""
    return raw.decode("utf-8", errors="replace")


# --- parsing ----------------------------------------------------------------------------------


@dataclass
class _Parsed:
    frame: pd.DataFrame  # string columns named as in the file, plus "_line"
    quarantine: list[pd.DataFrame]


def _split_lines(text: str, sep: str, names: tuple[str, ...], table: str, header: bool,
                 extra: str | None) -> _Parsed:  # fmt: skip
    """Split into fields (strings); lines with the wrong field count are quarantined."""
    lines = pd.Series(text.splitlines(), dtype=object)
    first = 1 if header else 0
    line_no = np.arange(len(lines)) + 1
    lines, line_no = lines.iloc[first:], line_no[first:]
    keep = lines.str.strip() != ""
    lines, line_no = lines[keep], line_no[keep.to_numpy()]
    if header and extra and len(text) and extra in text.splitlines()[0]:
        names = (*names, extra)
    fields = lines.str.split(sep, regex=False)
    counts = fields.str.len().to_numpy()
    allowed = {len(names)} | ({len(names) + 1} if extra and not header else set())
    undecodable = lines.str.contains("\ufffd", regex=False).to_numpy(dtype=bool)
    good = np.isin(counts, list(allowed)) & ~undecodable
    details = [NOT_UTF8 if u else wrong_field_count(c, len(names))
               for c, u in zip(counts, undecodable, strict=True)]  # fmt: skip
    bad = pd.DataFrame({
        "table": table, "line": line_no[~good], "reason": str(Reason.MALFORMED),
        "detail": np.asarray(details, dtype=object)[~good], "raw": lines[~good].to_numpy(),
    })  # fmt: skip
    width = max(allowed)
    rows = [f + [""] * (width - len(f)) for f in fields[good]]
    cols = list(names) + ([extra] if width > len(names) else [])
    frame = pd.DataFrame(rows, columns=cols[:width] if rows else cols[:width], dtype=object)
    if frame.empty:
        frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols[:width]})
    frame = frame.apply(lambda s: s.str.strip().str.strip('"').str.strip())
    frame["_line"] = line_no[good]
    frame["_raw"] = lines[good].to_numpy()
    return _Parsed(frame=frame, quarantine=[bad] if len(bad) else [])


def _reject(parsed: _Parsed, table: str, mask: np.ndarray, reason: Reason, col: str) -> np.ndarray:
    """Move the rows under ``mask`` to the quarantine; return the mask of rows kept."""
    if not mask.any():
        return ~mask
    f = parsed.frame
    parsed.quarantine.append(pd.DataFrame({
        "table": table, "line": f["_line"].to_numpy()[mask], "reason": str(reason),
        "detail": col, "raw": f["_raw"].to_numpy()[mask],
    }))  # fmt: skip
    parsed.frame = f[~mask].reset_index(drop=True)
    return ~mask


def _to_number(parsed: _Parsed, table: str, col: str, required: bool = True) -> None:
    """Numeric column; optional columns turn unknown values ("?" in district.asc) into NaN."""
    s = parsed.frame[col]
    if not required:
        parsed.frame[col] = pd.to_numeric(s, errors="coerce")
        return
    num = pd.to_numeric(s, errors="coerce")
    empty = (s == "").to_numpy()
    bad = num.isna().to_numpy() & ~empty
    _reject(parsed, table, bad, Reason.WRONG_TYPE, col)
    if required:
        _reject(parsed, table, (parsed.frame[col] == "").to_numpy(), Reason.MISSING_FIELD, col)
    parsed.frame[col] = pd.to_numeric(parsed.frame[col], errors="coerce")


def _to_date(parsed: _Parsed, table: str, col: str, fmt: str, years: int = 0) -> None:
    width = 10 if fmt == "%Y-%m-%d" else 6
    dates = pd.to_datetime(parsed.frame[col].str.slice(0, width), format=fmt, errors="coerce")
    keep = _reject(parsed, table, dates.isna().to_numpy(), Reason.UNPARSEABLE_DATE, col)
    dates = pd.Series(dates.to_numpy()[keep])
    if years:
        dates = dates - pd.DateOffset(years=years)
    parsed.frame[col] = dates.to_numpy().astype("datetime64[ns]")


def _translate(parsed: _Parsed, table: str, col: str, codes: dict[str, str]) -> None:
    s = parsed.frame[col].str.upper() if col != "k_symbol" else parsed.frame[col]
    mapped = s.map(codes)
    _reject(parsed, table, mapped.isna().to_numpy(), Reason.INVALID_VALUE, col)
    parsed.frame[col] = parsed.frame[col].map(codes).astype(str)


def _decode_birth_number(parsed: _Parsed) -> None:
    """YYMMDD with +50 on the month for women -> birth_date, gender."""
    bn = parsed.frame["birth_number"]
    ok = bn.str.fullmatch(r"\d{6}").fillna(False).to_numpy()
    _reject(parsed, "client", ~ok, Reason.UNPARSEABLE_DATE, "birth_number")
    bn = parsed.frame["birth_number"]
    month = bn.str.slice(2, 4).astype(int)
    female = month > 50
    month = np.where(female, month - 50, month)
    text = "19" + bn.str.slice(0, 2) + pd.Series(month, index=bn.index).map("{:02d}".format)
    text = text + bn.str.slice(4, 6)
    dates = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    _reject(parsed, "client", dates.isna().to_numpy(), Reason.UNPARSEABLE_DATE, "birth_number")
    keep = dates.notna().to_numpy()
    parsed.frame["birth_date"] = dates[keep].to_numpy()
    parsed.frame["gender"] = np.where(female[keep], "F", "M")


def _finish(parsed: _Parsed, table: str, rename: dict[str, str]) -> pd.DataFrame:
    frame = parsed.frame.rename(columns=rename)
    for col in INT_COLUMNS.get(table, ()):
        frame[col] = frame[col].astype("int64")
    return frame[list(TABLE_COLUMNS[table])].reset_index(drop=True)


def _parse_asc(table: str, text: str) -> _Parsed:
    extra = TIME_COLUMN["asc"] if table == "trans" else None
    p = _split_lines(text, ";", ASC_FILES[table], table, header=True, extra=extra)
    for col in INT_COLUMNS[table]:
        _to_number(p, table, "A1" if (table == "district") else col)
    if table == "district":
        for col in ASC_FILES["district"][3:]:
            _to_number(p, table, col, required=False)
        p.frame.columns = [*TABLE_COLUMNS["district"], "_line", "_raw"]
        p.frame["district_id"] = p.frame["district_id"].astype("int64")
        return p
    for col in MONEY_COLUMNS.get(table, ()):
        _to_number(p, table, col)
    if table == "client":
        _decode_birth_number(p)
    if table in ("account", "trans", "loan"):
        _to_date(p, table, "date", "%y%m%d")
    if table == "card":
        _to_date(p, table, "issued", "%y%m%d")
    if table == "account":
        _translate(p, table, "frequency", ASC_CODES["frequency"])
    if table == "disp":
        _translate(p, table, "type", ASC_CODES["disp_type"])
    if table == "order":
        _translate(p, table, "k_symbol", ASC_CODES["k_symbol"])
    if table == "trans":
        for col in ("type", "operation", "k_symbol"):
            _translate(p, table, col, ASC_CODES[col])
        _add_time(p, table, TIME_COLUMN["asc"], "%H%M%S")
    return p


def _add_time(p: _Parsed, table: str, col: str, fmt: str) -> None:
    """Add the optional time-of-day column (synthetic data) to the date."""
    if col not in p.frame.columns:
        return
    midnight = "000000" if fmt == "%H%M%S" else "00:00:00"
    t = p.frame[col]
    secs = pd.to_datetime(t.where(t != "", midnight), format=fmt, errors="coerce")
    keep = _reject(p, table, secs.isna().to_numpy(), Reason.UNPARSEABLE_DATE, col)
    secs = pd.Series(secs.to_numpy()[keep])
    offset = (secs - secs.dt.normalize()).to_numpy()
    date_col = "date" if "date" in p.frame.columns else "trans_date"
    p.frame[date_col] = p.frame[date_col].to_numpy() + offset


def _parse_tsv(table: str, text: str) -> _Parsed:
    extra = TIME_COLUMN["tsv"] if table == "trans" else None
    p = _split_lines(text, "\t", TSV_FILES[table], table, header=False, extra=extra)
    for col in INT_COLUMNS[table]:
        _to_number(p, table, col)
    if table == "district":
        for col in TABLE_COLUMNS["district"][3:]:
            _to_number(p, table, col, required=False)
        return p
    for col in MONEY_COLUMNS.get(table, ()):
        _to_number(p, table, col)
        p.frame[col] = (p.frame[col] * TERADATA_SCALE).round(2)
    date_cols = {"account": "create_date", "client": "birth_date", "trans": "trans_date",
                 "loan": "granted_date", "card": "issued_date"}  # fmt: skip
    if table in date_cols:
        years = 0 if table == "client" else TERADATA_YEARS
        _to_date(p, table, date_cols[table], "%Y-%m-%d", years=years)
    if table == "account":
        _translate(p, table, "frequency", TSV_CODES["frequency"])
    if table == "disp":
        _translate(p, table, "disp_type", TSV_CODES["disp_type"])
    if table == "order":
        _translate(p, table, "category", TSV_CODES["k_symbol"])
    if table == "trans":
        _translate(p, table, "trans_type", TSV_CODES["type"])
        _translate(p, table, "operation", TSV_CODES["operation"])
        _translate(p, table, "category", TSV_CODES["k_symbol"])
        _add_time(p, table, TIME_COLUMN["tsv"], "%H:%M:%S")
    return p


RENAME = {
    "asc": {
        "account": {"date": "created"}, "client": {}, "disp": {"type": "disp_type"},
        "district": {}, "order": {}, "trans": {"date": "ts"},
        "loan": {"date": "granted"}, "card": {"type": "card_type"},
    },
    "tsv": {
        "account": {"create_date": "created"}, "client": {}, "disp": {},
        "district": {}, "order": {"category": "k_symbol"},
        "trans": {"trans_date": "ts", "trans_type": "type", "category": "k_symbol",
                  "other_bank_id": "bank", "other_account_id": "account"},
        "loan": {"granted_date": "granted"}, "card": {"issued_date": "issued"},
    },
}  # fmt: skip


def read_tables(directory: Path | str, keep_line: bool = False) -> tuple[RawTables, pd.DataFrame]:
    """Read every table of either form; return the tables and the quarantined lines.

    ``keep_line`` adds the file line number ``_line`` to the trans table."""
    directory = Path(directory)
    form = detect_form(directory)
    tables: dict[str, pd.DataFrame] = {}
    quarantine: list[pd.DataFrame] = []
    for table in TABLE_COLUMNS:
        paths = _candidates(directory, table, form)
        if not paths:
            if table in REQUIRED_TABLES:
                name = f"fin_{table}.tsv" if form == "tsv" else f"{table}.asc"
                raise DatasetError(f"missing {name} in {directory} ({form} form)")
            continue
        tables[table], bad = parse_table(table, _read_text(paths[0]), form, keep_line and table == "trans")
        require_rows(table, tables[table], bad, paths[0].name)
        quarantine.append(bad)
    q = pd.concat(quarantine, ignore_index=True) if quarantine else _no_quarantine()
    return RawTables(**tables), q


def require_rows(table: str, frame: pd.DataFrame, unread: pd.DataFrame, name: str) -> None:
    """A required relation other than trans (district, client, account, disp) with no readable
    row is a ``DatasetError``: every transaction would lose its client, region or account.
    (An empty trans file is no error here: it reads as no transactions, which the callers judge.)"""
    if table == "trans" or table not in REQUIRED_TABLES or len(frame):
        return
    lines = f"all {len(unread):,} lines unreadable, e.g. {unread['detail'].iloc[0]}" if len(unread) else "no data lines"
    raise DatasetError(f"{name}: no readable {table} rows ({lines}); the {table} table is required")


def _no_quarantine() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in QUARANTINE_COLUMNS})


def parse_table(table: str, text: str, form: Form, keep_line: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse one table's file text: the table (``TABLE_COLUMNS``, plus the file line number
    ``_line`` when ``keep_line``) and its unreadable lines (``QUARANTINE_COLUMNS``).

    The one parser of both forms: ``read_tables`` calls it per file, the Spark ingest per
    chunk of lines (the header line first for the asc form).
    """
    parsed = _parse_asc(table, text) if form == "asc" else _parse_tsv(table, text)
    lines = parsed.frame["_line"].to_numpy()
    frame = _finish(parsed, table, RENAME[form][table])
    if keep_line:
        frame["_line"] = lines.astype("int64")
    bad = pd.concat(parsed.quarantine, ignore_index=True) if parsed.quarantine else _no_quarantine()
    return frame, bad


# --- writing ----------------------------------------------------------------------------------


def _inverse(codes: dict[str, str]) -> dict[str, str]:
    inv = {str(v): k for k, v in codes.items()}
    for p in UNCODED_PURPOSES:
        inv.setdefault(str(p), "")
    return inv


def _money(values: pd.Series) -> pd.Series:
    return values.map("{:.2f}".format)


def _asc_date(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.strftime("%y%m%d")


def _quoted(values: pd.Series) -> pd.Series:
    return '"' + values.astype(str) + '"'


def _asc_frame(table: str, raw: RawTables) -> pd.DataFrame:
    t = raw.table(table)
    if table == "district":
        out = t.copy()
        for c in ("district_name", "region"):
            out[c] = _quoted(out[c])
        out.columns = list(ASC_FILES["district"])
        return out
    if table == "account":
        return pd.DataFrame({"account_id": t["account_id"], "district_id": t["district_id"],
                             "frequency": _quoted(t["frequency"].map(_inverse(ASC_CODES["frequency"]))),
                             "date": _asc_date(t["created"])})  # fmt: skip
    if table == "client":
        bd = pd.to_datetime(t["birth_date"])
        month = bd.dt.month + np.where(t["gender"] == "F", 50, 0)
        bn = bd.dt.strftime("%y") + month.map("{:02d}".format) + bd.dt.strftime("%d")
        return pd.DataFrame({"client_id": t["client_id"], "birth_number": _quoted(bn),
                             "district_id": t["district_id"]})  # fmt: skip
    if table == "disp":
        return pd.DataFrame({"disp_id": t["disp_id"], "client_id": t["client_id"],
                             "account_id": t["account_id"], "type": _quoted(t["disp_type"])})  # fmt: skip
    if table == "order":
        return pd.DataFrame({"order_id": t["order_id"], "account_id": t["account_id"],
                             "bank_to": _quoted(t["bank_to"]), "account_to": _quoted(t["account_to"]),
                             "amount": _money(t["amount"]),
                             "k_symbol": _quoted(t["k_symbol"].map(_inverse(ASC_CODES["k_symbol"])))})  # fmt: skip
    if table == "trans":
        ts = pd.to_datetime(t["ts"])
        return pd.DataFrame({
            "trans_id": t["trans_id"], "account_id": t["account_id"], "date": ts.dt.strftime("%y%m%d"),
            "type": _quoted(t["type"].map(_inverse(ASC_CODES["type"]))),
            "operation": _quoted(t["operation"].map(_inverse(ASC_CODES["operation"]))),
            "amount": _money(t["amount"]), "balance": _money(t["balance"]),
            "k_symbol": _quoted(t["k_symbol"].map(_inverse(ASC_CODES["k_symbol"]))),
            "bank": t["bank"].astype(str), "account": t["account"].astype(str),
            "time": ts.dt.strftime("%H%M%S"),
        })  # fmt: skip
    if table == "loan":
        return pd.DataFrame({"loan_id": t["loan_id"], "account_id": t["account_id"],
                             "date": _asc_date(t["granted"]), "amount": _money(t["amount"]),
                             "duration": t["duration"], "payments": _money(t["payments"]),
                             "status": _quoted(t["status"])})  # fmt: skip
    return pd.DataFrame({"card_id": t["card_id"], "disp_id": t["disp_id"],
                         "type": _quoted(t["card_type"]),
                         "issued": _asc_date(t["issued"]) + " 00:00:00"})  # fmt: skip


def _tsv_date(values: pd.Series, years: int = TERADATA_YEARS) -> pd.Series:
    return (pd.to_datetime(values) + pd.DateOffset(years=years)).dt.strftime("%Y-%m-%d")


def _tsv_money(values: pd.Series) -> pd.Series:
    return (values / TERADATA_SCALE).round(2).map("{:.2f}".format)


def _tsv_frame(table: str, raw: RawTables) -> pd.DataFrame:
    t = raw.table(table).copy()
    if table == "district":
        return t[list(TABLE_COLUMNS["district"])]
    if table == "account":
        return pd.DataFrame({"a": t["account_id"], "d": t["district_id"],
                             "c": _tsv_date(t["created"]),
                             "f": t["frequency"].map(_inverse(TSV_CODES["frequency"]))})  # fmt: skip
    if table == "client":
        return pd.DataFrame({"c": t["client_id"], "b": _tsv_date(t["birth_date"], 0),
                             "g": t["gender"], "d": t["district_id"]})  # fmt: skip
    if table == "disp":
        return pd.DataFrame({"d": t["disp_id"], "c": t["client_id"], "a": t["account_id"],
                             "t": t["disp_type"].map(_inverse(TSV_CODES["disp_type"]))})  # fmt: skip
    if table == "order":
        return pd.DataFrame({"o": t["order_id"], "a": t["account_id"], "b": t["bank_to"],
                             "t": t["account_to"], "m": _tsv_money(t["amount"]),
                             "k": t["k_symbol"].map(_inverse(TSV_CODES["k_symbol"]))})  # fmt: skip
    if table == "trans":
        ts = pd.to_datetime(t["ts"])
        return pd.DataFrame({
            "i": t["trans_id"], "a": t["account_id"], "d": _tsv_date(ts),
            "m": _tsv_money(t["amount"]), "b": _tsv_money(t["balance"]),
            "t": t["type"].map(_inverse(TSV_CODES["type"])),
            "o": t["operation"].map(_inverse(TSV_CODES["operation"])),
            "k": t["k_symbol"].map(_inverse(TSV_CODES["k_symbol"])),
            "ob": t["bank"].astype(str), "oa": t["account"].astype(str),
            "tm": ts.dt.strftime("%H:%M:%S"),
        })  # fmt: skip
    if table == "loan":
        return pd.DataFrame({"l": t["loan_id"], "a": t["account_id"], "g": _tsv_date(t["granted"]),
                             "m": _tsv_money(t["amount"]), "d": t["duration"],
                             "p": _tsv_money(t["payments"]), "s": t["status"]})  # fmt: skip
    return pd.DataFrame({"c": t["card_id"], "d": t["disp_id"], "t": t["card_type"],
                         "i": _tsv_date(t["issued"])})  # fmt: skip


def _joined(frame: pd.DataFrame, sep: str, missing: str) -> pd.Series:
    """One text line per row; unknown values written as ``missing``."""
    if frame.empty:
        return pd.Series([], dtype=str)
    text = frame.astype(object).where(frame.notna(), missing).astype(str)
    out = text.iloc[:, 0]
    for col in text.columns[1:]:
        out = out + sep + text[col]
    return out


def write_tables(raw: RawTables, directory: Path | str, form: Form = "asc",
                 compress: bool = False) -> list[Path]:  # fmt: skip
    """Write the tables as the real dataset's files in ``form``; returns the paths written."""
    if form not in ("asc", "tsv"):
        raise ValueError(f"unknown form {form!r}: use 'asc' or 'tsv'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in TABLE_COLUMNS:
        if table not in REQUIRED_TABLES and raw.table(table).empty:
            continue
        if form == "asc":
            frame = _asc_frame(table, raw)
            header = ";".join(frame.columns if table == "district"
                              else [f'"{c}"' for c in frame.columns])  # fmt: skip
            body = _joined(frame, ";", missing="?" if table == "district" else "")
            text = header + "\n" + "\n".join(body) + ("\n" if len(frame) else "")
            name = f"{table}.asc"
        else:
            frame = _tsv_frame(table, raw)
            body = _joined(frame, "\t", missing="")
            text = "\n".join(body) + ("\n" if len(frame) else "")
            name = f"fin_{table}.tsv"
        data = text.encode("utf-8")
        if compress:
            name, data = name + ".gz", gzip.compress(data)
        path = directory / name
        path.write_bytes(data)
        paths.append(path)
    return paths


# --- canonical records ------------------------------------------------------------------------


def to_canonical(raw: RawTables) -> ValidationResult:
    """Join the relations into canonical transactions and validate them.

    client_id is the account's OWNER; district and region are the client's. Valid rows are
    sorted by account (numeric), time, then trans_id (numeric).
    """
    t = raw.trans
    owners = raw.disp[raw.disp["disp_type"] == "OWNER"].drop_duplicates("account_id")
    clients = raw.client.merge(raw.district[["district_id", "region"]], on="district_id",
                               how="left")  # fmt: skip
    accounts = raw.account[["account_id", "frequency"]].merge(
        owners[["account_id", "client_id"]], on="account_id", how="left"
    ).merge(clients, on="client_id", how="left")
    frame = t.merge(accounts, on="account_id", how="left", sort=False)
    direction = frame["type"].map({str(k): str(v) for k, v in DIRECTION_OF_TYPE.items()})
    signed = np.where(direction == Direction.DEBIT, -frame["amount"], frame["amount"])
    ts = pd.to_datetime(frame["ts"])
    age = (ts - pd.to_datetime(frame["birth_date"])).dt.days / 365.25
    canonical = pd.DataFrame({
        "trans_id": frame["trans_id"].astype(str),
        "account_id": frame["account_id"].astype(str),
        "client_id": frame["client_id"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "ts": ts, "amount": frame["amount"], "direction": direction, "type": frame["type"],
        "operation": frame["operation"], "k_symbol": frame["k_symbol"],
        "partner_bank": frame["bank"].fillna("").astype(str),
        "partner_account": frame["account"].fillna("").astype(str).str.replace(r"\.0$", "", regex=True),
        "balance_before": (frame["balance"] - signed).round(2),
        "balance_after": frame["balance"],
        "channel": frame["operation"].map({str(k): str(v) for k, v in CHANNEL_OF_OPERATION.items()}),
        "frequency": frame["frequency"], "client_age": age.round(1),
        "client_gender": frame["gender"].fillna(""),
        "district_id": frame["district_id"], "region": frame["region"].fillna(""),
    })  # fmt: skip
    for extra in (c for c in t.columns if c not in TABLE_COLUMNS["trans"]):
        canonical[extra] = frame[extra].to_numpy()  # e.g. the file line number: kept on valid rows
    result = validate_frame(canonical, known_accounts=raw.account["account_id"].astype(str))
    result.valid = _chain_same_time(_sorted(result.valid))
    return result


def _sorted(v: pd.DataFrame) -> pd.DataFrame:
    key = pd.DataFrame({"a": pd.to_numeric(v["account_id"], errors="coerce"), "t": v["ts"],
                        "i": pd.to_numeric(v["trans_id"], errors="coerce")})  # fmt: skip
    return v.loc[key.sort_values(["a", "t", "i"], kind="stable").index].reset_index(drop=True)


def _chain_same_time(v: pd.DataFrame) -> pd.DataFrame:
    """Order postings that share an account and timestamp so that balances chain.

    The real files give dates only, and trans_id order within a day does not follow the
    balances (in the sample, 60 % of consecutive postings chain in trans_id order, 94 % after
    this). Within each such group, the posting whose
    balance_before is no other member's balance_after comes first, then each next one starts
    from the previous balance_after. Groups that do not chain keep their order.
    """
    dup = v.duplicated(["account_id", "ts"], keep=False).to_numpy()
    if not dup.any():
        return v
    order = np.arange(len(v))
    groups = v[dup].groupby(["account_id", "ts"], sort=False).indices
    sub = np.flatnonzero(dup)
    before = np.round(v["balance_before"].to_numpy() * 100).astype(np.int64)
    after = np.round(v["balance_after"].to_numpy() * 100).astype(np.int64)
    for members in groups.values():
        rows = sub[members]
        chained = _chain(rows, before, after)
        if chained is not None:
            order[np.sort(rows)] = chained
    return v.iloc[order].reset_index(drop=True)


def _chain(rows: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray | None:
    afters = {int(after[r]) for r in rows}
    starts = [r for r in rows if int(before[r]) not in afters]
    if len(starts) != 1:
        return None
    by_before: dict[int, list[int]] = {}
    for r in rows:
        by_before.setdefault(int(before[r]), []).append(int(r))
    chain, current = [], starts[0]
    by_before[int(before[current])].remove(current)
    while True:
        chain.append(current)
        nxt = by_before.get(int(after[current]))
        if not nxt:
            break
        current = nxt.pop(0)
    return np.array(chain) if len(chain) == len(rows) else None


def with_transactions(raw: RawTables, transactions: pd.DataFrame) -> RawTables:
    """``raw`` with its trans table replaced by canonical transactions (e.g. after injection),
    so that they can be written back as the dataset's files."""
    trans = pd.DataFrame({
        "trans_id": pd.to_numeric(transactions["trans_id"]).astype("int64"),
        "account_id": pd.to_numeric(transactions["account_id"]).astype("int64"),
        "ts": transactions["ts"].to_numpy(), "type": transactions["type"].astype(str),
        "operation": transactions["operation"].astype(str), "amount": transactions["amount"],
        "balance": transactions["balance_after"], "k_symbol": transactions["k_symbol"].astype(str),
        "bank": transactions["partner_bank"].astype(str),
        "account": transactions["partner_account"].astype(str),
    })  # fmt: skip
    return RawTables(district=raw.district, client=raw.client, account=raw.account, disp=raw.disp,
                     trans=trans.reset_index(drop=True), order=raw.order, loan=raw.loan, card=raw.card)  # fmt: skip


def orders_frame(raw: RawTables) -> pd.DataFrame:
    """Permanent orders: account_id, partner_bank, partner_account, amount, k_symbol."""
    o = raw.order
    return pd.DataFrame({
        "account_id": o["account_id"].astype(str), "partner_bank": o["bank_to"].astype(str),
        "partner_account": o["account_to"].astype(str), "amount": o["amount"].astype(float),
        "k_symbol": o["k_symbol"].astype(str),
    })  # fmt: skip


def districts_frame(raw: RawTables) -> pd.DataFrame:
    return raw.district[["district_id", "district_name", "region"]].copy()


@dataclass
class LoadedBank:
    """Everything a run needs from a folder of bank files."""

    transactions: ValidationResult
    orders: pd.DataFrame
    districts: pd.DataFrame
    quarantine: pd.DataFrame  # lines that could not be read at all
    form: Form

    def summary(self) -> dict[str, object]:
        trans_lines = self.quarantine[self.quarantine["table"] == "trans"]
        return {
            "form": self.form,
            "transactions_received": self.transactions.received + len(trans_lines),
            "valid": len(self.transactions.valid),
            "rejected": len(self.transactions.rejected) + len(trans_lines),
            "rejected_by_reason": {
                **self.transactions.reason_counts(),
                **{f"read:{k}": int(v) for k, v in self.quarantine["reason"].value_counts().items()},
            },
        }


    def rejects(self) -> pd.DataFrame:
        """Every row that did not make it, with its reason: unreadable lines of any table
        (stage ``read``) and invalid transactions (stage ``validate``)."""
        read = self.quarantine.assign(stage="read")
        invalid = self.transactions.rejected.assign(stage="validate", table="trans")
        columns = ["stage", *QUARANTINE_COLUMNS]
        out = pd.concat([read.reindex(columns=columns), invalid.reindex(columns=columns)], ignore_index=True)
        return out.astype({"line": "Int64"})  # no file line for a rejected (joined) transaction

    def require_valid(self, where: str, rejects: Path | None = None) -> None:
        """``DatasetError`` when no transaction is valid (an empty or header-only trans file, or
        every row quarantined); ``rejects`` names where the quarantined rows were written."""
        if len(self.transactions.valid):
            return
        s = self.summary()
        if not s["transactions_received"]:
            raise DatasetError(f"no transactions in {where}: the trans file has no data lines")
        reasons = ", ".join(f"{k} {v:,}" for k, v in s["rejected_by_reason"].items())
        raise DatasetError(f"no valid transactions in {where}: all {s['transactions_received']:,} quarantined "
                           f"({reasons})" + (f" -> {rejects}" if rejects else ""))  # fmt: skip


def load(directory: Path | str) -> LoadedBank:
    """Read a folder of either form into canonical transactions, orders and districts."""
    raw, quarantine = read_tables(directory)
    return LoadedBank(
        transactions=to_canonical(raw),
        orders=orders_frame(raw),
        districts=districts_frame(raw),
        quarantine=quarantine,
        form=detect_form(directory),
    )


