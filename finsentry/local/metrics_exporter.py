"""``finsentry demo --metrics-port N``: the run's counters on ``/metrics`` for Prometheus.

The series names are ``finsentry.prometheus.NATIVE_METRICS`` (the ones the generated alert
rules read). The exporter serves from the start of the run (``finsentry_demo_running`` 1);
the pipeline's counts are recorded when the run has them (``record``), and the CLI keeps
serving afterwards until interrupted or ``--metrics-hold`` seconds have passed.

Own registry (not prometheus_client's global one): several exporters in one process (tests)
never clash. It listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from finsentry.monitoring import Metric
from finsentry.prometheus import NATIVE_METRICS

SKIPPED = (Metric.BATCH_LATENCY,)  # a batch run has no per-batch latency: not exposed by the demo


class DemoMetrics:
    """The demo's metrics registry and its HTTP endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics: dict[Metric, Counter | Gauge] = {}
        for metric, spec in NATIVE_METRICS.items():
            if metric in SKIPPED:
                continue
            kind = Counter if spec.kind == "counter" else Gauge
            self.metrics[metric] = kind(spec.name, spec.help, spec.labels, registry=self.registry)
            if kind is Gauge and not spec.labels:
                self.metrics[metric].set(float("nan"))  # unknown until the run measures it (NaN never alerts)
        self.running = Gauge("finsentry_demo_running", "1 while the demo runs", registry=self.registry)
        self.stage_seconds = Gauge("finsentry_demo_stage_seconds", "Wall time per demo stage", ("stage",),
                                   registry=self.registry)  # fmt: skip
        self.server = None
        self.thread = None

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Start serving ``/metrics`` on ``addr:port`` (0 = any free port); returns the port."""
        self.server, self.thread = start_http_server(port, addr=addr, registry=self.registry)
        self.running.set(1)
        return int(self.server.server_address[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def record(self, result) -> None:
        """Set the counters from a finished ``DemoResult`` (once per run)."""
        c = result.counts
        self.metrics[Metric.RECEIVED].inc(c["received"])
        self.metrics[Metric.SCORED].inc(c["test_transactions"])
        self.metrics[Metric.DUPLICATES_SKIPPED].inc(0)
        self.metrics[Metric.RULES_ONLY].inc(0)
        obs = result.observations
        reasons = obs.quarantine_reasons if obs is not None else {}
        if not reasons and c["quarantined"]:
            reasons = {"unknown": c["quarantined"]}
        for reason, n in reasons.items():
            self.metrics[Metric.QUARANTINED].labels(reason=reason).inc(n)
        alerts = result.scored[result.scored["verdict"] == "alert"]
        for anomaly_type, n in alerts["anomaly_type"].replace("", "untyped").value_counts().items():
            self.metrics[Metric.ANOMALIES].labels(anomaly_type=str(anomaly_type)).inc(int(n))
        share = 100.0 * c["quarantined"] / c["received"] if c["received"] else 0.0
        self.metrics[Metric.ETL_REJECTED_SHARE].labels(job="demo").set(share)
        scored = max(c["test_transactions"], 1)
        self.metrics[Metric.ANOMALY_RATE].set(100.0 * len(alerts) / scored)
        version = str(result.scored["model_version"].iloc[0]) if len(result.scored) else "none"
        self.metrics[Metric.MODEL_VERSION].labels(model_version=version).inc()
        if obs is not None:
            self.metrics[Metric.SCORE_PSI].set(obs.drift.score_psi)
            for feature, value in obs.drift.feature_psi.items():
                self.metrics[Metric.FEATURE_PSI].labels(feature=feature).set(value)
        for stage, seconds in result.timings.items():
            self.stage_seconds.labels(stage=stage).set(seconds)
        self.running.set(0)
