"""The ensemble's rules are evidence under the budget: suspended when they fire on too much of
the training window, the balance tolerance following the data's rounding, any table accepted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsentry.anomalies import apply_rules, data_unit
from finsentry.detectors import make_detector
from finsentry.detectors.ensemble import RULE_SUSPEND_SHARE, EnsembleDetector
from tests.detectors import planted_frame


def test_a_rule_firing_on_much_of_the_training_window_is_suspended_with_a_warning():
    train = planted_frame(n=800, seed=1)
    train["log_amount"] = np.log1p(np.round(np.abs(train["log_amount"]) * 100, 2))
    train.loc[: int(0.3 * len(train)), "balance_error"] = 50.0  # a source whose balances never add up
    model = EnsembleDetector().fit(train)
    assert set(model.suspended_rules_) == {"balance_mismatch"}
    assert model.suspended_rules_["balance_mismatch"] > RULE_SUSPEND_SHARE
    assert "balance_mismatch suspended" in model.warnings[0]
    scores, types = model.score_with_types(train.iloc[:20])
    assert (types == "").all() and (scores < 1.0).all()


def test_a_rare_rule_stays_active_and_rounding_is_not_a_mismatch():
    train = planted_frame(n=800, seed=2)
    train["log_amount"] = np.log1p(np.round(np.abs(train["log_amount"]) * 100, 2))  # cents
    train.loc[:2, "balance_error"] = 50.0
    model = EnsembleDetector().fit(train)
    assert model.suspended_rules_ == {} and model.warnings == []
    assert model.balance_tolerance_ == 0.01
    test = train.iloc[[5, 6]].copy()
    test["balance_error"] = [0.01, 0.02]  # one unit of the data's precision is rounding
    assert list(model.score_with_types(test)[1]) == ["", "balance_mismatch"]


def test_data_unit_is_the_coarsest_rounding_the_amounts_follow():
    assert data_unit(np.array([1.0, 20.0, 300.0])) == 1.0
    assert data_unit(np.array([1.5, 20.0, 3.25])) == 0.01
    assert data_unit(np.array([1.234, 20.0])) == 0.001


def test_rules_fire_only_where_their_columns_exist_and_never_on_nan():
    generic = pd.DataFrame({"x0": [1.0, 2.0]})
    assert list(apply_rules(generic)) == ["", ""]
    no_balances = pd.DataFrame({"balance_error": [np.nan, 3.0], "duplicate_recent": [0.0, 0.0]})
    assert list(apply_rules(no_balances)) == ["", "balance_mismatch"]


def test_the_default_runs_on_a_generic_table_and_is_seedable():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    a = make_detector("ensemble", feature_columns=None, random_state=3).fit(table)
    b = make_detector("ensemble", feature_columns=None, random_state=3).fit(table)
    np.testing.assert_array_equal(a.score(table), b.score(table))


def test_feature_columns_with_no_value_in_training_are_left_out_and_named():
    train = planted_frame(seed=3)
    train["balance_error"] = np.nan
    train["balance_gap"] = np.nan
    model = make_detector("isolation_forest").fit(train)
    assert model.unfed_features_ == ["balance_error", "balance_gap"]
    assert "balance_error" not in model.feature_columns
    assert np.isfinite(model.score(train)).all()


def test_combine_max_takes_the_most_confident_member():
    train = planted_frame(seed=4)
    iforest, tails = make_detector("isolation_forest").fit(train), make_detector("tails").fit(train)
    model = EnsembleDetector([iforest, tails], use_rules=False, combine="max").fit(train)
    np.testing.assert_allclose(model.raw_score(train), np.maximum(iforest.score(train), tails.score(train)))
    with pytest.raises(ValueError, match="combine"):
        EnsembleDetector([iforest, tails], combine="median")


def test_combine_fisher_is_the_default_and_sums_minus_log_tail_probabilities():
    train = planted_frame(seed=4)
    iforest, tails = make_detector("isolation_forest").fit(train), make_detector("tails").fit(train)
    model = EnsembleDetector([iforest, tails], weights=[3, 1], use_rules=False).fit(train)
    assert model.params["combine"] == "fisher"
    expected = 0.75 * -np.log1p(-iforest.score(train)) + 0.25 * -np.log1p(-tails.score(train))
    np.testing.assert_allclose(model.raw_score(train), expected)


def test_fisher_keeps_one_member_far_in_its_tail_where_a_mean_averages_it_away():
    """Member tail probabilities (1e-4, 0.5) against (1e-2, 1e-2): Fisher ranks the first row
    higher (one strong piece of evidence), the mean the second (two lukewarm ones)."""
    from finsentry.detectors.base import Detector

    class Fixed(Detector):
        def __init__(self, column: str) -> None:
            super().__init__((column,))
            self.params = {}

        def _fit(self, x):
            return None

        def _raw(self, x):
            return x[:, 0]

        def calibrate(self, raw):
            return np.asarray(raw, dtype=float)

    frame = pd.DataFrame({"p": [1 - 1e-4, 1 - 1e-2, 0.3], "q": [0.5, 1 - 1e-2, 0.2]})
    members = [Fixed("p").fit(frame), Fixed("q").fit(frame)]
    fisher = EnsembleDetector(members, use_rules=False).fit(frame).raw_score(frame)
    mean = EnsembleDetector(members, use_rules=False, combine="mean").fit(frame).raw_score(frame)
    assert fisher[0] > fisher[1] and mean[0] < mean[1]
