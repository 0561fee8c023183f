"""Analytics: the Athena workgroup (KMS-encrypted results, enforced) and the Tableau views.

The views (``infra/athena/views/*.sql``, loaded and checked by ``finsentry.analytics``) are
registered as Glue Data Catalog views (``TableType: VIRTUAL_VIEW``, the Presto view encoding Athena
itself writes for ``CREATE VIEW``), not by running DDL from a custom resource: CloudFormation
creates, updates and deletes them in the same transaction as the table they read, a failure fails
the deployment (an asynchronous ``StartQueryExecution`` would report success before the query
ran), and no Lambda, runtime role or SDK download is added to the account. The output columns
and their types come from ``finsentry.analytics`` (``VIEW_COLUMNS``, ``glue_view_input``), which
the views' tests check against the result of each view.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from finsentry.analytics import glue_view_input, load_views  # the views' loader, checks and Glue encoding
from finsentry.layout import PREFIXES, RESOURCES
from infra.config import EnvConfig
from infra.paths import ATHENA_VIEWS_DIR, require
from infra.stacks.base import FinsentryStack


class AnalyticsStack(FinsentryStack):
    """Athena workgroup and the masked views over ``scored``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        key: kms.IKey,
        data: s3.IBucket,
        glue_database: str,
        scored_table: glue.CfnTable,
    ) -> None:
        super().__init__(scope, construct_id, config=config, description="finsentry: Athena workgroup and views")

        self.workgroup_name = self.name(RESOURCES.athena_workgroup)
        self.workgroup = athena.CfnWorkGroup(
            self,
            "Workgroup",
            name=self.workgroup_name,
            state="ENABLED",
            description="finsentry analysts and Tableau: results encrypted with the CMK",
            recursive_delete_option=config.destroy_on_removal,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=config.athena_bytes_scanned_cutoff,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(selected_engine_version="AUTO"),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{data.bucket_name}/{PREFIXES.athena_results}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=key.key_arn
                    ),
                ),
            ),
        )
        self.views = load_views(require(ATHENA_VIEWS_DIR))
        self.view_tables: dict[str, glue.CfnTable] = {}
        for view in self.views:
            table = glue.CfnTable(
                self,
                f"View{''.join(p.title() for p in view.name.split('_'))}",
                catalog_id=Aws.ACCOUNT_ID,
                database_name=glue_database,
                table_input=glue.CfnTable.TableInputProperty(name=view.name),
            )
            # the Glue API's TableInput is CloudFormation's: the views module builds it, once
            table.add_property_override("TableInput", glue_view_input(view, glue_database))
            self.view_tables[view.name] = table
        self.add_stack_dependency(scored_table.stack)
