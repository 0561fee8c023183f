"""The local run of the SageMaker jobs: same entry points, the state machine's choice."""

from __future__ import annotations

import pandas as pd
from rich.console import Console

from finsentry.detectors.artifact import save_model
from finsentry.local.training_run import print_training_run, run_training_jobs
from finsentry.training.jobs import build_detector
from tests.sagemaker.conftest import FAST


def _masks(labelled):
    train, validation = labelled
    frame = pd.concat([train, validation], ignore_index=True)
    frame[["is_anomaly", "anomaly_type"]] = frame[["is_anomaly", "anomaly_type"]].fillna({"is_anomaly": False,
                                                                                         "anomaly_type": ""})
    late = pd.Series([False] * len(train) + [True] * len(validation))
    transactions = frame[["trans_id", "account_id", "ts", "is_anomaly", "anomaly_type"]]
    features = frame.drop(columns=["trans_id", "account_id", "ts", "is_anomaly", "anomaly_type"])
    return transactions, features, ~late, late


def test_the_four_candidates_go_through_the_entry_points_and_a_champion_is_compared(labelled, tmp_path):
    transactions, features, train, validation = _masks(labelled)
    first = run_training_jobs(transactions, features, train, validation, 0.02, hyperparameters=FAST)
    assert first.entry_points == "sagemaker/" and set(first.evaluation["candidates"]) == {"isolation_forest", "lof",
                                                                                            "lstm", "ensemble"}
    assert first.evaluation["selection"]["promote"] is True and first.evaluation["champion"] is None
    best = first.evaluation["selection"]["best"]
    champion = save_model(build_detector(best, FAST.get(best, {})).fit(features[train]), tmp_path / "champion")
    second = run_training_jobs(transactions, features, train, validation, 0.02, champion=champion,
                               hyperparameters=FAST, candidates=(best,))  # fmt: skip
    assert second.evaluation["selection"]["promote"] is False  # the same model again: no margin
    console = Console(record=True, width=200)
    print_training_run(second, console)
    text = console.export_text()
    assert f"State machine choice: keep the model in production (champion:{best})" in text

