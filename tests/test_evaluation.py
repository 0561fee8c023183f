"""Split without leakage, budget thresholds, per-type recall, selection policy, ADBench protocol."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_blobs

from finsentry.detectors import make_detector
from finsentry.evaluation import (
    ModelReport,
    adbench_protocol,
    adbench_split,
    alerts_for_budget,
    evaluate_scores,
    precision_at_k,
    recall_by_type,
    select_model,
    threshold_for_budget,
    time_split,
)


def test_time_split_has_no_leakage_even_with_shared_timestamps():
    rng = np.random.default_rng(0)
    ts = pd.Series(pd.to_datetime("1995-01-01") + pd.to_timedelta(rng.integers(0, 400, 5000), unit="D"))
    frame = pd.DataFrame({"ts": ts.to_numpy()}, index=rng.permutation(5000))  # any index, any order
    split = time_split(frame)
    assert ts[split.train].max() < split.validation_start <= ts[split.validation].min()
    assert ts[split.validation].max() < split.test_start <= ts[split.test].min()
    assert (split.train.astype(int) + split.validation + split.test == 1).all()
    assert abs(split.train.mean() - 0.6) < 0.01 and abs(split.test.mean() - 0.2) < 0.01


def test_time_split_by_day_and_with_given_cuts():
    ts = pd.Series(pd.date_range("1995-01-01", periods=1000, freq="5h"))
    frame = pd.DataFrame({"ts": ts})
    by_day = time_split(frame, floor="D")
    assert by_day.validation_start == by_day.validation_start.normalize()
    assert ts[by_day.train].dt.normalize().max() < ts[by_day.validation].dt.normalize().min()
    holed = frame.assign(ts=frame["ts"].where(ts.index != 7))
    again = time_split(holed, cuts=(by_day.validation_start, by_day.test_start))
    assert not (again.train[7] or again.validation[7] or again.test[7])  # no timestamp: no part
    np.testing.assert_array_equal(np.delete(again.test, 7), np.delete(by_day.test, 7))
    with pytest.raises(ValueError, match="fractions"):
        time_split(frame, fractions=(0.5, 0.2, 0.2))


def test_threshold_meets_the_budget_exactly_and_never_exceeds_it_on_ties():
    distinct = np.linspace(0, 1, 1000)
    assert (distinct > threshold_for_budget(distinct, 0.01)).sum() == 10
    assert (np.arange(100.0) > threshold_for_budget(np.arange(100.0), 0.29)).sum() == 29  # 0.29 * 100 < 29
    tied = np.r_[np.ones(30), np.linspace(0, 0.5, 970)]  # 30 rows tied at the top, budget 10
    assert (tied > threshold_for_budget(tied, 0.01)).sum() == 0
    tied = np.r_[np.ones(8), np.full(5, 0.9), np.linspace(0, 0.5, 987)]  # a tie straddles rank 10
    t = threshold_for_budget(tied, 0.01)
    assert t == 0.9 and (tied > t).sum() == 8
    assert (distinct > threshold_for_budget(distinct, 1.0)).all()
    assert not (distinct > threshold_for_budget(distinct, 0.0)).any()
    assert not (np.r_[np.nan, distinct] > threshold_for_budget(np.r_[np.nan, distinct], 0.01))[0]


@settings(max_examples=150, deadline=None)
@given(
    levels=st.lists(st.sampled_from([0.0, 0.2, 0.5, 0.5, 0.9, 1.0, float("nan")]), min_size=0, max_size=300),
    budget=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_alerts_for_budget_meet_it_exactly_and_ignore_row_order(levels, budget, seed):
    scores = np.asarray(levels, dtype=float)  # few distinct values: ties everywhere
    keys = np.array([f"T{i}" for i in range(scores.size)])
    alerts = alerts_for_budget(scores, budget, keys)
    expected = min(int(np.floor(budget * scores.size + 1e-9)), int((~np.isnan(scores)).sum()))
    assert alerts.sum() == expected
    assert not alerts[np.isnan(scores)].any()
    if alerts.any() and (~alerts & ~np.isnan(scores)).any():  # every alert outranks every non-alert
        assert scores[alerts].min() >= np.nanmax(scores[~alerts])
    perm = np.random.default_rng(seed).permutation(scores.size)
    again = alerts_for_budget(scores[perm], budget, keys[perm])
    assert set(keys[perm][again]) == set(keys[alerts])


def test_alerts_for_budget_split_a_tie_that_the_threshold_cannot():
    tied = np.r_[np.ones(8), np.full(5, 0.9), np.linspace(0, 0.5, 987)]  # a tie straddles rank 10
    alerts = alerts_for_budget(tied, 0.01, [f"t{i}" for i in range(1000)])
    assert alerts.sum() == 10 and alerts[:8].all() and alerts[8:13].sum() == 2
    flat = np.full(500, 0.4)  # 71 %-style ties: the whole table on one value
    assert alerts_for_budget(flat, 0.01).sum() == 5 and alerts_for_budget(flat, 0.01)[:5].all()  # by position
    with pytest.raises(ValueError, match="keys"):
        alerts_for_budget(flat, 0.01, ["a"])
    with pytest.raises(ValueError, match="budget"):
        alerts_for_budget(flat, 1.5)


def test_recall_by_type_on_a_toy_example():
    scores = np.array([0.9, 0.2, 0.95, 0.1, 0.3, 0.8])
    types = np.array(["a", "a", "b", "", None, np.nan], dtype=object)
    assert recall_by_type(scores, types, 0.5) == {"a": 0.5, "b": 1.0, "all": pytest.approx(2 / 3)}
    assert precision_at_k(scores, types == "a", 2) == 0.5


def test_evaluate_scores_reports_at_the_budget_and_is_json():
    scores = np.array([0.9, 0.2, 0.95, 0.1, 0.3])
    types = np.array(["a", "a", "b", "", ""])
    rep = evaluate_scores(scores, types != "", types, budget=0.4, name="m")
    assert (rep.alerts, rep.precision, rep.threshold) == (2, 1.0, 0.3)
    assert rep.recall == pytest.approx(2 / 3) and rep.recall_by_type["a"] == 0.5
    assert rep.auc_roc == pytest.approx(5 / 6) and rep.precision_at_k == pytest.approx(2 / 3)
    fixed = evaluate_scores(scores, types != "", types, budget=0.4, threshold=0.15)
    assert fixed.alerts == 4 and fixed.threshold == 0.15
    tied = evaluate_scores(np.r_[np.full(6, 0.5), 0.1, 0.1, 0.1, 0.1], np.r_[True, np.zeros(9, bool)],
                           np.r_[["a"], [""] * 9], budget=0.2, keys=[f"k{i}" for i in range(10)])
    assert tied.alerts == 2 and tied.threshold == 0.5  # exact budget; a fixed threshold would give 0
    empty = evaluate_scores(scores, np.zeros(5, bool), [""] * 5)
    json.dumps(empty.to_dict(), allow_nan=False)  # NaN figures become null
    assert empty.to_dict()["auc_pr"] is None


def report(name, auc_pr, recall=0.5):
    return ModelReport(name=name, threshold=0.9, alerts=10, precision=0.3, recall=recall, auc_pr=auc_pr)


def test_select_model_picks_the_best_and_promotes_only_beyond_the_margin():
    cands = [report("lof", 0.60), report("ensemble", 0.80), report("isolation_forest", 0.70)]
    first = select_model(cands, metric="auc_pr", champion=None)
    assert (first.best, first.promoted, first.serving) == ("ensemble", True, "ensemble")
    kept = select_model(cands, metric="auc_pr", champion=report("champ", 0.795))
    assert kept.best == "ensemble" and not kept.promoted and kept.serving == "champ"
    assert "kept" in kept.reason
    edge = select_model(cands, metric="auc_pr", champion=report("champ", 0.79))  # exactly the margin: not more
    assert not edge.promoted
    promoted = select_model(cands, metric="auc_pr", champion=report("champ", 0.70))
    assert promoted.promoted and promoted.serving == "ensemble" and "beats" in promoted.reason
    assert select_model(cands, metric="auc_pr", champion=report("champ", float("nan"))).promoted
    d = promoted.to_dict()
    json.dumps(d, allow_nan=False)
    assert [row["role"] for row in d["table"]] == ["candidate"] * 3 + ["champion"]
    assert [row["name"] for row in d["table"][:3]] == ["ensemble", "isolation_forest", "lof"]


def test_select_model_breaks_ties_by_recall_then_name_and_ranks_nan_last():
    cands = [report("b", 0.7, recall=0.5), report("c", 0.7, recall=0.6), report("a", 0.7, recall=0.5),
             report("z", float("nan"), recall=0.9)]  # fmt: skip
    assert [r["name"] for r in select_model(cands, None, metric="auc_pr").table] == ["c", "a", "b", "z"]
    assert select_model(cands, None, metric="recall").best == "z"


def test_adbench_protocol_on_blobs_with_outliers():
    X, _ = make_blobs(n_samples=500, centers=3, n_features=5, cluster_std=1.0, random_state=0)
    rng = np.random.default_rng(0)
    outliers = rng.uniform(X.min(axis=0) - 3, X.max(axis=0) + 3, (25, 5))
    X, y = np.vstack([X, outliers]), np.r_[np.zeros(500), np.ones(25)]
    res = adbench_protocol(X, y, seeds=(0, 1))
    assert res["isolation_forest"]["auc_roc"] > 80 and res["lof"]["auc_roc"] > 80
    custom = adbench_protocol(X, y, {"small_if": lambda seed: make_detector(
        "isolation_forest", n_estimators=50, random_state=seed, feature_columns=None)}, seeds=(0,))  # fmt: skip
    assert set(custom) == {"small_if"} and 0 <= custom["small_if"]["auc_pr"] <= 100


def _adbench_generator_split(X, y, seed):
    """What ADBench's DataGenerator does: seed NumPy's global generator, resample a table of fewer
    than 1,000 rows to 1,000, split on the same generator, min-max scale on the train part."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    np.random.seed(seed)
    if len(y) < 1_000:
        rows = np.random.choice(np.arange(len(y)), 1_000, replace=True)
        X, y = X[rows], y[rows]
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.3, shuffle=True, stratify=y)
    scaler = MinMaxScaler().fit(xtr)
    return scaler.transform(xtr), scaler.transform(xte), ytr, yte


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(1_000, 1_600), share=st.floats(0.02, 0.2))
def test_adbench_split_draws_the_rows_adbench_draws_and_leaves_the_global_generator_alone(seed, rows, share):
    rng = np.random.default_rng(seed % 1000)
    X = rng.normal(size=(rows, 3)) * [1, 10, 100]
    y = (np.arange(rows) < max(2, int(share * rows))).astype(int)
    state = np.random.get_state()[1].copy()
    ours = adbench_split(X, y, seed)
    assert (np.random.get_state()[1] == state).all(), "the caller's global generator is not touched"
    theirs = _adbench_generator_split(X, y, seed)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert ours[0].min() == pytest.approx(0) and ours[0].max() == pytest.approx(1)
    assert len(ours[0]) + len(ours[1]) == rows


def test_adbench_split_resamples_a_small_table_to_a_thousand_rows_as_adbench_does():
    X, y = np.arange(400, dtype=float).reshape(200, 2), np.r_[np.zeros(190), np.ones(10)]
    ours = adbench_split(X, y, 3)
    assert (len(ours[0]), len(ours[1])) == (700, 300) and 0 < ours[2].mean() < 0.2
    # the split continues the resampling's stream, as on NumPy's global generator
    for a, b in zip(ours, _adbench_generator_split(X, y, 3), strict=True):
        np.testing.assert_array_equal(a, b)


def test_adbench_protocol_gives_each_seed_on_request_and_their_mean():
    X, _ = make_blobs(n_samples=1_100, centers=2, n_features=3, random_state=0)
    y = np.r_[np.zeros(1_050), np.ones(50)]
    X[-50:] += 8
    res = adbench_protocol(X, y, seeds=(1, 2), per_seed=True)
    for r in res.values():
        assert set(r["per_seed"]) == {1, 2}
        assert r["auc_pr"] == pytest.approx(np.mean([v[1] for v in r["per_seed"].values()]), abs=0.01)


def test_the_default_policy_ranks_by_recall_at_the_budget():
    cands = [report("lof", 0.60, recall=0.65), report("ensemble", 0.50, recall=0.81)]
    assert select_model(cands, champion=None).best == "ensemble"
