"""SageMaker's model-container contract for our own image: ``GET /ping``, ``POST /invocations`` on 8080.

SageMaker starts a bring-your-own inference container as ``docker run <image> serve`` with the
model extracted in ``/opt/ml/model``; Batch Transform then POSTs mini-batches to
``/invocations`` (Content-Type and Accept headers as the job says) and waits for ``/ping`` to
answer 200 first. ``serve`` wires the four handler functions of ``sagemaker/inference.py``
(model_fn, input_fn, predict_fn, output_fn) to that contract with the standard library's
threading HTTP server. A request that cannot be read (bad content type, bad records) gets a
4xx with the reason; an unexpected failure a 500 with it; the server keeps serving.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_DIR = "/opt/ml/model"
PORT = 8080
MAX_PAYLOAD_MB = 6  # Batch Transform's default MaxPayloadInMB


def make_server(model_fn: Callable, input_fn: Callable, predict_fn: Callable, output_fn: Callable,
                model_dir: str = MODEL_DIR, host: str = "0.0.0.0", port: int = PORT) -> ThreadingHTTPServer:  # noqa: S104 -- a container listens on all interfaces  # fmt: skip
    """A server with the model loaded (loading errors surface here, before any request)."""
    model = model_fn(model_dir)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: str | bytes, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else body.encode("utf-8")  # Parquet out is bytes
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
            if self.path == "/ping":
                self._send(200, "{}")
            elif self.path == "/execution-parameters":
                self._send(200, json.dumps({"MaxConcurrentTransforms": 1, "BatchStrategy": "MultiRecord",
                                            "MaxPayloadInMB": MAX_PAYLOAD_MB}))  # fmt: skip
            else:
                self._send(404, json.dumps({"error": f"no such path {self.path}"}))

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/invocations":
                self._send(404, json.dumps({"error": f"no such path {self.path}"}))
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                data = input_fn(body, self.headers.get("Content-Type", "application/jsonlines"))
                result = predict_fn(data, model)
                out, content_type = output_fn(result, self.headers.get("Accept", "application/jsonlines"))
            except (ValueError, KeyError) as exc:  # unreadable request: the caller's to fix
                self._send(400, json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
                return
            except Exception as exc:  # the server stays up; the job sees the reason
                self._send(500, json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
                return
            self._send(200, out, content_type)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- quiet access log
            return None

    return ThreadingHTTPServer((host, port), Handler)


def serve(model_fn: Callable, input_fn: Callable, predict_fn: Callable, output_fn: Callable) -> int:
    """Serve until stopped (``SAGEMAKER_BIND_TO_PORT`` may move the port, as SageMaker allows)."""
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", PORT))
    server = make_server(model_fn, input_fn, predict_fn, output_fn, model_dir=os.environ.get("SM_MODEL_DIR", MODEL_DIR),
                         port=port)  # fmt: skip
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
