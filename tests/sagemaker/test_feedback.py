"""Analysts' verdicts in the SageMaker jobs: the supervised candidate trains on a labels channel,
and the evaluation ranks on verdicts once there are enough (and says so)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finsentry.detectors.artifact import load_model
from finsentry.labels import MIN_FRAUDS, MIN_NEGATIVES
from tests.sagemaker.conftest import entry_point, training_env

train, evaluate = entry_point("train"), entry_point("evaluate")


def _verdicts(rows: pd.DataFrame, frauds: np.ndarray, dismissed: np.ndarray) -> pd.DataFrame:
    """A case-management export: verdicts a week after each transaction."""
    picked = rows.iloc[np.concatenate([frauds, dismissed])]
    return pd.DataFrame({"trans_id": picked["trans_id"].astype(str),
                         "verdict": ["confirmed_fraud"] * len(frauds) + ["dismissed"] * len(dismissed),
                         "who": "case-system",
                         "when": (pd.to_datetime(picked["ts"]) + pd.Timedelta(days=7)).dt.strftime("%Y-%m-%dT%H:%M:%S"),
                         "note": ""})  # fmt: skip


@pytest.fixture(scope="module")
def label_channel(labelled, tmp_path_factory) -> Path:
    """Verdicts on the training period: the largest amounts against their usual confirmed, others dismissed."""
    train_rows, _ = labelled
    order = np.argsort(-train_rows["amount_z"].to_numpy())
    folder = tmp_path_factory.mktemp("labels")
    _verdicts(train_rows, order[:40], order[-60:]).to_csv(folder / "export-1.csv", index=False)
    return folder


def _train_supervised(tmp: Path, channels, label_channel) -> int:
    return train.main(training_env(tmp, {"train": channels["train"], "labels": label_channel}, "supervised",
                                   max_iter=30))  # fmt: skip


def test_the_supervised_candidate_trains_on_the_labels_channel(channels, label_channel, tmp_path):
    assert _train_supervised(tmp_path, channels, label_channel) == 0
    model, meta = load_model(tmp_path / "model")
    assert meta["detector"] == model.name == "supervised"
    assert meta["lineage"]["training_data"]["labels"]["confirmed"] == 40
    assert model.training_counts_ == {"frauds": 40, "dismissed": 60, "unlabelled": 0}


def test_without_enough_verdicts_the_supervised_job_fails_saying_why(channels, label_channel, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    pd.read_csv(label_channel / "export-1.csv").head(MIN_FRAUDS - 1).to_csv(few / "export.csv", index=False)
    assert train.main(training_env(tmp_path, {"train": channels["train"], "labels": few}, "supervised")) == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert "not enough verdicts" in failure and f"below the minimum ({MIN_FRAUDS} and {MIN_NEGATIVES})" in failure


@pytest.fixture(scope="module")
def candidates(channels, label_channel, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name in ("isolation_forest", "supervised"):
        job = tmp_path_factory.mktemp(f"job-{name}")
        if name == "supervised":
            assert _train_supervised(job, channels, label_channel) == 0
        else:
            assert train.main(training_env(job, {"train": channels["train"]}, name)) == 0
        with tarfile.open(job / "model.tar.gz", "w:gz") as tar:
            for f in sorted((job / "model").iterdir()):
                tar.add(f, arcname=f.name)
        out[name] = job / "model.tar.gz"
    return out


def _evaluate(tmp: Path, channels, candidates, verdicts: pd.DataFrame | None) -> dict:
    for name, archive in candidates.items():
        (tmp / "models" / name).mkdir(parents=True)
        shutil.copy(archive, tmp / "models" / name / "model.tar.gz")
    shutil.copytree(channels["validation"], tmp / "validation")
    (tmp / "labels").mkdir()
    if verdicts is not None:
        verdicts.to_csv(tmp / "labels" / "export.csv", index=False)
    env = {"FINSENTRY_PROCESSING_DIR": str(tmp), "FINSENTRY_OUTPUT_DIR": str(tmp / "output")}
    assert evaluate.main([], env) == 0
    return json.loads((tmp / "evaluation" / "evaluation.json").read_text())


def test_selection_ranks_on_injected_anomalies_until_verdicts_suffice(channels, candidates, labelled, tmp_path):
    _, validation = labelled
    result = _evaluate(tmp_path / "none", channels, candidates, None)
    assert result["basis"]["basis"] == result["selection"]["basis"] == "injected"
    assert "injected validation anomalies" in result["selection"]["reason"]
    assert result["anomalies"] == int(validation["is_anomaly"].sum())
    rng = np.random.default_rng(0)
    picks = rng.choice(len(validation), 2 * MIN_FRAUDS + 10, replace=False)
    verdicts = _verdicts(validation, picks[:MIN_FRAUDS + 5], picks[MIN_FRAUDS + 5:])
    result = _evaluate(tmp_path / "enough", channels, candidates, verdicts)
    assert result["basis"]["basis"] == result["selection"]["basis"] == "analyst_labels"
    assert "analysts' verdicts" in result["selection"]["reason"]
    assert result["anomalies"] == MIN_FRAUDS + 5  # the verdicts, not the injected anomalies
    assert set(result["candidates"]) == {"isolation_forest", "supervised"}
    # the stream serves the supervised candidate's label-derived risk (finsentry.stream.risk): both ranked
    assert result["candidates"]["isolation_forest"]["promotable"] is True
    assert result["candidates"]["supervised"]["promotable"] is True
    assert "not_promotable" not in result["candidates"]["supervised"]
    assert {row["name"] for row in result["selection"]["table"]} == {"isolation_forest", "supervised"}
    assert result["selection"]["best"] in {"isolation_forest", "supervised"}


def test_a_candidate_reading_a_column_the_stream_does_not_compute_is_never_promoted():
    from finsentry.detectors import make_detector
    from finsentry.features import FEATURE_COLUMNS
    from finsentry.training.jobs import stream_gap

    assert stream_gap(make_detector("supervised")) is None
    odd = make_detector("isolation_forest", feature_columns=(*FEATURE_COLUMNS[:3], "bureau_score"))
    assert "bureau_score" in stream_gap(odd)
