"""A PostgreSQL source on Spark (the Glue ingest job's database path, and ``demo --engine spark``).

Spark's JDBC reader (the PostgreSQL JDBC driver: Debian's ``/usr/share/java/postgresql.jar``
locally; in a Glue job the driver jar given with ``--extra-jars``, unless the Glue version
ships one: not checked against a real Glue here) reads the mapping's table or query with the pandas path's
rules (``finsentry.database``): cells as PostgreSQL prints them (``col::text``), only rows in
the watermark window ``(last mark, max]``. The read is split into ``partitions`` queries by the
watermark's quantiles (``percentile_disc``: balanced, any orderable type) or, without a
watermark, by a hash of the key (``hashtext``); each query is one Spark task and one
connection.

Mapping and validation then run ``finsentry.etl.mapped`` (the pandas path's own
``mapping.map_table``, shared with the bank's own files, ``finsentry.etl.files``) in the
server's order (the watermark, then the key), so the first of two rows with one id is kept and
derived ids number their repeats as the pandas path does; a second grouping by account gives
``seq`` (posting order) and the quality row flags, in ``transforms.CANONICAL_SCHEMA``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, unquote, urlsplit

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from finsentry import database as db
from finsentry.etl import transforms
from finsentry.etl.mapped import (  # noqa: F401 - MAPPED_SCHEMA, job_mapping, mapped_chunk: their old home
    MAPPED_SCHEMA,
    job_mapping,
    mapped_chunk,
    mapped_rows,
    mapped_table,
    with_posting_order,
)
from finsentry.mapping import DatabaseSpec, MappingError, TableMapping

DRIVER = "org.postgresql.Driver"
WM, KEY = "_finsentry_wm", "_finsentry_key"  # the typed watermark and key, beside the text cells


@dataclass(frozen=True)
class JdbcSource:
    """Where Spark reads from: the JDBC URL and the connection properties (user, password...).

    ``masked`` names it in messages; the properties are never printed."""

    url: str
    properties: dict[str, str]
    masked: str


def jdbc_source(url: str) -> JdbcSource:
    """``postgresql://user:pw@host:port/db?sslmode=...`` as Spark's JDBC URL and properties;
    user and password fall back to ``PGUSER`` / ``PGPASSWORD`` as libpq's do."""
    parts = urlsplit(url)
    props = {"driver": DRIVER}
    user = unquote(parts.username) if parts.username else os.environ.get("PGUSER")
    password = unquote(parts.password) if parts.password else os.environ.get("PGPASSWORD")
    if user:
        props["user"] = user
    if password:
        props["password"] = password
    for key, values in parse_qs(parts.query).items():
        props[key] = values[-1]  # sslmode, sslrootcert, ... are pgJDBC properties of the same name
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return JdbcSource(f"jdbc:postgresql://{host}:{port}{parts.path or '/'}", props, db.mask_url(url))


def secret_source(secret: dict) -> JdbcSource:
    """An RDS / Aurora Secrets Manager secret (``username``, ``password``, ``host``, ``port``,
    ``dbname``) as a JDBC source."""
    missing = [k for k in ("username", "password", "host") if not secret.get(k)]
    if missing:
        raise MappingError(f"the database secret lacks {', '.join(missing)}")
    url = f"jdbc:postgresql://{secret['host']}:{secret.get('port', 5432)}/{secret.get('dbname', 'postgres')}"
    masked = f"postgresql://{secret['username']}:***@{secret['host']}:{secret.get('port', 5432)}/" \
             f"{secret.get('dbname', 'postgres')}"  # fmt: skip
    return JdbcSource(url, {"driver": DRIVER, "user": secret["username"], "password": secret["password"],
                            "sslmode": secret.get("sslmode", "require")}, masked)  # fmt: skip


def _quote(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _relation(spec: DatabaseSpec) -> str:
    if spec.query:
        return f"({spec.query.strip().rstrip(';')}) AS finsentry_src"
    if not spec.table:
        raise MappingError("a database source needs database.table or database.query in the mapping (or --query)")
    return _quote(spec.table)


def _query(spark: SparkSession, src: JdbcSource, sql: str) -> list:
    """The rows of a small query, through the JDBC reader (on the driver's first task)."""
    try:
        return spark.read.jdbc(src.url, f"({sql}) AS finsentry_q", properties=src.properties).collect()
    except Exception as exc:  # noqa: BLE001 - Py4J wraps the driver's SQLException
        raise db.DatabaseSourceError(f"cannot read from {src.masked}: {_reason(exc, src)}") from None


def _reason(exc: Exception, src: JdbcSource) -> str:
    """The JDBC driver's message, one line, without the password."""
    text = str(exc)
    for marker in ("PSQLException: ", "SQLException: "):
        if marker in text:
            text = text.split(marker, 1)[1]
            break
    text = " ".join(text.split("\n")[0].split())[:300]
    secret = src.properties.get("password")
    return text.replace(secret, "***") if secret else text


def _window(spec: DatabaseSpec, since: db.Watermark | None, mark: db.Watermark | None) -> str:
    if spec.watermark is None or mark is None:
        return "TRUE"
    column, kind = _quote(spec.watermark), db._type_name(mark.type)
    low = f"{column} > {_literal(since.value)}::{kind} AND " if since is not None else ""
    return f"{low}{column} <= {_literal(mark.value)}::{kind}"


def read_text(spark: SparkSession, src: JdbcSource, spec: DatabaseSpec, since: db.Watermark | None = None,
              partitions: int = 4) -> tuple[DataFrame, db.Watermark | None]:  # fmt: skip
    """The source's rows in the window above ``since``: every column as text ('' = NULL), plus
    the typed watermark and key (``WM``, ``KEY``) for the order; and this read's mark."""
    relation = _relation(spec)
    mark = None
    if spec.watermark is not None:
        column = _quote(spec.watermark)
        top = f"SELECT max({column})::text AS m, pg_typeof(max({column}))::text AS t FROM {relation}"  # noqa: S608 - quoted identifiers, escaped literals (a JDBC read takes no parameters)
        row = _query(spark, src, top)[0]
        mark = None if row["m"] is None else db.Watermark(spec.watermark, row["t"], row["m"])
    empty = f"(SELECT * FROM {relation} LIMIT 0) AS finsentry_c"  # noqa: S608 - quoted identifiers, escaped literals (a JDBC read takes no parameters)
    names = spark.read.jdbc(src.url, empty, properties=src.properties).columns
    window = _window(spec, since, mark)
    cells = ", ".join(f"coalesce({_quote(n)}::text, '') AS {_quote(n)}" for n in names)
    typed = ", ".join(f"{_quote(c)} AS {n}" for c, n in ((spec.watermark, WM), (spec.key, KEY)) if c)
    select = f"(SELECT {cells}{', ' + typed if typed else ''} FROM {relation} WHERE {window}) AS finsentry_src"  # noqa: S608 - quoted identifiers, escaped literals (a JDBC read takes no parameters)
    predicates = _predicates(spark, src, spec, relation, window, partitions, mark)
    try:
        frame = spark.read.jdbc(src.url, select, predicates=predicates, properties=src.properties)
    except Exception as exc:  # noqa: BLE001
        raise db.DatabaseSourceError(f"cannot read {db.relation_text(spec)} from {src.masked}: "
                                     f"{_reason(exc, src)}") from None  # fmt: skip
    return frame, mark


def _predicates(spark, src: JdbcSource, spec: DatabaseSpec, relation: str, window: str, n: int,
                mark: db.Watermark | None) -> list[str]:  # fmt: skip
    """One WHERE clause per Spark task: watermark quantile ranges, else key hash buckets."""
    if n <= 1:
        return ["TRUE"]
    if spec.watermark is not None and mark is not None:
        column, kind = _quote(spec.watermark), db._type_name(mark.type)
        shares = ", ".join(f"{i / n:.6f}" for i in range(1, n))
        quantiles = f"SELECT (percentile_disc(ARRAY[{shares}]) WITHIN GROUP (ORDER BY {column}))::text[] AS q " \
                    f"FROM {relation} WHERE {window}"  # noqa: S608 - quoted identifiers, escaped literals (a JDBC read takes no parameters)
        found = list(_query(spark, src, quantiles)[0]["q"] or [])
        cuts = sorted(set(found), key=found.index)
        if not cuts:
            return ["TRUE"]
        pairs = zip(cuts, cuts[1:], strict=False)
        bounds = [f"{WM} <= {_literal(cuts[0])}::{kind}"]
        bounds += [f"{WM} > {_literal(a)}::{kind} AND {WM} <= {_literal(b)}::{kind}" for a, b in pairs]
        return [*bounds, f"{WM} > {_literal(cuts[-1])}::{kind}"]
    if spec.key is not None:
        bucket = f"mod(abs(coalesce(hashtext({KEY}::text), 0)::bigint), {n})"  # a NULL key in bucket 0
        return [f"{bucket} = {i}" for i in range(n)]
    return ["TRUE"]


def mapped(raw: DataFrame, mapping: TableMapping, groups: int = 8) -> tuple[DataFrame, list[str], list[str]]:
    """Rows read by ``read_text`` -> mapped and validated rows (``mapped.mapped_rows``), with
    ``_line`` = the server's order (the watermark, then the key; PostgreSQL's NULLS LAST)."""
    order = [c for c in (WM, KEY) if c in raw.columns]
    ordered = raw.orderBy(*[F.asc_nulls_last(c) for c in order]) if order else raw
    numbered = ordered.withColumn(transforms.LINE, F.monotonically_increasing_id()).drop(WM, KEY)
    return mapped_rows(numbered, mapping, groups)


def read_mapped(spark: SparkSession, src: JdbcSource, mapping: TableMapping, since: db.Watermark | None = None,
                partitions: int = 4, groups: int = 8):  # fmt: skip
    """The whole Spark path: read, map, validate, posting order. Returns the rows
    (``MAPPED_SCHEMA``, persisted), the mark of this read, the warnings and derived fields."""
    raw, mark = read_text(spark, src, mapping.database, since, partitions)
    if mapping.database.watermark is not None and mark is None:
        raise MappingError(f"no rows in {src.masked} ({db.relation_text(mapping.database)})")
    rows, warnings, derived = mapped(raw, mapping, groups)
    return with_posting_order(rows, groups).persist(), mark, warnings, derived


def load_mapped_spark(spark: SparkSession, url: str, mapping: TableMapping, since: db.Watermark | None = None,
                      partitions: int = 4, groups: int = 8):  # fmt: skip
    """``finsentry.sources``' database read done on Spark, back on the driver as pandas: the
    valid canonical rows and their labels (in the server's order), and the rejected rows."""
    rows, mark, warnings, derived = read_mapped(spark, jdbc_source(url), mapping, since, partitions, groups)
    try:
        table = mapped_table(rows, mapping, warnings, derived)
    finally:
        rows.unpersist()
    return table, mark


def spec_with_query(spec: DatabaseSpec, query: str | None) -> DatabaseSpec:
    return spec if query is None else replace(spec, table=None, query=query)


# --- the Glue ingest job's side (finsentry.etl.jobs.run_ingest_database) ----------------------


def job_source(secret_id: str, url: str, region: str = "") -> JdbcSource:
    """The job's database: a Secrets Manager secret (deployed), or a URL whose password comes
    from ``PGPASSWORD`` (local runs)."""
    if secret_id:
        import json

        import boto3

        client = boto3.client("secretsmanager", **({"region_name": region} if region else {}))
        return secret_source(json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"]))
    if not url:
        raise MappingError("a database source needs --source_secret (or --source_url for a local run)")
    if db._password(url):
        raise MappingError("--source_url must not hold a password (job arguments are logged): use PGPASSWORD")
    return jdbc_source(url)


def stored_mark(text: str | None, uri: str, spec: DatabaseSpec) -> db.Watermark | None:
    """The mark of the last successful run (``mark_json``'s ``text`` read from ``uri``; None: a
    first run), when it is this source's."""
    import json

    if spec.watermark is None or text is None:
        return None
    stored = json.loads(text)
    if stored.get("relation") != db.relation_text(spec) or stored["watermark"]["column"] != spec.watermark:
        raise db.DatabaseSourceError(f"{uri} holds the mark of {stored.get('relation')}, not of "
                                     f"{db.relation_text(spec)}, column {spec.watermark}")  # fmt: skip
    return db.Watermark(**stored["watermark"])


def mark_json(mark: db.Watermark, spec: DatabaseSpec, src: JdbcSource) -> str:
    import json
    import time

    return json.dumps({"source": src.masked, "relation": db.relation_text(spec), "watermark": mark.to_dict(),
                       "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2)  # fmt: skip
