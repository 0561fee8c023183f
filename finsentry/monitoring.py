"""Metrics and alarm thresholds: the one source of truth for CloudWatch and Prometheus.

The scorer emits these metrics (EMF, namespace ``METRIC_NAMESPACE``); the CDK app turns every
``AlarmSpec`` into a CloudWatch alarm on the on-call topic; ``finsentry`` generates Prometheus
alert rules from the same specs. Change a threshold here and both follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

METRIC_NAMESPACE = "finsentry"
# Powertools' default metric dimension; the CDK app sets POWERTOOLS_SERVICE_NAME so that the
# scorer's metrics carry service=<RESOURCES.scorer_function>, the series the alarms watch.
SERVICE_DIMENSION = "service"


class Metric(StrEnum):
    """Names of the pipeline's own metrics (unit in the comment)."""

    RECEIVED = "RecordsReceived"  # count, per batch
    SCORED = "RecordsScored"  # count
    QUARANTINED = "RecordsQuarantined"  # count, dimension Reason
    ANOMALIES = "Anomalies"  # count, dimension AnomalyType
    DUPLICATES_SKIPPED = "DuplicatesSkipped"  # count: redelivered records not scored again
    RETRIED = "RecordsRetried"  # count: records returned in batchItemFailures (a service call failed)
    RULES_ONLY = "RulesOnlyBatches"  # count: batches scored without a model (fallback)
    MODEL_VERSION = "ModelVersionLoaded"  # count 1 on each (re)load, dimension ModelVersion
    MODEL_LOAD_FAILED = "ModelLoadFailures"  # count: batches scored by the previous model, its successor unloadable
    BATCH_LATENCY = "BatchLatency"  # milliseconds
    ANOMALY_RATE = "AnomalyRate"  # percent of scored records that alerted, per batch
    SCORE_PSI = "ScorePsi"  # population stability index of the score vs the training window
    FEATURE_PSI = "FeaturePsi"  # PSI per feature, dimension Feature
    CORRUPT_ITEMS = "CorruptStateItems"  # count: profile/partner/channel items unreadable, replaced anew
    MARK_WRITE_FAILED = "DeliveryMarkFailures"  # count: channel marks not written (kept for the next batch)
    INDEX_WRITE_FAILED = "AlertIndexFailures"  # count: alerts whose txn# index item was not written
    # batch data preparation (Glue jobs), dimensions Job and Env; quarantined also per Reason
    ETL_ROWS_IN = "EtlRowsIn"  # count: transaction rows read by a run
    ETL_ROWS_OUT = "EtlRowsOut"  # count: rows written to curated/
    ETL_QUARANTINED = "EtlRowsQuarantined"  # count
    ETL_REJECTED_SHARE = "EtlRejectedShare"  # percent of rows in that were quarantined
    ETL_BALANCE_BREAKS = "EtlBalanceBreaks"  # count: balance arithmetic or continuity violations
    ETL_DUPLICATES = "EtlDuplicates"  # count: duplicate trans_ids and duplicate postings
    # the label doors (finsentry.feedback), dimension service = the door's function
    LABELS_RECEIVED = "LabelsReceived"  # count: label rows read (files or request bodies)
    LABELS_ACCEPTED = "LabelsAccepted"  # count: valid rows (new or already known)
    LABELS_NEW = "LabelsNew"  # count: labels appended to the history
    LABELS_REJECTED = "LabelsRejected"  # count: refused rows (their reasons in quarantine/feedback/ or the response)
    FEEDBACK_UNREADABLE = "FeedbackFilesUnreadable"  # count: exports that are not label files at all
    LABEL_REQUESTS_REFUSED = "LabelRequestsRefused"  # count: HTTPS bodies that are not labels at all (400)
    LABELS_UNRESOLVED = "LabelsUnresolved"  # count: verdicts on transactions the stream's index does not know
    RISK_WRITE_FAILED = "RiskWriteFailures"  # count: stream risk items a door could not write


class Comparison(StrEnum):
    GREATER = "GreaterThanThreshold"
    GREATER_OR_EQUAL = "GreaterThanOrEqualToThreshold"


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm: on our metric or on an AWS service metric (``namespace`` says which)."""

    name: str  # short id, used in the alarm name and the Prometheus alert name
    namespace: str  # METRIC_NAMESPACE or an AWS one ("AWS/Lambda", "AWS/Kinesis", ...)
    metric: str
    statistic: str  # "Sum", "Average", "Maximum", "p99"
    threshold: float
    comparison: Comparison
    period_seconds: int
    evaluation_periods: int
    summary: str  # what it means, one line for the alert text
    runbook: str  # anchor in docs/operations.md
    # a share alarm watches 100 x metric / share_of (percent, both summed over the period), and only
    # in periods where share_of reached min_count (below it the share says nothing: 1 of 2 is 50 %)
    share_of: str | None = None
    min_count: float = 0.0


ALARMS: tuple[AlarmSpec, ...] = (
    AlarmSpec("scorer-errors", "AWS/Lambda", "Errors", "Sum", 0, Comparison.GREATER, 300, 1,
              "The scorer Lambda raised errors", "scorer-errors"),
    AlarmSpec("scorer-throttles", "AWS/Lambda", "Throttles", "Sum", 0, Comparison.GREATER, 300, 2,
              "The scorer Lambda is throttled (reserved concurrency reached)", "scorer-throttles"),
    AlarmSpec("iterator-age", "AWS/Lambda", "IteratorAge", "Maximum", 60_000, Comparison.GREATER, 60, 5,
              "The scorer is more than a minute behind the stream (ms)", "iterator-age"),
    AlarmSpec("quarantine-rate", METRIC_NAMESPACE, Metric.QUARANTINED, "Sum", 100, Comparison.GREATER, 300, 1,
              "More than 100 records quarantined in 5 minutes", "quarantine"),
    AlarmSpec("anomaly-rate", METRIC_NAMESPACE, Metric.ANOMALY_RATE, "Average", 5.0, Comparison.GREATER, 900, 2,
              "Anomaly rate above 5 % of scored records (budget is 1 %)", "anomaly-rate"),
    AlarmSpec("rules-only", METRIC_NAMESPACE, Metric.RULES_ONLY, "Sum", 0, Comparison.GREATER, 300, 1,
              "The scorer runs without a model (rules-only fallback)", "rules-only"),
    AlarmSpec("model-load-failed", METRIC_NAMESPACE, Metric.MODEL_LOAD_FAILED, "Sum", 0, Comparison.GREATER, 300, 1,
              "The scorer cannot load the model the parameter names; the previous model keeps serving",
              "model-load-failed"),
    AlarmSpec("corrupt-state-items", METRIC_NAMESPACE, Metric.CORRUPT_ITEMS, "Sum", 0, Comparison.GREATER, 300, 1,
              "The scorer replaced unreadable profile, partner or channel items (their history restarts)",
              "corrupt-state-items"),
    # one refused mark is written with the shard's next batch: only a mark refused for 15 minutes
    # on end leaves a real window for duplicate outputs (a replaced function instance forgets it)
    AlarmSpec("delivery-mark-failures", METRIC_NAMESPACE, Metric.MARK_WRITE_FAILED, "Sum", 0, Comparison.GREATER,
              300, 3, "The scorer cannot write a shard's delivery mark (15 minutes on end)", "delivery-mark-failures"),
    # every failed index write is a verdict that will not reach the stream's risk (LabelsUnresolved
    # later): the batch client already retried it 3 times, so even one means throttling or a denied write
    AlarmSpec("alert-index-failures", METRIC_NAMESPACE, Metric.INDEX_WRITE_FAILED, "Sum", 0, Comparison.GREATER, 300,
              1, "The scorer could not write alerts' txn# index items (their verdicts will be unresolved)",
              "alert-index-failures"),
    AlarmSpec("score-drift", METRIC_NAMESPACE, Metric.SCORE_PSI, "Maximum", 0.25, Comparison.GREATER, 3600, 1,
              "Score distribution drifted from the training window (PSI > 0.25)", "drift"),
    # one datapoint per Glue run, aggregated over the jobs by a Metrics Insights query: such an alarm
    # evaluates only the latest 3 hours of data (CloudWatch's alarm limits), so the period is an hour
    # (a run's datapoint falls in one), not a day
    AlarmSpec("etl-rejected-share", METRIC_NAMESPACE, Metric.ETL_REJECTED_SHARE, "Maximum", 1.0, Comparison.GREATER,
              3600, 1, "A Glue run quarantined more than 1 % of its rows", "etl-quality"),
)  # fmt: skip

# Alarms on AWS service metrics of the deployment's other resources (queues, Glue, Step Functions,
# Firehose): CloudWatch only (the CDK app maps each to its resource); the Prometheus rules cover
# ``ALARMS``, whose AWS metrics name one resource per namespace.
SERVICE_ALARMS: tuple[AlarmSpec, ...] = (
    AlarmSpec("dlq-depth", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 0, Comparison.GREATER, 300, 1,
              "Records the scorer gave up on wait in the scorer DLQ", "dlq-depth"),
    AlarmSpec("quarantine-depth", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 1000,
              Comparison.GREATER, 300, 1, "More than 1,000 quarantined records wait for review", "quarantine"),
    AlarmSpec("glue-job-failed", "AWS/Events", "MatchedEvents", "Sum", 0, Comparison.GREATER, 300, 1,
              "A Glue job run failed, timed out or errored", "glue-job-failed"),
    AlarmSpec("pipeline-failed", "AWS/States", "ExecutionsFailed", "Sum", 0, Comparison.GREATER, 300, 1,
              "A training pipeline execution failed", "pipeline-failed"),
    AlarmSpec("pipeline-timed-out", "AWS/States", "ExecutionsTimedOut", "Sum", 0, Comparison.GREATER, 300, 1,
              "A training pipeline execution timed out", "pipeline-failed"),
    # the scored stream buffers 900 s (infra/config.py): its oldest row is ~900 s old at every flush
    AlarmSpec("firehose-freshness", "AWS/Firehose", "DeliveryToS3.DataFreshness", "Maximum", 1200, Comparison.GREATER,
              300, 1, "Scored rows wait more than 20 minutes for delivery to S3 (s)", "firehose-delivery"),
    AlarmSpec("firehose-conversion-failed", "AWS/Firehose", "FailedConversion.Records", "Sum", 0, Comparison.GREATER,
              300, 1, "Firehose could not convert scored rows to Parquet (sent to quarantine/firehose/)",
              "firehose-delivery"),
    # the label doors (finsentry.feedback; infra/stacks/feedback.py)
    AlarmSpec("feedback-ingest-errors", "AWS/Lambda", "Errors", "Sum", 0, Comparison.GREATER, 300, 1,
              "The S3 label door (feedback-ingest Lambda) failed; exports stay in feedback/incoming/", "label-doors"),
    AlarmSpec("feedback-dlq-depth", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 0, Comparison.GREATER,
              300, 1, "Label-export events the feedback-ingest Lambda gave up on wait in its DLQ", "label-doors"),
    AlarmSpec("feedback-unreadable", METRIC_NAMESPACE, Metric.FEEDBACK_UNREADABLE, "Sum", 0, Comparison.GREATER, 3600,
              1, "A label export under feedback/incoming/ is not a label file (quarantine/feedback/)", "label-doors"),
    # a risk item a door gave up on (3 conditional attempts) stays without those labels until they are
    # re-sent: the served supervised candidate sees less than it was evaluated with; any one is a repair
    AlarmSpec("risk-write-failures", METRIC_NAMESPACE, Metric.RISK_WRITE_FAILED, "Sum", 0, Comparison.GREATER, 300, 1,
              "A label door could not write the stream's risk items (re-send those labels)", "label-doors"),
    # some unresolved verdicts are normal (customer complaints the stream never alerted on, alerts older
    # than the index's 120 days); most of a day's verdicts unresolved is a fault: no index written
    # (scorer permissions), doors reading another table, or trans_ids the export reformatted
    AlarmSpec("labels-unresolved", METRIC_NAMESPACE, Metric.LABELS_UNRESOLVED, "Sum", 50.0, Comparison.GREATER, 86400,
              1, "More than half of a day's accepted labels name transactions the scorer's alert index does not "
              "know", "label-doors", share_of=Metric.LABELS_ACCEPTED, min_count=20),
    AlarmSpec("labels-api-5xx", "AWS/ApiGateway", "5XXError", "Sum", 0, Comparison.GREATER, 300, 1,
              "The label endpoint (POST /labels) answered with server errors", "label-doors"),
)  # fmt: skip

# Our metrics no alarm watches, and why: every ``Metric`` is either some alarm's metric or here
# (tests/test_monitoring.py), so a new metric cannot ship without that decision.
UNALARMED: dict[Metric, str] = {
    Metric.RECEIVED: "flow (dashboard); a scorer that stops keeping up raises iterator-age",
    Metric.SCORED: "flow (dashboard); a scorer that stops keeping up raises iterator-age",
    Metric.ANOMALIES: "per anomaly type; the share of alerts is alarmed (anomaly-rate)",
    Metric.DUPLICATES_SKIPPED: "Kinesis and Kafka redeliver by design; skipping them is the protocol working",
    Metric.RETRIED: "retried by Lambda; records it gives up on reach the DLQ (dlq-depth), a lag raises iterator-age",
    Metric.MODEL_VERSION: "a (re)load event, information; a load that fails is alarmed (model-load-failed)",
    Metric.BATCH_LATENCY: "dashboard (p99); sustained slowness raises iterator-age",
    Metric.FEATURE_PSI: "per feature: the diagnosis of score-drift, which is alarmed",
    Metric.ETL_ROWS_IN: "size of a Glue run; a failed run is alarmed (glue-job-failed)",
    Metric.ETL_ROWS_OUT: "size of a Glue run; a failed run is alarmed (glue-job-failed)",
    Metric.ETL_QUARANTINED: "its share of the run is alarmed (etl-rejected-share)",
    Metric.ETL_BALANCE_BREAKS: "findings in the bank's data (the catalog's balance_mismatch), in the quality report",
    Metric.ETL_DUPLICATES: "findings in the bank's data (duplicate postings), in the quality report",
    Metric.LABELS_RECEIVED: "flow of the label doors",
    Metric.LABELS_ACCEPTED: "flow of the label doors (the denominator of labels-unresolved)",
    Metric.LABELS_NEW: "flow of the label doors",
    Metric.LABELS_REJECTED: "single refused rows: their reasons go back to the sender (quarantine/feedback/, answers)",
    Metric.LABEL_REQUESTS_REFUSED: "400 answers: the caller gets the reason; not a fault of the deployment",
}


def alarm(name: str) -> AlarmSpec:
    """The alarm spec called ``name``; KeyError names the known ones."""
    for spec in ALARMS:
        if spec.name == name:
            return spec
    raise KeyError(f"no alarm {name!r}; known: {', '.join(a.name for a in ALARMS)}")
