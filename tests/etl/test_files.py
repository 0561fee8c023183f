"""The bank's own files on Spark (finsentry.etl.files) give the pandas path's rows: the same
valid rows (derived trans_ids included), labels and rejections, whatever the file's form."""

from __future__ import annotations

import gzip
import shutil

import pandas as pd
import pytest

from finsentry.etl import files
from finsentry.mapping import MappingError, load_mapped, load_mapping
from finsentry.schema import NOT_UTF8
from tests.foreign import CARD_CSV, CARD_MAPPING, EXAMPLE_CSV, EXAMPLE_MAPPING

LINES = CARD_CSV.read_bytes().splitlines(keepends=True)  # header, rows: 101/102 equal, a bad date, a text amount


def dirty_csv(path):
    """Rows 1-349 of the card table (a repeated payment, a bad date, a text amount) plus a line
    with too many fields, one that is not UTF-8 and one whose label is no label."""
    extra = [b"2018-04-02 10:00:00,5,7,12.5,0,0,EXTRA,FIELD\n", b"2018-04-02 11:00:00,5,7,1\xe9.5,0,0\n",
             b"2018-04-02 12:00:00,5,7,13.5,maybe,0\n"]  # fmt: skip
    path.write_bytes(b"".join(LINES[:350] + extra))
    return path


def gzipped_csv(path):
    path.write_bytes(gzip.compress(b"".join(LINES[:1] + LINES[350:700])))
    return path


def typed_parquet(path):
    """Rows 700-999 as a typed Parquet file: timestamps, integers, floats; one amount empty."""
    frame = pd.read_csv(CARD_CSV).iloc[699:999].reset_index(drop=True)
    frame["TX_DATETIME"] = pd.to_datetime(frame["TX_DATETIME"])
    frame["TX_AMOUNT"] = pd.to_numeric(frame["TX_AMOUNT"])
    frame.loc[7, "TX_AMOUNT"] = None
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    dirty_csv(raw / "a_export.csv")
    gzipped_csv(raw / "b_export.csv.gz")
    typed_parquet(raw / "c_export.parquet")
    (raw / "notes.md").write_text("not a table")  # not read
    return raw


def _rejections(table) -> pd.DataFrame:
    return table.result.rejected.sort_values(["reason", "detail", "raw"]).reset_index(drop=True)


def test_spark_reads_the_files_as_the_pandas_path_reads_each_in_name_order(spark, folder):
    mapping = load_mapping(CARD_MAPPING)
    expected = [load_mapped(folder / n, mapping) for n in ("a_export.csv", "b_export.csv.gz", "c_export.parquet")]
    got = files.load_mapped_files_spark(spark, str(folder), mapping, groups=2)
    valid = pd.concat([t.result.valid for t in expected], ignore_index=True)
    pd.testing.assert_frame_equal(got.result.valid, valid)  # derived trans_ids of typed Parquet cells too
    pd.testing.assert_frame_equal(got.labels, pd.concat([t.labels for t in expected], ignore_index=True))
    rejected = pd.concat([t.result.rejected for t in expected], ignore_index=True)
    want = rejected.sort_values(["reason", "detail", "raw"]).reset_index(drop=True)
    got_rejected = _rejections(got)
    pd.testing.assert_frame_equal(got_rejected[["reason", "detail"]], want[["reason", "detail"]], check_dtype=False)
    label = want["detail"] == "label"  # the raw row of a label rejection: only the columns the mapping reads
    assert got_rejected.loc[~label, "raw"].tolist() == want.loc[~label, "raw"].tolist()
    assert sorted(want["detail"]) == sorted(["8 fields, expected 6", NOT_UTF8, "label", "ts", "amount", "amount"])
    assert got.received == sum(t.received for t in expected) == 349 + 3 + 350 + 300
    assert got.derived == expected[0].derived and got.warnings == expected[0].warnings


def test_a_parquet_file_s_cells_go_on_as_the_text_derive_trans_ids_prints(tmp_path):
    path = typed_parquet(tmp_path / "typed.parquet")
    rows = files.file_rows(path.name, path.read_bytes(), 3, load_mapping(CARD_MAPPING))
    assert rows.loc[0, "TX_DATETIME"] == str(pd.read_parquet(path).loc[0, "TX_DATETIME"])
    assert rows.loc[7, "TX_AMOUNT"] == "" and rows["TX_FRAUD"].isin(["0", "1"]).all()
    assert rows["_line"].iloc[0] == (3 << files.FILE_BITS) + 1 and (rows["q_reason"] == "").all()


def test_an_unreadable_file_is_one_row_saying_why(tmp_path):
    packed = gzip.compress(CARD_CSV.read_bytes())
    rows = files.file_rows("cut.csv.gz", packed[: len(packed) // 2], 0, load_mapping(CARD_MAPPING))
    assert rows["q_reason"].tolist() == [files.UNREADABLE]
    assert rows["q_detail"].iloc[0].startswith("cut.csv.gz: cannot be read as CSV")
    rows = files.file_rows("other.csv", b"a,b\n1,2\n", 0, load_mapping(CARD_MAPPING))
    assert rows["q_detail"].iloc[0].startswith("other.csv: the table has no column CUSTOMER_ID")


def test_which_files_are_read():
    assert [n for n in ("x.csv", "x.CSV.GZ", "x.tsv", "x.txt.gz", "x.parquet", "x.pq", "x.asc", "x.json", "x.gz")
            if files.is_table_file(n)] == ["x.csv", "x.CSV.GZ", "x.tsv", "x.txt.gz", "x.parquet", "x.pq"]


def test_no_file_or_a_missing_folder_is_named(spark, tmp_path):
    (tmp_path / "readme.md").write_text("x")
    for where in (tmp_path, tmp_path / "absent"):
        with pytest.raises(MappingError, match="no bank file under"):
            files.table_files(spark, str(where))


def test_one_file_copied_twice_keeps_its_derived_ids_apart(spark, tmp_path):
    """Files are one table: a re-delivered file's identical rows are later occurrences (new ids)."""
    shutil.copy(CARD_CSV, tmp_path / "1.csv")
    head = b"".join(LINES[:51])
    (tmp_path / "1.csv").write_bytes(head)
    (tmp_path / "2.csv").write_bytes(head)
    got = files.load_mapped_files_spark(spark, str(tmp_path), load_mapping(CARD_MAPPING), groups=2)
    assert len(got.result.valid) == 100 and got.result.valid["trans_id"].is_unique


def test_a_mapped_trans_id_repeated_in_a_later_file_is_a_duplicate(spark, tmp_path):
    """The core-banking example (';'-separated, decimal commas, its own ids) delivered twice."""
    for name in ("2024-06-01.csv", "2024-06-02.csv"):
        shutil.copy(EXAMPLE_CSV, tmp_path / name)
    mapping = load_mapping(EXAMPLE_MAPPING)
    expected = load_mapped(EXAMPLE_CSV, mapping)
    got = files.load_mapped_files_spark(spark, str(tmp_path), mapping, groups=2)
    pd.testing.assert_frame_equal(got.result.valid, expected.result.valid)
    assert got.received == 2 * expected.received
    assert (got.result.rejected["reason"] == "duplicate_id").sum() == len(expected.result.valid)
