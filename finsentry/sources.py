"""Where a command's transactions come from: a folder of Czech bank files, one mapped table
(CSV/Parquet file), or a mapped PostgreSQL table or query (``postgresql://...``,
``finsentry.database``).

``load_source`` is the one loader of ``finsentry train | evaluate | score | demo``: it returns
the canonical valid rows, the labels beside them (never inside them), and writes the rejected
rows with their reasons beside the command's output (``quarantine_path``), so rows in = valid
+ quarantined, and nothing is dropped silently.

Labels: a mapped table's ``label`` / ``label_type`` columns (``finsentry.mapping``); a Czech
folder's ``labels.csv`` (written by ``finsentry generate --anomaly-rate``). Only evaluation and
model selection read them; training gets ``Source.transactions``, which holds no label column.

A database source with a watermark column reads only the rows above the mark stored beside
``out`` by the last run (``finsentry.database.watermark_path``); the command calls
``Source.commit_watermark()`` once its own outputs are written, so a failed run leaves the mark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from finsentry.mapping import MappingError, RawTable, TableMapping, load_mapping, quarantine_path, read_table
from finsentry.schema import LABEL_COLUMNS

Progress = Callable[[str], None]


def _silent(_message: str) -> None:
    return None


@dataclass
class Source:
    """Canonical valid rows of one input, and what happened to the rest."""

    transactions: pd.DataFrame  # the canonical columns only (no label)
    labels: pd.DataFrame | None  # is_anomaly (bool), anomaly_type (str, '' = normal); row for row
    name: str
    received: int
    quarantined: int
    quarantine: Path | None  # where the rejected rows were written (None: there were none)
    derived: tuple[str, ...] = ()  # canonical fields computed from others (mapped tables)
    reasons: dict[str, int] | None = None  # quarantined rows per reason
    watermark: dict | None = None  # database source: {"since", "mark", "file"} (finsentry.database)
    _commit: Callable[[], Path | None] | None = None

    def commit_watermark(self) -> Path | None:
        """Store the database read's high-water mark (after the run's outputs are written)."""
        return None if self._commit is None else self._commit()


def _reasons(rejected: pd.DataFrame) -> dict[str, int]:
    if "reason" not in rejected:
        return {"unreadable": len(rejected)} if len(rejected) else {}
    return {str(k): int(v) for k, v in rejected["reason"].value_counts().items()}


def _write_quarantine(rejected: pd.DataFrame, out: Path | None) -> Path | None:
    if out is None or rejected.empty:
        return None
    path = quarantine_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    rejected.to_csv(path, index=False)
    return path


def _czech_labels(folder: Path, valid: pd.DataFrame) -> pd.DataFrame | None:
    path = folder / "labels.csv"
    if not path.is_file():
        return None
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    kind = labels[labels["trans_id"] != ""].drop_duplicates("trans_id").set_index("trans_id")["anomaly_type"]
    anomaly_type = valid["trans_id"].astype(str).map(kind).fillna("").astype(str).to_numpy()
    return pd.DataFrame({"is_anomaly": anomaly_type != "", "anomaly_type": anomaly_type})


def _czech(folder: Path, out: Path | None, progress: Progress) -> Source:
    from finsentry.datasets import czech

    bank = czech.load(folder)
    rejected = bank.rejects()
    written = _write_quarantine(rejected, out)
    bank.require_valid(str(folder), written)  # DatasetError when no transaction is valid
    valid = bank.transactions.valid.drop(columns=[c for c in LABEL_COLUMNS if c in bank.transactions.valid])
    return Source(valid, _czech_labels(folder, valid), folder.name, bank.transactions.received + len(bank.quarantine),
                  len(rejected), written, reasons=_reasons(rejected))  # fmt: skip


def _mapped(table: Path, mapping: TableMapping, out: Path | None, progress: Progress) -> Source:
    return _mapped_rows(read_table(table, mapping), mapping, out, progress, table.name)


def _database(url: str, mapping: TableMapping, out: Path | None, progress: Progress) -> Source:
    from finsentry import database as db

    spec = mapping.database
    mark_file = None if out is None or spec.watermark is None else db.watermark_path(out)
    since = db.read_watermark(mark_file, spec)
    name = db.masked_name(url, spec)
    progress(f"reading {name}" + (f" where {spec.watermark} > {since.value}" if since else ""))
    read = db.read_rows(url, spec, since, progress)
    if spec.watermark is not None and read.mark is None:
        raise MappingError(f"no new rows in {name}: nothing above the stored mark {spec.watermark} = "
                           f"{since.value if since else 'none'} ({mark_file})")  # fmt: skip
    table = _mapped_rows(read.raw, mapping, out, progress, name)
    if read.mark is not None and mark_file is not None:
        mark, rows = read.mark, table.received
        table._commit = lambda: db.write_watermark(mark_file, mark, spec, url, rows)
    table.watermark = {"column": spec.watermark, "since": None if since is None else since.value,
                       "mark": None if read.mark is None else read.mark.value,
                       "file": None if mark_file is None else str(mark_file)}  # fmt: skip
    return table


def _mapped_rows(raw: pd.DataFrame | RawTable, mapping: TableMapping, out: Path | None, progress: Progress,
                 name: str) -> Source:  # fmt: skip
    from finsentry.mapping import map_table

    mapped = map_table(raw, mapping)
    for warning in mapped.warnings:
        progress(f"[yellow]warning:[/yellow] {warning}")
    if mapped.derived:
        progress(f"derived from other fields: {', '.join(mapped.derived)}")
    rejected = mapped.result.rejected
    return Source(mapped.result.valid, mapped.labels, name, mapped.received, len(rejected),
                  _write_quarantine(rejected, out), tuple(mapped.derived), _reasons(rejected))  # fmt: skip


def load_source(data: Path | str, mapping: TableMapping | Path | str | None = None, out: Path | str | None = None,
                progress: Progress = _silent) -> Source:  # fmt: skip
    """The canonical rows of ``data``: a folder of Czech files, or a CSV/Parquet file (gzip
    allowed, e.g. ``.csv.gz``) read through the YAML ``mapping``. Rejected rows go to
    ``quarantine_path(out)`` with reason, detail and raw record. ``data`` may also be a
    ``postgresql://`` URL (the mapping's ``database:`` section says what to read). Raises
    ``MappingError`` when the arguments do not fit (a file without a mapping) or no row is valid,
    ``finsentry.database.DatabaseSourceError`` when the database read fails."""
    from finsentry.database import is_database_url

    out = None if out is None else Path(out)
    if is_database_url(data):
        if mapping is None:
            raise MappingError("a database source needs --mapping MAP.yaml (its database: section names the table)")
        source = _database(str(data), mapping if isinstance(mapping, TableMapping) else load_mapping(mapping),
                           out, progress)  # fmt: skip
        return _checked(source, progress)
    data = Path(data)
    if mapping is not None:
        if not isinstance(mapping, TableMapping):  # a broken mapping is named first, whatever --data is
            mapping = load_mapping(mapping)
        if data.is_dir():
            raise MappingError(f"{data} is a folder: --mapping reads one CSV or Parquet file")
        source = _mapped(data, mapping, out, progress)
    elif data.is_dir():
        source = _czech(data, out, progress)
    else:
        raise MappingError(f"{data} is a file: a foreign table needs --mapping MAP.yaml")
    return _checked(source, progress)


def _checked(source: Source, progress: Progress) -> Source:
    """Report the counts; no valid row at all is an error."""
    detail = ""
    if source.quarantined:
        detail = " (" + ", ".join(f"{k} {v}" for k, v in source.reasons.items()) + ")"
        detail += f" -> {source.quarantine}" if source.quarantine else ""
    progress(f"{source.received:,} rows in {source.name}: {len(source.transactions):,} valid, "
             f"{source.quarantined:,} quarantined{detail}")  # fmt: skip
    if source.transactions.empty and not source.received:
        raise MappingError(f"no rows in {source.name}: the table is empty (a header at most)")
    if source.transactions.empty:
        raise MappingError(f"no valid rows in {source.name}: all {source.received:,} quarantined"
                           + (f" -> {source.quarantine}" if source.quarantine else ""))  # fmt: skip
    return source
