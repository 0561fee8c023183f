"""Streaming reasons: path attributions are additive and mostly agree with TreeSHAP's top reason."""

from __future__ import annotations

import numpy as np

from finsentry.detectors import make_detector
from finsentry.detectors.fast_forest import flatten, node_expectations, path_contributions, raw_scores
from finsentry.explain import shap_contributions
from finsentry.stream.reasons import stream_explain
from tests.factories import gaussian_features


def test_path_contributions_add_up_to_the_path_length_shortfall_and_track_tree_shap():
    frame = gaussian_features(800)
    det = make_detector("isolation_forest", n_estimators=60).fit(frame)
    x = det.matrix(frame)
    flat, expected = flatten(det.model), node_expectations(det.model)
    contrib = path_contributions(det.model, flat, expected, x[:100])
    depth = -np.log2(raw_scores(flat, x[:100])) * flat.denominator  # total path length
    base = expected[flat.roots].sum()
    np.testing.assert_allclose(contrib.sum(axis=1), (base - depth) / flat.denominator, atol=1e-9)
    shap = shap_contributions(det, frame.iloc[:100])
    outliers = np.argsort(-det.raw_score(frame.iloc[:100]))[:20]
    same_top = np.mean([np.argmax(contrib[i]) == np.argmax(shap[i]) for i in outliers])
    assert same_top >= 0.8
    assert np.argmax(contrib[0]) == list(det.feature_columns).index("amount_z")  # the planted outlier


def test_stream_reasons_for_the_ensemble_keep_rule_reasons_first_and_skip_sampled_members():
    frame = gaussian_features(400)
    frame.loc[3, "balance_error"] = 50.0
    ens = make_detector("ensemble").fit(frame)
    reasons = stream_explain(ens, frame.iloc[[0, 3]], top_k=3)
    assert reasons[1][0].feature == "balance_error" and np.isinf(reasons[1][0].contribution)
    assert reasons[0] and reasons[0][0].feature == "amount_z" and all(len(r) <= 3 for r in reasons)
