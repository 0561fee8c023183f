"""glue_jobs/features.py: curated/transactions/ -> curated/features/ via compute_features."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from finsentry.etl import pandas_engine
from finsentry.features import CURATED_COLUMNS, DETECTOR_COLUMNS
from finsentry.layout import PREFIXES


def test_features_job_writes_the_batch_features(job_run):
    assert job_run.codes["features"] == 0, job_run.stderr["features"]
    summary = json.loads(job_run.stdout["features"].strip().splitlines()[-1])
    curated = pd.read_parquet(job_run.root / PREFIXES.curated)
    assert summary["rows_in"] == summary["rows_out"] == len(curated) == job_run.bank.clean_records
    expected = pandas_engine.features(pandas_engine.ingest(job_run.root / "raw").transactions)
    got = curated.set_index("trans_id").loc[expected["trans_id"]]
    np.testing.assert_array_equal(got[list(CURATED_COLUMNS)].to_numpy(), expected[list(CURATED_COLUMNS)].to_numpy())
    assert (got["dt"].astype(str).to_numpy() == expected["dt"].to_numpy()).all()


def test_features_report_catalog_and_metrics(job_run):
    report = job_run.report("features", PREFIXES.curated)
    assert report["rows_in"] == report["rows_out"] and report["rows_quarantined"] == 0
    assert set(report["null_rates"]) == set(DETECTOR_COLUMNS)
    columns = [c["Name"] for c in job_run.tables["features"]["StorageDescriptor"]["Columns"]]
    assert columns[-len(CURATED_COLUMNS):] == list(CURATED_COLUMNS)
    assert job_run.partitions["features"] == job_run.partitions["transactions"]
    assert any({"Name": "Job", "Value": "features"} in m["Dimensions"] for m in job_run.metrics)


def test_features_job_writes_the_labelled_validation_period_apart_from_training(job_run, tmp_path):
    """curated/validation/: the last 15 % of the days, labelled; training keeps only what is before."""
    from finsentry.training.jobs import evaluate_job, read_frame
    from finsentry.training.validation_set import exclude_validation
    from tests.sagemaker.conftest import entry_point

    validation = pd.read_parquet(job_run.root / PREFIXES.validation)
    curated = pd.read_parquet(job_run.root / PREFIXES.curated)
    assert set(CURATED_COLUMNS) | {"trans_id", "ts", "is_anomaly", "anomaly_type"} <= set(validation.columns)
    assert validation["is_anomaly"].sum() > 0 and (validation.loc[validation["is_anomaly"], "anomaly_type"] != "").all()
    report = job_run.report("features", PREFIXES.curated)
    start = pd.Timestamp(report["outputs"]["validation_start"])
    assert int(report["outputs"]["validation_rows"]) == len(validation)
    assert (pd.to_datetime(validation["ts"]) >= start).all()
    days = pd.to_datetime(curated["ts"]).dt.normalize()
    assert 0.08 < (days >= start).mean() < 0.25  # about the default share of 0.15, in whole days
    # what the training job keeps of the same curated prefix: nothing of the validation period
    train = exclude_validation(read_frame(job_run.root / PREFIXES.curated), validation)
    assert len(train) == int((days < start).sum()) and not set(train["trans_id"]) & set(validation["trans_id"])
    # the evaluation processing job reads it as it is
    train_module = entry_point("train")
    from tests.sagemaker.conftest import training_env

    job = tmp_path / "job"
    channels = {"train": job_run.root / PREFIXES.curated, "validation": job_run.root / PREFIXES.validation}
    assert train_module.main(training_env(job, channels, "isolation_forest")) == 0
    (tmp_path / "models").mkdir()
    (job / "model").rename(tmp_path / "models" / "isolation_forest")
    result = evaluate_job(tmp_path / "models", job_run.root / PREFIXES.validation, tmp_path / "evaluation")
    assert result["rows"] == len(validation) and result["selection"]["best"] == "isolation_forest"


def test_features_job_options_carry_the_window_and_the_validation_share():
    from finsentry.etl.jobs import resolve_options

    base = ["features.py", "--data_bucket", "b", "--env", "e"]
    opts = resolve_options([*base, "--window_start", "1997-01-01", "--window_end", "9999-12-31",
                            "--validation_share", "0.2", "--anomaly_rate", "0.01", "--seed", "4"])  # fmt: skip
    assert (opts.window_start, opts.window_end, opts.validation_share, opts.anomaly_rate, opts.seed) == (
        "1997-01-01", "9999-12-31", 0.2, 0.01, 4)
    assert resolve_options(base).validation_share == 0.15 and resolve_options(base).window_start == ""
    import pytest

    with pytest.raises(ValueError, match="validation_share"):
        resolve_options([*base, "--validation_share", "1.5"])
