"""The S3 label door's Lambda: verdict exports under ``feedback/incoming/`` -> the label history.

Thin by design: an EventBridge "Object Created" event names one export (read just that one); the
hourly schedule's event names none (read the whole inbox: anything an earlier run missed). All
the work is ``finsentry.feedback.ingest_feedback``; this emits its counts as metrics and logs
them. An exception propagates: Lambda retries the event twice, then sends it to the DLQ (alarmed).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from finsentry.feedback import door_from_environment, door_metrics, event_keys, ingest_feedback
from finsentry.layout import RESOURCES
from finsentry.monitoring import METRIC_NAMESPACE

logger = Logger(service=RESOURCES.feedback_function)
metrics = Metrics(namespace=METRIC_NAMESPACE, service=RESOURCES.feedback_function)
tracer = Tracer(service=RESOURCES.feedback_function)
_door = None  # settings and clients, built on the first invocation


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    global _door
    if _door is None:
        _door = door_from_environment()  # one clear error if the deployment left a variable out
    run = ingest_feedback(_door.s3, _door.bucket, _door.glue, _door.env, keys=event_keys(event), risk=_door.risk)
    for name, value in door_metrics(run.counts()).items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("feedback ingested", extra={"counts": run.counts(), "unreadable": run.unreadable,
                                            "written": run.written, "partitions": run.partitions,
                                            "compacted": run.compacted})  # fmt: skip
    return run.counts()
