"""Detectors measured on a labelled table: ``finsentry evaluate --data ... [--mapping ...]``.

The protocol: features over the whole table (point-in-time, so a row sees only its past), a
time split (train on the earlier part, evaluate on the later part; rows between
``train_until`` and ``test_from`` are in neither, e.g. a label delay), every detector fitted on
the training rows WITHOUT labels, then recall at the alert budget, precision, AUC-PR, AUC-ROC
and recall per label type on the test rows (``finsentry.evaluation.evaluate_scores``), and the
promotion policy's pick (``select_model``). Labels are read here and nowhere in training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from finsentry.evaluation import ModelReport, Split, evaluate_scores, select_model, time_split
from finsentry.features import SCORING_COLUMNS, SEQUENCE_COLUMNS

DEFAULT_DETECTOR = "ensemble"


def _accepts(cls: Any, name: str) -> bool:
    params = inspect.signature(cls).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def reads_sequences(name: str) -> bool:
    """A detector whose default inputs are the sequence columns (the LSTM): it reads each account's
    previous transactions, which a plain (X, y) table does not have, and trains for minutes."""
    from finsentry.detectors import REGISTRY

    default = inspect.signature(REGISTRY[name]).parameters.get("feature_columns")
    columns = () if default is None or default.default is None else tuple(default.default)
    return bool((set(SEQUENCE_COLUMNS) - set(SCORING_COLUMNS)) & set(columns))


def detector_names(chosen: Sequence[str] | None, transactions: bool = True) -> list[str]:
    """The detectors to evaluate: the chosen ones (checked), or every registered detector that
    learns without labels and reads no sequences (not ``supervised``, not ``lstm``) plus the
    default one (``ensemble``). ``transactions=False`` (an (X, y) table, no accounts) refuses a
    detector that reads sequences; a detector that learns from verdicts is refused either way:
    evaluation compares detectors fitted without labels."""
    from finsentry.detectors import REGISTRY

    if chosen:
        unknown = [n for n in chosen if n not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown detector {', '.join(unknown)}; known: {', '.join(sorted(REGISTRY))}")
        labelled = [n for n in chosen if getattr(REGISTRY[n], "needs_labels", False)]
        if labelled:
            raise ValueError(f"{', '.join(labelled)} learns from analysts' verdicts (finsentry label, then "
                             "train with the verdicts); evaluate compares detectors fitted without labels")  # fmt: skip
        sequences = [n for n in chosen if not transactions and reads_sequences(n)]
        if sequences:
            raise ValueError(f"{', '.join(sequences)} reads each account's previous transactions, which an "
                             "(X, y) table does not have: evaluate it on a transaction table (--data)")  # fmt: skip
        return list(dict.fromkeys(chosen))
    names = [n for n in sorted(REGISTRY) if not reads_sequences(n) and not getattr(REGISTRY[n], "needs_labels", False)]
    return names if DEFAULT_DETECTOR in names else [*names, DEFAULT_DETECTOR]


def factory(name: str, feature_columns: Any = "default") -> Callable[[int], Any]:
    """``seed -> unfitted detector``; ``random_state`` and ``feature_columns`` are passed only
    to detectors whose constructor takes them (``feature_columns=None``: every column)."""
    from finsentry.detectors import REGISTRY, make_detector

    cls = REGISTRY[name]

    def build(seed: int) -> Any:
        params: dict[str, Any] = {}
        if feature_columns != "default" and _accepts(cls, "feature_columns"):
            params["feature_columns"] = feature_columns
        if _accepts(cls, "random_state"):
            params["random_state"] = seed
        return make_detector(name, **params)

    return build


def _date(text: str | None) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        return pd.Timestamp(text)
    except ValueError as err:
        raise ValueError(f"not a date: {text!r} (e.g. 2018-05-01 or 2018-05-01T12:00)") from err


def holdout_split(transactions: pd.DataFrame, train_until: str | None = None, test_from: str | None = None,
                  train_share: float = 0.7) -> Split:  # fmt: skip
    """Train = ts before ``train_until``; test = ts from ``test_from`` (default: ``train_until``);
    without dates, the earliest ``train_share`` of the rows (whole timestamps) trains. The
    validation part of the returned ``Split`` is the gap between the two, used by neither."""
    until, start = _date(train_until), _date(test_from)
    if until is None and start is not None:
        raise ValueError("--test-from needs --train-until")
    if until is None:
        split = time_split(transactions, fractions=(train_share, 0.0, 1.0 - train_share))
    else:
        split = time_split(transactions, cuts=(until, start if start is not None else until))
    if not split.train.any() or not split.test.any():
        raise ValueError(f"the time split leaves {int(split.train.sum()):,} rows to train on and "
                         f"{int(split.test.sum()):,} to test: choose other dates or shares")  # fmt: skip
    return split


def unfed_features(model: Any, features: pd.DataFrame) -> list[str]:
    """Feature columns the training table could not feed (entirely NaN, e.g. balances of a card
    table): as the detector recorded them at fit (``Detector.unfed_features_``: it leaves them
    out), else the columns of its inputs that are entirely NaN in ``features``."""
    recorded = list(getattr(model, "unfed_features_", None) or [])
    for member in getattr(model, "members", None) or []:  # an ensemble's members drop their own
        recorded += getattr(member, "unfed_features_", None) or []
    if recorded:
        return list(dict.fromkeys(recorded))
    return [c for c in model.feature_columns or () if c in features and features[c].isna().all()]


@dataclass
class TableEvaluation:
    """Per detector, its figures on the test period; the split; the promotion policy's pick."""

    reports: dict[str, ModelReport]
    split: Split
    train_rows: int
    test_rows: int
    selection: dict
    unfed: dict[str, list[str]]

    def to_dict(self) -> dict:
        return {"train": {"rows": self.train_rows, "before": str(self.split.validation_start)},
                "test": {"rows": self.test_rows, "from": str(self.split.test_start)},
                "results": {k: r.to_dict() for k, r in self.reports.items()},
                "selection": self.selection, "unfed_features": self.unfed}  # fmt: skip


def evaluate_on_table(features: pd.DataFrame, labels: pd.DataFrame, split: Split, names: Sequence[str],
                      budget: float = 0.01, seed: int = 0,
                      progress: Callable[[str], None] = lambda _m: None) -> TableEvaluation:  # fmt: skip
    """Fit each detector on ``features[split.train]`` (features only: ``labels`` is a separate
    frame, row for row), score ``features[split.test]``, and measure against the labels."""
    train, test = features[split.train], features[split.test]
    y = labels["is_anomaly"].to_numpy(dtype=bool)[split.test]
    kind = labels["anomaly_type"].to_numpy(dtype=object)[split.test]
    reports, unfed = {}, {}
    for name in names:
        progress(f"training {name} on {len(train):,} transactions")
        model = factory(name)(seed).fit(train)
        unfed[name] = unfed_features(model, train)
        reports[name] = evaluate_scores(np.asarray(model.score(test)), y, kind, budget=budget, name=name)
    selection = select_model(list(reports.values()), champion=None).to_dict()
    return TableEvaluation(reports, split, len(train), len(test), selection, unfed)
