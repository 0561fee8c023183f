"""A synthetic bank as a PostgreSQL table and as its CSV export (the same rows, the same text):
``finsentry.local.postgres``' bank table, and its mapping written as a YAML file."""

from __future__ import annotations

from pathlib import Path

import yaml

from finsentry.local.postgres import BANK_COLUMNS, BANK_TYPES, bank_table
from finsentry.local.postgres import bank_mapping as mapping_data

__all__ = ["BANK_COLUMNS", "BANK_TYPES", "bank_mapping", "bank_table"]


def bank_mapping(path: Path, table: str = "bank.transactions", watermark: str | None = "booked_at",
                 **database) -> Path:  # fmt: skip
    """Write the mapping YAML of ``bank_table`` (the database read: ``table``, ``watermark``...)."""
    path.write_text(yaml.safe_dump(mapping_data(table, watermark, **database)))
    return path
