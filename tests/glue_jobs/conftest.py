"""Runs the Glue entry scripts once (as Glue would: ``--name value`` arguments, exit status)
on a small dirty bank, under moto for Glue, CloudWatch and S3; tests assert on what they left."""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from finsentry import lake
from finsentry.monitoring import METRIC_NAMESPACE
from tests.etl.banks import DirtyBank, dirty_bank
from tests.spark_fixture import spark  # noqa: F401 - the shared session-scoped fixture

REGION = "eu-west-1"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class JobRun:
    root: Path
    bank: DirtyBank
    codes: dict[str, int] = field(default_factory=dict)
    stdout: dict[str, str] = field(default_factory=dict)
    stderr: dict[str, str] = field(default_factory=dict)
    tables: dict[str, dict] = field(default_factory=dict)
    partitions: dict[str, list[str]] = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)

    def report(self, job: str, prefix: str) -> dict:
        return json.loads(next((self.root / prefix / "_quality").glob(f"{job}-*.json")).read_text())


def run_script(job: str, args: list[str]) -> tuple[int, str, str]:
    """``python glue_jobs/<job>.py args`` in this process (the shared SparkSession)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = [str(ROOT / "glue_jobs" / f"{job}.py"), *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = saved
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def fake_aws():
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        with mock_aws():
            yield


def _capture(run: JobRun, env: str) -> None:
    glue = boto3.client("glue", region_name=REGION)
    db = lake.database_name(env)
    names = [d["Name"] for d in glue.get_databases()["DatabaseList"]]
    for t in glue.get_tables(DatabaseName=db)["TableList"] if db in names else []:
        run.tables[t["Name"]] = t
        parts = glue.get_partitions(DatabaseName=db, TableName=t["Name"])["Partitions"]
        run.partitions[t["Name"]] = sorted(p["Values"][0] for p in parts)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    run.metrics = cloudwatch.list_metrics(Namespace=METRIC_NAMESPACE)["Metrics"]


@pytest.fixture(scope="session")
def job_run(spark, tmp_path_factory) -> JobRun:  # noqa: F811
    root = tmp_path_factory.mktemp("bucket")
    run = JobRun(root=root, bank=dirty_bank(root / "raw", accounts=20, months=5))
    args = ["--JOB_NAME", "x", "--data_bucket", "data", "--env", "test", "--root", str(root), "--run_id", "r1",
            "--max_rejected_share", "0.05", "--buckets", "3"]  # fmt: skip
    with fake_aws():
        for job in ("ingest", "features"):
            run.codes[job], run.stdout[job], run.stderr[job] = run_script(job, args)
        _capture(run, "test")
    return run


@pytest.fixture(scope="session")
def failed_run(spark, tmp_path_factory) -> JobRun:  # noqa: F811
    """An ingest run whose rejected share is above the allowed maximum."""
    root = tmp_path_factory.mktemp("failing")
    run = JobRun(root=root, bank=dirty_bank(root / "raw", accounts=4, months=3))
    args = ["--data_bucket", "data", "--env", "test", "--root", str(root), "--run_id", "bad",
            "--max_rejected_share", "0.001", "--buckets", "2"]  # fmt: skip
    with fake_aws():
        run.codes["ingest"], run.stdout["ingest"], run.stderr["ingest"] = run_script("ingest", args)
        _capture(run, "test")
    return run
