"""The anomaly catalog: injectors label what they change and keep balances consistent."""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsentry.anomalies import (
    CATALOG,
    RULE_TYPES,
    AnomalyType,
    apply_rules,
    inject_anomalies,
    missing_recurring_payments,
    type_of_feature,
)
from finsentry.features import FEATURE_COLUMNS, compute_features
from finsentry.schema import validate_frame
from tests.factories import small_bank


def injected(seed=1, rate=0.01):
    bank = small_bank()
    v = bank.transactions.valid
    start = v["ts"].quantile(0.6)
    return bank, start, inject_anomalies(v, bank.orders, start, rate=rate, seed=seed)


def balance_breaks(frame: pd.DataFrame) -> pd.Series:
    signed = np.where(frame["direction"] == "debit", -frame["amount"], frame["amount"])
    return (frame["balance_before"] + signed - frame["balance_after"]).abs() > 0.005


def test_every_type_is_injected_labelled_and_after_start():
    bank, start, res = injected()
    counts = res.labels["anomaly_type"].value_counts()
    assert set(counts.index) == {str(t) for t in AnomalyType}
    assert (res.labels["ts"] >= start).all()
    labelled = res.transactions[res.transactions["is_anomaly"]]
    assert set(labelled["trans_id"]) == set(res.labels["trans_id"]) - {""}
    before = res.transactions[res.transactions["ts"] < start]
    assert not before["is_anomaly"].any()
    assert len(res.missing_payments) == counts[str(AnomalyType.MISSING_RECURRING)]


def test_injection_is_deterministic_and_leaves_the_input_alone():
    bank = small_bank()
    copy = bank.transactions.valid.copy()
    _, _, a = injected(seed=5)
    _, _, b = injected(seed=5)
    _, _, c = injected(seed=6)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    assert not a.transactions.equals(c.transactions)
    pd.testing.assert_frame_equal(bank.transactions.valid, copy)


def test_balances_stay_consistent_except_for_balance_mismatch():
    _, _, res = injected()
    t = res.transactions
    breaks = balance_breaks(t)
    assert (t.loc[breaks, "anomaly_type"] == "balance_mismatch").all()
    assert breaks.sum() == (t["anomaly_type"] == "balance_mismatch").sum()
    # continuity: each row starts where the previous one ended, except after a typo row
    prev_after = t.groupby("account_id")["balance_after"].shift()
    prev_typo = t.groupby("account_id")["anomaly_type"].shift() == "balance_mismatch"
    gap = ((t["balance_before"] - prev_after).abs() > 0.005) & prev_after.notna() & ~prev_typo
    clean = small_bank().transactions.valid
    clean_prev = clean.groupby("account_id")["balance_after"].shift()
    clean_gaps = (((clean["balance_before"] - clean_prev).abs() > 0.005) & clean_prev.notna()).sum()
    assert gap.sum() == clean_gaps == 0


def test_duplicates_copy_their_source_and_the_result_is_valid():
    _, _, res = injected()
    t = res.transactions
    dup = t[t["anomaly_type"] == "duplicate_posting"]
    cols = ["account_id", "ts", "amount", "operation", "partner_account", "k_symbol"]
    normal = t[~t["is_anomaly"]]
    assert len(dup.merge(normal[cols], on=cols)) >= len(dup)
    assert validate_frame(t.drop(columns=["is_anomaly", "anomaly_type"])).rejected.empty


def test_missing_recurring_rule_finds_exactly_the_deleted_payments():
    bank, start, res = injected()
    t = res.transactions
    end = t["ts"].max().normalize() + pd.offsets.MonthBegin(0)
    month_start = start.normalize() + pd.offsets.MonthBegin(0)
    found = missing_recurring_payments(t, bank.orders, month_start, end)
    baseline = missing_recurring_payments(bank.transactions.valid, bank.orders, month_start, end)
    assert baseline.empty  # the synthetic bank pays every order every month
    truth = res.missing_payments[pd.to_datetime(res.missing_payments["month"]) >= month_start]
    key = ["account_id", "month", "partner_account"]
    assert len(truth) > 0
    assert sorted(map(tuple, found[key].to_numpy())) == sorted(map(tuple, truth[key].to_numpy()))


def test_rules_fire_on_the_features_of_injected_rows():
    _, _, res = injected()
    feats = compute_features(res.transactions)
    types = apply_rules(feats)
    t = res.transactions["anomaly_type"].to_numpy()
    for kind in RULE_TYPES:
        assert (types[t == str(kind)] == str(kind)).all()
    assert (types[t == ""] == "").mean() > 0.995


def test_catalog_maps_features_to_types():
    assert type_of_feature("hour_rarity") == "unusual_hour"
    assert type_of_feature("history_count_log") == "other"
    named = {f for e in CATALOG.values() for f in e.features}
    assert named <= set(FEATURE_COLUMNS)
    assert all(e.reason for e in CATALOG.values())
