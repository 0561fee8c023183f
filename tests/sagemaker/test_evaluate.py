"""sagemaker/evaluate.py in-process: candidates and champion scored on the labelled validation period."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.sagemaker.conftest import entry_point, training_env

train, evaluate = entry_point("train"), entry_point("evaluate")
CANDIDATES = ("isolation_forest", "lof", "lstm")


@pytest.fixture(scope="module")
def trained(channels, tmp_path_factory) -> dict[str, Path]:
    """Each candidate's training output as SageMaker leaves it in S3: a model.tar.gz of SM_MODEL_DIR."""
    out = {}
    for name in CANDIDATES:
        job = tmp_path_factory.mktemp(f"job-{name}")
        assert train.main(training_env(job, {"train": channels["train"]}, name)) == 0
        archive = job / "model.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for f in sorted((job / "model").iterdir()):
                tar.add(f, arcname=f.name)
        out[name] = archive
    return out


def _processing(tmp: Path, channels, trained, champion: str | None = None) -> dict[str, str]:
    for name, archive in trained.items():
        (tmp / "models" / name).mkdir(parents=True)
        shutil.copy(archive, tmp / "models" / name / "model.tar.gz")
    shutil.copytree(channels["validation"], tmp / "validation")
    (tmp / "champion").mkdir()  # SageMaker creates the input folder; empty = no champion yet
    if champion:
        shutil.copy(trained[champion], tmp / "champion" / "model.tar.gz")
    return {"FINSENTRY_PROCESSING_DIR": str(tmp), "FINSENTRY_OUTPUT_DIR": str(tmp / "output"), "ALERT_BUDGET": "0.02"}


def test_no_champion_promotes_the_best_candidate(channels, trained, tmp_path):
    env = _processing(tmp_path, channels, trained)
    assert evaluate.main([], env) == 0
    result = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert set(result["candidates"]) == set(CANDIDATES) and result["budget"] == 0.02
    for figures in result["candidates"].values():
        wanted = {"recall_by_type", "auc_pr", "threshold", "scoring_seconds_per_1000", "scoring_usd_per_1000"}
        assert wanted <= set(figures)
        assert figures["alerts"] <= 0.02 * result["rows"] and figures["scoring_seconds_per_1000"] > 0
        assert "unusual_sequence" in figures["recall_by_type"]
        assert figures["lineage"]["training_data"]["uri"] == "s3://bucket/curated/features/"
    selection = result["selection"]
    assert selection["promote"] is True and selection["champion"] is None
    best = min(result["candidates"].values(), key=lambda f: (-f["recall"], f["name"]))  # select_model's order
    assert selection["best"] == selection["best_model"] == best["name"]
    assert selection["best_threshold"] == result["candidates"][selection["best"]]["threshold"]
    message = json.loads((tmp_path / "output" / "message").read_text())  # the job's ExitMessage
    assert message["promote"] is True and message["best"] == selection["best"]
    assert message["best_value"] == best["recall"]


def test_a_champion_as_good_as_the_best_is_kept(channels, trained, tmp_path):
    first = tmp_path / "first"
    evaluate.main([], _processing(first, channels, trained))
    best = json.loads((first / "evaluation" / "evaluation.json").read_text())["selection"]["best"]
    second = tmp_path / "second"
    assert evaluate.main(["--margin", "0.05"], _processing(second, channels, trained, champion=best)) == 0
    result = json.loads((second / "evaluation" / "evaluation.json").read_text())
    assert result["selection"]["promote"] is False and result["selection"]["serving"] == f"champion:{best}"
    assert result["champion"]["recall"] == result["candidates"][best]["recall"]
    assert "kept" in result["selection"]["reason"]


def test_a_tampered_champion_is_reported_and_replaced(channels, trained, tmp_path):
    env = _processing(tmp_path, channels, trained)
    champion = tmp_path / "champion"
    with tarfile.open(trained["lof"]) as tar:
        tar.extractall(champion, filter="data")
    (champion / "model.joblib").write_bytes(b"not a model")
    assert evaluate.main([], env) == 0
    result = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert "checksum" in result["champion"]["error"] and result["selection"]["promote"] is True


def test_no_candidates_is_an_error(channels, tmp_path):
    shutil.copytree(channels["validation"], tmp_path / "validation")
    (tmp_path / "models").mkdir()
    env = {"FINSENTRY_PROCESSING_DIR": str(tmp_path), "FINSENTRY_OUTPUT_DIR": str(tmp_path / "output")}
    assert evaluate.main([], env) == 1
    assert "no candidate model artifacts" in (tmp_path / "output" / "message").read_text()


def test_an_archive_escaping_its_folder_is_refused(channels, tmp_path):
    bad = tmp_path / "models" / "evil"
    bad.mkdir(parents=True)
    payload = tmp_path / "x.txt"
    payload.write_text("x")
    with tarfile.open(bad / "model.tar.gz", "w:gz") as tar:
        tar.add(payload, arcname="../../escaped.txt")
    shutil.copytree(channels["validation"], tmp_path / "validation")
    env = {"FINSENTRY_PROCESSING_DIR": str(tmp_path), "FINSENTRY_OUTPUT_DIR": str(tmp_path / "output")}
    assert evaluate.main([], env) == 1
    assert "refused archive member" in (tmp_path / "output" / "message").read_text()
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_the_training_window_limits_the_validation_rows(channels, trained, tmp_path):
    import pandas as pd

    ts = pd.to_datetime(pd.read_parquet(channels["validation"])["ts"])
    middle = (ts.min() + (ts.max() - ts.min()) / 2).strftime("%Y-%m-%d")
    env = {**_processing(tmp_path / "all", channels, trained)}
    assert evaluate.main([], env) == 0
    everything = json.loads((tmp_path / "all" / "evaluation" / "evaluation.json").read_text())["rows"]
    env = {**_processing(tmp_path / "half", channels, trained), "FINSENTRY_WINDOW_END": middle}
    assert evaluate.main([], env) == 0
    rows = json.loads((tmp_path / "half" / "evaluation" / "evaluation.json").read_text())["rows"]
    assert rows == int((ts < pd.Timestamp(middle) + pd.Timedelta(days=1)).sum()) < everything
    env = {**_processing(tmp_path / "none", channels, trained), "FINSENTRY_WINDOW_END": "1900-01-01"}
    assert evaluate.main([], env) == 1
    assert "no labelled validation rows in the window" in (tmp_path / "none" / "output" / "message").read_text()
