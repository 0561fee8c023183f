"""bench.handbook_supervised: the handbook's protocol on a tiny handbook-shaped table.

Labels go through the product's path with the delay, risk features never see a verdict given
after the row, every training row has its verdict, the handbook's test-set filter and its card
precision (detected cards removed)."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from bench.handbook import card_precision_at_k, known_compromised, load
from bench.handbook_supervised import label_every_row, model_param, run, verdict_records
from finsentry.label_risk import risk_features

START = pd.Timestamp("2018-06-01")
TRAIN_START = pd.Timestamp("2018-07-20")  # 49 days of history before it: the risk window + delay + 1 fit


def _rows(ts, customer, terminal, amount, fraud, scenario, ids):
    return {"TRANSACTION_ID": ids, "TX_DATETIME": ts, "CUSTOMER_ID": customer, "TERMINAL_ID": terminal,
            "TX_AMOUNT": amount, "TX_FRAUD": fraud, "TX_FRAUD_SCENARIO": scenario}  # fmt: skip


def handbook_table(seed: int = 0) -> pd.DataFrame:
    """70 days, 80 customers, 30 terminals: amounts above 220 are frauds (scenario 1), and from
    day 10 a terminal a day is compromised for 28 days (scenario 2), as the handbook's simulator."""
    rng = np.random.default_rng(seed)
    days, customers, terminals = 70, 80, 30
    n = days * customers * 2
    day = np.repeat(np.arange(days), customers * 2)
    ts = START + pd.to_timedelta(day, unit="D") + pd.to_timedelta(rng.integers(6 * 3600, 22 * 3600, n), unit="s")
    customer = np.tile(np.repeat(np.arange(customers), 2), days)
    home = rng.integers(0, terminals, (customers, 3))
    terminal = home[customer, rng.integers(0, 3, n)]
    amount = np.round(rng.gamma(2.0, 30.0, n), 2)
    amount[rng.random(n) < 0.004] = rng.uniform(230, 400)
    compromised = {d: int(rng.integers(0, terminals)) for d in range(10, days)}
    scenario = np.where(amount > 220, 1, 0)
    for d, t in compromised.items():
        hit = (terminal == t) & (day >= d) & (day < d + 28) & (scenario == 0)
        scenario[hit] = 2
    frame = pd.DataFrame(_rows(ts.strftime("%Y-%m-%d %H:%M:%S"), customer, terminal, amount,
                               (scenario > 0).astype(int), scenario, np.arange(n)))  # fmt: skip
    return frame.sort_values("TX_DATETIME", kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = tmp_path_factory.mktemp("handbook") / "simulated.csv"
    handbook_table().to_csv(path, index=False)
    return load(path, Console(quiet=True))


def test_verdicts_come_after_the_delay_and_risk_never_uses_a_later_verdict(loaded):
    valid, _ = loaded
    history = label_every_row(valid, 7, now=pd.Timestamp("2019-01-01"))
    assert len(history) == len(valid)
    known = pd.to_datetime(history.set_index("trans_id")["when"]).reindex(valid["trans_id"].astype(str))
    # the handbook's timing: exactly 7 x 24 h after the transaction (to the second, as `when` is kept)
    due = (pd.to_datetime(valid["ts"]) + pd.Timedelta(days=7)).dt.floor("s")
    assert (known.to_numpy() == due.to_numpy()).all()
    assert (history["verdict"].eq("confirmed_fraud").to_numpy() == valid["label"].to_numpy().astype(bool)).all()

    risk = risk_features(valid, history)
    # each row's terminal risk recomputed by hand from the verdicts known strictly before it
    fraud_when = known[valid["label"].to_numpy().astype(bool)]
    frauds = pd.DataFrame({"partner": valid.loc[valid["label"].astype(bool), "partner_account"].to_numpy(),
                           "when": fraud_when.to_numpy()})  # fmt: skip
    ts = pd.to_datetime(valid["ts"])
    rng = np.random.default_rng(1)
    for i in rng.choice(len(valid), 300, replace=False):
        mine = frauds[frauds["partner"] == valid["partner_account"].iloc[i]]
        n_known = int(((mine["when"] < ts.iloc[i]) & (mine["when"] >= ts.iloc[i] - pd.Timedelta(days=28))).sum())
        assert risk["partner_frauds_known_log"].iloc[i] == pytest.approx(np.log1p(n_known))
    # a compromised terminal's first frauds carry no risk until their verdicts are known
    first = frauds.groupby("partner")["when"].min()
    first_fraud_ts = ts[valid["label"].astype(bool)].groupby(valid.loc[valid["label"].astype(bool),
                                                                       "partner_account"]).min()  # fmt: skip
    early = (valid["partner_account"].map(first_fraud_ts) <= ts) & (ts < valid["partner_account"].map(first))
    assert early.any() and (risk.loc[early.to_numpy(), "partner_frauds_known_log"] == 0).all()
    assert (risk["partner_frauds_known_log"] > 0).any()


def test_verdict_records_are_given_exactly_the_delay_after_the_transaction():
    rows = pd.DataFrame({"trans_id": ["a", "b"], "ts": ["2018-07-31 23:59:59", "2018-08-01 00:00:00"],
                         "label": [1, 0]})  # fmt: skip
    records = verdict_records(rows, 7)
    assert records["when"].tolist() == ["2018-08-07T23:59:59", "2018-08-08T00:00:00"]
    assert records["verdict"].tolist() == ["confirmed_fraud", "dismissed"]


def test_the_handbook_test_set_leaves_out_customers_known_compromised_after_the_delay():
    since = pd.Timestamp("2018-07-25")
    frame = pd.DataFrame({
        "account_id": ["A", "A", "B", "B", "B", "C", "C", "D"],
        "ts": ["2018-07-26 10:00", "2018-08-08 10:00",  # A: fraud in the training week, gone from the test
               "2018-08-01 10:00", "2018-08-08 10:00", "2018-08-09 10:00",  # B: fraud on 08-01, known from 08-09
               "2018-07-20 10:00", "2018-08-08 10:00",  # C: fraud before the training week: kept
               "2018-08-08 10:00"],  # D: never a fraud
        "label": [1, 0, 1, 0, 0, 1, 0, 0]})  # fmt: skip
    out = known_compromised(frame, since, 7)
    assert out.tolist() == [False, True, False, False, True, False, False, False]


def test_card_precision_removes_cards_detected_on_an_earlier_day_as_the_handbook_does():
    # day 1: A (fraud) and B (genuine) top 2; day 2: A again first, then C (fraud), then B
    frame = pd.DataFrame({"ts": ["2018-08-08"] * 3 + ["2018-08-09"] * 3, "account_id": ["A", "B", "C"] * 2,
                          "label": [1, 0, 0, 1, 0, 1]})  # fmt: skip
    scores = np.array([0.9, 0.8, 0.1, 0.9, 0.5, 0.7])
    assert card_precision_at_k(frame, scores, k=2) == pytest.approx((0.5 + 1.0) / 2)
    # the handbook: A, found on day 1, leaves day 2, whose top 2 are C (fraud) and B
    assert card_precision_at_k(frame, scores, k=2, remove_detected=True) == pytest.approx((0.5 + 0.5) / 2)
    # the share is over k even when fewer customers are ranked
    assert card_precision_at_k(frame.iloc[:2], scores[:2], k=4, remove_detected=True) == pytest.approx(0.25)


def test_the_run_trains_on_every_verdict_of_the_training_week_and_scores_the_test_week(loaded):
    valid, features = loaded
    result = run(valid, features, TRAIN_START, 7, Console(quiet=True), model_params={"max_iter": 20})
    ts = pd.to_datetime(valid["ts"])
    in_train = (ts >= TRAIN_START) & (ts < TRAIN_START + pd.Timedelta(days=7))
    counts = result["training_counts"]["supervised"]
    assert counts["unlabelled"] == 0 and counts["frauds"] + counts["dismissed"] == int(in_train.sum())
    assert counts["frauds"] == int(valid.loc[in_train.to_numpy(), "label"].sum())
    test_week = (ts >= TRAIN_START + pd.Timedelta(days=14)) & (ts < TRAIN_START + pd.Timedelta(days=21))
    whole, handbook = result["sets"]["whole test week"], result["sets"]["handbook test set"]
    assert whole["rows"] == int(test_week.sum()) and handbook["rows"] < whole["rows"]
    assert result["test"] == ["2018-08-03", "2018-08-09"]
    assert result["model_params"] == {"max_iter": 20}  # the run says which setting it measured
    # the terminal risk finds the compromised terminals: the supervised model beats the ensemble
    assert whole["supervised"]["auc_pr"] > whole["unsupervised ensemble"]["auc_pr"]
    assert set(result["scenario_recall"]["whole test week"]["supervised"]) == {"1", "2", "3"}


def test_param_options_are_numeric_detector_keywords():
    """``--param l2_regularization=1.0`` measures a setting other than the product's default."""
    assert model_param("l2_regularization=1.0") == ("l2_regularization", 1.0)
    name, value = model_param("max_iter=300")
    assert (name, value) == ("max_iter", 300) and isinstance(value, int)
    for bad in ("l2_regularization", "l2=high", "=3", "two words=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            model_param(bad)
