"""Split without leakage, budget thresholds, per-type recall, selection policy, ADBench protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsentry.evaluation import (
    ModelReport,
    adbench_protocol,
    evaluate_scores,
    recall_by_type,
    select_model,
    threshold_for_budget,
    time_split,
)


def test_time_split_has_no_leakage():
    ts = pd.Series(pd.date_range("1995-01-01", periods=1000, freq="6h"))
    split = time_split(pd.DataFrame({"ts": ts}))
    assert ts[split.train].max() < ts[split.validation].min()
    assert ts[split.validation].max() < ts[split.test].min()
    assert split.train.sum() + split.validation.sum() + split.test.sum() == 1000
    assert abs(split.train.mean() - 0.6) < 0.01


def test_threshold_never_exceeds_the_budget_even_with_ties():
    scores = np.r_[np.ones(30), np.linspace(0, 0.5, 970)]
    t = threshold_for_budget(scores, 0.01)
    assert (scores > t).sum() <= 10
    assert (np.linspace(0, 1, 1000) > threshold_for_budget(np.linspace(0, 1, 1000), 0.01)).sum() == 10


def test_recall_by_type_and_report():
    scores = np.array([0.9, 0.2, 0.95, 0.1, 0.3])
    types = np.array(["a", "a", "b", "", ""])
    assert recall_by_type(scores, types, 0.5) == {"a": 0.5, "b": 1.0}
    rep = evaluate_scores(scores, types != "", types, budget=0.4)
    assert rep.alerts == 2 and rep.precision == 1.0 and rep.recall == pytest.approx(2 / 3)


def report(name, recall, auc_pr=0.5):
    return ModelReport(name=name, budget=0.01, threshold=0.9, alerts=10, precision=0.3, recall=recall, auc_pr=auc_pr)


def test_select_model_promotes_and_keeps_with_a_margin():
    cands = [report("lof", 0.6), report("ensemble", 0.8), report("isolation_forest", 0.8, auc_pr=0.4)]
    first = select_model(cands, champion=None)
    assert first.best == "ensemble" and first.promoted
    kept = select_model(cands, champion=report("champ", 0.795))
    assert kept.best == "champ" and not kept.promoted and "kept" in kept.reason
    promoted = select_model(cands, champion=report("champ", 0.7))
    assert promoted.best == "ensemble" and promoted.promoted
    assert promoted.to_dict()["table"][-1]["role"] == "champion"


def test_adbench_protocol_on_blobs():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (400, 5)), rng.normal(5, 1, (20, 5))])
    y = np.r_[np.zeros(400), np.ones(20)]
    res = adbench_protocol(X, y, seeds=(0, 1))
    assert res["isolation_forest"]["auc_roc"] > 80 and res["lof"]["auc_roc"] > 80
