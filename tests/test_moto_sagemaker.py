"""The guard of ``tests/moto_sagemaker.py``: the gap it fills is real, and the fill keeps AWS's contract."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tests.moto_sagemaker import registry_metadata_kept

REGION = "eu-west-1"


@pytest.fixture
def package(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        sm = boto3.client("sagemaker", region_name=REGION)
        sm.create_model_package_group(ModelPackageGroupName="g")
        arn = sm.create_model_package(
            ModelPackageGroupName="g", ModelApprovalStatus="Approved",
            InferenceSpecification={"Containers": [{"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"}],
                                    "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
            CustomerMetadataProperties={"detector": "lof", "threshold": "0.7"})["ModelPackageArn"]  # fmt: skip
        yield sm, arn


def _metadata(sm, arn) -> dict:
    return sm.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties") or {}


def test_gap_moto_drops_the_metadata_on_an_approval_update(package):
    """If this fails, moto keeps the metadata now: drop the fill."""
    sm, arn = package
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    assert _metadata(sm, arn) == {}


def test_filled_update_keeps_adds_and_removes_keys_as_aws_does(package):
    sm, arn = package
    with registry_metadata_kept():
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
        assert _metadata(sm, arn) == {"detector": "lof", "threshold": "0.7"}
        sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"note": "x"},
                                CustomerMetadataPropertiesToRemove=["threshold"])  # fmt: skip
        assert _metadata(sm, arn) == {"detector": "lof", "note": "x"}
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Rejected"


def test_gap_moto_has_no_iam_policy_simulator(package):
    """The SageMaker SDK validates a role with it; if this fails, drop SAGEMAKER_VALIDATE_ROLE=false
    from tests/moto_deployment.py."""
    with pytest.raises(NotImplementedError, match="simulate_principal_policy"):
        boto3.client("iam", region_name=REGION).simulate_principal_policy(
            PolicySourceArn="arn:aws:iam::123456789012:role/r", ActionNames=["s3:PutObject"])  # fmt: skip


def test_gap_moto_jobs_run_nothing(package):
    """A completed training job has no model in S3 in moto; ``jobs_run_in_process`` puts it there."""
    sm, _ = package
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="out", CreateBucketConfiguration={"LocationConstraint": REGION})  # fmt: skip
    sm.create_training_job(
        TrainingJobName="j", RoleArn="arn:aws:iam::123456789012:role/r",
        AlgorithmSpecification={"TrainingImage": "i", "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://out/models/"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 60})  # fmt: skip
    assert sm.describe_training_job(TrainingJobName="j")["TrainingJobStatus"] == "Completed"
    assert "Contents" not in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket="out")
