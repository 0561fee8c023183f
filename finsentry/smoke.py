"""``finsentry smoke --env ENV``: after a deploy, prove the stream path works end to end.

A handful of synthetic transactions go onto the deployment's Kinesis stream: normal ones, one
anomalous (its balance after does not match balance before minus the amount: the catalog's
balance-mismatch rule, which alerts with or without a trained model) and one malformed (not
JSON). Then, within a timeout, each output of the scorer is looked for where the architecture
puts it:

* the scored rows under ``scored/dt=<day>/`` (Firehose's Parquet, or JSON lines when the
  stream has no format conversion), then through Athena (the masked ``scored_transactions`` view);
* the anomaly's alert on the alerts topic, read through a temporary SQS queue subscribed to it
  for this run only and removed afterwards, whatever happened;
* the malformed record in the quarantine queue with reason ``malformed``: the smoke's own
  message is deleted, other messages it had to look at are made visible again at once;
* the scorer's metrics in CloudWatch (EMF, namespace ``finsentry``, ``service`` dimension).

Every record carries the run id (``smoke-<run>``) in its ids, so nothing else on the stream is
mistaken for it. What stays behind: the scored rows (accounts ``smoke-<run>-N``) and the smoke
accounts' profile items, a few hundred bytes each.

Resources come from ``finsentry.deployment`` (the scorer function's own configuration: what
the scorer writes to is what is checked). Only Kinesis sources are supported: a deployment that
reads from MSK or self-managed Kafka is told so (``SmokeConfigError``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finsentry.deployment import Deployment, StreamResources, stream_resources
from finsentry.layout import PARTITION_KEY, PREFIXES, RESOURCES, resource_name
from finsentry.monitoring import METRIC_NAMESPACE, SERVICE_DIMENSION, Metric

MARGIN_S = 240  # beyond Firehose's buffer interval: delivery, Parquet conversion, EMF extraction
QUARANTINE_LOOK_S = 30  # other quarantine messages are hidden at most this long (then released at once)
NORMAL_RECORDS = 4
ROW_COLUMNS = ("trans_id", "score", "verdict", "anomaly_type", "model_version")  # read back from scored/


class SmokeConfigError(ValueError):
    """The deployment cannot be smoke-tested as it is (another stream source, a resource missing)."""


@dataclass
class Check:
    """One line of the smoke table; ``ok`` None = not run (with the reason in ``detail``)."""

    name: str
    ok: bool | None = False
    detail: str = "not seen yet"

    @property
    def result(self) -> str:
        return {True: "pass", False: "FAIL", None: "skipped"}[self.ok]


@dataclass
class SmokeRecords:
    """The records of one run and what each should become."""

    run_id: str
    day: str  # the dt partition of their rows
    payloads: list[tuple[str, bytes]]  # (partition key, data) in put order
    scored_ids: list[str]  # trans_ids that must be scored (the normal ones and the anomaly)
    anomaly_id: str
    malformed_marker: str  # a string only the malformed payload holds


def smoke_records(run_id: str, now: dt.datetime) -> SmokeRecords:
    """``NORMAL_RECORDS`` normal debits on one new account, one balance mismatch on another,
    one malformed payload; timestamps ``now`` (UTC, with its offset, so the scorer stores UTC)."""
    prefix = f"smoke-{run_id}"
    ts = now.astimezone(dt.UTC).replace(microsecond=0)

    def record(n: int, account: str, amount: float, before: float, after: float) -> dict[str, Any]:
        return {"trans_id": f"{prefix}-t{n}", "account_id": account, "client_id": f"{prefix}-client",
                "ts": (ts + dt.timedelta(seconds=n)).isoformat().replace("+00:00", "Z"), "amount": amount,
                "direction": "debit", "type": "debit", "operation": "remittance_other_bank",
                "k_symbol": "household", "partner_bank": "", "partner_account": "", "balance_before": before,
                "balance_after": after, "channel": "transfer", "frequency": "monthly", "client_age": 40.0,
                "client_gender": "F", "district_id": 1, "region": "smoke"}  # fmt: skip

    normal = [record(n, f"{prefix}-1", 20.0 + n, 1000.0 - 20 * n, 1000.0 - 20 * n - (20.0 + n))
              for n in range(NORMAL_RECORDS)]  # fmt: skip
    anomaly = record(NORMAL_RECORDS, f"{prefix}-2", 50.0, 1000.0, 9000.0)  # 1000 - 50 is not 9000
    marker = f"{prefix}-malformed"
    payloads = [(r["account_id"], json.dumps(r).encode()) for r in [*normal, anomaly]]
    payloads.append((marker, f'{{"trans_id": "{marker}", "amount": '.encode()))  # cut short: not JSON
    return SmokeRecords(run_id=run_id, day=ts.strftime("%Y-%m-%d"), payloads=payloads,
                        scored_ids=[r["trans_id"] for r in [*normal, anomaly]], anomaly_id=anomaly["trans_id"],
                        malformed_marker=marker)  # fmt: skip


def default_timeout(deployment: Deployment, stream: StreamResources) -> float:
    """Firehose's buffer interval (the longest wait: rows reach S3 only when it flushes) + a margin."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        description = deployment.client("firehose").describe_delivery_stream(
            DeliveryStreamName=stream.scored_firehose)["DeliveryStreamDescription"]  # fmt: skip
    except (BotoCoreError, ClientError) as exc:
        raise SmokeConfigError(f"Firehose {stream.scored_firehose} cannot be described: {exc}") from None
    hints = [d.get("ExtendedS3DestinationDescription", d.get("S3DestinationDescription", {})).get("BufferingHints", {})
             for d in description.get("Destinations", [])]  # fmt: skip
    interval = max([h.get("IntervalInSeconds", 300) for h in hints] or [300])
    return float(interval + MARGIN_S)


# --- the temporary subscription ---------------------------------------------------------------


@dataclass
class AlertInbox:
    """A temporary SQS queue subscribed to the alerts topic (raw delivery), removed by ``close``."""

    sqs: Any
    sns: Any
    queue_url: str = ""
    subscription_arn: str = ""
    problems: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, deployment: Deployment, topic_arn: str, run_id: str) -> AlertInbox:
        inbox = cls(deployment.client("sqs"), deployment.client("sns"))
        name = resource_name(deployment.env, f"smoke-{run_id}")
        inbox.queue_url = inbox.sqs.create_queue(QueueName=name, Attributes={
            "SqsManagedSseEnabled": "true", "MessageRetentionPeriod": "3600"})["QueueUrl"]  # fmt: skip
        arn = inbox.sqs.get_queue_attributes(QueueUrl=inbox.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]  # fmt: skip
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]}  # fmt: skip
        inbox.sqs.set_queue_attributes(QueueUrl=inbox.queue_url, Attributes={"Policy": json.dumps(policy)})
        inbox.subscription_arn = inbox.sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True)["SubscriptionArn"]  # fmt: skip
        return inbox

    def messages(self) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", [])  # fmt: skip
        out = []
        for m in got:
            with contextlib.suppress(ValueError):
                out.append(json.loads(m["Body"]))
        return out

    def close(self) -> None:
        """Unsubscribe, then delete the queue; each step tried even if the other fails."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self.subscription_arn:
            try:
                self.sns.unsubscribe(SubscriptionArn=self.subscription_arn)
            except (BotoCoreError, ClientError) as exc:
                self.problems.append(f"unsubscribe {self.subscription_arn}: {exc}")
        if self.queue_url:
            try:
                self.sqs.delete_queue(QueueUrl=self.queue_url)
            except (BotoCoreError, ClientError) as exc:
                self.problems.append(f"delete queue {self.queue_url}: {exc}")


# --- the checks ---------------------------------------------------------------------------------


class SmokeRun:
    """One smoke run: the records put, then one ``poll`` per wait step until every check passed."""

    def __init__(self, deployment: Deployment, stream: StreamResources, records: SmokeRecords,
                 started: dt.datetime) -> None:  # fmt: skip
        self.deployment, self.stream, self.records, self.started = deployment, stream, records, started
        self.put = Check("records put on the stream")
        self.s3 = Check(f"scored rows in S3 ({PREFIXES.scored})")
        self.athena = Check(f"scored rows through Athena ({deployment.workgroup})")
        self.alert = Check("anomaly alert on SNS")
        self.quarantine = Check("malformed record quarantined")
        self.metrics = Check(f"scorer metrics in CloudWatch ({METRIC_NAMESPACE})")
        self.cleanup = Check("temporary alert subscription removed", None, "not created")
        self.inbox: AlertInbox | None = None
        self._read_keys: set[str] = set()
        self._found: dict[str, dict[str, Any]] = {}  # trans_id -> what S3 says of it
        self._hidden: list[str] = []  # receipt handles of others' quarantine messages we looked at

    @property
    def checks(self) -> list[Check]:
        return [self.put, self.s3, self.athena, self.alert, self.quarantine, self.metrics, self.cleanup]

    @property
    def waiting(self) -> list[Check]:
        return [c for c in (self.s3, self.athena, self.alert, self.quarantine, self.metrics) if not c.ok]

    def put_records(self) -> None:
        answer = self.deployment.client("kinesis").put_records(
            StreamName=self.stream.stream_name,
            Records=[{"PartitionKey": key, "Data": data} for key, data in self.records.payloads])  # fmt: skip
        failed = int(answer.get("FailedRecordCount", 0))
        shards = sorted({r["ShardId"] for r in answer.get("Records", []) if "ShardId" in r})
        self.put.ok = failed == 0
        self.put.detail = (f"{len(self.records.payloads) - failed} of {len(self.records.payloads)} records "
                           f"({len(self.records.scored_ids)} valid, 1 malformed) on {self.stream.stream_name}, "
                           f"{', '.join(shards)}")  # fmt: skip

    def poll(self) -> None:
        """Look once more for each output not found yet; an AWS error is that check's detail
        (looked at again next time), never the end of the run."""
        looks = [(self.s3, self._look_in_s3), (self.athena, self._look_in_athena), (self.alert, self._look_for_alert),
                 (self.quarantine, self._look_in_quarantine), (self.metrics, self._look_at_metrics)]  # fmt: skip
        for check, look in looks:
            if check.ok:
                continue
            if check is self.athena and not self.s3.ok:
                check.detail = "waits for the rows in S3"
                continue
            try:
                look()
            except _aws_errors() as exc:
                check.ok, check.detail = False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"

    # S3: the objects Firehose wrote into the day's partition since the run started
    def _look_in_s3(self) -> None:
        s3 = self.deployment.client("s3")
        prefix = f"{PREFIXES.scored}{PARTITION_KEY}={self.records.day}/"
        since = self.started - dt.timedelta(minutes=2)
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.deployment.bucket, Prefix=prefix)
        new = [o["Key"] for page in pages for o in page.get("Contents", [])
               if o["LastModified"] >= since and o["Key"] not in self._read_keys]  # fmt: skip
        wanted = set(self.records.scored_ids)
        for key in new:
            for row in _rows_of(self.deployment, key):
                if row.get("trans_id") in wanted:
                    self._found[row["trans_id"]] = row
            self._read_keys.add(key)
        seen = len(wanted & set(self._found))
        self.s3.ok = seen == len(wanted)
        if not seen:
            self.s3.detail = f"none of the {len(wanted)} rows under s3://{self.deployment.bucket}/{prefix} yet"
            return
        anomaly = self._found.get(self.records.anomaly_id)
        verdict = f"; anomaly verdict {anomaly.get('verdict')} ({anomaly.get('anomaly_type') or 'no type'})" \
            if anomaly else ""  # fmt: skip
        version = next(iter(self._found.values())).get("model_version", "?")
        self.s3.detail = (f"{seen} of {len(wanted)} rows in {len(self._read_keys)} new objects under "
                          f"{prefix}{verdict}; model {version}")  # fmt: skip

    def _look_in_athena(self) -> None:
        from finsentry import lake

        ids = self.records.scored_ids
        names = {f"t{n}": trans_id for n, trans_id in enumerate(ids)}
        sql = (f"SELECT trans_id, verdict, anomaly_type FROM {lake.ALERTS_VIEW} "  # noqa: S608 - our own names
               f"WHERE dt = :day AND trans_id IN ({', '.join(':' + n for n in names)})")
        frame = lake.query(sql, self.deployment, params={"day": self.records.day, **names})
        seen = set(frame["trans_id"]) & set(ids) if len(frame) else set()
        self.athena.ok = len(seen) == len(ids)
        self.athena.detail = f"{len(seen)} of {len(ids)} rows in {self.deployment.database}.{lake.ALERTS_VIEW}"

    def _look_for_alert(self) -> None:
        if self.inbox is None:
            return
        for message in self.inbox.messages():
            if message.get("trans_id") == self.records.anomaly_id:
                self.alert.ok = True
                topic = self.stream.alerts_topic_arn.rsplit(":", 1)[-1]
                self.alert.detail = f"{message.get('anomaly_type') or 'unclassified'}, score {message.get('score')}, " \
                    f"via {topic}"  # fmt: skip
        if not self.alert.ok:
            self.alert.detail = f"no alert for {self.records.anomaly_id} yet"
            row = self._found.get(self.records.anomaly_id)
            if row is not None and row.get("verdict") != "alert":
                self.alert.detail += (f": the scorer rated it {row.get('verdict')} (score {row.get('score')}, model "
                                      f"{row.get('model_version')}), so no alert was sent")  # fmt: skip

    def _look_in_quarantine(self) -> None:
        sqs = self.deployment.client("sqs")
        for _ in range(10):  # at most 100 messages per poll
            got = sqs.receive_message(QueueUrl=self.stream.quarantine_queue_url, MaxNumberOfMessages=10,
                                      VisibilityTimeout=QUARANTINE_LOOK_S, WaitTimeSeconds=0)  # fmt: skip
            got = got.get("Messages", [])
            if not got:
                break
            for m in got:
                body = _json_or_empty(m["Body"])
                if self.records.malformed_marker in str(body.get("raw", "")):
                    self.quarantine.ok = True
                    self.quarantine.detail = f"reason {body.get('reason')}: {str(body.get('detail'))[:60]}"
                    sqs.delete_message(QueueUrl=self.stream.quarantine_queue_url, ReceiptHandle=m["ReceiptHandle"])
                else:
                    self._hidden.append(m["ReceiptHandle"])
            if self.quarantine.ok:
                break
        self.release_quarantine()
        if not self.quarantine.ok:
            self.quarantine.detail = f"not in {self.stream.quarantine_queue_url.rsplit('/', 1)[-1]} yet"

    def explain_missing_rows(self) -> None:
        """When the rows never came: are there Firehose delivery or conversion errors since the start?"""
        if self.s3.ok:
            return
        errors = PREFIXES.firehose_errors
        since = self.started - dt.timedelta(minutes=2)
        with contextlib.suppress(*_aws_errors()):
            pages = self.deployment.client("s3").get_paginator("list_objects_v2").paginate(
                Bucket=self.deployment.bucket, Prefix=errors)  # fmt: skip
            n = sum(1 for page in pages for o in page.get("Contents", []) if o["LastModified"] >= since)
            if n:
                self.s3.detail += f"; {n} Firehose error objects under {errors} since the start: read them"

    def release_quarantine(self) -> None:
        """Make the other messages looked at visible again at once (they are for people to review)."""
        sqs = self.deployment.client("sqs")
        while self._hidden:
            chunk, self._hidden = self._hidden[:10], self._hidden[10:]
            entries = [{"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0} for n, h in enumerate(chunk)]
            with contextlib.suppress(*_aws_errors()):  # they reappear by themselves after QUARANTINE_LOOK_S
                sqs.change_message_visibility_batch(QueueUrl=self.stream.quarantine_queue_url, Entries=entries)

    def _look_at_metrics(self) -> None:
        cloudwatch = self.deployment.client("cloudwatch")
        now = dt.datetime.now(dt.UTC)
        wanted = {Metric.RECEIVED: len(self.records.payloads), Metric.QUARANTINED: 1, Metric.ANOMALIES: 1}
        sums = {}
        for metric in wanted:
            points = cloudwatch.get_metric_statistics(
                Namespace=METRIC_NAMESPACE, MetricName=str(metric), StartTime=self.started - dt.timedelta(minutes=1),
                EndTime=now + dt.timedelta(minutes=1), Period=60, Statistics=["Sum"],
                Dimensions=[{"Name": SERVICE_DIMENSION, "Value": RESOURCES.scorer_function}])["Datapoints"]  # fmt: skip
            sums[metric] = sum(p["Sum"] for p in points)
        self.metrics.ok = all(sums[m] >= n for m, n in wanted.items())
        self.metrics.detail = ", ".join(f"{m} {sums[m]:g} (>= {n})" for m, n in wanted.items()) + " since the start"


def _aws_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        from awswrangler import exceptions as wr_exceptions
    except ImportError:  # pragma: no cover - awswrangler is a dependency
        return (BotoCoreError, ClientError)
    return (BotoCoreError, ClientError, wr_exceptions.QueryFailed, wr_exceptions.QueryCancelled)


def _json_or_empty(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _rows_of(deployment: Deployment, key: str) -> list[dict[str, Any]]:
    """The rows of one object Firehose wrote: Parquet (format conversion on; only the columns
    wanted are fetched, by range requests) or JSON lines."""
    s3 = deployment.client("s3")
    head = s3.get_object(Bucket=deployment.bucket, Key=key, Range="bytes=0-3")["Body"].read()
    if head == b"PAR1":
        import awswrangler as wr

        frame = wr.s3.read_parquet(f"s3://{deployment.bucket}/{key}", columns=list(ROW_COLUMNS),
                                   boto3_session=deployment.session)  # fmt: skip
        return frame.to_dict("records")
    rows = []
    for line in s3.get_object(Bucket=deployment.bucket, Key=key)["Body"].read().decode("utf-8", "replace").splitlines():
        row = _json_or_empty(line)
        if row:
            rows.append(row)
    return rows


# --- the whole run ------------------------------------------------------------------------------


def run_smoke(deployment: Deployment, timeout_s: float | None = None, poll_s: float = 10.0,
              progress: Callable[[str], None] = lambda _: None) -> list[Check]:  # fmt: skip
    """Put the records, wait for every output (at most ``timeout_s``; default from Firehose's
    buffer), clean up; the checks, in table order."""
    stream = stream_resources(deployment)
    if stream.source != "kinesis":
        raise SmokeConfigError(f"deployment {deployment.env!r} reads from {stream.source_detail}: finsentry smoke "
                               "puts its records on Kinesis only (produce them with your Kafka client)")  # fmt: skip
    timeout_s = default_timeout(deployment, stream) if timeout_s is None else timeout_s
    started = dt.datetime.now(dt.UTC)
    run_id = uuid.uuid4().hex[:10]
    run = SmokeRun(deployment, stream, smoke_records(run_id, started), started)
    progress(f"smoke run {run_id}: stream {stream.stream_name}, waiting up to {timeout_s:g} s")
    try:
        run.inbox = AlertInbox.open(deployment, stream.alerts_topic_arn, run_id)
        run.cleanup.detail = "created"
        run.put_records()
        if run.put.ok:
            _wait(run, timeout_s, poll_s, progress)
            run.explain_missing_rows()
    finally:
        run.release_quarantine()
        if run.inbox is not None:
            run.inbox.close()
            run.cleanup.ok = not run.inbox.problems
            run.cleanup.detail = ("queue and subscription deleted" if not run.inbox.problems
                                  else "LEFT BEHIND: " + "; ".join(run.inbox.problems))  # fmt: skip
    return run.checks


def _wait(run: SmokeRun, timeout_s: float, poll_s: float, progress: Callable[[str], None]) -> None:
    start = time.monotonic()
    said, last_said = "", start
    while True:
        run.poll()
        left = [c.name.split(" (")[0] for c in run.waiting]
        elapsed = time.monotonic() - start
        if not left or elapsed >= timeout_s:
            return
        message = f"waiting for: {', '.join(left)}"
        if message != said or time.monotonic() - last_said >= 30:
            progress(f"{message} ({elapsed:.0f} s of {timeout_s:g} s)")
            said, last_said = message, time.monotonic()
        time.sleep(min(poll_s, max(timeout_s - elapsed, 0.0)))
