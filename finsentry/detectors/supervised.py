"""The supervised candidate: gradient-boosted trees on analysts' verdicts, explained by TreeSHAP.

scikit-learn's ``HistGradientBoostingClassifier`` (already a dependency, handles NaN, fast on
millions of rows on 2 cores, and explained exactly by SHAP's ``TreeExplainer``) reads:

* the features of ``finsentry.features`` (``DETECTOR_COLUMNS``: account, bank-wide, partner);
* the score of an unsupervised detector (``base``, default the default ensemble), as the
  column ``unsupervised_score``: what looks unusual keeps counting where no verdict exists yet;
* the label-derived risk features (``finsentry.label_risk.RISK_COLUMNS``): the account's and the
  partner's confirmed frauds known before the transaction, over 1, 7 and 28 days. A model
  saved before the short windows reads its four 28-day columns, which keep their names. A frame without them (no labels
  yet, a scorer without the profile fields) is scored as "nothing known" (0).

The one contract still holds: ``fit(frame)`` reads its target from the frame's
``TARGET_COLUMN`` (1 = confirmed fraud or anomaly, 0 = dismissed, NaN = never labelled), so the
training job, the evaluation and the ensemble treat it like any detector. It learns from the
verdicts: confirmed frauds against dismissed alerts, the negatives analysts actually looked at.
Unlabelled rows are left out by default. ``unlabelled_as_negative=True`` adds them as
"presumed genuine" negatives (subsampled to ``max_unlabelled``; which unlabelled rows may count
is ``finsentry.label_risk.training_target``'s decision: older than the label delay, not beside a
known fraud of the same card or partner). Measured on the handbook replay (``bench.feedback``
8 weeks, mean of the weeks after the first month, without -> with them; ``l2_regularization``
1.0, before its default was 30): card precision@100
0.288 -> 0.299, AUC-ROC 0.765 -> 0.785, AUC-PR 0.383 -> 0.364, scenario-2 recall 11 -> 13 %; a
trade, not a clear gain from one run, so it stays off by default. Re-measured at the default
``l2_regularization`` 30 (2026-12-03, ``python -m bench.feedback --presumed-genuine``, the
handbook's card precision): 0.248 -> 0.240, AUC-ROC 0.787 -> 0.785, AUC-PR 0.475 -> 0.453,
scenario-2 recall 22.5 -> 22.0 %: no longer a trade, a loss on every figure.
A fit needs at least ``finsentry.labels.MIN_FRAUDS`` positives.

``l2_regularization`` (default 30.0) bounds each leaf's value: with rare frauds among many
negatives, an unpenalised first leaf of pure frauds jumps by tens of log-odds (gradient over a
hessian near zero) and later trees over-correct; on the handbook replay with presumed-genuine
rows the log-odds reached +-40,000 and AUC-ROC fell to 0.47. The penalty is in hessian units
(a fraud leaf at p = 0.5 adds 0.25 per row), so 30 holds back a leaf backed by a few dozen frauds
and leaves the well-supported ones nearly unchanged. Chosen on validation weeks that precede
the handbook's test week (``bench.handbook_supervised --train-start 2018-07-18`` and
``2018-07-11``, every label known, 2026-12-02): AUC-PR 0.673 / 0.674 at 1.0, 0.678 / 0.679 at 3,
0.694 / 0.688 at 10, 0.699 / 0.691 at 30, 0.699 / 0.692 at 50, 0.697 / 0.688 at 100 (a plateau
from 20 to 50); card precision@100 0.303 / 0.270 at 1.0, 0.317 / 0.277 at 30 (the bench's 150
trees; with this class's 200: AUC-PR 0.671 / 0.674 -> 0.697 / 0.690, card precision the same). Then, once, on
the handbook's test week (``--train-start 2018-07-25``) and the two weeks after it (``2018-08-01``,
``2018-08-08``), AUC-ROC / AUC-PR / card precision@100 at 1.0 -> 30: 0.854 / 0.653 / 0.279 ->
0.856 / 0.657 / 0.280, 0.849 / 0.660 / 0.284 -> 0.870 / 0.673 / 0.287, 0.874 / 0.661 / 0.289
-> 0.886 / 0.685 / 0.290 (handbook: random forest 0.867 / 0.658 / 0.287, logistic regression
0.871 / 0.606 / 0.291). The analysts' loop gains more, its weekly training sets being smaller
(215 to 1,659 frauds): ``python -m bench.feedback`` (8 weeks, mean of the weeks after the first
month, with feedback) AUC-ROC / AUC-PR / card precision@100 0.771 / 0.431 / 0.207 -> 0.781 /
0.463 / 0.240, scenario-2 recall 15.9 -> 21.7 %; 16 weeks (``--start 2018-06-01 --weeks 16``)
0.784 / 0.468 / 0.232 -> 0.790 / 0.478 / 0.243, scenario 2 20.3 -> 22.2 %. The one figure it
lowered: scenario-1 recall on the handbook's whole test week (every customer, 32 such frauds),
90.6 -> 75.0 % (equal or higher on the handbook's test sets of the five weeks above).

Tried on the same validation weeks and left out (AUC-PR at l2 1.0, 07-18 / 07-11 training
weeks): monotonic constraints (``monotonic_cst``, increasing in the 12 risk columns and the
unsupervised score) 0.579 / 0.583 against 0.673 / 0.674: a terminal whose known frauds are all older
than 7 days is a compromise that ended (training week 07-18..24: fraud rate 0.40 % on such rows,
0.46 % where no fraud is known in 28 days, 6.8 % with one in 7 days, 35 % in 1 day), so "more
known frauds never lowers risk" is false for the 28-day columns holding the short ones fixed; without the
unsupervised score 0.661 / 0.667 (and 0.689 / 0.689 at l2 30, against 0.699 / 0.691 with it);
``class_weight="balanced"`` 0.689 / 0.692 but AUC-ROC and card precision no better; learning rate
0.05 with 300 trees, 15 or 63 leaves, 100 rows a leaf, 75 or 300 trees: within +-0.01 of the
default, no direction on both weeks. A scikit-learn random forest (100 trees, depth 20, the
handbook's) on the same columns: AUC-PR 0.708 / 0.713 on validation, 0.678 / 0.693 / 0.712 on
the three test weeks, card precision 0.279 / 0.287 / 0.296; it is a different model class (size
of the served pickle, the stream Lambda's latency, TreeSHAP on 100 deep trees), so it is not
the default.

``threads`` caps OpenMP threads (default 1; None = all): on the shared 2-core machine OpenMP
over-subscription made a 17,000-row fit take 76 s instead of 6.6 s on one thread.

Raw score: the model's log-odds of fraud (``decision_function``), calibrated to [0, 1) like
every detector; TreeSHAP explains the log-odds exactly (``finsentry.explain``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from finsentry.detectors.base import Detector, make_detector, register
from finsentry.features import DETECTOR_COLUMNS
from finsentry.label_risk import RISK_COLUMNS
from finsentry.labels import MIN_FRAUDS

TARGET_COLUMN = "label_fraud"  # 1 confirmed fraud / anomaly, 0 dismissed, NaN unlabelled
SCORE_COLUMN = "unsupervised_score"
SUPERVISED_EXTRA_COLUMNS: tuple[str, ...] = (*RISK_COLUMNS, SCORE_COLUMN)  # beyond DETECTOR_COLUMNS


@register("supervised")
class SupervisedDetector(Detector):
    """Gradient-boosted trees on features + an unsupervised score + label-derived risk."""

    exact_explanations = True
    needs_labels = True  # never among the label-free defaults (finsentry.table_evaluation.detector_names)

    def __init__(self, base: Detector | None = None, max_iter: int = 200, learning_rate: float = 0.1,
                 max_leaf_nodes: int = 31, l2_regularization: float = 30.0, random_state: int = 0,
                 unlabelled_as_negative: bool = False,
                 max_unlabelled: int = 300_000, min_frauds: int = MIN_FRAUDS, threads: int | None = 1,
                 feature_columns: tuple[str, ...] | None = None) -> None:  # fmt: skip
        columns = feature_columns if feature_columns is not None else (*DETECTOR_COLUMNS, *SUPERVISED_EXTRA_COLUMNS)
        super().__init__(columns)
        self.base = base if base is not None else make_detector("ensemble", random_state=random_state)
        self.params = {"max_iter": max_iter, "learning_rate": learning_rate, "max_leaf_nodes": max_leaf_nodes,
                       "l2_regularization": l2_regularization, "random_state": random_state,
                       "unlabelled_as_negative": unlabelled_as_negative,
                       "max_unlabelled": max_unlabelled, "min_frauds": min_frauds, "threads": threads}  # fmt: skip
        self.model = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=learning_rate,
                                                    max_leaf_nodes=max_leaf_nodes, random_state=random_state,
                                                    l2_regularization=l2_regularization,
                                                    early_stopping=False)  # fmt: skip
        self.training_counts_: dict[str, int] = {}

    # the unsupervised score and the "nothing known" risk are added before the usual hygiene
    def complete_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """``features`` with the base's score and "nothing known" risk columns where absent."""
        extra: dict[str, Any] = {}
        if SCORE_COLUMN in (self.feature_columns or ()) and SCORE_COLUMN not in features.columns:
            extra[SCORE_COLUMN] = self.base.score(features)
        for column in RISK_COLUMNS:
            if column in (self.feature_columns or ()) and column not in features.columns:
                extra[column] = 0.0
        return features.assign(**extra) if extra else features

    def matrix(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(features, pd.DataFrame):
            features = self.complete_frame(features)
        return super().matrix(features)

    def fit(self, features: pd.DataFrame) -> SupervisedDetector:  # type: ignore[override]
        """Fit the base (unless already fitted) on every row, then the trees on the labelled
        (and sampled unlabelled) rows of ``features``, whose ``TARGET_COLUMN`` holds the verdicts."""
        if not isinstance(features, pd.DataFrame) or TARGET_COLUMN not in features.columns:
            raise ValueError(f"supervised: the training frame needs the verdict column {TARGET_COLUMN!r}")
        if not self.base.fitted:
            self.base.fit(features)
        target = pd.to_numeric(features[TARGET_COLUMN], errors="coerce").to_numpy(dtype=float)
        rows = self._training_rows(target)
        frame = self.complete_frame(features.iloc[rows].reset_index(drop=True))
        y = np.nan_to_num(target[rows], nan=0.0) >= 0.5
        frauds = int(y.sum())
        if frauds < self.params["min_frauds"] or frauds == len(y):
            raise ValueError(f"supervised: {frauds} confirmed fraud(s) among {len(y):,} training rows; "
                             f"at least {self.params['min_frauds']} and some negatives are needed")  # fmt: skip
        self.training_counts_ = {"frauds": frauds, "dismissed": int((target[rows] < 0.5).sum()),
                                 "unlabelled": int(np.isnan(target[rows]).sum())}  # fmt: skip
        self._y = y
        try:
            return super().fit(frame)
        finally:
            del self._y

    def _training_rows(self, target: np.ndarray) -> np.ndarray:
        labelled = np.flatnonzero(~np.isnan(target))
        if not self.params["unlabelled_as_negative"]:
            return labelled
        unlabelled = np.flatnonzero(np.isnan(target))
        if len(unlabelled) > self.params["max_unlabelled"]:
            rng = np.random.default_rng(self.params["random_state"])
            unlabelled = np.sort(rng.choice(unlabelled, self.params["max_unlabelled"], replace=False))
        return np.sort(np.concatenate([labelled, unlabelled]))

    def _fit(self, x: np.ndarray) -> None:
        with threadpool_limits(self.params.get("threads", 1)):
            self.model.fit(x, self._y)

    def _raw(self, x: np.ndarray) -> np.ndarray:
        with threadpool_limits(self.params.get("threads", 1)):
            return np.asarray(self.model.decision_function(x), dtype=float)
