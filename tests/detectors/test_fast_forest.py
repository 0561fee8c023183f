"""The compiled Isolation Forest walk gives scikit-learn's scores."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from finsentry.detectors import make_detector
from finsentry.detectors.fast_forest import flatten, raw_scores
from tests.factories import gaussian_features


def test_compiled_walk_equals_score_samples_with_and_without_feature_subsampling():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(700, 6))
    x[:5] *= 40
    for max_features in (1.0, 0.5):
        forest = IsolationForest(n_estimators=40, max_samples=128, max_features=max_features, random_state=0).fit(x)
        probe = np.vstack([x[:50], rng.normal(size=(50, 6)) * 3, np.full((1, 6), np.inf), np.zeros((1, 6))])
        np.testing.assert_allclose(raw_scores(flatten(forest), probe), -forest.score_samples(probe), rtol=0, atol=1e-12)


def test_the_detector_scores_through_the_compiled_walk():
    frame = gaussian_features()
    det = make_detector("isolation_forest", n_estimators=30).fit(frame)
    expected = -det.model.score_samples(det.forest_input(det.matrix(frame)))  # what the forest sees
    np.testing.assert_allclose(det.raw_score(frame), expected, rtol=0, atol=1e-12)
    assert "_shap_flat_forest" not in det.__getstate__()
