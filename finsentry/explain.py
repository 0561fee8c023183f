"""Reason codes: SHAP contributions turned into the top reasons of an alert, in words.

``shap_contributions`` asks SHAP how much each feature pushed a row's anomaly score, signed so
that POSITIVE = pushes towards anomalous:

* Isolation Forest: SHAP's exact ``TreeExplainer`` on the fitted forest. It explains the mean
  path length, and a shorter path means more anomalous, so the values are negated.
* the supervised candidate (gradient-boosted trees): ``TreeExplainer`` on the classifier, exact
  for its log-odds of fraud (higher = more anomalous already, no sign flip).
* any other detector: SHAP's model-agnostic ``PermutationExplainer`` over the detector's raw
  score (higher = more anomalous already), masking features with the ~50 training rows each
  detector keeps as background at fit time (``Detector.background_``).

SHAP is the expensive part (TreeSHAP 10-20 ms per row over 200 trees, permutations about 2.5
CPU s per row for LOF), so a batch explains only its top alerts with it (``finsentry.scoring``'s
``explain_top``) and every other alert with ``fast_explain``: the same reason format and phrases,
contributions from cheap attributions instead (see its docstring). The streaming scorer uses
``fast_explain`` for every alert.

``top_reasons`` keeps the strongest positive contributions of each row and renders them from
ONE phrase table keyed by feature name (``PHRASES``). A phrase is None when the value cannot
be a reason in words (a flag that is off, an error of zero): such a feature is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from finsentry.features import DRAIN_CAP, HISTORY_CAP, N_OPS, op_name
from finsentry.label_risk import ENTITIES, RISK_WINDOWS, risk_column

if TYPE_CHECKING:
    from finsentry.detectors.base import Detector

NEIGHBOUR_CHUNK = 2_000  # rows per neighbour query in the LOF fast path (rows x k x features floats)
PERMUTATIONS = 3  # antithetic permutations per row for model-agnostic SHAP (2 x features + 1 evals each)
COUNT_CAP = 32  # n_last_hour and n_last_day are capped at this in finsentry.features


@dataclass(frozen=True)
class Reason:
    """One reason of an alert: the feature, its value, its SHAP push towards anomalous, words."""

    feature: str
    value: float
    contribution: float  # SHAP value towards "anomalous"; inf for a rule hit
    text: str

    def to_dict(self) -> dict:
        """JSON-friendly form (non-finite numbers become None)."""
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(self).items()}


# --- SHAP ------------------------------------------------------------------------------------


def shap_contributions(detector: Detector, features: pd.DataFrame | np.ndarray) -> np.ndarray:
    """SHAP values of the detector's score: rows x ``detector.feature_columns``, POSITIVE =
    pushes towards anomalous. Inputs go through the detector's hygiene (``Detector.matrix``)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest

    x = detector.matrix(features)
    if len(x) == 0:
        return np.zeros(x.shape)
    model = getattr(detector, "model", None)
    if isinstance(model, IsolationForest):
        return _tree_contributions(detector, model, x)
    if isinstance(model, HistGradientBoostingClassifier):
        return -_tree_contributions(detector, model, x)  # log-odds of fraud: already "towards anomalous"
    return _permutation_contributions(detector, x)


def _tree_contributions(detector: Detector, forest, x: np.ndarray) -> np.ndarray:
    import shap

    explainer = getattr(detector, "_shap_tree", None)
    if explainer is None:  # built once per fitted detector, never pickled (Detector.__getstate__)
        explainer = shap.TreeExplainer(forest)
        detector._shap_tree = explainer
    # SHAP explains the mean path length: shorter = more anomalous, hence the sign flip
    z = detector.forest_input(x) if hasattr(detector, "forest_input") else x
    return -np.asarray(explainer.shap_values(z), dtype=float).reshape(x.shape)


def _permutation_contributions(detector: Detector, x: np.ndarray) -> np.ndarray:
    import shap

    background = detector.background_
    if background is None:
        raise RuntimeError(f"{detector.name} is not fitted (no SHAP background)")
    masker = shap.maskers.Independent(background, max_samples=len(background))
    explainer = shap.PermutationExplainer(detector._raw, masker, seed=0)
    max_evals = PERMUTATIONS * (2 * x.shape[1] + 1)
    return np.asarray(explainer(x, max_evals=max_evals, silent=True).values, dtype=float).reshape(x.shape)


# --- words -----------------------------------------------------------------------------------


def _times(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:.1f}"


def _share(v: float) -> float:
    """The probability behind a ``-log P`` feature, in %."""
    return 100.0 * math.exp(-v)


def _pct(p: float) -> str:
    """A probability in %, with enough digits to tell 0.4 % from 0.04 %."""
    if p < 1e-4:
        return "< 0.01 %"
    return f"{100 * p:.2g} %" if p < 0.1 else f"{100 * p:.0f} %"


def _count(v: float, window: str) -> str:
    n = int(round(v))
    return f"{'at least ' if n >= COUNT_CAP else ''}{n} transaction{'' if n == 1 else 's'} in the previous {window}"


def _flag(text: str) -> Callable[[float], str | None]:
    return lambda v: text if v >= 0.5 else None


def _rarity(rare: str, usual: str) -> Callable[[float], str]:
    return lambda v: f"{rare if _share(v) < 5 else usual} ({_share(v):.0f} % of its history)"


SEQUENCE_REASONS = ("seq_op_surprise", "seq_purpose_surprise", "seq_amount_error")  # the LSTM's, not features
def _period(window_days: int) -> str:
    return "day" if window_days == 1 else f"{window_days} days"


def _known_frauds(entity: str, window_days: int) -> Callable[[float], str | None]:
    where = "on this account" if entity == "account" else "with this partner"
    return lambda v: (f"{math.expm1(v):,.0f} confirmed fraud(s) {where} in the last {_period(window_days)}"
                      if v > 0 else None)  # fmt: skip


def _fraud_share(entity: str, window_days: int) -> Callable[[float], str | None]:
    return lambda v: (f"{v:.0%} of this {entity}'s transactions checked in the last {_period(window_days)} "
                      "were fraud" if v > 0 else None)  # fmt: skip


PHRASES: dict[str, Callable[[float], str | None]] = {
    "log_amount": lambda v: f"amount of {math.expm1(v):,.2f}",
    "amount_z": lambda v: f"amount {abs(v):.1f} standard deviations {'above' if v >= 0 else 'below'} "
    "the account's usual for this operation",
    "amount_ratio_log": lambda v: f"amount {_times(math.exp(v))}× the account's typical amount for this operation",
    "decimal_shift": _flag("amount is a power of ten away from the last one of this kind (decimal shift)"),
    "daily_spend_ratio": lambda v: f"spend today {_times(math.expm1(v))}× the account's usual daily spend",
    "monthly_spend_ratio": lambda v: f"spend this month {_times(math.expm1(v))}× the account's usual monthly spend",
    "n_last_hour": lambda v: _count(v, "hour"),
    "n_last_day": lambda v: _count(v, "24 hours"),
    "hour_rarity": _rarity("an hour this account rarely uses on this channel", "hour of day on this channel"),
    "hour_distance": lambda v: f"{v:.0f} hours from any time of day this account has used on this channel"
    if v >= 1 else None,
    "new_partner_account": _flag("first transaction with this partner account"),
    "new_partner_bank": _flag("first transaction with this partner bank"),
    "log_gap_hours": lambda v: f"{math.expm1(v):,.1f} hours since the previous transaction",
    "history_count_log": lambda v: (f"{math.expm1(v):,.0f} earlier transactions on this account"
                                    if math.expm1(v) < HISTORY_CAP - 0.5
                                    else f"{HISTORY_CAP:,.0f} or more earlier transactions on this account"),
    "balance_error": lambda v: f"balance off by {v:,.2f} (balance after ≠ balance before ± amount)" if v > 0 else None,
    "balance_gap": lambda v: f"balance before is {v:,.2f} away from the previous balance after" if v > 0 else None,
    "duplicate_recent": _flag("identical posting (amount, operation, partner, purpose) made just before"),
    "op_rarity": _rarity("an operation this account rarely makes", "operation"),
    "transition_rarity": _rarity("an unusual operation after the previous one", "operation after the previous one"),
    "rapid_pass_through": _flag("takes 90 % or more of a credit received less than 48 hours before"),
    "seq_op": lambda v: f"{op_name(int(v))}, an operation rare across the bank" if 1 <= v <= N_OPS else None,
    "amount_burst": lambda v: (f"a large amount in a recent run of postings far above the account's usual "
                               f"(burst {v:.1f})" if v > 0 else None),
    "drain_share": lambda v: (f"takes {v:.0%} of the balance before it" if 0.5 <= v < DRAIN_CAP
                              else "a debit from an empty or overdrawn account" if v >= DRAIN_CAP else None),
    # the counterparty's features (finsentry.partners)
    "partner_senders_recent_log": lambda v: f"about {math.expm1(v):,.0f} accounts dealt with this partner in the "
    "last 7 days",
    "partner_senders_ratio": lambda v: f"{_times(math.exp(v))}× the partner's usual number of accounts in 7 days"
    if v >= 0 else f"{_times(math.exp(-v))}× fewer accounts than the partner's usual in 7 days",
    "partner_volume_ratio": lambda v: f"amount moved with this partner today {_times(math.expm1(v))}× its usual day",
    "partner_age_log": lambda v: f"partner first seen by the bank {math.expm1(v):,.0f} days ago",
    "partner_new": _flag("partner never seen by the bank before"),
    # the supervised candidate's inputs (finsentry.label_risk, finsentry.detectors.supervised)
    **{risk_column(e, "frauds_known_log", w): _known_frauds(e, w) for e in ENTITIES for w in RISK_WINDOWS},
    **{risk_column(e, "fraud_share_known", w): _fraud_share(e, w) for e in ENTITIES for w in RISK_WINDOWS},
    "unsupervised_score": lambda v: f"unusual for the unsupervised model (score {v:.3f})",
    # the LSTM sequence detector's reasons (finsentry.detectors.sequence): value = probability / ratio
    "seq_op_surprise": lambda v: f"operation {_pct(v)} likely after the account's previous transactions",
    "seq_purpose_surprise": lambda v: f"purpose {_pct(v)} likely for this operation after the account's previous ones",
    "seq_amount_error": lambda v: f"amount {_times(v)}× what the account's previous transactions predicted"
    if v >= 1 else f"amount {1 / max(v, 1e-9):,.1f}× below what the account's previous transactions predicted",
}  # fmt: skip


def phrase(feature: str, value: float) -> str | None:
    """The feature's value in words, from ``PHRASES``; None when that value is no reason.

    A feature outside the table (benchmark columns) reads ``name = value``, and so does a
    value the template cannot render (NaN, overflow) rather than failing.
    """
    value = float(value)
    render = PHRASES.get(feature)
    if render is not None:
        try:
            return render(value)
        except (ValueError, OverflowError):
            pass
    return f"{feature} = {value:.4g}"


def top_reasons(features: pd.DataFrame, contributions: np.ndarray, top_k: int = 3) -> list[list[Reason]]:
    """Per row, up to ``top_k`` features with the largest POSITIVE contributions, in words.

    ``features`` holds the values the model saw, its columns in the order of the columns of
    ``contributions``. Ties keep column order; a feature whose value is no reason in words
    (``phrase`` is None) is skipped.
    """
    names = list(features.columns)
    values = features.to_numpy(dtype=float)
    contributions = np.asarray(contributions, dtype=float).reshape(len(features), len(names))
    out: list[list[Reason]] = []
    for i in range(len(features)):
        row: list[Reason] = []
        for j in np.argsort(-contributions[i], kind="stable"):
            if len(row) >= top_k or not contributions[i, j] > 0:
                break
            text = phrase(names[j], values[i, j])
            if text is not None:
                row.append(Reason(names[j], float(values[i, j]), float(contributions[i, j]), text))
        out.append(row)
    return out


def rule_reason(anomaly_type: str, features_row: pd.Series) -> Reason:
    """The reason of a rule hit: the catalog's title, with the value of the feature that fired.

    A type the catalog does not know (a custom rule) reads "rule <type> fired".
    """
    try:
        from finsentry.anomalies import CATALOG, AnomalyType

        entry = CATALOG[AnomalyType(anomaly_type)]
    except (ImportError, ValueError, KeyError):
        return Reason("", float("nan"), float("inf"), f"rule {anomaly_type} fired")
    feature = entry.rule_feature or ""
    value = float(features_row.get(feature, np.nan)) if feature else float("nan")
    text = (phrase(feature, value) if feature in PHRASES else None) or entry.reason
    return Reason(feature, value, float("inf"), f"{entry.title}: {text}")


# --- the fast path: reasons without SHAP ---------------------------------------------------------


def _is_forest(detector: Detector) -> bool:
    return getattr(detector, "name", "") == "isolation_forest" and hasattr(getattr(detector, "model", None),
                                                                           "estimators_")  # fmt: skip


def _forest_reasons(detector: Detector, features: pd.DataFrame, top_k: int) -> list[list[Reason]]:
    from finsentry.detectors.fast_forest import flatten, node_expectations, path_contributions

    cache = getattr(detector, "_shap_paths", None)  # "_shap*": rebuilt after loading, never pickled
    if cache is None or cache[0] is not detector.model:
        cache = (detector.model, flatten(detector.model), node_expectations(detector.model))
        detector._shap_paths = cache
    frame = detector.features_frame(features)
    contributions = path_contributions(detector.model, cache[1], cache[2], detector.forest_input(frame.to_numpy()))
    return top_reasons(frame, contributions, top_k=top_k)


def _neighbour_steps(detector: Detector):
    """(scaler, fitted LocalOutlierFactor) of a LOF detector's pipeline, or None."""
    steps = getattr(getattr(detector, "model", None), "named_steps", None) or {}
    lof, scale = steps.get("lof"), steps.get("scale")
    return (scale, lof) if scale is not None and hasattr(lof, "_fit_X") else None


def _neighbour_reasons(detector: Detector, features: pd.DataFrame, top_k: int) -> list[list[Reason]]:
    """LOF: each feature's share of the row's squared distance to its k nearest training rows
    (in the detector's robust-scaled space): what sets the row apart from its neighbourhood."""
    scale, lof = _neighbour_steps(detector)
    frame = detector.features_frame(features)
    z = scale.transform(frame.to_numpy())
    contributions = np.zeros_like(z)
    for start in range(0, len(z), NEIGHBOUR_CHUNK):
        part = z[start : start + NEIGHBOUR_CHUNK]
        _, idx = lof.kneighbors(part)
        contributions[start : start + len(part)] = ((part[:, None, :] - lof._fit_X[idx]) ** 2).mean(axis=1)
    return top_reasons(frame, contributions, top_k=top_k)


def _deviation_reasons(detector: Detector, features: pd.DataFrame, top_k: int) -> list[list[Reason]]:
    """Any other detector: how far each value lies from the median of the detector's SHAP
    background rows, in inter-quartile ranges (standard deviations, or raw units, when 0)."""
    frame = detector.features_frame(features)
    background = detector.background_
    if background is None or len(background) == 0:
        return [[] for _ in range(len(frame))]
    q25, median, q75 = np.quantile(background, [0.25, 0.5, 0.75], axis=0)
    spread = np.where(q75 > q25, q75 - q25, background.std(axis=0))
    spread = np.where(spread > 0, spread, 1.0)
    return top_reasons(frame, np.abs(frame.to_numpy() - median) / spread, top_k=top_k)


def _has_own_reasons(detector: Detector) -> bool:
    """True when the detector's ``explain`` is its own (cheap, e.g. the LSTM's), not SHAP's."""
    from finsentry.detectors.base import Detector

    return type(detector).explain is not Detector.explain


def _ensemble_reasons(detector, features: pd.DataFrame, top_k: int) -> list[list[Reason]]:
    reasons: list[list[Reason]] = [[] for _ in range(len(features))]
    for i, t in enumerate(detector.rule_types(features)):
        if t and top_k > 0:
            reasons[i].append(rule_reason(t, features.iloc[i]))
    asked = [m for w, m in zip(detector.weights, detector.members, strict=True) if w > 0]
    for member in sorted(asked, key=lambda m: not _is_forest(m)):  # tree attributions first
        short = np.flatnonzero([len(rs) < top_k for rs in reasons])
        if not short.size:
            break
        for i, found in zip(short, fast_explain(member, features.iloc[short], top_k), strict=True):
            named = {r.feature for r in reasons[i]}
            reasons[i].extend([r for r in found if r.feature not in named][: top_k - len(reasons[i])])
    return reasons


def fast_explain(detector: Detector, features: pd.DataFrame, top_k: int = 3) -> list[list[Reason]]:
    """Top reasons of each row without SHAP: milliseconds per row, the same ``Reason`` format.

    * Isolation Forest: path attributions (``fast_forest.path_contributions``, an O(depth) walk
      per tree; additive, and its top reason mostly agrees with TreeSHAP's);
    * LOF: each feature's share of the squared distance to the row's nearest training rows;
    * ensemble: the rule hit's reason first, then its members' fast reasons (Isolation Forests
      first), asked only for the rows still short of ``top_k``; zero-weight members are not asked;
    * a detector with reasons of its own (the LSTM's surprise parts): its ``explain``;
    * any other: distance from the median of its background rows, in inter-quartile ranges.

    Which transactions alert does not depend on it: only how their reasons are computed.
    """
    features = features if isinstance(features, pd.DataFrame) else detector.features_frame(features)
    if len(features) == 0:
        return []
    if _is_forest(detector):
        return _forest_reasons(detector, features, top_k)
    if getattr(detector, "members", None) is not None:
        return _ensemble_reasons(detector, features, top_k)
    if _has_own_reasons(detector):
        return detector.explain(features, top_k=top_k)
    if _neighbour_steps(detector) is not None:
        return _neighbour_reasons(detector, features, top_k)
    return _deviation_reasons(detector, features, top_k)
