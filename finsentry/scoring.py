"""The scoring core: features in, score, verdict, anomaly type and reasons out.

One path for every runtime: the local demo, ``finsentry score``, the streaming Lambda and
SageMaker Batch Transform all call ``score_transactions`` on a batch. Two ways to pick alerts:

* **a budget** (batch runs that see every row: ``finsentry score``): exactly
  ``floor(budget * n)`` rows alert, the highest scores, ties split by a stable hash of each
  row's key (``finsentry.evaluation.alerts_for_budget``). A rule hit scores 1.0 and ranks
  first, but rule hits alert only within the budget: if they outnumber it, the tie-break picks
  which of them alert, and ``ScoredBatch.rule_hits`` tells how many fired.
* **a fixed threshold** (the stream and Batch Transform, which see a few hundred rows at a
  time): ``score > threshold``, the threshold stored with the model (``threshold_for_budget`` of
  its validation scores, so at most the budget on data like the validation period's; a tie is
  never split). A rule hit always alerts there: no batch budget exists to hold it to, and a rule
  firing on a large share of a bank's normal data is suspended at training time.

Explanations: SHAP (``finsentry.explain``) is the expensive part (up to 2.5 CPU s per row), so
only the ``explain_top`` highest-ranked alerts get SHAP reasons; every other alert gets reasons
in words from ``finsentry.explain.fast_explain`` (milliseconds per row). Normal rows get none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finsentry.anomalies import apply_rules, type_of_feature
from finsentry.drift import PSI_DRIFTED, Bins, DriftMeasurement, DriftReference, measure_drift
from finsentry.evaluation import alert_order, alerts_for_budget
from finsentry.explain import Reason, fast_explain, rule_reason
from finsentry.privacy import DEFAULT_MASK_KEY, mask_ids

EXPLAIN_TOP = 10  # alerts explained with SHAP per batch by default (the rest: fast_explain)
SCORE_CHUNK = 10_000  # rows scored per detector call (a progress step; scores are per row)
SHAP_CHUNK = 5  # alerts per SHAP call (a progress step)
TIED_SHARE_WARN = 0.5  # warn when more than this share of rows share their score with another row
DRIFT_TOP = 5  # drifting features named in a warning

Progress = Callable[[str, int, int], None]  # (stage, rows done, rows in the stage)

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
    alerts: np.ndarray  # bool: within the budget (budget mode) or above the threshold
    anomaly_types: np.ndarray  # str: rule type, else the type suggested by the top reason
    reasons: list[list[Reason]]  # top reasons, empty for rows that raised no alert
    model_version: str
    threshold: float  # threshold mode: the threshold; budget mode: the lowest alerting score (NaN: none)
    budget: float | None = None  # the budget of a budget-mode batch, else None
    explained: int = 0  # alerts whose reasons come from SHAP (the others: fast_explain)
    rule_hits: int = 0  # rows on which a rule fired (alerting or not)


def score_transactions(
    detector,
    features: pd.DataFrame,
    *,
    model_version: str,
    budget_threshold: float | None = None,
    budget: float | None = None,
    keys: Sequence[Any] | np.ndarray | pd.Series | None = None,
    top_k: int = 3,
    explain_top: int = EXPLAIN_TOP,
    progress: Progress | None = None,
) -> ScoredBatch:
    """Score a batch; pick its alerts by ``budget`` or ``budget_threshold``; explain the alerts.

    Give exactly one of ``budget`` (a share in [0, 1]: exactly ``floor(budget * n)`` alerts,
    ties split by the hash of ``keys``, one per row, e.g. ``trans_id``; position when None) or
    ``budget_threshold`` (alerts are ``score > threshold``, and every rule hit): see the module
    docstring. ``detector`` is any ``finsentry.detectors`` model; when it reports rule types
    (the ensemble does), a rule hit's score is raised by the rule's evidence (``EnsembleDetector``)
    and names its type. With ``detector=None`` (no
    usable model) the batch is scored by the catalog's rules alone: 1.0 on a hit, else 0, and
    only hits alert. The ``explain_top`` first alerts in ranking order (score, then tie-break)
    get SHAP reasons (``detector.explain``), the others ``fast_explain``'s; 0 = no SHAP at all.
    ``progress(stage, done, total)``, when given, is called as rows are scored ("scoring") and
    alerts explained ("explaining"); results do not depend on it.
    """
    if (budget is None) == (budget_threshold is None):
        raise ValueError("score_transactions needs exactly one of budget and budget_threshold")
    if explain_top < 0:
        raise ValueError(f"explain_top must be >= 0, got {explain_top}")
    n = len(features)
    if detector is None or n == 0:
        return _rules_only(features, model_version, budget, budget_threshold, keys)
    scores, rule_types = _score(detector, features, progress)
    hits = rule_types != ""
    alerts = alerts_for_budget(scores, budget, keys) if budget is not None else (scores > budget_threshold) | hits
    ranked = alert_order(scores, keys)
    ranked = ranked[alerts[ranked]]
    reasons = _explain(detector, features, ranked, top_k, explain_top, progress)
    types = rule_types.copy()
    for row in ranked:
        if not types[row] and reasons[row]:
            types[row] = type_of_feature(reasons[row][0].feature)
    types[~alerts] = ""
    return ScoredBatch(
        scores=scores,
        alerts=alerts,
        anomaly_types=types.astype(str),
        reasons=reasons,
        model_version=model_version,
        threshold=_threshold(scores, alerts, budget, budget_threshold),
        budget=budget,
        explained=min(explain_top, len(ranked)),
        rule_hits=int(hits.sum()),
    )


def _score(detector, features: pd.DataFrame, progress: Progress | None) -> tuple[np.ndarray, np.ndarray]:
    """Scores and rule types, ``SCORE_CHUNK`` rows at a time (every detector scores row by row)."""
    n = len(features)
    scores, types = np.empty(n, dtype=float), np.full(n, "", dtype=object)
    for start in range(0, n, SCORE_CHUNK):
        part = features.iloc[start : start + SCORE_CHUNK]
        if hasattr(detector, "score_with_types"):
            s, t = detector.score_with_types(part)
            types[start : start + len(part)] = np.asarray(t, dtype=object)
        else:
            s = detector.score(part)
        scores[start : start + len(part)] = np.asarray(s, dtype=float)
        if progress is not None:
            progress("scoring", start + len(part), n)
    return scores, types


def _explain(detector, features: pd.DataFrame, ranked: np.ndarray, top_k: int, explain_top: int,
             progress: Progress | None) -> list[list[Reason]]:  # fmt: skip
    """Reasons per row: SHAP for the first ``explain_top`` of ``ranked``, the fast path for the rest."""
    reasons: list[list[Reason]] = [[] for _ in range(len(features))]
    total = len(ranked)
    shap_rows, fast_rows = ranked[:explain_top], ranked[explain_top:]
    if fast_rows.size:
        for row, rs in zip(fast_rows, fast_explain(detector, features.iloc[fast_rows], top_k=top_k), strict=True):
            reasons[row] = rs
    done = len(fast_rows)
    if progress is not None and total:
        progress("explaining", done, total)
    for start in range(0, len(shap_rows), SHAP_CHUNK):
        rows = shap_rows[start : start + SHAP_CHUNK]
        for row, rs in zip(rows, detector.explain(features.iloc[rows], top_k=top_k), strict=True):
            reasons[row] = rs
        done += len(rows)
        if progress is not None:
            progress("explaining", done, total)
    return reasons


def _threshold(scores: np.ndarray, alerts: np.ndarray, budget: float | None, threshold: float | None) -> float:
    if budget is None:
        return float(threshold)
    return float(scores[alerts].min()) if alerts.any() else math.nan


def _rules_only(features: pd.DataFrame, model_version: str, budget: float | None, threshold: float | None,
                keys: Sequence[Any] | np.ndarray | pd.Series | None) -> ScoredBatch:  # fmt: skip
    rule_types = np.asarray(apply_rules(features), dtype=object)
    hits = rule_types != ""
    scores = hits.astype(float)
    alerts = hits & alerts_for_budget(scores, budget, keys) if budget is not None else hits
    rule_types[~alerts] = ""
    reasons = [[rule_reason(t, features.iloc[i])] if t else [] for i, t in enumerate(rule_types)]
    return ScoredBatch(scores=scores, alerts=alerts, anomaly_types=rule_types.astype(str), reasons=reasons,
                       model_version=model_version, threshold=0.5 if threshold is None else float(threshold),
                       budget=budget, rule_hits=int(hits.sum()))  # fmt: skip


# --- is the batch like the training data? ------------------------------------------------------


@dataclass
class ScoreChecks:
    """What a scored batch says about itself: drift against the model's training window and
    ties among its scores, with the warnings to show (empty when all is well)."""

    rows: int
    distinct_scores: int
    tied_share: float  # share of scored rows whose score another row has too
    drift: DriftMeasurement | None  # None: the model carries no drift reference
    drifting: list[tuple[str, float]]  # features with PSI above the limit, largest first
    warnings: list[str]

    def to_dict(self) -> dict:
        return {"rows": self.rows, "distinct_scores": self.distinct_scores,
                "tied_share": round(self.tied_share, 6),
                "drift": None if self.drift is None else self.drift.to_dict(),
                "drifting_features": {k: round(v, 6) for k, v in self.drifting},
                "warnings": list(self.warnings)}  # fmt: skip

    def summary(self, batch: ScoredBatch) -> dict:
        """The sidecar of a scored file (``summary_path``): counts, budget, reasons, checks."""
        return {"rows": int(len(batch.scores)), "alerts": int(batch.alerts.sum()), "budget": batch.budget,
                "threshold": None if not math.isfinite(batch.threshold) else batch.threshold,
                "explained_with_shap": batch.explained, "rule_hits": batch.rule_hits,
                "model_version": batch.model_version, **self.to_dict()}  # fmt: skip


def _noise(bins: Bins, rows: int) -> float:
    """The PSI a window of ``rows`` drawn from the reference itself shows on average."""
    return (len(bins.shares) - 1) / max(rows, 1)


def summary_path(out: Path | str) -> Path:
    """Where ``finsentry score`` writes the summary of a scored file: beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.summary.json")


def check_scores(batch: ScoredBatch, features: pd.DataFrame, reference: DriftReference | None = None,
                 psi_limit: float = PSI_DRIFTED) -> ScoreChecks:  # fmt: skip
    """Warn when a batch is far from what the model was trained on, or its scores barely rank.

    * Drift: the PSI of the score and of every feature against ``reference`` (the model's
      training bins, ``finsentry.drift``); above ``psi_limit`` (0.25, the drift alarm's line)
      the data is out of the training distribution and the scores mean less: the warning names
      the ``DRIFT_TOP`` features that moved most. A small batch's PSI is noisy even on training-
      like data (about ``(bins - 1) / rows``, see ``finsentry.drift``): that much is added to the
      limit, so 150 rows need a PSI above about 0.31 to warn, 50,000 rows above 0.25.
    * Ties: when more than ``TIED_SHARE_WARN`` of the rows share their score with another row,
      the budget is filled by the tie-break rather than by the model's ranking.
    * Rules (budget mode): more rule hits than the budget has alerts.
    """
    scores = np.asarray(batch.scores, dtype=float)
    finite = scores[np.isfinite(scores)]
    _, counts = np.unique(finite, return_counts=True)
    tied = float(counts[counts > 1].sum() / finite.size) if finite.size else 0.0
    warnings = []
    if finite.size >= 20 and tied > TIED_SHARE_WARN:
        warnings.append(f"{100 * tied:.0f} % of rows share their score with another row ({counts.size:,} distinct "
                        f"scores in {finite.size:,} rows): alerts within a tie are picked by the tie-break, "
                        "not by the model")  # fmt: skip
    alerts = int(np.sum(batch.alerts))
    if batch.budget is not None and batch.rule_hits > alerts:
        warnings.append(f"rules fired on {batch.rule_hits:,} rows ({100 * batch.rule_hits / max(len(scores), 1):.1f} "
                        f"%), more than the budget's {alerts:,} alerts: {batch.rule_hits - alerts:,} rule hits "
                        "did not alert (a rule firing this often does not fit this data)")  # fmt: skip
    drift, drifting = None, []
    if reference is not None and len(features):
        drift = measure_drift(reference, features, scores)
        rows = len(features)
        drifting = [(k, v) for k, v in drift.top_features(len(drift.feature_psi))
                    if v > psi_limit + _noise(reference.features[k], rows)]  # fmt: skip
        if drift.score_psi > psi_limit + _noise(reference.score, rows) or drifting:
            named = ", ".join(f"{k} {v:.2f}" for k, v in drifting[:DRIFT_TOP]) or "none above the limit"
            warnings.append(f"data far from the model's training window: score PSI {drift.score_psi:.2f}, "
                            f"{len(drifting)} feature(s) drifted, PSI over {psi_limit:g} + sampling noise "
                            f"(top: {named}); scores and alerts may not mean what they did in training")  # fmt: skip
    return ScoreChecks(rows=int(len(scores)), distinct_scores=int(counts.size), tied_share=tied, drift=drift,
                       drifting=drifting, warnings=warnings)  # fmt: skip


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
