"""Reasons in words: one phrase per feature, top positive contributions only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsentry.explain import PHRASES, phrase, top_reasons
from finsentry.features import FEATURE_COLUMNS


def test_every_feature_has_a_phrase():
    assert set(PHRASES) == set(FEATURE_COLUMNS)
    for name in FEATURE_COLUMNS:
        assert phrase(name, 1.0)


def test_top_reasons_keep_positive_contributions_in_order():
    frame = pd.DataFrame([[np.log(14.0), 3.0, 0.0]], columns=["amount_ratio_log", "n_last_hour", "hour_rarity"])
    reasons = top_reasons(frame, np.array([[0.5, 0.9, -0.2]]), top_k=3)[0]
    assert [r.feature for r in reasons] == ["n_last_hour", "amount_ratio_log"]
    assert reasons[1].text == "amount 14× the account's typical amount for this operation"
    assert reasons[0].text == "3 transactions in the previous hour"
