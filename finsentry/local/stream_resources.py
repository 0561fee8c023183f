"""The scorer's AWS resources in moto (local run, tests, benchmark), named by ``finsentry.layout``.

``create_scorer_resources`` makes the profiles table, alerts topic (with an SQS subscription
so alerts can be read back), quarantine queue, Firehose stream into ``scored/`` of the data
bucket, the mask-key and model parameters, and returns the scorer's environment
(``SCORER_ENV`` variables) plus handles to read the outputs back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from finsentry.layout import PREFIXES, RESOURCES, SCORER_ENV, model_parameter_name, resource_name
from finsentry.local.aws import LOCAL_REGION

MASK_KEY = "local-demo-mask-key"  # noqa: S105 - the local run's stand-in for the SecureString


@dataclass
class ScorerResources:
    env: dict[str, str]  # the scorer's environment variables
    bucket: str
    alerts_inbox_url: str  # SQS queue subscribed to the alerts topic (raw delivery)

    def client(self, service: str):
        return boto3.client(service, region_name=LOCAL_REGION)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert message published so far (drains the inbox)."""
        sqs, out = self.client("sqs"), []
        while True:
            got = sqs.receive_message(QueueUrl=self.alerts_inbox_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            out.extend(json.loads(m["Body"]) for m in got)
            sqs.delete_message_batch(QueueUrl=self.alerts_inbox_url,
                                     Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                                              for n, m in enumerate(got)])  # fmt: skip

    def quarantined(self) -> list[dict[str, Any]]:
        """Every quarantine message so far (drains the queue)."""
        sqs, out = self.client("sqs"), []
        url = self.env[SCORER_ENV.quarantine_queue_url]
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            out.extend(json.loads(m["Body"]) for m in got)
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                                                            for n, m in enumerate(got)])  # fmt: skip

    def scored_rows(self) -> list[dict[str, Any]]:
        """Every scored line Firehose delivered to ``scored/`` (moto writes them as JSON lines)."""
        s3, rows = self.client("s3"), []
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=PREFIXES.scored)
        for page in pages:
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read().decode()
                rows.extend(json.loads(line) for line in body.splitlines() if line.strip())
        return rows

    def profile_items(self) -> list[dict[str, Any]]:
        pages = self.client("dynamodb").get_paginator("scan").paginate(TableName=self.env[SCORER_ENV.profiles_table])
        return [item for page in pages for item in page.get("Items", [])]


def create_scorer_resources(env: str = "local", bucket: str | None = None) -> ScorerResources:
    """Create the scorer's resources inside an active moto context; return its environment."""
    s3 = boto3.client("s3", region_name=LOCAL_REGION)
    if bucket is None:
        bucket = resource_name(env, "stream-data")
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": LOCAL_REGION})
    ddb = boto3.client("dynamodb", region_name=LOCAL_REGION)
    table = resource_name(env, RESOURCES.profiles_table)
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "account_id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "account_id", "AttributeType": "S"}])  # fmt: skip
    sqs = boto3.client("sqs", region_name=LOCAL_REGION)
    quarantine_url = sqs.create_queue(QueueName=resource_name(env, RESOURCES.quarantine_queue))["QueueUrl"]
    inbox_url = sqs.create_queue(QueueName=resource_name(env, "alerts-inbox"))["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns = boto3.client("sns", region_name=LOCAL_REGION)
    topic = sns.create_topic(Name=resource_name(env, RESOURCES.alerts_topic))["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
    firehose = boto3.client("firehose", region_name=LOCAL_REGION)
    stream = resource_name(env, RESOURCES.scored_firehose)
    firehose.create_delivery_stream(
        DeliveryStreamName=stream, DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::000000000000:role/firehose",
                                            "BucketARN": f"arn:aws:s3:::{bucket}", "Prefix": PREFIXES.scored,
                                            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}},
    )  # fmt: skip
    ssm = boto3.client("ssm", region_name=LOCAL_REGION)
    mask_param = f"/finsentry/{env}/mask-key"
    ssm.put_parameter(Name=mask_param, Value=MASK_KEY, Type="SecureString")
    return ScorerResources(
        env={
            SCORER_ENV.profiles_table: table,
            SCORER_ENV.quarantine_queue_url: quarantine_url,
            SCORER_ENV.alerts_topic_arn: topic,
            SCORER_ENV.scored_firehose: stream,
            SCORER_ENV.model_parameter: model_parameter_name(env),
            SCORER_ENV.mask_key_parameter: mask_param,
        },
        bucket=bucket,
        alerts_inbox_url=inbox_url,
    )


def point_model(model_uri: str, version: str, threshold: float, env: str = "local") -> None:
    """Write the SSM model pointer as the training pipeline does (overwrites)."""
    boto3.client("ssm", region_name=LOCAL_REGION).put_parameter(
        Name=model_parameter_name(env), Type="String", Overwrite=True,
        Value=json.dumps({"model_uri": model_uri, "version": version, "threshold": threshold}),
    )  # fmt: skip
