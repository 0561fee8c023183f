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
from finsentry.detectors.tails import CORROBORATION, TIE_BREAK
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


def test_a_family_counts_once_without_corroboration():
    """Two views of one large amount weigh as much as the largest of them, not twice."""
    train = planted_frame(seed=5)
    model = make_detector("tails", corroboration=0.0).fit(train)
    base = train.iloc[[1]].copy()
    z, amount, both = base.copy(), base.copy(), base.copy()
    z["amount_z"] = 8.0
    amount["log_amount"] = 8.0
    both["amount_z"], both["log_amount"] = 8.0, 8.0
    alone = [model.raw_score(f)[0] - model.raw_score(base)[0] for f in (z, amount)]
    assert model.raw_score(both)[0] - model.raw_score(base)[0] == pytest.approx(max(alone))


def test_a_familys_other_views_corroborate_at_their_weight():
    """The strongest view of a family counts in full, each other view's excess over its floor at
    ``corroboration``: exactly that much more than counting the family once."""
    train = planted_frame(seed=5)
    once = make_detector("tails", corroboration=0.0).fit(train)
    model = make_detector("tails").fit(train)
    assert model.params["corroboration"] == CORROBORATION == 0.5
    both = train.iloc[[1]].copy()
    both["amount_z"], both["log_amount"] = 8.0, 6.0
    x = model.matrix(both)
    surprise, floors = model.surprises(x)[0], model._floors()
    j_z, j_amount = (model.feature_columns.index(c) for c in ("amount_z", "log_amount"))
    weaker = min(surprise[j_z], surprise[j_amount]) - floors[j_z]
    assert weaker > 0  # both views are beyond their floor
    assert model.raw_score(both)[0] - once.raw_score(both)[0] == pytest.approx(0.5 * weaker)
    alone = both.copy()
    alone["log_amount"] = 0.0  # one view only: nothing to corroborate
    assert model.raw_score(alone)[0] == pytest.approx(once.raw_score(alone)[0])


def test_a_corroborated_amount_outranks_one_other_family_equally_far_out():
    """The handbook's scenario 1: an amount far out against the bank and the account's habits
    beats a row as far out in one other family (an hour) only when the views corroborate."""
    train = planted_frame(seed=5)
    amount, hour = train.iloc[[1]].copy(), train.iloc[[1]].copy()
    amount["log_amount"], amount["amount_z"] = 6.0, 5.0
    once = make_detector("tails", corroboration=0.0).fit(train)
    j = once.feature_columns.index("log_amount")
    hour["hour_rarity"] = 6.5  # a little further out than the amount's strongest view
    assert (
        once.surprises(once.matrix(hour))[0, once.feature_columns.index("hour_rarity")]
        > once.surprises(once.matrix(amount))[0, j]
    )
    assert once.raw_score(hour)[0] > once.raw_score(amount)[0]
    model = make_detector("tails").fit(train)
    assert model.raw_score(amount)[0] > model.raw_score(hour)[0]


def test_corroboration_leaves_unknown_columns_alone():
    """A benchmark table's columns are each their own family: nothing to corroborate."""
    train, test = generic(seed=8), generic(n=50, seed=9)
    a = make_detector("tails", feature_columns=None).fit(train)
    b = make_detector("tails", feature_columns=None, corroboration=0.0).fit(train)
    np.testing.assert_array_equal(a.raw_score(test), b.raw_score(test))


def test_corroboration_is_checked():
    with pytest.raises(ValueError, match="corroboration"):
        make_detector("tails", corroboration=1.5)


def test_a_model_saved_before_corroboration_counts_each_family_once():
    train = planted_frame(seed=5)
    old = make_detector("tails").fit(train)
    del old.params["corroboration"]
    once = make_detector("tails", corroboration=0.0).fit(train)
    rows = train.head(50).copy()
    rows.loc[1:5, "amount_z"], rows.loc[1:5, "log_amount"] = 8.0, 6.0
    np.testing.assert_array_equal(old.score(rows), once.score(rows))
    assert not np.allclose(make_detector("tails").fit(train).score(rows), once.score(rows))


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


def depth_frame(n: int = 6000, seed: int = 8) -> pd.DataFrame:
    """Accounts of every history depth; a young account's hour looks 'rare' (few rows to learn
    its habits from, as Laplace smoothing makes it), an old one's only when it really is."""
    rng = np.random.default_rng(seed)
    frame = planted_frame(n=n, seed=seed)
    depth = rng.uniform(0.0, np.log1p(100.0), n)
    frame["history_count_log"] = depth
    frame["hour_rarity"] = np.log(24.0) * np.exp(-depth) + rng.exponential(0.2, n)
    return frame


def test_account_relative_features_are_read_among_accounts_of_the_same_depth():
    train = depth_frame()
    tiered = make_detector("tails").fit(train)
    flat = make_detector("tails", depth_quantiles=()).fit(train)
    assert tiered.depth_edges_ is not None and flat.depth_edges_ is None
    np.testing.assert_allclose(tiered.depth_edges_, np.quantile(train["history_count_log"], [0.05, 0.25, 0.5]))
    columns = list(tiered.feature_columns)
    assert columns.index("hour_rarity") in tiered.depth_columns_
    assert columns.index("log_amount") not in tiered.depth_columns_  # the amount stays read across the bank
    assert columns.index("history_count_log") not in tiered.depth_columns_  # context, never evidence
    probe = train.iloc[[0, 0]].copy()
    probe["amount_z"] = 0.0
    probe["history_count_log"] = [0.05, 4.5]  # a brand-new account and an old one
    probe["hour_rarity"] = [np.log(24.0) * np.exp(-0.05), 1.5]  # usual for the new one, rare for the old one
    j = columns.index("hour_rarity")
    flat_s, tiered_s = flat.surprises(flat.matrix(probe))[:, j], tiered.surprises(tiered.matrix(probe))[:, j]
    assert flat_s[0] > flat_s[1]  # across all accounts, being new looks like the anomaly
    assert tiered_s[1] > -math.log(0.01) > tiered_s[0]  # among its peers, only the old account's hour is
    assert tiered.score(probe)[1] > tiered.score(probe)[0]


def test_a_tier_too_small_keeps_the_all_rows_reading():
    train = depth_frame(n=1200)  # 5 % of 1,200 rows: 60 in the youngest tier, under DEPTH_MIN_ROWS
    model = make_detector("tails").fit(train)
    assert model.depth_samples_[0] is None and model.depth_samples_[-1] is not None
    flat = make_detector("tails", depth_quantiles=()).fit(train)
    young = train[train["history_count_log"] < model.depth_edges_[0]].head(5)
    np.testing.assert_allclose(model.surprises(model.matrix(young)), flat.surprises(flat.matrix(young)))


def test_depth_quantiles_are_checked():
    with pytest.raises(ValueError, match="depth_quantiles"):
        make_detector("tails", depth_quantiles=(0.5, 1.0))


def test_a_model_saved_before_depth_tiers_still_scores_as_it_did():
    train = depth_frame(n=2000)
    model = make_detector("tails").fit(train)
    old = make_detector("tails", depth_quantiles=()).fit(train)
    for name in ("depth_edges_", "depth_columns_", "depth_samples_"):
        delattr(old, name)
    del old.params["depth_quantiles"]
    flat = make_detector("tails", depth_quantiles=()).fit(train)
    np.testing.assert_allclose(old.score(train.head(50)), flat.score(train.head(50)))
    assert not np.allclose(model.score(train.head(50)), flat.score(train.head(50)))
