"""The data-quality report, its gate, its CloudWatch metrics; job options."""

from __future__ import annotations

import json

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from finsentry.etl import jobs, quality
from finsentry.features import FEATURE_COLUMNS
from finsentry.layout import PREFIXES
from finsentry.monitoring import METRIC_NAMESPACE, Metric

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": REGION}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield


def _report(**kw) -> quality.QualityReport:
    base = {"job": "ingest", "run_id": "r1", "rows_in": 100, "rows_out": 90,
            "quarantined_by_reason": {"read:malformed": 4, "unknown_account": 6}}  # fmt: skip
    return quality.QualityReport(**{**base, **kw})


def test_the_gate_fails_loudly_above_the_allowed_share():
    _report(max_rejected_share=0.10).check()
    with pytest.raises(quality.DataQualityError, match=r"10\.00%.*above the allowed 5\.00%.*unknown_account=6"):
        _report(max_rejected_share=0.05).check()


def test_lost_rows_are_an_error_whatever_the_share():
    with pytest.raises(quality.RowsLostError, match="100 rows in but 89 out"):
        _report(rows_out=89, max_rejected_share=1.0).check()


def test_row_flags_find_balance_breaks_and_repeated_postings():
    ts = pd.to_datetime(["1995-01-01", "1995-01-02", "1995-01-02", "1995-01-03"])
    valid = pd.DataFrame({
        "account_id": ["1", "1", "1", "2"], "ts": ts, "amount": [100.0, 40.0, 40.0, 5.0],
        "direction": ["credit", "debit", "debit", "debit"], "operation": "cash_withdrawal", "k_symbol": "none",
        "partner_bank": "", "partner_account": "",
        "balance_before": [0.0, 100.0, 70.0, 10.0], "balance_after": [100.0, 60.0, 30.0, 4.0],
    })  # fmt: skip
    flags = quality.row_flags(valid)
    assert flags["dq_balance_error"].tolist() == [False, False, False, True]  # 10 - 5 != 4
    assert flags["dq_balance_gap"].tolist() == [False, False, True, False]  # 70 != 60; new account
    assert flags["dq_duplicate_posting"].tolist() == [False, False, True, False]


def test_feature_counts_quarantine_non_finite_rows():
    frame = pd.DataFrame(0.0, index=range(3), columns=list(FEATURE_COLUMNS))
    frame.loc[1, "amount_z"] = float("nan")
    frame.loc[2, "balance_gap"] = 12.0
    counts = quality.feature_counts(frame, FEATURE_COLUMNS)
    assert counts["rows_out"] == 2 and counts[f"reason:{quality.NON_FINITE_FEATURE}"] == 1
    assert counts["dq_balance_gap"] == 1 and counts["null:amount_z"] == 1


def test_metrics_reach_cloudwatch(aws):
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    sent = quality.publish_metrics(_report(), "test", cloudwatch)
    listed = cloudwatch.list_metrics(Namespace=METRIC_NAMESPACE)["Metrics"]
    assert sent == len(listed) == 6 + 2
    by_reason = {d["Value"] for m in listed if m["MetricName"] == Metric.ETL_QUARANTINED
                 for d in m["Dimensions"] if d["Name"] == "Reason"}  # fmt: skip
    assert by_reason == {"read:malformed", "unknown_account"}
    share = next(d for d in quality.metric_data(_report(), "test") if d["MetricName"] == Metric.ETL_REJECTED_SHARE)
    assert share["Value"] == pytest.approx(10.0) and share["Unit"] == "Percent"


def test_job_options_parse_glue_style_arguments():
    opts = jobs.resolve_options(["job.py", "--JOB_NAME", "x", "--data_bucket", "b", "--env", "dev",
                                 "--max_rejected_share", "0.2", "--run_id", "r7"])  # fmt: skip
    assert (opts.data_bucket, opts.env, opts.run_id, opts.max_rejected_share) == ("b", "dev", "r7", 0.2)
    assert opts.uri(PREFIXES.raw) == "s3://b/raw/"
    assert jobs.resolve_options(["j", "--data_bucket", "b", "--env", "dev"]).run_id  # defaults to the time
    with pytest.raises(SystemExit):
        jobs.resolve_options(["job.py", "--env", "dev"])
    with pytest.raises(ValueError, match="max_rejected_share"):
        jobs.resolve_options(["j", "--data_bucket", "b", "--env", "d", "--max_rejected_share", "2"])


def test_reports_are_written_to_s3_or_a_folder(aws, tmp_path):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="data-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    jobs.write_text("s3://data-bucket/curated/_quality/x.json", _report().to_json(), s3)
    body = json.loads(s3.get_object(Bucket="data-bucket", Key="curated/_quality/x.json")["Body"].read())
    assert body["rows_quarantined"] == 10 and body["passed"] is False
    jobs.write_text(str(tmp_path / "a" / "r.json"), "{}")
    assert (tmp_path / "a" / "r.json").read_text() == "{}"
