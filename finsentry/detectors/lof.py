"""Local Outlier Factor (scikit-learn, novelty mode), explained by SHAP's permutation method."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import RobustScaler

from finsentry.detectors.base import Detector, register
from finsentry.features import FEATURE_COLUMNS

BACKGROUND_ROWS = 20  # permutation SHAP costs rows x features x background LOF queries


@register("lof")
class LofDetector(Detector):
    """LOF on robust-scaled features, fitted on at most ``max_train_rows`` (seeded sample):
    neighbour search is the cost of LOF, and 20k reference rows keep scoring fast."""

    def __init__(self, n_neighbors: int = 35, max_train_rows: int = 20_000, random_state: int = 0,
                 feature_columns: tuple[str, ...] | None = FEATURE_COLUMNS) -> None:  # fmt: skip
        super().__init__(feature_columns)
        self.params = {"n_neighbors": n_neighbors, "max_train_rows": max_train_rows,
                       "random_state": random_state}  # fmt: skip
        self.model = make_pipeline(RobustScaler(), LocalOutlierFactor(n_neighbors=n_neighbors, novelty=True))
        self.background_: np.ndarray | None = None

    def _fit(self, x: np.ndarray, seed_frame: pd.DataFrame) -> None:
        rng = np.random.default_rng(self.params["random_state"])
        if len(x) > self.params["max_train_rows"]:
            x = x[rng.choice(len(x), self.params["max_train_rows"], replace=False)]
        self.model.fit(x)
        self.background_ = x[rng.choice(len(x), min(BACKGROUND_ROWS, len(x)), replace=False)]

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return -self.model.score_samples(x)

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        import shap

        explainer = shap.PermutationExplainer(self._raw, shap.maskers.Independent(self.background_))
        x = self.matrix(features)
        return np.asarray(explainer(x, max_evals=2 * x.shape[1] + 1, silent=True).values)
