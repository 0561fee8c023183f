"""Reasons in words from real SHAP values: the sign is right, the perturbed feature comes first."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from finsentry.detectors import make_detector
from finsentry.detectors.base import Detector
from finsentry.detectors.supervised import SUPERVISED_EXTRA_COLUMNS
from finsentry.detectors.tails import TAILS_COLUMNS
from finsentry.explain import (
    PHRASES,
    SEQUENCE_REASONS,
    Reason,
    fast_explain,
    phrase,
    rule_reason,
    shap_contributions,
    top_reasons,
)
from finsentry.features import DETECTOR_COLUMNS
from tests.detectors import planted_frame


def test_every_feature_has_one_phrase_that_renders_any_value():
    assert set(PHRASES) == set(TAILS_COLUMNS) | set(SEQUENCE_REASONS) | set(SUPERVISED_EXTRA_COLUMNS)
    for name in PHRASES:
        assert phrase(name, 1.0)
        for value in (0.0, -3.0, 1e6, np.nan, np.inf, -np.inf):
            text = phrase(name, value)
            assert text is None or isinstance(text, str)


def test_phrases_read_the_feature_units():
    assert phrase("amount_ratio_log", math.log(14.0)) == "amount 14× the account's typical amount for this operation"
    assert phrase("n_last_hour", 3.0) == "3 transactions in the previous hour"
    assert phrase("n_last_day", 32.0) == "at least 32 transactions in the previous 24 hours"
    assert phrase("balance_error", 1234.5) == "balance off by 1,234.50 (balance after ≠ balance before ± amount)"
    assert phrase("daily_spend_ratio", math.log1p(4.0)) == "spend today 4.0× the account's usual daily spend"
    assert phrase("decimal_shift", 1.0).endswith("(decimal shift)")
    assert phrase("new_partner_account", 0.0) is None  # a flag that is off is no reason
    assert phrase("x7", 2.5) == "x7 = 2.5"  # benchmark columns


def test_top_reasons_keep_positive_contributions_in_order():
    frame = pd.DataFrame([[math.log(14.0), 3.0, 0.0, 0.0]],
                         columns=["amount_ratio_log", "n_last_hour", "hour_rarity", "new_partner_bank"])  # fmt: skip
    reasons = top_reasons(frame, np.array([[0.5, 0.9, -0.2, 0.7]]), top_k=3)[0]
    assert [r.feature for r in reasons] == ["n_last_hour", "amount_ratio_log"]  # the flag is off: skipped
    assert reasons[0] == Reason("n_last_hour", 3.0, 0.9, "3 transactions in the previous hour")
    assert top_reasons(frame, np.array([[0.5, 0.9, -0.2, 0.7]]), top_k=1)[0][0].feature == "n_last_hour"


def test_rule_reason_of_a_type_outside_the_catalog():
    reason = rule_reason("custom_rule", pd.Series({"amount_z": 1.0}))
    assert reason.text == "rule custom_rule fired" and reason.contribution == math.inf
    assert reason.to_dict()["contribution"] is None


@pytest.fixture(scope="module")
def iforest():
    return make_detector("isolation_forest").fit(planted_frame(seed=21))


def test_tree_shap_explains_the_isolation_forest_path_length_with_the_sign_flipped(iforest):
    """Real TreeExplainer values: expected path length - sum(contributions) = mean path length
    h(x), and 2^(-h / c(n)) is exactly the forest's raw score."""
    import shap

    rows = planted_frame(n=200, seed=22)
    contributions = shap_contributions(iforest, rows)
    n = iforest.model.max_samples_
    c = 2 * (math.log(n - 1) + 0.5772156649) - 2 * (n - 1) / n
    h = float(np.ravel(shap.TreeExplainer(iforest.model).expected_value)[0]) - contributions.sum(axis=1)
    np.testing.assert_allclose(2 ** (-h / c), iforest.raw_score(rows), rtol=1e-9)


@pytest.mark.parametrize("name", ("isolation_forest", "lof"))
@pytest.mark.parametrize(("feature", "value"), [("amount_z", 12.0), ("hour_rarity", 9.0), ("balance_gap", 500.0)])
def test_top_reason_of_the_planted_outlier_names_the_perturbed_feature(name, feature, value):
    train = planted_frame(feature, value, seed=23)
    model = make_detector(name).fit(train)
    contributions = shap_contributions(model, train.iloc[:1])
    assert int(np.argmax(contributions[0])) == DETECTOR_COLUMNS.index(feature)
    assert contributions[0].max() > 0
    reasons = model.explain(train.iloc[[0]], top_k=3)[0]
    assert reasons[0].feature == feature and reasons[0].text == phrase(feature, value)


def test_ensemble_puts_the_rule_first_then_the_isolation_forest_reasons():
    train = planted_frame(seed=24)
    rules = lambda f: np.where(f["balance_error"].to_numpy() > 0.005, "balance_mismatch", "")  # noqa: E731
    model = make_detector("ensemble", rules=rules).fit(train)
    test = train.iloc[[0, 5]].copy()
    test.iloc[1, DETECTOR_COLUMNS.index("balance_error")] = 90.0
    first, second = model.explain(test, top_k=3)
    assert first[0].feature == "amount_z"
    assert first[0] == model.members[0].explain(test.iloc[[0]])[0][0]  # the IF's SHAP reason
    assert second[0].contribution == math.inf and "balance" in second[0].text.lower()
    assert len(second) <= 3 and len({r.feature for r in second}) == len(second)


# --- the fast path (no SHAP): stream scorer and every alert past a batch's explain_top -------------


def test_path_contributions_add_up_to_the_path_length_shortfall_and_track_tree_shap():
    from finsentry.detectors.fast_forest import flatten, node_expectations, path_contributions, raw_scores
    from tests.factories import gaussian_features

    frame = gaussian_features(800)
    det = make_detector("isolation_forest", n_estimators=60).fit(frame)
    x = det.forest_input(det.matrix(frame))  # what the forest sees
    flat, expected = flatten(det.model), node_expectations(det.model)
    contrib = path_contributions(det.model, flat, expected, x[:100])
    depth = -np.log2(raw_scores(flat, x[:100])) * flat.denominator  # total path length
    base = expected[flat.roots].sum()
    np.testing.assert_allclose(contrib.sum(axis=1), (base - depth) / flat.denominator, atol=1e-9)
    shap = shap_contributions(det, frame.iloc[:100])
    outliers = np.argsort(-det.raw_score(frame.iloc[:100]))[:20]
    same_top = np.mean([np.argmax(contrib[i]) == np.argmax(shap[i]) for i in outliers])
    assert same_top >= 0.8
    assert np.argmax(contrib[0]) == list(det.feature_columns).index("amount_z")  # the planted outlier


def test_fast_reasons_of_the_ensemble_put_the_rule_first_then_tree_reasons():
    from tests.factories import gaussian_features

    frame = gaussian_features(400)
    frame.loc[3, "balance_error"] = 50.0
    ens = make_detector("ensemble").fit(frame)
    reasons = fast_explain(ens, frame.iloc[[0, 3]], top_k=3)
    assert reasons[1][0].feature == "balance_error" and np.isinf(reasons[1][0].contribution)
    assert reasons[0] and reasons[0][0].feature == "amount_z" and all(len(r) <= 3 for r in reasons)
    assert reasons[0][0].text == phrase("amount_z", 12.0)
    assert fast_explain(ens, frame.iloc[[0]], top_k=0) == [[]]


class _Distance(Detector):
    """A detector without a fast path of its own: the distance from the origin."""

    def _fit(self, x):
        return None

    def _raw(self, x):
        return np.abs(x).sum(axis=1)


@pytest.mark.parametrize("detector", ["lof", "distance"])
@pytest.mark.parametrize(("feature", "value"), [("amount_z", 12.0), ("balance_gap", 500.0)])
def test_fast_reasons_of_lof_and_of_any_detector_name_the_planted_feature(detector, feature, value):
    train = planted_frame(feature, value, seed=25)
    model = (make_detector("lof") if detector == "lof" else _Distance()).fit(train)
    reasons = fast_explain(model, train.iloc[[0, 1, 2]], top_k=3)
    assert reasons[0][0].feature == feature and reasons[0][0].text == phrase(feature, value)
    assert len(reasons) == 3 and all(len(r) <= 3 for r in reasons)
