"""The scorer service under moto: bad input, redelivery, service faults mid-batch, the model."""

from __future__ import annotations

import json
import math

import boto3
import numpy as np
import pytest

from finsentry.local.aws import LOCAL_REGION, local_aws
from finsentry.local.stream_resources import point_model
from finsentry.monitoring import Metric
from finsentry.partners import partner_key
from finsentry.stream.events import decode_event
from finsentry.stream.profiles import ProfileStore
from finsentry.stream.state import encode_account
from tests.stream.faults import Faulty, client_error
from tests.stream.world import bank, event_of, payloads, service, setup_world

ALERT_THRESHOLD = 0.7  # low enough that a few dozen test records raise alerts


@pytest.fixture
def world(tmp_path):
    with local_aws():
        res = setup_world(tmp_path)
        point_model(f"s3://{res.bucket}/models/isolation_forest/", "if-1", ALERT_THRESHOLD)
        yield res


def kinesis_retry(records, response):
    """What Lambda redelivers after a partial failure: from the lowest failed sequence on."""
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    first = min(i for i, r in enumerate(records) if r.item_identifier in failed)
    return records[first:]


def accounted(report):
    c = report.counts()
    return c["received"] == c["scored"] + c["quarantined"] + c["redelivered"] + c["failed"]


def state(res):
    """Profile and partner states with their checkpoints (outboxes, channel marks, the alert index aside)."""
    items = {i["account_id"]["S"]: (bytes(i["s"]["B"]), i["c"]["S"])
             for i in res.profile_items() if not i["account_id"]["S"].startswith(("channel#", "txn#"))}  # fmt: skip
    rows = res.scored_rows()
    return items, sorted(r["trans_id"] for r in rows), sorted(a["trans_id"] for a in res.alerts())


def test_every_bad_record_is_quarantined_with_its_reason_and_raw_payload(world):
    b = bank()
    good = [json.loads(p) for p in payloads(b.test.head(6))]
    huge = {**good[1], "trans_id": "t-huge", "partner_account": "x" * 1_000_000}
    data = [json.dumps(g).encode() for g in good] + [
        b"{not json", b"\xff\xfe", json.dumps({"amount": 5}).encode(),
        json.dumps({**good[0], "trans_id": "t-type", "amount": [1]}).encode(),
        json.dumps({**good[0], "trans_id": "t-nan", "amount": float("nan")}).encode(),  # the JSON literal NaN
        json.dumps({**good[0], "trans_id": "t-neg", "amount": -4.0}).encode(),
        json.dumps(huge).encode(), json.dumps(good[2]).encode(), b"[1, 2]",
        json.dumps({**good[0], "trans_id": "t-inf", "amount": float("inf")}).encode(),
    ]  # fmt: skip
    kind, records = decode_event(event_of(data))
    svc = service(world)
    report = svc.process(records)
    assert accounted(report) and report.counts()["scored"] == 6 and not report.failed
    m = svc.metrics
    assert m.total(Metric.RECEIVED) == 16 and m.total(Metric.SCORED) == 6
    assert m.total(Metric.QUARANTINED) == 10 == sum(m.by_dimension(Metric.QUARANTINED, "Reason").values())
    by_reason = sorted(report.quarantined.values())
    # a JSON NaN amount reads as no amount (missing_field); Infinity is non_finite_amount
    assert by_reason == sorted(["malformed", "malformed", "missing_field", "wrong_type", "missing_field",
                                "negative_amount", "too_long", "duplicate_id", "malformed", "non_finite_amount"])
    messages = world.quarantined()
    assert len(messages) == 10
    raw = {m["raw_sha256"]: m for m in messages}
    huge_msg = next(m for m in messages if m["reason"] == "too_long")
    assert huge_msg["raw_truncated"] and huge_msg["raw_bytes"] == len(json.dumps(huge).encode())
    assert any(m["raw_encoding"] == "base64" for m in raw.values())  # the non-UTF-8 payload, kept as bytes
    assert all(m["source"]["sequence_number"] for m in messages)


def test_unknown_accounts_get_a_new_profile_or_are_quarantined_when_required(world):
    b = bank()
    rec = {**json.loads(payloads(b.test.head(1))[0]), "account_id": "acct-never-seen", "trans_id": "n1"}
    _, records = decode_event(event_of([json.dumps(rec).encode()]))
    strict = service(world, known_accounts_only=True).process(records)
    assert strict.quarantined == {records[0].key: "unknown_account"}
    _, records = decode_event(event_of([json.dumps(rec).encode()], first=500))  # another delivery
    lenient = service(world).process(records)
    assert lenient.scored == [records[0].key]


def test_the_same_batch_twice_leaves_profiles_and_alerts_as_after_one_delivery(world):
    _, records = decode_event(event_of(payloads(bank().test.head(120))))
    svc = service(world)
    first = svc.process(records)
    once = state(world)
    again = svc.process(records)
    assert len(first.alerts) > 0 and first.counts()["scored"] == 120
    assert again.counts()["redelivered"] == 120 and not again.alerts and accounted(again)
    items, rows, alerts = state(world)
    assert items == once[0] and rows == once[1] and alerts == []  # nothing new was written or sent
    assert len(once[1]) == 120 and len(set(once[2])) == len(once[2]) == len(first.alerts)


def _clean_run(records, world):
    svc = service(world)
    report = svc.process(records)
    assert not report.failed
    return state(world)


@pytest.mark.parametrize("fault", ["read", "write", "partner_write", "sns", "firehose", "sqs"])
def test_a_failing_service_mid_batch_fails_exactly_its_records_and_the_retry_completes_them_once(tmp_path, fault):
    test = bank().test.head(150)
    data = payloads(test) + [b"bad json"]
    with local_aws():
        res = setup_world(tmp_path)
        point_model(f"s3://{res.bucket}/models/isolation_forest/", "if-1", ALERT_THRESHOLD)
        _, records = decode_event(event_of(data))
        expected = _clean_run(records, res)
    with local_aws():
        res = setup_world(tmp_path)
        point_model(f"s3://{res.bucket}/models/isolation_forest/", "if-1", ALERT_THRESHOLD)
        svc = service(res)
        ddb, sns, firehose = svc.profiles.client, svc.alerts.client, svc.scored_sink.client
        victims = sorted(test["account_id"].unique())[3:6]
        if fault == "read":  # these accounts stay unprocessed (throttled) through every retry
            def get(n, kw, real):
                keys = kw["RequestItems"][res.env["PROFILES_TABLE"]]["Keys"]
                served = [k for k in keys if k["account_id"]["S"] not in victims]
                out = real(RequestItems={res.env["PROFILES_TABLE"]: {"Keys": served, "ConsistentRead": True}})
                left = [k for k in keys if k["account_id"]["S"] in victims]
                out["UnprocessedKeys"] = {res.env["PROFILES_TABLE"]: {"Keys": left}} if left else {}
                return out
            svc.profiles.client = Faulty(ddb, batch_get_item=get)
            svc.profiles.sleep = lambda s: None
        elif fault == "write":  # these accounts' writes are throttled (past botocore's retries)
            def put(n, kw, real):
                if kw["Item"]["account_id"]["S"] in victims:
                    raise client_error("ProvisionedThroughputExceededException", "PutItem")
                return real(**kw)
            svc.profiles.client = Faulty(ddb, put_item=put)
        elif fault == "partner_write":  # these partners' writes are throttled: their records retry
            keys = partner_key(test)
            victim_partners = {f"partner#{k}" for k in sorted(set(keys) - {""})[:3]}
            def put(n, kw, real):
                if kw["Item"]["account_id"]["S"] in victim_partners:
                    raise client_error("ProvisionedThroughputExceededException", "PutItem")
                return real(**kw)
            svc.profiles.client = Faulty(ddb, put_item=put)
        elif fault == "sns":  # the first alert of the batch is refused
            def publish(n, kw, real):
                if n != 1:
                    return real(**kw)
                entries = [e for e in kw["PublishBatchRequestEntries"] if e["Id"] != "0"]
                out = real(TopicArn=kw["TopicArn"], PublishBatchRequestEntries=entries)
                out["Failed"] = [{"Id": "0", "Code": "InternalError", "SenderFault": False}]
                return out
            svc.alerts.client = Faulty(sns, publish_batch=publish)
        elif fault == "firehose":  # records 10..14 of the call get a service error (one row per record here)
            svc.scored_sink.pack_bytes = 1
            def put_batch(n, kw, real):
                keep = [r for i, r in enumerate(kw["Records"]) if not (n == 1 and 10 <= i < 15)]
                real(DeliveryStreamName=kw["DeliveryStreamName"], Records=keep)
                codes = [{"ErrorCode": "ServiceUnavailableException"} if n == 1 and 10 <= i < 15
                         else {"RecordId": str(i)} for i in range(len(kw["Records"]))]  # fmt: skip
                return {"FailedPutCount": 5 if n == 1 else 0, "RequestResponses": codes}
            svc.scored_sink.client = Faulty(firehose, put_record_batch=put_batch)
        else:  # the quarantine queue is down for one call
            def send(n, kw, real):
                if n == 1:
                    raise client_error("ServiceUnavailable", "SendMessageBatch")
                return real(**kw)
            svc.quarantine.client = Faulty(svc.quarantine.client, send_message_batch=send)
        _, records = decode_event(event_of(data))
        first = svc.process(records)
        assert accounted(first) and first.failed
        response = first.response(records)
        failed_ids = [f["itemIdentifier"] for f in response["batchItemFailures"]]
        by_id = {r.item_identifier: r for r in records}
        if fault in ("read", "write"):
            failed_accounts = {json.loads(by_id[i].raw)["account_id"] for i in failed_ids}
            assert failed_accounts == set(victims)
            assert set(failed_ids) == {r.item_identifier for r in records
                                       if r.value.__class__ is dict and r.value["account_id"] in failed_accounts}
        elif fault == "partner_write":
            hit = set(test.loc[("partner#" + keys).isin(victim_partners).to_numpy(), "trans_id"])
            assert {json.loads(by_id[i].raw)["trans_id"] for i in failed_ids} == hit and hit
        elif fault == "firehose":
            assert len(failed_ids) == 5
        elif fault == "sns":
            assert len(failed_ids) == 1
        else:
            assert failed_ids == [records[-1].item_identifier]
        svc.profiles.client, svc.alerts.client, svc.scored_sink.client = ddb, sns, firehose
        svc.quarantine.client = boto3.client("sqs", region_name=LOCAL_REGION)
        retry = svc.process(kinesis_retry(records, response))
        assert not retry.failed and accounted(retry)
        items, rows, alerts = state(res)
        assert items == expected[0]  # profiles exactly as after one clean delivery
        assert rows == expected[1] and alerts == expected[2]  # every row and alert once
        assert len(rows) == len(set(rows)) == 150


def test_model_missing_or_unreadable_scores_rules_only_and_says_so(tmp_path):
    with local_aws():
        res = setup_world(tmp_path, with_model=False)
        _, records = decode_event(event_of(payloads(bank().test.head(30))))
        svc = service(res)
        report = svc.process(records)
        assert report.mode == "rules_only" and report.counts()["scored"] == 30
        assert svc.metrics.total(Metric.RULES_ONLY) == 1
        boto3.client("s3", region_name=LOCAL_REGION).put_object(Bucket=res.bucket, Key="models/bad/model.joblib",
                                                               Body=b"garbage")  # fmt: skip
        boto3.client("s3", region_name=LOCAL_REGION).put_object(Bucket=res.bucket, Key="models/bad/metadata.json",
                                                               Body=b'{"sha256": "0"}')  # fmt: skip
        point_model(f"s3://{res.bucket}/models/bad/", "bad-1", 0.9)
        svc.models.refresh_s = 0.0
        _, more = decode_event(event_of(payloads(bank().test.iloc[30:40]), first=1000))
        again = svc.process(more)
        assert again.mode == "rules_only" and "checksum" in svc.models.serving.problem
        assert svc.metrics.total(Metric.RULES_ONLY) == 2


def test_the_model_is_cached_and_reloaded_when_its_parameter_changes(world):
    svc = service(world)
    calls = []
    ssm = svc.models.ssm
    svc.models.ssm = Faulty(ssm, get_parameter=lambda n, kw, real: calls.append(n) or real(**kw))
    _, records = decode_event(event_of(payloads(bank().test.head(10))))
    svc.process(records)
    svc.process(records)
    assert len(calls) == 1 and svc.models.serving.version == "if-1"  # cached between batches
    point_model(f"s3://{world.bucket}/models/isolation_forest/", "if-2", 0.95)
    svc.models.refresh_s = 0.0
    svc.process(records)
    assert svc.models.serving.version == "if-2" and svc.models.serving.threshold == 0.95
    assert svc.metrics.by_dimension(Metric.MODEL_VERSION, "ModelVersion") == {"if-1": 1.0, "if-2": 1.0}


def test_alert_messages_mask_clients_and_accounts_and_carry_reasons(world):
    _, records = decode_event(event_of(payloads(bank().test.head(120))))
    service(world).process(records)
    alerts = world.alerts()
    assert alerts
    raw_ids = set(bank().valid["client_id"]) | set(bank().valid["account_id"])
    for a in alerts:
        assert a["client_ref"] not in raw_ids and a["account_ref"] not in raw_ids and len(a["account_ref"]) == 16
        assert a["reasons"] and a["anomaly_type"] and 0 <= a["score"] <= 1 and math.isfinite(a["amount"])
    rows = world.scored_rows()
    assert set(rows[0]) >= {"trans_id", "score", "verdict", "reasons", "client_ref", "ts"}
    assert np.isclose(sum(r["verdict"] == "alert" for r in rows), len(alerts))


def test_a_conditional_write_refuses_a_profile_changed_since_it_was_read(world):
    store = ProfileStore(boto3.client("dynamodb", region_name=LOCAL_REGION), world.env["PROFILES_TABLE"])
    acc = sorted(bank().profiles)[0]
    found, failed, corrupt = store.load([acc])
    assert not failed and not corrupt
    stale = found[acc]
    fresh, _, _ = store.load([acc])
    assert not store.put({acc: (encode_account(fresh[acc], fresh[acc].version + 1), fresh[acc].version)})
    assert store.put({acc: (encode_account(stale, stale.version + 1), stale.version)}) == {acc}  # refused
