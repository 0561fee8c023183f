"""Lambda stream events in, decoded records out: Kinesis Data Streams and MSK / self-managed Kafka.

Both event shapes carry base64 payloads; this module turns either into ``InboundRecord``s in
delivery order, each with the identifier Lambda expects back in ``batchItemFailures``:

* Kinesis: ``{"itemIdentifier": <sequenceNumber>}`` (Lambda checkpoints at the lowest one);
* Kafka: ``{"itemIdentifier": {"partition": "<topic>-<partition>", "offset": <offset>}}``
  (the format of Powertools' ``BatchProcessor(EventType.Kafka)``).

Each record also carries its place in the stream, the redelivery guard of the state protocol
(``finsentry.stream.protocol``): ``channel`` (the Kinesis shard id, or ``<topic>-<partition>``)
and ``seq`` (the sequence number or offset, an integer that grows along the channel).

Decoding never raises on a bad record: a payload that is not base64, not UTF-8, not JSON or
larger than ``MAX_RECORD_BYTES`` becomes a record with ``error`` set (the scorer quarantines
it with the raw bytes); an event that is neither shape raises ``UnknownEventError``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_RECORD_BYTES = 1_048_576  # Kinesis' own record limit (1 MiB); larger payloads are never parsed
KINESIS = "kinesis"
KAFKA = "kafka"
KAFKA_SOURCES = ("aws:kafka", "SelfManagedKafka")


class UnknownEventError(ValueError):
    """The event is neither a Kinesis nor a Kafka (MSK / self-managed) batch."""


@dataclass
class InboundRecord:
    """One delivered record: where it came from, its raw bytes, and its JSON value or an error."""

    key: str  # unique within the batch: "kinesis:<seq>" or "kafka:<topic>-<partition>@<offset>"
    item_identifier: Any  # what batchItemFailures must carry for this record
    raw: bytes
    value: Any = None  # the parsed JSON value when error is None
    error: str = ""  # why the payload could not be parsed ("" = parsed)
    source: Mapping[str, Any] | None = None  # stream/topic coordinates, for the quarantine message
    channel: str = ""  # the ordered channel it came from: Kinesis shard id, or "<topic>-<partition>"
    seq: int = -1  # its position along the channel (sequence number or offset); -1 = unknown


def event_source(event: Mapping[str, Any]) -> str:
    """``KINESIS`` or ``KAFKA``; ``UnknownEventError`` for anything else."""
    if isinstance(event, Mapping):
        if event.get("eventSource") in KAFKA_SOURCES and isinstance(event.get("records"), Mapping):
            return KAFKA
        records = event.get("Records")
        if isinstance(records, list) and (not records or all(
                isinstance(r, Mapping) and r.get("eventSource") == "aws:kinesis" for r in records)):  # fmt: skip
            return KINESIS
    raise UnknownEventError("expected a Kinesis Data Streams or Kafka (MSK / self-managed) event")


def parse_payload(raw: bytes) -> tuple[Any, str]:
    """The JSON value of one payload, or ``(None, why)``. Never raises."""
    if len(raw) > MAX_RECORD_BYTES:
        return None, f"payload of {len(raw):,} bytes is above {MAX_RECORD_BYTES:,}"
    try:
        return json.loads(raw.decode("utf-8")), ""
    except UnicodeDecodeError:
        return None, "payload is not UTF-8"
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as exc:
        return None, f"not JSON: {str(exc)[:200]}"


def _b64(text: Any) -> tuple[bytes, str]:
    if not isinstance(text, str):
        return b"", "no base64 data"
    try:
        return base64.b64decode(text, validate=True), ""
    except (binascii.Error, ValueError):
        return text.encode("utf-8", "replace"), "data is not base64"


def _position(value: Any) -> int:
    text = str(value)
    return int(text) if text.isdigit() and len(text) <= 80 else -1


def _decoded(key: str, identifier: Any, data: Any, source: Mapping[str, Any], channel: str,
             seq: int) -> InboundRecord:  # fmt: skip
    raw, error = _b64(data)
    value = None
    if not error:
        value, error = parse_payload(raw)
    if not error and seq < 0:
        error = "record has no sequence number or offset"
    return InboundRecord(key=key, item_identifier=identifier, raw=raw, value=value, error=error, source=source,
                         channel=channel, seq=seq)  # fmt: skip


def decode_event(event: Mapping[str, Any]) -> tuple[str, list[InboundRecord]]:
    """The event's source kind and its records in delivery order."""
    kind = event_source(event)
    out: list[InboundRecord] = []
    if kind == KINESIS:
        for rec in event["Records"]:
            k = rec.get("kinesis") or {}
            seq = str(k.get("sequenceNumber", ""))
            source = {"stream": rec.get("eventSourceARN", ""), "partition_key": k.get("partitionKey", ""),
                      "sequence_number": seq}  # fmt: skip
            shard = str(rec.get("eventID", "")).partition(":")[0] or "shard"
            out.append(_decoded(f"kinesis:{seq}", seq, k.get("data"), source, shard, _position(seq)))
        return kind, out
    for records in event["records"].values():
        for rec in records if isinstance(records, list) else []:
            topic, partition, offset = rec.get("topic", ""), rec.get("partition", ""), rec.get("offset", "")
            identifier = {"partition": f"{topic}-{partition}", "offset": offset}
            source = {"topic": topic, "partition": partition, "offset": offset}
            out.append(_decoded(f"kafka:{topic}-{partition}@{offset}", identifier, rec.get("value"), source,
                                f"{topic}-{partition}", _position(offset)))
    return kind, out


def batch_item_failures(records: list[InboundRecord], failed_keys: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The partial batch response naming exactly the failed records, in delivery order."""
    return {"batchItemFailures": [{"itemIdentifier": r.item_identifier} for r in records if r.key in failed_keys]}


def kinesis_event(payloads: list[bytes], stream_arn: str, first_sequence: int = 1,
                  partition_keys: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """A Kinesis event exactly as Lambda delivers it (tests, the local replay, the benchmark)."""
    records = []
    for n, data in enumerate(payloads):
        seq = f"{first_sequence + n:056d}"
        records.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": (partition_keys or [""] * len(payloads))[n],
                        "sequenceNumber": seq, "data": base64.b64encode(data).decode(),
                        "approximateArrivalTimestamp": 1_700_000_000.0},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000000:{seq}",
            "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::000000000000:role/scorer",
            "awsRegion": "eu-west-1", "eventSourceARN": stream_arn,
        })  # fmt: skip
    return {"Records": records}


def kafka_event(payloads: list[bytes], topic: str = "transactions", partition: int = 0,
                first_offset: int = 0) -> dict[str, Any]:  # fmt: skip
    """An MSK event exactly as Lambda delivers it (one topic-partition)."""
    records = [{
        "topic": topic, "partition": partition, "offset": first_offset + n, "timestamp": 1_700_000_000_000,
        "timestampType": "CREATE_TIME", "value": base64.b64encode(data).decode(), "headers": [],
    } for n, data in enumerate(payloads)]  # fmt: skip
    return {"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:eu-west-1:000000000000:cluster/demo/x",
            "bootstrapServers": "b-1.demo:9092", "records": {f"{topic}-{partition}": records}}  # fmt: skip
