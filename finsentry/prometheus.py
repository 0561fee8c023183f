"""Prometheus: alert rules generated from ``finsentry.monitoring.ALARMS``, and the metric names.

One source of truth: every ``AlarmSpec`` (the CloudWatch alarms of the CDK app) becomes one
Prometheus alerting rule with the same threshold and comparison. Where the series come from:

* **Our own metrics** (namespace ``finsentry``) under the native names in ``NATIVE_METRICS``,
  as ``finsentry demo --metrics-port`` exposes them (``finsentry.local.metrics_exporter``) and
  as a scorer pushing to Prometheus / Amazon Managed Service for Prometheus would.
* **AWS service metrics** (``AWS/Lambda`` Errors, IteratorAge, ...) only exist in CloudWatch:
  the rules read them as the Prometheus CloudWatch exporter (prometheus/cloudwatch_exporter)
  names them, ``aws_<namespace>_<metric_snake_case>_<statistic>`` with dimensions as snake-case
  labels (``function_name``), and ``offset 10m`` (the exporter's default delay: its samples
  carry CloudWatch's own, older timestamps). Configure it with ``period_seconds`` equal to the
  alarm's period.

CloudWatch -> PromQL. A CloudWatch alarm fires when the statistic over ``period`` breaches in
``evaluation_periods`` consecutive periods. The rule computes the statistic over a sliding
window of one period and must hold for the remaining ``(evaluation_periods - 1) * period``
(``for:``):

=============  ==============================================  ==============================
statistic      own metric (native)                             AWS metric (cloudwatch_exporter)
=============  ==============================================  ==============================
Sum            ``sum(increase(name_total[P]))`` (a counter)    ``sum(max_over_time(s[P] offset 10m))``
Average        ``avg(avg_over_time(name[P]))`` (a gauge)       ``avg(avg_over_time(s[P] offset 10m))``
Maximum        ``max(max_over_time(name[P]))``                 ``max(max_over_time(s[P] offset 10m))``
pNN            ``max(quantile_over_time(0.NN, name[P]))``      same, on the exported ``_pNN`` series
=============  ==============================================  ==============================

For an AWS ``Sum`` each exported sample already is the sum over one CloudWatch period, repeated
at every scrape: the window's largest sample is that period's sum (``sum_over_time`` would count
it once per scrape).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from finsentry.layout import RESOURCES, resource_name
from finsentry.monitoring import ALARMS, METRIC_NAMESPACE, AlarmSpec, Comparison, Metric

AWS_OFFSET = "10m"  # cloudwatch_exporter's default delay_seconds (600)
RUNBOOK = "docs/operations.md"


@dataclass(frozen=True)
class NativeMetric:
    """How one of our metrics is exposed to Prometheus."""

    name: str  # the series name as scraped (counters end in _total)
    kind: str  # "counter" | "gauge"
    labels: tuple[str, ...]
    help: str


NATIVE_METRICS: dict[Metric, NativeMetric] = {
    Metric.RECEIVED: NativeMetric("finsentry_records_received_total", "counter", (), "Records received"),
    Metric.SCORED: NativeMetric("finsentry_records_scored_total", "counter", (), "Records scored"),
    Metric.QUARANTINED: NativeMetric("finsentry_records_quarantined_total", "counter", ("reason",),
                                     "Records quarantined, by reason code"),
    Metric.ANOMALIES: NativeMetric("finsentry_anomalies_total", "counter", ("anomaly_type",),
                                   "Alerts raised, by anomaly type"),
    Metric.DUPLICATES_SKIPPED: NativeMetric("finsentry_duplicates_skipped_total", "counter", (),
                                            "Redelivered records not scored again"),
    Metric.RULES_ONLY: NativeMetric("finsentry_rules_only_batches_total", "counter", (),
                                    "Batches scored without a model (rules-only fallback)"),
    Metric.MODEL_LOAD_FAILED: NativeMetric("finsentry_model_load_failures_total", "counter", (),
                                           "Batches scored by the previous model: its successor cannot be loaded"),
    Metric.CORRUPT_ITEMS: NativeMetric("finsentry_corrupt_state_items_total", "counter", (),
                                       "Unreadable profile, partner or channel items replaced by new ones"),
    Metric.MARK_WRITE_FAILED: NativeMetric("finsentry_delivery_mark_failures_total", "counter", (),
                                           "Delivery marks of a shard not written (kept for its next batch)"),
    Metric.INDEX_WRITE_FAILED: NativeMetric("finsentry_alert_index_failures_total", "counter", (),
                                            "Alerts whose txn# index item was not written"),
    Metric.MODEL_VERSION: NativeMetric("finsentry_model_version_loaded_total", "counter", ("model_version",),
                                       "Model (re)loads, by version"),
    Metric.BATCH_LATENCY: NativeMetric("finsentry_batch_latency_milliseconds", "gauge", (),
                                       "Latest batch latency (ms)"),
    Metric.ANOMALY_RATE: NativeMetric("finsentry_anomaly_rate_percent", "gauge", (),
                                      "Percent of scored records that alerted, latest batch or run"),
    Metric.SCORE_PSI: NativeMetric("finsentry_score_psi", "gauge", (),
                                   "Population stability index of the score vs the training window"),
    Metric.FEATURE_PSI: NativeMetric("finsentry_feature_psi", "gauge", ("feature",),
                                     "Population stability index per feature vs the training window"),
    Metric.ETL_REJECTED_SHARE: NativeMetric("finsentry_etl_rejected_share_percent", "gauge", ("job",),
                                            "Percent of a Glue run's rows that were quarantined"),
}  # fmt: skip

OPERATORS = {Comparison.GREATER: ">", Comparison.GREATER_OR_EQUAL: ">="}

# CloudWatch dimension per AWS namespace, and the resource it must name (layout's logical name)
AWS_FILTERS: dict[str, tuple[str, str]] = {
    "AWS/Lambda": ("function_name", RESOURCES.scorer_function),
    "AWS/Kinesis": ("stream_name", RESOURCES.stream),
}


def snake(name: str) -> str:
    """``IteratorAge`` -> ``iterator_age``, ``AWS/Lambda`` -> ``aws_lambda``."""
    name = name.replace("/", "_")
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"_+", "_", name).lower()


def duration(seconds: int) -> str:
    """Prometheus duration: ``3600`` -> ``1h``, ``300`` -> ``5m``, ``90`` -> ``90s``, 0 -> ``0s``."""
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}")
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def alert_name(spec: AlarmSpec) -> str:
    """``score-drift`` -> ``FinsentryScoreDrift``."""
    return "Finsentry" + "".join(part.capitalize() for part in re.split(r"[-_]", spec.name))


def _quantile(statistic: str) -> float | None:
    m = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?)", statistic)
    return float(m.group(1)) / 100 if m else None


def _aggregate(statistic: str, series: str) -> str:
    """Aggregation over the window of one series selector (with its range)."""
    q = _quantile(statistic)
    if q is not None:
        return f"max(quantile_over_time({q:g}, {series}))"
    fn = {"Sum": "max", "Maximum": "max", "Average": "avg", "Minimum": "min"}.get(statistic)
    if fn is None:
        raise ValueError(f"no PromQL mapping for CloudWatch statistic {statistic!r}")
    outer = "sum" if statistic == "Sum" else fn
    return f"{outer}({fn}_over_time({series}))"


def expression(spec: AlarmSpec, env: str) -> str:
    """The PromQL expression of one alarm: the statistic over one period, compared to the threshold."""
    window = duration(spec.period_seconds)
    if spec.share_of is not None:
        raise ValueError(f"{spec.name}: a share alarm (metric math in CloudWatch) has no PromQL mapping here")
    op = OPERATORS[spec.comparison]
    threshold = f"{spec.threshold:g}"
    if spec.namespace == METRIC_NAMESPACE:
        native = NATIVE_METRICS[Metric(spec.metric)]
        if spec.statistic == "Sum":
            if native.kind != "counter":
                raise ValueError(f"{spec.name}: Sum of a gauge ({native.name}) has no PromQL mapping")
            return f"sum(increase({native.name}[{window}])) {op} {threshold}"
        return f"{_aggregate(spec.statistic, f'{native.name}[{window}]')} {op} {threshold}"
    if spec.namespace not in AWS_FILTERS:
        raise ValueError(f"{spec.name}: no label filter known for namespace {spec.namespace}")
    stat = spec.statistic.lower()
    label, what = AWS_FILTERS[spec.namespace]
    series = f'{snake(spec.namespace)}_{snake(spec.metric)}_{stat}{{{label}="{resource_name(env, what)}"}}'
    return f"{_aggregate(spec.statistic, f'{series}[{window}] offset {AWS_OFFSET}')} {op} {threshold}"


def rule(spec: AlarmSpec, env: str, runbook_base: str = RUNBOOK) -> dict:
    """One alerting rule (Prometheus rule-file form) for one alarm spec."""
    return {
        "alert": alert_name(spec),
        "expr": expression(spec, env),
        "for": duration(spec.period_seconds * (spec.evaluation_periods - 1)),
        "labels": {"severity": "page", "service": "finsentry", "env": env, "alarm": spec.name},
        "annotations": {
            "summary": spec.summary,
            "description": f"{spec.namespace} {spec.metric} {spec.statistic} over {duration(spec.period_seconds)} "
            f"{OPERATORS[spec.comparison]} {spec.threshold:g} (current value: {{{{ $value }}}})",
            "runbook_url": f"{runbook_base}#{spec.runbook}",
        },
    }


def alert_rules(env: str = "prod", alarms: tuple[AlarmSpec, ...] = ALARMS, runbook_base: str = RUNBOOK) -> dict:
    """The whole rule file: one group per environment, one rule per alarm spec."""
    return {"groups": [{"name": f"finsentry-{env}", "rules": [rule(a, env, runbook_base) for a in alarms]}]}


def write_rules(path: Path | str, env: str = "prod", runbook_base: str = RUNBOOK) -> Path:
    """Write the rule file (YAML) to ``path``; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Generated by `finsentry rules` from finsentry.monitoring.ALARMS: edit the specs, not this file.\n"
    path.write_text(text + yaml.safe_dump(alert_rules(env, runbook_base=runbook_base), sort_keys=False, width=200))
    return path
