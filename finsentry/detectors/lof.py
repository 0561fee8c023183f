"""Local Outlier Factor (scikit-learn, novelty mode), explained by SHAP's permutation method."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import RobustScaler

from finsentry.detectors.base import Detector, register
from finsentry.features import FEATURE_COLUMNS


@register("lof")
class LofDetector(Detector):
    """LOF: how much sparser a row's neighbourhood is than its neighbours' neighbourhoods.

    * Scaling: ``RobustScaler`` (median, inter-quartile range) inside a scikit-learn Pipeline,
      so a few huge values (amounts, balance errors) do not set a feature's scale for all the
      others, as a standard deviation would. A feature whose IQR is 0 (a rare flag) keeps its
      own unit.
    * Size: LOF keeps its reference rows and answers by neighbour search, so it is fitted on at
      most ``max_train_rows`` rows drawn without replacement (seeded by ``random_state``):
      20k reference rows keep scoring fast and the artifact a few MB.
    * Novelty mode (scikit-learn's ``novelty=True``) is what allows scoring new rows.
    * Calibration uses the fitted rows' own LOF (``negative_outlier_factor_``, computed without
      the row itself). Scoring a reference row as if it were new would find the row as its own
      neighbour and make it look more normal than an unseen row. The rows left out of the
      sample are not scored at fit time: the sample is plenty for the calibration grid.
    """

    def __init__(self, n_neighbors: int = 35, max_train_rows: int = 20_000, random_state: int = 0,
                 feature_columns: tuple[str, ...] | None = FEATURE_COLUMNS) -> None:  # fmt: skip
        super().__init__(feature_columns)
        self.params = {"n_neighbors": n_neighbors, "max_train_rows": max_train_rows,
                       "random_state": random_state}  # fmt: skip
        self.model = Pipeline([("scale", RobustScaler()),
                               ("lof", LocalOutlierFactor(n_neighbors=n_neighbors, novelty=True))])  # fmt: skip

    def _fit(self, x: np.ndarray) -> np.ndarray:
        if len(x) < 2:
            raise ValueError("lof: at least 2 training rows are needed")
        if len(x) > self.params["max_train_rows"]:
            rng = np.random.default_rng(self.params["random_state"])
            x = x[np.sort(rng.choice(len(x), self.params["max_train_rows"], replace=False))]
        self.model.set_params(lof__n_neighbors=min(self.params["n_neighbors"], len(x) - 1))
        self.model.fit(x)
        return -self.model.named_steps["lof"].negative_outlier_factor_

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return -self.model.score_samples(x)
