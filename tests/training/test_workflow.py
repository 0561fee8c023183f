"""``finsentry models | promote`` with the SageMaker SDK (sagemaker-core) on moto's SageMaker and SSM."""

from __future__ import annotations

import json

import boto3
import pytest

from finsentry.cli import main
from finsentry.deployment import resolve
from finsentry.training import workflow
from tests.moto_deployment import ENV, REGION, deploy, moto_account


def _register(subs: dict, detector: str, execution: str, threshold: float, recall: float) -> str:
    """A version as the state machine's RegisterModel creates it, with its evaluation.json."""
    evaluation = f"s3://{subs['DataBucket']}/reports/evaluation/{execution}/evaluation.json"
    document = {"selection": {"best": detector, "promoted": True, "table": [
        {"name": detector, "role": "candidate", "recall": recall, "auc_pr": recall / 2, "precision": 0.4,
         "alerts": 120, "threshold": threshold},
        {"name": "champion", "role": "champion", "recall": 0.1, "auc_pr": 0.05, "precision": 0.1, "alerts": 120,
         "threshold": 0.5}]}}  # fmt: skip
    boto3.client("s3", region_name=REGION).put_object(Bucket=subs["DataBucket"],
        Key=evaluation.split("/", 3)[3], Body=json.dumps(document).encode())  # fmt: skip
    return boto3.client("sagemaker", region_name=REGION).create_model_package(
        ModelPackageGroupName=subs["ModelPackageGroupName"], ModelApprovalStatus="Approved",
        ModelPackageDescription="promoted",
        InferenceSpecification={"Containers": [{"Image": subs["TrainingImageUri"],
                                                "ModelDataUrl": f"s3://{subs['DataBucket']}/models/{execution}.tar.gz"}],
                                "SupportedContentTypes": ["application/x-parquet"],
                                "SupportedResponseMIMETypes": ["application/jsonlines"]},
        CustomerMetadataProperties={"detector": detector, "execution": execution, "training_job": f"job-{execution}",
                                    "threshold": str(threshold), "evaluation": evaluation},
    )["ModelPackageArn"]  # fmt: skip


@pytest.fixture
def registry():
    """Three versions, as three promoting runs left them; the scorer serves the third."""
    with moto_account():
        subs = deploy()
        arns = [_register(subs, "isolation_forest", "run-1", 0.81, 0.42),
                _register(subs, "lof", "run-2", 0.77, 0.47),
                _register(subs, "ensemble", "run-3", 0.9, 0.55)]  # fmt: skip
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name=subs["ModelParameterName"], Type="String",
            Value=json.dumps({"model_uri": f"s3://{subs['DataBucket']}/models/run-3.tar.gz", "version": arns[2],
                              "threshold": 0.9}))  # fmt: skip
        yield subs, arns


def _pointer(subs: dict) -> dict:
    ssm = boto3.client("ssm", region_name=REGION)
    return json.loads(ssm.get_parameter(Name=subs["ModelParameterName"])["Parameter"]["Value"])


def test_versions_carry_figures_approval_and_which_one_is_served(registry):
    versions = workflow.list_versions(resolve(ENV, boto3.Session(region_name=REGION)))
    assert [(v.version, v.detector, v.approval, v.serving) for v in versions] == [
        (1, "isolation_forest", "Approved", False), (2, "lof", "Approved", False), (3, "ensemble", "Approved", True)]
    assert versions[1].figures == {"recall": 0.47, "auc_pr": 0.235, "precision": 0.4, "alerts": 120, "threshold": 0.77}
    assert versions[0].threshold == 0.81 and versions[0].model_uri.endswith("models/run-1.tar.gz")


def test_models_command_prints_the_registry(registry, capsys):
    assert main(["models", "--env", ENV]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "isolation_forest" in out and "<- scorer" in out and "0.470" in out


def test_promote_points_the_scorer_as_the_state_machine_does_and_approves(registry, capsys):
    subs, arns = registry
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.update_model_package(ModelPackageArn=arns[0], ModelApprovalStatus="Rejected")
    assert main(["promote", "--env", ENV, "1"]) == 0
    assert _pointer(subs) == {"model_uri": f"s3://{subs['DataBucket']}/models/run-1.tar.gz", "version": arns[0],
                              "threshold": 0.81}  # fmt: skip
    assert sm.describe_model_package(ModelPackageName=arns[0])["ModelApprovalStatus"] == "Approved"
    out = capsys.readouterr().out
    print(out)
    assert "serves version 1 (isolation_forest, threshold 0.81) instead of version 3" in out


def test_rollback_rejects_the_served_version_and_walks_back_the_approved_ones(registry, capsys):
    subs, arns = registry
    sm = boto3.client("sagemaker", region_name=REGION)
    assert main(["promote", "--env", ENV, "--rollback"]) == 0
    assert _pointer(subs)["version"] == arns[1]
    assert sm.describe_model_package(ModelPackageName=arns[2])["ModelApprovalStatus"] == "Rejected"
    assert main(["promote", "--env", ENV, "--rollback"]) == 0
    assert _pointer(subs)["version"] == arns[0]
    out = capsys.readouterr().out
    print(out)
    assert "version 3 (ensemble) rejected" in out and "serves version 1" in out
    assert main(["promote", "--env", ENV, "--rollback"]) == 2
    assert "no approved version older than 1" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["promote", "--env", ENV, "9"], "no version 9 in finsentry-test-detectors (versions: 1, 2, 3)"),
    (["promote", "--env", ENV], "one of the arguments version --rollback is required"),
    (["promote", "--env", ENV, "0"], "must be a positive integer"),
])  # fmt: skip
def test_promote_bad_input_is_one_line(registry, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_rollback_without_a_served_registry_version_says_so(capsys):
    with moto_account():
        deploy()
        assert main(["promote", "--env", ENV, "--rollback"]) == 2
    assert "the scorer serves no version of the registry" in capsys.readouterr().err
