"""PostgreSQL sources on a real server: the file path's rows, quarantine with reasons, the
watermark, a lost connection, and credentials that never show."""

from __future__ import annotations

import json

import pandas as pd
import psycopg
import pytest

from finsentry import database as db
from finsentry.cli import main
from finsentry.mapping import MappingError, load_mapping, parse_mapping
from finsentry.sources import load_source
from tests.bank_tables import BANK_TYPES, bank_mapping, bank_table
from tests.factories import small_bank

SECRET = "s3cret-Pw"  # noqa: S105 - the server trusts loopback: any password is accepted, none may be printed


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return bank_table(small_bank(accounts=30, months=6).transactions.valid)


@pytest.fixture(scope="module")
def loaded(postgres, table) -> str:
    postgres.load("bank.transactions", table, BANK_TYPES)
    return postgres.url.replace("finsentry@", f"finsentry:{SECRET}@")


def test_a_table_reads_as_its_csv_export_row_for_row(loaded, table, tmp_path):
    mapping = bank_mapping(tmp_path / "bank.yaml")
    csv = tmp_path / "bank.csv"
    table.to_csv(csv, index=False)
    from_file = load_source(csv, mapping, tmp_path / "file.out")
    from_db = load_source(loaded, mapping, tmp_path / "db.out")
    assert from_db.received == len(table) == from_file.received
    pd.testing.assert_frame_equal(from_db.transactions, from_file.transactions)
    pd.testing.assert_frame_equal(from_db.labels, from_file.labels)
    assert from_db.quarantined == from_file.quarantined == 0
    assert from_db.watermark["mark"] == table["booked_at"].max()
    assert SECRET not in from_db.name and "***" in from_db.name


def test_a_query_and_chunks_read_the_same_rows(loaded, table, tmp_path):
    whole = load_source(loaded, bank_mapping(tmp_path / "a.yaml", watermark=None))
    spec = parse_mapping(yaml_of(bank_mapping(tmp_path / "b.yaml", watermark=None, chunk_rows=97)))
    query = spec.database.__class__(query="SELECT * FROM bank.transactions WHERE amount >= 0", key="tx_id",
                                    chunk_rows=97)  # fmt: skip
    read = db.read_rows(loaded, query)
    assert len(read.raw) == len(table) and read.mark is None
    chunked = load_source(loaded, spec)
    pd.testing.assert_frame_equal(chunked.transactions, whole.transactions)


def yaml_of(path):
    import yaml

    return yaml.safe_load(path.read_text())


def test_bad_rows_in_the_database_are_quarantined_with_reasons(postgres, loaded, tmp_path):
    staging = pd.DataFrame({
        "tx_id": ["a1", "a2", "a3", "a4", "a5", "a5", "a7"],
        "account_no": ["1", None, "1", "1", "1", "1", "1"], "customer_no": "1",
        "booked_at": ["2024-01-01 10:00:00", "2024-01-01 11:00:00", "2024-02-30 10:00:00", "2024-01-02 10:00:00",
                      "2024-01-03 10:00:00", "2024-01-03 10:00:00", None],
        "amount": ["10.00", "10.00", "10.00", "ten", "5.00", "5.00", "1.00"],
    })  # fmt: skip
    for c in ("dc", "operation", "purpose", "partner_bank", "partner_account", "region"):
        staging[c] = {"dc": "D", "operation": "cash_withdrawal", "purpose": "none", "region": "Prague"}.get(c, "")
    staging["balance_after"], staging["is_fraud"] = "100.00", "f"
    types = {**{c: "text" for c in BANK_TYPES}, "is_fraud": "boolean"}  # a staging table: text columns
    postgres.load("staging.transactions", staging, types)
    out = tmp_path / "scored.parquet"
    source = load_source(loaded, bank_mapping(tmp_path / "s.yaml", table="staging.transactions", watermark=None), out)
    assert source.received == 7 == len(source.transactions) + source.quarantined
    assert source.quarantined == 5
    # NULL account -> missing_field; 30 February and a NULL time -> unparseable_date; 'ten' -> wrong_type
    assert source.reasons == {"unparseable_date": 2, "missing_field": 1, "wrong_type": 1, "duplicate_id": 1}
    rejected = pd.read_csv(source.quarantine, dtype=str, keep_default_na=False)
    assert set(rejected.columns) >= {"reason", "detail", "raw"}
    assert len(rejected) == 5
    assert rejected.loc[rejected["reason"] == "duplicate_id", "raw"].str.contains("a5").all()


def _bank_rows(table: pd.DataFrame, days: int) -> pd.DataFrame:
    """``table``'s rows of its first ``days`` days."""
    start = pd.Timestamp(table["booked_at"].min()).normalize()
    return table[pd.to_datetime(table["booked_at"]) < start + pd.Timedelta(days=days)]


def test_score_reads_only_rows_above_the_last_runs_watermark(postgres, table, tmp_path):
    url = postgres.url
    first = _bank_rows(table, 120)
    postgres.load("inc.transactions", first, BANK_TYPES)
    mapping = bank_mapping(tmp_path / "inc.yaml", table="inc.transactions")
    assert main(["train", "--data", url, "--mapping", str(mapping), "--detector", "isolation_forest",
                 "--out", str(tmp_path / "model")]) == 0  # fmt: skip
    assert (tmp_path / "model.watermark.json").is_file()
    out = tmp_path / "scored.parquet"
    assert main(["score", "--data", url, "--mapping", str(mapping), "--model", str(tmp_path / "model"),
                 "--out", str(out), "--explain", "0"]) == 0  # fmt: skip
    assert len(pd.read_parquet(out)) == len(first)
    mark = json.loads((tmp_path / "scored.watermark.json").read_text())
    assert mark["watermark"] == {"column": "booked_at", "type": "timestamp without time zone",
                                 "value": first["booked_at"].max()}  # fmt: skip
    newer = table[table["booked_at"] > first["booked_at"].max()]
    copy_sql = "COPY inc.transactions (" + ", ".join(BANK_TYPES) + ") FROM STDIN"
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for row in newer[list(BANK_TYPES)].itertuples(index=False, name=None):
            copy.write_row(row)
    assert main(["score", "--data", url, "--mapping", str(mapping), "--model", str(tmp_path / "model"),
                 "--out", str(out), "--explain", "0"]) == 0  # fmt: skip
    scored = pd.read_parquet(out)
    assert len(scored) == len(newer) and set(scored["trans_id"]) == set(newer["tx_id"])
    stored = json.loads((tmp_path / "scored.watermark.json").read_text())
    assert stored["watermark"]["value"] == table["booked_at"].max()


def test_a_lost_connection_fails_in_one_line_and_keeps_the_watermark(postgres, loaded, table, tmp_path, capsys,
                                                                     monkeypatch):  # fmt: skip
    mapping = bank_mapping(tmp_path / "lost.yaml", chunk_rows=50)
    mark_file = tmp_path / "scored.watermark.json"
    stored = {"source": "x", "relation": "table bank.transactions",
              "watermark": {"column": "booked_at", "type": "timestamp without time zone",
                            "value": "1900-01-01 00:00:00"}}  # fmt: skip
    mark_file.write_text(json.dumps(stored))
    model = tmp_path / "model"
    assert main(["train", "--data", loaded, "--mapping", str(bank_mapping(tmp_path / "t.yaml", watermark=None)),
                 "--detector", "isolation_forest", "--out", str(model)]) == 0  # fmt: skip
    capsys.readouterr()
    import finsentry.cli as cli

    def kill_reader(message: str) -> None:
        if "rows read from" in message:
            with psycopg.connect(postgres.url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                              [db.APPLICATION_NAME])  # fmt: skip

    monkeypatch.setattr(cli, "_progress", kill_reader)
    code = main(["score", "--data", loaded, "--mapping", str(mapping), "--model", str(model),
                 "--out", str(tmp_path / "scored.parquet")])  # fmt: skip
    err = capsys.readouterr()
    assert code == 2
    assert err.err.count("\n") == 1 and "lost the connection" in err.err and "watermark did not advance" in err.err
    assert SECRET not in err.err + err.out and "finsentry:***@127.0.0.1" in err.err
    assert json.loads(mark_file.read_text()) == stored
    assert not (tmp_path / "scored.parquet").exists()


def test_an_unreachable_server_is_one_line_without_the_password(capsys, tmp_path):
    from finsentry.local.postgres import free_port

    url = f"postgresql://bank:{SECRET}@127.0.0.1:{free_port()}/core"
    code = main(["train", "--data", url, "--mapping", str(bank_mapping(tmp_path / "m.yaml")),
                 "--out", str(tmp_path / "model")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "cannot connect to postgresql://bank:***@127.0.0.1" in err and SECRET not in err


def test_a_stored_mark_of_another_source_is_refused(loaded, tmp_path):
    (tmp_path / "out.watermark.json").write_text(json.dumps({
        "relation": "table other.t", "watermark": {"column": "booked_at", "type": "date", "value": "2024-01-01"}}))
    with pytest.raises(db.DatabaseSourceError, match="holds the mark of table other.t"):
        load_source(loaded, bank_mapping(tmp_path / "m.yaml"), tmp_path / "out")


def test_nothing_new_above_the_mark_is_a_clear_error(loaded, table, tmp_path):
    mapping = bank_mapping(tmp_path / "m.yaml")
    first = load_source(loaded, mapping, tmp_path / "out")
    first.commit_watermark()
    with pytest.raises(MappingError, match="no new rows"):
        load_source(loaded, mapping, tmp_path / "out")


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://u:p%40ss@db.example:5432/bank?sslmode=require", "postgresql://u:***@db.example:5432/bank?..."),
    ("postgres://db.example/bank", "postgres://db.example/bank"),
    ("postgresql://reader@db/bank", "postgresql://reader@db/bank"),
])  # fmt: skip
def test_mask_url_hides_the_password_and_options(url, masked):
    assert db.mask_url(url) == masked


@pytest.mark.parametrize(("section", "message"), [
    ({"table": "a", "query": "SELECT 1"}, "not both"),
    ({"table": "a", "chunk_rows": 0}, "chunk_rows"),
    ({"table": "a", "where": "x"}, "database keys where"),
    ({"table": ""}, "database.table must be non-empty"),
])  # fmt: skip
def test_the_database_section_is_checked(section, message):
    with pytest.raises(MappingError, match=message):
        parse_mapping({"columns": {"ts": "t"}, "database": section})


def test_a_database_without_a_mapping_is_a_usage_error(capsys):
    assert main(["train", "--data", "postgresql://x@127.0.0.1/db", "--out", "m"]) == 2
    assert "needs --mapping" in capsys.readouterr().err


def test_load_mapping_keeps_the_database_section(tmp_path):
    m = load_mapping(bank_mapping(tmp_path / "m.yaml", chunk_rows=10))
    assert (m.database.table, m.database.watermark, m.database.key, m.database.chunk_rows) == (
        "bank.transactions", "booked_at", "tx_id", 10)


def test_demo_runs_on_a_database_table(loaded, tmp_path, capsys):
    mapping = bank_mapping(tmp_path / "demo.yaml", watermark=None)
    code = main(["demo", "--data", loaded, "--mapping", str(mapping), "--out", str(tmp_path / "out"),
                 "--stream-records", "0", "--no-sagemaker"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "(table bank.transactions) through the mapping" in out and SECRET not in out
    assert (tmp_path / "out" / "report.html").is_file()
