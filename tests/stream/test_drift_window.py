"""The scorer measures drift per window and publishes it; a model that cannot replace the serving one is counted.

Under moto, through ``ScorerService`` with the SSM-located model (``ModelLocator``): a model whose
artifact carries a drift reference gets a ``DriftWindow``; PSI is emitted once the window is
full, equals ``drift.measure_drift`` on the same rows, and starts over when another model loads.
"""

from __future__ import annotations

import math
from functools import lru_cache

import boto3
import pandas as pd
import pytest

from finsentry import drift
from finsentry.detectors.artifact import save_model
from finsentry.features import AccountProfile, features_with_sequence
from finsentry.local.aws import LOCAL_REGION, local_aws
from finsentry.local.stream_resources import point_model
from finsentry.monitoring import Metric
from finsentry.partners import PartnerProfile
from finsentry.stream.events import decode_event
from finsentry.stream.scorer import StreamScorer
from tests.stream.faults import Faulty, client_error
from tests.stream.world import bank, event_of, payloads, service, setup_world

WINDOW = 100  # rows per drift window in these tests (production: drift.MIN_ROWS)
BATCH = 60


@lru_cache(maxsize=1)
def reference() -> drift.DriftReference:
    b = bank()
    return drift.build_reference(b.model, features_with_sequence(b.train), sample=1_000)


def upload_model(tmp_path, bucket: str, name: str, with_reference: bool = True) -> str:
    meta = {drift.METADATA_KEY: reference().to_dict()} if with_reference else {}
    save_model(bank().model, tmp_path / name, metadata=meta)
    s3 = boto3.client("s3", region_name=LOCAL_REGION)
    for f in ("model.joblib", "metadata.json"):
        s3.upload_file(str(tmp_path / name / f), bucket, f"models/{name}/{f}")
    return f"s3://{bucket}/models/{name}/"


@pytest.fixture
def world(tmp_path):
    with local_aws():
        res = setup_world(tmp_path)
        point_model(upload_model(tmp_path, res.bucket, "with-drift"), "if-d1", bank().threshold)
        yield res


def batches(n: int) -> list[list]:
    rows = bank().test
    assert len(rows) >= n * BATCH
    return [decode_event(event_of(payloads(rows.iloc[i * BATCH:(i + 1) * BATCH]), first=1 + 1000 * i))[1]
            for i in range(n)]  # fmt: skip


def expected_drift(batch_list: list[list], skip: int = 0) -> drift.DriftMeasurement:
    """PSI of the rows of ``batch_list[skip:]`` scored as the service does (same profiles, same order)."""
    profiles = {a: AccountProfile.from_dict(p.to_dict()) for a, p in bank().profiles.items()}
    partners = {k: PartnerProfile.from_dict(p.to_dict()) for k, p in bank().partners.items()}
    scorer = StreamScorer(bank().model, threshold=bank().threshold, model_version="x")
    features, scores = [], []
    for i, records in enumerate(batch_list):
        out = scorer.score_batch([r.value for r in records], profiles, partners=partners)
        if i >= skip:
            features.append(out.features)
            scores.extend(out.scored["score"])
    return drift.measure_drift(reference(), pd.concat(features, ignore_index=True), scores)


def psi_points(svc) -> list[tuple[str, float, str, dict]]:
    return [p for p in svc.metrics.points if p[0] in (Metric.SCORE_PSI, Metric.FEATURE_PSI)]


def test_drift_is_published_once_a_window_is_full_and_equals_measure_drift(world):
    svc = service(world, drift_min_rows=WINDOW)
    first, second = batches(2)
    assert svc.process(first).drift is None
    assert not psi_points(svc) and svc.drift_window.rows == BATCH  # not before the window is full
    report = svc.process(second)
    assert report.drift is not None and report.drift.rows == 2 * BATCH
    want = expected_drift([first, second])
    [score] = [p for p in psi_points(svc) if p[0] == Metric.SCORE_PSI]
    assert score[2] == "None" and score[3] == {}  # the total series: the alarm's {service} once Powertools adds it
    assert math.isclose(score[1], want.score_psi, rel_tol=1e-9)
    by_feature = {p[3]["Feature"]: p[1] for p in psi_points(svc) if p[0] == Metric.FEATURE_PSI}
    assert by_feature.keys() == {k for k, v in want.feature_psi.items() if math.isfinite(v)}
    assert set(want.feature_psi) == set(reference().features)
    for name, value in by_feature.items():
        assert math.isclose(value, want.feature_psi[name], rel_tol=1e-9, abs_tol=1e-12), name
    assert svc.drift_window.rows == 0  # a new window started


def test_a_reloaded_model_starts_a_new_window(world, tmp_path):
    svc = service(world, drift_min_rows=WINDOW)
    one, two, three = batches(3)
    svc.process(one)
    assert svc.drift_window.rows == BATCH
    point_model(upload_model(tmp_path, world.bucket, "with-drift-2"), "if-d2", bank().threshold)
    svc.models.refresh_s = 0.0
    assert svc.process(two).drift is None  # 60 rows of the old model + 60 of the new: no window
    assert svc.models.serving.version == "if-d2" and svc.drift_window.rows == BATCH and not psi_points(svc)
    report = svc.process(three)
    assert report.drift is not None and report.drift.rows == 2 * BATCH
    assert math.isclose(report.drift.score_psi, expected_drift([one, two, three], skip=1).score_psi, rel_tol=1e-9)


def test_rules_only_and_a_model_without_reference_publish_no_drift(tmp_path):
    with local_aws():
        res = setup_world(tmp_path, with_model=False)
        svc = service(res, drift_min_rows=WINDOW)
        one, two, three, four = batches(4)
        assert svc.process(one).mode == "rules_only" and svc.process(two).drift is None
        assert svc.drift_window is None
        point_model(upload_model(tmp_path, res.bucket, "no-drift", with_reference=False), "if-n", bank().threshold)
        svc.models.refresh_s = 0.0
        assert svc.process(three).mode == "model" and svc.process(four).drift is None
        assert svc.drift_window is None and not psi_points(svc)


def test_a_successor_that_cannot_load_is_counted_per_batch_while_the_old_model_serves(world):
    svc = service(world, drift_min_rows=10 * WINDOW)
    one, two, three, four = batches(4)
    svc.process(one)
    assert svc.metrics.total(Metric.MODEL_LOAD_FAILED) == 0
    s3 = boto3.client("s3", region_name=LOCAL_REGION)
    s3.put_object(Bucket=world.bucket, Key="models/bad/model.joblib", Body=b"garbage")
    s3.put_object(Bucket=world.bucket, Key="models/bad/metadata.json", Body=b'{"sha256": "0"}')
    point_model(f"s3://{world.bucket}/models/bad/", "bad-1", 0.9)
    svc.models.refresh_s = 0.0
    report = svc.process(two)
    assert report.mode == "model" and report.model_version == "if-d1" and "checksum" in report.model_problem
    assert svc.metrics.total(Metric.MODEL_LOAD_FAILED) == 1 and svc.metrics.total(Metric.RULES_ONLY) == 0
    svc.process(three)  # the pointer still names the bad artifact: still counted (the alarm stays up)
    assert svc.metrics.total(Metric.MODEL_LOAD_FAILED) == 2
    assert svc.drift_window.rows == 3 * BATCH  # the same model serves: its window goes on
    point_model(f"s3://{world.bucket}/models/with-drift/", "if-d3", bank().threshold)  # on-call points back
    assert svc.process(four).model_problem == "" and svc.models.serving.version == "if-d3"
    assert svc.metrics.total(Metric.MODEL_LOAD_FAILED) == 2


def test_an_unreadable_parameter_is_counted_until_it_reads_again(world):
    svc = service(world)
    one, two, three = batches(3)
    svc.process(one)
    svc.models.refresh_s = 0.0
    real = svc.models.ssm

    def throttled(n, kwargs, call):
        raise client_error("ThrottlingException", "GetParameter")

    svc.models.ssm = Faulty(real, get_parameter=throttled)
    assert "cannot be read" in svc.process(two).model_problem
    svc.models.ssm = real
    assert svc.process(three).model_problem == "" and svc.models.serving.version == "if-d1"
    assert svc.metrics.total(Metric.MODEL_LOAD_FAILED) == 1


def test_a_reference_naming_features_the_stream_lacks_turns_drift_off_not_scoring(world):
    svc = service(world, drift_min_rows=WINDOW)
    one, two = batches(2)
    svc.process(one)
    ref = reference()
    svc.drift_window.reference = drift.DriftReference({**ref.features, "no_such_feature": ref.score}, ref.score, 1)
    report = svc.process(two)
    assert report.counts()["scored"] == BATCH and report.drift is None and svc.drift_window is None
