"""PSI of features and scores against the training window; CloudWatch publication under moto."""

from __future__ import annotations

import json
import math

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from finsentry import drift
from finsentry.detectors import make_detector
from finsentry.detectors.artifact import load_model, save_model
from finsentry.monitoring import METRIC_NAMESPACE, Metric, alarm


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({
        "a": rng.normal(shift, 1.0, n),
        "b": rng.exponential(1.0, n),
        "flag": (rng.random(n) < 0.05).astype(float),
    })  # fmt: skip


def test_bins_are_training_quantiles_and_collapse_for_flags():
    rng = np.random.default_rng(0)
    bins = drift.Bins.from_values(rng.normal(size=10_000))
    assert len(bins.edges) == 9 and len(bins.shares) == 10
    assert np.allclose(bins.shares, 0.1, atol=0.002)
    flag = drift.Bins.from_values(np.r_[np.zeros(950), np.ones(50)])
    assert flag.edges == (0.0,) and flag.shares == pytest.approx((0.95, 0.05))


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    bins = drift.Bins.from_values(rng.normal(size=20_000))
    same = bins.psi(rng.normal(size=5_000))
    shifted = bins.psi(rng.normal(1.0, 1.0, 5_000))
    assert same < 0.01  # the noise floor is about (bins - 1) / rows = 0.0018
    assert shifted > 0.25  # a one-sigma shift is "drifted"


def test_psi_matches_the_formula_and_handles_empty_bins():
    bins = drift.Bins(edges=(0.0,), shares=(0.5, 0.5))
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert bins.psi([-1, -1, -1, -1, 1]) == pytest.approx(expected)
    only_low = bins.psi([-1.0] * 10)  # an empty bin is floored, not infinite
    assert math.isfinite(only_low) and only_low > 1
    assert math.isnan(bins.psi([]))
    assert bins.psi([np.nan, np.inf, -5]) == pytest.approx(bins.psi([0, 0, -5]))  # hygiene: non-finite = 0


def test_reference_round_trips_through_model_metadata(tmp_path):
    rng = np.random.default_rng(2)
    train = _frame(rng, 3_000)
    model = make_detector("isolation_forest", feature_columns=("a", "b", "flag")).fit(train)
    ref = drift.build_reference(model, train, window=("1997-01-01", "1997-12-31"), sample=1_000)
    assert set(ref.features) == {"a", "b", "flag"} and ref.rows == 3_000
    assert len(ref.score.edges) == len(drift.SCORE_QUANTILES)
    save_model(model, tmp_path, metadata={drift.METADATA_KEY: ref.to_dict()})
    _, meta = load_model(tmp_path, expected_features=None)
    back = drift.reference_from_metadata(json.loads(json.dumps(meta)))
    assert back == ref
    assert drift.reference_from_metadata({}) is None
    with pytest.raises(ValueError, match="ascending"):
        drift.Bins.from_dict({"edges": [1.0, 0.0], "shares": [0.3, 0.3, 0.4]})


def test_measurement_finds_the_feature_that_moved():
    rng = np.random.default_rng(3)
    train = _frame(rng, 5_000)
    model = make_detector("isolation_forest", feature_columns=("a", "b", "flag")).fit(train)
    ref = drift.build_reference(model, train, sample=2_000)
    calm = drift.measure_drift(ref, _frame(rng, 2_000), model.score(_frame(rng, 2_000)))
    moved_rows = _frame(rng, 2_000, shift=2.0)
    moved = drift.measure_drift(ref, moved_rows, model.score(moved_rows))
    assert calm.score_psi < 0.05 and max(calm.feature_psi.values()) < 0.05
    assert moved.top_features(1)[0][0] == "a" and moved.feature_psi["a"] > 1.0
    assert moved.score_psi > alarm("score-drift").threshold  # the drifted rows score higher
    with pytest.raises(ValueError, match="lacks"):
        drift.measure_drift(ref, moved_rows.drop(columns="b"), model.score(moved_rows))


def test_windows_split_by_calendar_and_skip_small_ones():
    rng = np.random.default_rng(4)
    train = _frame(rng, 4_000)
    model = make_detector("isolation_forest", feature_columns=("a", "b", "flag")).fit(train)
    ref = drift.build_reference(model, train, sample=1_000)
    week1 = _frame(rng, 600)
    week2 = _frame(rng, 600, shift=3.0)
    tail = _frame(rng, 10)
    rows = pd.concat([week1, week2, tail], ignore_index=True)
    ts = (list(pd.date_range("1998-01-05", periods=600, freq="15min"))
          + list(pd.date_range("1998-01-12", periods=600, freq="15min"))
          + list(pd.date_range("1998-01-19", periods=10, freq="h")))  # fmt: skip
    windows = drift.drift_by_window(ref, rows, model.score(rows), ts)
    assert [w.start for w in windows] == [pd.Timestamp("1998-01-05"), pd.Timestamp("1998-01-12")]
    assert windows[0].feature_psi["a"] < 0.1 < 1.0 < windows[1].feature_psi["a"]


def test_window_accumulates_batches_like_one_measurement():
    rng = np.random.default_rng(5)
    train = _frame(rng, 4_000)
    model = make_detector("isolation_forest", feature_columns=("a", "b", "flag")).fit(train)
    ref = drift.build_reference(model, train, sample=1_000)
    batches = [_frame(rng, 200, shift=0.5) for _ in range(3)]
    window = drift.DriftWindow(ref, min_rows=500)
    for b in batches[:2]:
        window.add(b, model.score(b))
        assert not window.ready or window.rows >= 500
    assert not window.ready
    window.add(batches[2], model.score(batches[2]))
    assert window.ready
    whole = pd.concat(batches, ignore_index=True)
    expected = drift.measure_drift(ref, whole, model.score(whole))
    got = window.measure_and_reset()
    assert got.rows == 600 and got.score_psi == pytest.approx(expected.score_psi)
    assert got.feature_psi == pytest.approx(expected.feature_psi)
    assert window.rows == 0 and not window.ready


def test_publish_puts_score_and_feature_psi_into_cloudwatch():
    m = drift.DriftMeasurement(score_psi=0.31, feature_psi={"a": 0.02, "b": float("nan"), "c": 0.4}, rows=900)
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="eu-west-1")
        assert drift.publish_drift(cw, m, dimensions={"Environment": "local"}) == 3  # NaN left out
        listed = cw.list_metrics(Namespace=METRIC_NAMESPACE)["Metrics"]
        names = {(x["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in x["Dimensions"]))) for x in listed}
        assert (str(Metric.SCORE_PSI), (("Environment", "local"),)) in names
        assert (str(Metric.FEATURE_PSI), (("Environment", "local"), ("Feature", "c"))) in names
        stats = cw.get_metric_statistics(
            Namespace=METRIC_NAMESPACE, MetricName=str(Metric.SCORE_PSI),
            Dimensions=[{"Name": "Environment", "Value": "local"}],
            StartTime=pd.Timestamp.now("UTC") - pd.Timedelta("1h"),
            EndTime=pd.Timestamp.now("UTC") + pd.Timedelta("1h"),
            Period=3600, Statistics=["Maximum"],
        )  # fmt: skip
        assert stats["Datapoints"][0]["Maximum"] == pytest.approx(0.31)
