"""Isolation Forest (scikit-learn), explained by SHAP's exact TreeExplainer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from finsentry.detectors.base import Detector, register
from finsentry.features import FEATURE_COLUMNS


@register("isolation_forest")
class IsolationForestDetector(Detector):
    def __init__(self, n_estimators: int = 200, max_samples: int = 256, random_state: int = 0,
                 feature_columns: tuple[str, ...] | None = FEATURE_COLUMNS) -> None:  # fmt: skip
        super().__init__(feature_columns)
        self.params = {"n_estimators": n_estimators, "max_samples": max_samples,
                       "random_state": random_state}  # fmt: skip
        self.model = IsolationForest(**self.params, n_jobs=1)
        self._explainer = None

    def _fit(self, x: np.ndarray, seed_frame: pd.DataFrame) -> None:
        self.model.set_params(max_samples=min(self.params["max_samples"], len(x)))
        self.model.fit(x)

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return -self.model.score_samples(x)

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        import shap

        if self._explainer is None:
            self._explainer = shap.TreeExplainer(self.model)
        # SHAP explains the mean path length: shorter = more anomalous, hence the sign flip
        return -np.asarray(self._explainer.shap_values(self.matrix(features)))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_explainer"] = None
        return state
