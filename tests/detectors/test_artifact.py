"""Model artifacts: round trip, metadata, and every way a load must refuse."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import joblib
import numpy as np
import pytest

from finsentry import __version__
from finsentry.detectors import EnsembleDetector, make_detector
from finsentry.detectors.artifact import ModelArtifactError, load_model, save_model
from finsentry.features import DETECTOR_COLUMNS
from tests.detectors import planted_frame


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    train = planted_frame(seed=11)
    model = make_detector("ensemble").fit(train)
    directory = save_model(model, tmp_path_factory.mktemp("model"),
                           metadata={"training_window": ["1995-01-01", "1996-06-30"],
                                     "metrics": {"auc_pr": 0.61, "auc_roc": float("nan")}})  # fmt: skip
    return model, train, directory


def test_round_trip_gives_identical_scores_and_full_metadata(saved):
    model, train, directory = saved
    loaded, meta = load_model(directory)
    np.testing.assert_array_equal(loaded.score(train), model.score(train))
    assert loaded.explain(train.iloc[[0]])[0][0].feature == model.explain(train.iloc[[0]])[0][0].feature
    assert meta["detector"] == "ensemble" and meta["finsentry_version"] == __version__
    assert meta["feature_columns"] == list(DETECTOR_COLUMNS) and len(meta["sha256"]) == 64
    assert meta["training_window"] == ["1995-01-01", "1996-06-30"]
    assert meta["metrics"] == {"auc_pr": 0.61, "auc_roc": None}  # strict JSON: NaN is null
    assert meta["params"]["members"][0]["name"] == "isolation_forest"
    assert datetime.fromisoformat(meta["created_at"]).utcoffset().total_seconds() == 0


def test_a_rules_callable_is_not_saved(tmp_path):
    train = planted_frame(seed=12)
    model = EnsembleDetector(rules=lambda f: np.full(len(f), "", dtype=object)).fit(train)
    loaded, _ = load_model(save_model(model, tmp_path))
    assert loaded.rules is None and loaded.use_rules


def copy_artifact(saved, tmp_path):
    _, _, directory = saved
    for name in ("model.joblib", "metadata.json"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    return tmp_path


def test_tampered_model_is_refused(saved, tmp_path):
    directory = copy_artifact(saved, tmp_path)
    with (directory / "model.joblib").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ModelArtifactError, match="checksum"):
        load_model(directory)


def test_other_feature_list_is_refused(saved, tmp_path):
    directory = copy_artifact(saved, tmp_path)
    with pytest.raises(ModelArtifactError, match="other features"):
        load_model(directory, expected_features=("amount_z", "log_amount"))
    meta = json.loads((directory / "metadata.json").read_text())
    meta["feature_columns"] = list(reversed(DETECTOR_COLUMNS))
    (directory / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="other features"):
        load_model(directory)
    with pytest.raises(ModelArtifactError, match="does not match its metadata"):
        load_model(directory, expected_features=None)  # the pickle disagrees with its metadata


def test_missing_unreadable_or_foreign_content_is_refused(saved, tmp_path):
    with pytest.raises(ModelArtifactError, match="not a model artifact"):
        load_model(tmp_path / "nowhere")
    directory = copy_artifact(saved, tmp_path)
    (directory / "metadata.json").write_text("{not json")
    with pytest.raises(ModelArtifactError, match="JSON"):
        load_model(directory)
    joblib.dump({"not": "a detector"}, directory / "model.joblib")
    meta = json.loads((saved[2] / "metadata.json").read_text())
    meta["sha256"] = hashlib.sha256((directory / "model.joblib").read_bytes()).hexdigest()
    (directory / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="not a detector"):
        load_model(directory)
    (directory / "model.joblib").write_bytes(b"garbage")
    meta["sha256"] = hashlib.sha256(b"garbage").hexdigest()
    (directory / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="cannot be loaded"):
        load_model(directory)


def test_save_refuses_an_unfitted_model_and_reserved_keys(saved, tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save_model(make_detector("isolation_forest"), tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        save_model(saved[0], tmp_path, metadata={"sha256": "0" * 64})
