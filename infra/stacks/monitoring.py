"""Monitoring: one CloudWatch alarm per ``ALARMS`` / ``SERVICE_ALARMS`` spec, to the on-call topic; a dashboard.

Each spec names a metric; this stack says which resource it watches (``dimensions_by_alarm``).
A spec without a mapping fails the synth, so a new alarm cannot be forgotten here.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from finsentry.layout import LABELS_API_STAGE, RESOURCES
from finsentry.monitoring import ALARMS, METRIC_NAMESPACE, SERVICE_ALARMS, SERVICE_DIMENSION, AlarmSpec, Metric
from infra.config import EnvConfig
from infra.stacks.base import FinsentryStack

SPECS = ALARMS + SERVICE_ALARMS  # every alarm of the deployment

_COMPARISON = {
    "GreaterThanThreshold": cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
    "GreaterThanOrEqualToThreshold": cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
}
RUNBOOK = "docs/operations.md"


@dataclass(frozen=True)
class Watched:
    """Names of the resources the alarms watch."""

    scorer_function: str
    dlq_name: str
    quarantine_name: str
    glue_failure_rule: str
    state_machine_arn: str
    firehose_name: str
    feedback_function: str
    feedback_dlq: str
    labels_api: str


def dimensions_by_alarm(w: Watched, env: str) -> dict[str, Dimensions]:
    """The CloudWatch dimensions of every alarm spec's metric (or the series it aggregates)."""
    scorer = {SERVICE_DIMENSION: RESOURCES.scorer_function}
    # both label doors emit the same counts, each under its own service (lambdas/*/handler.py)
    doors = EachOf(series=tuple({SERVICE_DIMENSION: f} for f in (RESOURCES.feedback_function,
                                                                  RESOURCES.labels_function)))  # fmt: skip
    return {
        "etl-rejected-share": AllSeries(schema=("Env", "Job"), where={"Env": env}),  # finsentry.etl.quality
        "scorer-errors": {"FunctionName": w.scorer_function},
        "scorer-throttles": {"FunctionName": w.scorer_function},
        "iterator-age": {"FunctionName": w.scorer_function},
        "quarantine-rate": AllSeries(schema=("Reason", SERVICE_DIMENSION), where=scorer),
        "anomaly-rate": scorer,
        "rules-only": scorer,
        "model-load-failed": scorer,
        "corrupt-state-items": scorer,
        "delivery-mark-failures": scorer,
        "alert-index-failures": scorer,
        "score-drift": scorer,
        "dlq-depth": {"QueueName": w.dlq_name},
        "quarantine-depth": {"QueueName": w.quarantine_name},
        "glue-job-failed": {"RuleName": w.glue_failure_rule},
        "pipeline-failed": {"StateMachineArn": w.state_machine_arn},
        "pipeline-timed-out": {"StateMachineArn": w.state_machine_arn},
        "firehose-freshness": {"DeliveryStreamName": w.firehose_name},
        "firehose-conversion-failed": {"DeliveryStreamName": w.firehose_name},
        "feedback-ingest-errors": {"FunctionName": w.feedback_function},
        "feedback-dlq-depth": {"QueueName": w.feedback_dlq},
        "feedback-unreadable": {SERVICE_DIMENSION: RESOURCES.feedback_function},
        "labels-api-5xx": {"ApiName": w.labels_api, "Stage": LABELS_API_STAGE},
        "risk-write-failures": doors,
        "labels-unresolved": doors,
    }


_INSIGHTS_FUNCTION = {"Sum": "SUM", "Maximum": "MAX", "Average": "AVG", "Minimum": "MIN"}


@dataclass(frozen=True)
class AllSeries:
    """Every series of a metric emitted per dimension value (quarantined by Reason, ETL by Job):
    the alarm aggregates them with a CloudWatch Metrics Insights query."""

    schema: tuple[str, ...]  # the metric's full dimension set
    where: dict[str, str]  # the dimensions fixed to this deployment


@dataclass(frozen=True)
class EachOf:
    """A metric emitted as several series (the same count from each label door): the alarm watches
    their sum, per period, with metric math (a period where one series sent nothing counts it as 0)."""

    series: tuple[dict[str, str], ...]  # the dimensions of each series


Dimensions = dict[str, str] | AllSeries | EachOf


def _sum_expression(prefix: str, n: int) -> str:
    """``FILL(u0, 0) + FILL(u1, 0)``: the sum of n series, a series without data in a period as 0."""
    return " + ".join(f"FILL({prefix}{i}, 0)" for i in range(n))


def share_expression(spec: AlarmSpec, n: int) -> str:
    """100 x sum(metric) / sum(share_of) in periods where sum(share_of) >= min_count, else 0."""
    part, whole = _sum_expression("u", n), _sum_expression("a", n)
    return f"IF(({whole}) >= {spec.min_count:g}, 100 * ({part}) / ({whole}), 0)"


def insights_query(spec: AlarmSpec, series: AllSeries) -> str:
    """``SELECT SUM("m") FROM SCHEMA("ns", A, B) WHERE B = '...'``."""
    where = " AND ".join(f"{k} = '{v}'" for k, v in series.where.items())
    select = f'SELECT {_INSIGHTS_FUNCTION[spec.statistic]}("{spec.metric}")'
    return f'{select} FROM SCHEMA("{spec.namespace}", {", ".join(series.schema)}) WHERE {where}'  # noqa: S608


def _series(spec: AlarmSpec, metric: str, dimensions: dict[str, str]) -> cw.Metric:
    return cw.Metric(
        namespace=spec.namespace,
        metric_name=str(metric),
        dimensions_map=dimensions,
        statistic=spec.statistic,
        period=Duration.seconds(spec.period_seconds),
    )


def metric_of(spec: AlarmSpec, dimensions: Dimensions) -> cw.IMetric:
    """One series by its dimensions, every series of a per-dimension metric (Metrics Insights), or
    the sum of named series (metric math; a share of another metric's sum for a share alarm).

    The sums use metric math, not Metrics Insights: an Insights alarm evaluates only the latest
    3 hours of data (CloudWatch user guide, "Limits" of alarms), too short for a one-day share."""
    if isinstance(dimensions, EachOf):
        n = len(dimensions.series)
        using = {f"u{i}": _series(spec, spec.metric, d) for i, d in enumerate(dimensions.series)}
        if spec.share_of is None:
            expression = _sum_expression("u", n)
        else:
            using |= {f"a{i}": _series(spec, spec.share_of, d) for i, d in enumerate(dimensions.series)}
            expression = share_expression(spec, n)
        return cw.MathExpression(expression=expression, using_metrics=using,
                                 period=Duration.seconds(spec.period_seconds), label=spec.summary)  # fmt: skip
    if spec.share_of is not None:
        raise ValueError(f"{spec.name}: a share alarm needs its series named with EachOf")
    if isinstance(dimensions, AllSeries):
        return cw.MathExpression(
            expression=insights_query(spec, dimensions),
            using_metrics={},
            period=Duration.seconds(spec.period_seconds),
            label=spec.summary,
        )
    return _series(spec, spec.metric, dimensions)


class MonitoringStack(FinsentryStack):
    """Alarms (to on-call) and the operations dashboard."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvConfig, oncall: sns.ITopic, watched: Watched
    ) -> None:
        super().__init__(scope, construct_id, config=config, description="finsentry: alarms and dashboard")
        dims = dimensions_by_alarm(watched, config.env)
        missing = [a.name for a in SPECS if a.name not in dims]
        if missing:
            raise KeyError(f"alarm specs without a watched resource in infra/stacks/monitoring.py: {missing}")
        action = cw_actions.SnsAction(oncall)
        self.alarms: dict[str, cw.Alarm] = {}
        for spec in SPECS:
            alarm = cw.Alarm(
                self,
                f"Alarm{''.join(p.title() for p in spec.name.split('-'))}",
                alarm_name=self.name(spec.name),
                alarm_description=f"{spec.summary}. Runbook: {RUNBOOK}#{spec.runbook}",
                metric=metric_of(spec, dims[spec.name]),
                threshold=spec.threshold,
                comparison_operator=_COMPARISON[str(spec.comparison)],
                evaluation_periods=spec.evaluation_periods,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            self.alarms[spec.name] = alarm
        self.dashboard = self._dashboard(dims)

    def _dashboard(self, dims: dict[str, Dimensions]) -> cw.Dashboard:
        board = cw.Dashboard(
            self, "Dashboard", dashboard_name=self.name("operations"), default_interval=Duration.hours(24)
        )
        board.add_widgets(cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24))
        scorer = {SERVICE_DIMENSION: RESOURCES.scorer_function}
        flow = [
            cw.Metric(namespace=METRIC_NAMESPACE, metric_name=str(m), dimensions_map=scorer, statistic="Sum",
                      period=Duration.minutes(5))
            for m in (Metric.RECEIVED, Metric.SCORED, Metric.DUPLICATES_SKIPPED)
        ]  # fmt: skip
        latency = cw.Metric(namespace=METRIC_NAMESPACE, metric_name=str(Metric.BATCH_LATENCY), dimensions_map=scorer,
                            statistic="p99", period=Duration.minutes(5))  # fmt: skip
        board.add_widgets(
            cw.GraphWidget(title="Scorer records per 5 minutes", left=flow, width=12, height=6),
            cw.GraphWidget(title="Scorer batch latency p99 (ms)", left=[latency], width=12, height=6),
        )
        own = [a for a in SPECS if a.namespace == METRIC_NAMESPACE]
        aws = [a for a in SPECS if a.namespace != METRIC_NAMESPACE]
        for group in (own, aws):
            widgets = [
                cw.GraphWidget(
                    title=spec.summary,
                    width=8,
                    height=6,
                    left=[metric_of(spec, dims[spec.name])],
                    left_annotations=[cw.HorizontalAnnotation(value=spec.threshold, label="alarm")],
                )
                for spec in group
            ]
            board.add_widgets(*widgets)
        return board
