"""Isolation Forest (scikit-learn), explained by SHAP's exact TreeExplainer."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from finsentry.detectors.base import Detector, register
from finsentry.detectors.tails import TYPICAL_SURPRISE, column_surprises, freeze_columns
from finsentry.features import FEATURE_COLUMNS, FEATURE_TAILS

SCALES = ("raw", "tail")
TAIL_ROWS = 20_000  # tail-scaled columns: training rows kept per column (as the tails detector keeps)
TAIL_FAMILIES = ("amount",)  # product families read on the tail scale under scale="raw" (class docstring)


@register("isolation_forest")
class IsolationForestDetector(Detector):
    """Isolation Forest: anomalies are isolated by fewer random splits (a shorter mean path).

    Default columns: the account features only (``FEATURE_COLUMNS``). Random axis-parallel
    splits treat every column alike, so five counterparty columns that say nothing on a bank
    without partners diluted the forest (synthetic bank, 1 % budget: recall 40 % -> 27 %); the
    ``tails`` member, which counts a family only beyond its floor, reads them.

    **One-sided** (``one_sided=True``, the default): the product's features have a meaningful
    direction (``finsentry.features.FEATURE_TAILS``: a large amount is evidence, a small one is
    not; a short gap is a burst, a long one is not). The forest sees each such column clipped at
    its training median on the usual side (``max(x, median)`` for a high tail, ``min`` for a low
    one) and context columns (history length) held at their median, so its random splits isolate
    only rows unusual in the direction that matters. Columns the product does not know (a
    benchmark table) are left as they are. Measured alone, AUC-PR two-sided -> one-sided
    (``bench.detection``, ``bench.handbook``, 2026-12-02): synthetic 0.267 -> 0.330, handbook
    0.017 -> 0.055, Czech 0.391 -> 0.365; in the default ensemble it is what lifts the handbook.

    **The amount family on the tail scale** (``tail_families``, default ``TAIL_FAMILIES`` =
    ``("amount",)``): the product's amount columns (``log_amount``, ``amount_z``,
    ``amount_ratio_log``, ``decimal_shift``) reach the forest as their one-sided tail surprise in a
    frozen training sample (``tails.column_surprises``, raised to a median value's surprise), the
    other columns as above. On the raw scale the ratio and z-score columns are heavy-tailed (a
    young account's z-score runs to the hundreds), so uniform random splits are spent between a
    few extreme values and an amount that is "only" 1 in 800 against the bank and against the
    account's habits at once is not isolated early; on the tail scale each view's top 1 % spans
    surprises 4.6 to 10 and the views that agree isolate it. The price: a training row's surprise
    is its rank, so a value far beyond the second largest in the training window is read as
    barely beyond it (rows beyond the frozen sample's range still grow linearly, in units of the
    column's spread). Only the amount family: with every product column on the tail scale
    (``scale="tail"``), rows moderately rare in several *correlated* columns of different
    families (on the Czech sample a large withdrawal: amount, daily spend, drain share,
    pass-through) are isolated early too, and the Czech sample lost AUC-PR at every seed (default
    ensemble 0.438 -> 0.425 at seed 0, before ``amount_burst``).

    Measured in the default ensemble (``bench.detection``'s features, 1 % budget, IF seeds 0-9
    with the tails member fitted once; paired difference against ``tail_families=()``, mean +-
    sd over seeds; 2026-12-02, with ``amount_burst``): handbook AUC-PR 0.297 -> 0.316 (+0.019 +-
    0.005, higher at 10 of 10 seeds), scenario 1 recall 75 % -> 96 % (92-97 % at every seed),
    scenario 3 90.5 % -> 90.8 % (90.0-91.7 %); synthetic recall 71.8 % -> 71.7 % (-0.1 +- 0.5
    points, 3 seeds up, 3 down) and AUC-PR 0.543 -> 0.542 (-0.001 +- 0.002); Czech recall 76.7 %
    at every seed, AUC-PR 0.441 -> 0.440 (-0.001 +- 0.002): the other sets move within the
    seed-to-seed spread. Tried and not kept: the bank-wide amount (``log_amount``) alone or the
    account-relative views (``amount_z``, ``amount_ratio_log``) alone (scenario 1 at 88 %);
    surprises floored at the top 5 % instead of the median (synthetic +1 recall point, handbook
    scenario 1 100 %, but on the Czech sample a spend surge whose amount is only in its account's
    top 10 % falls out of the budget: recall -2.3 points at 8 of 10 seeds). Columns the product
    does not know (a benchmark table) are not in a family: ADBench is unchanged. ``()`` gives the
    forest of before; a model saved before this was kept has no ``tail_families`` and scores as
    before.

    Raw score: ``-IsolationForest.score_samples`` = 2^(-mean path length / c(n)), in (0, 1].
    ``max_samples`` is capped at the number of training rows. ``contamination`` only moves
    scikit-learn's own ``predict`` offset: scores here do not use it (the alert threshold
    comes from the alert budget, ``finsentry.evaluation.threshold_for_budget``).
    """

    exact_explanations = True

    def __init__(self, n_estimators: int = 200, max_samples: int = 256, random_state: int = 0,
                 contamination: float | str = "auto", one_sided: bool = True, scale: str = "raw",
                 tail_families: tuple[str, ...] = TAIL_FAMILIES,
                 feature_columns: tuple[str, ...] | None = FEATURE_COLUMNS) -> None:  # fmt: skip
        if scale not in SCALES:
            raise ValueError(f"isolation_forest: scale must be one of {', '.join(SCALES)}, got {scale!r}")
        super().__init__(feature_columns)
        self.params = {"n_estimators": n_estimators, "max_samples": max_samples,
                       "random_state": random_state, "contamination": contamination}  # fmt: skip
        self.model = IsolationForest(**self.params, n_jobs=1)
        self.params["one_sided"] = one_sided
        self.params["scale"] = scale
        self.params["tail_families"] = tuple(tail_families)
        self.center_: np.ndarray | None = None  # training medians of the clipped columns
        self.tail_sorted_: np.ndarray | None = None  # the tail-scaled columns' frozen samples
        self.tail_spread_: np.ndarray | None = None

    def _directions(self) -> list[str]:
        both = ("both", "")
        return [FEATURE_TAILS.get(c, both)[0] if self.params.get("one_sided") else
                ("context" if FEATURE_TAILS.get(c, both)[0] == "context" else "both")
                for c in self.feature_columns or ()]  # fmt: skip

    def tail_columns(self) -> np.ndarray:
        """Which columns the forest reads on the tail scale: every one with ``scale="tail"``, else
        the product's columns of the ``tail_families`` (none for a model saved before them)."""
        columns = self.feature_columns or ()
        if self.params.get("scale", "raw") == "tail":
            return np.ones(len(columns), dtype=bool)
        families = set(self.params.get("tail_families", ()))
        return np.array([c in FEATURE_TAILS and FEATURE_TAILS[c][1] in families and FEATURE_TAILS[c][0] != "context"
                         for c in columns], dtype=bool)  # fmt: skip

    def forest_input(self, x: np.ndarray) -> np.ndarray:
        """What the forest sees of a clean matrix.

        The tail-scaled columns (``tail_columns``: all with ``scale="tail"``, the amount family
        by default): each one's tail surprise in its frozen training sample
        (``tails.column_surprises``: one-sided for the product's columns with ``one_sided``),
        raised to a median value's surprise so that the usual side is all alike and context
        columns are constant. The others with ``one_sided``: each column of a known direction
        clipped at its training median on the usual side, context columns held there.
        """
        tail = self.tail_columns()
        surprise = None
        if getattr(self, "tail_sorted_", None) is not None and tail.any():
            directions = [d for d, keep in zip(self._directions(), tail, strict=True) if keep]
            surprise = column_surprises(self.tail_sorted_, self.tail_spread_, x[:, tail], directions)
            surprise = np.maximum(surprise, TYPICAL_SURPRISE)  # the usual side is all alike: one-sided
            if tail.all():
                return surprise
        z = self._clipped(x)
        if surprise is not None:
            z = z.copy() if z is x else z
            z[:, tail] = surprise
        return z

    def _clipped(self, x: np.ndarray) -> np.ndarray:
        """``one_sided``: each column of a known direction clipped at its training median on the
        usual side, context columns held there (a copy); otherwise ``x`` itself."""
        if not self.params.get("one_sided") or self.center_ is None:
            return x
        z = x.copy()
        for j, direction in enumerate(self._directions()):
            if direction == "high":
                z[:, j] = np.maximum(z[:, j], self.center_[j])
            elif direction == "low":
                z[:, j] = np.minimum(z[:, j], self.center_[j])
            elif direction == "context":
                z[:, j] = self.center_[j]
        return z

    def _fit(self, x: np.ndarray) -> None:
        self.model.set_params(max_samples=min(self.params["max_samples"], len(x)))
        self.center_ = np.median(x, axis=0) if self.params.get("one_sided") else None
        tail = self.tail_columns()
        self.tail_sorted_, self.tail_spread_ = None, None
        if tail.any():
            self.tail_sorted_, self.tail_spread_ = freeze_columns(x[:, tail], TAIL_ROWS, self.params["random_state"])
        self.model.fit(self.forest_input(x))

    def _raw(self, x: np.ndarray) -> np.ndarray:
        """``-score_samples``, computed by the compiled walk of ``fast_forest`` (same numbers)."""
        from finsentry.detectors.fast_forest import flatten, raw_scores

        flat = getattr(self, "_shap_flat_forest", None)  # a cache: "_shap*" is never pickled
        if flat is None or flat[0] is not self.model:
            flat = (self.model, flatten(self.model))
            self._shap_flat_forest = flat
        return raw_scores(flat[1], self.forest_input(x))
