"""Evaluation: time split without leakage, metrics at an alert budget, model selection.

The alert budget is the share of transactions the team can review (1 % by default). A batch
run alerts EXACTLY ``floor(budget * n)`` of its ``n`` rows (``alerts_for_budget``): the highest
scores, ties split by a stable hash of each row's key (its ``trans_id``), so the same rows alert
whatever the row order. A fixed-threshold scorer (the stream, Batch Transform) cannot see a
whole batch: it alerts on ``score > threshold``, the threshold being ``threshold_for_budget`` of
the validation scores, which never exceeds the budget but splits no tie. Recall per anomaly type
is read on the alerts.
``select_model`` is the promotion policy the training state machine applies; it and every
report are pure and JSON-friendly (``to_dict``: NaN becomes None).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

ALL = "all"  # the key of the recall over every anomalous row in ``recall_by_type``


def _json(value: Any) -> Any:
    """Strict-JSON form of report values: NaN/inf become None, numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- time split ------------------------------------------------------------------------------


@dataclass
class Split:
    """Boolean masks over the rows; every train ts < every validation ts < every test ts.

    The cuts: train is ``ts < validation_start``, validation is ``validation_start <= ts <
    test_start``, test is ``ts >= test_start``. Rows without a timestamp are in no part.
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    validation_start: pd.Timestamp
    test_start: pd.Timestamp


def _cut(counts: pd.Series, share: float, step: Any) -> pd.Timestamp:
    """The unique timestamp before which the share of rows is closest to ``share`` (the
    earlier one on a tie); one ``step`` after the last timestamp means "every row"."""
    before = np.r_[0, np.cumsum(counts.to_numpy())]  # rows strictly before each candidate cut
    candidates = [*counts.index, counts.index[-1] + step]
    return pd.Timestamp(candidates[int(np.argmin(np.abs(before - share * before[-1])))])


def time_split(
    transactions: pd.DataFrame,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    ts_col: str = "ts",
    cuts: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    floor: str | None = None,
) -> Split:
    """Split rows in time into train, validation and test, in that order, without leakage.

    The cut points are chosen among the unique timestamps (floored to ``floor`` first, e.g.
    "D" for calendar days, if given), so that no timestamp (or day) straddles two parts, and
    the shares of rows come as close to ``fractions`` as the ties allow. With ``cuts``
    (validation start, test start) those are used instead, e.g. to split a frame again after
    anomalies were injected into it.
    """
    ts = pd.to_datetime(transactions[ts_col]).reset_index(drop=True)
    if cuts is None:
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
            raise ValueError(f"fractions must be three non-negative shares summing to 1, got {fractions}")
        keys = ts.dt.floor(floor) if floor else ts
        counts = keys.dropna().value_counts().sort_index()
        if counts.empty:
            none = np.zeros(len(ts), dtype=bool)
            return Split(none, none.copy(), none.copy(), pd.NaT, pd.NaT)
        step = pd.tseries.frequencies.to_offset(floor) if floor else pd.Timedelta(1, "ns")
        cut_val = _cut(counts, fractions[0], step)
        cut_test = max(_cut(counts, fractions[0] + fractions[1], step), cut_val)
    else:
        cut_val, cut_test = (pd.Timestamp(c) for c in cuts)
        if cut_test < cut_val:
            raise ValueError(f"test start {cut_test} is before validation start {cut_val}")
    return Split(
        train=(ts < cut_val).to_numpy(),
        validation=((ts >= cut_val) & (ts < cut_test)).to_numpy(),
        test=(ts >= cut_test).to_numpy(),
        validation_start=cut_val,
        test_start=cut_test,
    )


# --- thresholds and metrics --------------------------------------------------------------------


def _allowed(budget: float, n: int) -> int:
    """``floor(budget * n)``, robust to float error (0.29 * 100 is 28.999...)."""
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"budget must be a share in [0, 1], got {budget}")
    return int(math.floor(budget * n + 1e-9))


def threshold_for_budget(scores: np.ndarray, budget: float) -> float:
    """The alert threshold of a FIXED-threshold scorer; it alerts on ``score > threshold``.

    Definition: with ``n`` rows and ``allowed = floor(budget * n)``, the threshold is the
    smallest score value ``t`` such that at most ``allowed`` rows score strictly above it,
    i.e. the (allowed + 1)-th highest score. All rows tied at ``t`` are left out, so the
    budget is never exceeded; it is met exactly only when no tie straddles that rank. This is
    the threshold stored with a model for the stream and Batch Transform, which score a few
    hundred rows at a time and cannot rank a whole period; a batch run that sees all its rows
    picks exactly ``allowed`` alerts with ``alerts_for_budget`` instead. ``budget`` 1 alerts on
    every row (the threshold is just below the lowest score), 0 on none. NaN scores count as
    rows but never alert. No rows: 1.0.
    """
    scores = np.nan_to_num(np.asarray(scores, dtype=float).ravel(), nan=-np.inf)
    allowed = _allowed(budget, scores.size)
    if scores.size == 0:
        return 1.0
    ordered = np.sort(scores)[::-1]
    if allowed >= scores.size:
        return float(np.nextafter(ordered[-1], -np.inf))
    return float(ordered[allowed])


def tie_keys(keys: Sequence[Any] | np.ndarray | pd.Series | None, n: int) -> np.ndarray:
    """One unsigned 64-bit tie-break key per row: the BLAKE2b hash of ``str(key)`` (stable across
    runs, processes and row orders), or the row position when ``keys`` is None."""
    if keys is None:
        return np.arange(n, dtype=np.uint64)
    values = list(keys)
    if len(values) != n:
        raise ValueError(f"{len(values)} tie-break keys for {n} scores")
    return np.fromiter((int.from_bytes(hashlib.blake2b(str(k).encode(), digest_size=8).digest(), "big")
                        for k in values), dtype=np.uint64, count=n)  # fmt: skip


def alert_order(scores: np.ndarray, keys: Sequence[Any] | np.ndarray | pd.Series | None = None) -> np.ndarray:
    """Row positions from the first to alert to the last: score descending, ties by ascending
    ``tie_keys(keys)`` (then position, for equal keys); NaN scores last."""
    scores = np.asarray(scores, dtype=float).ravel()
    ranked = np.where(np.isnan(scores), np.inf, -scores)
    return np.lexsort((tie_keys(keys, scores.size), ranked))


def alerts_for_budget(scores: np.ndarray, budget: float,
                      keys: Sequence[Any] | np.ndarray | pd.Series | None = None) -> np.ndarray:  # fmt: skip
    """The alerts of a batch run: a boolean mask with exactly ``floor(budget * n)`` True rows.

    The rows are the first of ``alert_order``: the highest scores, ties split by the stable hash
    of ``keys`` (one per row, e.g. ``trans_id``), so the same rows alert under any permutation of
    the input when the keys are unique. Without keys ties go by position (order-dependent). NaN
    scores never alert: with fewer non-NaN rows than the budget allows, all of them alert. A
    rule hit scores 1.0, above every model score, so rule hits alert first; if they outnumber
    the budget, the tie-break picks which of them alert.
    """
    scores = np.asarray(scores, dtype=float).ravel()
    allowed = min(_allowed(budget, scores.size), int((~np.isnan(scores)).sum()))
    mask = np.zeros(scores.size, dtype=bool)
    mask[alert_order(scores, keys)[:allowed]] = True
    return mask


def _types(anomaly_type: Sequence[str] | np.ndarray) -> np.ndarray:
    """Anomaly types as strings; '', None and NaN all mean normal."""
    return pd.Series(np.asarray(anomaly_type, dtype=object)).fillna("").astype(str).to_numpy()


def recall_by_type(scores: np.ndarray, anomaly_type: Sequence[str], threshold: float) -> dict[str, float]:
    """Share of each anomaly type's rows scoring above ``threshold``, plus ``"all"`` over every
    anomalous row (NaN when there is none). '' (or None, NaN) is a normal row."""
    return _recall_of_alerts(np.asarray(scores, dtype=float) > threshold, anomaly_type)


def _recall_of_alerts(hit: np.ndarray, anomaly_type: Sequence[str]) -> dict[str, float]:
    types = _types(anomaly_type)
    out = {t: float(hit[types == t].mean()) for t in sorted(set(types) - {""})}
    anomalous = types != ""
    out[ALL] = float(hit[anomalous].mean()) if anomalous.any() else float("nan")
    return out


def precision_at_k(scores: np.ndarray, is_anomaly: np.ndarray, k: int) -> float:
    """Share of anomalies among the ``k`` highest scores (ties: earlier rows first); NaN if k < 1."""
    scores = np.asarray(scores, dtype=float)
    if k <= 0 or scores.size == 0:
        return float("nan")
    top = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[:k]
    return float(np.asarray(is_anomaly, dtype=bool)[top].mean())


def auc_roc(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Area under the ROC curve; NaN unless both classes are present."""
    y = np.asarray(is_anomaly).astype(int)
    return float(roc_auc_score(y, scores)) if 0 < y.sum() < y.size else float("nan")


def auc_pr(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Area under the precision-recall curve (sklearn's average precision); NaN unless both
    classes are present."""
    y = np.asarray(is_anomaly).astype(int)
    return float(average_precision_score(y, scores)) if 0 < y.sum() < y.size else float("nan")


@dataclass
class ModelReport:
    """A detector's figures on one labelled period; shares in [0, 1], NaN where undefined."""

    name: str
    threshold: float
    alerts: int
    precision: float  # 0 when there is no alert
    recall: float
    recall_by_type: dict[str, float] = field(default_factory=dict)
    auc_roc: float = float("nan")
    auc_pr: float = float("nan")
    precision_at_k: float = float("nan")  # k = the number of anomalies in the period
    budget: float = 0.01
    rows: int = 0
    anomalies: int = 0

    def to_dict(self) -> dict:
        return _json(asdict(self))


def evaluate_scores(
    scores: np.ndarray,
    is_anomaly: np.ndarray,
    anomaly_type: Sequence[str],
    budget: float = 0.01,
    name: str = "model",
    threshold: float | None = None,
    keys: Sequence[Any] | np.ndarray | pd.Series | None = None,
) -> ModelReport:
    """Every figure of one detector on one labelled period.

    Without ``threshold`` the alerts are a batch run's, ``alerts_for_budget(scores, budget,
    keys)``: exactly ``floor(budget * n)`` rows, ties split by the hash of ``keys`` (e.g. the
    ``trans_id``s; position when None); the report's ``threshold`` is then
    ``threshold_for_budget(scores, budget)``, the one a fixed-threshold scorer would use. With
    a ``threshold`` (e.g. fixed on validation and applied to the test period) the alerts are
    ``score > threshold``.
    """
    scores = np.asarray(scores, dtype=float)
    y = np.asarray(is_anomaly).astype(bool)
    if threshold is None:
        threshold = threshold_for_budget(scores, budget)
        alert = alerts_for_budget(scores, budget, keys)
    else:
        alert = scores > threshold
    return ModelReport(
        name=name,
        threshold=float(threshold),
        alerts=int(alert.sum()),
        precision=float(y[alert].mean()) if alert.any() else 0.0,
        recall=float(alert[y].mean()) if y.any() else float("nan"),
        recall_by_type=_recall_of_alerts(alert, anomaly_type),
        auc_roc=auc_roc(scores, y),
        auc_pr=auc_pr(scores, y),
        precision_at_k=precision_at_k(scores, y, int(y.sum())),
        budget=budget,
        rows=int(y.size),
        anomalies=int(y.sum()),
    )


# --- model selection ---------------------------------------------------------------------------


@dataclass
class Selection:
    """The outcome of ``select_model``: the ``best`` candidate, whether it is ``promoted``
    over the champion, why (a sentence), and the figures compared (one dict per model)."""

    best: str
    promoted: bool
    reason: str
    table: list[dict]
    metric: str = "recall"
    champion: str | None = None
    basis: str = "injected"  # what the figures were measured on: "injected" anomalies or "analyst_labels"

    @property
    def serving(self) -> str | None:
        """The model that serves after this decision."""
        return self.best if self.promoted else self.champion

    def to_dict(self) -> dict:
        return {**_json(asdict(self)), "serving": self.serving}


def _value(report: ModelReport, metric: str) -> float:
    v = getattr(report, metric)
    return -math.inf if v is None or not math.isfinite(v) else float(v)


def _row(report: ModelReport, metric: str, role: str) -> dict:
    return _json({"name": report.name, "role": role, metric: getattr(report, metric),
                  "auc_pr": report.auc_pr, "auc_roc": report.auc_roc, "recall": report.recall,
                  "precision": report.precision, "alerts": report.alerts,
                  "threshold": report.threshold})  # fmt: skip


def select_model(
    candidates: list[ModelReport],
    champion: ModelReport | None,
    metric: str = "recall",
    margin: float = 0.01,
    basis: str = "injected",
) -> Selection:
    """Pick the best candidate; promote it over the champion only by a clear margin.

    ``basis`` says what the reports were measured on: the anomalies injected into the validation
    period (``"injected"``), or analysts' verdicts (``"analyst_labels"``: confirmed frauds against
    dismissed alerts and unlabelled rows, used once there are enough, ``finsentry.labels``); it is
    recorded in the selection and named in its reason.

    The default metric is recall at the alert budget: the operating point the team works at
    (ranking by AUC-PR picked LOF where the ensemble caught 81 % against 65 % at the same
    budget). Best: the highest ``metric`` (NaN counts as worst), ties broken by the higher recall at
    the alert budget, then by name (alphabetical). Promoted: when there is no champion, or the
    champion has no finite ``metric``, or the best beats it by MORE than ``margin`` (absolute,
    in the metric's unit: 0.01 = one point of AUC-PR). The champion's report must come from
    the same labelled period as the candidates' for the comparison to mean anything.
    """
    if not candidates:
        raise ValueError("select_model needs at least one candidate")
    ranked = sorted(candidates, key=lambda r: (-_value(r, metric), -_value(r, "recall"), r.name))
    best = ranked[0]
    table = [_row(r, metric, "candidate") for r in ranked]
    b = _value(best, metric)
    if champion is None:
        reason = f"{best.name} has the best {metric} ({b:.4f}); there is no champion in production"
        return Selection(best.name, True, f"{reason} [{_basis_words(basis)}]", table, metric, None, basis)
    table.append(_row(champion, metric, "champion"))
    c = _value(champion, metric)
    if c == -math.inf:
        promoted = True
        reason = f"{best.name} ({metric} {b:.4f}) replaces champion {champion.name}, which has no {metric}"
    elif b > c + margin:
        promoted = True
        reason = f"{best.name} {metric} {b:.4f} beats champion {champion.name} {c:.4f} by more than {margin}"
    else:
        promoted = False
        reason = (f"champion {champion.name} kept: the best challenger {best.name} has {metric} {b:.4f} "
                  f"against {c:.4f}, not more than {margin} better")  # fmt: skip
    return Selection(best.name, promoted, f"{reason} [{_basis_words(basis)}]", table, metric, champion.name, basis)


def _basis_words(basis: str) -> str:
    if basis == "analyst_labels":
        return "ranked on analysts' verdicts"
    return "ranked on the injected validation anomalies"


# --- ADBench -----------------------------------------------------------------------------------


def _default_factories() -> dict[str, Callable[[int], Any]]:
    from finsentry.detectors import make_detector

    return {
        name: (lambda seed, n=name: make_detector(n, feature_columns=None, random_state=seed))
        for name in ("isolation_forest", "lof")
    }


ADBENCH_SEEDS = (1, 2, 3)  # ADBench's seed list (``np.arange(3) + 1`` in its run.py)
ADBENCH_MIN_ROWS, ADBENCH_MAX_ROWS = 1_000, 10_000  # its generator resamples tables outside these sizes


def labelled_arrays(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as a 2-D float matrix and ``y`` as 0/1, or a ValueError saying what is wrong: a
    benchmark table is taken as it is, never silently repaired (a NaN is not made a 0 here)."""
    try:
        X = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must be a numeric matrix ({exc})") from exc
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"X must be a matrix of rows and columns, got shape {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"y must hold one label per row of X ({len(X)}), got shape {y.shape}")
    bad = int((~np.isfinite(X)).sum())
    if bad:
        raise ValueError(f"X holds {bad} values that are not finite numbers (NaN or infinity): fill or drop them first")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:  # True and False are 1 and 0
        shown = ", ".join(map(str, sorted(values, key=str)[:5]))
        raise ValueError(f"y must be 0 (normal) or 1 (anomaly), found {shown}")
    y = y.astype(int)
    anomalies = int(y.sum())
    if anomalies < 2 or len(y) - anomalies < 2:
        raise ValueError(f"y needs at least 2 anomalies and 2 normal rows for a stratified split, has "
                         f"{anomalies} and {len(y) - anomalies}")  # fmt: skip
    return X, y


def adbench_split(
    X: np.ndarray, y: np.ndarray, seed: int, test_size: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The train/test split ADBench's ``DataGenerator.generator`` draws for ``seed``: the same
    rows in the same order, min-max scaled on the train part as it scales them.

    Its generator seeds NumPy's global generator, resamples a table of fewer than 1,000 rows up
    to 1,000 (with replacement) and one of more than 10,000 down to 10,000, then calls
    ``train_test_split(shuffle=True, stratify=y)`` on that global generator. A
    ``RandomState(seed)`` here is that stream, without touching the caller's global state.
    PyOD's ``IForest(random_state=np.random.RandomState(seed))`` on these splits gives the
    published ADBench figures to the hundredth (``python -m bench.adbench``: cardio 93.19 / 59.95,
    thyroid 98.30 / 63.11).
    """
    from sklearn.preprocessing import MinMaxScaler

    X, y = labelled_arrays(X, y)
    rng = np.random.RandomState(seed)
    if len(y) < ADBENCH_MIN_ROWS:
        rows = rng.choice(np.arange(len(y)), ADBENCH_MIN_ROWS, replace=True)
        X, y = X[rows], y[rows]
    if len(y) > ADBENCH_MAX_ROWS:
        rng = np.random.RandomState(seed)  # the generator seeds again before subsampling
        rows = rng.choice(np.arange(len(y)), ADBENCH_MAX_ROWS, replace=False)
        X, y = X[rows], y[rows]
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=test_size, shuffle=True, stratify=y, random_state=rng)
    scaler = MinMaxScaler().fit(xtr)
    return scaler.transform(xtr), scaler.transform(xte), ytr, yte


def adbench_protocol(
    X: np.ndarray,
    y: np.ndarray,
    factories: dict[str, Callable[[int], Any]] | None = None,
    seeds: Sequence[int] = ADBENCH_SEEDS,
    test_size: float = 0.3,
    progress: Callable[[str, int, int], None] | None = None,
    per_seed: bool = False,
) -> dict[str, dict[str, Any]]:
    """ADBench's unsupervised protocol (Han et al., NeurIPS 2022) on one labelled table.

    Per seed: ADBench's own split of the table (``adbench_split``: 30 % test, stratified,
    min-max scaled; seeds 1, 2, 3 are the splits behind its published figures), the detector
    ``factories[name](seed)`` fitted on the train part WITHOUT labels, AUC-ROC and AUC-PR of its
    ``score`` on the test part. Result: the means over seeds, in %, rounded to 0.01 (with
    ``per_seed``, also each seed's figures under ``"per_seed"``: seed -> [AUC-ROC, AUC-PR]). A
    factory returns anything with ``fit(frame)`` and ``score(frame)`` (higher = more anomalous),
    the frame's columns being ``x0 .. x{d-1}``. Default: our Isolation Forest and LOF, default
    parameters. ``progress(name, seeds done, seeds)``, when given, is called after each fit and
    score.
    """
    factories = factories or _default_factories()
    X, y = labelled_arrays(X, y)
    cols = [f"x{i}" for i in range(X.shape[1])]
    splits = {seed: adbench_split(X, y, seed, test_size) for seed in seeds}
    results: dict[str, dict[str, Any]] = {}
    for name, factory in factories.items():
        figures: dict[int, tuple[float, float]] = {}
        for seed, (xtr, xte, _, yte) in splits.items():
            model = factory(seed)
            model.fit(pd.DataFrame(xtr, columns=cols))
            s = np.asarray(model.score(pd.DataFrame(xte, columns=cols)), dtype=float)
            figures[seed] = (100 * auc_roc(s, yte), 100 * auc_pr(s, yte))
            if progress is not None:
                progress(f"fitting and scoring {name}", len(figures), len(splits))
        roc, pr = np.mean(list(figures.values()), axis=0)
        results[name] = {"auc_roc": round(float(roc), 2), "auc_pr": round(float(pr), 2)}
        if per_seed:
            results[name]["per_seed"] = {seed: [round(r, 2), round(p, 2)] for seed, (r, p) in figures.items()}
    return results
