"""Storage: the data bucket (prefixes from ``finsentry.layout.PREFIXES``) and its access-log bucket.

One bucket with prefixes rather than a bucket per prefix: the pipeline, the local run and the
Glue/Athena tables all address ``s3://<data>/<prefix>``; lifecycle rules differ per prefix.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from finsentry.layout import PREFIXES, bucket_name
from infra.config import EnvConfig
from infra.constructs.secure_bucket import access_log_bucket, data_bucket
from infra.stacks.base import FinsentryStack

COOL_AFTER_DAYS = 90  # scored/ and curated/features/ move to Standard-IA (finsentry.cost prices it)


def lifecycle_rules(config: EnvConfig) -> list[s3.LifecycleRule]:
    """Retention per prefix: raw cools down then expires, quarantine and query results expire."""
    return [
        s3.LifecycleRule(
            id="raw-cool-then-expire",
            prefix=PREFIXES.raw,
            transitions=[
                s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=Duration.days(30)),
                s3.Transition(
                    storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transition_after=Duration.days(90)
                ),
            ],
            expiration=Duration.days(config.raw_retention_days),
        ),
        s3.LifecycleRule(
            id="quarantine-expire",
            prefix=PREFIXES.quarantine,
            expiration=Duration.days(config.quarantine_retention_days),
        ),
        s3.LifecycleRule(
            id="athena-results-expire",
            prefix=PREFIXES.athena_results,
            expiration=Duration.days(config.athena_results_retention_days),
        ),
        s3.LifecycleRule(
            id="scored-cool",
            prefix=PREFIXES.scored,
            transitions=[
                s3.Transition(
                    storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=Duration.days(COOL_AFTER_DAYS)
                )
            ],
        ),
        # the curated features (5x the scored rows' bytes, bench.lake): training reads the recent
        # weeks; older days are read again only by a backfill
        s3.LifecycleRule(
            id="curated-features-cool",
            prefix=PREFIXES.curated,
            transitions=[
                s3.Transition(
                    storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=Duration.days(COOL_AFTER_DAYS)
                )
            ],
        ),
        s3.LifecycleRule(
            id="old-versions-and-uploads",
            noncurrent_version_expiration=Duration.days(config.noncurrent_version_days),
            abort_incomplete_multipart_upload_after=Duration.days(7),
        ),
    ]


class StorageStack(FinsentryStack):
    """The data bucket every runtime shares, encrypted with the CMK."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, key: kms.IKey) -> None:
        super().__init__(scope, construct_id, config=config, description="finsentry: data bucket and access logs")
        self.access_logs = access_log_bucket(
            self, "AccessLogs", removal=self.removal, retention_days=max(config.log_retention_days, 90)
        )
        self.data = data_bucket(
            self,
            "Data",
            bucket_name=bucket_name(config.env, Aws.ACCOUNT_ID, Aws.REGION),
            key=key,
            access_logs=self.access_logs,
            lifecycle_rules=lifecycle_rules(config),
            removal=self.removal,
        )
