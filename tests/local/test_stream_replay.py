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
