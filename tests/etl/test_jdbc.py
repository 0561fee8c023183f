"""The Spark JDBC path agrees with the pandas path (finsentry.database) row for row, on a real
PostgreSQL server: partitioned reads, the watermark window, quarantine with reasons."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from finsentry import database as db
from finsentry.etl import jdbc
from finsentry.mapping import load_mapping, map_table
from tests.bank_tables import BANK_TYPES, bank_mapping, bank_table
from tests.factories import small_bank


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """The bank with what real tables hold: a NULL amount, a text amount in a text column is
    impossible in a typed one, so: a NULL account, a duplicate id, a NULL time."""
    t = bank_table(small_bank(accounts=30, months=6).transactions.valid)
    t.loc[5, "account_no"] = None
    t.loc[7, "amount"] = None
    t.loc[9, "booked_at"] = None  # never read by the watermark (NULL is not above any mark)
    dup = t.iloc[[20]].assign(amount="999.00", booked_at=t["booked_at"].max())  # posted again, later: rejected
    return pd.concat([t, dup], ignore_index=True)


@pytest.fixture(scope="module")
def url(postgres, table) -> str:
    postgres.load("parity.transactions", table, BANK_TYPES)
    return postgres.url


def _pandas(url, mapping, since=None):
    read = db.read_rows(url, mapping.database, since)
    return map_table(read.raw, mapping), read.mark


def _same(spark_table, pandas_table, by_id: bool = False):
    """Row for row (``by_id``: after sorting by trans_id, when the order has ties)."""
    valid = [t.result.valid for t in (spark_table, pandas_table)]
    if by_id:
        valid = [v.sort_values(["trans_id", "ts"]).reset_index(drop=True) for v in valid]
    pd.testing.assert_frame_equal(*valid)
    if pandas_table.labels is not None and not by_id:
        pd.testing.assert_frame_equal(spark_table.labels, pandas_table.labels)
    reasons = [t.result.rejected.sort_values(["reason", "raw"]).reset_index(drop=True) for t in (spark_table,
                                                                                               pandas_table)]
    pd.testing.assert_frame_equal(reasons[0][["reason", "detail"]], reasons[1][["reason", "detail"]])


def test_spark_reads_the_pandas_rows_by_watermark_partitions(spark, url, tmp_path):
    mapping = load_mapping(bank_mapping(tmp_path / "m.yaml", table="parity.transactions"))
    expected, mark = _pandas(url, mapping)
    got, spark_mark = jdbc.load_mapped_spark(spark, url, mapping, partitions=3, groups=2)
    assert spark_mark == mark
    _same(got, expected)
    assert expected.received == 2018 and len(expected.result.rejected) == 3  # NULL account, NULL amount, duplicate
    assert set(expected.result.rejected["reason"]) == {"missing_field", "duplicate_id"}


def test_spark_reads_by_key_buckets_without_a_watermark(spark, url, tmp_path):
    mapping = load_mapping(bank_mapping(tmp_path / "m.yaml", table="parity.transactions", watermark=None,
                                        key="booked_at"))  # the duplicate id is posted later: kept second
    expected, _ = _pandas(url, mapping)
    got, mark = jdbc.load_mapped_spark(spark, url, mapping, partitions=3, groups=2)
    assert mark is None
    assert (expected.result.rejected["reason"] == "unparseable_date").sum() == 1  # the NULL time is read here
    _same(got, expected, by_id=True)  # rows at the same time come in the server's order, in either path


def test_spark_reads_only_the_window_above_the_mark_and_derives_ids_alike(spark, url, table, tmp_path):
    path = bank_mapping(tmp_path / "m.yaml", table="parity.transactions")
    spec = yaml.safe_load(path.read_text())
    del spec["columns"]["trans_id"]  # ids derived from the row, as the file path derives them
    spec["database"]["key"] = "booked_at"
    path.write_text(yaml.safe_dump(spec))
    mapping = load_mapping(path)
    since = db.Watermark("booked_at", "timestamp without time zone", "1995-04-01 00:00:00")
    expected, mark = _pandas(url, mapping, since)
    got, spark_mark = jdbc.load_mapped_spark(spark, url, mapping, since, partitions=2, groups=2)
    assert spark_mark == mark
    assert expected.result.valid["ts"].min() > pd.Timestamp("1995-04-01")
    assert expected.derived[-1] == "trans_id"
    _same(got, expected)


def test_the_jdbc_url_carries_no_password_in_text(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "from-env")
    src = jdbc.jdbc_source("postgresql://reader@db.example:6432/bank?sslmode=require")
    assert src.url == "jdbc:postgresql://db.example:6432/bank"
    assert src.properties["password"] == "from-env" and src.properties["sslmode"] == "require"  # noqa: S105
    assert "from-env" not in src.masked + src.url


def test_a_secret_becomes_a_source_with_tls_required():
    src = jdbc.secret_source({"username": "u", "password": "p", "host": "h", "port": 5432, "dbname": "bank"})
    assert (src.url, src.properties["sslmode"], src.masked) == (
        "jdbc:postgresql://h:5432/bank", "require", "postgresql://u:***@h:5432/bank")
