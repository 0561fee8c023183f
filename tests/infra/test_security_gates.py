"""The security gates: cdk-nag (AwsSolutions, PCI DSS 3.2.1), cfn-lint, CMK everywhere, no wildcard actions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NAG_PACKS = {"AwsSolutions", "PCI.DSS.321"}


def test_synth_passes_every_validation_plugin(synth):
    failures = {r["pluginName"]: [(v["ruleName"], [c["constructPath"] for c in v["violatingConstructs"]])
                                  for v in r["violations"]]
                for r in synth.report["pluginReports"] if r["violations"]}  # fmt: skip
    assert synth.error is None and not failures, f"unacknowledged findings: {json.dumps(failures, indent=1)}"


def test_both_nag_packs_ran(synth):
    # a pack appears in the report once it has a finding (here: an acknowledged one) to report
    ran = {r["pluginName"] for r in synth.report["pluginReports"]}
    assert ran >= NAG_PACKS


def acknowledgements(synth) -> dict[str, dict[str, str]]:
    """Construct path -> {rule id: reason} of every acknowledgement, from the cloud assembly metadata."""
    found: dict[str, dict[str, str]] = {}
    for path in synth.outdir.glob("*.metadata.json"):
        for construct, entries in json.loads(path.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    found.setdefault(construct, {}).update(entry["data"])
    return found


def test_every_acknowledgement_has_a_reason(synth):
    acks = acknowledgements(synth)
    assert acks, "the deployment acknowledges findings; none found in the assembly metadata"
    for construct, rules in acks.items():
        for rule, reason in rules.items():
            assert len(reason.split()) >= 6, f"{construct} {rule}: reason too short: {reason!r}"


def test_cfn_lint_is_clean_on_every_template(synth):
    paths = sorted(str(p) for p in synth.outdir.glob("*.template.json"))
    assert len(paths) == 8
    run = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), *paths],  # noqa: S603 - our own venv tool
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


# --- the template walker ------------------------------------------------------------------------


def uses_cmk(value) -> bool:
    """True when ``value`` refers to the project's key (GetAtt in its stack, an import elsewhere)."""
    text = json.dumps(value)
    return "DataKey" in text


ENCRYPTION = {  # resource type -> where its key lives
    "AWS::SQS::Queue": lambda p: p.get("KmsMasterKeyId"),
    "AWS::SNS::Topic": lambda p: p.get("KmsMasterKeyId"),
    "AWS::Kinesis::Stream": lambda p: p.get("StreamEncryption", {}).get("KeyId"),
    "AWS::DynamoDB::Table": lambda p: p.get("SSESpecification", {}).get("KMSMasterKeyId"),
    "AWS::Logs::LogGroup": lambda p: p.get("KmsKeyId"),
    "AWS::KinesisFirehose::DeliveryStream": lambda p: [
        p["DeliveryStreamEncryptionConfigurationInput"]["KeyARN"],
        p["ExtendedS3DestinationConfiguration"]["EncryptionConfiguration"]["KMSEncryptionConfig"]["AWSKMSKeyARN"]],
    "AWS::Glue::SecurityConfiguration": lambda p: [
        p["EncryptionConfiguration"]["S3Encryptions"][0]["KmsKeyArn"],
        p["EncryptionConfiguration"]["CloudWatchEncryption"]["KmsKeyArn"],
        p["EncryptionConfiguration"]["JobBookmarksEncryption"]["KmsKeyArn"]],
    "AWS::Athena::WorkGroup": lambda p: p["WorkGroupConfiguration"]["ResultConfiguration"]["EncryptionConfiguration"]
    .get("KmsKey"),
}  # fmt: skip


@pytest.mark.parametrize("cfn_type", sorted(ENCRYPTION))
def test_every_store_uses_the_cmk(synth, cfn_type):
    found = synth.resources(cfn_type)
    assert found, f"no {cfn_type} in the deployment"
    for stack, lid, resource in found:
        keys = ENCRYPTION[cfn_type](resource["Properties"])
        for key in keys if isinstance(keys, list) else [keys]:
            assert key is not None and uses_cmk(key), f"{stack}/{lid} ({cfn_type}) is not encrypted with the CMK"


def test_data_buckets_use_the_cmk_and_only_the_log_target_does_not(synth):
    buckets = synth.resources("AWS::S3::Bucket")
    kms = [lid for _, lid, r in buckets
           if uses_cmk(r["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
                       ["ServerSideEncryptionByDefault"].get("KMSMasterKeyID"))]  # fmt: skip
    others = [lid for _, lid, _ in buckets if lid not in kms]
    # S3 server access log delivery supports only SSE-S3 targets: the one exception, holding no data
    assert len(kms) == 1 and kms[0].startswith("Data")
    assert len(others) == 1 and others[0].startswith("AccessLogs")


def test_glue_jobs_run_under_the_security_configuration(synth):
    jobs = synth.resources("AWS::Glue::Job")
    assert len(jobs) == 2
    assert all(r["Properties"]["SecurityConfiguration"] for _, _, r in jobs)


def test_sagemaker_outputs_are_encrypted_with_the_cmk(dev):
    # the ASL receives the key as ${KmsKeyArn}: SageMaker jobs' outputs and volumes use it
    assert dev.deployment.ml_pipeline.substitutions["KmsKeyArn"] == dev.deployment.security.key.key_arn
    definition = [r for _, _, r in dev.resources("AWS::StepFunctions::StateMachine")][0]["Properties"]
    assert uses_cmk(definition["DefinitionString"])


def policy_statements(synth):
    """Every IAM statement of the deployment: identity policies, managed policies, resource policies."""
    for stack, lid, r in synth.resources():
        p = r.get("Properties", {})
        docs = []
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs.append(p["PolicyDocument"])
        if r["Type"] == "AWS::IAM::Role":
            docs += [pol["PolicyDocument"] for pol in p.get("Policies", [])]
            docs.append(p["AssumeRolePolicyDocument"])
        if r["Type"] in ("AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
            docs.append(p["PolicyDocument"])
        if r["Type"] == "AWS::KMS::Key":
            docs.append(p["KeyPolicy"])
        for doc in docs:
            for statement in doc["Statement"]:
                yield f"{stack}/{lid}", statement


def test_no_statement_grants_a_wildcard_action(synth):
    seen = 0
    for where, statement in policy_statements(synth):
        seen += 1
        if statement.get("Effect") != "Allow":
            continue  # a Deny with s3:* (TLS-only bucket policies) forbids, it does not grant
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        assert "NotAction" not in statement, where
        wild = [a for a in actions if "*" in json.dumps(a)]
        assert not wild, f"{where} grants wildcard actions {wild}"
    assert seen > 40


def test_key_rotates_and_its_policy_names_the_services(dev):
    [(_, _, key)] = dev.resources("AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    principals = json.dumps([s["Principal"] for s in key["Properties"]["KeyPolicy"]["Statement"]])
    for service in ("logs.", "cloudwatch.amazonaws.com", "events.amazonaws.com"):
        assert service in principals


def test_buckets_block_public_access_and_require_tls(synth):
    for _, lid, r in synth.resources("AWS::S3::Bucket"):
        block = r["Properties"]["PublicAccessBlockConfiguration"]
        assert all(block[k] for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                      "RestrictPublicBuckets")), lid  # fmt: skip
    statements = [s for _, _, r in synth.resources("AWS::S3::BucketPolicy")
                  for s in r["Properties"]["PolicyDocument"]["Statement"]]  # fmt: skip
    tls = [
        s
        for s in statements
        if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert len(tls) == 2
