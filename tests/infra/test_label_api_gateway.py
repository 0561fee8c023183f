"""The HTTPS label door as API Gateway runs it: the synthesized REST API in front of the real handler.

moto 5 cannot carry a request through API Gateway to this Lambda: its execute-api emulation invokes
only HTTP and AWS (DynamoDB) integrations and raises NotImplementedError for AWS_PROXY (the
limitations in ``moto.apigateway.models.APIGatewayBackend``'s docstring), and it checks neither
IAM authorization nor request validators; running the function's image would need Docker
besides. So this test reads the gateway's behaviour from the synthesized template instead of
hard-coding it: the stage, the resources and methods, the request validator with its body model
(a draft-4 JSON schema, what API Gateway applies) and required headers, the gateway responses,
and builds the Lambda proxy event of the AWS_PROXY integration from them; the handler runs for
real under moto (S3, DynamoDB). Who may call (SigV4, ``execute-api:Invoke``) is the access
matrix's part (tests/infra/test_access_matrix.py): requests here are taken as signed by the
submitter role.

What it catches: a route the template and the handler do not share (a renamed resource, a new
method), a gateway model stricter than the handler's validator (a body the handler would accept,
refused before it), a required header or a gateway message that changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from jsonschema import Draft4Validator

from finsentry.feedback import read_history
from lambdas.label_api import handler as module
from tests.lambdas.label_api.test_handler import call, door, label, proxy_event  # noqa: F401 (door: a fixture)

REFUSED = object()  # the gateway answered itself; the integration was not called


@dataclass
class Gateway:
    """What the synthesized REST API does with a request around its Lambda proxy integration,
    for the features this API uses: one stage, static resources, one model per content type."""

    stage: str
    routes: dict[tuple[str, str], dict[str, Any]]  # (method, resource path) -> the Method's properties
    models: dict[str, dict[str, Any]]  # logical id -> the Model's properties
    validators: dict[str, dict[str, Any]]  # logical id -> the RequestValidator's properties
    messages: dict[str, str]  # gateway response type -> its application/json template

    @classmethod
    def from_template(cls, template: dict[str, Any]) -> Gateway:
        of = {}
        for lid, r in template["Resources"].items():
            of.setdefault(r["Type"], {})[lid] = r["Properties"]
        [stage] = of["AWS::ApiGateway::Stage"].values()
        resources = of["AWS::ApiGateway::Resource"]

        def path(resource_id: str) -> str:
            node = resources[resource_id]
            parent = node["ParentId"]
            prefix = "" if isinstance(parent, dict) and "Fn::GetAtt" in parent else path(parent["Ref"])
            return f"{prefix}/{node['PathPart']}"

        routes = {(m["HttpMethod"], path(m["ResourceId"]["Ref"])): m for m in of["AWS::ApiGateway::Method"].values()}
        messages = {g["ResponseType"]: json.loads(g["ResponseTemplates"]["application/json"])["message"]
                    for g in of["AWS::ApiGateway::GatewayResponse"].values()}  # fmt: skip
        return cls(stage["StageName"], routes, of["AWS::ApiGateway::Model"], of["AWS::ApiGateway::RequestValidator"],
                   messages)  # fmt: skip

    def refusal(self, method: str, url_path: str, headers: dict[str, str], body: str | None) -> tuple[int, str] | None:
        """The gateway's own answer (status, message) before the integration, or None: it passes."""
        stage, _, rest = url_path.lstrip("/").partition("/")
        route = self.routes.get((method, f"/{rest}")) if stage == self.stage else None
        if route is None:  # REST APIs answer an unknown resource or method like an unsigned request
            return 403, self.messages["MISSING_AUTHENTICATION_TOKEN"]
        validator = self.validators[route["RequestValidatorId"]["Ref"]] if "RequestValidatorId" in route else {}
        sent = {k.lower(): v for k, v in headers.items()}
        if validator.get("ValidateRequestParameters"):
            required = [p.removeprefix("method.request.header.").lower()
                        for p, needed in route.get("RequestParameters", {}).items() if needed]  # fmt: skip
            if any(h not in sent for h in required):
                return 400, self.messages["BAD_REQUEST_PARAMETERS"]
        model = route.get("RequestModels", {}).get(sent.get("content-type", "").split(";")[0].strip())
        if validator.get("ValidateRequestBody") and model is not None:
            schema = self.models[model["Ref"]]["Schema"]
            try:
                document = json.loads(body or "")
            except json.JSONDecodeError:
                return 400, self.messages["BAD_REQUEST_BODY"]
            if not Draft4Validator(schema).is_valid(document):
                return 400, self.messages["BAD_REQUEST_BODY"]
        return None

    def request(self, method: str, url_path: str, body: str | None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
        """One signed request: the gateway's refusal, or the handler's answer to the proxy event."""
        headers = {"Content-Type": "application/json"} if headers is None else headers
        refused = self.refusal(method, url_path, headers, body)
        if refused is not None:
            return refused[0], {"message": refused[1], "by": REFUSED}
        stage, _, rest = url_path.lstrip("/").partition("/")
        event = proxy_event(body, method=method, path=f"/{rest}")
        event["headers"], event["multiValueHeaders"] = headers, {k: [v] for k, v in headers.items()}
        event["requestContext"]["stage"], event["requestContext"]["path"] = stage, url_path
        return call(event)


@pytest.fixture(scope="module")
def gateway(dev) -> Gateway:
    return Gateway.from_template(dev.templates["feedback"])


def test_the_gateway_and_the_handler_serve_the_same_routes(gateway):
    handler_routes = {(r.method, r.path) for r in module.app._static_routes + module.app._dynamic_routes}
    assert set(gateway.routes) == handler_routes == {("POST", "/labels")}
    for route in gateway.routes.values():
        assert route["AuthorizationType"] == "AWS_IAM" and route["Integration"]["Type"] == "AWS_PROXY"


def test_a_signed_post_through_the_gateway_stores_the_labels(gateway, door):  # noqa: F811
    [(method, path)] = gateway.routes
    status, body = gateway.request(method, f"/{gateway.stage}{path}",
                                   json.dumps([label(1, "confirmed_fraud"), label(2)]))  # fmt: skip
    assert status == 200 and (body["accepted"], body["new"]) == (2, 2)
    assert sorted(read_history(door.client, door.name)["trans_id"]) == ["T1", "T2"]


BODIES = [
    json.dumps(label(1)),  # one label
    json.dumps([label(1), label(2, "confirmed_fraud")]),  # a list
    json.dumps([label(1), {"trans_id": "T2"}, "not a record"]),  # rows the handler refuses one by one
    json.dumps({}),  # an object that is no label: the handler's row-level refusal
    json.dumps([]),
    json.dumps("T1"),
    "42",
    "null",
    '{"trans_id": "T1",',
    "",
]


@pytest.mark.parametrize("raw", BODIES)
def test_the_gateway_refuses_only_bodies_the_handler_refuses(gateway, door, raw):  # noqa: F811
    """The gateway's model checks the shape only: it must never refuse a body the handler would
    take (a row of it stored), and what it refuses the handler refuses as a whole too (400)."""
    [(method, path)] = gateway.routes
    status, body = gateway.request(method, f"/{gateway.stage}{path}", raw)
    direct_status, direct = call(proxy_event(raw, method=method, path=path))
    if body.get("by") is REFUSED:
        assert (status, body["message"]) == (400, gateway.messages["BAD_REQUEST_BODY"])
        assert direct_status == 400 and list(direct) == ["message"], (raw, direct)
    else:  # the handler answered through the gateway as it does to the bare event (200, or its own 400)
        assert status == direct_status and body.get("received") == direct.get("received"), raw
        assert body.get("message") == direct.get("message"), raw
    if direct_status == 200:
        assert body.get("by") is not REFUSED, raw


def test_the_gateway_answers_unknown_routes_and_a_missing_content_type_itself(gateway, door):  # noqa: F811
    [(method, path)] = gateway.routes
    url = f"/{gateway.stage}{path}"
    for other_method, other_url in (("GET", url), (method, f"{url}s"), (method, f"/v0{path}")):
        status, body = gateway.request(other_method, other_url, json.dumps(label(1)))
        assert (status, body["message"]) == (403, gateway.messages["MISSING_AUTHENTICATION_TOKEN"])
    status, body = gateway.request(method, url, json.dumps(label(1)), headers={})
    assert (status, body["message"]) == (400, gateway.messages["BAD_REQUEST_PARAMETERS"])
    assert not door.client.list_objects_v2(Bucket=door.name, Prefix="feedback/").get("Contents")
