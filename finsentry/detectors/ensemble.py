"""The ensemble: members' calibrated scores averaged, recalibrated, and the rule checks on top."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from finsentry.detectors.base import Detector, make_detector, register
from finsentry.features import FEATURE_COLUMNS

RuleCheck = Callable[[pd.DataFrame], np.ndarray]


def _catalog_rules(features: pd.DataFrame) -> np.ndarray:
    from finsentry.anomalies import apply_rules

    return apply_rules(features)


@register("ensemble")
class EnsembleDetector(Detector):
    """Weighted mean of member scores, recalibrated on training; a rule hit scores 1.0.

    Members that are already fitted are reused as they are (the training pipeline fits the
    candidates once and builds the ensemble from them).
    """

    def __init__(self, members: list[Detector] | None = None, weights: list[float] | None = None,
                 use_rules: bool = True, rules: RuleCheck | None = None,
                 feature_columns: tuple[str, ...] | None = FEATURE_COLUMNS) -> None:  # fmt: skip
        super().__init__(feature_columns)
        self.members = members or [make_detector("isolation_forest"), make_detector("lof")]
        w = np.asarray(weights if weights is not None else [1.0] * len(self.members), dtype=float)
        self.weights = w / w.sum()
        self.use_rules = use_rules
        self.rules = rules
        self.params = {"members": [m.name for m in self.members], "weights": self.weights.tolist(),
                       "use_rules": use_rules}  # fmt: skip

    def _fit(self, x: np.ndarray, seed_frame: pd.DataFrame) -> None:
        for m in self.members:
            if not m.fitted:
                m.fit(seed_frame)

    def _combined(self, features: pd.DataFrame) -> np.ndarray:
        return sum(w * m.score(features) for w, m in zip(self.weights, self.members, strict=True))

    def fit(self, features: pd.DataFrame) -> EnsembleDetector:
        self._fit(self.matrix(features), features)
        self._calibrate(self._combined(features))
        return self

    def _raw(self, x: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(x, columns=list(self.feature_columns))
        return self._combined(frame)

    def raw_score(self, features: pd.DataFrame) -> np.ndarray:
        return self._combined(features)

    def rule_types(self, features: pd.DataFrame) -> np.ndarray:
        if not self.use_rules:
            return np.full(len(features), "", dtype=object)
        check = self.rules or _catalog_rules
        return np.asarray(check(features), dtype=object)

    def score_with_types(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Scores, and the rule's anomaly type per row ('' where no rule fired)."""
        scores = self.calibrate(self.raw_score(features))
        types = self.rule_types(features)
        return np.where(types != "", 1.0, scores), types

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated combined score; 1.0 where a rule fired."""
        return self.score_with_types(features)[0]

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        return sum(w * m.contributions(features) for w, m in zip(self.weights, self.members, strict=True))

    def explain(self, features: pd.DataFrame, top_k: int = 3):
        from finsentry.explain import rule_reason

        reasons = super().explain(features, top_k=top_k)
        types = self.rule_types(features)
        for i, t in enumerate(types):
            if t:
                reasons[i] = [rule_reason(t, features.iloc[i]), *reasons[i]][:top_k]
        return reasons

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["rules"] = None  # rules come from the catalog at load time, never from a pickle
        return state
