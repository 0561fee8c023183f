"""The anomaly catalog: the one source of truth for anomaly types.

Each type has an injector (to label held-out real or synthetic data), a detection path (a
deterministic rule where one exists, else the models through the features that reveal it),
and a reason text. Injectors keep balances consistent — an injected amount shifts the
account's later balances as a real posting would — so that only ``balance_mismatch`` breaks
the balance identity and detectors cannot find injections through a balance break.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from finsentry.schema import CHANNEL_OF_OPERATION, Direction, Operation, Purpose, TxnType


class AnomalyType(StrEnum):
    AMOUNT_SPIKE = "amount_spike"
    DECIMAL_SHIFT = "decimal_shift"
    SPEND_SURGE = "spend_surge"
    BURST = "burst"
    UNUSUAL_HOUR = "unusual_hour"
    UNUSUAL_PARTNER = "unusual_partner"
    BALANCE_MISMATCH = "balance_mismatch"
    DUPLICATE_POSTING = "duplicate_posting"
    MISSING_RECURRING = "missing_recurring_payment"
    UNUSUAL_SEQUENCE = "unusual_sequence"


OTHER = "other"  # an alert whose strongest reason points to no catalog type

# --- injection machinery ----------------------------------------------------------------------


@dataclass
class _Plan:
    """Changes collected by the injectors, applied once at the end."""

    frame: pd.DataFrame  # the working copy, with _seq and _delta columns
    rng: np.random.Generator
    next_id: int
    inserts: list[dict] = field(default_factory=list)
    deletes: list[int] = field(default_factory=list)
    after_typos: dict[int, float] = field(default_factory=dict)
    labels: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    used: set[int] = field(default_factory=set)

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)

    def insert(self, anchor: int, kind: AnomalyType, ts: pd.Timestamp, amount: float, *,
               direction: str = Direction.DEBIT, operation: str = Operation.CARD_WITHDRAWAL,
               partner: tuple[str, str] = ("", ""), k_symbol: str = Purpose.NONE,
               label: bool = True, order: float = 0.5) -> str:  # fmt: skip
        row = self.frame.loc[anchor].to_dict()
        signed = -amount if direction == Direction.DEBIT else amount
        row.update({
            "trans_id": self.new_id(), "ts": ts, "amount": round(float(amount), 2),
            "direction": str(direction),
            "type": str(TxnType.CREDIT if direction == Direction.CREDIT else TxnType.DEBIT),
            "operation": str(operation), "k_symbol": str(k_symbol), "partner_bank": partner[0],
            "partner_account": partner[1], "channel": str(CHANNEL_OF_OPERATION[Operation(operation)]),
            "balance_before": np.nan, "balance_after": np.nan, "_seq": row["_seq"] + order,
            "_delta": round(signed, 2), "is_anomaly": label, "anomaly_type": str(kind) if label else "",
        })  # fmt: skip
        self.inserts.append(row)
        if label:
            self.label(kind, row["trans_id"], row["account_id"], ts, f"inserted {amount:,.2f}")
        return row["trans_id"]

    def label(self, kind: AnomalyType, trans_id: str, account: str, ts, detail: str) -> None:
        self.labels.append({"trans_id": trans_id, "account_id": account, "anomaly_type": str(kind),
                            "ts": pd.Timestamp(ts), "detail": detail})  # fmt: skip

    def mark(self, idx: int, kind: AnomalyType, detail: str) -> None:
        self.frame.loc[idx, ["is_anomaly", "anomaly_type"]] = [True, str(kind)]
        r = self.frame.loc[idx]
        self.label(kind, r["trans_id"], r["account_id"], r["ts"], detail)


def _signed(frame: pd.DataFrame) -> np.ndarray:
    return np.where(frame["direction"] == Direction.DEBIT, -frame["amount"], frame["amount"])


def _anchors(plan: _Plan, candidates: np.ndarray, count: int) -> list[int]:
    """``count`` distinct unused rows from ``candidates`` (index labels), at most one per account-day."""
    pool = np.setdiff1d(candidates, np.fromiter(plan.used, dtype=np.int64, count=len(plan.used)))
    if pool.size == 0:
        return []
    chosen = plan.rng.choice(pool, size=min(count, pool.size), replace=False)
    plan.used.update(int(c) for c in chosen)
    return [int(c) for c in chosen]


def _median_debit(plan: _Plan, account: str) -> float:
    return float(plan.frame.attrs["median_debit"].get(account, 500.0))


def _new_partner(plan: _Plan) -> tuple[str, str]:
    letters = "QWXJ"
    bank = letters[int(plan.rng.integers(0, 4))] + letters[int(plan.rng.integers(0, 4))]
    return bank, str(int(plan.rng.integers(10_000_000, 99_999_999)))


# --- the injectors: (plan, candidate rows, count) -> None --------------------------------------


def _debits(plan: _Plan, c: np.ndarray) -> np.ndarray:
    f = plan.frame.loc[c]
    return f.index[(f["direction"] == Direction.DEBIT).to_numpy()].to_numpy()


def inject_amount_spike(plan: _Plan, c: np.ndarray, n: int) -> None:
    for a in _anchors(plan, _debits(plan, c), n):
        r = plan.frame.loc[a]
        amount = _median_debit(plan, r["account_id"]) * plan.rng.uniform(8, 30)
        ts = r["ts"] + pd.Timedelta(minutes=int(plan.rng.integers(5, 180)))
        plan.insert(a, AnomalyType.AMOUNT_SPIKE, ts, amount)


def inject_decimal_shift(plan: _Plan, c: np.ndarray, n: int) -> None:
    f = plan.frame.loc[c]
    ok = f["operation"].isin([Operation.REMITTANCE, Operation.CARD_WITHDRAWAL]) & (f["direction"] == Direction.DEBIT)
    for a in _anchors(plan, f.index[ok.to_numpy()].to_numpy(), n):
        factor = float(plan.rng.choice([10.0, 100.0]))
        old = float(plan.frame.at[a, "amount"])
        new = round(old * factor, 2)
        plan.frame.at[a, "amount"] = new
        plan.frame.at[a, "_delta"] = round(old - new, 2)  # a debit: signed amount falls by the increase
        plan.mark(a, AnomalyType.DECIMAL_SHIFT, f"amount {old:,.2f} x{factor:.0f}")


def inject_spend_surge(plan: _Plan, c: np.ndarray, n: int) -> None:
    for a in _anchors(plan, _debits(plan, c), max(1, n // 4)):
        r = plan.frame.loc[a]
        median = _median_debit(plan, r["account_id"])
        for k in range(int(plan.rng.integers(3, 7))):
            ts = r["ts"] + pd.Timedelta(minutes=int(20 + 50 * k + plan.rng.integers(0, 30)))
            plan.insert(a, AnomalyType.SPEND_SURGE, ts, median * plan.rng.uniform(2, 4), order=0.5 + k / 100)


def inject_burst(plan: _Plan, c: np.ndarray, n: int) -> None:
    for a in _anchors(plan, _debits(plan, c), max(1, n // 6)):
        r = plan.frame.loc[a]
        median = _median_debit(plan, r["account_id"])
        start = r["ts"] + pd.Timedelta(minutes=int(plan.rng.integers(5, 60)))
        for k in range(int(plan.rng.integers(5, 11))):
            ts = start + pd.Timedelta(minutes=3 * k + int(plan.rng.integers(0, 3)))
            plan.insert(a, AnomalyType.BURST, ts, max(10.0, median * plan.rng.uniform(0.2, 0.6)),
                        order=0.5 + k / 100)  # fmt: skip


def inject_unusual_hour(plan: _Plan, c: np.ndarray, n: int) -> None:
    for a in _anchors(plan, _debits(plan, c), n):
        r = plan.frame.loc[a]
        ts = r["ts"].normalize() + pd.Timedelta(days=1, hours=int(plan.rng.integers(1, 5)),
                                                minutes=int(plan.rng.integers(0, 60)))  # fmt: skip
        amount = _median_debit(plan, r["account_id"]) * plan.rng.uniform(0.8, 1.5)
        plan.insert(a, AnomalyType.UNUSUAL_HOUR, ts, amount)


def inject_unusual_partner(plan: _Plan, c: np.ndarray, n: int) -> None:
    for a in _anchors(plan, c, n):
        r = plan.frame.loc[a]
        amount = _median_debit(plan, r["account_id"]) * plan.rng.uniform(3, 8)
        ts = r["ts"] + pd.Timedelta(minutes=int(plan.rng.integers(5, 240)))
        plan.insert(a, AnomalyType.UNUSUAL_PARTNER, ts, amount, operation=Operation.REMITTANCE,
                    partner=_new_partner(plan))  # fmt: skip


def inject_balance_mismatch(plan: _Plan, c: np.ndarray, n: int) -> None:
    for a in _anchors(plan, c, n):
        typo = float(plan.rng.integers(1, 10)) * 10.0 ** int(plan.rng.integers(1, 4))
        typo *= float(plan.rng.choice([-1.0, 1.0]))
        plan.after_typos[a] = typo
        plan.mark(a, AnomalyType.BALANCE_MISMATCH, f"balance_after off by {typo:+,.2f}")


def inject_duplicate_posting(plan: _Plan, c: np.ndarray, n: int) -> None:
    for a in _anchors(plan, _debits(plan, c), n):
        r = plan.frame.loc[a]
        plan.insert(a, AnomalyType.DUPLICATE_POSTING, r["ts"], float(r["amount"]),
                    operation=r["operation"], partner=(r["partner_bank"], r["partner_account"]),
                    k_symbol=r["k_symbol"])  # fmt: skip
        plan.inserts[-1]["type"] = r["type"]


def inject_missing_recurring(plan: _Plan, c: np.ndarray, n: int) -> None:
    orders = plan.frame.attrs["orders"]
    if orders.empty:
        return
    f = plan.frame.loc[c]
    f = f[(f["direction"] == Direction.DEBIT) & (f["partner_account"] != "")]
    m = f.reset_index().merge(orders[["account_id", "partner_account", "amount"]],
                              on=["account_id", "partner_account"], suffixes=("", "_order"))  # fmt: skip
    m = m[(m["amount"] - m["amount_order"]).abs() <= 0.01 * m["amount_order"]]
    for a in _anchors(plan, m["index"].unique(), n):
        r = plan.frame.loc[a]
        plan.deletes.append(a)
        plan.frame.at[a, "_delta"] = -_signed(plan.frame.loc[[a]])[0]
        month = pd.Timestamp(r["ts"]).strftime("%Y-%m")
        plan.missing.append({"account_id": r["account_id"], "month": month,
                             "partner_account": r["partner_account"], "amount": float(r["amount"])})  # fmt: skip
        detail = f"{month} order to {r['partner_account']} not paid"
        plan.label(AnomalyType.MISSING_RECURRING, "", r["account_id"], r["ts"], detail)


def inject_unusual_sequence(plan: _Plan, c: np.ndarray, n: int) -> None:
    for a in _anchors(plan, c, max(1, n // 2)):
        r = plan.frame.loc[a]
        amount = _median_debit(plan, r["account_id"]) * plan.rng.uniform(5, 15)
        t0 = r["ts"] + pd.Timedelta(minutes=int(plan.rng.integers(10, 120)))
        plan.insert(a, AnomalyType.UNUSUAL_SEQUENCE, t0, amount, direction=Direction.CREDIT,
                    operation=Operation.CASH_CREDIT, order=0.5)  # fmt: skip
        t1 = t0 + pd.Timedelta(minutes=int(plan.rng.integers(10, 120)))
        plan.insert(a, AnomalyType.UNUSUAL_SEQUENCE, t1, amount * plan.rng.uniform(0.92, 0.98),
                    operation=Operation.REMITTANCE, partner=_new_partner(plan), order=0.6)  # fmt: skip


# --- the catalog ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogEntry:
    type: AnomalyType
    title: str
    reason: str
    injector: Callable[[_Plan, np.ndarray, int], None]
    features: tuple[str, ...]  # the features that reveal it (first = strongest)
    rule_feature: str | None = None  # a deterministic rule fires on this feature


CATALOG: dict[AnomalyType, CatalogEntry] = {e.type: e for e in (
    CatalogEntry(AnomalyType.AMOUNT_SPIKE, "Amount spike", "amount far above the account's usual for this operation",
                 inject_amount_spike, ("amount_ratio_log", "amount_z", "log_amount")),
    CatalogEntry(AnomalyType.DECIMAL_SHIFT, "Decimal shift",
                 "amount a power of ten away from the usual (incorrect pricing)",
                 inject_decimal_shift, ("decimal_shift",)),
    CatalogEntry(AnomalyType.SPEND_SURGE, "Spend surge", "daily or monthly spend far above the account's usual",
                 inject_spend_surge, ("daily_spend_ratio", "monthly_spend_ratio")),
    CatalogEntry(AnomalyType.BURST, "Burst", "many transactions within a short time",
                 inject_burst, ("n_last_hour", "n_last_day", "log_gap_hours")),
    CatalogEntry(AnomalyType.UNUSUAL_HOUR, "Unusual hour", "a time of day the account does not use",
                 inject_unusual_hour, ("hour_distance", "hour_rarity")),
    CatalogEntry(AnomalyType.UNUSUAL_PARTNER, "Unusual partner", "a payment to a never-seen partner bank or account",
                 inject_unusual_partner, ("new_partner_account", "new_partner_bank")),
    CatalogEntry(AnomalyType.BALANCE_MISMATCH, "Balance mismatch",
                 "balance after does not equal balance before plus or minus the amount (data-entry error)",
                 inject_balance_mismatch, ("balance_error", "balance_gap"), rule_feature="balance_error"),
    CatalogEntry(AnomalyType.DUPLICATE_POSTING, "Duplicate posting", "the same posting made twice the same day",
                 inject_duplicate_posting, ("duplicate_recent",), rule_feature="duplicate_recent"),
    CatalogEntry(AnomalyType.MISSING_RECURRING, "Missing recurring payment",
                 "a permanent order was not paid this month (the missing bill)", inject_missing_recurring, ()),
    CatalogEntry(AnomalyType.UNUSUAL_SEQUENCE, "Unusual sequence",
                 "an operation pattern the account never shows (e.g. cash in, straight out to a new partner)",
                 inject_unusual_sequence, ("rapid_pass_through", "transition_rarity", "op_rarity")),
)}  # fmt: skip
RULE_TYPES: tuple[AnomalyType, ...] = tuple(t for t, e in CATALOG.items() if e.rule_feature)
BALANCE_TOLERANCE = 0.005  # half a cent: rounding never fires the balance rule
FEATURE_TYPES: dict[str, str] = {f: str(t) for t, e in CATALOG.items() for f in e.features}


def type_of_feature(feature: str) -> str:
    """The anomaly type a reason's feature points to (``other`` when none does)."""
    return FEATURE_TYPES.get(feature, OTHER)


# --- rule checks ------------------------------------------------------------------------------


def apply_rules(features: pd.DataFrame) -> np.ndarray:
    """Deterministic rules on the features (vectorised): the anomaly type, '' where none fires."""
    out = np.full(len(features), "", dtype=object)
    dup = features["duplicate_recent"].to_numpy() >= 1.0
    out[dup] = str(AnomalyType.DUPLICATE_POSTING)
    bal = features["balance_error"].to_numpy() > BALANCE_TOLERANCE
    out[bal] = str(AnomalyType.BALANCE_MISMATCH)
    return out


def missing_recurring_payments(transactions: pd.DataFrame, orders: pd.DataFrame,
                               start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:  # fmt: skip
    """Months in [start, end) in which an active account did not pay one of its permanent orders.

    An account is active in a month when it has any transaction in it; a payment matches an
    order when it is a debit to the order's partner account within 1 % of its amount.
    """
    cols = ["account_id", "month", "partner_account", "amount", "k_symbol"]
    t = transactions[(transactions["ts"] >= start) & (transactions["ts"] < end)]
    if t.empty or orders.empty:
        return pd.DataFrame({c: [] for c in cols})
    month = pd.to_datetime(t["ts"]).dt.strftime("%Y-%m")
    active = pd.DataFrame({"account_id": t["account_id"].to_numpy(), "month": month.to_numpy()}).drop_duplicates()
    expected = active.merge(orders[["account_id", "partner_account", "amount", "k_symbol"]], on="account_id")
    debits = t[t["direction"] == Direction.DEBIT].assign(month=month)
    paid = expected.merge(debits[["account_id", "month", "partner_account", "amount"]],
                          on=["account_id", "month", "partner_account"], suffixes=("", "_paid"))  # fmt: skip
    paid = paid[(paid["amount_paid"] - paid["amount"]).abs() <= 0.01 * paid["amount"]]
    key = ["account_id", "month", "partner_account", "amount"]
    done = paid[key].drop_duplicates().assign(_paid=True)
    out = expected.merge(done, on=key, how="left")
    return out[out["_paid"].isna()][cols].reset_index(drop=True)


# --- the entry point --------------------------------------------------------------------------


@dataclass
class InjectionResult:
    transactions: pd.DataFrame  # with is_anomaly and anomaly_type, sorted by account then time
    labels: pd.DataFrame  # one row per labelled event (trans_id '' for a missing payment)
    missing_payments: pd.DataFrame  # account_id, month (YYYY-MM), partner_account, amount


def _next_numeric_id(ids: pd.Series) -> int:
    numeric = pd.to_numeric(ids, errors="coerce")
    return int(numeric.max()) if numeric.notna().any() else 0


def inject_anomalies(transactions: pd.DataFrame, orders: pd.DataFrame, start: pd.Timestamp, *,
                     rate: float = 0.002, types: list[AnomalyType] | None = None,
                     seed: int = 0) -> InjectionResult:  # fmt: skip
    """Turn about ``rate`` of the transactions at or after ``start`` into labelled anomalies.

    The input frame is not modified. Counts are spread evenly over ``types`` (all by
    default), at least 3 events per type when the data allows.
    """
    frame = transactions.copy()
    if "is_anomaly" not in frame.columns:
        frame["is_anomaly"] = False
        frame["anomaly_type"] = ""
    order = frame.assign(_p=np.arange(len(frame))).sort_values(["account_id", "ts", "_p"], kind="stable").index
    frame = frame.loc[order].reset_index(drop=True)
    frame["_seq"] = np.arange(len(frame), dtype=float)
    frame["_delta"] = 0.0
    debits = frame[frame["direction"] == Direction.DEBIT]
    held_out = frame.index[(frame["ts"] >= pd.Timestamp(start)).to_numpy() & ~frame["is_anomaly"].to_numpy()]
    past = debits[debits["ts"] < pd.Timestamp(start)]
    frame.attrs["median_debit"] = past.groupby("account_id")["amount"].median().to_dict()
    frame.attrs["orders"] = orders
    plan = _Plan(frame=frame, rng=np.random.default_rng(seed), next_id=_next_numeric_id(frame["trans_id"]))
    chosen = list(types) if types is not None else list(AnomalyType)
    per_type = max(3, int(round(rate * len(held_out) / max(len(chosen), 1))))
    for kind in chosen:
        CATALOG[kind].injector(plan, held_out.to_numpy(), per_type)
    result = _apply(plan)
    labels = pd.DataFrame(plan.labels, columns=["trans_id", "account_id", "anomaly_type", "ts", "detail"])
    missing = pd.DataFrame(plan.missing, columns=["account_id", "month", "partner_account", "amount"])
    return InjectionResult(transactions=result, labels=labels, missing_payments=missing)


def _apply(plan: _Plan) -> pd.DataFrame:
    """Insert, shift later balances by each change's signed delta, delete, then typo balances."""
    f = plan.frame
    f["_typo"] = 0.0
    for idx, typo in plan.after_typos.items():
        f.at[idx, "_typo"] = typo
    f["_drop"] = False
    f.loc[plan.deletes, "_drop"] = True
    if plan.inserts:
        ins = pd.DataFrame(plan.inserts).assign(_typo=0.0, _drop=False)
        f = pd.concat([f, ins[f.columns]], ignore_index=True)
    f = f.sort_values(["account_id", "ts", "_seq"], kind="stable").reset_index(drop=True)
    # inserted rows start from the previous row's balance, as if their amount were zero
    prev_after = f.groupby("account_id")["balance_after"].ffill()
    new = f["balance_before"].isna()
    f.loc[new, "balance_before"] = prev_after[new]
    f.loc[new, "balance_after"] = prev_after[new]
    shift_after = f.groupby("account_id")["_delta"].cumsum()
    f["balance_before"] = (f["balance_before"] + shift_after - f["_delta"]).round(2)
    f["balance_after"] = (f["balance_after"] + shift_after + f["_typo"]).round(2)
    f = f[~f["_drop"]]
    return f.drop(columns=["_seq", "_delta", "_typo", "_drop"]).reset_index(drop=True)
