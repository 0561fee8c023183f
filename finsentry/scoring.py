"""The scoring core: features in, score, verdict, anomaly type and reasons out.

One path for every runtime: the local demo, ``finsentry score``, the streaming Lambda and
SageMaker Batch Transform all call ``score_transactions`` on a batch. Explanations (SHAP) are
computed only for the rows that raise an alert: they are the expensive part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from finsentry.anomalies import type_of_feature
from finsentry.explain import Reason


@dataclass
class ScoredBatch:
    """Per-row results of one batch, aligned with its input rows."""

    scores: np.ndarray  # [0, 1], higher = more anomalous
    alerts: np.ndarray  # bool: score above the alert threshold
    anomaly_types: np.ndarray  # str: rule type, else the type suggested by the top reason
    reasons: list[list[Reason]]  # top reasons, empty for rows that raised no alert
    model_version: str
    threshold: float


def score_transactions(
    detector,
    features: pd.DataFrame,
    *,
    budget_threshold: float,
    model_version: str,
    top_k: int = 3,
) -> ScoredBatch:
    """Score a batch; alert where the score exceeds ``budget_threshold``; explain the alerts.

    ``detector`` is any ``finsentry.detectors`` model; when it reports rule types (the
    ensemble does), a rule hit is always an alert and names its type.
    """
    n = len(features)
    if hasattr(detector, "score_with_types"):
        scores, rule_types = detector.score_with_types(features)
    else:
        scores, rule_types = detector.score(features), np.full(n, "", dtype=object)
    rule_types = np.asarray(rule_types, dtype=object)
    alerts = (scores > budget_threshold) | (rule_types != "")
    reasons: list[list[Reason]] = [[] for _ in range(n)]
    types = rule_types.copy()
    idx = np.flatnonzero(alerts)
    if idx.size:
        explained = detector.explain(features.iloc[idx], top_k=top_k)
        for row, rs in zip(idx, explained, strict=True):
            reasons[row] = rs
            if not types[row] and rs:
                types[row] = type_of_feature(rs[0].feature)
    types[~alerts] = ""
    return ScoredBatch(
        scores=np.asarray(scores, dtype=float),
        alerts=alerts,
        anomaly_types=types.astype(str),
        reasons=reasons,
        model_version=model_version,
        threshold=float(budget_threshold),
    )
