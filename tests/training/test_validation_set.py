"""The training window and the labelled validation period (finsentry.training.validation_set)."""

from __future__ import annotations

import pandas as pd
import pytest

from finsentry.anomalies import AnomalyType
from finsentry.features import CURATED_COLUMNS
from finsentry.training.validation_set import (
    WindowError,
    apply_window,
    exclude_validation,
    labelled_validation,
    validation_start,
    window_from_env,
)
from tests.factories import small_bank


@pytest.fixture(scope="module")
def bank():
    return small_bank()


def test_window_keeps_whole_days_and_the_default_window_keeps_everything():
    frame = pd.DataFrame({"ts": pd.to_datetime(["2024-01-31 23:59", "2024-02-01 00:00", "2024-02-29 18:00",
                                                 "2024-03-01 00:00"]), "v": range(4)})  # fmt: skip
    assert apply_window(frame, "2024-02-01", "2024-02-29")["v"].tolist() == [1, 2]
    assert apply_window(frame, None, "2024-01-31")["v"].tolist() == [0]
    assert apply_window(frame, "0001-01-01", "9999-12-31") is frame  # the state machine's defaults
    assert apply_window(frame, "", None) is frame
    with pytest.raises(WindowError, match="after"):
        apply_window(frame, "2024-03-01", "2024-02-01")
    with pytest.raises(WindowError, match="not a date"):
        apply_window(frame, "yesterday", None)
    with pytest.raises(WindowError, match="no 'ts' column"):
        apply_window(frame.drop(columns="ts"), "2024-02-01", None)


def test_window_from_env_reads_the_state_machine_variables():
    assert window_from_env({"FINSENTRY_WINDOW_START": "2024-01-01", "FINSENTRY_WINDOW_END": ""}) == ("2024-01-01", None)
    assert window_from_env({}) == (None, None)


def test_labelled_validation_is_the_last_share_labelled_and_disjoint_from_training(bank):
    tx = bank.transactions.valid
    result = labelled_validation(tx, bank.orders, 0.2, rate=0.02, seed=3)
    frame = result.frame
    assert result.start == validation_start(tx, 0.2) and result.start == result.start.normalize()
    assert (pd.to_datetime(frame["ts"]) >= result.start).all()
    assert set(CURATED_COLUMNS) <= set(frame.columns) and frame["is_anomaly"].dtype == bool
    assert frame["is_anomaly"].sum() > 0 and set(frame.loc[frame["is_anomaly"], "anomaly_type"]) <= {
        str(t) for t in AnomalyType}
    assert (frame.loc[~frame["is_anomaly"], "anomaly_type"] == "").all()
    share = len(frame) / len(tx)
    assert 0.1 < share < 0.3  # about the asked share (whole days; injected rows added)
    train = exclude_validation(tx, frame)
    assert not set(train["trans_id"]) & set(frame["trans_id"])
    assert (pd.to_datetime(train["ts"]) < result.start).all()
    assert len(train) == int((pd.to_datetime(tx["ts"]) < result.start).sum())


def test_labelled_validation_takes_its_share_of_the_window(bank):
    tx = bank.transactions.valid
    ts = pd.to_datetime(tx["ts"])
    end = (ts.min() + (ts.max() - ts.min()) / 2).strftime("%Y-%m-%d")
    result = labelled_validation(tx, bank.orders.iloc[0:0], 0.25, end=end, rate=0.02, seed=3)
    assert pd.to_datetime(result.frame["ts"]).max() < pd.Timestamp(end) + pd.Timedelta(days=1)
    assert result.start == validation_start(tx, 0.25, None, end) and result.start < pd.Timestamp(end)
    assert str(AnomalyType.MISSING_RECURRING) in result.skipped  # no permanent orders: said, not hidden
    with pytest.raises(ValueError, match="share"):
        labelled_validation(tx, bank.orders, 0.0)
