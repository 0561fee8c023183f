"""Validation of the canonical record: every rejection has a typed reason; counts add up."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from finsentry.schema import (
    REQUIRED_COLUMNS,
    TRANSACTION_COLUMNS,
    Reason,
    empty_transactions,
    to_record,
    validate_frame,
    validate_records,
)


def good(**overrides):
    rec = {
        "trans_id": "1", "account_id": "10", "client_id": "100", "ts": "1996-05-01T12:30:00",
        "amount": 250.0, "direction": "debit", "type": "debit",
        "operation": "remittance_other_bank", "k_symbol": "household", "partner_bank": "AB",
        "partner_account": "12345", "balance_before": 1000.0, "balance_after": 750.0,
        "channel": "transfer", "frequency": "monthly", "client_age": 41.5,
        "client_gender": "M", "district_id": 3, "region": "south Bohemia",
    }  # fmt: skip
    rec.update(overrides)
    return rec


@pytest.mark.parametrize(
    ("overrides", "reason", "detail"),
    [
        ({"amount": None}, Reason.MISSING_FIELD, "amount"),
        ({"account_id": ""}, Reason.MISSING_FIELD, "account_id"),
        ({"amount": "12x"}, Reason.WRONG_TYPE, "amount"),
        ({"amount": [1, 2]}, Reason.WRONG_TYPE, "amount"),
        ({"trans_id": {"a": 1}}, Reason.WRONG_TYPE, "trans_id"),
        ({"amount": math.nan}, Reason.MISSING_FIELD, "amount"),
        ({"amount": math.inf}, Reason.NON_FINITE_AMOUNT, "amount"),
        ({"amount": "inf"}, Reason.NON_FINITE_AMOUNT, "amount"),
        ({"amount": -5}, Reason.NEGATIVE_AMOUNT, "amount"),
        ({"ts": "1996-13-45"}, Reason.UNPARSEABLE_DATE, "ts"),
        ({"ts": 12345}, Reason.UNPARSEABLE_DATE, "ts"),
        ({"direction": "sideways"}, Reason.INVALID_VALUE, "direction"),
        ({"account_id": "x" * 1_000_000}, Reason.TOO_LONG, "account_id"),
        ({"account_id": "999"}, Reason.UNKNOWN_ACCOUNT, "account_id"),
    ],
)
def test_each_bad_record_gets_its_reason_and_the_batch_goes_on(overrides, reason, detail):
    records = [good(trans_id="a"), good(**{"trans_id": "b", **overrides}), good(trans_id="c")]
    result = validate_records(records, known_accounts=["10"])
    assert len(result.valid) == 2
    assert result.rejected["reason"].tolist() == [str(reason)]
    assert result.rejected["detail"].tolist() == [detail]
    assert result.received == 3


def test_non_objects_are_malformed_and_duplicates_rejected():
    result = validate_records([good(), "oops", 42, None, good(), good(trans_id="2")])
    assert result.reason_counts() == {"malformed": 3, "duplicate_id": 1}
    assert len(result.valid) == 2
    assert result.received == 6


def test_valid_rows_are_canonical_and_typed():
    result = validate_records([good(), good(trans_id="2", partner_bank=None, district_id=None)])
    valid = result.valid
    assert tuple(valid.columns[: len(TRANSACTION_COLUMNS)]) == TRANSACTION_COLUMNS
    assert valid["ts"].dtype == "datetime64[ns]"
    assert valid.loc[1, "partner_bank"] == ""
    assert valid.loc[1, "district_id"] == -1
    assert valid["amount"].dtype == "float64"


def test_missing_column_entirely_rejects_every_row_without_raising():
    frame = pd.DataFrame([good(), good(trans_id="2")]).drop(columns=["ts"])
    result = validate_frame(frame)
    assert result.reason_counts() == {"missing_field": 2}


def test_to_record_round_trips():
    valid = validate_records([good()]).valid
    again = validate_records([to_record(valid.iloc[0])]).valid
    pd.testing.assert_frame_equal(valid, again)


def test_empty_inputs():
    assert validate_records([]).received == 0
    assert list(empty_transactions().columns) == list(TRANSACTION_COLUMNS)
    assert set(REQUIRED_COLUMNS) <= set(TRANSACTION_COLUMNS)


def test_a_records_verdict_does_not_depend_on_its_neighbours():
    int_id = good(trans_id=0)  # an integer id is accepted as "0"
    no_id = {k: v for k, v in good(trans_id="2").items() if k != "trans_id"}
    alone = validate_records([int_id])
    beside = validate_records([no_id, int_id])  # pandas would infer [nan, 0.0] for this column
    assert alone.valid["trans_id"].tolist() == ["0"]
    assert beside.valid["trans_id"].tolist() == ["0"]
    assert beside.rejected[["reason", "detail"]].values.tolist() == [["missing_field", "trans_id"]]
