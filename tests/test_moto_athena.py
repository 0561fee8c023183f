"""The guard of ``tests/moto_athena.py``: the gap it fills is real, and it fills only that."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tests.moto_athena import athena_on_duckdb

REGION = "eu-west-1"


def _start(athena, sql: str) -> str:
    return athena.start_query_execution(QueryString=sql, QueryExecutionContext={"Database": "default"},
                                        ResultConfiguration={"OutputLocation": "s3://results/q/"})["QueryExecutionId"]


@pytest.fixture
def athena(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket="results", CreateBucketConfiguration={"LocationConstraint": REGION})  # fmt: skip
        boto3.client("glue", region_name=REGION).create_database(DatabaseInput={"Name": "default"})
        yield boto3.client("athena", region_name=REGION)


def test_gap_moto_runs_no_sql(athena):
    """If this fails, moto evaluates queries now: drop the fill."""
    result = athena.get_query_results(QueryExecutionId=_start(athena, "SELECT 1 AS one"))["ResultSet"]
    assert result["Rows"] == [] and result["ResultSetMetadata"]["ColumnInfo"] == []


def test_filled_query_returns_typed_rows_and_writes_the_csv_where_athena_does(athena):
    with athena_on_duckdb() as ran:
        exec_id = _start(athena, "SELECT 1 AS one, 'a' AS letter")
    result = athena.get_query_results(QueryExecutionId=exec_id)["ResultSet"]
    assert [c["Type"] for c in result["ResultSetMetadata"]["ColumnInfo"]] == ["integer", "varchar"]
    assert [[d.get("VarCharValue") for d in r["Data"]] for r in result["Rows"]] == [["one", "letter"], ["1", "a"]]
    body = boto3.client("s3", region_name=REGION).get_object(Bucket="results", Key=f"q/{exec_id}.csv")["Body"].read()
    assert body.decode().splitlines() == ['"one","letter"', '"1","a"'] and ran == ["SELECT 1 AS one, 'a' AS letter"]


def test_filled_queued_results_still_win(athena):
    from moto.athena.models import QueryResults, athena_backends

    queued = QueryResults(rows=[{"Data": [{"VarCharValue": "x"}]}], column_info=[{"Name": "x", "Type": "varchar"}])
    athena_backends["123456789012"][REGION].query_results_queue.append(queued)
    with athena_on_duckdb() as ran:
        exec_id = _start(athena, "SELECT 1")
    assert athena.get_query_results(QueryExecutionId=exec_id)["ResultSet"]["Rows"] == queued.rows and ran == []
