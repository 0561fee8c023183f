"""The event source mapping's on-failure destination, granted action by action.

CDK's ``SqsDlq`` grants ``kms:GenerateDataKey*`` / ``kms:ReEncrypt*`` for an encrypted queue; this
destination grants exactly what sending to the queue needs, in the role's managed policy.
"""

from __future__ import annotations

import jsii
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from infra.constructs.policy import ServiceRole, allow, allow_key


@jsii.implements(lambda_.IEventSourceDlq)
class ExplicitSqsDlq:
    """Send records the scorer finally gave up on to ``queue`` (encrypted with ``key``)."""

    def __init__(self, queue: sqs.IQueue, key: kms.IKey, role: ServiceRole) -> None:
        self.queue, self.key, self.role = queue, key, role

    def bind(self, target, target_handler) -> lambda_.DlqDestinationConfig:  # noqa: ARG002 - jsii interface
        allow(self.role, ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"], [self.queue.queue_arn])
        allow_key(self.role, self.key)
        return lambda_.DlqDestinationConfig(destination=self.queue.queue_arn)
