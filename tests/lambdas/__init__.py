"""Tests of the Lambda handlers, each invoked as Lambda invokes it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LambdaContext:
    """The fields of Lambda's context object that the handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    account: str = "111122223333"
    aws_request_id: str = "req-1"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-west-1:{self.account}:function:{self.function_name}"


def create_profiles_table(name: str = "finsentry-dev-profiles") -> str:
    """The scorer's state table in moto, as the ingestion stack declares it (key ``account_id``):
    the label doors write the stream's risk items there. Inside ``local_aws``."""
    import boto3

    from finsentry.local.aws import LOCAL_REGION

    boto3.client("dynamodb", region_name=LOCAL_REGION).create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "account_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "account_id", "AttributeType": "S"}])
    return name


def seed_alert_index(table: str, entries: dict[str, tuple[str, str]]) -> None:
    """What the scorer writes for its alerts: ``txn#<trans_id>`` -> (account, partner)."""
    import boto3

    from finsentry.local.aws import LOCAL_REGION
    from finsentry.stream.profiles import ProfileStore
    from finsentry.stream.risk import IndexEntry, encode_index

    store = ProfileStore(boto3.client("dynamodb", region_name=LOCAL_REGION), table)
    assert not store.put_plain([encode_index(IndexEntry(t, a, p), 2_000_000_000) for t, (a, p) in entries.items()])
