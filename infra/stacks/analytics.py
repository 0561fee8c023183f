"""Analytics: the Athena workgroup (KMS-encrypted results, enforced) and the Tableau views.

The views (``infra/athena/views/*.sql``, loaded and checked by ``finsentry.analytics``) are
registered as Glue Data Catalog views (``TableType: VIRTUAL_VIEW``, the Presto view encoding Athena
itself writes for ``CREATE VIEW``), not by running DDL from a custom resource: CloudFormation
creates, updates and deletes them in the same transaction as the table they read, a failure fails
the deployment (an asynchronous ``StartQueryExecution`` would report success before the query
ran), and no Lambda, runtime role or SDK download is added to the account. The output columns
and their types come from ``finsentry.analytics.VIEW_COLUMNS``, which the views' tests check
against the result of each view.
"""

from __future__ import annotations

import base64
import json

from aws_cdk import Aws
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from finsentry.layout import PREFIXES, RESOURCES
from infra.config import EnvConfig
from infra.paths import ATHENA_VIEWS_DIR, require
from infra.stacks.base import FinsentryStack

HIVE_TYPE = {"varchar": "string", "integer": "int", "bigint": "bigint", "double": "double", "real": "float",
             "boolean": "boolean", "date": "date", "timestamp": "timestamp"}  # fmt: skip


def presto_view_text(select_sql: str, database: str, columns: dict[str, str]) -> str:
    """``ViewOriginalText`` of an Athena view: the SELECT and its columns, base64 JSON in a comment."""
    payload = {
        "originalSql": select_sql,
        "catalog": "awsdatacatalog",
        "schema": database,
        "columns": [{"name": n, "type": t} for n, t in columns.items()],
    }
    encoded = base64.b64encode(json.dumps(payload).encode()).decode()
    return f"/* Presto View: {encoded} */"


def view_table_input(
    name: str, select_sql: str, database: str, columns: dict[str, str]
) -> glue.CfnTable.TableInputProperty:
    unknown = sorted({t for t in columns.values()} - set(HIVE_TYPE))
    if unknown:
        raise ValueError(f"view {name}: column types {unknown} have no Hive equivalent in infra/stacks/analytics.py")
    return glue.CfnTable.TableInputProperty(
        name=name,
        description=f"Athena view from {ATHENA_VIEWS_DIR}/{name}.sql (client identifiers masked)",
        table_type="VIRTUAL_VIEW",
        parameters={"presto_view": "true", "comment": "Presto View"},
        view_original_text=presto_view_text(select_sql, database, columns),
        view_expanded_text="/* Presto View */",
        storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
            columns=[glue.CfnTable.ColumnProperty(name=n, type=HIVE_TYPE[t]) for n, t in columns.items()],
            serde_info=glue.CfnTable.SerdeInfoProperty(),
        ),
    )


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
        from finsentry.analytics import load_views  # the views' own loader and contract checks

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
                table_input=view_table_input(view.name, view.select_sql, glue_database, view.columns),
            )
            self.view_tables[view.name] = table
        self.add_stack_dependency(scored_table.stack)
