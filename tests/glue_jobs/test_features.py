"""glue_jobs/features.py: curated/transactions/ -> curated/features/ via compute_features."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from finsentry.etl import pandas_engine
from finsentry.features import CURATED_COLUMNS, FEATURE_COLUMNS
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
    assert set(report["null_rates"]) == set(FEATURE_COLUMNS)
    columns = [c["Name"] for c in job_run.tables["features"]["StorageDescriptor"]["Columns"]]
    assert columns[-len(CURATED_COLUMNS):] == list(CURATED_COLUMNS)
    assert job_run.partitions["features"] == job_run.partitions["transactions"]
    assert any({"Name": "Job", "Value": "features"} in m["Dimensions"] for m in job_run.metrics)
