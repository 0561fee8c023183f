"""The HTTPS label door's handler through Powertools, with API Gateway (REST) proxy events under moto."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from finsentry.feedback import read_history
from finsentry.layout import FEEDBACK_ENV, PREFIXES
from finsentry.local.aws import DataBucket, local_aws
from lambdas.label_api import handler as module
from tests.lambdas import LambdaContext, create_profiles_table, seed_alert_index

CALLER = "arn:aws:sts::111122223333:assumed-role/finsentry-dev-label-submitter/case-system"


CONTEXT = LambdaContext("finsentry-dev-labels-api", memory_limit_in_mb=512)


def proxy_event(body: str | None, method: str = "POST", path: str = "/labels", base64_body: bool = False) -> dict:
    """An API Gateway REST proxy event as IAM-authorized requests arrive."""
    if base64_body and body is not None:
        body = base64.b64encode(body.encode()).decode()
    return {
        "resource": path, "path": path, "httpMethod": method, "isBase64Encoded": base64_body, "body": body,
        "headers": {"Content-Type": "application/json"}, "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": path, "httpMethod": method, "stage": "v1", "requestId": "r-1",
                           "path": f"/v1{path}", "accountId": "111122223333", "apiId": "abc123",
                           "identity": {"userArn": CALLER, "caller": "AROAEXAMPLE:case-system",
                                        "accountId": "111122223333", "sourceIp": "10.0.0.1"}},
    }  # fmt: skip


def label(i: int, verdict: str = "dismissed", when: str = "2026-12-01T08:00:00Z") -> dict:
    return {"trans_id": f"T{i}", "verdict": verdict, "who": "case-system", "when": when, "note": ""}


@pytest.fixture
def door(monkeypatch):
    with local_aws():
        bucket = DataBucket.create("dev")
        monkeypatch.setenv(FEEDBACK_ENV.data_bucket, bucket.name)
        monkeypatch.setenv(FEEDBACK_ENV.env, "dev")
        monkeypatch.setenv(FEEDBACK_ENV.profiles_table, create_profiles_table())
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "labels-api")
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        module._door = None
        yield bucket
        module._door = None


def call(event: dict) -> tuple[int, dict]:
    response = module.handler(event, CONTEXT)
    return response["statusCode"], json.loads(response["body"])


def test_a_valid_list_is_accepted_row_by_row_and_stored(door, capsys):
    status, body = call(proxy_event(json.dumps([label(1, "confirmed_fraud"), label(2)])))
    assert status == 200
    assert {k: body[k] for k in ("received", "accepted", "rejected", "new", "already_known")} == {
        "received": 2, "accepted": 2, "rejected": 0, "new": 2, "already_known": 0}
    assert [(r["row"], r["status"], r["trans_id"], r["new"]) for r in body["results"]] == [
        (0, "accepted", "T1", True), (1, "accepted", "T2", True)]
    assert sorted(read_history(door.client, door.name)["trans_id"]) == ["T1", "T2"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf and emf[-1]["LabelsNew"] == [2.0] and emf[-1]["service"] == "labels-api"


def test_mixed_rows_say_which_and_why_and_the_counts_add_up(door):
    rows = [label(1, "confirmed_fraud"), {"trans_id": "T2", "verdict": "dismissed", "when": "2026-12-01"},
            label(3, "stolen"), "not a record", label(4, when="yesterday")]
    status, body = call(proxy_event(json.dumps(rows)))
    assert status == 200
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "rejected", "rejected", "rejected"]
    assert [r.get("reason") for r in body["results"]][1:] == ["missing_who", "unknown_verdict", "malformed", "bad_when"]
    assert body["received"] == body["accepted"] + body["rejected"] == len(rows)
    assert body["accepted"] == body["new"] + body["already_known"] == 1
    assert list(read_history(door.client, door.name)["trans_id"]) == ["T1"]


@pytest.mark.parametrize("raw", ["{\"trans_id\": \"T1\",", "[]", "\"T1\"", ""])
def test_a_malformed_body_is_a_400_with_one_message_and_nothing_written(door, raw, capsys):
    status, body = call(proxy_event(raw))
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line][-1]
    assert emf["LabelRequestsRefused"] == [1.0]
    assert status == 400 and list(body) == ["message"] and "\n" not in body["message"]
    assert "JSON" in body["message"] or "empty" in body["message"]
    assert not door.client.list_objects_v2(Bucket=door.name, Prefix="feedback/").get("Contents")


def test_a_resend_is_idempotent(door):
    event = proxy_event(json.dumps([label(1, "confirmed_fraud"), label(2)]))
    call(event)
    listing = door.client.list_objects_v2
    keys = [o["Key"] for o in listing(Bucket=door.name, Prefix=PREFIXES.feedback_labels)["Contents"]]
    status, body = call(event)
    assert status == 200 and (body["new"], body["already_known"]) == (0, 2)
    assert [r["new"] for r in body["results"]] == [False, False]
    after = [o["Key"] for o in listing(Bucket=door.name, Prefix=PREFIXES.feedback_labels)["Contents"]]
    assert after == keys and len(read_history(door.client, door.name)) == 2


def test_a_single_object_and_a_base64_body_are_labels_too(door):
    status, body = call(proxy_event(json.dumps(label(7, "confirmed_fraud")), base64_body=True))
    assert status == 200 and body["new"] == 1 and body["results"][0]["trans_id"] == "T7"


def test_other_routes_are_not_found(door):
    status, _ = call(proxy_event(None, method="GET"))
    assert status == 404


def test_the_handler_is_thin():
    text = Path(module.__file__).read_text()
    code = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(code) < 60 and "boto3" not in text and "validate_labels" not in text


def test_a_verdict_reaches_the_streams_risk_and_an_unresolved_one_is_named(door, capsys):
    seed_alert_index("finsentry-dev-profiles", {"T1": ("A1", "")})
    status, body = call(proxy_event(json.dumps([label(1, "confirmed_fraud"), label(9)])))
    assert status == 200 and body["unresolved"] == 1 and body["unresolved_trans_ids"] == ["T9"]
    assert body["risk_write_failures"] == 0
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line][-1]
    assert emf["LabelsUnresolved"] == [1.0]
    status, again = call(proxy_event(json.dumps([label(1, "confirmed_fraud")])))  # a resend: counted once
    assert status == 200 and again["already_known"] == 1 and again["unresolved"] == 0
