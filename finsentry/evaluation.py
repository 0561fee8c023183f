"""Evaluation: time split without leakage, metrics at an alert budget, model selection.

The alert budget is the share of transactions the team can review (1 % by default): the alert
threshold is set so that at most that share of rows scores above it, and recall per anomaly
type is read at that threshold. ``select_model`` is the promotion policy the training state
machine applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split


@dataclass
class Split:
    """Boolean masks over the rows; every train ts < every validation ts < every test ts."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    validation_start: pd.Timestamp
    test_start: pd.Timestamp


def time_split(
    transactions: pd.DataFrame,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    ts_col: str = "ts",
    cuts: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> Split:
    """Split by time at the given cut points, or at the cut points that give ``fractions``.

    Cut points are taken on calendar days, so rows of one day never straddle two parts.
    """
    ts = pd.to_datetime(transactions[ts_col])
    if cuts is None:
        if abs(sum(fractions) - 1.0) > 1e-9:
            raise ValueError(f"fractions must sum to 1, got {fractions}")
        days = ts.dt.normalize()
        q = np.cumsum(fractions)[:2]
        cut_val, cut_test = (pd.Timestamp(days.quantile(f)).normalize() for f in q)
        if cut_test <= cut_val:
            cut_test = cut_val + pd.Timedelta(days=1)
    else:
        cut_val, cut_test = (pd.Timestamp(c) for c in cuts)
    t = ts.to_numpy()
    train = t < np.datetime64(cut_val)
    test = t >= np.datetime64(cut_test)
    return Split(train=train, validation=~train & ~test, test=test,
                 validation_start=cut_val, test_start=cut_test)  # fmt: skip


def threshold_for_budget(scores: np.ndarray, budget: float) -> float:
    """The lowest threshold such that at most ``budget`` of rows score strictly above it.

    Ties at the threshold are all left out, so the budget is never exceeded.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.size == 0:
        return 1.0
    allowed = int(np.floor(budget * scores.size))
    ordered = np.sort(scores)[::-1]
    if allowed >= scores.size:
        return float(ordered[-1]) - 1e-12
    return float(ordered[allowed])


def recall_by_type(scores: np.ndarray, anomaly_type: Sequence[str], threshold: float) -> dict[str, float]:
    """Share of each anomaly type's rows scoring above ``threshold``; '' is normal."""
    types = np.asarray(anomaly_type, dtype=object).astype(str)
    hit = np.asarray(scores) > threshold
    out: dict[str, float] = {}
    for t in sorted(set(types) - {""}):
        mask = types == t
        out[t] = float(hit[mask].mean())
    return out


def precision_at_k(scores: np.ndarray, is_anomaly: np.ndarray, k: int) -> float:
    if k <= 0 or len(scores) == 0:
        return 0.0
    top = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return float(np.asarray(is_anomaly)[top].mean())


def auc_roc(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    y = np.asarray(is_anomaly).astype(int)
    return float(roc_auc_score(y, scores)) if 0 < y.sum() < y.size else float("nan")


def auc_pr(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    y = np.asarray(is_anomaly).astype(int)
    return float(average_precision_score(y, scores)) if y.sum() > 0 else float("nan")


@dataclass
class ModelReport:
    """A detector's figures on one labelled period."""

    name: str
    budget: float
    threshold: float
    alerts: int
    precision: float
    recall: float
    recall_by_type: dict[str, float] = field(default_factory=dict)
    auc_roc: float = float("nan")
    auc_pr: float = float("nan")
    precision_at_k: float = float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_scores(
    scores: np.ndarray,
    is_anomaly: np.ndarray,
    anomaly_type: Sequence[str],
    budget: float = 0.01,
    name: str = "model",
) -> ModelReport:
    """All figures of one detector on one period, alerts at the ``budget`` threshold."""
    scores = np.asarray(scores, dtype=float)
    y = np.asarray(is_anomaly).astype(bool)
    threshold = threshold_for_budget(scores, budget)
    alert = scores > threshold
    k = max(int(y.sum()), 1)
    return ModelReport(
        name=name,
        budget=budget,
        threshold=threshold,
        alerts=int(alert.sum()),
        precision=float(y[alert].mean()) if alert.any() else 0.0,
        recall=float(alert[y].mean()) if y.any() else float("nan"),
        recall_by_type=recall_by_type(scores, anomaly_type, threshold),
        auc_roc=auc_roc(scores, y),
        auc_pr=auc_pr(scores, y),
        precision_at_k=precision_at_k(scores, y, k),
    )


@dataclass
class Selection:
    best: str
    promoted: bool
    reason: str
    table: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(v: float | None) -> float:
    return -np.inf if v is None or np.isnan(v) else float(v)


def _rank_key(r: ModelReport, metric: str) -> tuple:
    return (-_finite(getattr(r, metric)), -_finite(r.auc_pr), r.name)


def select_model(
    candidates: list[ModelReport],
    champion: ModelReport | None,
    metric: str = "recall",
    margin: float = 0.01,
) -> Selection:
    """Best candidate by ``metric`` (default: recall at the alert budget, the operating point
    the team works at), ties broken by AUC-PR then name; promote it if there is no champion or
    it beats the champion's ``metric`` by more than ``margin`` (absolute)."""
    if not candidates:
        raise ValueError("select_model needs at least one candidate")
    ranked = sorted(candidates, key=lambda r: _rank_key(r, metric))
    best = ranked[0]
    table = [{"name": r.name, "recall": r.recall, "precision": r.precision, "auc_pr": r.auc_pr,
              "role": "candidate"} for r in ranked]  # fmt: skip
    b = getattr(best, metric)
    if champion is None:
        return Selection(best.name, True, f"{best.name} has the best {metric} ({b:.4f}); "
                         "no champion in production", table)  # fmt: skip
    c = getattr(champion, metric)
    table.append({"name": champion.name, "recall": champion.recall, "precision": champion.precision,
                  "auc_pr": champion.auc_pr, "role": "champion"})  # fmt: skip
    if b > c + margin:
        return Selection(best.name, True, f"{best.name} {metric} {b:.4f} beats champion "
                         f"{champion.name} {c:.4f} by more than {margin}", table)  # fmt: skip
    return Selection(champion.name, False, f"champion {champion.name} kept: best challenger "
                     f"{best.name} {metric} {b:.4f} vs {c:.4f} (margin {margin})", table)  # fmt: skip


def adbench_protocol(
    X: np.ndarray,
    y: np.ndarray,
    factories: dict[str, Callable[[int], object]] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    test_size: float = 0.3,
) -> dict[str, dict[str, float]]:
    """ADBench's unsupervised protocol: stratified 70/30 split per seed, fit on the train part
    without labels, AUC-ROC and AUC-PR (in %) on the test part, mean over seeds."""
    from finsentry.detectors import make_detector

    if factories is None:
        factories = {
            name: (lambda seed, n=name: make_detector(n, feature_columns=None, random_state=seed))
            for name in ("isolation_forest", "lof")
        }
    cols = [f"x{i}" for i in range(X.shape[1])]
    results: dict[str, dict[str, float]] = {}
    for name, factory in factories.items():
        rocs, prs = [], []
        for seed in seeds:
            xtr, xte, _, yte = train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
            model = factory(seed).fit(pd.DataFrame(xtr, columns=cols))
            s = model.score(pd.DataFrame(xte, columns=cols))
            rocs.append(100 * auc_roc(s, yte))
            prs.append(100 * auc_pr(s, yte))
        results[name] = {"auc_roc": round(float(np.mean(rocs)), 2), "auc_pr": round(float(np.mean(prs)), 2)}
    return results
