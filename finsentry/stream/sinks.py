"""Where the scorer's outputs go, in batch calls, with per-record failure reporting.

* ``ScoredSink`` — Kinesis Data Firehose ``PutRecordBatch`` (500 records / 4 MiB per call): JSON
  lines of scored transactions packed into records of up to ``PACK_BYTES`` (Firehose bills each
  record in 5 KB steps: one 310-byte row per record would pay for 5 KB; its JSON -> Parquet
  conversion reads several JSON documents in one record). A refused record fails all its rows;
  the stream converts to Parquet under ``scored/``;
* ``AlertPublisher`` — SNS ``PublishBatch`` (10 messages per call), one message per anomaly;
* ``QuarantineQueue`` — SQS ``SendMessageBatch`` (10 messages / 256 KiB per call), one message
  per bad record with its reason and raw payload.

Each ``send`` takes ``{key: payload}`` and returns the keys that were NOT accepted (the call
failed, or the service rejected that entry). Nothing raises on a service failure: the caller
turns failed keys into ``batchItemFailures``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

FIREHOSE_RECORDS = 500
FIREHOSE_BYTES = 4 * 1024 * 1024
SNS_BATCH = 10
SQS_BATCH = 10
SQS_BYTES = 256 * 1024  # per message and per batch
PACK_BYTES = 50 * 1024  # scored rows per Firehose record, at most (whole 5 KB billing steps, ~160 rows)
RAW_KEEP_BYTES = 96 * 1024  # raw payload bytes kept in a quarantine message (the rest: size + SHA-256)


def _chunks(items: list[tuple[str, bytes]], max_count: int, max_bytes: int) -> Iterator[list[tuple[str, bytes]]]:
    chunk: list[tuple[str, bytes]] = []
    size = 0
    for key, data in items:
        if chunk and (len(chunk) == max_count or size + len(data) > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append((key, data))
        size += len(data)
    if chunk:
        yield chunk


class ScoredSink:
    """Scored rows to Firehose (JSON lines)."""

    def __init__(self, client, stream_name: str, pack_bytes: int = PACK_BYTES) -> None:
        self.client = client
        self.stream_name = stream_name
        self.pack_bytes = pack_bytes

    def send(self, lines: Mapping[str, str]) -> set[str]:
        """Send the lines packed into records; the keys of the lines whose record was refused."""
        failed: set[str] = set()
        members: dict[str, list[str]] = {}  # packed record's first key -> the keys of its lines
        packed: list[tuple[str, bytes]] = []
        for group in _chunks([(k, (v + "\n").encode()) for k, v in lines.items()], FIREHOSE_RECORDS,
                             self.pack_bytes):  # fmt: skip
            members[group[0][0]] = [k for k, _ in group]
            packed.append((group[0][0], b"".join(d for _, d in group)))
        for chunk in _chunks(packed, FIREHOSE_RECORDS, FIREHOSE_BYTES):
            try:
                answer = self.client.put_record_batch(DeliveryStreamName=self.stream_name,
                                                      Records=[{"Data": d} for _, d in chunk])  # fmt: skip
            except (ClientError, BotoCoreError) as exc:
                log.warning("Firehose rejected %d records: %s", len(chunk), exc)
                failed.update(m for k, _ in chunk for m in members[k])
                continue
            if answer.get("FailedPutCount", 0):
                for (k, _), r in zip(chunk, answer["RequestResponses"], strict=True):
                    if r.get("ErrorCode"):
                        failed.update(members[k])
        return failed


class AlertPublisher:
    """Alert messages to SNS; the anomaly type is a message attribute (for filter policies)."""

    def __init__(self, client, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def send(self, messages: Mapping[str, dict[str, Any]]) -> set[str]:
        failed: set[str] = set()
        keys = list(messages)
        for start in range(0, len(keys), SNS_BATCH):
            chunk = keys[start:start + SNS_BATCH]  # fmt: skip
            entries = [{
                "Id": str(n), "Message": json.dumps(messages[k]), "Subject": _subject(messages[k]),
                "MessageAttributes": {"anomaly_type": {"DataType": "String",
                                                       "StringValue": messages[k].get("anomaly_type") or "unknown"}},
            } for n, k in enumerate(chunk)]  # fmt: skip
            try:
                answer = self.client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries)
            except (ClientError, BotoCoreError) as exc:
                log.warning("SNS rejected %d alerts: %s", len(chunk), exc)
                failed.update(chunk)
                continue
            failed.update(chunk[int(f["Id"])] for f in answer.get("Failed", []))
        return failed


def _subject(message: Mapping[str, Any]) -> str:
    text = f"finsentry alert: {message.get('anomaly_type') or 'anomaly'} score {message.get('score', 0):.3f}"
    return text[:100]


def quarantine_message(reason: str, detail: str, raw: bytes, source: Mapping[str, Any] | None) -> dict[str, Any]:
    """The quarantine message of one bad record: reason, detail, the raw payload and where it
    came from. Payloads above ``RAW_KEEP_BYTES`` keep their head, their size and their SHA-256."""
    kept = raw[:RAW_KEEP_BYTES]
    try:
        text, encoding = kept.decode("utf-8"), "utf-8"
        if len(json.dumps(text, ensure_ascii=False)) > 2 * RAW_KEEP_BYTES:  # escapes would overflow SQS
            raise UnicodeDecodeError("utf-8", kept, 0, 1, "too many escapes")
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(kept).decode(), "base64"
    return {
        "reason": reason, "detail": detail, "raw": text, "raw_encoding": encoding,
        "raw_bytes": len(raw), "raw_truncated": len(raw) > RAW_KEEP_BYTES,
        "raw_sha256": hashlib.sha256(raw).hexdigest(), "source": dict(source or {}),
    }  # fmt: skip


class QuarantineQueue:
    """Quarantine messages to SQS."""

    def __init__(self, client, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, messages: Mapping[str, dict[str, Any]]) -> set[str]:
        failed: set[str] = set()
        keys = list(messages)
        bodies = [(k, json.dumps(messages[k], ensure_ascii=False).encode()) for k in keys]
        for chunk in _chunks(bodies, SQS_BATCH, SQS_BYTES):
            entries = [{"Id": str(n), "MessageBody": body.decode(),
                        "MessageAttributes": {"reason": {"DataType": "String",
                                                         "StringValue": messages[k]["reason"]}}}
                       for n, (k, body) in enumerate(chunk)]  # fmt: skip
            try:
                answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                log.warning("SQS rejected %d quarantine messages: %s", len(chunk), exc)
                failed.update(k for k, _ in chunk)
                continue
            failed.update(chunk[int(f["Id"])][0] for f in answer.get("Failed", []))
        return failed
