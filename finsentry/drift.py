"""Drift: population stability index (PSI) of every feature and of the score vs the training window.

PSI compares the share of rows per bin in a recent window (``a``) with the training window's
(``e``): ``PSI = sum((a - e) * ln(a / e))`` over the bins, shares floored at ``SHARE_FLOOR`` so
that an empty bin counts but never makes it infinite. Reading: < 0.1 stable, 0.1-0.25 moving,
> 0.25 drifted (the ``score-drift`` alarm in ``finsentry.monitoring.ALARMS``).

* The bins come from the training window once, at training time (``build_reference``): inner
  edges at quantiles of each feature (deciles) and of the model's score (deciles plus 0.95 and
  0.99, where alerts live). Tied quantiles collapse, so a 0/1 flag gets two bins. The
  reference (edges + shares) is stored in the model artifact's ``metadata.json`` under
  ``"drift_reference"`` (``DriftReference.to_dict``) and read back with ``reference_from_metadata``.
* Values go through the detectors' hygiene first: non-finite values count as 0.
* A window's PSI is noisy when it is small: with ``B`` bins and ``n`` rows the PSI of a window
  drawn from the training distribution itself is about ``(B - 1) / n`` (0.09 for 10 bins and
  100 rows). Measure windows of at least ``MIN_ROWS`` rows: ``DriftWindow`` accumulates bin
  counts over batches (the streaming scorer's per-container window) and measures when ready.

Everything here is pure except ``publish_drift`` (one CloudWatch ``put_metric_data`` call).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from finsentry.monitoring import METRIC_NAMESPACE, Metric

FEATURE_QUANTILES: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 10))
SCORE_QUANTILES: tuple[float, ...] = (*FEATURE_QUANTILES, 0.95, 0.99)
SHARE_FLOOR = 1e-4  # an empty bin counts as this share
REFERENCE_SAMPLE = 20_000  # training rows scored to bin the score (seeded sample)
PSI_MOVING, PSI_DRIFTED = 0.1, 0.25  # the usual reading of a PSI: below 0.1 stable, above 0.25 drifted
MIN_ROWS = 500  # a window smaller than this is not measured (noise ~ (bins - 1) / rows)
METADATA_KEY = "drift_reference"
SCORE = "score"  # the key of the score in a measurement's per-variable figures


def _clean(values: Any) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return np.where(np.isfinite(x), x, 0.0)


@dataclass(frozen=True)
class Bins:
    """One variable's reference: inner bin edges (ascending) and the training share per bin.

    Bin ``i`` holds values ``edges[i-1] < v <= edges[i]`` (the first bin everything up to
    ``edges[0]``, the last everything above ``edges[-1]``); ``len(shares) == len(edges) + 1``.
    """

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    @classmethod
    def from_values(cls, values: Any, quantiles: Sequence[float] = FEATURE_QUANTILES) -> Bins:
        x = _clean(values)
        if x.size == 0:
            raise ValueError("drift: no reference values to bin")
        edges = tuple(float(e) for e in np.unique(np.quantile(x, quantiles)))
        counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1)
        return cls(edges, tuple(float(c) for c in counts / x.size))

    def counts(self, values: Any) -> np.ndarray:
        """Rows per bin (int64, ``len(edges) + 1``)."""
        idx = np.searchsorted(np.asarray(self.edges, dtype=np.float64), _clean(values), side="left")
        return np.bincount(idx, minlength=len(self.edges) + 1).astype(np.int64)

    def psi_of_counts(self, counts: np.ndarray) -> float:
        """PSI of a window given as rows per bin; NaN for an empty window."""
        counts = np.asarray(counts, dtype=np.float64)
        total = counts.sum()
        if total <= 0:
            return float("nan")
        actual = np.maximum(counts / total, SHARE_FLOOR)
        expected = np.maximum(np.asarray(self.shares, dtype=np.float64), SHARE_FLOOR)
        return float(np.sum((actual - expected) * np.log(actual / expected)))

    def psi(self, values: Any) -> float:
        """PSI of ``values`` against this reference."""
        return self.psi_of_counts(self.counts(values))

    def to_dict(self) -> dict:
        return {"edges": list(self.edges), "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bins:
        edges, shares = tuple(map(float, data["edges"])), tuple(map(float, data["shares"]))
        if len(shares) != len(edges) + 1 or list(edges) != sorted(set(edges)):
            raise ValueError("drift: bins need ascending unique edges and one more share than edges")
        return cls(edges, shares)


@dataclass(frozen=True)
class DriftReference:
    """The training window's bins: one per feature and one for the score."""

    features: dict[str, Bins]
    score: Bins
    rows: int  # training rows the feature bins were computed on
    window: tuple[str, str] | None = None  # [first, last] training timestamp

    def to_dict(self) -> dict:
        return {
            "features": {k: b.to_dict() for k, b in self.features.items()},
            "score": self.score.to_dict(),
            "rows": self.rows,
            "window": list(self.window) if self.window else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReference:
        window = data.get("window")
        return cls(
            features={k: Bins.from_dict(v) for k, v in data["features"].items()},
            score=Bins.from_dict(data["score"]),
            rows=int(data["rows"]),
            window=(str(window[0]), str(window[1])) if window else None,
        )


def build_reference(detector, features: pd.DataFrame, window: tuple[str, str] | None = None,
                    sample: int = REFERENCE_SAMPLE, seed: int = 0) -> DriftReference:  # fmt: skip
    """Bin the training window: every feature of ``detector`` on all rows; its score on a
    seeded sample of at most ``sample`` rows (scoring is the costly part)."""
    columns = list(detector.feature_columns or features.columns)
    if len(features) == 0:
        raise ValueError("drift: the training window has no rows")
    rows = np.arange(len(features))
    if len(rows) > sample:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), sample, replace=False))
    scores = detector.score(features.iloc[rows])
    return DriftReference(
        features={c: Bins.from_values(features[c]) for c in columns},
        score=Bins.from_values(scores, SCORE_QUANTILES),
        rows=len(features),
        window=window,
    )


def reference_from_metadata(metadata: Mapping[str, Any]) -> DriftReference | None:
    """The reference stored in a model's metadata, or None for a model saved without one."""
    data = metadata.get(METADATA_KEY)
    return DriftReference.from_dict(data) if data else None


# --- measuring a window ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftMeasurement:
    """PSI of one window: the score's and every feature's, with the window's row count."""

    score_psi: float
    feature_psi: dict[str, float]
    rows: int
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None

    def top_features(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` features that drifted most, largest PSI first."""
        finite = [(n, v) for n, v in self.feature_psi.items() if math.isfinite(v)]
        return sorted(finite, key=lambda item: -item[1])[:k]

    def to_dict(self) -> dict:
        def num(v: float) -> float | None:
            return round(v, 6) if math.isfinite(v) else None

        return {"score_psi": num(self.score_psi), "rows": self.rows,
                "start": None if self.start is None else str(self.start),
                "end": None if self.end is None else str(self.end),
                "feature_psi": {k: num(v) for k, v in self.feature_psi.items()}}  # fmt: skip


def measure_drift(reference: DriftReference, features: pd.DataFrame, scores: Any,
                  start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> DriftMeasurement:  # fmt: skip
    """PSI of one window (``features`` rows and their ``scores``) against the reference.

    Features the reference has but ``features`` lacks are an error (a changed model)."""
    missing = [c for c in reference.features if c not in features.columns]
    if missing:
        raise ValueError(f"drift: the window lacks features {missing}")
    scores = _clean(scores)
    if len(scores) != len(features):
        raise ValueError(f"drift: {len(scores)} scores for {len(features)} rows")
    return DriftMeasurement(
        score_psi=reference.score.psi(scores),
        feature_psi={c: b.psi(features[c]) for c, b in reference.features.items()},
        rows=len(features),
        start=start,
        end=end,
    )


def drift_by_window(reference: DriftReference, features: pd.DataFrame, scores: Any, ts: Any,
                    freq: str = "W-SUN", min_rows: int = MIN_ROWS) -> list[DriftMeasurement]:  # fmt: skip
    """One measurement per calendar window (``freq``, pandas offset: weeks Monday to Sunday by
    default) of the rows' timestamps ``ts``; windows with fewer than ``min_rows`` rows are left
    out (too noisy to read)."""
    ts = pd.to_datetime(pd.Series(np.asarray(ts))).reset_index(drop=True)
    features = features.reset_index(drop=True)
    scores = _clean(scores)
    out = []
    for period, idx in ts.groupby(ts.dt.to_period(freq)).groups.items():
        rows = np.asarray(idx)
        if len(rows) >= min_rows:
            out.append(measure_drift(reference, features.iloc[rows], scores[rows],
                                     start=period.start_time, end=period.end_time))  # fmt: skip
    return out


@dataclass
class DriftWindow:
    """Bin counts accumulated over batches until a window is big enough to measure.

    For the streaming scorer, which sees batches of a few hundred rows: ``add`` each scored
    batch; ``ready`` says when ``min_rows`` rows are in; ``measure_and_reset`` gives the PSI of
    the accumulated window and starts a new one. Kept at module level in the Lambda, a window
    lives as long as the warm container (a cold start begins a new one)::

        model, meta = load_model(model_dir)
        reference = drift.reference_from_metadata(meta)  # None: model saved without drift bins
        window = drift.DriftWindow(reference) if reference else None
        ...  # per batch, after scoring:
        window.add(features, batch.scores)  # features=None: score PSI only
        if window.ready:
            drift.publish_drift(cloudwatch, window.measure_and_reset(), {"Environment": env})

    Batches added without features count for the score only: the feature PSI then covers
    the batches that had features.
    """

    reference: DriftReference
    min_rows: int = MIN_ROWS
    rows: int = 0
    score_counts: np.ndarray | None = None
    feature_counts: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, features: pd.DataFrame | None, scores: Any) -> None:
        """Count one batch in. ``features`` None: the score only (no feature PSI for it)."""
        scores = _clean(scores)
        if features is not None and len(scores) != len(features):
            raise ValueError(f"drift: {len(scores)} scores for {len(features)} rows")
        counts = self.reference.score.counts(scores)
        self.score_counts = counts if self.score_counts is None else self.score_counts + counts
        if features is not None:
            for c, b in self.reference.features.items():
                fc = b.counts(features[c])
                self.feature_counts[c] = self.feature_counts[c] + fc if c in self.feature_counts else fc
        self.rows += len(scores)

    @property
    def ready(self) -> bool:
        return self.rows >= self.min_rows

    def measure_and_reset(self) -> DriftMeasurement:
        if self.score_counts is None:
            raise ValueError("drift: the window is empty")
        m = DriftMeasurement(
            score_psi=self.reference.score.psi_of_counts(self.score_counts),
            feature_psi={c: self.reference.features[c].psi_of_counts(n) for c, n in self.feature_counts.items()},
            rows=self.rows,
        )
        self.rows, self.score_counts, self.feature_counts = 0, None, {}
        return m


# --- CloudWatch -----------------------------------------------------------------------------------


def metric_data(measurement: DriftMeasurement, dimensions: Mapping[str, str] | None = None,
                timestamp: datetime | None = None) -> list[dict]:  # fmt: skip
    """CloudWatch ``MetricData`` entries: ``ScorePsi`` once, ``FeaturePsi`` per feature
    (dimension ``Feature``); NaN values are left out (CloudWatch rejects them)."""
    when = timestamp or datetime.now(UTC)
    base = [{"Name": k, "Value": v} for k, v in (dimensions or {}).items()]
    entries = []
    if math.isfinite(measurement.score_psi):
        entries.append({"MetricName": str(Metric.SCORE_PSI), "Dimensions": base, "Timestamp": when,
                        "Value": measurement.score_psi, "Unit": "None"})  # fmt: skip
    for feature, value in measurement.feature_psi.items():
        if math.isfinite(value):
            entries.append({"MetricName": str(Metric.FEATURE_PSI), "Timestamp": when, "Value": value, "Unit": "None",
                            "Dimensions": [*base, {"Name": "Feature", "Value": feature}]})  # fmt: skip
    return entries


def publish_drift(cloudwatch, measurement: DriftMeasurement, dimensions: Mapping[str, str] | None = None,
                  timestamp: datetime | None = None) -> int:  # fmt: skip
    """Put the measurement's metrics into ``METRIC_NAMESPACE``; returns the number of data points.

    ``cloudwatch`` is a boto3 CloudWatch client; calls are chunked at 1,000 data points (the
    API's limit per call)."""
    entries = metric_data(measurement, dimensions, timestamp)
    for i in range(0, len(entries), 1000):
        cloudwatch.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=entries[i : i + 1000])
    return len(entries)
