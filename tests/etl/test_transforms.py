"""The engine-neutral transforms and the pandas engine (no Spark here)."""

from __future__ import annotations

import pandas as pd
import pytest

from finsentry.datasets import czech
from finsentry.etl import pandas_engine, transforms
from finsentry.features import FEATURE_COLUMNS, compute_features
from tests.etl.banks import clean_bank, dirty_bank


def test_pandas_engine_equals_the_loader_on_clean_files(tmp_path):
    clean_bank(tmp_path, accounts=20, months=4)
    result = pandas_engine.ingest(tmp_path)
    loaded = czech.load(tmp_path).transactions.valid
    pd.testing.assert_frame_equal(result.transactions.drop(columns=[transforms.SEQ]), loaded, check_dtype=False)
    assert result.report.rows_in == result.report.rows_out == len(loaded)
    assert result.report.passed and result.quarantine.empty


def test_every_bad_row_is_quarantined_with_its_reason_and_file_line(tmp_path):
    bank = dirty_bank(tmp_path)
    result = pandas_engine.ingest(tmp_path)
    report = result.report
    assert report.rows_in == bank.records
    assert report.rows_out == bank.clean_records
    assert report.rows_in == report.rows_out + report.rows_quarantined
    assert report.quarantined_by_reason == dict(bank.expected_reasons)
    assert report.duplicate_ids == 2
    assert report.other_tables == {"client": {"wrong_type": 1}}
    trans = result.quarantine[result.quarantine["table"] == "trans"]
    assert len(trans) == report.rows_quarantined
    total_lines = 1 + bank.records + 1  # header + records + one blank line
    assert sorted(trans["line"]) == list(range(total_lines - 6, total_lines + 1))
    assert (trans["reason"] != "").all() and (trans["raw"] != "").all()


def test_a_repeated_id_keeps_the_first_line():
    parsed = transforms.parsed_rows(
        pd.DataFrame({transforms.LINE: [3, 1, 2], "trans_id": [7, 7, 8], "account_id": [1, 2, 1],
                      "ts": pd.to_datetime(["1995-01-01"] * 3), "type": "credit", "operation": "cash_credit",
                      "amount": 1.0, "balance": 1.0, "k_symbol": "none", "bank": "", "account": ""}),
        pd.DataFrame({c: [] for c in czech.QUARANTINE_COLUMNS}),
    )  # fmt: skip
    marked = transforms.mark_repeated_ids(parsed)
    held = marked[marked["q_reason"] != ""]
    assert held[transforms.LINE].tolist() == [3] and held["q_reason"].tolist() == ["duplicate_id"]
    assert '"account_id": 1' in held["q_raw"].iloc[0]


def test_chunks_keep_the_files_line_numbers(tmp_path):
    clean_bank(tmp_path, accounts=5, months=2)
    header, *body = (tmp_path / "trans.asc").read_text().splitlines()
    chunk = pd.DataFrame({"line": [40, 41, 42], "value": [body[0], "broken", body[1]]})
    parsed = transforms.parse_trans_chunk(chunk, header, "asc")
    assert sorted(parsed[transforms.LINE]) == [40, 41, 42]
    assert parsed.loc[parsed[transforms.LINE] == 41, "q_reason"].tolist() == ["malformed"]
    assert transforms.parse_trans_chunk(chunk.iloc[:0], header, "asc").empty


def test_pandas_engine_features_are_the_batch_features(tmp_path):
    clean_bank(tmp_path, accounts=15, months=4)
    tx = pandas_engine.ingest(tmp_path).transactions
    out = pandas_engine.features(tx).set_index("trans_id")
    expected = compute_features(tx).set_axis(tx["trans_id"])
    pd.testing.assert_frame_equal(out.loc[tx["trans_id"], list(FEATURE_COLUMNS)], expected, check_names=False)
    assert (out["dt"] == out["ts"].dt.strftime("%Y-%m-%d")).all()


def test_missing_trans_file_is_a_clear_error(tmp_path):
    with pytest.raises(czech.DatasetError, match="neither trans.asc"):
        pandas_engine.ingest(tmp_path)
