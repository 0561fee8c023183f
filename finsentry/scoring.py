"""The scoring core: features in, score, verdict, anomaly type and reasons out.

One path for every runtime: the local demo, ``finsentry score``, the streaming Lambda and
SageMaker Batch Transform all call ``score_transactions`` on a batch. Explanations (SHAP) are
computed only for the rows that raise an alert: they are the expensive part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from finsentry.anomalies import apply_rules, type_of_feature
from finsentry.explain import Reason, rule_reason
from finsentry.privacy import DEFAULT_MASK_KEY, mask_ids

# The scored row as Athena, Firehose's Parquet conversion and Tableau read it: column -> Hive type.
# One source for the Glue table, the Athena views and ``scored_frame`` (a test keeps them equal).
SCORED_COLUMNS: dict[str, str] = {
    "trans_id": "string",
    "account_id": "string",
    "client_ref": "string",  # HMAC pseudonym of the client id (finsentry.privacy)
    "ts": "timestamp",
    "amount": "double",
    "direction": "string",
    "operation": "string",
    "district_id": "int",
    "region": "string",
    "score": "double",  # [0, 1], higher = more anomalous
    "verdict": "string",  # "alert" | "normal"
    "anomaly_type": "string",  # catalog type of an alert, "" for normal rows
    "reasons": "string",  # top reasons in words, " ; "-separated
    "model_version": "string",
}


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
    explainer=None,
) -> ScoredBatch:
    """Score a batch; alert where the score exceeds ``budget_threshold``; explain the alerts.

    ``detector`` is any ``finsentry.detectors`` model; when it reports rule types (the
    ensemble does), a rule hit is always an alert and names its type. With ``detector=None``
    (no usable model) the batch is scored by the catalog's rules alone: 1.0 on a hit, else 0.
    ``explainer(detector, features, top_k=)`` replaces ``detector.explain`` for the reasons
    (the streaming scorer passes ``finsentry.stream.reasons.stream_explain``).
    """
    n = len(features)
    if detector is None or n == 0:
        return _rules_only(features, model_version)
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
        explained = (explainer(detector, features.iloc[idx], top_k=top_k) if explainer is not None
                     else detector.explain(features.iloc[idx], top_k=top_k))  # fmt: skip
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


def _rules_only(features: pd.DataFrame, model_version: str) -> ScoredBatch:
    rule_types = np.asarray(apply_rules(features), dtype=object)
    alerts = rule_types != ""
    reasons = [[rule_reason(t, features.iloc[i])] if t else [] for i, t in enumerate(rule_types)]
    return ScoredBatch(scores=alerts.astype(float), alerts=alerts, anomaly_types=rule_types.astype(str),
                       reasons=reasons, model_version=model_version, threshold=0.5)  # fmt: skip


def scored_frame(transactions: pd.DataFrame, batch: ScoredBatch, mask_key: bytes = DEFAULT_MASK_KEY) -> pd.DataFrame:
    """One row per scored transaction, as Athena and Tableau read it (client id masked with
    ``mask_key``, the deployment's HMAC key)."""
    frame = pd.DataFrame(
        {
            "trans_id": transactions["trans_id"].to_numpy(),
            "account_id": transactions["account_id"].to_numpy(),
            "client_ref": mask_ids(transactions["client_id"], key=mask_key).to_numpy(),
            "ts": transactions["ts"].to_numpy(),
            "amount": transactions["amount"].to_numpy(),
            "direction": transactions["direction"].to_numpy(),
            "operation": transactions["operation"].to_numpy(),
            "district_id": transactions["district_id"].to_numpy(),
            "region": transactions["region"].to_numpy(),
            "score": batch.scores,
            "verdict": np.where(batch.alerts, "alert", "normal"),
            "anomaly_type": batch.anomaly_types,
            "reasons": [" ; ".join(r.text for r in rs) for rs in batch.reasons],
            "model_version": batch.model_version,
        }
    )
    if "anomaly_type" in transactions.columns:  # labelled data: keep the truth for evaluation
        frame["true_anomaly_type"] = transactions["anomaly_type"].to_numpy()
    return frame

