"""The one gap of moto 5.2's Athena this project runs into, filled: moto does not run SQL.

moto records a query execution (workgroup, database, result location), moves it to SUCCEEDED and
answers ``GetQueryResults`` with results queued beforehand (``query_results_queue``), which it
also writes as the CSV object at the execution's ``OutputLocation``, as Athena does. Nothing
evaluates the query: without a queued result every SELECT returns no columns and no rows (the
guard test in ``tests/test_moto_athena.py`` fails when moto starts to answer).

``athena_on_duckdb`` fills exactly that: when a query starts, it is run on DuckDB (transpiled from
Athena's dialect by sqlglot) over what the Glue catalog says the database holds: every table's
registered partitions read from moto's S3 (or, for a table with partition projection on, every
``<key>=<value>/`` folder under its location), every ``VIRTUAL_VIEW`` from its Presto view text. The
result becomes moto's own ``QueryResults`` (header row first, typed ``ColumnInfo``) and moto's
code writes the CSV. A query DuckDB refuses is an ``InvalidRequestException`` at
``StartQueryExecution``, as Athena reports a syntax error. Executions reach SUCCEEDED at once.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import Iterator

import boto3
import duckdb
import pandas as pd
import pyarrow.parquet as pq
import sqlglot
from moto.athena.models import AthenaBackend, QueryResults
from moto.core.exceptions import JsonRESTError
from moto.moto_api import state_manager

_ATHENA_TYPE = {"VARCHAR": "varchar", "DOUBLE": "double", "BIGINT": "bigint", "INTEGER": "integer",
                "TIMESTAMP": "timestamp", "TIMESTAMP_NS": "timestamp", "DATE": "date", "BOOLEAN": "boolean",
                "FLOAT": "float", "SMALLINT": "smallint", "TINYINT": "tinyint"}  # fmt: skip
_DDL = ("ALTER", "CREATE", "DESCRIBE", "DROP", "MSCK", "SHOW")  # what moto labels DDL
_DUCK_OF_HIVE = {"string": "VARCHAR", "double": "DOUBLE", "bigint": "BIGINT", "int": "INTEGER",
                 "timestamp": "TIMESTAMP", "date": "DATE", "boolean": "BOOLEAN", "float": "FLOAT"}  # fmt: skip


def _s3_objects(s3, uri: str) -> list[bytes]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return [s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in sorted(keys)]


def _table_frame(glue, s3, database: str, table: dict) -> pd.DataFrame:
    """The table as Athena sees it: the Parquet of its registered partitions, partition columns added."""
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    keys = [k["Name"] for k in table.get("PartitionKeys", [])]
    parts = []
    if keys and table.get("Parameters", {}).get("projection.enabled") == "true":
        parts = _projected(s3, table["StorageDescriptor"]["Location"], keys)
    elif keys:
        pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table["Name"])
        for partition in (p for page in pages for p in page["Partitions"]):
            for body in _s3_objects(s3, partition["StorageDescriptor"]["Location"]):
                frame = pq.read_table(io.BytesIO(body)).to_pandas()
                for key, value in zip(keys, partition["Values"], strict=True):
                    frame[key] = value
                parts.append(frame)
    else:
        bodies = _s3_objects(s3, table["StorageDescriptor"]["Location"])
        parts = [pq.read_table(io.BytesIO(b)).to_pandas() for b in bodies]
    wanted = [*columns, *keys]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in wanted})
    return pd.concat(parts, ignore_index=True)[wanted]


def _projected(s3, location: str, keys: list[str]) -> list[pd.DataFrame]:
    """Partition projection (one key, ``<location><key>=<value>/``): every partition that has data
    is found without being registered, as Athena computes them from the table's properties."""
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    parts = []
    for key in sorted(o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")):
        folder = key[len(prefix):].split("/", 1)[0]
        if len(keys) != 1 or not folder.startswith(f"{keys[0]}="):
            continue
        frame = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())).to_pandas()
        parts.append(frame.assign(**{keys[0]: folder.split("=", 1)[1]}))
    return parts


def _connection(database: str, region: str) -> duckdb.DuckDBPyConnection:
    glue, s3 = boto3.client("glue", region_name=region), boto3.client("s3", region_name=region)
    con = duckdb.connect()
    tables = [t for page in glue.get_paginator("get_tables").paginate(DatabaseName=database) for t in page["TableList"]]
    for table in (t for t in tables if t.get("TableType") != "VIRTUAL_VIEW"):
        frame = _table_frame(glue, s3, database, table)
        con.register(f"_{table['Name']}", frame)
        types = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
        types.update({k["Name"]: k["Type"] for k in table.get("PartitionKeys", [])})
        casts = ", ".join(f'CAST("{c}" AS {_DUCK_OF_HIVE.get(t, "VARCHAR")}) AS "{c}"' for c, t in types.items())
        con.execute(f'CREATE VIEW "{table["Name"]}" AS SELECT {casts} FROM "_{table["Name"]}"')  # noqa: S608
    for view in (t for t in tables if t.get("TableType") == "VIRTUAL_VIEW"):
        encoded = view["ViewOriginalText"].removeprefix("/* Presto View: ").removesuffix(" */")
        select = json.loads(base64.b64decode(encoded))["originalSql"]
        body = sqlglot.transpile(select, read="athena", write="duckdb")[0]
        try:
            con.execute(f'CREATE VIEW "{view["Name"]}" AS {body}')
        except (duckdb.CatalogException, duckdb.BinderException):
            # a view over a table this test deployment did not register, or registered with other
            # columns (the analysts' views read `labels`): Athena keeps such a view and fails only a
            # query on it; here the view is left out, so such a query fails too
            continue
    return con


def run_on_duckdb(query: str, database: str, region: str) -> QueryResults:
    """``query`` over the Glue database ``database`` as moto's ``QueryResults``."""
    con = _connection(database, region)
    sql = sqlglot.transpile(query, read="athena", write="duckdb")[0]
    relation = con.sql(sql)
    names, types = relation.columns, [str(t).split("(")[0] for t in relation.types]
    rows = [{"Data": [{"VarCharValue": n} for n in names]}]
    for record in relation.fetchall():
        rows.append({"Data": [{} if v is None else {"VarCharValue": _text(v)} for v in record]})
    info = [{"Name": n, "Label": n, "Type": _ATHENA_TYPE.get(t, "varchar"), "Nullable": "UNKNOWN",
             "CatalogName": "hive", "SchemaName": "", "TableName": "", "Precision": 0, "Scale": 0,
             "CaseSensitive": True} for n, t in zip(names, types, strict=True)]  # fmt: skip
    return QueryResults(rows=rows, column_info=info)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, pd.Timestamp) or hasattr(value, "isoformat"):
        return str(value).replace("T", " ")
    return str(value)


@contextlib.contextmanager
def athena_on_duckdb() -> Iterator[list[str]]:
    """Inside ``mock_aws``: Athena queries run on DuckDB; yields the list of queries run (their text)."""
    original = AthenaBackend.start_query_execution
    ran: list[str] = []

    def start(self, query, context, config, workgroup, execution_parameters):  # noqa: ANN001
        database = (context or {}).get("Database", "default")
        is_ddl = query.lstrip().upper().startswith(_DDL)  # moto's own business (CREATE DATABASE ...)
        results = None
        if not is_ddl and not self.query_results_queue:
            try:
                results = run_on_duckdb(query, database, self.region_name)
            except (duckdb.Error, sqlglot.errors.SqlglotError) as exc:
                raise JsonRESTError("InvalidRequestException", f"query failed: {exc}") from None
        exec_id = original(self, query, context, config, workgroup, execution_parameters)
        if results is not None:
            self.query_results[exec_id] = results
            self._store_query_result_in_s3(exec_id)
            ran.append(query)
        return exec_id

    AthenaBackend.start_query_execution = start
    state_manager.set_transition(model_name="athena::execution", transition={"progression": "immediate"})
    try:
        yield ran
    finally:
        AthenaBackend.start_query_execution = original
        state_manager.unset_transition(model_name="athena::execution")
