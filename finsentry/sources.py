"""Where a command's transactions come from: a folder of Czech bank files, or one mapped table.

``load_source`` is the one loader of ``finsentry train | evaluate | score | demo``: it returns
the canonical valid rows, the labels beside them (never inside them), and writes the rejected
rows with their reasons beside the command's output (``quarantine_path``), so rows in = valid
+ quarantined, and nothing is dropped silently.

Labels: a mapped table's ``label`` / ``label_type`` columns (``finsentry.mapping``); a Czech
folder's ``labels.csv`` (written by ``finsentry generate --anomaly-rate``). Only evaluation and
model selection read them; training gets ``Source.transactions``, which holds no label column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from finsentry.mapping import MappingError, TableMapping, load_mapped, load_mapping, quarantine_path
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
    mapped = load_mapped(table, mapping)
    for warning in mapped.warnings:
        progress(f"[yellow]warning:[/yellow] {warning}")
    if mapped.derived:
        progress(f"derived from other fields: {', '.join(mapped.derived)}")
    rejected = mapped.result.rejected
    return Source(mapped.result.valid, mapped.labels, table.name, mapped.received, len(rejected),
                  _write_quarantine(rejected, out), tuple(mapped.derived), _reasons(rejected))  # fmt: skip


def load_source(data: Path | str, mapping: TableMapping | Path | str | None = None, out: Path | str | None = None,
                progress: Progress = _silent) -> Source:  # fmt: skip
    """The canonical rows of ``data``: a folder of Czech files, or a CSV/Parquet file (gzip
    allowed, e.g. ``.csv.gz``) read through the YAML ``mapping``. Rejected rows go to
    ``quarantine_path(out)`` with reason, detail and raw record. Raises ``MappingError`` when
    the arguments do not fit (a file without a mapping) or no row is valid."""
    data = Path(data)
    out = None if out is None else Path(out)
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
    detail = ""
    if source.quarantined:
        detail = " (" + ", ".join(f"{k} {v}" for k, v in source.reasons.items()) + ")"
        detail += f" -> {source.quarantine}" if source.quarantine else ""
    progress(f"{source.received:,} rows in {source.name}: {len(source.transactions):,} valid, "
             f"{source.quarantined:,} quarantined{detail}")  # fmt: skip
    if source.transactions.empty:
        raise MappingError(f"no valid rows in {source.name}: all {source.received:,} quarantined"
                           + (f" -> {source.quarantine}" if source.quarantine else ""))  # fmt: skip
    return source
