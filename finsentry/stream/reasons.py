"""Reasons for the streaming path: tree path attributions instead of sampled SHAP.

Batch scoring explains alerts with SHAP (``finsentry.explain``): exact TreeSHAP for the forest,
a permutation explainer for LOF. On a stream those cost 10-20 ms per alert (TreeSHAP over 200
trees) up to a second (permutations), so an alert-heavy batch would blow the latency budget.
``stream_explain`` keeps the same reason format and phrases but computes contributions with
``fast_forest.path_contributions`` (an O(depth) walk per tree):

* Isolation Forest: its path attributions;
* ensemble: the rule hit's reason first, then the Isolation Forest members' path attributions
  ("tree-only reasons": sampled members are not asked);
* any other detector: its own ``explain`` (SHAP), unchanged.

Which transactions alert does not change: only how the top reasons are computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsentry.detectors.fast_forest import flatten, node_expectations, path_contributions
from finsentry.explain import Reason, rule_reason, top_reasons


def _forest_reasons(detector, features: pd.DataFrame, top_k: int) -> list[list[Reason]]:
    cache = getattr(detector, "_shap_paths", None)  # "_shap*": rebuilt after loading, never pickled
    if cache is None or cache[0] is not detector.model:
        cache = (detector.model, flatten(detector.model), node_expectations(detector.model))
        detector._shap_paths = cache
    frame = detector.features_frame(features)
    contributions = path_contributions(detector.model, cache[1], cache[2], frame.to_numpy())
    return top_reasons(frame, contributions, top_k=top_k)


def _is_forest(detector) -> bool:
    return getattr(detector, "name", "") == "isolation_forest" and hasattr(detector.model, "estimators_")


def stream_explain(detector, features: pd.DataFrame, top_k: int = 3) -> list[list[Reason]]:
    """Top reasons of each row, for the streaming scorer (see the module docstring)."""
    if _is_forest(detector):
        return _forest_reasons(detector, features, top_k)
    members = getattr(detector, "members", None)
    if members is None:
        return detector.explain(features, top_k=top_k)
    reasons: list[list[Reason]] = [[] for _ in range(len(features))]
    for i, t in enumerate(detector.rule_types(features)):
        if t and top_k > 0:
            reasons[i].append(rule_reason(t, features.iloc[i]))
    forests = [m for w, m in zip(detector.weights, members, strict=True) if w > 0 and _is_forest(m)]
    for member in forests:
        short = np.flatnonzero([len(rs) < top_k for rs in reasons])
        if not short.size:
            break
        for i, found in zip(short, _forest_reasons(member, features.iloc[short], top_k), strict=True):
            named = {r.feature for r in reasons[i]}
            reasons[i].extend([r for r in found if r.feature not in named][: top_k - len(reasons[i])])
    return reasons
