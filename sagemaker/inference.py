"""SageMaker Batch Transform / endpoint handlers: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``.

In: JSON lines (or JSON), CSV or a whole Parquet file of curated features; out: score, verdict,
anomaly type and top reasons per record (JSON lines or CSV, by the Accept header; Parquet rows of
the Glue ``scored`` table for ``application/x-parquet``, as the state machine's Batch Transform asks).
``FINSENTRY_THRESHOLD`` overrides the alert threshold recorded in the model. Run as a script (``serve``) it answers
SageMaker's container contract: ``GET /ping`` and ``POST /invocations`` on port 8080.
Logic: ``finsentry.training.batch_inference`` and ``finsentry.training.model_server``.
"""

from __future__ import annotations

import os
import sys

from finsentry.training import batch_inference


def model_fn(model_dir: str, context=None) -> batch_inference.LoadedModel:
    return batch_inference.load(model_dir, threshold=os.environ.get("FINSENTRY_THRESHOLD"))


def input_fn(request_body, request_content_type: str, context=None):
    """Kept raw: header-less CSV is parsed with the model's columns, which only predict_fn sees."""
    return request_body, request_content_type


def predict_fn(input_data, model: batch_inference.LoadedModel, context=None):
    body, content_type = input_data
    return batch_inference.predict(batch_inference.parse(body, content_type, model), model)


def output_fn(prediction, accept: str, context=None) -> tuple[str | bytes, str]:
    return batch_inference.render(prediction, accept)


if __name__ == "__main__":
    from finsentry.training.model_server import serve

    sys.exit(serve(model_fn, input_fn, predict_fn, output_fn))
