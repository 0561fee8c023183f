"""One contract for every detector: scores in [0, 1], calibrated, ranked; hygiene; registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsentry.detectors import REGISTRY, Detector, EnsembleDetector, make_detector, register
from finsentry.detectors.base import TAIL
from finsentry.features import DETECTOR_COLUMNS, FEATURE_COLUMNS
from tests.detectors import planted_frame

NAMES = ("isolation_forest", "lof", "ensemble")


def fitted(name: str, train: pd.DataFrame) -> Detector:
    """The detector on the account features the planted frames vary (their partner columns are
    constant zeros, which only reshuffle the forest's random draws: the 99 % margin below is thin).
    The forest reads its columns raw here: the planted outlier sits in the training rows, where
    on the tail scale its surprise is its rank, one above the largest gaussian value (the default
    forest's own test, with an outlier it did not see, is below)."""
    params = {"use_rules": False} if name == "ensemble" else {"tail_families": ()} if name == "isolation_forest" else {}
    return make_detector(name, feature_columns=FEATURE_COLUMNS, **params).fit(train)


def ks_uniform(u: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance of a sample to the uniform law on [0, 1]."""
    u = np.sort(u)
    return float(np.max(np.abs(u - (np.arange(u.size) + 0.5) / u.size)))


@pytest.mark.parametrize("name", NAMES)
def test_scores_lie_in_the_unit_interval_and_rank_the_planted_outlier_on_top(name):
    train = planted_frame(seed=1)
    scores = fitted(name, train).score(train)
    assert ((scores >= 0) & (scores < 1)).all()
    # above 99 % of the inliers: an Isolation Forest sees the outlier in only ~43 % of its trees
    # (256-row subsamples of 600), and in the others it lands with the most extreme inliers
    assert scores[0] > np.quantile(scores[1:], 0.99)
    if name == "lof":
        assert scores[0] > scores[1:].max()


@pytest.mark.parametrize("name", NAMES)
def test_calibrated_scores_are_roughly_uniform_on_training_and_on_new_rows(name):
    train = planted_frame(seed=2)
    model = fitted(name, train)
    assert ks_uniform(model.score(train)) < 0.06
    assert ks_uniform(model.score(planted_frame(n=2000, seed=3).iloc[1:])) < 0.1


def test_calibration_is_monotone_and_keeps_one_for_rules():
    model = make_detector("isolation_forest").fit(planted_frame(seed=4))
    grid = model.grid_
    assert grid.size <= 1001  # a quantile grid is stored, not every training score
    raw = np.r_[grid[0] - 1, np.linspace(grid[0], grid[-1], 500), grid[-1] + np.array([1e-9, 0.01, 1, 1e6, np.inf])]
    p = model.calibrate(raw)
    assert p[0] == 0.0 and (np.diff(p) >= 0).all() and (p < 1.0).all()
    assert p[-5] > 1 - TAIL - 1e-9 and p[-4] > p[-5]  # beyond the training range: still rising
    # the share of training rows less anomalous: the median raw score maps to about 0.5
    assert model.calibrate(np.array([np.median(grid)]))[0] == pytest.approx(0.5 * (1 - TAIL), abs=2e-3)


@pytest.mark.parametrize("name", ("isolation_forest", "lof"))
def test_input_hygiene_selects_columns_and_zeroes_non_finite_values(name):
    train = planted_frame(seed=5)
    model = make_detector(name).fit(train)
    rows = train.iloc[1:4].copy()
    dirty = rows.assign(log_gap_hours=[np.nan, np.inf, -np.inf], extra="ignored")
    dirty = dirty[["extra", *reversed(DETECTOR_COLUMNS)]]
    clean = rows.assign(log_gap_hours=0.0)
    np.testing.assert_array_equal(model.score(dirty), model.score(clean))
    np.testing.assert_array_equal(model.score(clean[list(model.feature_columns)].to_numpy()), model.score(clean))
    with pytest.raises(ValueError, match="lacks columns"):
        model.score(rows.drop(columns="amount_z"))


@pytest.mark.parametrize("name", NAMES)
def test_feature_columns_none_takes_every_column_given_at_fit(name):
    rng = np.random.default_rng(6)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    frame.loc[0, "b"] = 15.0
    params = {"use_rules": False} if name == "ensemble" else {}
    model = make_detector(name, feature_columns=None, **params).fit(frame)
    assert model.feature_columns == ("a", "b", "c")
    assert int(np.argmax(model.score(frame))) == 0


def test_lof_fits_on_a_seeded_subsample():
    train = planted_frame(n=900, seed=7)
    a = make_detector("lof", max_train_rows=300, random_state=1).fit(train)
    b = make_detector("lof", max_train_rows=300, random_state=1).fit(train)
    assert a.model.named_steps["lof"].n_samples_fit_ == 300
    np.testing.assert_array_equal(a.score(train), b.score(train))


def test_ensemble_averages_members_and_recalibrates():
    train = planted_frame(seed=8)
    iforest, lof = make_detector("isolation_forest").fit(train), make_detector("lof").fit(train)
    model = EnsembleDetector([iforest, lof], weights=[3, 1], use_rules=False, combine="mean").fit(train)
    np.testing.assert_allclose(model.raw_score(train), 0.75 * iforest.score(train) + 0.25 * lof.score(train))
    assert model.members[0] is iforest  # fitted members are reused, not refitted
    assert ks_uniform(model.score(train)) < 0.06
    with pytest.raises(ValueError, match="weights"):
        EnsembleDetector([iforest, lof], weights=[1.0])


@pytest.mark.parametrize(("feature", "sign"), [("amount_z", 1.0), ("log_gap_hours", -1.0)])
def test_one_sided_forest_flags_only_the_unusual_direction_of_a_product_feature(feature, sign):
    """amount_z counts high (a large amount), log_gap_hours low (a burst): the same distance on
    the usual side is ordinary for the one-sided forest, and an outlier for the two-sided one.
    Every column read raw (``tail_families=()``): the clipping at the median is what is tested."""
    train = planted_frame(value=0.0, seed=5)  # no outlier in training
    test = train.iloc[:3].copy()
    test.loc[0, feature], test.loc[1, feature] = 12.0 * sign, -12.0 * sign
    one = make_detector("isolation_forest", feature_columns=FEATURE_COLUMNS, tail_families=()).fit(train)
    two = make_detector("isolation_forest", feature_columns=FEATURE_COLUMNS, one_sided=False,
                        tail_families=()).fit(train)  # fmt: skip
    unusual, usual = one.score(test)[:2]
    assert unusual > 0.95 and usual < 0.5
    assert (two.score(test)[:2] > 0.85).all()  # 22 columns share the random splits (0.896 with amount_burst)
    z = one.forest_input(one.matrix(test))
    j = one.feature_columns.index(feature)
    assert z[1, j] == pytest.approx(one.center_[j]) and z[0, j] == 12.0 * sign
    assert (z[:, one.feature_columns.index("history_count_log")] == one.center_[FEATURE_COLUMNS.index(
        "history_count_log")]).all()  # a context column is held at its median


def test_one_sided_forest_leaves_columns_it_does_not_know_two_sided():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    model = make_detector("isolation_forest", feature_columns=None).fit(table)
    low = table.iloc[:2].copy()
    low.loc[0, "a"], low.loc[1, "a"] = -9.0, 9.0
    assert (model.score(low) > 0.95).all()  # both tails of a column it does not know
    np.testing.assert_array_equal(model.forest_input(model.matrix(table)), model.matrix(table))


def test_a_forest_on_the_tail_scale_sees_each_columns_surprise_and_keeps_the_direction():
    from finsentry.detectors.tails import TYPICAL_SURPRISE, column_surprises

    train = planted_frame(value=0.0, seed=5)
    model = make_detector("isolation_forest", feature_columns=FEATURE_COLUMNS, scale="tail").fit(train)
    test = train.iloc[:3].copy()
    test.loc[0, "amount_z"], test.loc[1, "amount_z"] = 12.0, -12.0
    x = model.matrix(test)
    z = model.forest_input(x)
    surprise = column_surprises(model.tail_sorted_, model.tail_spread_, x, model._directions())
    np.testing.assert_array_equal(z, np.maximum(surprise, TYPICAL_SURPRISE))
    assert (z[:, FEATURE_COLUMNS.index("history_count_log")] == TYPICAL_SURPRISE).all()  # context: constant
    unusual, usual = model.score(test)[:2]
    assert unusual > 0.95 and usual < 0.5
    assert make_detector("isolation_forest", scale="tail").params["scale"] == "tail"
    with pytest.raises(ValueError, match="scale must be"):
        make_detector("isolation_forest", scale="log")


AMOUNT_FAMILY = ("log_amount", "amount_z", "amount_ratio_log", "decimal_shift")


def test_the_default_forest_reads_the_amount_family_on_the_tail_scale_and_the_rest_raw():
    from finsentry.detectors.tails import TYPICAL_SURPRISE, column_surprises

    train = planted_frame(value=0.0, seed=5)  # no outlier in training
    model = make_detector("isolation_forest", feature_columns=FEATURE_COLUMNS).fit(train)
    raw = make_detector("isolation_forest", feature_columns=FEATURE_COLUMNS, tail_families=()).fit(train)
    assert model.params["tail_families"] == ("amount",) and raw.params["tail_families"] == ()
    tail = model.tail_columns()
    assert [c for c, t in zip(FEATURE_COLUMNS, tail, strict=True) if t] == list(AMOUNT_FAMILY)
    assert not raw.tail_columns().any()
    test = train.iloc[:3].copy()
    test.loc[0, "amount_z"], test.loc[1, "amount_z"] = 12.0, -12.0  # beyond the training range
    x = model.matrix(test)
    z = model.forest_input(x)
    directions = [d for d, t in zip(model._directions(), tail, strict=True) if t]
    surprise = column_surprises(model.tail_sorted_, model.tail_spread_, x[:, tail], directions)
    np.testing.assert_array_equal(z[:, tail], np.maximum(surprise, TYPICAL_SURPRISE))
    np.testing.assert_array_equal(z[:, ~tail], raw.forest_input(x)[:, ~tail])  # the rest: clipped as before
    j = FEATURE_COLUMNS.index("amount_z")
    assert z[1, j] == TYPICAL_SURPRISE and z[0, j] > np.log(len(train))  # usual side flat; beyond the sample: grows
    unusual, usual = model.score(test)[:2]
    assert unusual > 0.95 and usual < 0.5


def test_an_amount_unusual_in_each_of_its_views_at_once_is_isolated_earlier_on_the_tail_scale():
    """Handbook scenario 1's shape: heavy-tailed account-relative views (a few young accounts'
    z-scores in the tens), and a row in the top 1 % of all three amount views at once but far
    from their extremes. Raw, the forest's uniform splits are spent between the extremes and ten
    training rows outrank it; on the tail scale the three agreeing views isolate it early."""
    rng = np.random.default_rng(12)
    train = planted_frame(value=0.0, n=3000, seed=12)
    heavy = rng.random(len(train)) < 0.01
    train.loc[heavy, "amount_z"] = rng.uniform(10.0, 60.0, heavy.sum())
    train["amount_ratio_log"] = np.abs(rng.standard_t(2, len(train)))
    test = train.iloc[:1].copy()
    q99 = {c: np.quantile(train[c], 0.99) for c in ("log_amount", "amount_ratio_log")}
    test[["log_amount", "amount_z", "amount_ratio_log"]] = [q99["log_amount"], 3.0, q99["amount_ratio_log"]]
    above = {}
    for families in (("amount",), ()):
        model = make_detector("isolation_forest", feature_columns=FEATURE_COLUMNS, tail_families=families).fit(train)
        above[families] = int((model.raw_score(train) >= model.raw_score(test)[0]).sum())  # training rows outranking it
    assert above[("amount",)] <= 1 and above[()] >= 5


def test_a_forest_saved_before_tail_families_scores_as_before():
    train = planted_frame(seed=5)
    old = make_detector("isolation_forest", feature_columns=FEATURE_COLUMNS, tail_families=()).fit(train)
    before = old.score(train)
    del old.params["tail_families"]  # what a model pickled before the option has
    np.testing.assert_array_equal(old.score(train), before)
    assert not old.tail_columns().any()


def test_one_sided_forest_reasons_come_from_what_the_forest_saw():
    from finsentry.explain import fast_explain, shap_contributions

    train = planted_frame(seed=6)
    model = make_detector("isolation_forest", feature_columns=FEATURE_COLUMNS).fit(train)
    test = train.iloc[:1].copy()
    test.loc[0, "amount_z"] = 12.0
    assert fast_explain(model, test, 1)[0][0].feature == "amount_z"
    shap = shap_contributions(model, test)[0]
    assert FEATURE_COLUMNS[int(np.argmax(shap))] == "amount_z"


def test_ensemble_rule_hit_never_seen_in_training_tops_the_model_and_names_its_type():
    train = planted_frame(seed=9)
    rules = lambda f: np.where(f["balance_error"].to_numpy() > 0.005, "balance_mismatch", "")  # noqa: E731
    model = EnsembleDetector(rules=rules).fit(train)
    assert model.rule_rates_ == {} and model.rule_floor_ == 1.0 / (len(train) + 1)
    test = train.iloc[:5].copy()
    test.loc[3, "balance_error"] = 90.0
    scores, types = model.score_with_types(test)
    model_only = EnsembleDetector(model.members, use_rules=False).fit(train).score(test)
    assert types[3] == "balance_mismatch" and list(types[[0, 1, 2, 4]]) == ["", "", "", ""]
    assert scores[3] == pytest.approx(1.0 - (1.0 - model_only[3]) / (len(train) + 1))
    assert scores[3] > 1.0 - 1.0 / len(train)  # above every model score but the most extreme
    np.testing.assert_array_equal(scores[[0, 1, 2, 4]], model_only[[0, 1, 2, 4]])
    np.testing.assert_array_equal(model.score(test), scores)


def test_ensemble_rule_that_fires_in_training_is_weighed_by_its_rate():
    """A rule firing on k of n training rows raises a hit to 1 - (1 - p)(k + 1)/(n + 1): its hits
    rank among themselves by the model's score, all above the model's own top 1 %."""
    train = planted_frame(seed=9).reset_index(drop=True)
    flagged = np.zeros(len(train), dtype=bool)
    flagged[:3] = True  # the rule fires on 3 training rows (well under the suspension share)
    train["duplicate_recent"] = flagged.astype(float)
    rules = lambda f: np.where(f["duplicate_recent"].to_numpy() > 0, "duplicate_posting", "")  # noqa: E731
    model = EnsembleDetector(rules=rules).fit(train)
    rate = 4.0 / (len(train) + 1)
    assert model.rule_rates_ == {"duplicate_posting": pytest.approx(rate)} and not model.suspended_rules_
    p = EnsembleDetector(model.members, use_rules=False).fit(train).score(train)
    scores, types = model.score_with_types(train)
    hit = types == "duplicate_posting"
    np.testing.assert_allclose(scores[hit], 1.0 - (1.0 - p[hit]) * rate)
    np.testing.assert_array_equal(np.argsort(scores[hit]), np.argsort(p[hit]))
    assert (scores[hit] > np.quantile(p, 0.99)).all()


def test_registry_is_open_and_rejects_unknown_names():
    assert {"isolation_forest", "lof", "ensemble"} <= set(REGISTRY)
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("magic")

    @register("test_constant")
    class Constant(Detector):
        def _fit(self, x):
            return None

        def _raw(self, x):
            return x[:, 0]

    try:
        model = make_detector("test_constant").fit(planted_frame(seed=10))
        assert model.name == "test_constant" and model.score(planted_frame(seed=10)).shape == (600,)
    finally:
        REGISTRY.pop("test_constant")
