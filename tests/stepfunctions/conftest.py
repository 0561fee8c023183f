"""A moto account with everything the training state machine touches, and a way to run it.

The definition is ``stepfunctions/training_pipeline.asl.json`` loaded by ``load_definition``
with test values for the placeholders; ``moto_sync.patched_interpreter`` fills the three gaps
of moto's interpreter (see there). Notifications are read back through an SQS queue subscribed
to the topic, as a mail subscriber would get them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from finsentry.layout import RESOURCES, bucket_name, glue_database_name, model_parameter_name, resource_name
from finsentry.pipeline_definition import evaluation_key, load_definition
from tests.stepfunctions.moto_sync import patched_interpreter

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
ENV = "test"


def substitutions() -> dict[str, str]:
    """Test values for every placeholder, named as the CDK app names the real resources."""
    name = lambda what: resource_name(ENV, what)  # noqa: E731
    return {
        "DataBucket": bucket_name(ENV, ACCOUNT, REGION),
        "GlueIngestJobName": name(RESOURCES.ingest_job),
        "GlueFeaturesJobName": name(RESOURCES.features_job),
        "GlueDatabase": glue_database_name("test"),
        "SageMakerRoleArn": f"arn:aws:iam::{ACCOUNT}:role/{name('sagemaker')}",
        "TrainingImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/finsentry-sagemaker:test",
        "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000",
        "ModelPackageGroupName": name(RESOURCES.model_package_group),
        "ModelParameterName": model_parameter_name(ENV),
        "NotifyTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name(RESOURCES.oncall_topic)}",
        "AthenaWorkgroup": name(RESOURCES.athena_workgroup),
    }


@dataclass
class Run:
    """One finished execution: its description, its history and what it published."""

    status: str
    output: dict | None
    error: str | None
    cause: str | None
    events: list[dict]
    messages: list[dict] = field(default_factory=list)  # {"Subject", "Message"} per SNS publish

    def requests(self, resource: str) -> list[dict]:
        """The parameters the state machine sent to one Task resource (e.g. "createProcessingJob.sync"),
        from the history's TaskScheduled events: what moto's backends do not keep (e.g. Environment)."""
        return [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in self.events
                if e.get("taskScheduledEventDetails", {}).get("resource") == resource]  # fmt: skip

    def entered(self) -> list[str]:
        """Names of the states entered, in order (Parallel branches included)."""
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if "stateEnteredEventDetails" in e]


class Pipeline:
    """The deployed state machine in a moto account; ``run`` executes it to the end."""

    def __init__(self) -> None:
        self.subs = substitutions()
        self.s3 = boto3.client("s3", region_name=REGION)
        self.ssm = boto3.client("ssm", region_name=REGION)
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)
        self.athena = boto3.client("athena", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        glue = boto3.client("glue", region_name=REGION)
        self.s3.create_bucket(Bucket=self.subs["DataBucket"], CreateBucketConfiguration={"LocationConstraint": REGION})
        for job in (self.subs["GlueIngestJobName"], self.subs["GlueFeaturesJobName"]):
            script = f"s3://{self.subs['DataBucket']}/glue_jobs/{job}.py"
            glue.create_job(Name=job, Role=self.subs["SageMakerRoleArn"],
                            Command={"Name": "glueetl", "ScriptLocation": script})  # fmt: skip
        glue.create_database(DatabaseInput={"Name": self.subs["GlueDatabase"]})
        self.athena.create_work_group(Name=self.subs["AthenaWorkgroup"])
        self.sagemaker.create_model_package_group(ModelPackageGroupName=self.subs["ModelPackageGroupName"])
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name=self.subs["NotifyTopicArn"].rsplit(":", 1)[1])["TopicArn"]
        assert topic == self.subs["NotifyTopicArn"]
        self.queue = self.sqs.create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        self.arn = self.sfn.create_state_machine(
            name=resource_name(ENV, RESOURCES.training_pipeline),
            definition=load_definition(self.subs),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/{resource_name(ENV, 'sfn')}",
        )["stateMachineArn"]

    def put_evaluation(self, execution_name: str, document: dict) -> None:
        """What the evaluation processing job uploads for this execution (moto runs no container)."""
        self.s3.put_object(Bucket=self.subs["DataBucket"], Key=evaluation_key(execution_name),
                           Body=json.dumps(document).encode())  # fmt: skip

    def set_champion(self, value: dict) -> None:
        self.ssm.put_parameter(Name=self.subs["ModelParameterName"], Type="String", Value=json.dumps(value))

    def champion(self) -> dict | None:
        try:
            raw = self.ssm.get_parameter(Name=self.subs["ModelParameterName"])["Parameter"]["Value"]
        except self.ssm.exceptions.ParameterNotFound:
            return None
        return json.loads(raw)

    def run(self, execution_name: str, overrides: dict | None = None, timeout: float = 60.0) -> Run:
        arn = self.sfn.start_execution(stateMachineArn=self.arn, name=execution_name,
                                       input=json.dumps(overrides or {}))["executionArn"]  # fmt: skip
        deadline = time.monotonic() + timeout
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_name} still running after {timeout} s")
            time.sleep(0.05)
        events: list[dict] = []
        kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events += page["events"]
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        output = described.get("output")
        return Run(
            status=described["status"],
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
            events=events,
            messages=self._drain_notifications(),
        )

    def _drain_notifications(self) -> list[dict]:
        out = []
        while msgs := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages"):
            for m in msgs:
                body = json.loads(m["Body"])
                out.append({"Subject": body.get("Subject"), "Message": body["Message"]})
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
        return out


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():  # fmt: skip
        monkeypatch.setenv(var, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), patched_interpreter():
        yield Pipeline()
