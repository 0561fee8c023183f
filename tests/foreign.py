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


# --- a card table without transaction ids or balances, with fraud labels -----------------------

CARD_CSV = EXAMPLES / "card_fraud.csv"
CARD_MAPPING = EXAMPLES / "card_fraud.mapping.yaml"


def card_table(customers: int = 40, days: int = 61, seed: int = 3) -> pd.DataFrame:
    """Card payments in the layout of the fraud-detection handbook's simulator (Le Borgne et al.):
    TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD, TX_FRAUD_SCENARIO. No id, no balance.

    Frauds as the handbook simulates them: 1 = any amount above 220; 2 = a compromised terminal,
    all its payments of the next 28 days; 3 = a compromised customer, a third of their payments of
    the next 14 days with the amount multiplied by 5. Rows come in time order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2018-04-01")
    terminals = 100
    rows = []
    for c in range(customers):
        mean = rng.uniform(5, 130)
        near = rng.choice(terminals, size=8, replace=False)
        per_day = rng.uniform(0.3, 1.2)
        for d in range(days):
            for _ in range(rng.poisson(per_day)):
                second = int(np.clip(rng.normal(43_200, 20_000), 0, 86_399))
                amount = round(float(np.clip(rng.normal(mean, mean / 2), 0.5, None)), 2)
                rows.append((start + pd.Timedelta(days=d, seconds=second), c, int(rng.choice(near)), amount))
    t = pd.DataFrame(rows, columns=["TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"])
    t = t.sort_values("TX_DATETIME", kind="stable").reset_index(drop=True)
    t["TX_FRAUD_SCENARIO"] = 0
    t.loc[t["TX_AMOUNT"] > 220, "TX_FRAUD_SCENARIO"] = 1
    day = (t["TX_DATETIME"] - start).dt.days
    for d in range(0, days, 6):  # a compromised terminal every 6 days
        term = int(rng.integers(terminals))
        hit = (t["TERMINAL_ID"] == term) & (day >= d) & (day < d + 28) & (t["TX_FRAUD_SCENARIO"] == 0)
        t.loc[hit, "TX_FRAUD_SCENARIO"] = 2
    for d in range(0, days, 4):  # a compromised customer every 4 days
        cust = int(rng.integers(customers))
        pool = t.index[(t["CUSTOMER_ID"] == cust) & (day >= d) & (day < d + 14) & (t["TX_FRAUD_SCENARIO"] == 0)]
        chosen = rng.choice(pool, size=len(pool) // 3, replace=False) if len(pool) else []
        t.loc[chosen, "TX_AMOUNT"] = (t.loc[chosen, "TX_AMOUNT"] * 5).round(2)
        t.loc[chosen, "TX_FRAUD_SCENARIO"] = 3
    t["TX_FRAUD"] = (t["TX_FRAUD_SCENARIO"] > 0).astype(int)
    t["TX_DATETIME"] = t["TX_DATETIME"].dt.strftime("%Y-%m-%d %H:%M:%S")
    return t[["TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD", "TX_FRAUD_SCENARIO"]]


def write_card_example(path=CARD_CSV) -> None:
    """docs/examples/card_fraud.csv: ``card_table()`` plus what real exports hold: one payment
    posted twice (same second, same everything: two ids), a date that does not exist, a text amount."""
    t = card_table().astype(str)
    t = pd.concat([t, t.iloc[[100]]]).sort_index(kind="stable").reset_index(drop=True)  # true duplicate
    t.loc[200, "TX_DATETIME"] = "2018-04-31 10:00:00"
    t.loc[300, "TX_AMOUNT"] = "n/a"
    t.to_csv(path, index=False)
