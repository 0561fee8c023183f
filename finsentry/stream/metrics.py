"""Where the scorer's metrics go: a tiny interface, an in-memory sink and a Powertools (EMF) one.

Names are ``finsentry.monitoring.Metric``. Counts are emitted as batch totals (the series the
alarms of ``finsentry.monitoring.ALARMS`` watch) and, for quarantined records and anomalies,
once more per ``Reason`` / ``AnomalyType``; a dimensioned point is its own EMF blob so that its
dimension does not leak onto the batch's other metrics. Powertools adds its ``service``
dimension to every point when ``POWERTOOLS_SERVICE_NAME`` is set (the CDK app sets it to the
scorer's name, ``monitoring.SERVICE_DIMENSION``): the totals are then ``{service}`` series and
the breakdowns ``{Reason, service}`` / ``{AnomalyType, service}``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Protocol

from finsentry.monitoring import METRIC_NAMESPACE


class MetricsSink(Protocol):
    def emit(self, name: str, value: float, unit: str = "Count", dimensions: Mapping[str, str] | None = None) -> None:
        """Record one data point."""


class MemoryMetrics:
    """Keeps every data point (tests, the local replay, the benchmark)."""

    def __init__(self) -> None:
        self.points: list[tuple[str, float, str, dict[str, str]]] = []

    def emit(self, name: str, value: float, unit: str = "Count", dimensions: Mapping[str, str] | None = None) -> None:
        self.points.append((str(name), float(value), unit, dict(dimensions or {})))

    def total(self, name: str, **dimensions: str) -> float:
        """Sum of the points with exactly these dimensions (none: the dimensionless totals)."""
        return sum(v for n, v, _, d in self.points if n == str(name) and d == dimensions)

    def by_dimension(self, name: str, dimension: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for n, v, _, d in self.points:
            if n == str(name) and dimension in d:
                out[d[dimension]] += v
        return dict(out)


class PowertoolsMetrics:
    """Adapter onto Powertools' ``Metrics`` (EMF, flushed by ``log_metrics`` at the end of the
    invocation); dimensioned points go through ``single_metric`` (one EMF blob each)."""

    def __init__(self, metrics: Any) -> None:
        self.metrics = metrics

    def emit(self, name: str, value: float, unit: str = "Count", dimensions: Mapping[str, str] | None = None) -> None:
        if not dimensions:
            self.metrics.add_metric(name=str(name), unit=unit, value=value)
            return
        from aws_lambda_powertools.metrics import single_metric

        with single_metric(name=str(name), unit=unit, value=value, namespace=METRIC_NAMESPACE) as metric:
            for k, v in dimensions.items():
                metric.add_dimension(name=k, value=str(v) or "none")
