"""glue_jobs/ingest.py on the bank's own files: a mapping without ``database:`` reads the CSV /
Parquet files under raw/ (curated rows = the pandas path's, quarantine with reasons, counts that
add up); what it cannot read stops it with exit 2 and one line."""

from __future__ import annotations

import gzip
import json
import shutil

import boto3
import pandas as pd
import pytest

from finsentry import lake
from finsentry.layout import PREFIXES
from finsentry.mapping import load_mapped, load_mapping
from tests.foreign import CARD_CSV, CARD_MAPPING
from tests.glue_jobs.conftest import REGION, fake_aws, run_script

EXTRA = b"2018-04-02 10:00:00,5,7,12.5,0,0,EXTRA,FIELD\n2018-04-02 11:00:00,5,7,1\xe9.5,0,0\n"


def _ingest(root, mapping, *extra) -> tuple[int, str, str]:
    args = ["--JOB_NAME", "x", "--data_bucket", "b", "--env", "filetest", "--root", str(root), "--run_id", "r1",
            "--source_mapping", str(mapping), "--buckets", "2"]  # fmt: skip
    return run_script("ingest", [*args, *extra])


def _report(root) -> dict:
    return json.loads(next((root / PREFIXES.transactions / "_quality").glob("ingest-*.json")).read_text())


@pytest.fixture(scope="module")
def mapped_run(spark, tmp_path_factory):
    """The card table (with a too-long and a non-UTF-8 line) and a Czech file under raw/."""
    root = tmp_path_factory.mktemp("bucket")
    raw = root / "raw"
    raw.mkdir()
    (raw / "cards.csv").write_bytes(CARD_CSV.read_bytes() + EXTRA)
    (raw / "trans.asc").write_text("not read: no table suffix\n")
    mapping = root / "config" / "card.mapping.yaml"
    mapping.parent.mkdir()
    shutil.copy(CARD_MAPPING, mapping)
    with fake_aws():
        code, out, err = _ingest(root, mapping)
        glue = boto3.client("glue", region_name=REGION)
        table = glue.get_table(DatabaseName=lake.database_name("filetest"), Name="transactions")["Table"] if not code \
            else None
    return root, code, out, err, table


def test_the_job_writes_the_pandas_path_s_rows(mapped_run):
    root, code, out, err, table = mapped_run
    assert code == 0, err
    expected = load_mapped(root / "raw" / "cards.csv", load_mapping(CARD_MAPPING))
    curated = pd.read_parquet(root / PREFIXES.transactions)
    assert sorted(curated["trans_id"]) == sorted(expected.result.valid["trans_id"])
    assert table["StorageDescriptor"]["Location"] == f"{root}/{PREFIXES.transactions}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["rows_in"], summary["rows_out"]) == (expected.received, len(expected.result.valid))


def test_the_counts_add_up_and_every_rejection_has_its_reason_and_place(mapped_run):
    root = mapped_run[0]
    report = _report(root)
    assert report["rows_in"] == report["rows_out"] + report["rows_quarantined"] == 1982 + 2
    assert report["quarantined_by_reason"] == {"read:malformed": 2, "unparseable_date": 1, "wrong_type": 1}
    assert json.loads(report["outputs"]["files"]) == ["cards.csv"]
    assert "trans_id" in json.loads(report["outputs"]["derived"])
    quarantine = pd.concat(pd.read_json(f, lines=True, dtype=False)
                           for f in (root / PREFIXES.quarantine / "ingest" / "run_id=r1").glob("*.json"))  # fmt: skip
    assert len(quarantine) == report["rows_quarantined"] and set(quarantine["table"]) == {"cards.csv"}
    read = quarantine[quarantine["stage"] == "read"]
    assert sorted(read["detail"]) == ["8 fields, expected 6", "not valid UTF-8"] and read["line"].isna().all()
    checked = quarantine[quarantine["stage"] == "validate"].set_index("detail")
    assert checked.loc["ts", "line"] == 201 and "2018-04-31" in checked.loc["ts", "raw"]  # row 201 of the file


def test_a_truncated_gzip_file_an_empty_prefix_or_no_mapping_stop_the_job_in_one_line(spark, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    packed = gzip.compress(CARD_CSV.read_bytes())
    (raw / "cards.csv.gz").write_bytes(packed[: len(packed) // 2])
    with fake_aws():
        cut = _ingest(tmp_path, CARD_MAPPING)
        empty = _ingest(tmp_path, CARD_MAPPING, "--raw_prefix", "nothing/")
        missing = _ingest(tmp_path, tmp_path / "absent.yaml")
    for (code, _, err), says in ((cut, "cards.csv.gz: cannot be read as CSV"), (empty, "no bank file under"),
                                 (missing, "absent.yaml: no such mapping file")):  # fmt: skip
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("finsentry ingest job FAILED: the mapped source: ") and says in err, err
    assert not (tmp_path / PREFIXES.transactions).exists()


def test_database_settings_with_a_file_mapping_are_refused(spark, tmp_path):
    with fake_aws():
        code, _, err = _ingest(tmp_path, CARD_MAPPING, "--source_url", "postgresql://reader@db/core")
    assert code == 2 and "has no database: section" in err


def test_the_gate_fails_the_file_run_and_publishes_nothing(spark, tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "cards.csv").write_bytes(CARD_CSV.read_bytes() + EXTRA)
    with fake_aws():
        code, _, err = _ingest(tmp_path, CARD_MAPPING, "--max_rejected_share", "0.001")
    assert code == 2 and "FAILED the data-quality gate" in err and len(err.strip().splitlines()) == 1
    report = _report(tmp_path)
    assert report["passed"] is False and report["rows_in"] == report["rows_out"] + report["rows_quarantined"]
    assert not list((tmp_path / PREFIXES.transactions).glob("dt=*"))
    assert list((tmp_path / PREFIXES.quarantine / "ingest" / "run_id=r1").glob("*.json"))
