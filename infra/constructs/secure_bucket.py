"""S3 buckets as the house requires them: KMS, TLS only, no public access, access-logged, versioned."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.nag import acknowledge


def access_log_bucket(scope: Construct, construct_id: str, *, removal: RemovalPolicy, retention_days: int) -> s3.Bucket:
    """The target of S3 server access logs.

    S3 log delivery writes only to buckets encrypted with SSE-S3 (SSE-KMS targets are not
    supported by the service), so this one bucket uses S3-managed keys; it holds request logs,
    never transaction data.
    """
    bucket = s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        versioned=True,
        removal_policy=removal,
        auto_delete_objects=False,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-access-logs",
                expiration=Duration.days(retention_days),
                noncurrent_version_expiration=Duration.days(1),
            )
        ],
    )
    acknowledge(
        bucket,
        "PCI.DSS.321-S3DefaultEncryptionKMS",
        "S3 server access log delivery supports only SSE-S3 target buckets; it holds request logs, no card or "
        "transaction data.",
    )
    acknowledge(
        bucket,
        "PCI.DSS.321-S3BucketReplicationEnabled",
        "Access logs are kept for audit in this region only; cross-region replication is a deployment choice "
        "documented in docs/operations.md.",
    )
    return bucket


def data_bucket(
    scope: Construct,
    construct_id: str,
    *,
    bucket_name: str,
    key: kms.IKey,
    access_logs: s3.IBucket,
    lifecycle_rules: list[s3.LifecycleRule],
    removal: RemovalPolicy,
) -> s3.Bucket:
    """A bucket of transaction data: SSE-KMS with the CMK (bucket key on), versioned, TLS only."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        bucket_name=bucket_name,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=True,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=f"{construct_id.lower()}/",
        lifecycle_rules=lifecycle_rules,
        removal_policy=removal,
    )
    # object events to EventBridge (the S3 label door's rule matches feedback/incoming/), set on the
    # CloudFormation bucket itself: CDK's event_bridge_enabled adds a notifications custom resource
    bucket.node.default_child.add_property_override(
        "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
    )
    acknowledge(
        bucket,
        "PCI.DSS.321-S3BucketReplicationEnabled",
        "Versioned single-region bucket: raw inputs are re-deliverable by the bank and derived prefixes are "
        "rebuilt by the pipeline; cross-region replication is a deployment choice documented in docs/operations.md.",
    )
    return bucket
