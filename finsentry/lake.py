"""The data lake on awswrangler: the curated, scored and label tables, their Glue catalog, Athena.

Every table is Parquet under its prefix of the data bucket (``finsentry.layout.PREFIXES``),
partitioned by ``dt`` (string, YYYY-MM-DD), registered in the deployment's Glue database
(``glue_database_name(env)``), so Athena and Tableau see a new day without a crawler:

==================  ===========================  ==============================================
table               prefix                       columns
==================  ===========================  ==============================================
``transactions``    ``curated/transactions/``    the canonical record + ``seq`` (Glue ingest)
``features``        ``curated/features/``        ids, ``ts``, ``seq``, ``CURATED_COLUMNS``
``scored``          ``scored/``                  ``finsentry.scoring.SCORED_COLUMNS``
``labels``          ``feedback/labels/``          analysts' verdicts (``finsentry.feedback``)
==================  ===========================  ==============================================

* ``write`` (pandas frames: the local pipeline, the pandas engine) is ``wr.s3.to_parquet(dataset=True,
  database=..., table=...)``: files, table and partitions in one call.
* ``publish`` registers data another writer put there (Spark in the Glue jobs, Firehose, Batch
  Transform): ``wr.catalog.create_parquet_table`` (mode ``update``: a changed schema updates the
  table and keeps its partitions) and ``wr.catalog.add_parquet_partitions``.
* ``read`` is ``wr.s3.read_parquet_table`` with a partition filter.
* ``query`` is ``wr.athena.read_sql_query`` on the deployment's workgroup, results encrypted with
  the deployment's KMS key (``ctas_approach=False``: the CLI only reads; CTAS would create and
  drop tables in the database, which analysts' roles should not be allowed to do).
* ``alerts`` is one such query over the masked view ``scored_transactions`` (never the raw ids),
  joined with the latest analyst verdict per transaction when a ``labels`` table exists.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from finsentry.etl import transforms
from finsentry.features import CURATED_COLUMNS
from finsentry.layout import PARTITION_KEY, PREFIXES, SCORED_PARQUET_COMPRESSION, glue_database_name
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
PARTITIONS = {PARTITION_KEY: "string"}
COMPRESSION = "snappy"  # what Spark writes; the Glue table says so
TABLE_COMPRESSION = {"scored": SCORED_PARQUET_COMPRESSION.lower()}  # Firehose's codec (finsentry.layout)


def compression(name: str) -> str:
    """The Parquet codec of table ``name``."""
    return TABLE_COMPRESSION.get(name, COMPRESSION)
ALERTS_VIEW = "scored_transactions"  # the masked view (infra/athena/views/)
LABELS_TABLE = "labels"  # written by the feedback path (analysts' verdicts); optional
LABEL_TIME_COLUMNS = ("when", "received_at", "labelled_at")  # the latest verdict wins, by the first present
ALERT_COLUMNS = ("dt", "ts", "trans_id", "client_ref", "amount", "operation", "region", "score",
                 "anomaly_type", "reasons", "model_version")  # fmt: skip
DEFAULT_LIMIT = 200


def _wr():
    import awswrangler as wr

    return wr


def database_name(env: str) -> str:
    return glue_database_name(env)


def location(name: str, root: str) -> str:
    """Where table ``name`` lives under ``root`` (``s3://bucket`` or a local folder in tests)."""
    return f"{root.rstrip('/')}/{TABLES[name][0]}"


def table_of_prefix(prefix: str) -> str:
    """The table whose data lives under ``prefix`` (e.g. ``scored/`` -> ``scored``)."""
    for name, (table_prefix, _) in TABLES.items():
        if table_prefix == prefix:
            return name
    raise ValueError(f"no data-lake table lives under {prefix!r}; tables: {', '.join(TABLES)}")


# --- the catalog ---------------------------------------------------------------------------------------


def publish(env: str, name: str, root: str, days: Iterable[str], session=None) -> dict[str, Any]:
    """Create or update table ``name`` and register the ``dt=`` partitions of ``days`` (existing
    ones are left alone); returns what was done, for the job's report."""
    wr = _wr()
    database, path = database_name(env), location(name, root)
    # no description: an existing database (the CDK app's) is then left as it is, never updated
    wr.catalog.create_database(database, exist_ok=True, boto3_session=session)
    existed = wr.catalog.does_table_exist(database, name, boto3_session=session)
    wr.catalog.create_parquet_table(database=database, table=name, path=path, columns_types=TABLES[name][1],
                                    partitions_types=PARTITIONS, compression=compression(name), mode="update",
                                    description=f"finsentry {name} ({path})", boto3_session=session)  # fmt: skip
    known = set(registered_days(env, name, session)) if existed else set()
    days = sorted(set(days))
    add_partitions(env, name, root, days, session)
    return {"table": f"{database}.{name}", "action": "updated" if existed else "created",
            "new_partitions": len(set(days) - known)}  # fmt: skip


def add_partitions(env: str, name: str, root: str, days: Iterable[str], session=None) -> None:
    """Register the ``dt=`` partitions of ``days`` in the existing table ``name`` (existing ones
    are left alone): the catalog write of a writer that may not change the table itself."""
    days = sorted(set(days))
    if days:
        path = location(name, root)
        _wr().catalog.add_parquet_partitions(database=database_name(env), table=name, compression=compression(name),
                                             partitions_values={f"{path}{PARTITION_KEY}={d}/": [d] for d in days},
                                             boto3_session=session)  # fmt: skip


def registered_days(env: str, name: str, session=None) -> list[str]:
    """The ``dt`` values of the table's registered partitions, sorted."""
    parts = _wr().catalog.get_parquet_partitions(database_name(env), name, boto3_session=session)
    return sorted(values[0] for values in parts.values())


def has_table(env: str, name: str, session=None) -> bool:
    return bool(_wr().catalog.does_table_exist(database_name(env), name, boto3_session=session))


# --- pandas in and out ----------------------------------------------------------------------------------


def write(frame: pd.DataFrame, env: str, name: str, root: str, session=None, ts_col: str = "ts") -> list[str]:
    """Write ``frame`` as table ``name``: Parquet partitioned by ``dt`` (from ``ts_col`` when the
    frame has no ``dt``), the day partitions it holds replaced, table and partitions registered.
    Returns the objects written."""
    wr = _wr()
    _, columns = TABLES[name]
    out = frame.copy()
    if PARTITION_KEY not in out:
        out[PARTITION_KEY] = pd.to_datetime(out[ts_col]).dt.strftime("%Y-%m-%d")
    dtype = {c: t for c, t in columns.items() if c in out.columns}  # other columns: awswrangler infers
    wr.catalog.create_database(database_name(env), exist_ok=True, boto3_session=session)
    result = wr.s3.to_parquet(out, path=location(name, root), dataset=True, partition_cols=[PARTITION_KEY],
                              mode="overwrite_partitions", database=database_name(env), table=name,
                              dtype={**dtype, PARTITION_KEY: "string"},
                              compression=compression(name), boto3_session=session)  # fmt: skip
    return list(result["paths"])


def read(env: str, name: str, session=None, days: Sequence[str] | None = None) -> pd.DataFrame:
    """Table ``name`` (all of it, or the partitions of ``days``) with its ``dt`` column."""
    wanted = set(days) if days is not None else None
    keep = (lambda p: p[PARTITION_KEY] in wanted) if wanted is not None else None
    return _wr().s3.read_parquet_table(database=database_name(env), table=name, partition_filter=keep,
                                       boto3_session=session)  # fmt: skip


# --- Athena -----------------------------------------------------------------------------------------------


def query(sql: str, deployment, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """``sql`` on Athena in the deployment's database and workgroup (results KMS-encrypted under
    ``athena-results/``); ``:name`` parameters are quoted by awswrangler."""
    return _wr().athena.read_sql_query(
        sql, database=deployment.database, workgroup=deployment.workgroup, ctas_approach=False,
        s3_output=deployment.uri(PREFIXES.athena_results), encryption="SSE_KMS", kms_key=deployment.kms_key_arn,
        params=params, boto3_session=deployment.session,
    )  # fmt: skip


_SINCE = re.compile(r"^(\d{1,4})([dw])$")


def since_day(text: str, today: dt.date | None = None) -> str:
    """``--since``: ``Nd`` (days), ``Nw`` (weeks) or a date ``YYYY-MM-DD``, as the first ``dt`` shown."""
    today = today or dt.datetime.now(dt.UTC).date()
    match = _SINCE.match(text.strip())
    if match:
        n, unit = int(match.group(1)), match.group(2)
        return (today - dt.timedelta(days=n * (7 if unit == "w" else 1))).isoformat()
    try:
        return dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise ValueError(f"--since {text!r}: use Nd (days), Nw (weeks) or a date YYYY-MM-DD") from None


def alerts_sql(types: Sequence[str] = (), labels_time_column: str | None = None, with_labels: bool = False) -> str:
    """The alerts query: masked view rows with verdict 'alert' since ``:since``, best first; with
    labels, the latest analyst verdict per transaction as ``verdict`` ("" when none)."""
    cols = ", ".join(f"s.{c}" for c in ALERT_COLUMNS)
    sql = f"SELECT {cols}"
    if with_labels:
        latest = (f'max_by(verdict, "{labels_time_column}")' if labels_time_column else "max(verdict)")
        labels = f"SELECT trans_id, {latest} AS verdict FROM {LABELS_TABLE} GROUP BY trans_id"  # noqa: S608
        sql += f", coalesce(l.verdict, '') AS verdict FROM {ALERTS_VIEW} s LEFT JOIN ({labels}) l"
        sql += " ON l.trans_id = s.trans_id"
    else:
        sql += f" FROM {ALERTS_VIEW} s"
    sql += " WHERE s.verdict = 'alert' AND s.dt >= :since"
    if types:
        sql += " AND s.anomaly_type IN (" + ", ".join(f":type{i}" for i in range(len(types))) + ")"
    return sql + " ORDER BY s.score DESC, s.trans_id LIMIT :limit"


def alerts(deployment, since: str, types: Sequence[str] = (), limit: int = DEFAULT_LIMIT) -> pd.DataFrame:
    """Recent alerts of the deployment (masked view), with analysts' verdicts when labels exist."""
    with_labels, time_column = False, None
    if has_table(deployment.env, LABELS_TABLE, deployment.session):
        columns = _wr().catalog.get_table_types(deployment.database, LABELS_TABLE, boto3_session=deployment.session)
        with_labels = {"trans_id", "verdict"} <= set(columns or {})
        time_column = next((c for c in LABEL_TIME_COLUMNS if c in (columns or {})), None)
    params: dict[str, Any] = {"since": since, "limit": int(limit), **{f"type{i}": t for i, t in enumerate(types)}}
    out = query(alerts_sql(types, time_column, with_labels), deployment, params)
    if "verdict" in out:  # Athena's CSV result reads '' back as a missing value
        out["verdict"] = out["verdict"].astype("string").fillna("")
    return out
