"""One contract for every detector: calibrated scores, explanations, artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finsentry.detectors import REGISTRY, make_detector
from finsentry.detectors.artifact import ModelArtifactError, load_model, save_model
from finsentry.detectors.ensemble import EnsembleDetector
from tests.factories import gaussian_features

NAMES = ("isolation_forest", "lof")


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_calibrated_and_rank_the_outlier_first(name):
    train = gaussian_features(seed=1)
    model = make_detector(name).fit(train)  # IF cannot isolate a point outside its training range
    scores = model.score(train)
    assert ((scores >= 0) & (scores < 1)).all()
    assert scores[0] >= np.quantile(scores, 0.99)  # among the 1 % most anomalous
    # training scores are roughly uniform on [0, 1]
    deciles = np.histogram(model.score(train.iloc[1:]), bins=10, range=(0, 1))[0]
    assert deciles.min() > 0.5 * deciles.mean()


@pytest.mark.parametrize("name", NAMES)
def test_top_reason_names_the_perturbed_feature(name):
    train = gaussian_features(seed=2)
    model = make_detector(name).fit(train)  # IF cannot isolate a point outside its training range
    reasons = model.explain(train.iloc[[0]], top_k=3)[0]
    assert reasons[0].feature == "amount_z"
    assert "standard deviations above" in reasons[0].text


def test_ensemble_rule_hit_scores_one_with_its_type_and_reason_first():
    train = gaussian_features(seed=3)
    rules = lambda f: np.where(f["balance_error"].to_numpy() > 0.005, "balance_mismatch", "")  # noqa: E731
    model = EnsembleDetector(rules=rules).fit(train)
    test = train.iloc[:5].copy()
    test.loc[3, "balance_error"] = 90.0
    scores, types = model.score_with_types(test)
    assert scores[3] == 1.0 and types[3] == "balance_mismatch"
    assert (scores[[1, 2, 4]] < 1.0).all()
    assert model.explain(test.iloc[[3]])[0][0].text.startswith("Balance mismatch")


def test_artifact_round_trip_and_integrity_checks(tmp_path):
    train = gaussian_features(seed=4)
    model = make_detector("ensemble").fit(train)
    save_model(model, tmp_path, metadata={"training_window": ["a", "b"]})
    loaded, meta = load_model(tmp_path)
    np.testing.assert_array_equal(loaded.score(train), model.score(train))
    assert meta["detector"] == "ensemble" and len(meta["sha256"]) == 64
    with (tmp_path / "model.joblib").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ModelArtifactError, match="checksum"):
        load_model(tmp_path)
    save_model(model, tmp_path)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    meta["feature_columns"] = ["x"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="other features"):
        load_model(tmp_path)
    with pytest.raises(ModelArtifactError, match="not a model artifact"):
        load_model(tmp_path / "nowhere")


def test_registry_and_unknown_names():
    assert {"isolation_forest", "lof", "ensemble"} <= set(REGISTRY)
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("magic")
