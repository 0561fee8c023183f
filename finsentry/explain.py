"""Reason codes: SHAP contributions turned into the top reasons of an alert, in words.

Contributions come from each detector's SHAP explainer (``Detector.contributions``: exact
TreeExplainer for the Isolation Forest, the permutation explainer for LOF). This module picks
the strongest positive ones and renders them from one phrase table keyed by feature.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float
    contribution: float  # SHAP value towards "anomalous" (inf for a rule hit)
    text: str


def _times(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


PHRASES: dict[str, Callable[[float], str]] = {
    "log_amount": lambda v: f"amount of {math.expm1(v):,.2f}",
    "amount_z": lambda v: f"amount {abs(v):.1f} standard deviations {'above' if v >= 0 else 'below'} "
    "the account's usual for this operation",
    "amount_ratio_log": lambda v: f"amount {_times(math.exp(v))}× the account's typical amount for this operation",
    "decimal_shift": lambda v: "amount is a power of ten away from the last one of this kind (decimal shift)",
    "daily_spend_ratio": lambda v: f"spend today {_times(math.expm1(v))}× the account's usual daily spend",
    "monthly_spend_ratio": lambda v: f"spend this month {_times(math.expm1(v))}× the account's usual",
    "n_last_hour": lambda v: f"{int(v)} transactions in the previous hour",
    "n_last_day": lambda v: f"{int(v)} transactions in the previous 24 hours",
    "hour_rarity": lambda v: "an hour this account rarely uses on this channel "
    f"({100 * math.exp(-v):.0f} % of its history)",
    "hour_distance": lambda v: f"{int(v)} hours away from any time of day this account has used",
    "new_partner_account": lambda v: "first payment with this partner account",
    "new_partner_bank": lambda v: "first transaction with this partner bank",
    "log_gap_hours": lambda v: f"{math.expm1(v):,.1f} hours since the previous transaction",
    "history_count_log": lambda v: f"a short account history ({math.expm1(v):.0f} earlier transactions)",
    "balance_error": lambda v: f"balance after is off by {v:,.2f} from balance before ± amount",
    "balance_gap": lambda v: f"balance before is {v:,.2f} away from the previous balance after",
    "duplicate_recent": lambda v: "identical posting made moments before (same amount, operation, partner)",
    "op_rarity": lambda v: f"an operation this account rarely makes ({100 * math.exp(-v):.0f} % of its history)",
    "transition_rarity": lambda v: "an unusual operation after the previous one "
    f"({100 * math.exp(-v):.0f} % of such transitions)",
    "rapid_pass_through": lambda v: "takes most of a credit received less than 48 hours before",
}


def phrase(feature: str, value: float) -> str:
    render = PHRASES.get(feature)
    return render(float(value)) if render else f"{feature} = {value:.3g}"


def top_reasons(features: pd.DataFrame, contributions: np.ndarray, top_k: int = 3) -> list[list[Reason]]:
    """Per row, the ``top_k`` features pushing hardest towards anomalous, in words."""
    names = list(features.columns)
    values = features.to_numpy(dtype=float)
    contributions = np.asarray(contributions, dtype=float).reshape(len(features), len(names))
    out: list[list[Reason]] = []
    for i in range(len(features)):
        order = np.argsort(-contributions[i], kind="stable")[:top_k]
        out.append([Reason(names[j], float(values[i, j]), float(contributions[i, j]),
                           phrase(names[j], values[i, j]))
                    for j in order if contributions[i, j] > 0])  # fmt: skip
    return out


def rule_reason(anomaly_type: str, features_row: pd.Series) -> Reason:
    """The reason of a rule hit: the catalog's text, with the feature value that fired."""
    from finsentry.anomalies import CATALOG, AnomalyType

    entry = CATALOG[AnomalyType(anomaly_type)]
    feature = entry.rule_feature or ""
    value = float(features_row.get(feature, np.nan)) if feature else float("nan")
    text = phrase(feature, value) if feature in PHRASES else entry.reason
    return Reason(feature, value, float("inf"), f"{entry.title}: {text}")

