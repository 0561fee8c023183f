"""A small bank, a fitted model, and the scorer's resources in moto (shared by the stream tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import boto3
import pandas as pd

from finsentry.detectors import make_detector
from finsentry.detectors.artifact import save_model
from finsentry.evaluation import threshold_for_budget
from finsentry.features import AccountProfile, features_with_sequence
from finsentry.local.aws import LOCAL_REGION
from finsentry.local.stream_resources import ScorerResources, create_scorer_resources, point_model
from finsentry.partners import PartnerProfile
from finsentry.schema import to_record
from finsentry.stream.events import InboundRecord, kinesis_event
from finsentry.stream.runtime import build_service
from finsentry.stream.scorer import StreamScorer
from finsentry.stream.service import ScorerService
from finsentry.stream.state import initial_items
from tests.factories import small_bank

STREAM_ARN = "arn:aws:kinesis:eu-west-1:000000000000:stream/finsentry-local-transactions"


@dataclass
class Bank:
    valid: pd.DataFrame
    train: pd.DataFrame
    test: pd.DataFrame
    model: object
    threshold: float
    profiles: dict[str, AccountProfile]
    partners: dict[str, PartnerProfile]


@lru_cache(maxsize=1)
def bank() -> Bank:
    v = small_bank().transactions.valid
    cut = v["ts"].quantile(0.7)
    train, test = v[v["ts"] < cut], v[v["ts"] >= cut].sort_values("ts", kind="stable")
    features = features_with_sequence(train)
    model = make_detector("isolation_forest", n_estimators=50).fit(features)
    threshold = float(threshold_for_budget(model.score(features), 0.02))
    profiles: dict[str, AccountProfile] = {}
    partners: dict[str, PartnerProfile] = {}
    StreamScorer(None).score_batch([to_record(r) for _, r in train.iterrows()], profiles, partners=partners)
    return Bank(v, train, test, model, threshold, profiles, partners)


def payloads(frame: pd.DataFrame) -> list[bytes]:
    return [json.dumps(to_record(r)).encode() for _, r in frame.iterrows()]


def event_of(data: list[bytes], first: int = 1) -> dict:
    return kinesis_event(data, STREAM_ARN, first_sequence=first)


def setup_world(tmp: Path, with_model: bool = True) -> ScorerResources:
    """Inside mock_aws: resources, seeded profiles, the model artifact in S3 and its pointer."""
    res = create_scorer_resources()
    b = bank()
    ddb = boto3.client("dynamodb", region_name=LOCAL_REGION)
    items = initial_items(b.profiles, b.partners)
    for start in range(0, len(items), 25):
        ddb.batch_write_item(RequestItems={res.env["PROFILES_TABLE"]: [{"PutRequest": {"Item": i}}
                                                                       for i in items[start:start + 25]]})
    if with_model:
        save_model(b.model, tmp / "model")
        s3 = boto3.client("s3", region_name=LOCAL_REGION)
        for name in ("model.joblib", "metadata.json"):
            s3.upload_file(str(tmp / "model" / name), res.bucket, f"models/isolation_forest/{name}")
        point_model(f"s3://{res.bucket}/models/isolation_forest/", "if-1", b.threshold)
    return res


def service(res: ScorerResources, **overrides) -> ScorerService:
    svc = build_service(environ=res.env, session=boto3.session.Session(region_name=LOCAL_REGION))
    for k, v in overrides.items():
        setattr(svc, k, v)
    return svc


def keys(records: list[InboundRecord]) -> list[str]:
    return [r.key for r in records]
