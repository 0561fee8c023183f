"""Every candidate the state machine can promote is servable by the stream, end to end.

Per candidate type: fit it as the training job builds it (``training.jobs.build_detector``,
small parameters), publish it as the pipeline does (a SageMaker ``model.tar.gz`` in S3, the SSM
pointer naming it), run the test period's records through the real Lambda handler (moto), and
check the stream's scores, read back from what Firehose delivered, equal batch scoring's on the
same records (``features_with_sequence`` over the whole history): parity, the LSTM included.
The handler runs with keras and torch unimportable, as in the scorer's image, which carries
neither: the LSTM scores by its numpy forward pass (``detectors.sequence``).
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest

from finsentry.detectors.artifact import METADATA_FILE, MODEL_FILE, save_model
from finsentry.detectors.supervised import SUPERVISED_EXTRA_COLUMNS, TARGET_COLUMN
from finsentry.evaluation import threshold_for_budget
from finsentry.features import features_with_sequence
from finsentry.label_risk import RISK_COLUMNS, risk_features, training_target
from finsentry.local.aws import LOCAL_REGION, local_aws
from finsentry.local.stream_resources import point_model
from finsentry.pipeline_definition import CANDIDATES
from finsentry.scoring import score_transactions
from finsentry.stream import scorer as stream_scorer
from finsentry.stream.profiles import ProfileStore
from finsentry.stream.risk import frame_resolver, record_verdicts
from finsentry.training.jobs import build_detector
from lambdas.stream_scorer import handler as module
from tests.lambdas.stream_scorer.test_handler import CONTEXT
from tests.stream.world import bank, event_of, payloads, setup_world

SMALL = {  # parameters that keep each fit to seconds
    "isolation_forest": {"n_estimators": 50, "random_state": 0},
    "lof": {},
    "lstm": {"units": 4, "epochs": 1, "max_train_rows": 2_000, "batch_size": 256, "random_state": 0},
    "ensemble": {"random_state": 0},
    "supervised": {"max_iter": 20, "random_state": 0},
}
# The supervised candidate (issue 12) reads label-derived risk of the account and the partner
# (label_risk.RISK_COLUMNS: confirmed frauds known before the transaction). The stream computes
# them from the risk items the label doors write (finsentry.stream.risk), with the batch's definition.
TYPES = tuple(dict.fromkeys((*CANDIDATES, "supervised")))


def _verdicts(valid: pd.DataFrame, train: pd.DataFrame, base_top: pd.Index) -> pd.DataFrame:
    """Analysts' verdicts on the bank: every transaction of six accounts in the training window's
    last 25 days confirmed, the base ensemble's top rows confirmed, a sample dismissed, each an
    hour after the transaction; and verdicts on some test-period rows, given between the test
    transactions (a verdict known after a transaction must not reach it: parity checks it)."""
    late = train[train["ts"] >= train["ts"].max() - pd.Timedelta(days=25)]
    accounts = late["account_id"].value_counts().index[:6]
    confirmed = late.index[late["account_id"].isin(accounts)].union(base_top)
    dismissed = train.index.difference(confirmed)[::7]
    test_rows = valid.index.difference(train.index)[:90]
    during = test_rows[valid.loc[test_rows, "account_id"].isin(accounts).to_numpy()][:10]
    rows = confirmed.union(dismissed).union(during)
    verdict = np.where(rows.isin(confirmed) | rows.isin(during), "confirmed_fraud", "dismissed")
    when = valid.loc[rows, "ts"] + pd.Timedelta(hours=1)
    return pd.DataFrame({"trans_id": valid.loc[rows, "trans_id"].astype(str).to_numpy(), "verdict": verdict,
                         "who": "analyst", "when": when.to_numpy(), "note": "",
                         "label_id": [f"L{i}" for i in range(len(rows))]})  # fmt: skip


def _fitted(name: str, b):
    """The fitted candidate, its training features and (supervised) the verdict history."""
    train = b.train
    features = features_with_sequence(train)
    detector = build_detector(name, SMALL[name])
    if name != "supervised":
        return detector.fit(features), features, None
    base = build_detector("ensemble", SMALL["ensemble"]).fit(features)
    top = train.index[np.argsort(-base.score(features))[:40]]
    history = _verdicts(b.valid, train, top)
    target, _ = training_target(train, history, as_of=b.test["ts"].min())
    features = pd.concat([features, risk_features(train, history)], axis=1)
    detector.base = base
    detector.fit(features.assign(**{TARGET_COLUMN: target.to_numpy()}))
    return detector, features, history


def _publish(detector, threshold: float, bucket: str, tmp: Path, name: str) -> None:
    """As the pipeline does: model.tar.gz (model.joblib + metadata.json) in S3, the pointer on it."""
    save_model(detector, tmp / name)
    archive = tmp / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in (MODEL_FILE, METADATA_FILE):
            tar.add(tmp / name / f, arcname=f)
    key = f"models/{name}/model.tar.gz"
    boto3.client("s3", region_name=LOCAL_REGION).upload_file(str(archive), bucket, key)
    point_model(f"s3://{bucket}/{key}", f"{name}-1", threshold)


@pytest.mark.parametrize("name", TYPES)
def test_every_candidate_type_loads_and_scores_in_the_stream_as_in_batch(name, tmp_path, monkeypatch):
    b = bank()
    detector, train_features, history = _fitted(name, b)
    threshold = float(threshold_for_budget(detector.score(train_features), 0.02))
    test = b.test.head(90)
    for package in ("keras", "torch"):  # as in the scorer's image, which carries neither (the LSTM too)
        monkeypatch.setitem(sys.modules, package, None)  # an import of either now raises ImportError
    with local_aws():
        world = setup_world(tmp_path, with_model=False)
        _publish(detector, threshold, world.bucket, tmp_path, name)
        if history is not None:  # the doors' write path (resolving from the bank's rows, as the local run does)
            store = ProfileStore(boto3.client("dynamodb", region_name=LOCAL_REGION), world.env["PROFILES_TABLE"])
            fed_in = record_verdicts(store, history, now=b.train["ts"].max(), resolve=frame_resolver(b.valid))
            assert fed_in.resolved == len(history) and not fed_in.failed
        for k, v in world.env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(module, "_service", None)
        fed: list[set[str]] = []  # the columns of every frame the stream gave the model
        real = stream_scorer.score_transactions
        monkeypatch.setattr(stream_scorer, "score_transactions", lambda model, features, **kw: (
            fed.append(set(features.columns)) or real(model, features, **kw)))
        data = payloads(test)
        for first, chunk in ((1_000, data[:45]), (2_000, data[45:])):  # two batches: state carried between them
            assert module.handler(event_of(chunk, first=first), CONTEXT) == {"batchItemFailures": []}
        served = module._service.models.current()
        assert not served.rules_only and served.version == f"{name}-1" and not served.problem
        rows = pd.DataFrame(world.scored_rows()).set_index("trans_id")
        indexed = {i["account_id"]["S"][4:] for i in world.profile_items() if i["account_id"]["S"].startswith("txn#")}
    assert indexed == set(rows.index[rows["verdict"] == "alert"])  # how a verdict on an alert reaches the risk
    assert len(rows) == len(test) and set(rows["model_version"]) == {f"{name}-1"}
    assert fed and all(set(detector.feature_columns) - set(SUPERVISED_EXTRA_COLUMNS) <= cols for cols in fed)
    batch_features = features_with_sequence(b.valid).loc[test.index]
    if name == "supervised":  # the risk columns come from the stream's state, not filled with 0
        assert all(set(RISK_COLUMNS) <= cols for cols in fed)
        risk = risk_features(b.valid, history).loc[test.index]
        assert (risk["account_frauds_known_log"] > 0).sum() >= 5  # verdicts reach the test period
        batch_features = pd.concat([batch_features, risk], axis=1)
        blind = detector.score(batch_features.assign(**{c: 0.0 for c in RISK_COLUMNS}))
        assert not np.allclose(blind, detector.score(batch_features))  # and they change the scores
    batch = score_transactions(detector, batch_features, budget_threshold=threshold, model_version="batch")
    expected = pd.Series(batch.scores, index=test["trans_id"].astype(str).to_numpy())
    np.testing.assert_allclose(rows.loc[expected.index, "score"].to_numpy(dtype=float), expected.to_numpy(),
                               rtol=1e-6, atol=1e-9)  # fmt: skip
    verdicts = np.where(expected.to_numpy() > threshold, "alert", "normal")  # score_transactions: score > threshold
    assert (rows.loc[expected.index, "verdict"].to_numpy() == verdicts).all()


def test_the_types_above_are_every_candidate_of_the_state_machine():
    assert set(CANDIDATES) <= set(TYPES) and set(SMALL) == set(TYPES)
