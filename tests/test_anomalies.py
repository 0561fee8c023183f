"""The anomaly catalog: injectors label what they change, keep balances consistent and touch
only the held-out period; the rules find what the injectors planted."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from finsentry.anomalies import (
    CATALOG,
    MIN_EVENTS,
    RULE_TYPES,
    AnomalyType,
    InjectionResult,
    apply_rules,
    inject_anomalies,
    missing_recurring_payments,
    planned_events,
    rebalance,
    type_of_feature,
)
from finsentry.features import FEATURE_COLUMNS, compute_features
from finsentry.schema import CHANNEL_OF_OPERATION, DIRECTION_OF_TYPE, LABEL_COLUMNS, validate_frame

START = pd.Timestamp("1995-03-01")  # the held-out period: March and April
END = pd.Timestamp("1995-05-01")
MONTHS = pd.period_range("1995-01", "1995-04", freq="M")
ACCOUNTS = ("1", "2", "3", "4")
CLIENT = {"frequency": "monthly", "client_age": 41.5, "client_gender": "F", "district_id": 1, "region": "Prague"}


def posting(account: str, ts: pd.Timestamp, amount: float, direction: str, operation: str, k_symbol: str = "none",
            partner: tuple[str, str] = ("", "")) -> dict:  # fmt: skip
    return {"account_id": account, "client_id": account, "ts": ts, "amount": amount, "direction": direction,
            "type": direction, "operation": operation, "k_symbol": k_symbol, "partner_bank": partner[0],
            "partner_account": partner[1], "channel": CHANNEL_OF_OPERATION[operation], **CLIENT}  # fmt: skip


def month_of(account: str, k: int, month: pd.Period, rng: np.random.Generator) -> list[dict]:
    """Salary, a standing order, card withdrawals every third day at 11-18 h, month-end interest."""
    day0 = month.start_time
    rows = [
        posting(account, day0 + pd.Timedelta(days=k, hours=8), 20_000 + 1000 * k, "credit",
                "collection_other_bank", "salary", ("AB", f"7000{k}")),
        posting(account, day0 + pd.Timedelta(days=9, hours=6), 1500 + 100 * k, "debit",
                "remittance_other_bank", "household", ("CD", f"5500{k}")),
        posting(account, month.end_time.normalize() + pd.Timedelta(hours=23, minutes=50),
                round(float(rng.uniform(10, 50)), 1), "credit", "none", "interest"),
    ]  # fmt: skip
    for day in range(1, month.days_in_month, 3):
        ts = day0 + pd.Timedelta(days=day, hours=int(rng.choice([11, 12, 17, 18])), seconds=int(rng.integers(0, 3600)))
        rows.append(posting(account, ts, 100.0 * int(rng.integers(2, 9)), "debit", "card_withdrawal"))
    return rows


def bank_frame(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small canonical frame (4 accounts x 4 months, balances chained) and its permanent orders."""
    frame, orders = _bank_frame(seed)
    return frame.copy(), orders.copy()


@lru_cache(maxsize=2)
def _bank_frame(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = [r for k, acc in enumerate(ACCOUNTS) for m in MONTHS for r in month_of(acc, k, m, rng)]
    frame = pd.DataFrame(rows).sort_values(["account_id", "ts"], kind="stable").reset_index(drop=True)
    signed = np.where(frame["direction"] == "debit", -frame["amount"], frame["amount"])
    after = 5000.0 + pd.Series(signed).groupby(frame["account_id"]).cumsum()
    frame["balance_after"] = after.round(2)
    frame["balance_before"] = (after - signed).round(2)
    frame["trans_id"] = [str(1000 + i) for i in range(len(frame))]
    orders = pd.DataFrame({"account_id": list(ACCOUNTS), "partner_bank": "CD",
                           "partner_account": [f"5500{k}" for k in range(4)],
                           "amount": [1500.0 + 100 * k for k in range(4)], "k_symbol": "household"})  # fmt: skip
    return validate_frame(frame).valid, orders


def inject(frame: pd.DataFrame | None = None, **kwargs) -> InjectionResult:
    clean, orders = bank_frame()
    return inject_anomalies(clean if frame is None else frame, orders, START, **{"seed": 1, **kwargs})


def identity_breaks(t: pd.DataFrame) -> np.ndarray:
    """Rows whose balance_after is not balance_before +/- amount."""
    signed = np.where(t["direction"] == "debit", -t["amount"], t["amount"])
    return ((t["balance_before"] + signed - t["balance_after"]).abs() > 0.005).to_numpy()


def continuity_breaks(t: pd.DataFrame) -> np.ndarray:
    """Rows that do not start where the account's previous row ended."""
    prev = t.groupby("account_id")["balance_after"].shift()
    return (((t["balance_before"] - prev).abs() > 0.005) & prev.notna()).to_numpy()


def held_out_rows() -> int:
    clean, _ = bank_frame()
    return int((clean["ts"] >= START).sum())


def median_debit(account: str, operation: str | None = None) -> float:
    """Median debit of the account before START (of one operation when given), CZK."""
    clean, _ = bank_frame()
    past = clean[(clean["ts"] < START) & (clean["direction"] == "debit") & (clean["account_id"] == account)]
    if operation:
        past = past[past["operation"] == operation]
    return float(past["amount"].median())


def usual_debit(account: str) -> float:
    """The base of spikes and surges of card withdrawals."""
    return max(median_debit(account), median_debit(account, "card_withdrawal"))


def of_type(res: InjectionResult, kind: AnomalyType) -> pd.DataFrame:
    return res.transactions[res.transactions["anomaly_type"] == str(kind)]


# --- the test frame ------------------------------------------------------------------------------


def test_the_test_frame_is_canonical_consistent_and_pays_every_order():
    clean, orders = bank_frame()
    assert validate_frame(clean).rejected.empty and len(clean) > 200
    assert not identity_breaks(clean).any() and not continuity_breaks(clean).any()
    assert missing_recurring_payments(clean, orders, pd.Timestamp("1995-01-01"), END).empty


# --- the catalog ---------------------------------------------------------------------------------


def test_the_catalog_has_every_type_with_a_reason_and_known_features():
    assert set(CATALOG) == set(AnomalyType)
    assert all(e.type == t and e.title and e.reason for t, e in CATALOG.items())
    named = {f for e in CATALOG.values() for f in e.features} | {e.rule_feature for e in CATALOG.values()} - {None}
    assert named <= set(FEATURE_COLUMNS)
    assert set(RULE_TYPES) == {AnomalyType.BALANCE_MISMATCH, AnomalyType.DUPLICATE_POSTING}
    assert type_of_feature("hour_rarity") == "unusual_hour"
    assert type_of_feature("history_count_log") == "other"


def test_planned_events_share_the_rate_evenly_in_rows_with_a_floor():
    plan = planned_events(10_000, 0.01, list(AnomalyType))  # 10 rows per type
    assert plan[AnomalyType.AMOUNT_SPIKE] == plan[AnomalyType.DUPLICATE_POSTING] == 10
    assert plan[AnomalyType.UNUSUAL_SEQUENCE] == 5  # two rows each
    assert plan[AnomalyType.BURST] == plan[AnomalyType.SPEND_SURGE] == MIN_EVENTS  # 7.5 and 4.5 rows each
    assert planned_events(300_000, 0.01, [AnomalyType.BURST]) == {AnomalyType.BURST: 400}
    assert set(planned_events(10, 0.002, list(AnomalyType)).values()) == {MIN_EVENTS}


# --- injection: counts, determinism, scope -------------------------------------------------------


def test_every_type_is_injected_and_labelled_with_the_planned_count():
    res = inject()
    plan = planned_events(held_out_rows(), 0.002, list(AnomalyType))
    labels = res.labels
    for kind, events in plan.items():
        rows = (labels["anomaly_type"] == str(kind)).sum()
        lo, hi = CATALOG[kind].rows
        assert lo * events <= rows <= hi * events, kind
        if lo == hi:
            assert rows == lo * events, kind
    for kind in (AnomalyType.SPEND_SURGE, AnomalyType.BURST):  # one account-day per event
        t = of_type(res, kind)
        assert t.groupby(["account_id", t["ts"].dt.date]).ngroups == plan[kind]
    assert len(res.missing_payments) == plan[AnomalyType.MISSING_RECURRING]
    labelled = res.transactions[res.transactions["is_anomaly"]]
    assert sorted(labelled["trans_id"]) == sorted(labels.loc[labels["trans_id"] != "", "trans_id"])
    assert (labelled["anomaly_type"] != "").all() and (res.transactions.loc[~res.transactions["is_anomaly"],
                                                                              "anomaly_type"] == "").all()  # fmt: skip
    assert res.skipped == {}


def test_injection_is_deterministic_for_a_seed():
    a, b, c = inject(seed=5), inject(seed=5), inject(seed=6)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    pd.testing.assert_frame_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.missing_payments, b.missing_payments)
    assert not a.transactions.equals(c.transactions)


def test_the_input_frame_is_not_modified():
    clean, orders = bank_frame()
    copy, orders_copy = clean.copy(), orders.copy()
    inject_anomalies(clean, orders, START, seed=2)
    pd.testing.assert_frame_equal(clean, copy)
    pd.testing.assert_frame_equal(orders, orders_copy)


def test_only_the_held_out_period_is_touched():
    clean, _ = bank_frame()
    res = inject()
    t = res.transactions
    before = t[t["ts"] < START].drop(columns=list(LABEL_COLUMNS)).reset_index(drop=True)
    pd.testing.assert_frame_equal(before, clean[clean["ts"] < START].reset_index(drop=True))
    assert (res.labels["ts"] >= START).all() and not t.loc[t["ts"] < START, "is_anomaly"].any()
    gone = set(clean["trans_id"]) - set(t["trans_id"])
    assert len(gone) == len(res.missing_payments)  # only the deleted standing-order payments
    assert (clean.loc[clean["trans_id"].isin(gone), "ts"] >= START).all()


def test_existing_labels_are_kept_and_never_reused():
    first = inject(types=[AnomalyType.BALANCE_MISMATCH], seed=3)
    second = inject(first.transactions, seed=4, types=[t for t in AnomalyType if t != AnomalyType.BALANCE_MISMATCH])
    t = second.transactions.set_index("trans_id")
    kept = first.labels["trans_id"]
    assert (t.loc[kept, "anomaly_type"] == "balance_mismatch").all()
    assert not set(second.labels["trans_id"]) & set(kept)
    assert (t["anomaly_type"] == "balance_mismatch").sum() == len(kept)


# --- injection: balances ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [t for t in AnomalyType if t != AnomalyType.BALANCE_MISMATCH])
def test_balances_stay_consistent_for_every_type_but_balance_mismatch(kind):
    res = inject(types=[kind], rate=0.05)
    t = res.transactions
    assert len(res.labels) >= MIN_EVENTS
    assert not identity_breaks(t).any()
    assert not continuity_breaks(t).any()


def test_balance_mismatch_breaks_exactly_the_labelled_rows():
    res = inject()
    t = res.transactions
    typo = (t["anomaly_type"] == "balance_mismatch").to_numpy()
    assert typo.sum() == planned_events(held_out_rows(), 0.002, list(AnomalyType))[AnomalyType.BALANCE_MISMATCH]
    np.testing.assert_array_equal(identity_breaks(t), typo)
    after_typo = (t.groupby("account_id")["anomaly_type"].shift() == "balance_mismatch").to_numpy()
    np.testing.assert_array_equal(continuity_breaks(t), after_typo)  # the typo row starts right
    signed = np.where(t["direction"] == "debit", -t["amount"], t["amount"])
    error = (t["balance_before"] + signed - t["balance_after"]).abs()[typo]
    assert (error >= 1.0).all()  # a keying error in the CZK digits


def test_rebalance_shifts_later_balances_and_starts_new_rows_from_the_previous_one():
    frame = pd.DataFrame({"account_id": ["a", "a", "a", "b"], "amount": [100.0, 50.0, 10.0, 5.0],
                          "direction": ["credit", "debit", "debit", "debit"],
                          "balance_before": [0.0, np.nan, 100.0, 20.0],
                          "balance_after": [100.0, np.nan, 90.0, 15.0]})  # fmt: skip
    out = rebalance(frame, np.array([0.0, -50.0, 0.0, 0.0]))  # a new debit of 50 as row 1
    assert out["balance_before"].tolist() == [0.0, 100.0, 50.0, 20.0]
    assert out["balance_after"].tolist() == [100.0, 50.0, 40.0, 15.0]
    assert frame["balance_before"].isna().sum() == 1  # the input is left alone


# --- injection: what each type looks like ---------------------------------------------------------


def test_duplicates_follow_their_source_and_equal_it_but_for_trans_id():
    res = inject()
    t = res.transactions
    same = ["account_id", "client_id", "ts", "amount", "direction", "type", "operation", "k_symbol",
            "partner_bank", "partner_account", "channel", *CLIENT]  # fmt: skip
    rows = np.flatnonzero((t["anomaly_type"] == "duplicate_posting").to_numpy())
    assert len(rows) >= MIN_EVENTS
    for i in rows:
        dup, src = t.iloc[i], t.iloc[i - 1]
        assert dup[same].equals(src[same]) and dup["trans_id"] != src["trans_id"]
        assert dup["balance_before"] == src["balance_after"]  # a second posting of the same debit


def test_decimal_shift_multiplies_an_existing_debit_by_ten_or_a_hundred():
    clean, _ = bank_frame()
    res = inject()
    shifted = of_type(res, AnomalyType.DECIMAL_SHIFT).merge(clean, on="trans_id", suffixes=("", "_was"))
    assert len(shifted) == len(of_type(res, AnomalyType.DECIMAL_SHIFT)) >= MIN_EVENTS
    assert set((shifted["amount"] / shifted["amount_was"]).round(6)) <= {10.0, 100.0}
    assert shifted["operation"].isin(["remittance_other_bank", "card_withdrawal"]).all()


def test_amount_spike_surge_and_burst_are_withdrawals_of_their_size():
    res = inject()
    for kind, lo, hi in ((AnomalyType.AMOUNT_SPIKE, 7.5, 31), (AnomalyType.SPEND_SURGE, 1.8, 4.3)):
        t = of_type(res, kind)
        ratio = t["amount"] / t["account_id"].map(usual_debit)
        assert ((ratio >= lo) & (ratio <= hi)).all(), kind
        assert (t["operation"] == "card_withdrawal").all()  # the accounts' own withdrawal channel
    burst = of_type(res, AnomalyType.BURST)
    for _, event in burst.groupby(["account_id", burst["ts"].dt.date]):
        assert 5 <= len(event) <= 10
        assert event["ts"].max() - event["ts"].min() < pd.Timedelta(minutes=30)
        assert (event["amount"] < event["account_id"].map(lambda a: median_debit(a, "card_withdrawal"))).all()


def test_unusual_hour_is_a_normal_card_withdrawal_at_night():
    res = inject()
    t = of_type(res, AnomalyType.UNUSUAL_HOUR)
    assert len(t) >= MIN_EVENTS
    assert t["ts"].dt.hour.between(1, 4).all() and (t["operation"] == "card_withdrawal").all()
    assert t["amount"].between(200, 1000).all()  # the accounts withdraw 200-800


def test_unusual_partner_and_sequence_pay_a_partner_the_account_never_used():
    clean, _ = bank_frame()
    res = inject()
    used = set(zip(clean["account_id"], clean["partner_bank"], strict=True))
    for kind in (AnomalyType.UNUSUAL_PARTNER, AnomalyType.UNUSUAL_SEQUENCE):
        out = of_type(res, kind).query("direction == 'debit'")
        assert len(out) >= MIN_EVENTS and (out["operation"] == "remittance_other_bank").all()
        assert not set(zip(out["account_id"], out["partner_bank"], strict=True)) & used
        assert not set(out["partner_account"]) & set(clean["partner_account"])
    seq = of_type(res, AnomalyType.UNUSUAL_SEQUENCE)
    credits, debits = seq.iloc[0::2], seq.iloc[1::2]
    assert (credits["operation"].to_numpy() == "cash_credit").all()
    gap = debits["ts"].to_numpy() - credits["ts"].to_numpy()
    assert ((gap > np.timedelta64(0)) & (gap <= np.timedelta64(2, "h"))).all()
    share = debits["amount"].to_numpy() / credits["amount"].to_numpy()
    assert ((share > 0.9) & (share < 1.0)).all()


def test_the_injected_frame_is_valid_sorted_and_uses_the_accounts_attributes():
    clean, _ = bank_frame()
    t = inject().transactions
    assert validate_frame(t.drop(columns=list(LABEL_COLUMNS))).rejected.empty
    assert t["trans_id"].is_unique and t["is_anomaly"].dtype == bool
    pd.testing.assert_series_equal(t[clean.columns].dtypes, clean.dtypes)
    assert (t["direction"] == t["type"].map(DIRECTION_OF_TYPE)).all()
    assert (t["channel"] == t["operation"].map(CHANNEL_OF_OPERATION)).all()
    key = pd.DataFrame({"a": t["account_id"], "t": t["ts"]})
    assert key.equals(key.sort_values(["a", "t"], kind="stable"))
    new = t[~t["trans_id"].isin(clean["trans_id"])]
    assert (pd.to_numeric(new["trans_id"]) > pd.to_numeric(clean["trans_id"]).max()).all()
    assert (new["client_id"] == new["account_id"]).all() and (new[list(CLIENT)] == pd.Series(CLIENT)).all().all()


def test_date_only_data_gets_date_only_postings_and_no_unusual_hour():
    clean, _ = bank_frame()
    dates = clean.assign(ts=clean["ts"].dt.normalize())
    res = inject(dates)
    t = res.transactions
    assert (t["ts"] == t["ts"].dt.normalize()).all()
    assert set(res.skipped) == {"unusual_hour"}
    assert set(res.labels["anomaly_type"]) == {str(k) for k in AnomalyType} - {"unusual_hour"}
    assert not continuity_breaks(t)[~(t.groupby("account_id")["anomaly_type"].shift() == "balance_mismatch")].any()


# --- rules ---------------------------------------------------------------------------------------


def test_missing_recurring_rule_finds_exactly_the_deleted_payments():
    clean, orders = bank_frame()
    res = inject(types=[AnomalyType.MISSING_RECURRING], rate=0.05)
    found = missing_recurring_payments(res.transactions, orders, START, END)
    assert missing_recurring_payments(clean, orders, START, END).empty
    key = ["account_id", "month", "partner_account", "amount"]
    assert len(res.missing_payments) >= MIN_EVENTS
    pd.testing.assert_frame_equal(found[key], res.missing_payments.sort_values(key).reset_index(drop=True))
    assert (found["k_symbol"] == "household").all()


def test_missing_recurring_rule_recalls_every_deleted_payment_among_all_types():
    res = inject()
    found = missing_recurring_payments(res.transactions, bank_frame()[1], START, END)
    key = ["account_id", "month", "partner_account"]
    hits = res.missing_payments.merge(found, on=key)
    assert len(hits) == len(res.missing_payments) > 0
    # anything else found is an order payment keyed x10 / x100 (labelled decimal shift)
    extra = found.merge(res.missing_payments, on=key, how="left", indicator=True).query("_merge == 'left_only'")
    shifted = of_type(res, AnomalyType.DECIMAL_SHIFT)
    shifted_months = set(zip(shifted["account_id"], shifted["ts"].dt.strftime("%Y-%m"), shifted["partner_account"],
                             strict=True))  # fmt: skip
    assert set(zip(extra["account_id"], extra["month"], extra["partner_account"], strict=True)) <= shifted_months


def test_missing_recurring_rule_reports_due_unpaid_whole_months_only():
    clean, orders = bank_frame()
    order_1 = ((clean["operation"] == "remittance_other_bank") & (clean["account_id"] == "1")).to_numpy()
    month = clean["ts"].dt.month.to_numpy()

    def missing(drop: np.ndarray, start: str = "1995-01-15", end: str = "1995-04-20") -> list[tuple[str, str]]:
        found = missing_recurring_payments(clean[~drop], orders, pd.Timestamp(start), pd.Timestamp(end))
        return list(zip(found["account_id"], found["month"], strict=True))

    assert missing(order_1 & (month == 3)) == [("1", "1995-03")]
    assert missing(order_1 & (month == 3), start="1995-03-02", end=str(END)) == []  # March is not whole
    assert missing(order_1 & (month == 4)) == []  # April is not whole in [Jan 15, Apr 20)
    assert missing(order_1 & (month >= 3), end=str(END)) == [("1", "1995-03")]  # stopped: due once
    assert missing(order_1 & (month <= 2), start="1995-01-01", end=str(END)) == []  # starts in March
    idle = (clean["account_id"] == "1").to_numpy() & (month == 3)
    assert missing(idle, end=str(END)) == []  # no transaction in March: nothing is due
    assert missing_recurring_payments(clean, orders, START, START).empty
    assert missing_recurring_payments(clean, orders.iloc[:0], START, END).empty


def test_apply_rules_flags_balance_errors_and_duplicates():
    features = pd.DataFrame(0.0, index=range(5), columns=list(FEATURE_COLUMNS))
    features.loc[1, "balance_error"] = 0.004  # rounding: no rule
    features.loc[2, "balance_error"] = 90.0
    features.loc[3, "duplicate_recent"] = 1.0
    features.loc[4, ["balance_error", "duplicate_recent"]] = [0.01, 1.0]
    assert apply_rules(features).tolist() == ["", "", "balance_mismatch", "duplicate_posting", "balance_mismatch"]
    assert apply_rules(features.iloc[:0]).shape == (0,)


def test_rules_fire_on_the_features_of_injected_rows_and_nowhere_else():
    res = inject()
    t = res.transactions
    fired = apply_rules(compute_features(t))
    for kind in RULE_TYPES:
        labelled = (t["anomaly_type"] == str(kind)).to_numpy()
        assert labelled.sum() >= MIN_EVENTS and (fired[labelled] == str(kind)).all()
    assert (fired[~t["is_anomaly"].to_numpy()] == "").all()
