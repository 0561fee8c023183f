"""glue_jobs/ingest.py: raw bank files -> curated/transactions/, quarantine, report, metrics, catalog."""

from __future__ import annotations

import json

import pandas as pd

from finsentry.etl import pandas_engine, transforms
from finsentry.layout import PREFIXES
from finsentry.monitoring import Metric


def test_ingest_succeeds_and_says_what_it_did(job_run):
    assert job_run.codes["ingest"] == 0, job_run.stderr["ingest"]
    summary = json.loads(job_run.stdout["ingest"].strip().splitlines()[-1])
    assert summary["rows_in"] == job_run.bank.records and summary["rows_out"] == job_run.bank.clean_records


def test_nothing_disappears(job_run):
    """Rows in = rows out + quarantined; each quarantined trans row has its reason and line."""
    report = job_run.report("ingest", PREFIXES.transactions)
    assert report["rows_in"] == report["rows_out"] + report["rows_quarantined"] == job_run.bank.records
    assert report["quarantined_by_reason"] == dict(job_run.bank.expected_reasons)
    files = list((job_run.root / PREFIXES.quarantine / "ingest" / "run_id=r1").glob("*.json"))
    quarantine = pd.concat([pd.read_json(f, lines=True) for f in files])
    trans = quarantine[quarantine["table"] == "trans"]
    assert len(trans) == report["rows_quarantined"]
    assert set(trans["reason"]) == {"malformed", "unparseable_date", "unknown_account", "duplicate_id",
                                    "invalid_value", "wrong_type"}  # fmt: skip
    assert trans["line"].min() > 1 and (trans["raw"].str.len() > 0).all()
    assert quarantine.loc[quarantine["table"] == "client", "reason"].tolist() == ["wrong_type"]
    curated = pd.read_parquet(job_run.root / PREFIXES.transactions)
    assert len(curated) == report["rows_out"]


def test_curated_transactions_are_the_pandas_engines(job_run):
    curated = pd.read_parquet(job_run.root / PREFIXES.transactions)
    expected = pandas_engine.ingest(job_run.root / "raw").transactions
    got = curated.sort_values("trans_id").reset_index(drop=True)
    assert (got["dt"].astype(str) == got["ts"].dt.strftime("%Y-%m-%d")).all()
    want = expected.sort_values("trans_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[want.columns].astype({"ts": "datetime64[ns]"}), want, check_dtype=False)


def test_quality_report_has_the_figures(job_run):
    report = job_run.report("ingest", PREFIXES.transactions)
    assert report["passed"] is True and report["duplicate_ids"] == 2
    assert set(report["null_rates"]) == set(transforms.CANONICAL_COLUMNS)
    assert 0 < report["null_rates"]["partner_account"] < 1 and report["null_rates"]["trans_id"] == 0
    assert report["balance_errors"] == 0 and report["balance_gaps"] == 0
    assert report["other_tables"] == {"client": {"wrong_type": 1}}


def test_metrics_and_catalog(job_run):
    names = {m["MetricName"] for m in job_run.metrics if {"Name": "Job", "Value": "ingest"} in m["Dimensions"]}
    assert {Metric.ETL_ROWS_IN, Metric.ETL_QUARANTINED, Metric.ETL_REJECTED_SHARE} <= names
    table = job_run.tables["transactions"]
    assert table["StorageDescriptor"]["Location"] == f"{job_run.root}/{PREFIXES.transactions}"
    curated = pd.read_parquet(job_run.root / PREFIXES.transactions)
    assert job_run.partitions["transactions"] == sorted(curated["dt"].astype(str).unique())


def test_the_gate_fails_the_job_loudly_and_publishes_nothing(failed_run):
    assert failed_run.codes["ingest"] == 2
    assert "FAILED the data-quality gate" in failed_run.stderr["ingest"]
    assert "above the allowed 0.10%" in failed_run.stderr["ingest"]
    report = failed_run.report("ingest", PREFIXES.transactions)
    assert report["passed"] is False and report["rows_quarantined"] == 7
    assert not list((failed_run.root / PREFIXES.transactions).glob("dt=*"))
    assert "transactions" not in failed_run.tables
    assert any(m["MetricName"] == Metric.ETL_REJECTED_SHARE for m in failed_run.metrics)
    assert list((failed_run.root / PREFIXES.quarantine / "ingest" / "run_id=bad").glob("*.json"))


def test_an_empty_or_unreadable_trans_file_fails_the_job_in_one_line_and_publishes_nothing(spark, tmp_path):
    """A header-only trans file fails the gate (no input rows); a truncated trans.asc.gz is a
    clear read error, not a Py4J trace. Both exit 2 with one line on stderr."""
    import gzip

    from tests.etl.banks import clean_bank
    from tests.glue_jobs.conftest import fake_aws, run_script

    raw = clean_bank(tmp_path / "raw", accounts=3, months=1)
    trans = raw / "trans.asc"
    data = trans.read_bytes()
    trans.write_bytes(data.splitlines(keepends=True)[0])
    args = ["--data_bucket", "data", "--env", "test", "--root", str(tmp_path), "--run_id", "empty"]
    with fake_aws():
        code, _, err = run_script("ingest", args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "FAILED the data-quality gate" in err and "no input rows" in err
        report = json.loads(next((tmp_path / PREFIXES.transactions / "_quality").glob("ingest-*.json")).read_text())
        assert report["rows_in"] == 0 and report["passed"] is False
        trans.unlink()
        packed = gzip.compress(data)
        (raw / "trans.asc.gz").write_bytes(packed[: len(packed) // 2])
        code, _, err = run_script("ingest", [*args[:-1], "truncated"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "trans.asc.gz: truncated or corrupt gzip file" in err and "Py4J" not in err
    assert not list((tmp_path / PREFIXES.transactions).glob("dt=*"))
