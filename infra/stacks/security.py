"""Security: the customer-managed KMS key every store uses, and the on-call topic.

The key policy names the services that must use the key on their own behalf (CloudWatch Logs
for the encrypted log groups, CloudWatch alarms and EventBridge publishing to the encrypted
on-call topic); every other use goes through IAM roles that the other stacks grant narrowly
(per resource, per action). No statement uses a wildcard action.

Two paths from a failure to on-call, each needing the topic policy AND the key policy:
CloudWatch alarms publish as ``cloudwatch.amazonaws.com``, EventBridge rules (the Glue-failure
rule) as ``events.amazonaws.com``. The topic policy narrows each to this account's alarms or
rules (``aws:SourceAccount`` / ``aws:SourceArn``, which both services send with ``sns:Publish``).
The key-policy statements carry no such condition: the KMS requests SNS makes for these
publishers do not carry ``aws:SourceAccount`` (EventBridge's troubleshooting guide, "My rule
runs, but I don't see any messages published into my Amazon SNS topic",
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-troubleshooting.html, and the SNS
guide's key policy for AWS event sources,
https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services,
give the statement without conditions); a condition on it would drop every notification
silently. ``tests/infra/test_access_matrix.py`` evaluates both paths with a policy simulator.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from finsentry.layout import PROJECT, RESOURCES
from infra.config import EnvConfig
from infra.stacks.base import FinsentryStack

KEY_ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey", "kms:DisableKey",
    "kms:EnableKey", "kms:EnableKeyRotation", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListAliases",
    "kms:ListGrants", "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:RevokeGrant", "kms:ScheduleKeyDeletion",
    "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
]  # fmt: skip
KEY_USE_ACTIONS = [
    "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:CreateGrant", "kms:ListGrants", "kms:RetireGrant",
]  # fmt: skip
PUBLISHER_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]
# the AWS services that publish to the encrypted on-call topic, and the ARN pattern of their sources
PUBLISHERS = {"cloudwatch.amazonaws.com": ("cloudwatch", "alarm"), "events.amazonaws.com": ("events", "rule/")}


def key_policy() -> iam.PolicyDocument:
    """Account administrators manage the key; account roles use it only as their IAM policies allow."""
    root = iam.AccountRootPrincipal()
    logs_arn = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(sid="KeyAdministration", principals=[root], actions=KEY_ADMIN_ACTIONS, resources=["*"]),
            iam.PolicyStatement(
                sid="UseThroughIamPolicies", principals=[root], actions=KEY_USE_ACTIONS, resources=["*"]
            ),
            iam.PolicyStatement(
                sid="CloudWatchLogsEncryptsLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=[
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:Encrypt",
                    "kms:GenerateDataKey",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                ],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": logs_arn}},
            ),
            iam.PolicyStatement(
                # no aws:SourceAccount / aws:SourceArn here: see the module docstring
                sid="AlarmsAndRulesPublishToEncryptedTopics",
                principals=[iam.ServicePrincipal(service) for service in PUBLISHERS],
                actions=PUBLISHER_ACTIONS,
                resources=["*"],
            ),
        ]
    )


def source_arn_pattern(service: str, kind: str, env: str) -> str:
    """``arn:<partition>:cloudwatch:<region>:<account>:alarm:finsentry-dev-*`` and the like."""
    sep = "" if kind.endswith("/") else ":"
    return f"arn:{Aws.PARTITION}:{service}:{Aws.REGION}:{Aws.ACCOUNT_ID}:{kind}{sep}{PROJECT}-{env}-*"


class SecurityStack(FinsentryStack):
    """The CMK (rotated yearly) and the on-call SNS topic (encrypted with it, TLS only)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig) -> None:
        super().__init__(scope, construct_id, config=config, description="finsentry: KMS key and on-call topic")
        self.key = kms.Key(
            self,
            "DataKey",
            alias=f"alias/{PROJECT}-{config.env}",
            description=f"{PROJECT} {config.env}: encrypts every data store, queue, topic, stream and log",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            policy=key_policy(),
            removal_policy=self.removal,
        )
        self.oncall_topic = sns.Topic(
            self,
            "OncallTopic",
            topic_name=self.name(RESOURCES.oncall_topic),
            display_name=f"{PROJECT} {config.env} on-call",
            master_key=self.key,
            enforce_ssl=True,
        )
        for service, (prefix, kind) in PUBLISHERS.items():
            self.oncall_topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"{prefix.title()}Of{PROJECT.title()}{config.env.title()}Publish",
                    principals=[iam.ServicePrincipal(service)],
                    actions=["sns:Publish"],
                    resources=[self.oncall_topic.topic_arn],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                        # this deployment's alarms / rules only (their names start finsentry-<env>-)
                        "ArnLike": {"aws:SourceArn": source_arn_pattern(prefix, kind, config.env)},
                    },
                )
            )
        if config.alarm_email:
            self.oncall_topic.add_subscription(subs.EmailSubscription(config.alarm_email))
