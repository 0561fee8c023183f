"""``make demo``'s stream stage: part of the test period through Kinesis (moto) into the scorer.

moto's Kinesis has no event source mapping, so this module plays Lambda's part: it writes the
transactions to an in-process Kinesis stream (partition key = account, as producers do),
reads them back shard by shard with ``GetRecords`` and hands each batch to the scorer as the
exact Kinesis event Lambda delivers (base64 ``data``, sequence numbers). The scorer is the
deployment's: ``ScorerService`` built from the ``SCORER_ENV`` environment by
``finsentry.stream.runtime.build_service`` (what ``lambdas/stream_scorer/handler.py`` calls),
with the model found through the SSM pointer, profiles in DynamoDB, alerts on SNS, scored rows
through Firehose, bad records on SQS.

Then it compares the transactions the stream flagged with those the batch scoring of the same
period flagged: the features are the same code (incremental vs batch form) and the model and
threshold are the same, so the two sets agree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
import numpy as np
import pandas as pd

from finsentry.features import AccountProfile, update_profiles_with_sequence
from finsentry.layout import RESOURCES, SCORER_ENV, resource_name
from finsentry.local.aws import LOCAL_REGION
from finsentry.local.stream_resources import create_scorer_resources, point_model
from finsentry.partners import PartnerProfile, update_partner_profiles
from finsentry.schema import to_record
from finsentry.stream.events import decode_event
from finsentry.stream.profiles import ProfileStore
from finsentry.stream.risk import frame_resolver, record_verdicts
from finsentry.stream.runtime import build_service
from finsentry.stream.state import initial_items

Progress = Callable[[str], None]
BATCH_SIZE = 500  # the event source mapping's batch size
KINESIS_PUT = 500  # PutRecords limit


@dataclass
class ReplayResult:
    """What the stream did with the replayed records, next to the batch scoring of the same rows."""

    records: int
    batches: int
    seconds: float
    counts: dict[str, int]
    stream_alerts: set[str]
    batch_alerts: set[str]
    model_version: str
    mode: str
    notes: list[str] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def agreement(self) -> float:
        """Share of the union of flagged transactions flagged by both (1.0 = the same set)."""
        union = self.stream_alerts | self.batch_alerts
        return len(self.stream_alerts & self.batch_alerts) / len(union) if union else 1.0

    def summary(self) -> str:
        c = self.counts
        return (f"stream replay: {self.records:,} test transactions through Kinesis -> scorer in {self.batches} "
                f"batches, {self.records_per_s:,.0f} records/s (moto in-process); {c['scored']:,} scored, "
                f"{c['quarantined']:,} quarantined, {c['failed']:,} retried; model {self.model_version} "
                f"({self.mode}); flagged {len(self.stream_alerts):,} vs {len(self.batch_alerts):,} by batch "
                f"scoring, agreement {100 * self.agreement:.1f} %")  # fmt: skip


def _seed_profiles(history: pd.DataFrame, table: str) -> int:
    """Profiles of every account and partner from its history (the batch form's state), bulk-loaded."""
    profiles: dict[str, AccountProfile] = {}
    partners: dict[str, PartnerProfile] = {}
    update_profiles_with_sequence(profiles, history)
    update_partner_profiles(partners, history)
    ddb = boto3.client("dynamodb", region_name=LOCAL_REGION)
    items = initial_items(profiles, partners)
    for start in range(0, len(items), 25):
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": i}} for i in items[start:start + 25]]})
    return len(items)


def _kinesis_events(records: list[dict], stream_name: str, batch_size: int) -> list[dict]:
    """Write the records to Kinesis, read them back per shard, and build Lambda's events."""
    kinesis = boto3.client("kinesis", region_name=LOCAL_REGION)
    kinesis.create_stream(StreamName=stream_name, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]["StreamARN"]
    for start in range(0, len(records), KINESIS_PUT):
        chunk = records[start:start + KINESIS_PUT]  # fmt: skip
        kinesis.put_records(StreamName=stream_name, Records=[
            {"Data": json.dumps(r).encode(), "PartitionKey": str(r["account_id"])} for r in chunk])  # fmt: skip
    events = []
    for shard in kinesis.list_shards(StreamName=stream_name)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream_name, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
        while iterator:
            got = kinesis.get_records(ShardIterator=iterator, Limit=batch_size)
            if not got["Records"]:
                break
            events.append({"Records": [_lambda_record(r, shard["ShardId"], arn) for r in got["Records"]]})
            iterator = got.get("NextShardIterator")
    return events


def _lambda_record(r: dict, shard_id: str, arn: str) -> dict:
    import base64

    return {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"], "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp()},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"{shard_id}:{r['SequenceNumber']}",
        "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::000000000000:role/scorer",
        "awsRegion": LOCAL_REGION, "eventSourceARN": arn,
    }  # fmt: skip


def replay_stream(transactions: pd.DataFrame, replay: pd.Series | np.ndarray, batch_alerts: set[str], model_uri: str,
                  threshold: float, model_version: str, max_records: int = 2_000, batch_size: int = BATCH_SIZE,
                  progress: Progress | None = None, labels: pd.DataFrame | None = None) -> ReplayResult:  # fmt: skip
    """Replay the first ``max_records`` rows of ``replay`` (a boolean mask, in time order)
    through Kinesis into the scorer; every row before them seeds the profiles. ``labels``: the
    local label history (``finsentry label``'s store), fed into the stream's risk items as the
    deployment's doors do (``finsentry.stream.risk``), resolved from ``transactions`` (the local
    run holds every transaction, so no verdict is unresolved).

    Must run inside an active moto context (``finsentry.local.aws.local_aws``).
    """
    say = progress or (lambda _m: None)
    mask = np.asarray(replay, dtype=bool)
    chosen = transactions[mask].sort_values("ts", kind="stable").head(max_records)
    history = transactions[~mask]  # everything before the replayed period
    res = create_scorer_resources()
    seeded = _seed_profiles(history, res.env[SCORER_ENV.profiles_table])
    if labels is not None and len(labels):
        store = ProfileStore(boto3.client("dynamodb", region_name=LOCAL_REGION), res.env[SCORER_ENV.profiles_table])
        start = pd.Timestamp(chosen["ts"].min()) if len(chosen) else pd.Timestamp(transactions["ts"].max())
        fed = record_verdicts(store, labels, now=start, resolve=frame_resolver(transactions))
        say(f"stream replay: {fed.resolved:,} verdicts in the stream's risk ({fed.written:,} items)")
    point_model(model_uri, model_version, threshold)
    say(f"stream replay: {seeded:,} profiles seeded; {len(chosen):,} transactions into Kinesis")
    events = _kinesis_events([to_record(r) for _, r in chosen.iterrows()],
                             resource_name("local", RESOURCES.stream), batch_size)  # fmt: skip
    service = build_service(environ=res.env, session=boto3.session.Session(region_name=LOCAL_REGION))
    counts = {"received": 0, "scored": 0, "quarantined": 0, "redelivered": 0, "failed": 0, "alerts": 0}
    flagged: set[str] = set()
    mode = version = ""
    started = time.perf_counter()
    for event in events:
        _, records = decode_event(event)
        report = service.process(records)
        for k, v in report.counts().items():
            counts[k] += v
        flagged.update(a["trans_id"] for a in report.alerts)
        mode, version = report.mode, report.model_version
    seconds = time.perf_counter() - started
    published = {a["trans_id"] for a in res.alerts()}
    notes = [] if published == flagged else [f"{len(published ^ flagged)} alerts differ between SNS and the report"]
    replayed = set(chosen["trans_id"].astype(str))
    return ReplayResult(records=len(chosen), batches=len(events), seconds=seconds, counts=counts,
                        stream_alerts=flagged, batch_alerts={t for t in batch_alerts if t in replayed},
                        model_version=version, mode=mode, notes=notes)  # fmt: skip
