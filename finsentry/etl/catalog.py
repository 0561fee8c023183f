"""The Glue Data Catalog tables of the curated data, created or updated with the Glue API.

Database ``glue_database_name(env)``; tables ``transactions`` (canonical
rows, ``curated/transactions/``), ``features`` (``curated/features/``) and ``scored`` (the
scorer's output, ``scored/``, columns ``finsentry.scoring.SCORED_COLUMNS``) and ``labels``
(analysts' verdicts, ``feedback/labels/``, ``finsentry.feedback``). Every table is
Parquet, partitioned by ``dt`` (string, YYYY-MM-DD); the jobs register the partitions they
wrote, so Athena sees new days without a crawler or ``MSCK REPAIR``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from finsentry.etl import transforms
from finsentry.features import CURATED_COLUMNS
from finsentry.layout import PARTITION_KEY, PREFIXES, glue_database_name
from finsentry.schema import TRANSACTION_SCHEMA
from finsentry.scoring import SCORED_COLUMNS

_HIVE_OF_KIND = {"str": "string", "float": "double", "int": "bigint", "datetime": "timestamp"}
TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "transactions": (
        PREFIXES.transactions,
        {**{c.name: _HIVE_OF_KIND[c.kind] for c in TRANSACTION_SCHEMA}, transforms.SEQ: "bigint"},
    ),
    "features": (
        PREFIXES.curated,
        {"trans_id": "string", "account_id": "string", "ts": "timestamp", transforms.SEQ: "bigint",
         **{c: "double" for c in CURATED_COLUMNS}},
    ),
    "scored": (PREFIXES.scored, dict(SCORED_COLUMNS)),
    "labels": (PREFIXES.feedback_labels,  # analysts' verdicts (finsentry.labels.HISTORY_COLUMNS)
               {"trans_id": "string", "verdict": "string", "who": "string", "when": "timestamp", "note": "string",
                "label_id": "string", "received_at": "timestamp"}),
}  # fmt: skip
PARQUET = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}
BATCH = 100  # partitions per BatchCreatePartition call (the API's limit)


def database_name(env: str) -> str:
    return glue_database_name(env)


def table_input(name: str, root: str) -> dict[str, Any]:
    """The ``TableInput`` of table ``name`` whose data lives under ``root`` (``s3://bucket``)."""
    prefix, columns = TABLES[name]
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", "parquet.compression": "SNAPPY"},
        "PartitionKeys": [{"Name": PARTITION_KEY, "Type": "string"}],
        "StorageDescriptor": {
            "Columns": [{"Name": c, "Type": t} for c, t in columns.items()],
            "Location": f"{root.rstrip('/')}/{prefix}",
            **PARQUET,
        },
    }


def ensure_table(glue, env: str, name: str, root: str) -> str:
    """Create the database and the table, or update the table's definition; returns the action."""
    database = database_name(env)
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": database, "Description": "finsentry curated data"})
    table = table_input(name, root)
    try:
        glue.get_table(DatabaseName=database, Name=name)
    except glue.exceptions.EntityNotFoundException:
        glue.create_table(DatabaseName=database, TableInput=table)
        return "created"
    glue.update_table(DatabaseName=database, TableInput=table)
    return "updated"


def add_partitions(glue, env: str, name: str, root: str, days: Iterable[str]) -> int:
    """Register the ``dt=`` partitions of ``days`` (existing ones are left alone); returns how
    many were new. Any other error is raised."""
    database = database_name(env)
    table = table_input(name, root)
    location = table["StorageDescriptor"]["Location"]
    days = sorted(set(days))
    created = 0
    for start in range(0, len(days), BATCH):
        chunk = days[start:start + BATCH]
        inputs = [{"Values": [d], "StorageDescriptor": {**table["StorageDescriptor"],
                                                        "Location": f"{location}{PARTITION_KEY}={d}/"}}
                  for d in chunk]  # fmt: skip
        response = glue.batch_create_partition(DatabaseName=database, TableName=name, PartitionInputList=inputs)
        errors = [e for e in response.get("Errors", [])
                  if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"]  # fmt: skip
        if errors:
            raise RuntimeError(f"Glue refused partitions of {database}.{name}: {errors[:3]}")
        created += len(chunk) - len(response.get("Errors", []))
    return created


def publish(glue, env: str, name: str, root: str, days: Iterable[str]) -> dict[str, Any]:
    """Table created or updated, then its new partitions registered."""
    action = ensure_table(glue, env, name, root)
    return {"table": f"{database_name(env)}.{name}", "action": action,
            "new_partitions": add_partitions(glue, env, name, root, days)}  # fmt: skip
