"""``-c source_db=<secret ARN>``: the Glue ingest job reads the bank's PostgreSQL through a JDBC
connection in the deployment's VPC, with the secret readable by the Glue role alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finsentry.local.postgres import bank_mapping
from infra.config import load_config
from tests.infra.conftest import ONCALL
from tests.infra.test_access_matrix import Matrix, check_matrix
from tests.infra.test_network import EXISTING, _rules, _synth, _violations

DB_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:finsentry/bank-db-AbC123"  # noqa: S105 - an ARN, not a password
KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DB_GROUP = "sg-0db00001111222233"
CIDR = "10.20.8.0/24"
IN_VPC = {"source_db": DB_SECRET_ARN, "vpc": "new"}


@pytest.fixture(scope="module")
def mapping_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("mapping") / "bank.mapping.yaml"
    path.write_text(yaml.safe_dump(bank_mapping("bank.transactions")))
    return str(path)


@pytest.fixture(scope="module")
def with_db(tmp_path_factory, mapping_file):
    """prod in a new VPC reaching the database by its address range, the secret under its own CMK."""
    context = {"env": "prod", "alarm_email": ONCALL, "vpc": "new", "source_db": DB_SECRET_ARN, "source_db_key": KEY,
               "source_db_cidr": CIDR, "source_db_mapping": mapping_file}  # fmt: skip
    return _synth(tmp_path_factory, "db-new", context)


@pytest.fixture(scope="module")
def existing_db(tmp_path_factory, mapping_file):
    """dev in the bank's VPC, reaching the database's security group on a non-default port."""
    context = {"env": "dev", **EXISTING, "source_db": DB_SECRET_ARN, "source_db_security_group": DB_GROUP,
               "source_db_port": "6432", "source_db_mapping": mapping_file}  # fmt: skip
    return _synth(tmp_path_factory, "db-existing", context)


LAYOUTS = ["with_db", "existing_db"]


def _jobs(synth) -> dict[str, dict]:
    return {lid[: lid.index("Job")]: r["Properties"] for _, lid, r in synth.resources("AWS::Glue::Job")}


def _connections(synth) -> dict[str, dict]:
    return {lid: r["Properties"]["ConnectionInput"] for _, lid, r in synth.resources("AWS::Glue::Connection")}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_both_layouts_synthesize_nag_and_lint_clean(layout, request):
    synth = request.getfixturevalue(layout)
    assert synth.error is None and not _violations(synth), _violations(synth)
    paths = sorted(str(p) for p in synth.outdir.glob("*.template.json"))
    assert len(paths) == len(synth.deployment.stacks) and "network" in synth.templates
    # findings of the VPC layouts with or without source_db: the zones of an existing VPC are the
    # deployer's (-c vpc_azs; acknowledged on both connections), W3005 is in CDK's restrict-default-SG provider
    ignore = ["--ignore-checks", "W3010", "W3005"]
    run = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), *paths, *ignore],  # noqa: S603 - our venv
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_ingest_job_reads_through_a_jdbc_connection_with_the_secret_arn_only(layout, request):
    synth = request.getfixturevalue(layout)
    connections = _connections(synth)
    [jdbc_id] = [lid for lid, c in connections.items() if c["ConnectionType"] == "JDBC"]
    [network_id] = [lid for lid, c in connections.items() if c["ConnectionType"] == "NETWORK"]
    jdbc = connections[jdbc_id]
    props = jdbc["ConnectionProperties"]
    assert props["SECRET_ID"] == DB_SECRET_ARN and props["JDBC_ENFORCE_SSL"] == "true"
    resolve = f"{{{{resolve:secretsmanager:{DB_SECRET_ARN}:SecretString:"
    assert props["JDBC_CONNECTION_URL"] == (f"jdbc:postgresql://{resolve}host}}}}:{resolve}port}}}}/"
                                            f"{resolve}dbname}}}}")  # fmt: skip
    physical = jdbc["PhysicalConnectionRequirements"]
    assert "SourceDbSecurityGroup" in json.dumps(physical["SecurityGroupIdList"])
    assert physical["SubnetId"] == connections[network_id]["PhysicalConnectionRequirements"]["SubnetId"]
    jobs = _jobs(synth)
    assert json.dumps(jobs["Ingest"]["Connections"]).count("Ref") == 1 and jdbc_id in json.dumps(jobs["Ingest"])
    assert network_id in json.dumps(jobs["Features"]["Connections"])
    args = jobs["Ingest"]["DefaultArguments"]
    assert args["--source_secret"] == DB_SECRET_ARN
    assert "--source_mapping" in args and not [k for k in jobs["Features"]["DefaultArguments"] if "source" in k]
    everything = json.dumps(synth.templates)
    assert "SecretString:password" not in everything and "SecretString:username" not in everything


def test_the_mapping_is_deployed_as_an_asset_the_glue_role_may_read(with_db, mapping_file):
    args = _jobs(with_db)["Ingest"]["DefaultArguments"]
    url = json.dumps(args["--source_mapping"])
    assert "s3://" in url and ".yaml" in url
    policies = json.dumps([r for _, lid, r in with_db.resources("AWS::IAM::ManagedPolicy") if "JobRole" in lid])
    asset_key = url.split("/")[-1].split('"')[0]
    assert asset_key in policies


def _statements(synth, action_prefix: str) -> list[tuple[str, dict]]:
    """(policy logical id, statement) of every identity or resource policy statement naming ``action_prefix``."""
    found = []
    for _, lid, resource in synth.resources():
        for statement in _policy_statements(resource):
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if any(a.startswith(action_prefix) or a == "*" for a in actions):
                found.append((lid, statement))
    return found


def _policy_statements(resource: dict) -> list[dict]:
    props = resource.get("Properties", {})
    documents = [props.get("PolicyDocument"), props.get("KeyPolicy"), props.get("AssumeRolePolicyDocument")]
    documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
    return [s for d in documents if d for s in d["Statement"]]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_only_the_glue_role_may_read_the_secret_and_its_key(layout, request):
    synth = request.getfixturevalue(layout)
    secrets = _statements(synth, "secretsmanager:")
    assert [(lid.startswith("JobRole"), s["Action"], s["Resource"]) for lid, s in secrets] == [
        (True, "secretsmanager:GetSecretValue", DB_SECRET_ARN)]  # fmt: skip
    keyed = [(lid, s) for lid, s in _statements(synth, "kms:") if KEY in json.dumps(s)]
    if layout == "with_db":
        [(lid, statement)] = keyed
        assert lid.startswith("JobRole") and statement["Action"] == "kms:Decrypt" and statement["Resource"] == KEY
        equals = statement["Condition"]["StringEquals"]
        assert equals["kms:EncryptionContext:SecretARN"] == DB_SECRET_ARN and "secretsmanager." in json.dumps(
            equals["kms:ViaService"])  # fmt: skip
    else:
        assert keyed == []  # no source_db_key: the secret is under the AWS managed key, no grant needed


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_ingest_group_reaches_the_database_port_and_nothing_else(layout, request):
    synth = request.getfixturevalue(layout)
    [(lid, group)] = [(lid, r) for _, lid, r in synth.resources("AWS::EC2::SecurityGroup") if "SourceDb" in lid]
    egress = [r for r in _rules(synth, "Egress") if lid in json.dumps(r.get("GroupId", "")) or r in
              group["Properties"].get("SecurityGroupEgress", [])]  # fmt: skip
    database = [r for r in egress if r["FromPort"] not in (0, 443)]
    if layout == "with_db":
        assert database == [{"CidrIp": CIDR, "Description": "the source database (PostgreSQL)", "FromPort": 5432,
                             "IpProtocol": "tcp", "ToPort": 5432}]  # fmt: skip
    else:
        [rule] = database
        assert rule["DestinationSecurityGroupId"] == DB_GROUP and rule["FromPort"] == rule["ToPort"] == 6432
    others = [r for r in egress if r not in database]
    assert all(
        (r["FromPort"] == r["ToPort"] == 443 and r.get("CidrIp") == "0.0.0.0/0")
        or (r["FromPort"] == 0 and lid in json.dumps(r["DestinationSecurityGroupId"]))
        for r in others
    ), others
    ingress = [r for r in _rules(synth, "Ingress") if lid in json.dumps(r.get("GroupId", ""))
               or r in group["Properties"].get("SecurityGroupIngress", [])]  # fmt: skip
    assert ingress and all(lid in json.dumps(r["SourceSecurityGroupId"]) for r in ingress)  # Glue's self-reference
    outputs = synth.templates["network"]["Outputs"]
    assert [k for k in outputs if k.startswith("SourceDbClientSecurityGroup")]  # for the database's ingress rule


def test_a_new_vpc_gets_a_secrets_manager_endpoint_open_to_the_ingest_group(with_db, existing_db):
    net = with_db.templates["network"]["Resources"]
    [endpoint] = [r["Properties"] for r in net.values() if r["Type"] == "AWS::EC2::VPCEndpoint"
                  and ".secretsmanager" in json.dumps(r["Properties"]["ServiceName"])]  # fmt: skip
    assert endpoint["PrivateDnsEnabled"]
    admitted = [r for r in _rules(with_db, "Ingress") if "EndpointSecurityGroup" in json.dumps(r.get("GroupId"))]
    assert any("SourceDbSecurityGroup" in json.dumps(r["SourceSecurityGroupId"]) for r in admitted)
    existing = existing_db.templates["network"]["Resources"].values()
    assert not [r for r in existing if r["Type"] == "AWS::EC2::VPCEndpoint"]  # the bank's VPC has its own


def test_without_source_db_nothing_of_it_exists(dev, synth):
    for deployment in (dev, synth):
        everything = json.dumps(deployment.templates)
        assert "secretsmanager" not in everything and "SourceDb" not in everything
        assert "--source_" not in everything and '"JDBC"' not in everything


def test_the_access_matrix_holds_with_the_source_database(with_db, simulator_ready, capsys):
    matrix = Matrix(with_db)
    what = {c.what for c in matrix.cases}
    assert "Glue <- the source database's secret" in what and "ScorerRole <- the database's secret" in what
    check_matrix(matrix, capsys)


@pytest.fixture(scope="module")
def simulator_ready():
    from tests.infra.test_access_matrix import ensure_simulator

    ensure_simulator()


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"source_db": DB_SECRET_ARN}, "source_db needs a VPC"),
        ({"source_db": DB_SECRET_ARN.removesuffix("-AbC123"), "vpc": "new"}, "full ARN"),
        (IN_VPC, "exactly one of"),
        ({**IN_VPC, "source_db_cidr": CIDR, "source_db_security_group": DB_GROUP}, "exactly one of"),
        ({**IN_VPC, "source_db_cidr": "10.20.8.1/24"}, "not an address range"),
        ({**IN_VPC, "source_db_security_group": "db-group"}, "not a security group"),
        ({**IN_VPC, "source_db_cidr": CIDR, "source_db_port": "70000"}, "not a TCP port"),
        ({**IN_VPC, "source_db_cidr": CIDR, "source_db_key": "alias/bank"}, "key ARN"),
        ({**IN_VPC, "source_db_cidr": CIDR}, "source_db_mapping="),
        ({**IN_VPC, "source_db_cidr": CIDR, "source_db_mapping": "/nonexistent/m.yaml"}, "no such mapping file"),
        ({"source_db_cidr": CIDR}, "without -c source_db"),
    ],
)
def test_incomplete_or_malformed_source_db_context_is_one_clear_error(context, message):
    with pytest.raises(ValueError, match=message):
        load_config("dev", context)


def test_a_mapping_without_a_database_section_is_refused(tmp_path):
    path = tmp_path / "files.mapping.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in bank_mapping().items() if k != "database"}))
    with pytest.raises(ValueError, match="names no table or query"):
        load_config("dev", {**IN_VPC, "source_db_cidr": CIDR,
                            "source_db_mapping": str(path)})  # fmt: skip
