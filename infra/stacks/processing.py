"""Processing: the Glue database, the ``scored`` table, the Glue 5.0 jobs and their security configuration.

The ``scored`` table is defined here (its columns are ``finsentry.scoring.SCORED_COLUMNS``, with
partition projection on ``dt``) because Firehose converts the scorer's rows to Parquet against it
and the Athena views read it. ``transactions`` and ``features`` are created and updated by the Glue
jobs themselves (their schema is owned by the ETL code, not by the deployment).

With ``-c source_db=<secret ARN>`` (and ``-c vpc``) the ingest job reads the bank's PostgreSQL
instead of ``raw/`` (``finsentry.etl.jdbc``): a Glue JDBC connection in the first private subnet
under the network stack's source-database security group (the job's only connection: its workers
get that group, which alone reaches the database's port), the mapping YAML as an asset, the
secret's ARN as ``--source_secret`` (never its value: the job reads it at run time), and
``secretsmanager:GetSecretValue`` on that one secret (plus ``kms:Decrypt`` through Secrets Manager
with ``-c source_db_key``) for the Glue role only. Without ``source_db`` nothing of it exists.

With ``-c source_mapping=<mapping YAML without database:>`` the ingest job reads the bank's own
CSV/Parquet files under ``raw/`` through it (``finsentry.etl.files``) instead of Czech files: the
mapping as an asset the Glue role may read, passed as ``--source_mapping``; nothing else changes.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from constructs import Construct

from finsentry.layout import PARTITION_KEY, PREFIXES, RESOURCES, SCORED_PARQUET_COMPRESSION, glue_database_name
from finsentry.monitoring import METRIC_NAMESPACE
from finsentry.scoring import SCORED_COLUMNS
from infra.config import EnvConfig
from infra.constructs.glue_wheels import glue_wheels_asset
from infra.constructs.library import library_asset
from infra.constructs.nag import acknowledge
from infra.constructs.policy import (
    DataBucketRef,
    ServiceRole,
    allow,
    allow_glue_catalog,
    allow_key,
    allow_logs,
    allow_metrics,
    allow_prefixes,
    allow_vpc_networking,
)
from infra.paths import GLUE_SCRIPTS, require
from infra.stacks.base import FinsentryStack
from infra.stacks.network import Network

GLUE_VERSION = "5.0"
GLUE_FAILED_STATES = ["FAILED", "TIMEOUT", "ERROR"]
GLUE_TEMP = "glue-temp/"  # Spark scratch space of the jobs in the data bucket
CURATED_ROOT = PREFIXES.curated.split("/")[0] + "/"  # curated/: features/ and transactions/ below it


def scored_table_input(database: str, bucket_name: str) -> glue.CfnTable.TableInputProperty:
    """Parquet table over ``scored/`` with ``dt`` partitions found by projection (no crawler, no MSCK)."""
    location = f"s3://{bucket_name}/{PREFIXES.scored}"
    return glue.CfnTable.TableInputProperty(
        name="scored",
        description="One row per scored transaction (finsentry.scoring.SCORED_COLUMNS), written by Firehose",
        table_type="EXTERNAL_TABLE",
        parameters={
            "classification": "parquet",
            "parquet.compression": SCORED_PARQUET_COMPRESSION,
            "projection.enabled": "true",
            f"projection.{PARTITION_KEY}.type": "date",
            f"projection.{PARTITION_KEY}.format": "yyyy-MM-dd",
            f"projection.{PARTITION_KEY}.range": "1990-01-01,NOW",
            f"projection.{PARTITION_KEY}.interval": "1",
            f"projection.{PARTITION_KEY}.interval.unit": "DAYS",
            "storage.location.template": f"{location}{PARTITION_KEY}=${{{PARTITION_KEY}}}/",
        },
        partition_keys=[glue.CfnTable.ColumnProperty(name=PARTITION_KEY, type="string")],
        storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
            columns=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in SCORED_COLUMNS.items()],
            location=location,
            input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            serde_info=glue.CfnTable.SerdeInfoProperty(
                serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
            ),
        ),
    )


class ProcessingStack(FinsentryStack):
    """Glue: catalog, security configuration on the CMK, ingest and features jobs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        key: kms.IKey,
        data: s3.IBucket,
        oncall: sns.ITopic,
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, construct_id, config=config, description="finsentry: Glue catalog and jobs")
        self.database_name = glue_database_name(self.config.env)
        database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="finsentry transactions and scores"
            ),
        )
        self.scored_table = glue.CfnTable(
            self,
            "ScoredTable",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.database_name,
            table_input=scored_table_input(self.database_name, data.bucket_name),
        )
        self.scored_table.add_resource_dependency(database)
        self.scored_table_name = "scored"

        security = glue.CfnSecurityConfiguration(
            self,
            "SecurityConfiguration",
            name=self.name("glue"),
            encryption_configuration=glue.CfnSecurityConfiguration.EncryptionConfigurationProperty(
                s3_encryptions=[
                    glue.CfnSecurityConfiguration.S3EncryptionProperty(
                        s3_encryption_mode="SSE-KMS", kms_key_arn=key.key_arn
                    )
                ],
                cloud_watch_encryption=glue.CfnSecurityConfiguration.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=key.key_arn
                ),
                job_bookmarks_encryption=glue.CfnSecurityConfiguration.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=key.key_arn
                ),
            ),
        )
        self.role = self._role(key)
        library = library_asset(self, "FinsentryLibrary")
        self._allow_asset(library)
        # what Glue 5.0 lacks of the jobs' imports, as locked wheels in S3 (infra/constructs/glue_wheels.py)
        self.wheels = glue_wheels_asset(self, "GlueWheels")
        self._allow_asset(self.wheels)
        self.connection = self._connection(network) if network else None
        self.source_db = self._source_db(network) if self.config.source_db else None
        self.source_files = self._source_files() if self.config.source_mapping else None
        self.job_names: dict[str, str] = {}
        self.jobs: dict[str, glue.CfnJob] = {}
        for job, script in GLUE_SCRIPTS.items():
            self._job(job, script, security.name, library, data)
        self.failure_rule = self._failure_rule(oncall)

    def _role(self, key: kms.IKey) -> ServiceRole:
        role = ServiceRole(
            self,
            "JobRole",
            service="glue.amazonaws.com",
            description="finsentry Glue jobs: raw -> curated, catalog updates",
        )
        allow_prefixes(
            role,
            DataBucketRef(self.config.env),
            read=[PREFIXES.raw],
            write=[PREFIXES.quarantine, CURATED_ROOT, PREFIXES.reports, GLUE_TEMP],
        )
        allow_glue_catalog(
            role,
            [
                "glue:GetDatabase",
                "glue:CreateDatabase",
                "glue:GetTable",
                "glue:GetTables",
                "glue:CreateTable",
                "glue:UpdateTable",
                "glue:GetPartition",
                "glue:GetPartitions",
                "glue:BatchCreatePartition",
                "glue:CreatePartition",
                "glue:UpdatePartition",
                "glue:BatchGetPartition",
            ],
            self.database_name,
        )
        allow_logs(
            role,
            "/aws-glue/",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"],
        )
        allow_metrics(role, ["Glue", METRIC_NAMESPACE])
        allow_key(role, key)
        return role

    def _connection(self, network: Network) -> glue.CfnConnection:
        """A NETWORK connection: the jobs' workers get interfaces in the first private subnet."""
        allow_vpc_networking(self.role, "glue")
        return self._glue_connection("NetworkConnection", "network", "NETWORK",
                                     "finsentry Glue jobs in the private subnets", network, network.glue)

    def _glue_connection(self, construct_id: str, name: str, kind: str, description: str, network: Network,
                    group: ec2.ISecurityGroup, properties: dict[str, str] | None = None) -> glue.CfnConnection:
        """A Glue connection in the deployment's first private subnet, behind ``group``."""
        connection = glue.CfnConnection(
            self,
            construct_id,
            catalog_id=Aws.ACCOUNT_ID,
            connection_input=glue.CfnConnection.ConnectionInputProperty(
                name=self.name(name),
                connection_type=kind,
                description=description,
                connection_properties=properties,
                physical_connection_requirements=glue.CfnConnection.PhysicalConnectionRequirementsProperty(
                    subnet_id=network.subnet_ids[0],
                    availability_zone=network.availability_zones[0],
                    security_group_id_list=[group.security_group_id],
                ),
            ),
        )
        if self.config.vpc != "new":
            acknowledge(
                connection,
                "CloudFormation-Validate::W3010",
                "The zone of an existing subnet, given by the deployer with -c vpc_azs; Glue's connection needs it.",
            )
        return connection

    def _source_db(self, network: Network | None) -> tuple[glue.CfnConnection, dict[str, str]]:
        """The JDBC connection of the source database and the ingest job's arguments for it."""
        if network is None or network.source_db is None:  # infra.config refuses source_db without a VPC
            raise ValueError("source_db needs -c vpc")
        secret = self.config.source_db
        allow(self.role, ["secretsmanager:GetSecretValue"], [secret])
        if self.config.source_db_key:  # the secret's own CMK, used only by Secrets Manager for this secret
            allow(
                self.role,
                ["kms:Decrypt"],
                [self.config.source_db_key],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"secretsmanager.{Aws.REGION}.amazonaws.com",
                        "kms:EncryptionContext:SecretARN": secret,
                    }
                },
            )
        mapping = self._mapping_asset("SourceDbMapping", self.config.source_db_mapping)

        def field(name: str) -> str:  # resolved by CloudFormation at deploy time; never the password
            return f"{{{{resolve:secretsmanager:{secret}:SecretString:{name}}}}}"

        connection = self._glue_connection(
            "SourceDbConnection", "source-db", "JDBC",
            "finsentry Glue ingest: the bank's PostgreSQL (credentials in Secrets Manager)", network,
            network.source_db,
            {
                "JDBC_CONNECTION_URL": f"jdbc:postgresql://{field('host')}:{field('port')}/{field('dbname')}",
                "SECRET_ID": secret,
                "JDBC_ENFORCE_SSL": "true",
            },
        )
        arguments = {"--source_secret": secret, "--source_mapping": mapping}
        return connection, arguments

    def _source_files(self) -> dict[str, str]:
        """The ingest job's argument for the bank's own files under raw/: their mapping (an asset)."""
        return {"--source_mapping": self._mapping_asset("SourceMapping", self.config.source_mapping)}

    def _mapping_asset(self, construct_id: str, path: str) -> str:
        """A mapping YAML deployed as an asset the Glue role alone may read; its ``s3://`` URL."""
        mapping = s3_assets.Asset(self, construct_id, path=str(require(path)))
        self._allow_asset(mapping)
        return mapping.s3_object_url

    def _allow_asset(self, asset: s3_assets.Asset) -> None:
        allow(self.role, ["s3:GetObject"], [f"arn:{Aws.PARTITION}:s3:::{asset.s3_bucket_name}/{asset.s3_object_key}"])

    def _job(
        self, job: str, script: str, security_configuration: str, library: s3_assets.Asset, data: s3.IBucket
    ) -> None:
        script_asset = s3_assets.Asset(self, f"{job.title()}Script", path=str(require(script)))
        self._allow_asset(script_asset)
        name = self.name(getattr(RESOURCES, f"{job}_job"))
        connection, source = self.connection, {}
        if job == "ingest" and self.source_db is not None:  # the database's connection replaces the network one
            connection, source = self.source_db
        elif job == "ingest" and self.source_files is not None:
            source = self.source_files
        self.jobs[job] = glue.CfnJob(
            self,
            f"{job.title()}Job",
            name=name,
            role=self.role.role_arn,
            description=f"finsentry {job}: {script}",
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl", python_version="3", script_location=script_asset.s3_object_url
            ),
            glue_version=GLUE_VERSION,
            worker_type=self.config.glue_worker_type,
            number_of_workers=self.config.glue_workers,
            timeout=self.config.glue_timeout_min,
            max_retries=0,
            execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=2),
            security_configuration=security_configuration,
            connections=glue.CfnJob.ConnectionsListProperty(connections=[connection.ref])
            if connection is not None else None,
            default_arguments={
                "--data_bucket": data.bucket_name,
                "--env": self.config.env,
                "--glue_database": self.database_name,
                "--extra-py-files": library.s3_object_url,
                "--additional-python-modules": self.wheels.s3_object_url,
                "--python-modules-installer-option": "--no-index",  # the zip's wheels only: no PyPI egress
                "--job-language": "python",
                "--enable-metrics": "true",
                "--enable-observability-metrics": "true",
                "--enable-continuous-cloudwatch-log": "true",
                "--TempDir": f"s3://{data.bucket_name}/{GLUE_TEMP}",
                **source,
            },
        )
        self.job_names[job] = name

    def _failure_rule(self, oncall: sns.ITopic) -> events.Rule:
        """Glue job runs that end FAILED / TIMEOUT / ERROR: the event text to on-call; the alarm counts them."""
        rule = events.Rule(
            self,
            "JobFailedRule",
            rule_name=self.name("glue-job-failed"),
            description="A finsentry Glue job run failed",
            event_pattern=events.EventPattern(
                source=["aws.glue"],
                detail_type=["Glue Job State Change"],
                detail={"jobName": list(self.job_names.values()), "state": GLUE_FAILED_STATES},
            ),
        )
        # the target is written at the CloudFormation level: CDK's SnsTopic target would also add a
        # kms:GenerateDataKey* statement to the key policy; the security stack grants EventBridge
        # publishing to the on-call topic (topic policy + key policy) with exact actions instead.
        fields = ("jobName", "jobRunId", "state", "message")
        rule.node.default_child.targets = [
            events.CfnRule.TargetProperty(
                id="Oncall",
                arn=oncall.topic_arn,
                input_transformer=events.CfnRule.InputTransformerProperty(
                    input_paths_map={f: f"$.detail.{f}" for f in fields},
                    input_template='"Glue job <jobName> run <jobRunId> ended <state>: <message>"',
                ),
            )
        ]
        return rule
