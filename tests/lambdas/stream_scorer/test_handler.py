"""The scorer Lambda handler: thin wiring, Powertools' partial batch response, any input survives."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsentry.layout import SCORER_ENV
from finsentry.local.aws import LOCAL_REGION, local_aws
from finsentry.local.stream_resources import point_model
from finsentry.stream.events import kafka_event
from finsentry.stream.metrics import MemoryMetrics
from finsentry.stream.runtime import ScorerConfigError, build_service, scorer_settings
from finsentry.stream.sinks import PACK_BYTES
from lambdas.stream_scorer import handler as module
from tests.lambdas import LambdaContext
from tests.stream.faults import Faulty, client_error
from tests.stream.world import bank, event_of, payloads, setup_world

HANDLER_FILE = Path(module.__file__)


CONTEXT = LambdaContext("finsentry-local-stream-scorer", account="000000000000")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """One moto world for the module, the handler configured from its environment."""
    with local_aws(), pytest.MonkeyPatch.context() as mp:
        res = setup_world(tmp_path_factory.mktemp("model"))
        point_model(f"s3://{res.bucket}/models/isolation_forest/", "if-1", 0.7)
        for k, v in res.env.items():
            mp.setenv(k, v)
        mp.setenv("POWERTOOLS_METRICS_NAMESPACE", "finsentry")
        module._service = None
        yield res
        module._service = None


def test_the_handler_is_thin():
    lines = HANDLER_FILE.read_text().splitlines()
    code = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert len(code) < 60 and "boto3" not in HANDLER_FILE.read_text()


def test_missing_environment_variables_are_named_at_start_up():
    with pytest.raises(ScorerConfigError) as err:
        scorer_settings({SCORER_ENV.profiles_table: "t"})
    assert SCORER_ENV.alerts_topic_arn in str(err.value) and SCORER_ENV.profiles_table not in str(err.value)


def test_kinesis_batch_scores_and_reports_no_failures(deployed):
    answer = module.handler(event_of(payloads(bank().test.head(50)), first=10_000), CONTEXT)
    assert answer == {"batchItemFailures": []}
    assert len(deployed.scored_rows()) >= 50


def test_kafka_batch_takes_the_same_path_with_kafka_item_identifiers(deployed):
    data = payloads(bank().test.iloc[50:60])
    answer = module.handler(kafka_event(data, first_offset=100), CONTEXT)
    assert answer == {"batchItemFailures": []}
    svc = module._service
    real = svc.profiles.client
    picked = bank().test.iloc[60:].drop_duplicates("account_id").head(3)  # three accounts
    victim = sorted(picked["account_id"])[1]

    def put(n, kw, r):
        if kw["Item"]["account_id"]["S"] == victim:
            raise client_error("ProvisionedThroughputExceededException", "PutItem")
        return r(**kw)

    svc.profiles.client = Faulty(real, put_item=put)
    try:
        answer = module.handler(kafka_event(payloads(picked), first_offset=200), CONTEXT)
    finally:
        svc.profiles.client = real
    offset = 200 + list(picked["account_id"]).index(victim)
    assert answer == {"batchItemFailures": [{"itemIdentifier": {"partition": "transactions-0", "offset": offset}}]}
    with pytest.raises(BatchProcessingError):  # every record failed: Powertools fails the invocation
        svc.profiles.client = Faulty(real, put_item=lambda n, kw, r: (_ for _ in ()).throw(
            client_error("ProvisionedThroughputExceededException", "PutItem")))
        try:
            module.handler(kafka_event(payloads(bank().test.iloc[[100]]), first_offset=300), CONTEXT)
        finally:
            svc.profiles.client = real


def test_kinesis_partial_failure_names_exactly_the_failed_sequence_numbers(deployed):
    svc = module._service or module.build_service()
    module._service = svc
    real = svc.scored_sink.client

    def put(n, kw, r):
        r(DeliveryStreamName=kw["DeliveryStreamName"], Records=kw["Records"][1:])
        return {"FailedPutCount": 1, "RequestResponses": [{"ErrorCode": "ServiceUnavailableException"}]
                + [{"RecordId": "x"}] * (len(kw["Records"]) - 1)}  # fmt: skip

    svc.scored_sink.client = Faulty(real, put_record_batch=put)
    svc.scored_sink.pack_bytes = 1  # one row per Firehose record: the first record is the first row
    try:
        event = event_of(payloads(bank().test.iloc[70:75]), first=20_000)
        answer = module.handler(event, CONTEXT)
    finally:
        svc.scored_sink.client = real
        svc.scored_sink.pack_bytes = PACK_BYTES
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}]}
    assert module.handler(event, CONTEXT) == {"batchItemFailures": []}  # the retry completes it


def test_an_event_of_another_kind_is_a_clear_error(deployed):
    with pytest.raises(ValueError, match="Kinesis Data Streams or Kafka"):
        module.handler({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, CONTEXT)


SEQUENCES = itertools.count(30_000, 1_000)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=6),
    max_leaves=20,
)
field_mutations = st.dictionaries(st.sampled_from(["trans_id", "account_id", "amount", "ts", "direction",
                                                   "balance_after", "operation", "client_id"]),
                                  json_values, max_size=3)  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(st.one_of(st.binary(max_size=60), json_values.map(lambda v: json.dumps(v).encode()),
                          field_mutations.map(lambda m: m)), min_size=1, max_size=12))  # fmt: skip
def test_arbitrary_bytes_and_json_never_crash_the_handler_and_every_record_is_accounted(deployed, items):
    base = json.loads(payloads(bank().test.iloc[[80]])[0])
    data = [i if isinstance(i, bytes) else json.dumps({**base, **i, "trans_id": f"h{n}-{base['trans_id']}"},
                                                      default=str).encode()  # fmt: skip
            for n, i in enumerate(items)]
    svc = module._service = module._service or build_service(module.metrics)
    if not isinstance(svc.metrics, MemoryMetrics):  # read the counts back (EMF goes to stdout)
        svc.metrics = MemoryMetrics()
    before = len(svc.metrics.points)
    answer = module.handler(event_of(data, first=next(SEQUENCES)), CONTEXT)  # a new delivery each time
    assert answer == {"batchItemFailures": []}
    batch = svc.metrics.points[before:]
    total = {name: sum(v for n, v, _, d in batch if n == name and not d) for name in
             ("RecordsReceived", "RecordsScored", "RecordsQuarantined", "DuplicatesSkipped", "RecordsRetried")}
    assert total["RecordsReceived"] == len(data)
    assert total["RecordsReceived"] == (total["RecordsScored"] + total["RecordsQuarantined"]
                                        + total["DuplicatesSkipped"] + total["RecordsRetried"])  # fmt: skip


def test_base64_payloads_are_what_the_scorer_reads(deployed):
    rec = payloads(bank().test.iloc[[90]])[0]
    event = event_of([rec], first=40_000)
    assert base64.b64decode(event["Records"][0]["kinesis"]["data"]) == rec
    assert boto3.client("sqs", region_name=LOCAL_REGION)  # moto stays up for the module


POISON = {
    "amount": st.sampled_from([10**400, -(10**30), 2**53 + 1, float("inf"), float("nan"), "1e999", 7.25]),
    "balance_after": st.sampled_from([10**400, float("-inf"), None, 12.5]),
    "client_age": st.sampled_from([10**400, float("inf"), "inf", 41.0]),
    "district_id": st.sampled_from([float("inf"), "inf", 1e300, 2.5, 10**30, True, 12, "12"]),
    "ts": st.sampled_from(["1998-01-03T10:00:00Z", "1998-01-03T10:00:00+02:00", "1998-01-03 23:30:00-05:00",
                           "9999-12-31T23:59:59", "0001-01-01", "1500-01-01T00:00:00", "2262-04-12T00:00:00",
                           "1998-01-03T10:00:00"]),
    "account_id": st.sampled_from([True, 1.5, [1], {}, "c-\ud800", 42, "acc-poison"]),
    "client_id": st.sampled_from(["c-\ud800", "\udfff", False, "client-ok"]),
    "region": st.sampled_from(["\ud800north", "south"]),
    "trans_id": st.sampled_from([None, True, "t-\udc00"]),
}  # fmt: skip
poison_records = st.fixed_dictionaries({}, optional=POISON)


def _expected_ts(value):
    from finsentry.schema import parse_timestamp

    return parse_timestamp(value)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(poison_records, min_size=1, max_size=8))
def test_poison_values_end_quarantined_with_a_reason_or_scored_unchanged(deployed, mutations):
    """Huge integers, infinities, surrogates, offsets, extreme dates, non-string ids: never an
    exception, never a failed record, never a silently changed value."""
    base = json.loads(payloads(bank().test.iloc[[85]])[0])
    first = next(SEQUENCES)
    records = [{**base, "trans_id": f"p{first}-{n}", **m} for n, m in enumerate(mutations)]
    data = [json.dumps(r).encode() for r in records]
    deployed.scored_rows()  # (moto keeps everything: compare by trans_id below)
    svc = module._service = module._service or build_service(module.metrics)
    answer = module.handler(event_of(data, first=first), CONTEXT)
    assert answer == {"batchItemFailures": []}
    rows = {r["trans_id"]: r for r in deployed.scored_rows()}
    for rec in records:
        tid = rec["trans_id"]
        if not isinstance(tid, str) or tid not in rows:
            continue  # quarantined (the counts above add up, the reason is on the message)
        row = rows[tid]
        assert row["ts"] == _expected_ts(rec["ts"]).strftime("%Y-%m-%d %H:%M:%S")  # offsets -> UTC, never wrapped
        if rec.get("district_id") is not None:
            assert row["district_id"] == int(float(rec["district_id"]))
        assert row["amount"] == float(rec["amount"]) and row["account_id"] == str(rec["account_id"])
    assert svc is module._service


def test_a_truncated_model_archive_is_reported_not_raised(deployed, tmp_path):
    import io
    import random
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("model.joblib", "metadata.json"):
            data = (tmp_path / name)
            data.write_bytes(random.Random(7).randbytes(50_000))  # incompressible: 2,000 bytes cut the archive
            tar.add(data, arcname=name)
    s3 = boto3.client("s3", region_name=LOCAL_REGION)
    s3.put_object(Bucket=deployed.bucket, Key="models/cut/model.tar.gz", Body=buf.getvalue()[:2000])
    svc = module._service = module._service or build_service(module.metrics)
    if not isinstance(svc.metrics, MemoryMetrics):
        svc.metrics = MemoryMetrics()
    svc.models.refresh_s = 0.0
    assert svc.models.current().version == "if-1"  # a model serves
    point_model(f"s3://{deployed.bucket}/models/cut/model.tar.gz", "cut-1", 0.9)
    try:
        answer = module.handler(event_of(payloads(bank().test.iloc[[70]]), first=next(SEQUENCES)), CONTEXT)
        assert answer == {"batchItemFailures": []}
        assert svc.models.serving.version == "if-1" and "cannot be fetched" in svc.models.serving.problem
        assert svc.metrics.total("ModelLoadFailures") >= 1  # the old model serves, the bad pointer is reported
    finally:
        point_model(f"s3://{deployed.bucket}/models/isolation_forest/", "if-1", 0.7)


def test_a_missing_mask_key_is_a_configuration_error(deployed):
    env = dict(deployed.env)
    env[SCORER_ENV.mask_key_parameter] = "/finsentry/local/no-such-key"
    with pytest.raises(ScorerConfigError, match="no-such-key"):
        build_service(environ=env, session=boto3.session.Session(region_name=LOCAL_REGION))


def test_in_lambda_a_model_load_freezes_the_long_lived_objects_out_of_the_collector(deployed, monkeypatch):
    """A full cyclic collection over the imported modules, clients and model would land in some
    batch (310 ms measured): in a Lambda environment the scorer freezes them after each model
    load; elsewhere (tests, the local run) it leaves the collector alone."""
    import gc

    from finsentry.stream.runtime import freeze_long_lived

    assert not freeze_long_lived({}) and gc.get_freeze_count() == 0
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "finsentry-dev-stream-scorer")
    monkeypatch.setattr(module, "_service", None)
    try:
        answer = module.handler(event_of(payloads(bank().test.head(5)), first=90_000), CONTEXT)
        assert answer == {"batchItemFailures": []}
        assert not module._service.models.current().rules_only  # the model was loaded in this batch
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
