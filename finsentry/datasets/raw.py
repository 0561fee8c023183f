"""The bank's raw tables, independent of the file form they were read from or written to.

Both public forms of the PKDD'99 dataset (original ``.asc`` with Czech codes; Teradata
``fin_*.tsv`` with English abbreviations, dates +20 years, amounts /10) and the synthetic
generator meet here: readers translate a form *into* ``RawTables``, writers translate
``RawTables`` *into* a form. Values use the vocabularies of ``finsentry.schema`` (e.g.
``Operation.CARD_WITHDRAWAL``), dates are ``datetime64[ns]`` at the original (1990s) scale,
and amounts are in CZK at the original scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

DISTRICT_COLUMNS = (
    "district_id", "district_name", "region", "num_inhabitants", "num_municipalities_lt500",
    "num_municipalities_500to1999", "num_municipalities_2000to9999",
    "num_municipalities_gt10000", "num_cities", "ratio_urban", "average_salary",
    "unemployment_rate95", "unemployment_rate96", "num_entrep_per1000", "num_crimes95",
    "num_crimes96",
)  # fmt: skip
CLIENT_COLUMNS = ("client_id", "birth_date", "gender", "district_id")
ACCOUNT_COLUMNS = ("account_id", "district_id", "frequency", "created")
DISP_COLUMNS = ("disp_id", "client_id", "account_id", "disp_type")  # disp_type OWNER|DISPONENT
ORDER_COLUMNS = ("order_id", "account_id", "bank_to", "account_to", "amount", "k_symbol")
TRANS_COLUMNS = (
    "trans_id", "account_id", "ts", "type", "operation", "amount", "balance", "k_symbol",
    "bank", "account",
)  # fmt: skip  -- ts carries the time of day when the source has one (synthetic data)
LOAN_COLUMNS = ("loan_id", "account_id", "granted", "amount", "duration", "payments", "status")
CARD_COLUMNS = ("card_id", "disp_id", "card_type", "issued")

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "district": DISTRICT_COLUMNS,
    "client": CLIENT_COLUMNS,
    "account": ACCOUNT_COLUMNS,
    "disp": DISP_COLUMNS,
    "order": ORDER_COLUMNS,
    "trans": TRANS_COLUMNS,
    "loan": LOAN_COLUMNS,
    "card": CARD_COLUMNS,
}
REQUIRED_TABLES = ("district", "client", "account", "disp", "trans")


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in TABLE_COLUMNS[name]})


@dataclass
class RawTables:
    """The eight PKDD'99 relations. ``order``, ``loan`` and ``card`` may be empty."""

    district: pd.DataFrame
    client: pd.DataFrame
    account: pd.DataFrame
    disp: pd.DataFrame
    trans: pd.DataFrame
    order: pd.DataFrame = field(default_factory=lambda: _empty("order"))
    loan: pd.DataFrame = field(default_factory=lambda: _empty("loan"))
    card: pd.DataFrame = field(default_factory=lambda: _empty("card"))

    def table(self, name: str) -> pd.DataFrame:
        return getattr(self, name)
