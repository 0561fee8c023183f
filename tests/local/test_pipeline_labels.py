"""The local run ranks its candidates on analysts' verdicts once the label store holds enough."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from finsentry.labels import MIN_FRAUDS, MIN_NEGATIVES, LabelStore, validate_labels
from finsentry.local.pipeline import DemoConfig, validation_truth


def _prep(n: int = 200) -> SimpleNamespace:
    transactions = pd.DataFrame({"trans_id": [f"T{i}" for i in range(n)], "is_anomaly": np.arange(n) % 50 == 0,
                                 "anomaly_type": np.where(np.arange(n) % 50 == 0, "burst", "")})  # fmt: skip
    validation = np.arange(n) >= n // 2
    return SimpleNamespace(transactions=transactions, split=SimpleNamespace(validation=validation))


def _label(out, ids, verdict):
    rows = [{"trans_id": t, "verdict": verdict, "who": "ana", "when": "2026-01-01T00:00:00"} for t in ids]
    LabelStore(out).add(validate_labels(rows).valid)


def test_injected_anomalies_until_the_store_has_enough_verdicts_on_validation_rows(tmp_path):
    prep, config = _prep(), DemoConfig(out_dir=tmp_path)
    truth, _, basis = validation_truth(prep, config)
    assert basis == "injected" and truth.sum() == 2
    _label(tmp_path, [f"T{i}" for i in range(100, 100 + MIN_FRAUDS)], "confirmed_fraud")
    _label(tmp_path, [f"T{i}" for i in range(0, MIN_NEGATIVES)], "dismissed")  # training rows: not counted
    assert validation_truth(prep, config)[2] == "injected"
    _label(tmp_path, [f"T{i}" for i in range(150, 150 + MIN_NEGATIVES)], "dismissed")
    truth, types, basis = validation_truth(prep, config)
    assert basis == "analyst_labels" and truth.sum() == MIN_FRAUDS and set(types) == {"", "confirmed_fraud"}
