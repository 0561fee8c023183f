"""The data lake on awswrangler, over moto (S3 + Glue) with Athena answered by DuckDB."""

from __future__ import annotations

import datetime as dt

import boto3
import pandas as pd
import pytest

from finsentry import deployment, lake
from finsentry.features import CURATED_COLUMNS
from finsentry.layout import PREFIXES
from finsentry.scoring import SCORED_COLUMNS
from tests.moto_deployment import ENV, REGION, deploy, moto_account, scored_rows


@pytest.fixture
def aws():
    with moto_account() as ran:
        yield ran


@pytest.fixture
def deployed(aws):
    deploy()
    return deployment.resolve(ENV, boto3.Session(region_name=REGION))


def test_publish_creates_then_updates_the_table_and_registers_new_partitions_only(aws):
    glue = boto3.client("glue", region_name=REGION)
    first = lake.publish("test", "transactions", "s3://bucket", ["1995-01-02", "1995-01-01"])
    again = lake.publish("test", "transactions", "s3://bucket", ["1995-01-02", "1995-01-03"])
    assert first == {"table": f"{lake.database_name('test')}.transactions", "action": "created", "new_partitions": 2}
    assert again["action"] == "updated" and again["new_partitions"] == 1
    table = glue.get_table(DatabaseName=lake.database_name("test"), Name="transactions")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://bucket/{PREFIXES.transactions}"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["dt"]
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    parts = glue.get_partitions(DatabaseName=lake.database_name("test"), TableName="transactions")["Partitions"]
    assert sorted(p["StorageDescriptor"]["Location"] for p in parts)[0] == f"s3://bucket/{PREFIXES.transactions}dt=1995-01-01/"
    assert lake.registered_days("test", "transactions") == ["1995-01-01", "1995-01-02", "1995-01-03"]


def test_table_columns_follow_the_single_sources(aws):
    assert list(lake.TABLES["features"][1])[-len(CURATED_COLUMNS):] == list(CURATED_COLUMNS)
    assert lake.TABLES["scored"][1] == SCORED_COLUMNS
    lake.publish("test", "scored", "s3://bucket", ["2026-01-01"])
    table = boto3.client("glue", region_name=REGION).get_table(DatabaseName="finsentry_test", Name="scored")["Table"]
    assert {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]} == SCORED_COLUMNS


def test_write_then_read_round_trips_and_replaces_only_the_days_written(deployed):
    rows = scored_rows()
    root = deployed.uri("").rstrip("/")
    paths = lake.write(rows, ENV, "scored", root)
    assert all(p.startswith(f"{root}/{PREFIXES.scored}dt=") for p in paths) and len(paths) == 3
    back = lake.read(ENV, "scored").sort_values("trans_id").reset_index(drop=True)
    assert list(back["trans_id"]) == list(rows["trans_id"])
    assert back["dt"].tolist() == ["2026-11-28", "2026-11-28", "2026-11-29", "2026-11-30", "2026-11-30", "2026-11-30"]
    # a rerun of one day replaces that day and keeps the others
    lake.write(rows[rows["trans_id"] == "t3"].assign(score=0.5), ENV, "scored", root)
    again = lake.read(ENV, "scored")
    assert len(again) == len(rows) and again.set_index("trans_id").loc["t3", "score"] == 0.5
    assert list(lake.read(ENV, "scored", days=["2026-11-29"])["trans_id"]) == ["t3"]


def test_resolve_reads_the_deployment_from_its_state_machine(deployed):
    assert deployed.bucket == f"finsentry-{ENV}-data-123456789012-{REGION}"
    for field, name in deployment.expected_names(ENV).items():
        assert getattr(deployed, field) == name
    assert deployed.training_image.endswith("finsentry-sagemaker:test")
    assert deployed.kms_key_arn.startswith("arn:aws:kms:") and deployed.sagemaker_role_arn.startswith("arn:aws:iam::")


def test_resolve_an_env_that_is_not_deployed_says_so(aws):
    with pytest.raises(deployment.DeploymentError, match="no deployment 'prod'.*cdk deploy"):
        deployment.resolve("prod", boto3.Session(region_name=REGION))
    with pytest.raises(deployment.DeploymentError, match="letters, digits"):
        deployment.resolve("a b", boto3.Session(region_name=REGION))


def test_query_runs_on_the_workgroup_with_its_encrypted_result_location(deployed, aws):
    lake.write(scored_rows(), ENV, "scored", deployed.uri("").rstrip("/"))
    out = lake.query("SELECT dt, count(*) AS n FROM scored GROUP BY dt ORDER BY dt", deployed)
    assert out.to_dict("list") == {"dt": ["2026-11-28", "2026-11-29", "2026-11-30"], "n": [2, 1, 3]}
    athena = boto3.client("athena", region_name=REGION)
    [execution_id] = athena.list_query_executions(WorkGroup=deployed.workgroup)["QueryExecutionIds"]
    execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert execution["QueryExecutionContext"]["Database"] == deployed.database
    config = execution["ResultConfiguration"]
    assert config["OutputLocation"].startswith(deployed.uri(PREFIXES.athena_results))
    assert config["EncryptionConfiguration"] == {"EncryptionOption": "SSE_KMS", "KmsKey": deployed.kms_key_arn}


def test_alerts_are_the_masked_views_alerts_since_a_day_best_first(deployed):
    lake.write(scored_rows(), ENV, "scored", deployed.uri("").rstrip("/"))
    out = lake.alerts(deployed, since="2026-11-29")
    assert list(out["trans_id"]) == ["t4", "t6", "t3"]  # alerts only, from 29 Nov, highest score first
    assert "account_id" not in out and list(out["client_ref"]) == ["c-bb", "c-cc", "c-bb"]
    assert list(out["anomaly_type"]) == ["unusual_hour", "unclassified", "unusual_partner"]
    assert "verdict" not in out  # no labels table
    typed = lake.alerts(deployed, since="2026-11-01", types=["amount_spike", "unusual_hour"])
    assert list(typed["trans_id"]) == ["t2", "t4"]
    assert lake.alerts(deployed, since="2026-11-01", limit=1)["trans_id"].tolist() == ["t2"]


def test_alerts_show_the_latest_verdict_when_a_labels_table_exists(deployed):
    import awswrangler as wr

    lake.write(scored_rows(), ENV, "scored", deployed.uri("").rstrip("/"))
    labels = pd.DataFrame({
        "trans_id": ["t2", "t4", "t4"], "verdict": ["confirmed_fraud", "confirmed_fraud", "dismissed"],
        "when": pd.to_datetime(["2026-11-29 08:00", "2026-11-30 09:00", "2026-11-30 10:00"]),
    })  # fmt: skip
    wr.s3.to_parquet(labels, path=deployed.uri("feedback/labels/"), dataset=True, database=deployed.database,
                     table=lake.LABELS_TABLE)  # fmt: skip
    out = lake.alerts(deployed, since="2026-11-01").set_index("trans_id")
    assert out["verdict"].to_dict() == {"t2": "confirmed_fraud", "t4": "dismissed", "t6": "", "t3": ""}


@pytest.mark.parametrize(("text", "day"), [("2d", "2026-11-30"), ("1w", "2026-11-25"), ("2026-10-01", "2026-10-01")])
def test_since_accepts_days_weeks_and_dates(text, day):
    assert lake.since_day(text, today=dt.date(2026, 12, 2)) == day


def test_since_rejects_anything_else_in_one_line():
    with pytest.raises(ValueError, match="use Nd"):
        lake.since_day("yesterday")
