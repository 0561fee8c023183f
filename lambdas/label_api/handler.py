"""The HTTPS label door's Lambda: ``POST /labels`` behind API Gateway (IAM auth) -> the label history.

Thin by design: Powertools' REST resolver routes the request; ``finsentry.feedback.submit_labels``
validates the body with the one validator, stores the new labels (the S3 door's write path) and
says what became of each row. A body that is not one label or a list of them is a 400 with one
message; anything else that fails is a 5xx (alarmed). The counts are emitted as metrics.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from finsentry.feedback import LabelBodyError, door_from_environment, door_metrics, submit_labels
from finsentry.layout import RESOURCES
from finsentry.monitoring import METRIC_NAMESPACE, Metric

logger = Logger(service=RESOURCES.labels_function)
metrics = Metrics(namespace=METRIC_NAMESPACE, service=RESOURCES.labels_function)
tracer = Tracer(service=RESOURCES.labels_function)
app = APIGatewayRestResolver()
_door = None  # settings and clients, built on the first invocation


@app.post("/labels")
@tracer.capture_method
def post_labels() -> Response:
    global _door
    if _door is None:
        _door = door_from_environment()
    caller = app.current_event.request_context.identity.user_arn
    try:
        submission = submit_labels(_door.s3, _door.bucket, app.current_event.decoded_body, risk=_door.risk)
    except LabelBodyError as err:
        logger.info("label request refused", extra={"reason": str(err), "caller": caller})
        metrics.add_metric(name=str(Metric.LABEL_REQUESTS_REFUSED), unit=MetricUnit.Count, value=1)
        return Response(400, content_types.APPLICATION_JSON, json.dumps({"message": str(err)}))
    counts = submission.counts()
    for name, value in door_metrics(counts).items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("labels submitted", extra={"counts": counts, "caller": caller, "written": submission.written})
    return Response(200, content_types.APPLICATION_JSON, json.dumps(submission.as_dict()))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
