"""The synthesized templates as one account would see them after deployment: every policy with real ARNs.

CloudFormation resolves ``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub`` and ``Fn::ImportValue``
when it deploys; a policy simulator needs the resolved strings. ``CfnModel`` does that resolution
for one fictitious account and region, for the resource types our policies refer to (physical names
from the templates' own name properties, ARNs in each service's documented format). Anything it
cannot resolve becomes ``<unresolved ...>``, which the access-matrix test refuses to evaluate.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any

ACCOUNT, REGION, PARTITION = "111122223333", "eu-west-1", "aws"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION,
          "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "stack"}  # fmt: skip

# name property of each resource type: what Ref returns (or builds the ARN from)
_NAME_PROPERTY = {
    "AWS::IAM::Role": "RoleName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Kinesis::Stream": "Name",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Events::Rule": "Name",
    "AWS::Glue::Job": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::ApiGateway::RestApi": "Name",  # stands for the API id in execute-api ARNs (consistently)
    "AWS::ApiGateway::Stage": "StageName",
}


def _arn(service: str, resource: str, *, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


@dataclass
class Resource:
    stack: str
    logical_id: str
    type: str
    properties: dict
    name: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.stack, self.logical_id


@dataclass
class CfnModel:
    """Resolve the templates of one deployment (``{stack id: template}``)."""

    templates: dict[str, dict]
    resources: dict[tuple[str, str], Resource] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stack, template in self.templates.items():
            for lid, r in template.get("Resources", {}).items():
                self.resources[(stack, lid)] = Resource(stack, lid, r["Type"], r.get("Properties", {}))
            for output in template.get("Outputs", {}).values():
                if "Export" in output:
                    self.exports[self.resolve(output["Export"]["Name"], stack)] = (stack, output["Value"])
        for res in self.resources.values():  # names may use other names (a bucket's account, a role's)
            prop = _NAME_PROPERTY.get(res.type)
            given = res.properties.get(prop) if prop else None
            res.name = self.resolve(given, res.stack) if given is not None else f"{res.stack}-{res.logical_id}"

    # --- attributes --------------------------------------------------------------------------
    def ref(self, res: Resource) -> str:
        t, n = res.type, res.name
        return {
            "AWS::SNS::Topic": _arn("sns", n),
            "AWS::SQS::Queue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{n}",
            "AWS::IAM::ManagedPolicy": f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{n}",
            "AWS::StepFunctions::StateMachine": _arn("states", f"stateMachine:{n}"),
            "AWS::KMS::Key": self._key_id(res),
        }.get(t, n)

    def get_att(self, res: Resource, attribute: str) -> str:
        t, n = res.type, res.name
        if attribute == "Arn":
            return {
                "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{n}",
                "AWS::SQS::Queue": _arn("sqs", n),
                "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{n}",
                "AWS::DynamoDB::Table": _arn("dynamodb", f"table/{n}"),
                "AWS::Kinesis::Stream": _arn("kinesis", f"stream/{n}"),
                "AWS::KinesisFirehose::DeliveryStream": _arn("firehose", f"deliverystream/{n}"),
                "AWS::Lambda::Function": _arn("lambda", f"function:{n}"),
                "AWS::KMS::Key": _arn("kms", f"key/{self._key_id(res)}"),
                "AWS::Events::Rule": _arn("events", f"rule/{n}"),
                "AWS::Logs::LogGroup": _arn("logs", f"log-group:{n}:*"),
            }.get(t, f"<unresolved {res.logical_id}.Arn>")
        if attribute == "QueueName" and t == "AWS::SQS::Queue":
            return n
        if attribute == "TopicName" and t == "AWS::SNS::Topic":
            return n
        return f"<unresolved {res.logical_id}.{attribute}>"

    def _key_id(self, res: Resource) -> str:
        return f"00000000-0000-4000-8000-{zlib.crc32(res.logical_id.encode()):012d}"

    # --- intrinsic functions -------------------------------------------------------------------
    def resolve(self, value: Any, stack: str) -> Any:
        if isinstance(value, list):
            return [self.resolve(v, stack) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                if arg in PSEUDO:
                    return PSEUDO[arg]
                res = self.resources.get((stack, arg))
                return self.ref(res) if res else f"<unresolved Ref {arg}>"
            if fn == "Fn::GetAtt":
                lid, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                res = self.resources.get((stack, lid))
                return self.get_att(res, attribute) if res else f"<unresolved {lid}.{attribute}>"
            if fn == "Fn::Join":
                sep, parts = arg
                return sep.join(str(self.resolve(p, stack)) for p in parts)
            if fn == "Fn::Sub":
                template, variables = (arg, {}) if isinstance(arg, str) else arg
                return self._sub(template, {k: self.resolve(v, stack) for k, v in variables.items()}, stack)
            if fn == "Fn::ImportValue":
                name = self.resolve(arg, stack)
                if name not in self.exports:
                    return f"<unresolved import {name}>"
                source, exported = self.exports[name]
                return self.resolve(exported, source)
            if fn == "Fn::Select":
                index, items = arg
                return self.resolve(items, stack)[int(index)]
        return {k: self.resolve(v, stack) for k, v in value.items()}

    def _sub(self, template: str, variables: dict, stack: str) -> str:
        def one(match: re.Match) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if name in PSEUDO:
                return PSEUDO[name]
            if "." in name:
                return str(self.resolve({"Fn::GetAtt": name.split(".", 1)}, stack))
            return str(self.resolve({"Ref": name}, stack))

        return re.sub(r"\$\{([^}!]+)\}", one, template)

    # --- policies -------------------------------------------------------------------------------
    def find(self, cfn_type: str, logical_id_prefix: str) -> Resource:
        found = [r for r in self.resources.values()
                 if r.type == cfn_type and r.logical_id.startswith(logical_id_prefix)]  # fmt: skip
        if len(found) != 1:
            raise LookupError(f"expected one {cfn_type} {logical_id_prefix}*, found {[r.logical_id for r in found]}")
        return found[0]

    def role_arn(self, role: Resource) -> str:
        return self.get_att(role, "Arn")

    def identity_policies(self, role: Resource) -> list[dict]:
        """Every policy attached to ``role``: inline, customer-managed, AWS::IAM::Policy naming it."""
        policies = [{"name": p["PolicyName"], "policy": self.resolve(p["PolicyDocument"], role.stack)}
                    for p in role.properties.get("Policies", [])]  # fmt: skip
        attached = set(self.resolve(role.properties.get("ManagedPolicyArns", []), role.stack))
        for res in self.resources.values():
            if res.type == "AWS::IAM::ManagedPolicy" and self.ref(res) in attached:
                document = self.resolve(res.properties["PolicyDocument"], res.stack)
                policies.append({"name": res.logical_id, "policy": document})
            elif res.type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                names = self.resolve(res.properties.get("Roles", []), res.stack)
                if role.name in names:
                    policies.append({"name": res.logical_id,
                                     "policy": self.resolve(res.properties["PolicyDocument"], res.stack)})  # fmt: skip
        return policies

    def resource_policies(self) -> dict[str, dict]:
        """Resource ARN -> its resource policy (topics, queues, buckets, keys), resolved."""
        out: dict[str, dict] = {}
        for res in self.resources.values():
            p = res.properties
            if res.type == "AWS::SNS::TopicPolicy":
                for arn in self.resolve(p["Topics"], res.stack):
                    out[arn] = self.resolve(p["PolicyDocument"], res.stack)
            elif res.type == "AWS::SQS::QueuePolicy":
                for url in self.resolve(p["Queues"], res.stack):
                    out[_arn("sqs", url.rsplit("/", 1)[1])] = self.resolve(p["PolicyDocument"], res.stack)
            elif res.type == "AWS::S3::BucketPolicy":
                out[f"arn:{PARTITION}:s3:::{self.resolve(p['Bucket'], res.stack)}"] = self.resolve(
                    p["PolicyDocument"], res.stack
                )
            elif res.type == "AWS::KMS::Key":
                out[self.get_att(res, "Arn")] = self.resolve(p["KeyPolicy"], res.stack)
            elif res.type == "AWS::Lambda::Permission":  # a function's resource policy, one statement each
                function = self.resolve(p["FunctionName"], res.stack)
                principal = self.resolve(p["Principal"], res.stack)
                statement = {"Sid": res.logical_id, "Effect": "Allow", "Action": p["Action"], "Resource": function,
                             "Principal": {"Service": principal} if principal.endswith(".amazonaws.com")
                             else {"AWS": principal}}  # fmt: skip
                condition = {}
                if "SourceArn" in p:
                    condition["ArnLike"] = {"aws:SourceArn": self.resolve(p["SourceArn"], res.stack)}
                if "SourceAccount" in p:
                    condition["StringEquals"] = {"aws:SourceAccount": self.resolve(p["SourceAccount"], res.stack)}
                if condition:
                    statement["Condition"] = condition
                policy = out.setdefault(function, {"Version": "2012-10-17", "Statement": []})
                policy["Statement"].append(statement)
        return out
