"""Label-derived risk features: point-in-time (no label from after the transaction), windowed, corrected."""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsentry.label_risk import RISK_COLUMNS, risk_features, training_target
from tests.factories import card_world


def _rows(times: list[str], partner: str = "TERM1", account: str = "C1") -> pd.DataFrame:
    ts = pd.to_datetime(times, format="ISO8601")
    return pd.DataFrame({"trans_id": [f"R{i}" for i in range(len(times))], "account_id": account,
                         "partner_bank": "", "partner_account": partner, "ts": ts})  # fmt: skip


def _history(trans_ids: list[str], verdicts: list[str], whens: list[str]) -> pd.DataFrame:
    when = pd.to_datetime(whens, format="ISO8601")
    return pd.DataFrame({"trans_id": trans_ids, "verdict": verdicts, "who": "a", "when": when,
                         "note": "", "label_id": [f"L{i}" for i in range(len(trans_ids))],
                         "received_at": when})  # fmt: skip


def test_no_row_uses_a_label_given_at_or_after_its_own_time():
    """The property: every row's risk equals the risk computed from the labels known before it.
    Fails as soon as one label from after a transaction reaches that transaction's features."""
    rows, history = card_world(customers=80, terminals=30, days=50, seed=1)
    full = risk_features(rows, history)
    assert (full["partner_frauds_known_log"] > 0).any()  # labels do arrive and matter
    sample = np.random.default_rng(0).choice(len(rows), 40, replace=False)
    for i in sample:
        t = rows.loc[i, "ts"]
        known = risk_features(rows, history[history["when"] < t])
        np.testing.assert_allclose(full.loc[i].to_numpy(), known.loc[i].to_numpy(), err_msg=f"row {i} at {t}")


def test_a_label_counts_from_the_second_after_it_is_given_not_at_it():
    rows = _rows(["2024-01-01 10:00:00", "2024-01-08 12:00:00", "2024-01-08 12:00:01"])
    history = _history(["R0"], ["confirmed_fraud"], ["2024-01-08 12:00:00"])
    risk = risk_features(rows, history)
    assert risk.loc[0:1, "partner_frauds_known_log"].tolist() == [0.0, 0.0]
    assert risk.loc[2, "partner_frauds_known_log"] == np.log1p(1)
    assert risk.loc[2, "partner_fraud_share_known"] == 0.5 and risk.loc[2, "account_fraud_share_known"] == 0.5


def test_a_correction_counts_from_its_own_time_and_old_verdicts_leave_the_window():
    rows = _rows(["2024-01-01", "2024-01-09", "2024-01-11", "2024-02-20"])
    history = _history(["R0", "R0"], ["confirmed_fraud", "dismissed"], ["2024-01-08", "2024-01-10"])
    risk = risk_features(rows, history)
    assert risk.loc[1, "partner_frauds_known_log"] > 0  # the fraud verdict, known on the 8th
    assert risk.loc[2, "partner_frauds_known_log"] == 0.0  # dismissed on the 10th
    assert risk.loc[3, RISK_COLUMNS].eq(0).all()  # 28-day window passed


def test_each_window_counts_the_verdicts_known_within_it_and_the_28_day_one_keeps_its_name():
    # frauds on the terminal known 5 hours, 3 days and 20 days before the last row
    rows = _rows(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-25 12:00"])
    history = _history(["R0", "R1", "R2"], ["confirmed_fraud"] * 3,
                       ["2024-01-05 12:00", "2024-01-22 12:00", "2024-01-25 07:00"])  # fmt: skip
    risk = risk_features(rows, history).loc[3]
    assert RISK_COLUMNS[:2] == ("account_frauds_known_log", "account_fraud_share_known")  # earlier models' names
    assert [risk[f"partner_frauds_known_log{s}"] for s in ("_1d", "_7d", "")] == [np.log1p(1), np.log1p(2),
                                                                                   np.log1p(3)]  # fmt: skip
    assert [risk[f"partner_fraud_share_known{s}"] for s in ("_1d", "_7d", "")] == [1 / 2, 2 / 3, 3 / 4]
    assert set(risk.index) == set(RISK_COLUMNS) and len(RISK_COLUMNS) == 12
    only = risk_features(rows, history, windows=(7,)).loc[3]
    assert list(only.index) == ["account_frauds_known_log_7d", "account_fraud_share_known_7d",
                                "partner_frauds_known_log_7d", "partner_fraud_share_known_7d"]  # fmt: skip
    assert only["partner_frauds_known_log_7d"] == risk["partner_frauds_known_log_7d"]


def test_rows_without_a_partner_and_labels_of_unknown_transactions_are_nothing_known():
    rows = _rows(["2024-01-01", "2024-01-20"], partner="")
    history = _history(["R0", "ELSEWHERE"], ["confirmed_fraud", "confirmed_fraud"], ["2024-01-05", "2024-01-05"])
    risk = risk_features(rows, history)
    assert risk.loc[1, "partner_frauds_known_log"] == 0.0
    assert risk.loc[1, "account_frauds_known_log"] == np.log1p(1)  # only R0's verdict is tied to the account


def test_training_target_knows_only_earlier_verdicts_and_leaves_out_recent_silence():
    rows = _rows(["2024-01-01", "2024-01-02", "2024-01-09", "2024-01-09 12:00:00"])
    history = _history(["R0", "R1", "R1", "R3"], ["confirmed_fraud", "confirmed_fraud", "dismissed", "dismissed"],
                       ["2024-01-05", "2024-01-06", "2024-01-20", "2024-01-09 13:00:00"])  # fmt: skip
    target, usable = training_target(rows, history, as_of=pd.Timestamp("2024-01-10"), label_delay_days=7)
    assert target.iloc[:2].tolist() == [1.0, 1.0]  # R1's dismissal on the 20th is not known yet
    assert np.isnan(target.iloc[2]) and target.iloc[3] == 0.0
    assert usable.tolist() == [True, True, False, True]  # R2: recent and silent


def test_one_day_scored_against_a_lookup_of_earlier_rows_equals_the_whole_frame():
    rows, history = card_world(customers=60, terminals=20, days=40, seed=4)
    whole = risk_features(rows, history)
    day = rows["ts"].dt.floor("D") == rows["ts"].dt.floor("D").max()
    alone = risk_features(rows[day], history, lookup=rows)
    pd.testing.assert_frame_equal(alone, whole[day])
    assert alone["partner_frauds_known_log"].gt(0).any()


def test_old_silence_is_presumed_genuine_except_beside_a_known_fraud_of_the_same_partner_or_account():
    a = _rows(["2024-01-01", "2024-01-03", "2024-02-20"], partner="TERM1", account="C1")
    b = _rows(["2024-01-02"], partner="TERM2", account="C2").assign(trans_id="S0")
    c = _rows(["2024-01-02"], partner="TERM3", account="C1").assign(trans_id="S1")
    rows = pd.concat([a, b, c], ignore_index=True)
    history = _history(["R0", "R2"], ["confirmed_fraud", "confirmed_fraud"], ["2024-01-08", "2024-03-30"])
    target, usable = training_target(rows, history, as_of=pd.Timestamp("2024-03-01"), label_delay_days=7)
    assert target.isna().tolist() == [False, True, True, True, True]  # R2's verdict comes after as_of
    # R1: same terminal 2 days after a confirmed fraud; S1: same card; S0: nothing known near it;
    # R2: 50 days later, outside the 28-day window (its own later verdict is not known at as_of)
    assert usable.tolist() == [True, False, True, True, False]
