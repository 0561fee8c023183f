"""The tail-probability detector: ECOD's scores, frozen for scoring one batch at a time;
one-sided tails for the product's features; families counted once; exact explanations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finsentry.detectors import make_detector
from finsentry.detectors.tails import TIE_BREAK
from tests.detectors import planted_frame


def generic(n: int = 500, d: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, d)), columns=[f"x{i}" for i in range(d)])


def test_raw_score_is_ecods_sum_of_tail_surprises_on_unknown_columns():
    train = generic()
    model = make_detector("tails", feature_columns=None).fit(train)
    row = train.iloc[[7]]
    n = len(train)
    expected = 0.0
    for c in train.columns:
        v = row[c].iloc[0]
        right = -math.log(((train[c] >= v).sum() + 1) / (n + 1))
        left = -math.log(((train[c] <= v).sum() + 1) / (n + 1))
        expected += max(right, left)
    assert model.raw_score(row)[0] == pytest.approx(expected * (1 + TIE_BREAK))  # no floor on unknown columns


def test_a_rows_score_does_not_depend_on_the_batch_it_is_scored_in():
    train, test = generic(seed=1), generic(n=50, seed=2)
    model = make_detector("tails", feature_columns=None).fit(train)
    together = model.score(test)
    alone = np.array([model.score(test.iloc[[i]])[0] for i in range(len(test))])
    np.testing.assert_array_equal(together, alone)


def test_beyond_the_training_range_the_ranking_keeps_rising():
    train = generic(seed=3)
    model = make_detector("tails", feature_columns=None).fit(train)
    far = pd.DataFrame({"x0": [10.0, 20.0, 40.0], "x1": 0.0, "x2": 0.0, "x3": 0.0})
    raw = model.raw_score(far)
    assert raw[0] < raw[1] < raw[2]


def test_only_the_unusual_tail_of_a_product_feature_counts():
    train = planted_frame(seed=4)
    model = make_detector("tails").fit(train)
    high, low = train.iloc[[1, 1]].copy(), train.iloc[[1]].copy()
    high["amount_z"] = [8.0, 0.0]
    low["amount_z"] = -8.0  # far below the account's usual: no evidence on its own
    scores = model.score(high)
    assert scores[0] > 0.95 and scores[0] > scores[1]
    assert model.raw_score(low)[0] <= model.raw_score(high.iloc[[1]])[0] + 1e-9


def test_a_family_counts_once():
    """Three views of one large amount weigh as much as the largest of them, not three times."""
    train = planted_frame(seed=5)
    model = make_detector("tails").fit(train)
    base = train.iloc[[1]].copy()
    z, amount, both = base.copy(), base.copy(), base.copy()
    z["amount_z"] = 8.0
    amount["log_amount"] = 8.0
    both["amount_z"], both["log_amount"] = 8.0, 8.0
    alone = [model.raw_score(f)[0] - model.raw_score(base)[0] for f in (z, amount)]
    assert model.raw_score(both)[0] - model.raw_score(base)[0] == pytest.approx(max(alone))


def test_a_product_feature_counts_only_beyond_its_floor():
    """Ordinary variation in many families must not add up to an alert: below the top
    ``floor_share`` of its training values a family adds (almost) nothing."""
    train = planted_frame(n=2000, seed=7)
    model = make_detector("tails", floor_share=0.01).fit(train)
    busy = train.iloc[[1]].copy()
    busy[["log_amount", "hour_rarity"]] = np.quantile(train[["log_amount", "hour_rarity"]], 0.95, axis=0)
    one = train.iloc[[1]].copy()
    one["log_amount"] = train["log_amount"].max() + 1.0
    assert model.raw_score(one)[0] > 10 * model.raw_score(busy)[0]


def test_explanations_are_the_exact_parts_of_the_score():
    train = planted_frame(seed=6)
    model = make_detector("tails").fit(train)
    row = train.iloc[[1]].copy()
    row["hour_rarity"] = 9.0
    reasons = model.explain(row, top_k=2)[0]
    assert reasons and reasons[0].feature == "hour_rarity"
    parts = model.contributions(row)[0]
    assert (parts >= 0).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=60), st.floats(-1e7, 1e7))
def test_scores_are_finite_and_in_the_unit_interval(values, probe):
    train = pd.DataFrame({"x0": values})
    model = make_detector("tails", feature_columns=None).fit(train)
    s = model.score(pd.DataFrame({"x0": [probe, np.nan, np.inf]}))
    assert np.isfinite(s).all() and ((s >= 0) & (s < 1)).all()


def bank_frame(n: int = 4000, seed: int = 5) -> pd.DataFrame:
    """Two common operations with amounts a hundredfold apart, and a rare third one."""
    rng = np.random.default_rng(seed)
    frame = planted_frame(n=n, seed=seed).assign(seq_op=0.0)
    op = rng.choice([3.0, 8.0, 11.0], size=n, p=[0.6, 0.399, 0.001])
    frame["seq_op"] = op
    frame["log_amount"] = np.log1p(np.where(op == 8.0, rng.lognormal(9.2, 0.3, n), rng.lognormal(4.6, 0.3, n)))
    return frame


def test_the_amount_is_read_against_its_own_operation_across_the_bank():
    train = bank_frame()
    model = make_detector("tails").fit(train)
    probe = train.iloc[[0, 0]].copy()
    probe["seq_op"] = [3.0, 8.0]  # the same 5,000: huge for operation 3, ordinary for operation 8
    probe["log_amount"] = math.log1p(5000.0)
    surprise = model.surprises(model.matrix(probe))[:, list(model.feature_columns).index("log_amount")]
    assert surprise[0] > math.log(len(train)) - 1 > 1.0 > surprise[1]
    bank_wide = make_detector("tails", feature_columns=tuple(c for c in model.feature_columns if c != "seq_op"))
    bank_wide.fit(train)
    assert bank_wide.surprises(bank_wide.matrix(probe))[0, 0] < surprise[0]  # across all operations it looks milder


def test_an_operation_rare_across_the_bank_is_evidence_even_on_a_first_time_account():
    train = bank_frame()
    model = make_detector("tails").fit(train)
    probe = train.iloc[[0, 0, 0]].copy()
    probe["seq_op"] = [3.0, 11.0, 1.0]  # common, rare (0.1 %), never seen
    probe["log_amount"] = math.log1p(100.0)
    column = list(model.feature_columns).index("seq_op")
    surprise = model.surprises(model.matrix(probe))[:, column]
    share = (train["seq_op"] == 11.0).mean()
    assert surprise[0] < 1.0
    assert surprise[1] == pytest.approx(-math.log(((train["seq_op"] == 11.0).sum() + 1) / (len(train) + 1)))
    assert surprise[1] > -math.log(0.01) and share < 0.01
    assert surprise[2] == pytest.approx(math.log(len(train) + 1))
    scores = model.score(probe)
    assert scores[1] > scores[0] and scores[2] > scores[0]
    reasons = model.explain(probe.iloc[[2]])[0]
    assert any("rare across the bank" in r.text for r in reasons)


def test_without_the_operation_code_tails_fits_on_the_features_alone():
    train = bank_frame().drop(columns=["seq_op"])
    model = make_detector("tails").fit(train)
    assert "seq_op" not in model.feature_columns and "seq_op" in model.unfed_features_
    assert np.isfinite(model.score(train.iloc[:5])).all()
