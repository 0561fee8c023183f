"""The scoring core: alerts at the threshold, rule hits always alert, reasons only for alerts."""

from __future__ import annotations

import numpy as np

from finsentry.detectors import make_detector
from finsentry.features import compute_features
from finsentry.scoring import SCORED_COLUMNS, score_transactions, scored_frame
from tests.factories import gaussian_features, small_bank


def test_alerts_carry_types_and_reasons_and_normal_rows_none():
    train = gaussian_features(seed=5)
    model = make_detector("ensemble").fit(train)
    test = train.iloc[:50].copy()
    test.loc[7, "duplicate_recent"] = 1.0
    batch = score_transactions(model, test, budget_threshold=0.99, model_version="v1")
    assert batch.alerts[0] and batch.anomaly_types[0] == "amount_spike"
    assert batch.alerts[7] and batch.anomaly_types[7] == "duplicate_posting"
    assert all(batch.reasons[i] for i in np.flatnonzero(batch.alerts))
    assert all(not batch.reasons[i] and batch.anomaly_types[i] == "" for i in np.flatnonzero(~batch.alerts))


def test_scored_frame_has_exactly_the_published_columns():
    txns = small_bank(accounts=5, months=2).transactions.valid
    batch = score_transactions(None, compute_features(txns), budget_threshold=1.0, model_version="rules")
    assert list(scored_frame(txns, batch).columns) == list(SCORED_COLUMNS)
