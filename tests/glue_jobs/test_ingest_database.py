"""glue_jobs/ingest.py on a PostgreSQL source: curated/transactions/ from the database (the
pandas path's rows), quarantine with reasons, the watermark, and credentials kept out of text."""

from __future__ import annotations

import json

import boto3
import pandas as pd
import psycopg
import pytest

from finsentry import database as db
from finsentry.etl import jdbc
from finsentry.layout import PREFIXES
from finsentry.mapping import load_mapping, map_table
from tests.bank_tables import BANK_TYPES, bank_mapping, bank_table
from tests.factories import small_bank
from tests.glue_jobs.conftest import REGION, fake_aws, run_script


def _ingest(root, url, mapping) -> tuple[int, str, str]:
    return run_script("ingest", ["--data_bucket", "b", "--env", "dbtest", "--root", str(root), "--run_id", "r1",
                                 "--source_mapping", str(mapping), "--source_url", url, "--source_partitions", "2",
                                 "--buckets", "2"])  # fmt: skip


def test_ingest_reads_the_database_incrementally(spark, postgres, tmp_path):
    table = bank_table(small_bank(accounts=30, months=6).transactions.valid)
    table.loc[3, "account_no"] = None  # quarantined: missing_field
    first = table[table["booked_at"] < "1995-05-01"]
    postgres.load("job.transactions", first, BANK_TYPES)
    mapping_path = bank_mapping(tmp_path / "m.yaml", table="job.transactions")
    root = tmp_path / "bucket"
    with fake_aws():
        code, out, err = _ingest(root, postgres.url, mapping_path)
        assert code == 0, err
        curated = pd.read_parquet(root / PREFIXES.transactions)
        expected = map_table(db.read_rows(postgres.url, load_mapping(mapping_path).database).raw,
                             load_mapping(mapping_path)).result.valid  # fmt: skip
        assert sorted(curated["trans_id"]) == sorted(expected["trans_id"])
        report = json.loads(next((root / PREFIXES.transactions / "_quality").glob("ingest-*.json")).read_text())
        assert report["rows_in"] == len(first) and report["quarantined_by_reason"] == {"missing_field": 1}
        mark = json.loads((root / PREFIXES.transactions / "_watermark.json").read_text())
        assert mark["watermark"]["value"] == first["booked_at"].max()
        newer = table[table["booked_at"] > first["booked_at"].max()]
        copy_sql = "COPY job.transactions (" + ", ".join(BANK_TYPES) + ") FROM STDIN"
        with psycopg.connect(postgres.url, autocommit=True) as conn, conn.cursor() as cur, cur.copy(copy_sql) as cp:
            for row in newer[list(BANK_TYPES)].itertuples(index=False, name=None):
                cp.write_row(row)
        code, out, err = _ingest(root, postgres.url, mapping_path)
        assert code == 0, err
        assert json.loads(out.strip().splitlines()[-1])["rows_in"] == len(newer)  # only the new rows
        curated = pd.read_parquet(root / PREFIXES.transactions)
        assert len(curated) == len(table) - 1 and curated["trans_id"].is_unique  # appended, nothing twice


def test_a_password_in_the_job_arguments_is_refused(spark, postgres, tmp_path):
    url = postgres.url.replace("finsentry@", "finsentry:pw-in-args@")
    with fake_aws():
        code, _, err = _ingest(tmp_path / "bucket", url, bank_mapping(tmp_path / "m.yaml"))
    assert code == 2 and "must not hold a password" in err and "pw-in-args" not in err


def test_the_deployed_job_takes_its_credentials_from_secrets_manager():
    with fake_aws():
        client = boto3.client("secretsmanager", region_name=REGION)
        arn = client.create_secret(Name="bank-db", SecretString=json.dumps(
            {"username": "reader", "password": "pw", "host": "db.internal", "port": 5432, "dbname": "core"}))["ARN"]
        src = jdbc.job_source(arn, "", REGION)
    assert src.url == "jdbc:postgresql://db.internal:5432/core" and src.properties["user"] == "reader"
    assert "pw" not in src.masked.replace("postgresql", "")


@pytest.mark.parametrize("secret", [{"username": "u", "host": "h"}, {"password": "p", "host": "h"}])
def test_an_incomplete_secret_is_named(secret):
    with pytest.raises(ValueError, match="the database secret lacks"):
        jdbc.secret_source(secret)
