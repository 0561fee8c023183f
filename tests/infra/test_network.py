"""``-c vpc=new`` and ``-c vpc=vpc-...``: scorer, Glue and SageMaker in private subnets, gates still clean."""

from __future__ import annotations

import json

import pytest

from infra.config import load_config
from infra.stacks.network import GATEWAY_ENDPOINTS, INTERFACE_ENDPOINTS
from tests.infra.conftest import ONCALL, read_synth
from tests.infra.test_security_gates import acknowledgements
from tests.infra.test_wiring import scorer

EXISTING = {"vpc": "vpc-0abc12345678def00", "vpc_subnets": "subnet-0aaa1111,subnet-0bbb2222",
            "vpc_azs": "eu-west-1a,eu-west-1b"}  # fmt: skip


def _synth(tmp_path_factory, name: str, context: dict):
    from aws_cdk import App

    from infra.app import build, cdk_json_context

    outdir = tmp_path_factory.mktemp(f"cdk-vpc-{name}")
    app = App(outdir=str(outdir), context={**cdk_json_context(), **context})
    deployment = build(app)
    synth = read_synth(app, outdir)
    synth.deployment = deployment
    return synth


@pytest.fixture(scope="module")
def new_vpc(tmp_path_factory):
    """The prod layout in a new VPC (what `npx cdk synth -c vpc=new -c env=prod -c alarm_email=...` writes)."""
    return _synth(tmp_path_factory, "new", {"vpc": "new", "env": "prod", "alarm_email": ONCALL})


# made-up digests (the form a release pins; no registry is asked)
BASE_IMAGES = {"scorer_base_image": f"public.ecr.aws/lambda/provided:al2023@sha256:{'a' * 64}",
               "sagemaker_base_image": f"public.ecr.aws/docker/library/python:3.11-slim-bookworm@sha256:{'b' * 64}"}


@pytest.fixture(scope="module")
def existing_vpc(tmp_path_factory):
    """dev in an existing VPC, with the base images pinned by digest (a release's context)."""
    return _synth(tmp_path_factory, "existing", {"env": "dev", **EXISTING, **BASE_IMAGES})


def _violations(synth) -> dict:
    return {r["pluginName"]: [v["ruleName"] for v in r["violations"]] for r in synth.report["pluginReports"]
            if r["violations"]}  # fmt: skip


@pytest.mark.parametrize("layout", ["new_vpc", "existing_vpc"])
def test_both_vpc_layouts_synthesize_and_pass_the_gates(layout, request):
    synth = request.getfixturevalue(layout)
    assert synth.error is None and not _violations(synth), _violations(synth)
    assert "network" in synth.templates


def test_the_scorer_runs_in_the_private_subnets_without_the_vpc_acknowledgement(new_vpc, dev):
    fn = scorer(new_vpc)
    assert fn["VpcConfig"]["SubnetIds"] and "ScorerSecurityGroup" in json.dumps(fn["VpcConfig"]["SecurityGroupIds"])

    def acked(synth):
        return [path for path, rules in acknowledgements(synth).items()
                if "/Scorer" in path and any("LambdaInsideVPC" in r for r in rules)]  # fmt: skip

    assert acked(dev) and not acked(new_vpc)  # acknowledged away only in the default layout
    assert "VpcConfig" not in scorer(dev)


def test_the_label_doors_run_in_the_private_subnets_behind_their_own_group(new_vpc, existing_vpc, dev):
    for synth in (new_vpc, existing_vpc):
        doors = [r["Properties"] for stack, _, r in synth.resources("AWS::Lambda::Function") if stack == "feedback"]
        assert len(doors) == 2
        for fn in doors:
            assert fn["VpcConfig"]["SubnetIds"]
            assert "LabelDoorsSecurityGroup" in json.dumps(fn["VpcConfig"]["SecurityGroupIds"])
    assert not [r for stack, _, r in dev.resources("AWS::Lambda::Function")
                if stack == "feedback" and "VpcConfig" in r["Properties"]]  # fmt: skip
    admitted = [json.dumps(r["SourceSecurityGroupId"]) for r in _rules(new_vpc, "Ingress") if r["FromPort"] == 443]
    assert any("LabelDoorsSecurityGroup" in a for a in admitted)  # the endpoints admit the doors


def test_a_new_vpc_has_isolated_subnets_flow_logs_and_the_endpoints(new_vpc):
    net = new_vpc.templates["network"]["Resources"].values()
    assert not [r for r in net if r["Type"] in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway")]
    assert [r for r in net if r["Type"] == "AWS::EC2::FlowLog"]
    endpoints = [r["Properties"] for r in net if r["Type"] == "AWS::EC2::VPCEndpoint"]
    gateway = [e for e in endpoints if e.get("VpcEndpointType", "Gateway") == "Gateway"]
    interface = [e for e in endpoints if e.get("VpcEndpointType") == "Interface"]
    assert len(gateway) == len(GATEWAY_ENDPOINTS) and len(interface) == len(INTERFACE_ENDPOINTS)
    names = json.dumps([e["ServiceName"] for e in endpoints])
    for service in ("s3", "dynamodb", "ssm", "sns", "sqs", "kms", "kinesis-firehose", "xray", "logs", "monitoring",
                    "glue", "sts", "ecr.api", "ecr.dkr"):  # fmt: skip
        assert f".{service}" in names, service
    assert all(e["PrivateDnsEnabled"] and "EndpointSecurityGroup" in json.dumps(e["SecurityGroupIds"])
               for e in interface)  # fmt: skip


def _rules(synth, kind: str) -> list[dict]:
    rules = []
    for r in synth.templates["network"]["Resources"].values():
        if r["Type"] == "AWS::EC2::SecurityGroup":
            rules += r["Properties"].get(f"SecurityGroup{kind}", [])
        if r["Type"] == f"AWS::EC2::SecurityGroup{kind}":
            rules.append(r["Properties"])
    return rules


@pytest.mark.parametrize("layout", ["new_vpc", "existing_vpc"])
def test_security_groups_are_least_privilege(layout, request):
    synth = request.getfixturevalue(layout)
    for rule in _rules(synth, "Egress"):
        if rule.get("CidrIp") == "255.255.255.255/32" and rule["IpProtocol"] == "icmp":
            continue  # CDK's "Disallow all traffic" placeholder of a group without egress (the endpoints')
        https = rule["IpProtocol"] == "tcp" and rule["FromPort"] == rule["ToPort"] == 443
        glue_self = "GlueSecurityGroup" in json.dumps(rule.get("DestinationSecurityGroupId"))
        assert https or glue_self, rule
        assert rule.get("CidrIp") in (None, "0.0.0.0/0") and rule["IpProtocol"] != "-1", rule
    for rule in _rules(synth, "Ingress"):
        assert "CidrIp" not in rule and "SourceSecurityGroupId" in rule, rule  # from our groups only
        assert rule["FromPort"] == 443 or "GlueSecurityGroup" in json.dumps(rule["SourceSecurityGroupId"]), rule


def test_glue_jobs_use_a_network_connection_in_the_private_subnet(new_vpc, existing_vpc):
    for synth in (new_vpc, existing_vpc):
        [(_, _, connection)] = synth.resources("AWS::Glue::Connection")
        inp = connection["Properties"]["ConnectionInput"]
        assert inp["ConnectionType"] == "NETWORK"
        assert "GlueSecurityGroup" in json.dumps(inp["PhysicalConnectionRequirements"]["SecurityGroupIdList"])
        jobs = [r["Properties"] for _, _, r in synth.resources("AWS::Glue::Job")]
        assert len(jobs) == 2 and all(j["Connections"]["Connections"] for j in jobs)
    assert existing_vpc.resources("AWS::Glue::Connection")[0][2]["Properties"]["ConnectionInput"][
        "PhysicalConnectionRequirements"]["SubnetId"] == "subnet-0aaa1111"  # fmt: skip


def test_sagemaker_jobs_get_the_vpc_config_in_the_deployed_definition(new_vpc, dev):
    def sagemaker_tasks(synth):
        definition = synth.deployment.ml_pipeline.definition
        tasks = {}

        def visit(states):
            for name, state in states.items():
                if ":sagemaker:" in state.get("Resource", ""):
                    tasks[name] = state
                for branch in state.get("Branches", []):
                    visit(branch["States"])
        visit(json.loads(definition)["States"])
        return tasks

    tasks = sagemaker_tasks(new_vpc)
    training = [t for t in tasks.values() if "createTrainingJob" in t["Resource"]]
    assert len(training) == 5 and all(t["Parameters"]["VpcConfig"]["Subnets"] for t in training)  # + supervised
    [processing] = [t for t in tasks.values() if "createProcessingJob" in t["Resource"]]
    assert processing["Parameters"]["NetworkConfig"]["VpcConfig"]["SecurityGroupIds"]
    [model] = [t for t in tasks.values() if t["Resource"].endswith("sagemaker:createModel")]
    assert model["Parameters"]["VpcConfig"]["Subnets"]  # Batch Transform runs the model's containers in it
    assert not [t for t in sagemaker_tasks(dev).values() if "VpcConfig" in json.dumps(t)]


def test_an_existing_vpc_creates_no_vpc_and_no_endpoint(existing_vpc):
    net = [r["Type"] for r in existing_vpc.templates["network"]["Resources"].values()]
    assert "AWS::EC2::VPC" not in net and "AWS::EC2::VPCEndpoint" not in net
    groups = [r["Properties"] for r in existing_vpc.templates["network"]["Resources"].values()
              if r["Type"] == "AWS::EC2::SecurityGroup"]  # fmt: skip
    assert len(groups) == 4 and all(g["VpcId"] == EXISTING["vpc"] for g in groups)  # scorer, doors, Glue, SageMaker
    assert scorer(existing_vpc)["VpcConfig"]["SubnetIds"] == EXISTING["vpc_subnets"].split(",")


def test_pinned_base_images_reach_the_image_builds(existing_vpc, dev):
    def build_args(synth, stack: str) -> dict:
        [image] = json.loads((synth.outdir / f"{stack}.assets.json").read_text())["dockerImages"].values()
        return image["source"].get("dockerBuildArgs", {})

    assert build_args(existing_vpc, "ingestion") == {"BASE_IMAGE": BASE_IMAGES["scorer_base_image"]}
    assert build_args(existing_vpc, "ml-pipeline") == {"BASE_IMAGE": BASE_IMAGES["sagemaker_base_image"]}
    assert build_args(dev, "ingestion") == {} and build_args(dev, "ml-pipeline") == {}  # the Dockerfiles' tags
    with pytest.raises(ValueError, match="pin the base by digest"):
        load_config("dev", {"scorer_base_image": "public.ecr.aws/lambda/provided:al2023"})


def test_vpc_context_errors_are_clear():
    with pytest.raises(ValueError, match="use -c vpc=new or an existing VPC id"):
        load_config("dev", {"vpc": "default"})
    with pytest.raises(ValueError, match="needs its private subnets and their zones"):
        load_config("dev", {"vpc": EXISTING["vpc"]})
    with pytest.raises(ValueError, match="same order, same count"):
        load_config("dev", {**EXISTING, "vpc_azs": "eu-west-1a"})


def test_without_source_db_a_vpc_layout_has_no_database_path(new_vpc):
    """prod + vpc=new alone: no JDBC connection, no ingest group or Secrets Manager endpoint, no secret read."""
    everything = json.dumps(new_vpc.templates)
    assert "secretsmanager" not in everything and "SourceDb" not in everything and "--source_" not in everything
    connections = new_vpc.resources("AWS::Glue::Connection")
    assert [r["Properties"]["ConnectionInput"]["ConnectionType"] for _, _, r in connections] == ["NETWORK"]
