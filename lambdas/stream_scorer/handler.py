"""Scorer Lambda: Kinesis Data Streams or MSK / self-managed Kafka batches -> ``finsentry``.

Thin by design: decode the event, hand the whole batch to ``finsentry.stream.ScorerService``
(one profile read, one scoring pass, batch writes), then let Powertools' ``BatchProcessor``
build the partial batch response: its record handler only re-raises the per-record failure the
service already decided, so ``batchItemFailures`` has exactly Powertools' (and Lambda's) format
for either source. Configuration comes from ``finsentry.layout.SCORER_ENV``, checked at start-up.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from finsentry.monitoring import METRIC_NAMESPACE
from finsentry.stream.events import KINESIS, decode_event
from finsentry.stream.runtime import RecordNotCompleted, build_service, record_key

logger = Logger(service="stream-scorer")
metrics = Metrics(namespace=METRIC_NAMESPACE)  # service dimension from POWERTOOLS_SERVICE_NAME (the CDK sets it)
PROCESSORS = {KINESIS: BatchProcessor(event_type=EventType.KinesisDataStreams),
              "kafka": BatchProcessor(event_type=EventType.Kafka)}  # fmt: skip
_service = None  # built on the first invocation (cold start), then reused


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _service
    if _service is None:
        _service = build_service(metrics)  # raises a clear error if an env var is missing
    kind, records = decode_event(event)
    report = _service.process(records)
    logger.info("batch scored", extra={"counts": report.counts(), "mode": report.mode,
                                       "model_version": report.model_version})  # fmt: skip

    def record_handler(record) -> None:
        why = report.failed.get(record_key(kind, record))
        if why is not None:
            raise RecordNotCompleted(why)

    return process_partial_response(event=event, record_handler=record_handler, processor=PROCESSORS[kind],
                                    context=context)  # fmt: skip
