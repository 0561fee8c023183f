"""Least-privilege IAM written out action by action: no wildcard action anywhere.

Each role gets one customer-managed policy (PCI DSS: no inline policies) that the helpers below
fill. Resource patterns that must end in ``*`` (object keys under a prefix, tables of our Glue
database, log groups of one service) are acknowledged for cdk-nag right where the statement is
made, with the reason the wildcard is needed.
"""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from finsentry.layout import bucket_name
from infra.constructs.nag import acknowledge

KMS_READ = ["kms:Decrypt", "kms:DescribeKey"]
KMS_WRITE = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
S3_READ = ["s3:GetObject"]
S3_WRITE = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
S3_LIST = ["s3:ListBucket", "s3:GetBucketLocation"]
NAG_ACCOUNT, NAG_REGION, NAG_PARTITION = "<AWS::AccountId>", "<AWS::Region>", "<AWS::Partition>"


class ServiceRole(Construct):
    """An IAM role for one AWS service with one managed policy holding all its statements."""

    def __init__(self, scope: Construct, construct_id: str, *, service: str, description: str) -> None:
        super().__init__(scope, construct_id)
        self.policy = iam.ManagedPolicy(self, "Permissions", description=f"{description} (least privilege)")
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(service),
            description=description,
            managed_policies=[self.policy],
        )

    @property
    def role_arn(self) -> str:
        return self.role.role_arn

    def policies_first(self, user: Construct) -> None:
        """Make ``user`` (a function, a state machine) wait for this role's policies, and only them.

        CDK also lists the role itself in ``DependsOn``, which its ``GetAtt`` already enforces
        (cfn-lint W3005); the override keeps the dependencies that matter.
        """
        stack = Stack.of(self)
        ids = [stack.get_logical_id(self.policy.node.default_child)]
        default = self.role.node.try_find_child("DefaultPolicy")
        if default is not None:
            ids.append(stack.get_logical_id(default.node.default_child))
        user.node.default_child.add_override("DependsOn", ids)


def allow(target: ServiceRole, actions: list[str], resources: list[str], *, conditions: dict | None = None) -> None:
    """Add one statement to ``target``'s managed policy; refuses any action containing ``*``."""
    bad = [a for a in actions if "*" in a]
    if bad:
        raise ValueError(f"wildcard actions are not allowed: {bad}")
    target.policy.add_statements(iam.PolicyStatement(actions=actions, resources=resources, conditions=conditions))


def allow_key(target: ServiceRole, key: kms.IKey, *, write: bool = True) -> None:
    """Use of the CMK: decrypt (read) and, when ``write``, encrypt / generate data keys."""
    allow(target, KMS_WRITE if write else KMS_READ, [key.key_arn])


class DataBucketRef:
    """The data bucket addressed by its deterministic name (``finsentry.layout.bucket_name``)."""

    def __init__(self, env: str) -> None:
        self.env = env
        self.name = bucket_name(env, Aws.ACCOUNT_ID, Aws.REGION)
        self.arn = f"arn:{Aws.PARTITION}:s3:::{self.name}"

    def objects(self, prefix: str) -> str:
        return f"{self.arn}/{prefix}*"

    def nag_objects(self, prefix: str) -> str:
        """The same ARN as cdk-nag prints it in a finding id."""
        return f"arn:{NAG_PARTITION}:s3:::{bucket_name(self.env, NAG_ACCOUNT, NAG_REGION)}/{prefix}*"


def allow_prefixes(target: ServiceRole, bucket: DataBucketRef, *, read: list[str] = (), write: list[str] = ()) -> None:
    """Object access under given prefixes of the data bucket, and listing of the bucket."""
    if read:
        allow(target, S3_READ, [bucket.objects(p) for p in read])
    if write:
        allow(target, S3_WRITE, [bucket.objects(p) for p in write])
    allow(target, S3_LIST, [bucket.arn])
    for prefix in dict.fromkeys([*read, *write]):
        acknowledge(
            target.policy,
            f"AwsSolutions-IAM5[Resource::{bucket.nag_objects(prefix)}]",
            f"Object access is limited to the {prefix} prefix of the data bucket; keys below it are "
            "date partitions and run ids, not known in advance.",
        )


def arn(service: str, resource: str) -> str:
    """An ARN of this account and region."""
    return f"arn:{Aws.PARTITION}:{service}:{Aws.REGION}:{Aws.ACCOUNT_ID}:{resource}"


def nag_arn(service: str, resource: str) -> str:
    return f"arn:{NAG_PARTITION}:{service}:{NAG_REGION}:{NAG_ACCOUNT}:{resource}"


def allow_wildcard_resource(
    target: ServiceRole, actions: list[str], service: str, resource: str, reason: str, *, conditions: dict | None = None
) -> None:
    """A statement on a resource pattern ending in ``*`` of this account/region, acknowledged with ``reason``."""
    allow(target, actions, [arn(service, resource)], conditions=conditions)
    acknowledge(target.policy, f"AwsSolutions-IAM5[Resource::{nag_arn(service, resource)}]", reason)


def allow_glue_catalog(target: ServiceRole, actions: list[str], database: str, table: str = "*") -> None:
    """Catalog actions on one Glue database and its tables (``table`` ``*`` = every table of it)."""
    allow(target, actions, [arn("glue", "catalog"), arn("glue", f"database/{database}")])
    if table == "*":
        allow_wildcard_resource(
            target,
            actions,
            "glue",
            f"table/{database}/*",
            f"Tables of the {database} database only; the Glue jobs create and update them.",
        )
    else:
        allow(target, actions, [arn("glue", f"table/{database}/{table}")])


def allow_metrics(target: ServiceRole, namespaces: list[str]) -> None:
    """cloudwatch:PutMetricData has no resource ARN; restrict it to our namespaces instead."""
    allow(
        target, ["cloudwatch:PutMetricData"], ["*"], conditions={"StringEquals": {"cloudwatch:namespace": namespaces}}
    )
    acknowledge(
        target.policy,
        "AwsSolutions-IAM5[Resource::*]",
        "cloudwatch:PutMetricData (and ecr:GetAuthorizationToken) support no resource-level permission; "
        "metric writes are restricted to our namespaces by condition.",
    )


def allow_logs(target: ServiceRole, log_group_prefix: str, actions: list[str]) -> None:
    """Log writes to the log groups named ``log_group_prefix...`` (the service creates the streams)."""
    allow_wildcard_resource(
        target,
        actions,
        "logs",
        f"log-group:{log_group_prefix}*",
        f"Log groups under {log_group_prefix} are created per job by the service; their names "
        "are not known in advance.",
    )


# what a service needs to place its workers' network interfaces in our subnets (Glue connection, SageMaker VpcConfig)
VPC_NETWORKING = {
    "glue": ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces",
             "ec2:DescribeVpcEndpoints", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups",
             "ec2:DescribeSubnets", "ec2:DescribeVpcAttribute", "ec2:CreateTags", "ec2:DeleteTags"],
    "sagemaker": ["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                  "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
                  "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                  "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"],
}  # fmt: skip


def allow_vpc_networking(target: ServiceRole, service: str) -> None:
    """The EC2 network-interface actions ``service`` takes in our subnets (no resource-level scoping)."""
    allow(target, VPC_NETWORKING[service], ["*"])
    acknowledge(
        target.policy,
        "AwsSolutions-IAM5[Resource::*]",
        "cloudwatch:PutMetricData (restricted to our namespaces by condition), ecr:GetAuthorizationToken and "
        "the EC2 network-interface actions a VPC workload's service takes support no resource-level permission.",
    )
