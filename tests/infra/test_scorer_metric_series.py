"""The scorer's drift, model-load, state and alert-index points, and the label doors' counts, land on
exactly the series their CDK alarms watch.

The scorer emits through Powertools (EMF); Powertools adds ``service`` from the function's
``POWERTOOLS_SERVICE_NAME``. Here the service's own emission path runs against a real
Powertools ``Metrics``, the EMF blobs are read back from stdout, and their dimension sets are
compared with the synthesized alarms' dimensions and the function's environment.
"""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools import Metrics

from finsentry.drift import DriftMeasurement
from finsentry.monitoring import METRIC_NAMESPACE, Metric, alarm
from finsentry.stream.metrics import PowertoolsMetrics
from finsentry.stream.service import BatchReport, ScorerService
from tests.infra.test_wiring import scorer

WATCHED = ("score-drift", "model-load-failed", "corrupt-state-items", "delivery-mark-failures", "alert-index-failures")


def _alarm_dimensions(dev, name: str) -> dict[str, str]:
    alarms = {r["Properties"]["AlarmName"]: r["Properties"] for _, _, r in dev.resources("AWS::CloudWatch::Alarm")}
    return {d["Name"]: d["Value"] for d in alarms[f"finsentry-dev-{name}"]["Dimensions"]}


def _emf_points(text: str) -> dict[str, list[dict[str, str]]]:
    """Metric name -> the dimension sets (name -> value) it was emitted with."""
    out: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if not line.startswith("{") or "_aws" not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == METRIC_NAMESPACE
            for dims in directive["Dimensions"]:
                for m in directive["Metrics"]:
                    out.setdefault(m["Name"], []).append({d: blob[d] for d in dims})
    return out


def test_psi_and_model_load_failures_carry_the_alarms_dimensions(dev, capsys):
    service_name = scorer(dev)["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POWERTOOLS_SERVICE_NAME", service_name)
        metrics = Metrics(namespace=METRIC_NAMESPACE)
        svc = ScorerService(None, None, None, None, None, metrics=PowertoolsMetrics(metrics))
        report = BatchReport(received=0, model_problem="successor unreadable",
                             drift=DriftMeasurement(0.31, {"log_amount": 0.02, "hour_sin": float("nan")}, 500))
        capsys.readouterr()
        svc._emit(report)
        svc.metrics.emit(Metric.CORRUPT_ITEMS, 1)  # as _slice emits them: no dimension of its own
        svc.metrics.emit(Metric.MARK_WRITE_FAILED, 1)
        svc.metrics.emit(Metric.INDEX_WRITE_FAILED, 2)  # as the alert index write counts unwritten items
        metrics.flush_metrics()
    points = _emf_points(capsys.readouterr().out)
    for name in WATCHED:
        spec = alarm(name)
        assert points[str(spec.metric)] == [_alarm_dimensions(dev, name)], name  # exactly the alarmed series
    assert _alarm_dimensions(dev, "score-drift") == {"service": service_name}
    assert points[str(Metric.FEATURE_PSI)] == [{"Feature": "log_amount", "service": service_name}]  # NaN left out


@pytest.mark.parametrize("module", ["lambdas.feedback_ingest.handler", "lambdas.label_api.handler"])
def test_the_doors_counts_land_on_the_series_their_alarms_sum(dev, capsys, module):
    """Each door's handler emits its counts through its own Powertools ``Metrics``; the door alarms
    (metric math over both doors) must name exactly the series it emits, one of their terms each."""
    import importlib

    from finsentry.feedback import door_metrics
    from tests.infra.test_label_alarms import alarms, series

    handler = importlib.import_module(module)
    capsys.readouterr()
    counts = {"received": 3, "accepted": 3, "new": 3, "rejected": 0, "unresolved": 1, "risk_write_failures": 1}
    for name, value in door_metrics(counts).items():
        handler.metrics.add_metric(name=name, unit="Count", value=value)
    handler.metrics.flush_metrics()
    points = _emf_points(capsys.readouterr().out)
    for name in ("risk-write-failures", "labels-unresolved"):
        watched = [(metric, dims) for _, metric, dims in series(alarms(dev)[f"finsentry-dev-{name}"]).values()]
        for metric in {m for m, _ in watched}:
            [emitted] = points[metric]
            assert (metric, emitted) in watched, (name, metric, emitted, watched)
