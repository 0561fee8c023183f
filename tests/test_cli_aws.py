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
