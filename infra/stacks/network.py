"""Network (``-c vpc=new`` or ``-c vpc=vpc-...``): private subnets for the scorer, the label doors, Glue, SageMaker.

``vpc=new`` creates a VPC with isolated subnets in two AZs (no internet gateway, no NAT: nothing
leaves except through VPC endpoints), flow logs to an encrypted log group, the default security
group closed, and the endpoints the three workloads call: S3 and DynamoDB (gateway), and
interface endpoints for SSM, SNS, SQS, KMS, Firehose, X-Ray, CloudWatch Logs and metrics, Glue,
STS and ECR (and Secrets Manager with ``-c source_db``). ``vpc=vpc-...`` uses an existing VPC's private subnets
(``-c vpc_subnets=subnet-a,subnet-b -c vpc_azs=eu-west-1a,eu-west-1b``) and creates no endpoint:
a bank's VPC has its own (two interface endpoints with private DNS for one service cannot share a
VPC); docs/operations.md lists the ones it needs.

Security groups, one per workload, least privilege: no ingress except Glue's self-reference
(Spark executors talk to each other, a Glue requirement); egress TCP 443 only (Glue: plus all
TCP to itself). In the isolated subnets 443 reaches nothing but the endpoints; the endpoints'
group admits 443 from the four workload groups only.

With ``-c source_db`` (a PostgreSQL source for the Glue ingest job) a fifth group, the ingest
job's: Glue's self-reference, HTTPS to the endpoints, and the database's port to the database
only (``-c source_db_security_group`` or ``-c source_db_cidr``); nothing else reaches the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import EnvConfig
from infra.constructs.logs import encrypted_log_group
from infra.constructs.nag import acknowledge
from infra.stacks.base import FinsentryStack

INTERFACE_ENDPOINTS = {  # construct id -> service, and who calls it
    "Ssm": ec2.InterfaceVpcEndpointAwsService.SSM,  # scorer: model pointer, mask key
    "Sns": ec2.InterfaceVpcEndpointAwsService.SNS,  # scorer: alerts
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,  # scorer: quarantine
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,  # all: the CMK
    "Firehose": ec2.InterfaceVpcEndpointAwsService.KINESIS_FIREHOSE,  # scorer: scored rows
    "Xray": ec2.InterfaceVpcEndpointAwsService.XRAY,  # scorer: active tracing
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,  # Glue continuous logs, SageMaker logs
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,  # Glue / SageMaker metrics
    "Glue": ec2.InterfaceVpcEndpointAwsService.GLUE,  # Glue jobs: the Data Catalog
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,  # SDK credential refresh
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,  # SageMaker image
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
}
SOURCE_DB_ENDPOINTS = {  # -c source_db only
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,  # Glue ingest: the database's secret
}
GATEWAY_ENDPOINTS = {"S3": ec2.GatewayVpcEndpointAwsService.S3, "DynamoDb": ec2.GatewayVpcEndpointAwsService.DYNAMODB}
HTTPS = ec2.Port.tcp(443)


@dataclass(frozen=True)
class Network:
    """What a workload needs to run in the private subnets."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    subnet_ids: list[str]
    availability_zones: list[str]
    scorer: ec2.ISecurityGroup
    glue: ec2.ISecurityGroup
    sagemaker: ec2.ISecurityGroup
    label_doors: ec2.ISecurityGroup  # the two label-door functions (infra/stacks/feedback.py)
    source_db: ec2.ISecurityGroup | None = None  # -c source_db: the Glue ingest job's group (reaches the database)


class NetworkStack(FinsentryStack):
    """The VPC (created or imported), the workloads' security groups and, for a new VPC, its endpoints."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvConfig, key: kms.IKey) -> None:
        super().__init__(scope, construct_id, config=config, description="finsentry: private network")
        if config.vpc == "new":
            vpc = self._new_vpc(key)
            subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
            selected = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
            subnet_ids, azs = selected.subnet_ids, selected.availability_zones
        else:
            subnet_ids, azs = config.vpc_subnets.split(","), config.vpc_azs.split(",")
            vpc = ec2.Vpc.from_vpc_attributes(
                self, "Vpc", vpc_id=config.vpc, availability_zones=azs, private_subnet_ids=subnet_ids
            )
            subnets = ec2.SubnetSelection(subnets=vpc.private_subnets)
        self.network = Network(
            vpc=vpc,
            subnets=subnets,
            subnet_ids=subnet_ids,
            availability_zones=azs,
            scorer=self._group("ScorerSecurityGroup", vpc, "finsentry stream scorer: HTTPS to AWS endpoints only"),
            glue=self._group("GlueSecurityGroup", vpc, "finsentry Glue jobs: HTTPS to endpoints, Spark within itself"),
            sagemaker=self._group("SageMakerSecurityGroup", vpc, "finsentry SageMaker jobs: HTTPS to endpoints only"),
            label_doors=self._group("LabelDoorsSecurityGroup", vpc, "finsentry label doors: HTTPS to endpoints only"),
            source_db=self._source_db_group(vpc) if config.source_db else None,
        )
        for glue in filter(None, (self.network.glue, self.network.source_db)):
            glue.add_ingress_rule(glue, ec2.Port.all_tcp(), "Glue: Spark driver and executors talk to each other")
            glue.add_egress_rule(glue, ec2.Port.all_tcp(), "Glue: Spark driver and executors talk to each other")
        if config.vpc == "new":
            self._endpoints(vpc)

    def _new_vpc(self, key: kms.IKey) -> ec2.Vpc:
        flow_logs = encrypted_log_group(
            self,
            "FlowLogs",
            name=f"/finsentry/{self.config.env}/vpc-flow-logs",
            key=key,
            days=self.config.log_retention_days,
            removal=self.removal,
        )
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(self.config.vpc_cidr),
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22)
            ],
            restrict_default_security_group=True,
            flow_logs={"all": ec2.FlowLogOptions(destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))},
        )
        acknowledge(
            vpc.node.find_child("all"),
            "PCI.DSS.321-IAMNoInlinePolicy",
            "CDK writes the flow-log delivery role's one statement (log streams of the flow-log group) as an "
            "inline policy.",
        )
        return vpc

    def _group(self, construct_id: str, vpc: ec2.IVpc, description: str) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(self, construct_id, vpc=vpc, description=description, allow_all_outbound=False)
        # isolated subnets route 443 nowhere but to the VPC endpoints (gateway and interface)
        group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to the AWS service endpoints")
        return group

    def _source_db_group(self, vpc: ec2.IVpc) -> ec2.SecurityGroup:
        """The Glue ingest job's group: HTTPS to the endpoints and the database's port to the database, no more."""
        config = self.config
        group = self._group(
            "SourceDbSecurityGroup", vpc, "finsentry Glue ingest: the source database port, HTTPS to endpoints"
        )
        if config.source_db_security_group:
            database = ec2.Peer.security_group_id(config.source_db_security_group)
        else:
            database = ec2.Peer.ipv4(config.source_db_cidr)
        group.add_egress_rule(database, ec2.Port.tcp(config.source_db_port), "the source database (PostgreSQL)")
        CfnOutput(
            self,
            "SourceDbClientSecurityGroup",
            value=group.security_group_id,
            description="Admit this group on the database's port in the database's security group",
        )
        return group

    def _endpoints(self, vpc: ec2.Vpc) -> None:
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        for construct_id, service in GATEWAY_ENDPOINTS.items():
            vpc.add_gateway_endpoint(construct_id, service=service, subnets=[private])
        endpoints = ec2.SecurityGroup(
            self, "EndpointSecurityGroup", vpc=vpc, description="finsentry VPC endpoints", allow_all_outbound=False
        )
        groups = (self.network.scorer, self.network.glue, self.network.sagemaker, self.network.label_doors,
                  self.network.source_db)  # fmt: skip
        for group in filter(None, groups):
            endpoints.add_ingress_rule(group, HTTPS, "HTTPS from a finsentry workload")
        acknowledge(
            endpoints,
            "AwsSolutions-EC23",
            f"The endpoints' group admits HTTPS only from the {'five' if self.network.source_db else 'four'} "
            "finsentry workload groups, no CIDR range.",
        )
        interface = {**INTERFACE_ENDPOINTS, **(SOURCE_DB_ENDPOINTS if self.config.source_db else {})}
        for construct_id, service in interface.items():
            vpc.add_interface_endpoint(
                construct_id,
                service=service,
                private_dns_enabled=True,
                security_groups=[endpoints],
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
                open=False,
            )
