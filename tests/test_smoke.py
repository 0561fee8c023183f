"""``finsentry smoke`` against a moto deployment whose stream is read by the real scorer handler.

moto keeps Lambda's event source mapping but does not run the scorer on what reaches Kinesis
(it would need Docker), so ``ScorerOnTheStream`` does what Lambda's poller does: it reads the
shard and invokes ``lambdas/stream_scorer/handler.py`` in-process with the records as Lambda
delivers them; the EMF lines the handler prints become CloudWatch metrics, as CloudWatch Logs
extracts them. Firehose converts to partitioned Parquet (``tests/moto_firehose.py``) and Athena
answers on DuckDB (``tests/moto_athena.py``), so every check of the smoke runs for real.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import sys
import threading
import zipfile

import boto3
import pytest
from moto import mock_aws

from finsentry.cli import main
from finsentry.deployment import source_of
from finsentry.layout import PREFIXES, RESOURCES, SCORER_ENV, model_parameter_name, resource_name
from finsentry.local.stream_resources import create_scorer_resources
from finsentry.monitoring import METRIC_NAMESPACE
from finsentry.schema import Reason
from finsentry.smoke import smoke_records
from finsentry.stream.validation import validate_stream_records
from tests.moto_athena import athena_on_duckdb
from tests.moto_deployment import ACCOUNT, ENV, REGION, deploy
from tests.moto_firehose import firehose_as_deployed

STREAM = resource_name(ENV, RESOURCES.stream)
FUNCTION = resource_name(ENV, RESOURCES.scorer_function)


class _ThreadStdout(io.TextIOBase):
    """sys.stdout for everyone, except one thread whose lines are kept (the handler's EMF)."""

    def __init__(self, other) -> None:
        self.other, self.ident, self.lines, self._part = other, None, [], ""
        self.waiting_shown = threading.Event()  # the smoke has said what it waits for

    def write(self, text: str) -> int:
        if threading.get_ident() != self.ident:
            if "waiting for:" in text:
                self.waiting_shown.set()
            return self.other.write(text)
        self._part += text
        *done, self._part = self._part.split("\n")
        self.lines.extend(done)
        return len(text)

    def flush(self) -> None:
        self.other.flush()


def emf_to_cloudwatch(line: str, cloudwatch) -> None:
    """One EMF log line into CloudWatch metrics, as CloudWatch Logs extracts them (every metric
    of every directive, once per dimension set, at the blob's timestamp)."""
    try:
        blob = json.loads(line)
    except ValueError:
        return
    aws = blob.get("_aws") if isinstance(blob, dict) else None
    if not aws:
        return
    when = dt.datetime.fromtimestamp(aws["Timestamp"] / 1000, dt.UTC)
    for directive in aws["CloudWatchMetrics"]:
        for names in directive["Dimensions"]:
            dims = [{"Name": n, "Value": str(blob[n])} for n in names]
            for metric in directive["Metrics"]:
                values = blob[metric["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    cloudwatch.put_metric_data(Namespace=directive["Namespace"], MetricData=[{
                        "MetricName": metric["Name"], "Dimensions": dims, "Value": float(value),
                        "Unit": metric.get("Unit", "None"), "Timestamp": when}])  # fmt: skip


class ScorerOnTheStream:
    """Lambda's Kinesis poller for the scorer: shard -> handler (in a thread, as Lambda runs it
    beside the producer), EMF -> CloudWatch. ``stop`` re-raises what the thread met."""

    def __init__(self, hold_until_waiting: bool = False) -> None:
        """``hold_until_waiting``: the first batch waits (at most 30 s) until the smoke has shown
        its progress, so the test sees a wait however fast the machine."""
        from lambdas.stream_scorer import handler as module

        self.module = module
        self.hold_until_waiting = hold_until_waiting
        self.invocations = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._out = _ThreadStdout(sys.stdout)

    def __enter__(self) -> ScorerOnTheStream:
        sys.stdout = self._out
        self._thread.start()
        self._out.ident = self._thread.ident
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        sys.stdout = self._out.other
        if self.error is not None and exc[0] is None:
            raise self.error

    def _run(self) -> None:
        try:
            kinesis = boto3.client("kinesis", region_name=REGION)
            cloudwatch = boto3.client("cloudwatch", region_name=REGION)
            arn = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
            shard = kinesis.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
            iterator = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
            while not self._stop.is_set():
                got = kinesis.get_records(ShardIterator=iterator, Limit=500)
                iterator = got["NextShardIterator"]
                if got["Records"]:
                    if self.hold_until_waiting:
                        self._out.waiting_shown.wait(30)
                    self.module.handler(self._event(got["Records"], shard, arn), _Context())
                    self.invocations += 1
                    lines, self._out.lines = self._out.lines, []
                    for line in lines:
                        emf_to_cloudwatch(line, cloudwatch)
                self._stop.wait(0.05)
        except BaseException as exc:  # noqa: BLE001 - handed to the test by __exit__
            self.error = exc

    @staticmethod
    def _event(records: list[dict], shard: str, arn: str) -> dict:
        return {"Records": [{
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r["PartitionKey"],
                        "sequenceNumber": r["SequenceNumber"], "data": base64.b64encode(r["Data"]).decode(),
                        "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp()},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"{shard}:{r['SequenceNumber']}",
            "eventName": "aws:kinesis:record", "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/scorer",
            "awsRegion": REGION, "eventSourceARN": arn} for r in records]}  # fmt: skip


class _Context:
    function_name = FUNCTION
    memory_limit_in_mb = 2048
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
    aws_request_id = "smoke-test"


def _table_input(prop) -> dict:
    """The CDK app's scored table (a ``CfnTable.TableInputProperty``) as Glue's API takes it."""
    sd = prop.storage_descriptor
    return {"Name": prop.name, "Description": prop.description, "TableType": prop.table_type,
            "Parameters": dict(prop.parameters),
            "PartitionKeys": [{"Name": k.name, "Type": k.type} for k in prop.partition_keys],
            "StorageDescriptor": {"Columns": [{"Name": c.name, "Type": c.type} for c in sd.columns],
                                  "Location": sd.location, "InputFormat": sd.input_format,
                                  "OutputFormat": sd.output_format,
                                  "SerdeInfo": {"SerializationLibrary": sd.serde_info.serialization_library}},
            }  # fmt: skip


def deploy_stream(subs: dict[str, str]) -> None:
    """The ingestion stack as the CDK app leaves it (names, scorer environment, event source
    mapping, Firehose with dynamic partitioning and Parquet against the Glue table), no model yet."""
    from infra.stacks.ingestion import NO_MODEL
    from infra.stacks.processing import scored_table_input

    bucket, database = subs["DataBucket"], subs["GlueDatabase"]
    boto3.client("glue", region_name=REGION).update_table(
        DatabaseName=database, TableInput=_table_input(scored_table_input(database, bucket)))  # fmt: skip
    res = create_scorer_resources(env=ENV, bucket=bucket)  # table, topic (+ another subscriber), queue, mask key
    firehose = boto3.client("firehose", region_name=REGION)
    name = res.env[SCORER_ENV.scored_firehose]
    firehose.delete_delivery_stream(DeliveryStreamName=name)
    destination = _deployed_firehose(bucket, database)
    firehose.create_delivery_stream(DeliveryStreamName=name, DeliveryStreamType="DirectPut",
                                    ExtendedS3DestinationConfiguration=destination)  # fmt: skip
    boto3.client("ssm", region_name=REGION).put_parameter(Name=model_parameter_name(ENV), Type="String",
                                                          Value=json.dumps(NO_MODEL), Overwrite=True)  # fmt: skip
    kinesis = boto3.client("kinesis", region_name=REGION)
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "lambda.amazonaws.com"}}]}
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName=f"{FUNCTION}-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]  # fmt: skip
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    raise RuntimeError('run in-process')\n")
    lam = boto3.client("lambda", region_name=REGION)
    lam.create_function(FunctionName=FUNCTION, Role=role, Runtime="python3.11", Handler="handler.handler",
                        Code={"ZipFile": code.getvalue()},
                        Environment={"Variables": _scorer_environment(res.env)})  # fmt: skip
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=FUNCTION, StartingPosition="TRIM_HORIZON",
                                    FunctionResponseTypes=["ReportBatchItemFailures"])  # fmt: skip


def _scorer_environment(env: dict[str, str]) -> dict[str, str]:
    return {**env, SCORER_ENV.model_parameter: model_parameter_name(ENV),
            "POWERTOOLS_SERVICE_NAME": RESOURCES.scorer_function, "POWERTOOLS_METRICS_NAMESPACE": METRIC_NAMESPACE}


def _deployed_firehose(bucket: str, database: str) -> dict:
    from tests.moto_firehose import QUERY

    return {
        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose", "BucketARN": f"arn:aws:s3:::{bucket}",
        "Prefix": "scored/dt=!{partitionKeyFromQuery:dt}/", "ErrorOutputPrefix": PREFIXES.firehose_errors,
        "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 900},
        "DynamicPartitioningConfiguration": {"Enabled": True},
        "ProcessingConfiguration": {"Enabled": True, "Processors": [{"Type": "MetadataExtraction", "Parameters": [
            {"ParameterName": "MetadataExtractionQuery", "ParameterValue": QUERY},
            {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]},
        "DataFormatConversionConfiguration": {
            "Enabled": True,
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "GZIP"}}},
            "SchemaConfiguration": {"DatabaseName": database, "TableName": "scored", "Region": REGION,
                                    "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose", "VersionId": "LATEST"}},
    }  # fmt: skip


@pytest.fixture
def deployed():
    """A moto account with the deployment ``test`` (training side and stream side), the scorer's
    handler configured from the function's environment, as Lambda would start it."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
           "AWS_REGION": REGION}  # fmt: skip
    from lambdas.stream_scorer import handler as module

    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("AWS_PROFILE", raising=False)
        with mock_aws(config={"lambda": {"use_docker": False}}), athena_on_duckdb(), firehose_as_deployed():
            subs = deploy()
            deploy_stream(subs)
            function_env = boto3.client("lambda", region_name=REGION).get_function_configuration(
                FunctionName=FUNCTION)["Environment"]["Variables"]  # fmt: skip
            for k, v in function_env.items():
                mp.setenv(k, v)
            module._service = None
            module.metrics.set_default_dimensions(service=RESOURCES.scorer_function)  # as the CDK's env names it
            yield subs
            module._service = None
            module.metrics.clear_default_dimensions()


def _temporary_subscriptions() -> tuple[list[str], list[str]]:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:{resource_name(ENV, RESOURCES.alerts_topic)}"
    subs = boto3.client("sns", region_name=REGION).list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    queues = boto3.client("sqs", region_name=REGION).list_queues().get("QueueUrls", [])
    return [s["Endpoint"] for s in subs if "smoke" in s["Endpoint"]], [q for q in queues if "smoke" in q]


def test_the_smoke_records_are_what_they_claim():
    records = smoke_records("abc", dt.datetime(2026, 12, 2, 6, 30, tzinfo=dt.UTC))
    parsed = [json.loads(p) for _, p in records.payloads[:-1]]
    checked = validate_stream_records(parsed)
    assert len(checked.valid) == len(records.scored_ids) and checked.rejected.empty
    anomaly = next(p for p in parsed if p["trans_id"] == records.anomaly_id)
    assert abs(anomaly["balance_before"] - anomaly["amount"] - anomaly["balance_after"]) > 1000  # balance mismatch
    for p in parsed:
        if p["trans_id"] != records.anomaly_id:
            assert p["balance_before"] - p["amount"] == pytest.approx(p["balance_after"])
    with pytest.raises(ValueError):
        json.loads(records.payloads[-1][1])
    assert records.malformed_marker.encode() in records.payloads[-1][1] and records.day == "2026-12-02"
    assert all("smoke-abc" in p for _, p in ((k, v.decode()) for k, v in records.payloads))


def test_every_check_passes_when_the_scorer_runs(deployed, capsys):
    with ScorerOnTheStream(hold_until_waiting=True) as scorer:
        status = main(["smoke", "--env", ENV, "--timeout", "120", "--poll", "0.2"])
    out = capsys.readouterr().out
    print(out)
    assert status == 0, out
    assert scorer.invocations >= 1
    assert "all checks passed" in out and "FAIL" not in out and "waiting for: scored rows in S3" in out
    for check in ("scored rows in S3", "through Athena", "alert on SNS", "quarantined", "metrics in CloudWatch",
                  "subscription removed"):  # fmt: skip
        assert check in out
    assert "balance_mismatch" in out and f"reason {Reason.MALFORMED}" in out and "rules-only" in out
    assert _temporary_subscriptions() == ([], [])
    quarantine = boto3.client("sqs", region_name=REGION).get_queue_url(
        QueueName=resource_name(ENV, RESOURCES.quarantine_queue))["QueueUrl"]  # fmt: skip
    left = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=quarantine, MaxNumberOfMessages=10)
    assert not left.get("Messages"), "the smoke's own quarantine message is deleted"


def test_a_deployment_whose_scorer_does_not_run_fails_the_checks_by_name(deployed, capsys):
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.get_queue_url(QueueName=resource_name(ENV, RESOURCES.quarantine_queue))["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"reason": "missing_field", "raw": "{}"}))
    status = main(["smoke", "--env", ENV, "--timeout", "2", "--poll", "0.5"])
    out = capsys.readouterr().out
    print(out)
    assert status == 1
    failed = " ".join(out.split("FAILED: ", 1)[1].split())
    for check in ("scored rows in S3", "anomaly alert on SNS", "malformed record quarantined", "scorer metrics"):
        assert check in failed
    assert "records put on the stream" not in failed and "subscription removed" not in failed
    assert "waits for the rows in S3" in out  # Athena is not asked before S3 has the rows
    assert _temporary_subscriptions() == ([], [])
    kept = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["reason"] for m in kept] == ["missing_field"]  # others' messages: visible again


def test_the_failed_checks_say_what_was_seen(deployed):
    from finsentry import smoke
    from finsentry.deployment import resolve, stream_resources

    deployment = resolve(ENV)
    assert smoke.default_timeout(deployment, stream_resources(deployment)) == 900 + smoke.MARGIN_S  # Firehose's buffer

    s3 = boto3.client("s3", region_name=REGION)
    error_key = f"{PREFIXES.firehose_errors}format-conversion-failed/x"
    s3.put_object(Bucket=deployed["DataBucket"], Key=error_key, Body=b"{}")
    checks = {c.name.split(" (")[0]: c for c in smoke.run_smoke(resolve(ENV), timeout_s=1, poll_s=0.5)}
    assert checks["scored rows in S3"].ok is False
    assert f"1 Firehose error objects under {PREFIXES.firehose_errors}" in checks["scored rows in S3"].detail
    assert checks["records put on the stream"].ok and checks["temporary alert subscription removed"].ok


def test_a_model_that_does_not_alert_on_the_anomaly_is_named(deployed, tmp_path):
    """A served model that rates the anomaly normal: the alert check fails and says why."""
    from finsentry import smoke
    from finsentry.deployment import resolve
    from finsentry.detectors.artifact import save_model
    from tests.stream.world import bank

    save_model(bank().model, tmp_path / "model")
    s3 = boto3.client("s3", region_name=REGION)
    for name in ("model.joblib", "metadata.json"):
        s3.upload_file(str(tmp_path / "model" / name), deployed["DataBucket"], f"models/isolation_forest/{name}")
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=model_parameter_name(ENV), Type="String", Overwrite=True, Value=json.dumps({
            "model_uri": f"s3://{deployed['DataBucket']}/models/isolation_forest/", "version": "if-strict",
            "threshold": 1.0}))  # fmt: skip
    with ScorerOnTheStream():
        checks = {c.name.split(" (")[0]: c for c in smoke.run_smoke(resolve(ENV), timeout_s=20, poll_s=0.2)}
    assert checks["scored rows in S3"].ok and checks["scored rows through Athena"].ok
    assert checks["malformed record quarantined"].ok and checks["temporary alert subscription removed"].ok
    assert checks["anomaly alert on SNS"].ok is False and checks["scorer metrics in CloudWatch"].ok is False
    why = checks["anomaly alert on SNS"].detail
    assert "rated it normal" in why and "if-strict" in why
    assert "Anomalies 0 (>= 1)" in checks["scorer metrics in CloudWatch"].detail


def test_the_cleanup_runs_when_the_run_is_interrupted(deployed, monkeypatch, capsys):
    from finsentry import smoke

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(smoke.SmokeRun, "poll", interrupted)
    assert main(["smoke", "--env", ENV, "--timeout", "30"]) == 130
    assert _temporary_subscriptions() == ([], [])


@pytest.mark.parametrize(("mapping", "kind", "said"), [
    ({"EventSourceArn": "arn:aws:kafka:eu-west-1:1:cluster/bank/x"}, "msk", "Amazon MSK cluster"),
    ({"SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b1:9096"]}}}, "kafka", "b1:9096"),
    ({"EventSourceArn": "arn:aws:kinesis:eu-west-1:1:stream/finsentry-dev-transactions"}, "kinesis", "stream/"),
])  # fmt: skip
def test_the_source_is_read_from_the_event_source_mapping(mapping, kind, said):
    got_kind, detail = source_of(mapping)
    assert got_kind == kind and said in detail


def test_a_kafka_deployment_is_told_smoke_supports_kinesis_only(deployed, monkeypatch, capsys):
    from finsentry import deployment

    monkeypatch.setattr(deployment, "source_of", lambda m: ("msk", "Amazon MSK cluster arn:aws:kafka:x"))
    assert main(["smoke", "--env", ENV]) == 2
    err = capsys.readouterr().err
    assert "Kinesis only" in err and "MSK" in err and len(err.strip().splitlines()) == 1
    assert _temporary_subscriptions() == ([], [])


@pytest.mark.parametrize(("argv", "message"), [
    (["smoke", "--env", ENV, "--timeout", "soon"], "not a number of seconds"),
    (["smoke", "--env", ENV, "--timeout", "0"], "from 1 to 86400"),
    (["smoke"], "--env"),
])  # fmt: skip
def test_bad_arguments_are_one_line_and_status_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_no_deployment_or_no_scorer_is_one_line_and_status_2(deployed, capsys):
    assert main(["smoke", "--env", "prod"]) == 2
    err = capsys.readouterr().err
    assert "no deployment 'prod'" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    boto3.client("lambda", region_name=REGION).delete_function(FunctionName=FUNCTION)
    assert main(["smoke", "--env", ENV]) == 2
    err = capsys.readouterr().err
    assert f"no scorer function {FUNCTION}" in err and len(err.strip().splitlines()) == 1



def test_rows_are_read_from_parquet_or_from_json_lines(monkeypatch):
    """What Firehose writes with format conversion (Parquet) and without it (JSON lines)."""
    import pandas as pd

    from finsentry.deployment import Deployment
    from finsentry.smoke import _rows_of

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        s3 = session.client("s3")
        s3.create_bucket(Bucket="smoke-rows", CreateBucketConfiguration={"LocationConstraint": REGION})
        rows = [{"trans_id": "t1", "score": 0.2, "verdict": "normal", "anomaly_type": "", "model_version": "v"},
                {"trans_id": "t2", "score": 1.0, "verdict": "alert", "anomaly_type": "balance_mismatch",
                 "model_version": "v"}]  # fmt: skip
        lines = "\n".join(json.dumps(r) for r in rows) + "\n"
        s3.put_object(Bucket="smoke-rows", Key="scored/dt=2026-12-02/a", Body=lines)
        buf = io.BytesIO()
        pd.DataFrame(rows).assign(amount=1.0).to_parquet(buf, index=False)
        s3.put_object(Bucket="smoke-rows", Key="scored/dt=2026-12-02/b", Body=buf.getvalue())
        deployment = Deployment(env=ENV, region=REGION, account=ACCOUNT, bucket="smoke-rows", database="", workgroup="",
                                model_package_group="", model_parameter="", state_machine_arn="",
                                training_image="", sagemaker_role_arn="", kms_key_arn="", session=session)  # fmt: skip
        assert _rows_of(deployment, "scored/dt=2026-12-02/a") == rows
        assert _rows_of(deployment, "scored/dt=2026-12-02/b") == rows  # only the smoke's columns
