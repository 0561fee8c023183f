"""sagemaker/train.py in-process, with SageMaker's folders and variables pointing at tmp."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from finsentry import drift
from finsentry.detectors.artifact import load_model
from finsentry.training.jobs import content_hash, data_files
from tests.sagemaker.conftest import entry_point, training_env

train = entry_point("train")


@pytest.mark.parametrize("detector", ["isolation_forest", "lof", "lstm"])
def test_each_candidate_trains_into_the_model_dir_with_its_lineage(detector, channels, tmp_path, capsys):
    env = training_env(tmp_path, channels, detector)
    assert train.main(env) == 0
    model, meta = load_model(tmp_path / "model", allow_sequence=True)
    assert meta["detector"] == detector == model.name
    lineage = meta["lineage"]
    assert lineage["training_data"]["uri"] == "s3://bucket/curated/features/"
    assert lineage["training_data"]["sha256"] == content_hash(data_files(channels["train"]), channels["train"])
    assert lineage["training_data"]["files"] == 2
    assert lineage["code_version"] == {"finsentry": meta["finsentry_version"], "git_sha": "abc123"}
    assert lineage["hyperparameters"]["detector"] == detector  # decoded from SageMaker's JSON strings
    assert lineage["training_job"]["name"] == f"finsentry-{detector}-test"
    assert meta["training_window"][0] < meta["training_window"][1]
    reference = drift.reference_from_metadata(meta)  # what the stream scorer measures drift against
    assert set(reference.features) == set(model.feature_columns) and len(reference.score.shares) > 1
    assert list(reference.window) == meta["training_window"]
    # the validation channel's figures are in the metadata and in the metric lines
    assert 0 <= meta["metrics"]["recall"] <= 1 and meta["metrics"]["threshold"] is not None
    assert "unusual_sequence" in meta["metrics"]["recall_by_type"]
    assert f"finsentry_recall={meta['metrics']['recall']:.6f};" in capsys.readouterr().out


def test_hyperparameters_reach_the_detector_and_sm_hp_overrides_the_file(channels, tmp_path):
    env = training_env(tmp_path, {"train": channels["train"]}, "isolation_forest", n_estimators=20)
    env["SM_HP_N_ESTIMATORS"] = "15"
    env["SM_HPS"] = json.dumps({"sagemaker_program": "train.py", "sagemaker_region": "eu-west-1"})  # the SDK's keys
    assert train.main(env) == 0
    model, meta = load_model(tmp_path / "model")
    assert model.params["n_estimators"] == 15 and meta["metrics"] == {}  # no validation channel: no figures


def test_channels_are_found_in_opt_ml_input_data_without_sm_variables(channels, tmp_path):
    env = training_env(tmp_path, {}, "isolation_forest")
    data = tmp_path / "input" / "data" / "train"
    data.mkdir(parents=True)
    for src in data_files(channels["train"]):
        (data / src.name.replace(".parquet", f"-{src.parent.name}.parquet")).write_bytes(src.read_bytes())
    del env["SM_MODEL_DIR"]  # default: <root>/model
    assert train.main(env) == 0
    assert (tmp_path / "model" / "model.joblib").is_file()


def test_canonical_transactions_in_csv_are_turned_into_features(tmp_path):
    from tests.factories import small_bank

    folder = tmp_path / "csv"
    folder.mkdir()
    small_bank().transactions.valid.to_csv(folder / "transactions.csv", index=False)
    env = training_env(tmp_path / "job", {"train": folder}, "lstm")
    assert train.main(env) == 0
    _, meta = load_model(tmp_path / "job" / "model", allow_sequence=True)
    assert meta["lineage"]["training_data"]["rows"] == len(small_bank().transactions.valid)


@pytest.mark.parametrize(("detector", "channels_given", "reason"), [
    ("random_forest", True, "unknown detector 'random_forest'"),
    ("", True, "hyperparameter 'detector' is required"),
    ("lof", False, "no 'train' channel"),
])  # fmt: skip
def test_a_failed_job_says_why_in_the_failure_file(detector, channels_given, reason, channels, tmp_path):
    env = training_env(tmp_path, channels if channels_given else {}, detector)
    assert train.main(env) == 1
    assert reason in (tmp_path / "output" / "failure").read_text()
    assert not (tmp_path / "model" / "model.joblib").exists()


def test_an_empty_train_channel_fails_clearly(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train.main(training_env(tmp_path / "job", {"train": empty}, "lof")) == 1
    assert "no data files" in (tmp_path / "job" / "output" / "failure").read_text()
    assert json.loads((tmp_path / "job" / "input" / "config" / "hyperparameters.json").read_text())["detector"]


def test_an_ensemble_with_the_lstm_is_one_training_job(channels, tmp_path):
    env = training_env(tmp_path, channels, "ensemble", ensemble_members=["isolation_forest", "lstm"], random_state=3)
    assert train.main(env) == 0
    model, meta = load_model(tmp_path / "model", allow_sequence=True)
    assert [m.name for m in model.members] == ["isolation_forest", "lstm"]
    assert model.weights.tolist() == [1 / 1.5, 0.5 / 1.5]  # the LSTM at sequence.ENSEMBLE_WEIGHT
    assert all(m.params["random_state"] == 3 for m in model.members)
    assert train.main(training_env(tmp_path / "x", channels, "ensemble", ensemble_members=["ensemble"])) == 1
    assert "members must be base detectors" in (tmp_path / "x" / "output" / "failure").read_text()


def test_the_training_window_and_the_validation_period_are_kept_out_of_training(labelled, tmp_path):
    """One prefix holding everything (as curated/features/ does): training keeps the window's rows
    before the validation period; evaluation keeps the window's validation rows."""
    train_rows, validation = labelled
    everything = pd.concat([train_rows, validation.drop(columns=["is_anomaly", "anomaly_type"])], ignore_index=True)
    (tmp_path / "train").mkdir()
    everything.to_parquet(tmp_path / "train" / "part.parquet", index=False)
    (tmp_path / "validation").mkdir()
    validation.to_parquet(tmp_path / "validation" / "part.parquet", index=False)
    channels = {"train": tmp_path / "train", "validation": tmp_path / "validation"}
    env = training_env(tmp_path / "all", channels, "isolation_forest")
    assert train.main(env) == 0
    meta = load_model(tmp_path / "all" / "model")[1]
    first_validation_day = pd.to_datetime(validation["ts"]).min().normalize()
    before = int((pd.to_datetime(everything["ts"]) < first_validation_day).sum())
    assert meta["lineage"]["training_data"]["rows"] == before < len(everything)
    assert pd.Timestamp(meta["training_window"][1]) < first_validation_day
    start = (pd.to_datetime(train_rows["ts"]).min() + pd.Timedelta(days=20)).strftime("%Y-%m-%d")
    windowed = training_env(tmp_path / "window", channels, "isolation_forest")
    windowed["FINSENTRY_WINDOW_START"], windowed["FINSENTRY_WINDOW_END"] = start, "9999-12-31"
    assert train.main(windowed) == 0
    meta = load_model(tmp_path / "window" / "model")[1]
    assert pd.Timestamp(meta["training_window"][0]) >= pd.Timestamp(start)
    assert meta["lineage"]["training_data"]["window"] == [start, "9999-12-31"]
    assert meta["lineage"]["training_data"]["rows"] < before
    empty = training_env(tmp_path / "empty", channels, "isolation_forest")
    empty["FINSENTRY_WINDOW_END"] = "1900-01-01"
    assert train.main(empty) == 1
    assert "no training rows in the window" in (tmp_path / "empty" / "output" / "failure").read_text()
