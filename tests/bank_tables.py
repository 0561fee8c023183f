"""A synthetic bank as a PostgreSQL table and as its CSV export (the same rows, the same text).

``bank_table`` is the canonical record in another bank's column names and codes; ``BANK_TYPES``
its column types in the database; ``bank_mapping`` the mapping YAML that reads it back (its
``database:`` section names the table).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

BANK_TYPES = {
    "tx_id": "text", "account_no": "bigint", "customer_no": "integer", "booked_at": "timestamp",
    "amount": "numeric(14,2)", "dc": "text",
    "operation": "text", "purpose": "text", "partner_bank": "text", "partner_account": "text",
    "balance_after": "numeric(14,2)", "region": "text", "is_fraud": "boolean",
}  # fmt: skip
COLUMNS = {"trans_id": "tx_id", "account_id": "account_no", "client_id": "customer_no", "ts": "booked_at",
           "amount": "amount", "direction": "dc",
           "operation": "operation", "k_symbol": "purpose", "partner_bank": "partner_bank",
           "partner_account": "partner_account", "balance_after": "balance_after", "region": "region"}  # fmt: skip


def bank_table(canonical: pd.DataFrame) -> pd.DataFrame:
    """Canonical rows in the database's columns, in (booked_at, tx_id) order: text cells as
    PostgreSQL prints them (timestamps ``YYYY-MM-DD HH:MM:SS``, two-decimal amounts)."""
    c = canonical
    table = pd.DataFrame({
        "tx_id": "tx" + c["trans_id"].astype(str).str.zfill(9), "account_no": c["account_id"].astype(str),
        "customer_no": c["client_id"].astype(str),
        "booked_at": c["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"), "amount": c["amount"].map(lambda v: f"{v:.2f}"),
        "dc": c["direction"].map({"debit": "D", "credit": "C"}), "operation": c["operation"].astype(str),
        "purpose": c["k_symbol"].astype(str), "partner_bank": c["partner_bank"].astype(str),
        "partner_account": c["partner_account"].astype(str),
        "balance_after": c["balance_after"].map(lambda v: f"{v:.2f}"), "region": c["region"].astype(str),
        "is_fraud": "f",
    })  # fmt: skip
    return table.sort_values(["booked_at", "tx_id"], kind="stable").reset_index(drop=True)


def bank_mapping(path: Path, table: str = "bank.transactions", watermark: str | None = "booked_at",
                 **database) -> Path:  # fmt: skip
    """Write the mapping YAML of ``bank_table`` (the database read: ``table``, ``watermark``...)."""
    spec = {"table": table, **({"watermark": watermark} if watermark else {}), "key": "tx_id", **database}
    spec = {k: v for k, v in spec.items() if v is not None}
    path.write_text(yaml.safe_dump({"columns": COLUMNS, "values": {"direction": {"D": "debit", "C": "credit"}},
                                    "label": "is_fraud", "database": spec}))  # fmt: skip
    return path
