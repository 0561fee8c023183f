"""LSTM sequence detector: how unexpected is this transaction after the account's previous ones?

Each row carries its account's ``SEQUENCE_WINDOW`` previous transactions as tokens
(``finsentry.features.SEQUENCE_COLUMNS``: operation+direction, purpose, log-amount, time gap),
so a row is self-contained: it scores the same alone, in a subset or in any mini-batch.

The model (Keras 3 on the PyTorch backend, CPU) reads the previous transactions, oldest first,
through a small LSTM, and, knowing only when the new transaction comes (hours since the
previous one, hour of day), predicts:

* the operation+direction of the new transaction (softmax over the 13 codes, 0 = unknown);
* its purpose, given the operation (softmax over 11 codes);
* its log-amount, given operation and purpose (a regression; residuals are standardised by
  their spread on the training rows).

The raw score is the surprise of the actual transaction in nats, a joint negative
log-likelihood up to a constant: ``-log p(operation) - log p(purpose | operation) + z^2 / 2``
with ``z`` the standardised amount error. Its three parts are also the reasons in words
(``explain``), e.g. "remittance_other_bank debit after cash_credit credit: 0.4 % expected".

The Keras model is not pickled: artifacts hold its weights as numpy arrays. Training runs the
network in Keras; scoring runs its forward pass in numpy from those weights (``_forward``, the
LSTM's gate equations and the dense layers as Keras defines them, float32 like the network), so a
fitted LSTM scores where torch and keras are absent: the stream scorer's arm64 image carries
neither (PyPI's aarch64 wheel of the pinned torch is the CUDA build). ``tests/detectors/test_sequence.py`` holds
the forward pass equal to Keras' ``predict_on_batch`` (float32 rounding: at most 2.4e-7 apart on
the tests' bank). It is also faster: 1.9 ms of CPU per 500 rows against Keras' 9.6 ms (units 24,
one BLAS/torch thread, median of 5 interleaved rounds of 20 calls; 2026-12-02).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from finsentry.detectors.base import Detector, register
from finsentry.features import (
    DETECTOR_COLUMNS,
    N_OPS,
    N_PURPOSES,
    SEQUENCE_COLUMNS,
    SEQUENCE_STEP_COLUMNS,
    SEQUENCE_WINDOW,
    op_name,
    purpose_name,
)

if TYPE_CHECKING:
    from finsentry.explain import Reason

os.environ.setdefault("KERAS_BACKEND", "torch")

N_OP_CLASSES = N_OPS + 1  # 0 = unknown / no transaction
N_PURPOSE_CLASSES = N_PURPOSES + 1
STEP_DIM = N_OP_CLASSES + N_PURPOSE_CLASSES + 2  # one-hot op, one-hot purpose, amount, gap
COND_DIM = 3  # log gap before the new transaction, sin and cos of its hour
AMOUNT_SCALE = 10.0  # log1p(amount) / 10 keeps the network's inputs around 1
GAP_SCALE = 5.0  # log1p(hours) / 5
SCORE_CHUNK = 20_000  # rows per forward pass when scoring (memory: chunk x window x STEP_DIM)
REASON_MIN_NATS = 1.0  # a part of the surprise below this is no reason (p > 37 %)
LSTM_COLUMNS: tuple[str, ...] = (*DETECTOR_COLUMNS, *SEQUENCE_COLUMNS)
# The LSTM's weight in an ensemble beside Isolation Forest and LOF (1 each). Chosen on the demo's
# VALIDATION period (synthetic bank, 1 % budget): IF+LOF recall 79.2 %; with the LSTM at weight 1
# 80.8 %, 0.5 83.0 %, 0.25 83.8 % (but unusual_sequence back to IF+LOF's 57.7 %); 0.5 keeps
# most of the LSTM's gain on unusual sequences (65.4 %) and on unusual hours.
ENSEMBLE_WEIGHT = 0.5


def _keras():
    """Keras, imported on first use (torch is heavy); the backend is fixed before the import."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import torch

    # One intra-op thread by default (FINSENTRY_TORCH_THREADS to change): the network is small,
    # so threads buy little, and on a busy 2-core machine oversubscribed OpenMP threads made a
    # fit 5x slower (28 s with 1 thread against 135 s with 2, measured on the shared CI box).
    threads = int(os.environ.get("FINSENTRY_TORCH_THREADS", "1"))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"finsentry's LSTM needs KERAS_BACKEND=torch, keras runs on {keras.backend.backend()}")
    return keras


def _layers(weights: list[np.ndarray], units: int) -> dict[str, tuple[np.ndarray, ...]]:
    """The network's weights by layer, as float32. Keras lists them layer by layer in an order of
    its own (the LSTM's kernel, recurrent kernel and bias, then each dense layer's kernel and
    bias); the layers are told apart by their kernels' shapes, which ``_build`` makes distinct:
    context (units + 3 -> units), op (units -> 13), purpose (units + 13 -> 11), amount_hidden
    (units + 24 -> units), amount (units -> 1)."""
    w = [np.asarray(a, dtype=np.float32) for a in weights]
    shapes = {(units + COND_DIM, units): "context", (units, N_OP_CLASSES): "op",
              (units + N_OP_CLASSES, N_PURPOSE_CLASSES): "purpose",
              (units + N_OP_CLASSES + N_PURPOSE_CLASSES, units): "amount_hidden", (units, 1): "amount"}  # fmt: skip
    out: dict[str, tuple[np.ndarray, ...]] = {}
    k = 0
    while k < len(w):
        if w[k].shape == (STEP_DIM, 4 * units):
            out["lstm"], k = (w[k], w[k + 1], w[k + 2]), k + 3
        else:
            out[shapes[w[k].shape]], k = (w[k], w[k + 1]), k + 2
    if len(out) != 6:
        raise ValueError(f"lstm: the weights hold layers {sorted(out)}, not the network's six")
    return out


def _dense(layer: tuple[np.ndarray, ...], x: np.ndarray, relu: bool = False) -> np.ndarray:
    y = x.astype(np.float32, copy=False) @ layer[0] + layer[1]
    return np.maximum(y, 0.0) if relu else y


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + e^-z), without overflow for very negative z


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _one_hot(codes: np.ndarray, n: int) -> np.ndarray:
    codes = np.clip(np.nan_to_num(codes).astype(np.int64), 0, n - 1)
    return np.eye(n, dtype=np.float32)[codes]


@register("lstm")
class LstmSequenceDetector(Detector):
    """Surprise of the next transaction given the account's previous ones (nats, higher = rarer).

    Parameters: ``units`` LSTM cells; ``epochs`` passes over at most ``max_train_rows``
    training rows (drawn without replacement, seeded); ``batch_size``; ``learning_rate``
    (Adam); ``random_state`` seeds numpy, Python and torch (``keras.utils.set_random_seed``).
    The defaults train on 40k rows in well under a minute on 2 CPU cores.
    """

    def __init__(self, units: int = 24, epochs: int = 3, batch_size: int = 256, max_train_rows: int = 40_000,
                 learning_rate: float = 3e-3, random_state: int = 0,
                 feature_columns: tuple[str, ...] | None = LSTM_COLUMNS) -> None:  # fmt: skip
        missing = sorted(set(SEQUENCE_COLUMNS) - set(feature_columns or SEQUENCE_COLUMNS))
        if missing:
            raise ValueError(f"lstm: the feature columns must include the sequence columns, missing {missing[:3]}...")
        super().__init__(feature_columns)
        self.params: dict[str, Any] = {"units": units, "epochs": epochs, "batch_size": batch_size,
                                       "max_train_rows": max_train_rows, "learning_rate": learning_rate,
                                       "random_state": random_state}  # fmt: skip
        self.weights_: list[np.ndarray] | None = None
        self.amount_sigma_: float = 1.0
        self.model_ = None

    # -- inputs ---------------------------------------------------------------------------
    def _col(self, x: np.ndarray, name: str) -> np.ndarray:
        return x[:, self.feature_columns.index(name)]

    def _inputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The network's four inputs from a clean matrix (history oldest first)."""
        width = len(SEQUENCE_STEP_COLUMNS)
        at = [self.feature_columns.index(f"{c}_{k}")
              for k in range(1, SEQUENCE_WINDOW + 1) for c in SEQUENCE_STEP_COLUMNS]  # fmt: skip
        steps = x[:, at].reshape(len(x), SEQUENCE_WINDOW, width)[:, ::-1]  # oldest first
        history = np.concatenate(
            [_one_hot(steps[..., 0], N_OP_CLASSES), _one_hot(steps[..., 1], N_PURPOSE_CLASSES),
             (steps[..., 2:3] / AMOUNT_SCALE).astype(np.float32), (steps[..., 3:4] / GAP_SCALE).astype(np.float32)],
            axis=-1,
        )  # fmt: skip
        angle = 2 * np.pi * self._col(x, "seq_hour") / 24.0
        cond = np.column_stack([self._col(x, "log_gap_hours") / GAP_SCALE, np.sin(angle), np.cos(angle)])
        return {
            "history": history,
            "when": cond.astype(np.float32),
            "op_now": _one_hot(self._col(x, "seq_op"), N_OP_CLASSES),
            "purpose_now": _one_hot(self._col(x, "seq_purpose"), N_PURPOSE_CLASSES),
        }

    def _targets(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "op": np.clip(self._col(x, "seq_op"), 0, N_OP_CLASSES - 1).astype(np.int64),
            "purpose": np.clip(self._col(x, "seq_purpose"), 0, N_PURPOSE_CLASSES - 1).astype(np.int64),
            "amount": (self._col(x, "log_amount") / AMOUNT_SCALE).astype(np.float32)[:, None],
        }

    # -- the network ------------------------------------------------------------------------
    def _build(self):
        keras = _keras()
        layers = keras.layers
        units = int(self.params["units"])
        history = keras.Input((SEQUENCE_WINDOW, STEP_DIM), name="history")
        when = keras.Input((COND_DIM,), name="when")
        op_now = keras.Input((N_OP_CLASSES,), name="op_now")
        purpose_now = keras.Input((N_PURPOSE_CLASSES,), name="purpose_now")
        state = layers.LSTM(units, name="lstm")(history)
        hidden = layers.Dense(units, activation="relu", name="context")(layers.Concatenate()([state, when]))
        op = layers.Dense(N_OP_CLASSES, activation="softmax", name="op")(hidden)
        purpose = layers.Dense(N_PURPOSE_CLASSES, activation="softmax", name="purpose")(
            layers.Concatenate()([hidden, op_now]))  # fmt: skip
        amount_hidden = layers.Dense(units, activation="relu", name="amount_hidden")(
            layers.Concatenate()([hidden, op_now, purpose_now]))  # fmt: skip
        amount = layers.Dense(1, name="amount")(amount_hidden)
        model = keras.Model([history, when, op_now, purpose_now], {"op": op, "purpose": purpose, "amount": amount})
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=float(self.params["learning_rate"])),
            loss={"op": "sparse_categorical_crossentropy", "purpose": "sparse_categorical_crossentropy",
                  "amount": "mean_squared_error"},
        )  # fmt: skip
        return model

    def _forward(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The network's outputs from its four inputs, in numpy from the kept weights: what
        ``_build``'s Keras model computes (``predict_on_batch``), without keras or torch."""
        if self.weights_ is None:
            raise RuntimeError("lstm is not fitted")
        layers = _layers(self.weights_, int(self.params["units"]))
        kernel, recurrent, bias = layers["lstm"]
        history = inputs["history"].astype(np.float32, copy=False)
        units = recurrent.shape[0]
        h = np.zeros((len(history), units), dtype=np.float32)
        c = np.zeros_like(h)
        steps = history @ kernel + bias  # (rows, window, 4 units): the input part of every step at once
        for t in range(history.shape[1]):  # Keras' gate order: input, forget, cell, output
            z = steps[:, t] + h @ recurrent
            i, f = _sigmoid(z[:, :units]), _sigmoid(z[:, units:2 * units])
            c = f * c + i * np.tanh(z[:, 2 * units:3 * units])
            h = _sigmoid(z[:, 3 * units:]) * np.tanh(c)
        hidden = _dense(layers["context"], np.concatenate([h, inputs["when"]], axis=1), relu=True)
        op_now, purpose_now = inputs["op_now"], inputs["purpose_now"]
        return {
            "op": _softmax(_dense(layers["op"], hidden)),
            "purpose": _softmax(_dense(layers["purpose"], np.concatenate([hidden, op_now], axis=1))),
            "amount": _dense(layers["amount"], _dense(layers["amount_hidden"],
                                                      np.concatenate([hidden, op_now, purpose_now], axis=1),
                                                      relu=True)),
        }  # fmt: skip

    def _network(self):
        """The Keras model (training and the forward pass's reference), rebuilt from the kept
        weights after loading an artifact."""
        if self.model_ is None:
            if self.weights_ is None:
                raise RuntimeError("lstm is not fitted")
            _keras().utils.set_random_seed(int(self.params["random_state"]))
            self.model_ = self._build()
            self.model_.set_weights(self.weights_)
        return self.model_

    def _fit(self, x: np.ndarray) -> np.ndarray:
        keras = _keras()
        seed = int(self.params["random_state"])
        keras.utils.set_random_seed(seed)
        rng = np.random.default_rng(seed)
        rows = np.arange(len(x))
        if len(x) > self.params["max_train_rows"]:
            rows = np.sort(rng.choice(len(x), int(self.params["max_train_rows"]), replace=False))
        sample = x[rows]
        self.model_ = self._build()
        self.model_.fit(self._inputs(sample), self._targets(sample), epochs=int(self.params["epochs"]),
                        batch_size=int(self.params["batch_size"]), shuffle=True, verbose=0)  # fmt: skip
        self.weights_ = [np.asarray(w) for w in self.model_.get_weights()]
        residual = self._parts(sample, sigma=1.0)["amount_error"]
        self.amount_sigma_ = max(float(np.sqrt(np.mean(residual**2))), 1e-3)
        return None  # calibrate on every training row (the sample is only for the fit)

    # -- scores and their parts ----------------------------------------------------------
    def _parts(self, x: np.ndarray, sigma: float | None = None) -> dict[str, np.ndarray]:
        """Per row: the surprise of the operation and of the purpose (nats), the amount error
        (log units, actual - expected), its standardised square / 2, and the expected operation."""
        sigma = self.amount_sigma_ if sigma is None else sigma
        targets = self._targets(x) if len(x) else None
        out = {k: np.zeros(len(x)) for k in ("op_nats", "purpose_nats", "amount_error", "amount_nats", "expected_op")}
        for lo in range(0, len(x), SCORE_CHUNK):
            chunk = x[lo:lo + SCORE_CHUNK]
            pred = self._forward(self._inputs(chunk))
            sl = slice(lo, lo + len(chunk))
            op_p = np.asarray(pred["op"], dtype=np.float64)
            purpose_p = np.asarray(pred["purpose"], dtype=np.float64)
            op_t, purpose_t = targets["op"][sl], targets["purpose"][sl]
            idx = np.arange(len(chunk))
            out["op_nats"][sl] = -np.log(np.clip(op_p[idx, op_t], 1e-9, 1.0))
            out["purpose_nats"][sl] = -np.log(np.clip(purpose_p[idx, purpose_t], 1e-9, 1.0))
            error = (targets["amount"][sl, 0] - np.asarray(pred["amount"], dtype=np.float64)[:, 0]) * AMOUNT_SCALE
            out["amount_error"][sl] = error
            out["amount_nats"][sl] = 0.5 * (error / sigma) ** 2
            out["expected_op"][sl] = op_p.argmax(axis=1)
        return out

    def _raw(self, x: np.ndarray) -> np.ndarray:
        parts = self._parts(x)
        return parts["op_nats"] + parts["purpose_nats"] + parts["amount_nats"]

    # -- reasons ---------------------------------------------------------------------------
    def explain(self, features: pd.DataFrame | np.ndarray, top_k: int = 3) -> list[list[Reason]]:
        """Per row, the parts of its surprise above ``REASON_MIN_NATS``, largest first, in words.

        Features (``Reason.feature``): ``seq_op_surprise`` (value: probability the model gave
        the operation), ``seq_purpose_surprise`` (probability of the purpose given the
        operation), ``seq_amount_error`` (actual / expected amount). The words come from
        ``finsentry.explain.PHRASES``, prefixed with the operations involved.
        """
        from finsentry.explain import Reason, phrase

        x = self.matrix(features)
        if len(x) == 0:
            return []
        parts = self._parts(x)
        out: list[list[Reason]] = []
        for i in range(len(x)):
            now, before = op_name(self._col(x, "seq_op")[i]), op_name(self._col(x, "seq_op_1")[i])
            candidates = [
                ("seq_op_surprise", math.exp(-parts["op_nats"][i]), parts["op_nats"][i],
                 f"{now} after {before}" + (f" (expected {op_name(parts['expected_op'][i])})"
                                            if parts["expected_op"][i] != self._col(x, "seq_op")[i] else "")),
                ("seq_purpose_surprise", math.exp(-parts["purpose_nats"][i]), parts["purpose_nats"][i],
                 f"purpose {purpose_name(self._col(x, 'seq_purpose')[i])} for {now}"),
                ("seq_amount_error", math.exp(parts["amount_error"][i]), parts["amount_nats"][i], f"{now}"),
            ]  # fmt: skip
            row = [Reason(name, float(value), float(nats), f"{prefix}: {phrase(name, value)}")
                   for name, value, nats, prefix in candidates if nats >= REASON_MIN_NATS]  # fmt: skip
            row.sort(key=lambda r: -r.contribution)
            out.append(row[:top_k])
        return out

    # -- persistence: weights, never the Keras object -------------------------------------
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["model_"] = None
        return state
