"""The LSTM sequence detector and the sequence columns it reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsentry.detectors import LstmSequenceDetector, make_detector
from finsentry.detectors.artifact import ModelArtifactError, load_model, save_model
from finsentry.features import (
    DETECTOR_COLUMNS,
    SEQUENCE_COLUMNS,
    SEQUENCE_WINDOW,
    features_with_sequence,
    op_name,
    sequence_columns,
)
from tests.factories import small_bank

TINY = {"units": 8, "epochs": 2, "batch_size": 128, "max_train_rows": 4000}


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, pd.DataFrame]:
    transactions = small_bank().transactions.valid.reset_index(drop=True)
    return transactions, features_with_sequence(transactions)


@pytest.fixture(scope="module")
def fitted(frame) -> LstmSequenceDetector:
    return make_detector("lstm", **TINY).fit(frame[1])


def _toy(accounts: int = 3, n: int = 12) -> pd.DataFrame:
    rows = []
    for a in range(accounts):
        for i in range(n):
            credit = i % 2 == 0
            rows.append({"account_id": f"A{a}", "ts": pd.Timestamp("2020-01-01") + pd.Timedelta(hours=5 * i + a),
                         "operation": "collection_other_bank" if credit else "card_withdrawal",
                         "direction": "credit" if credit else "debit", "k_symbol": "none", "amount": 100.0 + i})
    return pd.DataFrame(rows)


def test_sequence_columns_hold_the_previous_transactions_of_the_same_account_only():
    toy = _toy()
    seq = sequence_columns(toy)
    row = toy.index[(toy["account_id"] == "A1")][5]  # the 6th transaction of A1
    assert seq.loc[row, "seq_op_1"] == seq.loc[row - 1, "seq_op"] and seq.loc[row, "seq_amount_1"] == np.log1p(104.0)
    assert seq.loc[row, "seq_gap_1"] == pytest.approx(np.log1p(5.0))  # 5 h between the 4th and 5th
    assert (seq.loc[row, [f"seq_op_{k}" for k in range(6, SEQUENCE_WINDOW + 1)]] == 0).all()  # no 6th previous
    first = toy.index[toy["account_id"] == "A2"][0]
    assert (seq.loc[first, SEQUENCE_COLUMNS[3:]] == 0).all() and seq.loc[first, "seq_op"] > 0
    # order of the input rows does not matter: point-in-time by account and ts
    shuffled = toy.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(sequence_columns(shuffled).sort_index(), seq)
    assert op_name(seq.loc[row, "seq_op"]).startswith("card_withdrawal debit")


def test_sequence_columns_need_the_transaction_columns():
    with pytest.raises(ValueError, match="k_symbol"):
        sequence_columns(_toy().drop(columns="k_symbol"))


def test_scores_are_calibrated_and_deterministic(frame, fitted):
    _, features = frame
    scores = fitted.score(features.iloc[:500])
    assert scores.min() >= 0 and scores.max() < 1
    again = make_detector("lstm", **TINY).fit(features)
    np.testing.assert_allclose(again.score(features.iloc[:500]), scores, atol=1e-6)


def test_a_row_scores_the_same_alone_as_in_its_batch(frame, fitted):
    _, features = frame
    batch = fitted.raw_score(features.iloc[:300])
    alone = np.array([fitted.raw_score(features.iloc[[i]])[0] for i in (0, 150, 299)])
    np.testing.assert_allclose(alone, batch[[0, 150, 299]], rtol=1e-5)


def test_an_operation_that_never_followed_scores_higher_and_is_explained(frame, fitted):
    _, features = frame
    row = features.iloc[[200]].copy()
    planted = row.copy()
    rare = int(features["seq_op"].value_counts().idxmin())  # the rarest operation code in the data
    planted["seq_op"] = rare
    assert fitted.raw_score(planted)[0] > fitted.raw_score(row)[0]
    reasons = fitted.explain(planted)[0]
    assert reasons and reasons[0].feature == "seq_op_surprise"
    assert f"{op_name(rare)} after {op_name(row['seq_op_1'].iloc[0])}" in reasons[0].text
    assert "likely after the account's previous transactions" in reasons[0].text


def test_a_huge_amount_is_explained_by_the_amount_error(frame, fitted):
    _, features = frame
    planted = features.iloc[[300]].copy()
    planted["log_amount"] = planted["log_amount"] + np.log(500.0)
    reasons = {r.feature: r for r in fitted.explain(planted)[0]}
    amount = reasons["seq_amount_error"]
    assert amount.value > 50 and "× what the account's previous" in amount.text


def test_missing_sequence_columns_are_a_clear_error(frame, fitted):
    _, features = frame
    with pytest.raises(ValueError, match="lacks columns"):
        fitted.score(features[list(DETECTOR_COLUMNS)])
    with pytest.raises(ValueError, match="sequence columns"):
        LstmSequenceDetector(feature_columns=DETECTOR_COLUMNS)


def test_artifact_round_trip_keeps_scores_and_is_refused_by_the_stream_scorer(frame, fitted, tmp_path):
    _, features = frame
    save_model(fitted, tmp_path / "m")
    loaded, meta = load_model(tmp_path / "m", allow_sequence=True)
    assert meta["detector"] == "lstm" and loaded.model_ is None  # rebuilt from weights on first use
    np.testing.assert_allclose(loaded.score(features.iloc[:200]), fitted.score(features.iloc[:200]), atol=1e-6)
    with pytest.raises(ModelArtifactError, match="other features"):
        load_model(tmp_path / "m")  # the streaming scorer has no sequence columns


def test_the_ensemble_takes_the_lstm_as_a_member(frame, fitted):
    _, features = frame
    ensemble = make_detector("ensemble", members=[make_detector("isolation_forest", n_estimators=30), fitted])
    ensemble.fit(features.iloc[:3000])
    assert ensemble.feature_columns == (*DETECTOR_COLUMNS, *SEQUENCE_COLUMNS)
    scores = ensemble.score(features.iloc[3000:3400])
    assert ((scores >= 0) & (scores <= 1)).all()
    reasons = ensemble.explain(features.iloc[[int(np.argmax(scores)) + 3000]], top_k=6)[0]
    assert reasons


def test_columns_are_read_by_name_whatever_their_order(frame, fitted):
    _, features = frame
    reordered = features[list(reversed(features.columns))]
    other = make_detector("lstm", feature_columns=None, **TINY).fit(reordered)
    np.testing.assert_allclose(other.score(reordered.iloc[:300]), fitted.score(features.iloc[:300]), atol=1e-6)


@pytest.mark.parametrize("units", [8, 13])  # 13: the op layer's bias has the context's shape too
def test_the_numpy_forward_pass_computes_the_keras_network(frame, fitted, units):
    """Scoring runs the network in numpy (no keras/torch where the model is served): it must be
    the Keras model's output, on trained weights and on fresh random ones, for ordinary rows and
    for extreme inputs that saturate the gates."""
    _, features = frame
    detector = fitted if units == 8 else make_detector("lstm", **{**TINY, "units": units, "epochs": 1})
    if units != 8:
        detector.fit(features.iloc[:1500])
        detector.weights_ = [np.random.default_rng(1).normal(0, 1.5, w.shape).astype(np.float32)
                             for w in detector.weights_]  # fmt: skip
        detector.model_ = None
    x = detector.matrix(features.iloc[:400])
    inputs = detector._inputs(x)
    extreme = {k: v.copy() for k, v in inputs.items()}
    extreme["history"][..., -2:] *= 40.0  # amounts and gaps far outside training
    for given in (inputs, extreme):
        keras_out = detector._network().predict_on_batch(given)
        numpy_out = detector._forward(given)
        for name in ("op", "purpose", "amount"):
            np.testing.assert_allclose(numpy_out[name], np.asarray(keras_out[name]), rtol=1e-4, atol=2e-5)


def test_a_saved_lstm_scores_and_explains_without_keras_or_torch(frame, fitted, tmp_path, monkeypatch):
    """The stream scorer's image has neither keras nor torch: a loaded artifact scores and
    explains as the fitted model does, with both imports made to fail."""
    import sys

    _, features = frame
    expected, reasons = fitted.score(features.iloc[:300]), fitted.explain(features.iloc[:5])
    save_model(fitted, tmp_path / "m")
    for name in ("keras", "torch"):
        monkeypatch.setitem(sys.modules, name, None)  # `import keras` / `import torch` now raise ImportError
    loaded, _ = load_model(tmp_path / "m", allow_sequence=True)
    np.testing.assert_allclose(loaded.score(features.iloc[:300]), expected, atol=1e-6)
    assert loaded.explain(features.iloc[:5]) == reasons
    with pytest.raises(ImportError):
        loaded._network()  # the Keras model itself does need them
