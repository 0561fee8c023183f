"""The one detector contract: fit on a frame, score to [0, 1], explain.

Every detector (Isolation Forest, LOF, the ensemble, later the LSTM) is used the same way by
the ensemble, the evaluation, the scorer and the training pipeline's model choice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

import numpy as np
import pandas as pd

from finsentry.features import FEATURE_COLUMNS

if TYPE_CHECKING:
    from finsentry.explain import Reason

GRID_POINTS = 1001  # quantiles of the training raw scores kept for calibration


class Detector(ABC):
    """Fit on a features frame; score in [0, 1] (higher = more anomalous); explain.

    Scores are calibrated on the training rows: a score of 0.99 means 99 % of training rows
    looked less anomalous. Beyond the most anomalous training row the score keeps rising
    towards 1 without reaching it (1.0 is reserved for rule hits), so rankings are preserved.
    """

    name = "detector"

    def __init__(self, feature_columns: tuple[str, ...] | None = FEATURE_COLUMNS) -> None:
        self.feature_columns = tuple(feature_columns) if feature_columns is not None else None
        self.grid_: np.ndarray | None = None
        self.tail_scale_: float = 1.0

    # -- input hygiene, in one place --
    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The model input: the feature columns as float64, non-finite values replaced by 0."""
        if self.feature_columns is None:
            self.feature_columns = tuple(map(str, features.columns))
        missing = [c for c in self.feature_columns if c not in features.columns]
        if missing:
            raise ValueError(f"{self.name}: features frame lacks columns {missing}")
        x = features[list(self.feature_columns)].to_numpy(dtype=np.float64, copy=True)
        x[~np.isfinite(x)] = 0.0
        return x

    # -- what each detector implements --
    @abstractmethod
    def _fit(self, x: np.ndarray, seed_frame: pd.DataFrame) -> None: ...

    @abstractmethod
    def _raw(self, x: np.ndarray) -> np.ndarray:
        """Uncalibrated score, higher = more anomalous."""

    @abstractmethod
    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        """SHAP contributions (rows x feature_columns), positive = towards anomalous."""

    # -- the contract --
    def fit(self, features: pd.DataFrame) -> Self:
        x = self.matrix(features)
        self._fit(x, features)
        self._calibrate(self._raw(x))
        return self

    def _calibrate(self, raw: np.ndarray) -> None:
        self.grid_ = np.quantile(raw, np.linspace(0.0, 1.0, GRID_POINTS))
        spread = float(self.grid_[int(0.99 * (GRID_POINTS - 1))] - self.grid_[GRID_POINTS // 2])
        self.tail_scale_ = spread if spread > 0 else 1.0

    @property
    def fitted(self) -> bool:
        return self.grid_ is not None

    def raw_score(self, features: pd.DataFrame) -> np.ndarray:
        return self._raw(self.matrix(features))

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Map raw scores to [0, 1) through the training distribution (strictly monotone)."""
        if self.grid_ is None:
            raise RuntimeError(f"{self.name} is not fitted")
        grid = self.grid_
        levels = np.linspace(0.0, 1.0, GRID_POINTS)
        # np.interp needs increasing x: break ties in the grid by a tiny ramp
        x = grid + np.arange(GRID_POINTS) * 1e-12 * max(1.0, float(np.abs(grid).max()))
        p = np.interp(raw, x, levels) * (1.0 - 1e-3)
        above = raw > x[-1]
        p[above] = 1.0 - 1e-3 * np.exp(-(raw[above] - x[-1]) / self.tail_scale_)
        below = raw < x[0]
        p[below] = 0.0
        return p

    def score(self, features: pd.DataFrame) -> np.ndarray:
        return self.calibrate(self.raw_score(features))

    def explain(self, features: pd.DataFrame, top_k: int = 3) -> list[list[Reason]]:
        from finsentry.explain import top_reasons

        frame = features[list(self.feature_columns)]
        return top_reasons(frame, self.contributions(features), top_k=top_k)


REGISTRY: dict[str, Callable[..., Detector]] = {}


def register(name: str) -> Callable[[type[Detector]], type[Detector]]:
    """Class decorator: make a detector available to ``make_detector(name)``."""

    def wrap(cls: type[Detector]) -> type[Detector]:
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return wrap


def make_detector(name: str, **params) -> Detector:
    if name not in REGISTRY:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](**params)
