"""moto_sync fills only real gaps: each one-state machine fails in plain moto and runs with the fill.

If a moto upgrade makes one of these pass unpatched, drop that fill from moto_sync.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from tests.stepfunctions.moto_sync import patched_interpreter

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/sfn"
BUCKET = "moto-sync-gaps"


def _setup() -> None:
    command = {"Name": "glueetl", "ScriptLocation": f"s3://{BUCKET}/x.py"}
    boto3.client("glue", REGION).create_job(Name="job", Role=ROLE, Command=command)
    s3 = boto3.client("s3", REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key="doc.json", Body=b'{"ok": true}')


TASKS = {
    "glue .sync": {"Resource": "arn:aws:states:::glue:startJobRun.sync", "Parameters": {"JobName": "job"},
                   "ResultSelector": {"state.$": "$.JobRunState"}},
    "sagemaker .sync": {"Resource": "arn:aws:states:::sagemaker:createProcessingJob.sync", "Parameters": {
        "ProcessingJobName": "p1", "RoleArn": ROLE, "AppSpecification": {"ImageUri": "img"},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 1}}},
        "ResultSelector": {"state.$": "$.ProcessingJobStatus"}},
    "athena .sync": {"Resource": "arn:aws:states:::athena:startQueryExecution.sync",
                     "Parameters": {"QueryString": "SELECT 1", "WorkGroup": "primary"},
                     "ResultSelector": {"state.$": "$.QueryExecution.Status.State"}},
    "error names in PascalCase": {"Resource": "arn:aws:states:::aws-sdk:ssm:getParameter",
                                  "Parameters": {"Name": "/missing"},
                                  "Catch": [{"ErrorEquals": ["Ssm.ParameterNotFoundException"], "Next": "Caught"}]},
    "s3 body as text": {"Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                        "Parameters": {"Bucket": BUCKET, "Key": "doc.json"},
                        "ResultSelector": {"state.$": "States.StringToJson($.Body)"}},
}  # fmt: skip
EXPECTED = {"glue .sync": "SUCCEEDED", "sagemaker .sync": "Completed", "athena .sync": "SUCCEEDED",
            "s3 body as text": {"ok": True}, "error names in PascalCase": "caught"}  # fmt: skip
PLAIN_ERROR = {"error names in PascalCase": "ssm.ParameterNotFoundException"}  # others: States.Runtime


def _run(task: dict) -> dict:
    sfn = boto3.client("stepfunctions", REGION)
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", **task, "End": True},
                                             "Caught": {"Type": "Pass", "Result": {"state": "caught"}, "End": True}}}
    arn = sfn.create_state_machine(name="gap", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return described


@pytest.mark.parametrize("gap", sorted(TASKS))
def test_gap_is_real_and_filled(gap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():  # fmt: skip
        monkeypatch.setenv(var, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        _setup()
        plain = _run(TASKS[gap])
        assert (plain["status"], plain.get("error")) == ("FAILED", PLAIN_ERROR.get(gap, "States.Runtime"))
        boto3.client("stepfunctions", REGION).delete_state_machine(
            stateMachineArn=plain["stateMachineArn"])
        with patched_interpreter():
            filled = _run(TASKS[gap])
        assert filled["status"] == "SUCCEEDED", filled.get("cause")
        assert json.loads(filled["output"])["state"] == EXPECTED[gap]
