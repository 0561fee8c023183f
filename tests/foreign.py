"""A foreign schema for tests and for docs/examples: a generic core-banking CSV export.

``to_foreign`` writes canonical transactions the way another bank's export might look: own
column names, D/C flags, own operation and purpose codes, ``dd.mm.yyyy HH:MM`` dates, decimal
commas, only the balance after. ``docs/examples/card_transactions.mapping.yaml`` maps it back.
"""

from __future__ import annotations

import pandas as pd

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "examples"
EXAMPLE_CSV = EXAMPLES / "card_transactions.csv"
EXAMPLE_MAPPING = EXAMPLES / "card_transactions.mapping.yaml"

OPERATION_CODES = {"card_withdrawal": "POS", "cash_credit": "CASH_IN", "collection_other_bank": "TRF_IN",
                   "cash_withdrawal": "ATM", "remittance_other_bank": "TRF_OUT", "none": "SYS"}  # fmt: skip
PURPOSE_CODES = {"insurance": "INS", "statement": "FEE", "interest": "INT", "penalty_interest": "PINT",
                 "household": "HH", "pension": "PEN", "loan_payment": "LOAN", "leasing": "LEAS",
                 "salary": "SAL", "none": ""}  # fmt: skip


def _comma(values: pd.Series) -> pd.Series:
    return values.map(lambda v: f"{v:.2f}".replace(".", ","))


def to_foreign(canonical: pd.DataFrame) -> pd.DataFrame:
    """The export's columns, every cell a string (as a CSV reader would give them)."""
    c = canonical
    return pd.DataFrame({
        "TransactionID": "T" + c["trans_id"].astype(str),
        "AccountNo": "AC-" + c["account_id"].astype(str),
        "CustomerNo": "CU-" + c["client_id"].astype(str),
        "BookingDate": c["ts"].dt.strftime("%d.%m.%Y %H:%M"),
        "Amount": _comma(c["amount"]),
        "DebitCredit": c["direction"].map({"debit": "D", "credit": "C"}),
        "TxnCode": c["operation"].map(OPERATION_CODES),
        "Purpose": c["k_symbol"].map(PURPOSE_CODES),
        "CounterpartyBank": c["partner_bank"].astype(str),
        "CounterpartyAccount": c["partner_account"].astype(str),
        "BalanceAfter": _comma(c["balance_after"]),
        "Region": c["region"].astype(str),
    })  # fmt: skip
