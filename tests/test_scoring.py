"""The scoring core: alerts at the threshold or exactly at the budget, SHAP for the top alerts only, checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from finsentry.detectors import make_detector
from finsentry.drift import build_reference
from finsentry.features import compute_features
from finsentry.scoring import SCORED_COLUMNS, check_scores, score_transactions, scored_frame
from tests.factories import gaussian_features, small_bank


def test_alerts_carry_types_and_reasons_and_normal_rows_none():
    train = gaussian_features(seed=5)
    model = make_detector("ensemble").fit(train)
    test = train.iloc[:50].copy()
    test.loc[7, "duplicate_recent"] = 1.0
    batch = score_transactions(model, test, budget_threshold=0.99, model_version="v1")
    assert batch.alerts[0] and batch.anomaly_types[0] == "amount_spike"
    assert batch.alerts[7] and batch.anomaly_types[7] == "duplicate_posting"
    assert all(batch.reasons[i] for i in np.flatnonzero(batch.alerts))
    assert all(not batch.reasons[i] and batch.anomaly_types[i] == "" for i in np.flatnonzero(~batch.alerts))


def test_scored_frame_has_exactly_the_published_columns():
    txns = small_bank(accounts=5, months=2).transactions.valid
    batch = score_transactions(None, compute_features(txns), budget_threshold=1.0, model_version="rules")
    assert list(scored_frame(txns, batch).columns) == list(SCORED_COLUMNS)


def _ensemble_with_rule(train: pd.DataFrame, share: float):
    """An ensemble whose rule fires on the first ``share`` of any frame's rows by amount_z rank."""

    def rule(f: pd.DataFrame) -> np.ndarray:
        return np.where(f["log_gap_hours"].to_numpy() > np.quantile(train["log_gap_hours"], 1 - share),
                        "burst", "")  # fmt: skip

    return make_detector("ensemble", rules=rule).fit(train)


def test_a_budget_alerts_exactly_its_share_and_rules_stay_inside_it():
    train = gaussian_features(n=600, seed=6)
    model = _ensemble_with_rule(train, 0.6)  # a rule firing on ~60 % of the rows
    keys = [f"T{i}" for i in range(len(train))]
    batch = score_transactions(model, train, budget=0.01, keys=keys, model_version="v", explain_top=0)
    assert batch.alerts.sum() == 6 and batch.rule_hits > 300
    assert batch.scores[batch.alerts].min() >= batch.scores[~batch.alerts].max()
    hits = np.flatnonzero(batch.alerts & (model.rule_types(train) == "burst"))
    assert len(hits) > 0 and all(batch.reasons[i][0].contribution == np.inf for i in hits)
    checks = check_scores(batch, train)
    assert any("rules fired on" in w for w in checks.warnings)
    shuffled = np.random.default_rng(1).permutation(len(train))
    again = score_transactions(model, train.iloc[shuffled], budget=0.01, keys=np.array(keys)[shuffled],
                               model_version="v", explain_top=0)  # fmt: skip
    assert set(np.array(keys)[shuffled][again.alerts]) == set(np.array(keys)[batch.alerts])
    plain = score_transactions(make_detector("isolation_forest").fit(train), train, budget=0.05,
                               model_version="v", explain_top=0)  # fmt: skip
    assert plain.alerts.sum() == 30 and plain.threshold == plain.scores[plain.alerts].min()
    assert plain.scores[plain.alerts].min() >= plain.scores[~plain.alerts].max()


def test_only_the_top_alerts_get_shap_and_the_rest_fast_reasons(monkeypatch):
    train = gaussian_features(n=600, seed=7)
    model = make_detector("isolation_forest").fit(train)
    asked: list[int] = []
    shap_explain = model.explain
    monkeypatch.setattr(model, "explain", lambda f, top_k=3: (asked.extend(f.index), shap_explain(f, top_k))[1])
    seen: dict[str, tuple[int, int]] = {}
    batch = score_transactions(model, train, budget=0.05, model_version="v", explain_top=4,
                               progress=lambda stage, done, total: seen.__setitem__(stage, (done, total)))  # fmt: skip
    top = np.argsort(-batch.scores, kind="stable")[:4]
    assert sorted(asked) == sorted(top) and batch.explained == 4
    assert all(batch.reasons[i] for i in np.flatnonzero(batch.alerts))
    assert seen == {"scoring": (600, 600), "explaining": (30, 30)}
    asked.clear()
    quiet = score_transactions(model, train, budget=0.05, model_version="v", explain_top=0)
    assert not asked and quiet.explained == 0 and np.array_equal(quiet.alerts, batch.alerts)
    assert all(quiet.reasons[i] for i in np.flatnonzero(quiet.alerts))
    with pytest.raises(ValueError, match="exactly one"):
        score_transactions(model, train, budget=0.05, budget_threshold=0.9, model_version="v")


def test_rules_alone_under_a_budget_alert_only_rule_hits():
    frame = gaussian_features(n=200, seed=8)
    frame.loc[[3, 4, 5], "balance_error"] = 50.0
    batch = score_transactions(None, frame, budget=0.01, model_version="rules")  # room for 2
    assert batch.alerts.sum() == 2 and batch.rule_hits == 3 and set(np.flatnonzero(batch.alerts)) <= {3, 4, 5}
    roomy = score_transactions(None, frame, budget=0.1, model_version="rules")
    assert roomy.alerts.sum() == 3 and all(roomy.reasons[i] for i in (3, 4, 5))


def test_checks_warn_on_drift_naming_the_feature_and_on_heavy_ties():
    train = gaussian_features(n=1500, seed=9)
    model = make_detector("isolation_forest").fit(train)
    reference = build_reference(model, train)
    same = gaussian_features(n=1500, seed=10)
    calm = check_scores(score_transactions(model, same, budget=0.01, model_version="v", explain_top=0), same,
                        reference)  # fmt: skip
    assert calm.warnings == [] and calm.drift is not None and calm.drift.score_psi < 0.25
    moved = same.assign(hour_rarity=same["hour_rarity"] + 3.0)
    checks = check_scores(score_transactions(model, moved, budget=0.01, model_version="v", explain_top=0), moved,
                          reference)  # fmt: skip
    assert checks.drifting[0][0] == "hour_rarity" and "hour_rarity" in checks.warnings[0]
    flat = moved.assign(**{c: 0.0 for c in ("amount_z", "log_amount", "hour_rarity", "log_gap_hours")})
    tied = check_scores(score_transactions(model, flat, budget=0.01, model_version="v", explain_top=0), flat)
    assert tied.distinct_scores == 1 and any("share their score" in w for w in tied.warnings)
    json.dumps(checks.summary(score_transactions(model, moved, budget=0.01, model_version="v", explain_top=0)),
               allow_nan=False)  # fmt: skip
