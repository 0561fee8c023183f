"""The state protocol under generated fault schedules: two writers, failures, redeliveries.

Two Kinesis shards carry the same accounts and partners; each has its own writer (a
``ScorerService``, as Lambda runs one invocation per shard at a time) and its own Lambda cursor:
after a batch, Lambda redelivers from the lowest record the batch reported failed. A schedule
is a list of steps; a step delivers the next batch of one shard under a fault plan: reads that
leave keys unprocessed, writes refused (throttled) or accepted with the answer lost, Firehose /
SNS / SQS entries refused, the response to Lambda lost (the whole batch comes again), and the
other shard's writer running in the middle of this one's writes (conditional-write conflicts).
A clean drain follows. Then, whatever the schedule:

* every report accounts for every record (scored + quarantined + redelivered + failed);
* every valid transaction has exactly one scored row and at most one alert, alerts are exactly
  the alerting rows; every bad record is quarantined exactly once;
* every profile and partner profile folded each of its transactions exactly once (its
  transaction count grew by exactly the records it received);
* nothing is left failed after the drain.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsentry.features import F_N
from finsentry.local.aws import local_aws
from finsentry.local.stream_resources import point_model
from finsentry.partners import P_N, partner_key
from finsentry.stream.events import decode_event, kinesis_event
from finsentry.stream.state import AccountItem, PartnerItem, decode
from tests.stream.faults import client_error
from tests.stream.world import STREAM_ARN, bank, payloads, service, setup_world

ALERT_THRESHOLD = 0.6
SHARDS = ("shardId-000000000000", "shardId-000000000001")


class Chaos:
    """A boto3 client whose calls fail as the current plan says (``plan`` None: no faults)."""

    def __init__(self, client, name: str) -> None:
        self._client, self._name = client, name
        self.plan: dict | None = None
        self.rng = random.Random(0)
        self.before_put = None  # called once before the first put_item of the step (the other writer)

    def __getattr__(self, op):
        real = getattr(self._client, op)
        if not callable(real):
            return real

        def call(**kw):
            plan = self.plan
            if op == "put_item" and self.before_put is not None:
                hook, self.before_put = self.before_put, None
                hook()
            if plan is None:
                return real(**kw)
            p = plan.get(self._name, 0.0)
            if op == "batch_get_item" and p:
                table, req = next(iter(kw["RequestItems"].items()))
                keep = [k for k in req["Keys"] if self.rng.random() >= p]
                left = [k for k in req["Keys"] if k not in keep]
                out = real(RequestItems={table: {**req, "Keys": keep}}) if keep else {"Responses": {table: []}}
                out["UnprocessedKeys"] = {table: {**req, "Keys": left}} if left else {}
                return out
            if op == "put_item" and p and self.rng.random() < p:
                if plan.get("ack_lost") and self.rng.random() < 0.5:
                    real(**kw)  # written, but the answer is lost: the writer believes it failed
                raise client_error("ProvisionedThroughputExceededException", "PutItem")
            if op == "put_record_batch" and p:
                fail = [self.rng.random() < p for _ in kw["Records"]]
                kept = [r for r, f in zip(kw["Records"], fail, strict=True) if not f]
                if kept:
                    real(DeliveryStreamName=kw["DeliveryStreamName"], Records=kept)
                return {"FailedPutCount": sum(fail), "RequestResponses": [
                    {"ErrorCode": "ServiceUnavailableException"} if f else {"RecordId": "x"} for f in fail]}
            if op == "publish_batch" and p:
                fail = [e for e in kw["PublishBatchRequestEntries"] if self.rng.random() < p]
                kept = [e for e in kw["PublishBatchRequestEntries"] if e not in fail]
                out = real(TopicArn=kw["TopicArn"], PublishBatchRequestEntries=kept) if kept else {"Successful": []}
                out["Failed"] = [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in fail]
                return out
            if op == "send_message_batch" and p and self.rng.random() < p:
                raise client_error("ServiceUnavailable", "SendMessageBatch")
            return real(**kw)

        return call


@dataclass
class Shard:
    records: list  # InboundRecords of the whole shard, in order
    cursor: int = 0  # Lambda's checkpoint: the next record to deliver


def _shard_records(shard: int, data: list[bytes]):
    base = 10_000 * (shard + 1)
    event = kinesis_event(data, STREAM_ARN, first_sequence=base)
    for rec in event["Records"]:
        rec["eventID"] = f"{SHARDS[shard]}:{rec['kinesis']['sequenceNumber']}"
    return decode_event(event)[1]


def _inputs():
    """Two shards sharing accounts and partners; bad records; a producer's resend."""
    test = bank().test
    keys = partner_key(test)
    busiest = keys[keys != ""].value_counts().index[:3]  # partners that several accounts pay
    frame = pd.concat([test.head(12), test[keys.isin(busiest)].head(14)]).drop_duplicates("trans_id")
    good = payloads(frame)
    bad = [b"{not json", json.dumps({**json.loads(good[0]), "trans_id": "neg", "amount": -3}).encode(),
           json.dumps({**json.loads(good[1]), "trans_id": "surrogate", "client_id": "c-\ud800"}).encode()]
    shard0 = [good[i] for i in range(0, len(good), 2)] + [bad[0], good[0]]  # good[0] again: a resend
    shard1 = [good[i] for i in range(1, len(good), 2)] + bad[1:]
    return frame, [_shard_records(0, shard0), _shard_records(1, shard1)]


step = st.fixed_dictionaries({
    "shard": st.integers(0, 1), "size": st.integers(1, 12), "seed": st.integers(0, 2**16),
    "ddb_read": st.sampled_from([0.0, 0.0, 0.3]), "ddb_write": st.sampled_from([0.0, 0.0, 0.3, 0.6]),
    "firehose": st.sampled_from([0.0, 0.0, 0.3]), "sns": st.sampled_from([0.0, 0.0, 0.5]),
    "sqs": st.sampled_from([0.0, 0.5]), "ack_lost": st.booleans(),
    "response_lost": st.sampled_from([False] * 3 + [True]), "interleave": st.booleans(),
})  # fmt: skip


def _run(world, schedule):
    frame, shard_records = _inputs()
    shards = [Shard(r) for r in shard_records]
    writers = []
    for _ in SHARDS:
        svc = service(world)
        svc.hot_limit = 3  # hot-account slices on a small scale
        svc.profiles.sleep = lambda s: None
        chaos = {"ddb": Chaos(svc.profiles.client, "ddb"), "firehose": Chaos(svc.scored_sink.client, "firehose"),
                 "sns": Chaos(svc.alerts.client, "sns"), "sqs": Chaos(svc.quarantine.client, "sqs")}  # fmt: skip
        svc.profiles.client, svc.scored_sink.client = chaos["ddb"], chaos["firehose"]
        svc.alerts.client, svc.quarantine.client = chaos["sns"], chaos["sqs"]
        writers.append((svc, chaos))
    reports = []

    def deliver(plan):
        s = shards[plan["shard"]]
        if s.cursor >= len(s.records):
            return
        svc, chaos = writers[plan["shard"]]
        faults = {"ddb": max(plan["ddb_read"], plan["ddb_write"]), "firehose": plan["firehose"], "sns": plan["sns"],
                  "sqs": plan["sqs"], "ack_lost": plan["ack_lost"]}  # fmt: skip
        for n, c in enumerate(chaos.values()):
            c.plan, c.rng = faults, random.Random(plan["seed"] + n)
        if plan.get("interleave") and plan.get("other") is not None:
            chaos["ddb"].before_put = lambda: deliver(plan["other"])
        batch = s.records[s.cursor:s.cursor + plan["size"]]
        report = svc.process(batch)
        for c in chaos.values():
            c.plan, c.before_put = None, None
        reports.append(report)
        if plan["response_lost"]:
            return  # Lambda saw no response: the same batch comes again
        failed = [i for i, r in enumerate(batch) if r.key in report.failed]
        s.cursor += failed[0] if failed else len(batch)

    for n, plan in enumerate(schedule):
        other = dict(schedule[n + 1], shard=1 - plan["shard"], interleave=False) if n + 1 < len(schedule) else None
        deliver({**plan, "other": other})
    for _ in range(12):  # the clean drain: Lambda keeps retrying until every shard is through
        for k in (0, 1):
            deliver({"shard": k, "size": 100, "seed": 0, "ddb_read": 0, "ddb_write": 0, "firehose": 0, "sns": 0,
                     "sqs": 0, "ack_lost": False, "response_lost": False})
    return frame, shards, reports


def _check(world, frame, shards, reports):
    for rep in reports:
        c = rep.counts()
        assert c["received"] == c["scored"] + c["quarantined"] + c["redelivered"] + c["failed"]
    assert all(s.cursor == len(s.records) for s in shards), "records left failed after the drain"
    rows = world.scored_rows()
    counted = Counter(r["trans_id"] for r in rows)
    assert set(counted) == set(frame["trans_id"]) and max(counted.values()) == 1  # each once, none lost
    alerts = Counter(a["trans_id"] for a in world.alerts())
    assert not alerts or max(alerts.values()) == 1
    assert set(alerts) == {r["trans_id"] for r in rows if r["verdict"] == "alert"}
    quarantined = Counter((m["source"]["sequence_number"], m["reason"]) for m in world.quarantined())
    assert max(quarantined.values()) == 1
    reasons = sorted(r for _, r in quarantined)
    assert reasons in (["invalid_value", "malformed", "negative_amount"],  # the resend came in a later batch
                       ["duplicate_id", "invalid_value", "malformed", "negative_amount"])  # or in the same one
    b = bank()
    items = {i["account_id"]["S"]: decode(i) for i in world.profile_items()}
    for acc, n in frame["account_id"].value_counts().items():
        item = items[acc]
        assert isinstance(item, AccountItem)
        before = b.profiles[acc].f[F_N] if acc in b.profiles else 0
        assert item.profile.f[F_N] == before + n, f"account {acc} folded {item.profile.f[F_N] - before} of {n}"
    keys = partner_key(frame)
    for p, n in keys[keys != ""].value_counts().items():
        item = items["partner#" + p]
        assert isinstance(item, PartnerItem)
        before = b.partners[p].f[P_N] if p in b.partners else 0
        assert item.profile.f[P_N] == before + n, f"partner {p} folded {item.profile.f[P_N] - before} of {n}"
    totals = Counter()
    for r in reports:
        totals.update({k: v for k, v in r.counts().items() if k != "alerts"})
    totals["batches"] += len(reports)
    SEEN.append(totals)
    return sum(r.counts()["failed"] for r in reports), sum(alerts.values())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("model")


FAILED_SEEN: list[int] = []
SEEN: list[Counter] = []  # per schedule: batches and outcomes (printed by the test below, pytest -s)


# CI draws the same 15 schedules every run (~100 s of CPU); a deeper search, with new schedules per
# --hypothesis-seed: FAULT_SCHEDULES=60 pytest tests/stream/test_protocol_faults.py --hypothesis-seed=7
EXAMPLES = int(os.environ.get("FAULT_SCHEDULES", "15"))


@settings(max_examples=EXAMPLES, deadline=None, derandomize="FAULT_SCHEDULES" not in os.environ,
          suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(step, min_size=1, max_size=10))
def test_every_record_ends_once_whatever_fails(model_dir, schedule):
    with local_aws():
        world = setup_world(model_dir)
        point_model(f"s3://{world.bucket}/models/isolation_forest/", "if-1", ALERT_THRESHOLD)
        frame, shards, reports = _run(world, schedule)
        FAILED_SEEN.append(_check(world, frame, shards, reports)[0])


def test_the_schedules_above_did_fail_records():
    """The property is not vacuous: the generated schedules failed records along the way."""
    if not FAILED_SEEN:
        pytest.skip("run with the property test")
    assert sum(FAILED_SEEN) > 0 and sum(f > 0 for f in FAILED_SEEN) >= len(FAILED_SEEN) // 4
    total = sum(SEEN, Counter())
    print(f"\nfault schedules: {len(SEEN)} runs, {dict(total)}; runs with failed records: "
          f"{sum(f > 0 for f in FAILED_SEEN)}")


def test_one_clean_schedule_scores_every_record_once(tmp_path):
    with local_aws():
        world = setup_world(tmp_path)
        point_model(f"s3://{world.bucket}/models/isolation_forest/", "if-1", ALERT_THRESHOLD)
        frame, shards, reports = _run(world, [])
        failed, alerts = _check(world, frame, shards, reports)
        assert failed == 0 and alerts > 0  # the threshold raises alerts: they are checked too


# A schedule the property test found on 2026-12-02 (seed 13804975209285313208943236101145661430): writes
# that succeed with their answer lost, the other shard's writer running in the middle of this one's
# writes, and lost Lambda responses. Trans 4258 (shard 0, seq 10012) was never scored: a delivery of
# 10006..10014 completed every record but 10007 and 10012, and the mark recorded only the complete
# ones; a shorter redelivery (10006..10007) then completed 10007 and ``advance`` moved ``through``
# over the gap where 10012 was, so the mark said 10012 was delivered. Fixed by recording every seen
# record in the mark, the incomplete ones too (docs/architecture.md, invariant 4).
LOST_RECORD_STEPS = ("shard", "size", "seed", "ddb_read", "ddb_write", "firehose", "sns", "sqs", "ack_lost",
                     "response_lost", "interleave")
LOST_RECORD_SCHEDULE = [dict(zip(LOST_RECORD_STEPS, step, strict=True)) for step in (
    (0, 6, 11427, 0.0, 0.0, 0.0, 0.0, 0.0, True, False, False),
    (0, 12, 111, 0.3, 0.0, 0.0, 0.0, 0.0, True, True, True),
    (1, 1, 14031, 0.3, 0.0, 0.0, 0.5, 0.0, True, True, False),
    (1, 6, 65535, 0.0, 0.3, 0.3, 0.5, 0.5, True, False, False),
    (0, 11, 3082, 0.3, 0.0, 0.0, 0.0, 0.5, True, True, True),
    (0, 2, 1488, 0.3, 0.3, 0.3, 0.0, 0.5, True, False, False),
    (1, 9, 226, 0.0, 0.0, 0.0, 0.5, 0.5, False, False, True),
    (0, 5, 3043, 0.3, 0.0, 0.3, 0.0, 0.5, True, False, True),
    (0, 7, 129, 0.0, 0.0, 0.0, 0.5, 0.0, True, False, True),
    (1, 8, 250, 0.0, 0.0, 0.0, 0.0, 0.5, False, False, True),
)]


def test_the_schedule_that_loses_a_record(tmp_path):
    with local_aws():
        world = setup_world(tmp_path)
        point_model(f"s3://{world.bucket}/models/isolation_forest/", "if-1", ALERT_THRESHOLD)
        frame, shards, reports = _run(world, LOST_RECORD_SCHEDULE)
        _check(world, frame, shards, reports)
