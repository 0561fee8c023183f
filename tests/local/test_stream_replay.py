"""The demo's stream stage: Kinesis (moto) -> scorer flags what the batch scoring flags."""

from __future__ import annotations

import boto3

from finsentry.detectors.artifact import save_model
from finsentry.features import features_with_sequence
from finsentry.local.aws import LOCAL_REGION, local_aws
from finsentry.local.stream_replay import replay_stream
from finsentry.scoring import score_transactions
from tests.stream.world import bank


def test_the_stream_flags_the_same_transactions_as_batch_scoring(tmp_path):
    b = bank()
    v = b.valid.reset_index(drop=True)
    test = (v["ts"] >= b.test["ts"].min()).to_numpy()
    threshold = 0.7
    batch = score_transactions(b.model, features_with_sequence(v)[test], budget_threshold=threshold,
                               model_version="m")  # fmt: skip
    alerted = set(v.loc[test, "trans_id"].to_numpy()[batch.alerts].astype(str))
    save_model(b.model, tmp_path / "model")
    with local_aws():
        s3 = boto3.client("s3", region_name=LOCAL_REGION)
        s3.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": LOCAL_REGION})
        for name in ("model.joblib", "metadata.json"):
            s3.upload_file(str(tmp_path / "model" / name), "models", f"m/{name}")
        result = replay_stream(v, test, alerted, "s3://models/m/", threshold, "m-1", max_records=600, batch_size=200)
    assert result.records == 600 and result.batches == 3 and result.mode == "model"
    assert result.counts["scored"] == 600 and result.counts["failed"] == 0 and not result.notes
    assert len(result.batch_alerts) > 5 and result.stream_alerts == result.batch_alerts
    assert "agreement 100.0 %" in result.summary()


def test_the_local_label_store_feeds_the_streams_risk_items(tmp_path):
    """The local door: ``finsentry label``'s history reaches the stream's risk items when the
    stream is replayed (resolved from the run's transactions: none unresolved)."""
    from finsentry.labels import LabelStore, validate_labels
    from finsentry.layout import RESOURCES, resource_name
    from finsentry.stream.profiles import ProfileStore
    from finsentry.stream.risk import RiskItem, risk_item_key

    b = bank()
    v = b.valid.reset_index(drop=True)
    test = (v["ts"] >= b.test["ts"].min()).to_numpy()
    picked = v[~test].tail(5)
    store = LabelStore(tmp_path)
    store.add(validate_labels([{"trans_id": str(t), "verdict": "confirmed_fraud", "who": "me", "when": str(ts)}
                               for t, ts in zip(picked["trans_id"], picked["ts"], strict=True)]).valid)
    save_model(b.model, tmp_path / "model")
    with local_aws():
        s3 = boto3.client("s3", region_name=LOCAL_REGION)
        s3.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": LOCAL_REGION})
        for name in ("model.joblib", "metadata.json"):
            s3.upload_file(str(tmp_path / "model" / name), "models", f"m/{name}")
        messages: list[str] = []
        replay_stream(v, test, set(), "s3://models/m/", 0.7, "m-1", max_records=50, batch_size=50,
                      progress=messages.append, labels=store.history())  # fmt: skip
        table = resource_name("local", RESOURCES.profiles_table)
        read, _, _ = ProfileStore(boto3.client("dynamodb", region_name=LOCAL_REGION), table).load(
            [risk_item_key("account", a) for a in set(picked["account_id"])])
    assert len(read) == picked["account_id"].nunique() and all(isinstance(i, RiskItem) for i in read.values())
    assert sum(len(i.labels) for i in read.values()) == 5
    assert any("5 verdicts in the stream's risk" in m for m in messages)
