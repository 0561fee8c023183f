"""The alarms on what does not reach the stream's risk: the scorer's alert index, the doors' risk items,
verdicts the index does not know (``AlertIndexFailures``, ``RiskWriteFailures``, ``LabelsUnresolved``).

The synthesized alarms are read back: their metric, namespace, series, threshold and action, and
the metric math of the door alarms is evaluated on one period's values (a small evaluator of the
subset the expressions use) so that the thresholds mean what ``finsentry.monitoring`` says.
"""

from __future__ import annotations

import ast
import operator

import pytest

from finsentry.layout import RESOURCES
from finsentry.monitoring import METRIC_NAMESPACE, SERVICE_ALARMS, Metric
from tests.infra.test_feedback import named
from tests.infra.test_wiring import refers_to, scorer

DOORS = {"IngestFunction": RESOURCES.feedback_function, "ApiFunction": RESOURCES.labels_function}


def alarms(synth) -> dict[str, dict]:
    return {r["Properties"]["AlarmName"]: r["Properties"] for _, _, r in synth.resources("AWS::CloudWatch::Alarm")}


def series(alarm: dict) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Id -> (namespace, metric name, dimensions) of each metric of a metric-math alarm."""
    out = {}
    for m in alarm["Metrics"]:
        if "MetricStat" in m:
            metric = m["MetricStat"]["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            out[m["Id"]] = (metric["Namespace"], metric["MetricName"], dims)
    return out


def expression(alarm: dict) -> str:
    [expr] = [m["Expression"] for m in alarm["Metrics"] if m["ReturnData"]]
    return expr


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le}  # fmt: skip


def evaluate(expr: str, values: dict[str, float | None]) -> float | None:
    """CloudWatch metric math over one period (``None``: the series sent no data point), for the
    subset the alarms use: numbers, ids, + - * /, comparisons, FILL(x, v), IF(c, a, b)."""

    def ev(node: ast.AST) -> float | None:
        match node:
            case ast.Constant(value=v):
                return float(v)
            case ast.Name(id=name):
                return values[name]
            case ast.BinOp(left=left, op=op, right=right) | ast.Compare(left=left, ops=[op], comparators=[right]):
                a, b = ev(left), ev(right)
                return None if a is None or b is None else float(_OPS[type(op)](a, b))
            case ast.Call(func=ast.Name(id="FILL"), args=[x, v]):
                got = ev(x)
                return ev(v) if got is None else got
            case ast.Call(func=ast.Name(id="IF"), args=[cond, yes, no]):
                return ev(yes) if ev(cond) else ev(no)
        raise ValueError(f"not in the evaluated subset: {ast.dump(node)}")

    return ev(ast.parse(expr, mode="eval").body)


def test_alert_index_failures_page_on_the_scorers_series(dev):
    alarm = alarms(dev)["finsentry-dev-alert-index-failures"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (METRIC_NAMESPACE, str(Metric.INDEX_WRITE_FAILED))
    service = scorer(dev)["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": service}]
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 300, 1)
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    [action] = alarm["AlarmActions"]
    assert refers_to(action, "OncallTopic")
    assert "#alert-index-failures" in alarm["AlarmDescription"]


DOOR_ALARMS = [("risk-write-failures", {Metric.RISK_WRITE_FAILED}),
               ("labels-unresolved", {Metric.LABELS_UNRESOLVED, Metric.LABELS_ACCEPTED})]  # fmt: skip


@pytest.mark.parametrize("name, metrics", DOOR_ALARMS)
def test_door_alarms_sum_both_doors_series(dev, name, metrics):
    alarm = alarms(dev)[f"finsentry-dev-{name}"]
    services = {named(dev, "AWS::Lambda::Function", prefix)["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
                for prefix in DOORS}  # fmt: skip
    assert services == set(DOORS.values())
    got = {(ns, metric, tuple(dims.items())) for ns, metric, dims in series(alarm).values()}
    assert got == {(METRIC_NAMESPACE, str(m), (("service", s),)) for m in metrics for s in services}
    [action] = alarm["AlarmActions"]
    assert refers_to(action, "OncallTopic") and alarm["TreatMissingData"] == "notBreaching"
    assert "#label-doors" in alarm["AlarmDescription"]


def _by_door(alarm: dict, metric: Metric, ingest: float | None, api: float | None) -> dict[str, float | None]:
    value = {RESOURCES.feedback_function: ingest, RESOURCES.labels_function: api}
    return {i: value[dims["service"]] for i, (_, name, dims) in series(alarm).items() if name == str(metric)}


def test_any_risk_write_failure_of_either_door_breaches(dev):
    alarm = alarms(dev)["finsentry-dev-risk-write-failures"]
    expr = expression(alarm)
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert evaluate(expr, _by_door(alarm, Metric.RISK_WRITE_FAILED, None, 2)) == 2  # the ingest door sent nothing
    assert evaluate(expr, _by_door(alarm, Metric.RISK_WRITE_FAILED, 1, 3)) == 4
    assert evaluate(expr, _by_door(alarm, Metric.RISK_WRITE_FAILED, 0, 0)) == 0


@pytest.mark.parametrize("accepted, unresolved, breaches", [
    ((10, None), (10, None), False),  # 10 labels a day, all unresolved: too few to say anything
    ((30, None), (20, None), True),  # 2 of 3 unresolved
    ((None, 40), (None, 21), True),  # only the HTTPS door received labels
    ((30, 10), (5, 10), False),  # 15 of 40: complaints and old alerts, the normal share
    ((15, 15), (10, 5), False),  # exactly half is not more than half
    ((12, 8), (12, 8), True),  # 20 labels (the minimum) from both doors, none known to the index
])  # fmt: skip
def test_labels_unresolved_alarms_on_most_of_a_days_labels(dev, accepted, unresolved, breaches):
    alarm = alarms(dev)["finsentry-dev-labels-unresolved"]
    [spec] = [a for a in SERVICE_ALARMS if a.name == "labels-unresolved"]
    assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (spec.threshold, 1)
    assert {m["MetricStat"]["Period"] for m in alarm["Metrics"] if "MetricStat" in m} == {86400}
    values = {**_by_door(alarm, Metric.LABELS_ACCEPTED, *accepted), **_by_door(alarm, Metric.LABELS_UNRESOLVED,
                                                                                  *unresolved)}  # fmt: skip
    share = evaluate(expression(alarm), values)
    assert (share > alarm["Threshold"]) is breaches, share


def test_the_evaluator_refuses_what_it_does_not_know():
    with pytest.raises(ValueError, match="not in the evaluated subset"):
        evaluate("MAX(u0)", {"u0": 1.0})
