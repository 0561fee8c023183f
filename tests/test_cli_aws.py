"""``finsentry alerts | query`` on a deployment in a moto account (Athena answered by DuckDB)."""

from __future__ import annotations

import pandas as pd
import pytest

from finsentry import lake
from finsentry.cli import main
from tests.moto_deployment import ENV, deploy, moto_account, scored_rows


@pytest.fixture
def deployed():
    with moto_account() as ran:
        subs = deploy()
        lake.write(scored_rows(), ENV, "scored", f"s3://{subs['DataBucket']}")
        yield ran


def test_alerts_lists_the_masked_alerts_with_reasons(deployed, capsys):
    assert main(["alerts", "--env", ENV, "--since", "2026-11-29"]) == 0
    out = capsys.readouterr().out
    print(out)
    for trans_id in ("t3", "t4", "t6"):
        assert trans_id in out
    assert "t2" not in out and "c-bb" in out and "posted at 02:30" in out
    assert "3 alerts; no labels table yet: no verdicts" in out
    assert "account_id" not in out


def test_alerts_filters_by_type_and_writes_a_file(deployed, capsys, tmp_path):
    out_file = tmp_path / "alerts.csv"
    assert main(["alerts", "--env", ENV, "--since", "2026-11-01", "--type", "amount_spike",
                 "--out", str(out_file)]) == 0  # fmt: skip
    assert pd.read_csv(out_file)["trans_id"].tolist() == ["t2"]
    assert "1 alerts" in capsys.readouterr().out


def test_query_prints_a_table_or_writes_every_row(deployed, capsys, tmp_path):
    sql = "SELECT txn_date, transactions, alerts FROM daily_anomaly_summary ORDER BY dt"
    assert main(["query", "--env", ENV, sql]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "2026-11-30" in out and "3 rows" in out
    target = tmp_path / "q.parquet"
    assert main(["query", "--env", ENV, "SELECT trans_id, score FROM scored_transactions", "--out", str(target)]) == 0
    assert sorted(pd.read_parquet(target)["trans_id"]) == ["t1", "t2", "t3", "t4", "t5", "t6"]


@pytest.mark.parametrize(("argv", "message"), [
    (["alerts", "--env", "prod"], "no deployment 'prod'"),
    (["query", "--env", ENV, "SELEC nonsense"], "query failed"),
    (["query", "--env", ENV, "SELECT 1", "--out", "x.txt"], ".csv or .parquet"),
    (["alerts", "--env", ENV, "--type", "nope"], "unknown anomaly type"),
    (["alerts", "--env", ENV, "--since", "last week"], "use Nd"),
])  # fmt: skip
def test_bad_input_is_one_line_and_status_2(deployed, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_analysts_views_show_verdicts_and_precision_once_the_feedback_door_stored_labels(deployed, tmp_path):
    """Verdicts dropped as a case-management export, stored by the S3 door (finsentry.feedback,
    which registers the `labels` table), then read through the two analysts' views on Athena."""
    import boto3

    from finsentry.feedback import ingest_feedback
    from finsentry.layout import PREFIXES
    from tests.stepfunctions.conftest import REGION, substitutions

    subs = substitutions()  # the names deploy() used
    s3, glue = boto3.client("s3", region_name=REGION), boto3.client("glue", region_name=REGION)
    export = ("trans_id,verdict,who,when,note\n"
              "t3,confirmed_fraud,ana,2026-11-30T09:00:00,\n"
              "t4,confirmed_fraud,ana,2026-12-01T09:00:00,\n"
              "t4,dismissed,bo,2026-12-01T15:00:00,customer confirmed\n"
              "t1,dismissed,ana,2026-11-29T09:00:00,\n")  # fmt: skip
    s3.put_object(Bucket=subs["DataBucket"], Key=f"{PREFIXES.feedback_inbox}cases.csv", Body=export.encode())
    assert ingest_feedback(s3, subs["DataBucket"], glue, env=ENV).new == 4

    verdicts = tmp_path / "verdicts.parquet"
    assert main(["query", "--env", ENV, "SELECT trans_id, analyst_verdict, outcome, verdict_by, verdicts FROM "
                 "alert_verdicts", "--out", str(verdicts)]) == 0  # fmt: skip
    got = pd.read_parquet(verdicts).set_index("trans_id")
    assert sorted(got.index) == ["t2", "t3", "t4", "t6"]  # the alerts only: t1 raised none
    assert got.loc["t3", "outcome"] == "confirmed"
    assert (got.loc["t4", "analyst_verdict"], got.loc["t4", "verdict_by"], got.loc["t4", "verdicts"]) == (
        "dismissed", "bo", 2)  # fmt: skip
    assert got.loc["t6", "outcome"] == got.loc["t2", "outcome"] == "unreviewed"
    daily = tmp_path / "daily.parquet"
    assert main(["query", "--env", ENV, "SELECT dt, alerts, confirmed, dismissed, unreviewed, precision FROM "
                 "alert_precision_daily ORDER BY dt", "--out", str(daily)]) == 0  # fmt: skip
    by_day = pd.read_parquet(daily).set_index("dt")
    assert by_day["alerts"].to_dict() == {"2026-11-28": 1, "2026-11-29": 1, "2026-11-30": 2}
    assert by_day.loc["2026-11-29", "precision"] == 1.0 and by_day.loc["2026-11-30", "precision"] == 0.0
    assert pd.isna(by_day.loc["2026-11-28", "precision"]) and by_day.loc["2026-11-30", "unreviewed"] == 1
