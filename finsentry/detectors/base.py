"""The one detector contract: fit on a frame, score to [0, 1], explain.

Every detector (Isolation Forest, LOF, the ensemble, later the LSTM) is used the same way by
the ensemble, the evaluation, the scorer and the training pipeline's model choice:

* ``fit(features)`` learns from a features frame without labels and returns the detector;
* ``raw_score(features)`` is the model's own anomaly score (higher = more anomalous, any unit);
* ``score(features)`` is the raw score calibrated on the training rows, in [0, 1]: 0.99 means
  that 99 % of the training rows looked less anomalous;
* ``explain(features, top_k)`` gives each row's top reasons in words (``finsentry.explain``).

Input hygiene happens in one place, ``Detector.matrix``: the detector's feature columns are
selected (in its order; extra columns are ignored, a missing one is an error), cast to
float64, and every non-finite value (NaN, +-inf) is replaced by 0. Zero is the "nothing
unusual / no history" value of every feature in ``finsentry.features``: a feature that could
not be computed must neither make a transaction look anomalous nor crash the scorer.

``feature_columns=None`` means "every column of the frame given to ``fit``", in that order:
that is how the same detectors run on arbitrary labelled benchmark tables (ADBench).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd

from finsentry.features import DETECTOR_COLUMNS

if TYPE_CHECKING:
    from finsentry.explain import Reason

GRID_POINTS = 1001  # quantiles of the training raw scores kept for calibration (~8 kB)
TAIL = 1e-3  # calibrated scores stay below 1 - TAIL inside the training range; 1.0 is for rules
BACKGROUND_ROWS = 50  # training rows kept as the background of model-agnostic SHAP


class Detector(ABC):
    """Fit on a features frame; score in [0, 1] (higher = more anomalous); explain.

    Calibration is the empirical CDF of the training raw scores, kept as a grid of
    ``GRID_POINTS`` quantiles so that artifacts stay small: a row's score is the share of
    training rows with a lower raw score (``np.searchsorted`` on the grid, linear between two
    grid points, so the ranking of raw scores is kept). Inside the training range scores are
    scaled into [0, 1 - TAIL]; beyond the most anomalous training row they keep rising towards
    1 without reaching it, so rankings are preserved and 1.0 stays reserved for rule hits.
    """

    name = "detector"
    exact_explanations = False  # True when SHAP values are exact (tree models), not sampled
    needs_labels = False  # True when fit reads verdicts from the frame (the supervised candidate)

    def __init__(self, feature_columns: tuple[str, ...] | None = DETECTOR_COLUMNS) -> None:
        self.feature_columns: tuple[str, ...] | None = (
            tuple(feature_columns) if feature_columns is not None else None
        )
        self.params: dict[str, Any] = {}
        self.grid_: np.ndarray | None = None
        self.tail_scale_: float = 1.0
        self.background_: np.ndarray | None = None
        self.unfed_features_: list[str] = []  # feature columns the training data could not feed

    # -- input hygiene, in one place --
    def matrix(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The model input: the feature columns as float64, non-finite values replaced by 0.

        A plain 2-D array is accepted too: its columns are the detector's columns, in order.
        """
        if isinstance(features, np.ndarray):
            features = self._frame(features)
        if self.feature_columns is None:
            raise RuntimeError(f"{self.name} is not fitted (its feature columns are taken at fit)")
        missing = [c for c in self.feature_columns if c not in features.columns]
        if missing:
            raise ValueError(f"{self.name}: features frame lacks columns {missing}")
        x = features[list(self.feature_columns)].to_numpy(dtype=np.float64, copy=True)
        x[~np.isfinite(x)] = 0.0
        return x

    def _frame(self, x: np.ndarray) -> pd.DataFrame:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        columns = self.feature_columns or tuple(f"x{i}" for i in range(x.shape[1]))
        if len(columns) != x.shape[1]:
            raise ValueError(f"{self.name}: {x.shape[1]} columns given, {len(columns)} expected")
        return pd.DataFrame(x, columns=list(columns))

    def features_frame(self, features: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """The feature values exactly as the model sees them (after hygiene), as a frame."""
        return pd.DataFrame(self.matrix(features), columns=list(self.feature_columns or ()))

    # -- what each detector implements --
    @abstractmethod
    def _fit(self, x: np.ndarray) -> np.ndarray | None:
        """Fit on the clean matrix; return the training raw scores to calibrate on, or None to
        calibrate on ``_raw(x)`` (override when scoring training rows is biased, as for LOF)."""

    @abstractmethod
    def _raw(self, x: np.ndarray) -> np.ndarray:
        """Uncalibrated score of a clean matrix, higher = more anomalous."""

    # -- the contract --
    def fit(self, features: pd.DataFrame | np.ndarray) -> Self:
        """Learn from unlabelled rows; calibrate on them; keep a small SHAP background."""
        if self.feature_columns is None:
            frame = features if isinstance(features, pd.DataFrame) else self._frame(features)
            self.feature_columns = tuple(map(str, frame.columns))
        self._drop_unfed(features)
        x = self.matrix(features)
        if len(x) == 0:
            raise ValueError(f"{self.name}: no training rows")
        training_raw = self._fit(x)
        self._calibrate(self._raw(x) if training_raw is None else training_raw)
        self._keep_background(x)
        return self

    def _drop_unfed(self, features: pd.DataFrame | np.ndarray) -> None:
        """Leave out the feature columns with no value at all in the training rows (a card table
        has no balances: its balance features are NaN, never faked); ``unfed_features_`` names them."""
        if not isinstance(features, pd.DataFrame) or len(features) == 0:
            return
        present = [c for c in self.feature_columns or () if c in features.columns]
        values = features[present].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        unfed = [c for c, fed in zip(present, np.isfinite(values).any(axis=0), strict=True) if not fed]
        if not unfed:
            return
        if len(unfed) == len(self.feature_columns or ()):
            raise ValueError(f"{self.name}: no feature column has a value in the training rows")
        self.unfed_features_ = [*getattr(self, "unfed_features_", []), *unfed]
        self.feature_columns = tuple(c for c in self.feature_columns or () if c not in unfed)

    def _keep_background(self, x: np.ndarray) -> None:
        rng = np.random.default_rng(self.params.get("random_state", 0))
        rows = rng.choice(len(x), min(BACKGROUND_ROWS, len(x)), replace=False)
        self.background_ = x[np.sort(rows)]

    def _calibrate(self, raw: np.ndarray) -> None:
        raw = np.asarray(raw, dtype=np.float64)
        raw = raw[np.isfinite(raw)]
        if raw.size == 0:
            raise ValueError(f"{self.name}: no finite training scores to calibrate on")
        self.grid_ = np.quantile(raw, np.linspace(0.0, 1.0, GRID_POINTS))
        q50, q99 = np.quantile(raw, [0.5, 0.99])
        spread = float(q99 - q50) or float(self.grid_[-1] - self.grid_[0])
        self.tail_scale_ = spread if spread > 0 else 1.0

    @property
    def fitted(self) -> bool:
        return self.grid_ is not None

    def raw_score(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The model's own anomaly score (higher = more anomalous), uncalibrated."""
        return self._raw(self.matrix(features))

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Map raw scores to [0, 1): the share of training rows less anomalous (monotone).

        A raw score between two grid quantiles is placed linearly between their levels; a raw
        score equal to a run of tied quantiles gets the lowest level of the run (the share of
        training rows strictly below it); NaN counts as the least anomalous.
        """
        if self.grid_ is None:
            raise RuntimeError(f"{self.name} is not fitted")
        grid = self.grid_
        levels = np.linspace(0.0, 1.0, grid.size)
        raw = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=-np.inf)
        k = np.searchsorted(grid, raw, side="left")  # number of grid points strictly below raw
        p = np.zeros(raw.shape, dtype=np.float64)
        inside = (k > 0) & (k < grid.size)
        ki = k[inside]
        lo, hi = grid[ki - 1], grid[ki]  # lo < raw <= hi
        p[inside] = levels[ki - 1] + (raw[inside] - lo) / (hi - lo) * (levels[ki] - levels[ki - 1])
        p *= 1.0 - TAIL
        above = k == grid.size
        with np.errstate(over="ignore"):  # an infinite raw score is simply the top
            p[above] = 1.0 - TAIL * np.exp(-(raw[above] - grid[-1]) / self.tail_scale_)
        return np.minimum(p, np.nextafter(1.0, 0.0))  # even an infinite raw score stays below 1

    def score(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Calibrated anomaly score in [0, 1), higher = more anomalous."""
        return self.calibrate(self.raw_score(features))

    def explain(self, features: pd.DataFrame | np.ndarray, top_k: int = 3) -> list[list[Reason]]:
        """Per row, up to ``top_k`` reasons: the features SHAP finds pushing it towards anomalous."""
        from finsentry.explain import shap_contributions, top_reasons

        return top_reasons(self.features_frame(features), shap_contributions(self, features), top_k=top_k)

    # -- persistence: caches (``_shap*``) are rebuilt after loading, never pickled --
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_shap")}


REGISTRY: dict[str, Callable[..., Detector]] = {}


def register(name: str) -> Callable[[type[Detector]], type[Detector]]:
    """Class decorator: make a detector available to ``make_detector(name)`` under ``name``.

    The registry stays open: a later module (the LSTM) registers itself the same way.
    """

    def wrap(cls: type[Detector]) -> type[Detector]:
        known = REGISTRY.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"detector name {name!r} is already registered by {known!r}")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return wrap


def make_detector(name: str, **params: Any) -> Detector:
    """A new, unfitted detector by registered name (``isolation_forest``, ``lof``, ``ensemble``)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](**params)
