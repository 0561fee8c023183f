"""The batch transforms on Spark (Glue 5.0 runs Spark 3.5.4): same per-partition code, distributed.

* ``read_bank`` — the raw Czech tables in either form, from a folder or an S3 prefix: the
  small relations are parsed on the driver, the trans file is read as lines (numbered as in
  the file) and parsed per chunk with ``mapInPandas``.
* ``canonical`` — ``groupBy(bucket of account).applyInPandas``: the loader's join and the
  validator on whole accounts, then a global duplicate-trans_id check (the only check a
  partition cannot make alone).
* ``features`` — ``groupBy(account).applyInPandas`` for the account and sequence features, a
  second ``groupBy(partner).applyInPandas(compute_partner_features)`` for the partner features
  (rows with a partner only), joined back by ``trans_id``.

Timestamps are naive bank time: the session time zone is UTC so that they round-trip exactly.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F  # noqa: N812 - the PySpark idiom

from finsentry.datasets import czech
from finsentry.datasets.raw import REQUIRED_TABLES, TABLE_COLUMNS, RawTables
from finsentry.etl import quality, transforms
from finsentry.layout import PARTITION_KEY
from finsentry.partners import PARTNER_FEATURE_COLUMNS
from finsentry.schema import Reason

SQL_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",  # fewer, larger chunks per parse call
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}
JDBC_JAR = "/usr/share/java/postgresql.jar"  # Debian's libpostgresql-jdbc-java
_ROW_BITS = 33  # monotonically_increasing_id = partition << 33 | row within the partition


def local_session(cores: int = 2, shuffle_partitions: int = 8, memory: str = "2g",
                  app: str = "finsentry-etl") -> SparkSession:  # fmt: skip
    """A local SparkSession for tests, the demo and the benchmark (UI off, workers = this Python).

    An active session is reused as it is (its settings are not overridden)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return configure(active)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(f"local[{cores}]").appName(app)
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(cores))
        .config("spark.driver.memory", memory)
        .config("spark.sql.adaptive.enabled", "true")
    )  # fmt: skip
    for key, value in SQL_CONF.items():
        builder = builder.config(key, value)
    if os.path.isfile(JDBC_JAR):  # the PostgreSQL source (finsentry.etl.jdbc): Debian's JDBC driver
        builder = builder.config("spark.jars", JDBC_JAR)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return configure(spark)


def configure(spark: SparkSession) -> SparkSession:
    """Set the session options the transforms rely on (also on a Glue-provided session)."""
    for key, value in SQL_CONF.items():
        spark.conf.set(key, value)
    return spark


# --- reading the raw files ------------------------------------------------------------------


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _filesystem(spark: SparkSession, path: str):
    """Hadoop's file system of ``path`` and the path (local, ``file://``, ``s3://``)."""
    hpath = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def exists(spark: SparkSession, path: str) -> bool:
    """Whether there is a file or folder at ``path``."""
    fs, hpath = _filesystem(spark, path)
    return bool(fs.exists(hpath))


def list_files(spark: SparkSession, path: str) -> list[str]:
    """Names of the files directly under ``path`` (local folder, ``file://`` or ``s3://``)."""
    fs, hpath = _filesystem(spark, path)
    if not fs.exists(hpath):
        raise czech.DatasetError(f"no such folder: {path}")
    return sorted(str(s.getPath().getName()) for s in fs.listStatus(hpath) if s.isFile())


def read_texts(spark: SparkSession, paths: list[str]) -> dict[str, str]:
    """Whole (small) files as text, in one Spark job, by file name; ``.gz`` is decompressed."""
    if not paths:
        return {}
    rows = spark.read.text(paths, wholetext=True).select(F.input_file_name().alias("f"), "value").collect()
    texts = {name.rsplit("/", 1)[-1]: "" for name in paths}
    texts.update({r["f"].rsplit("/", 1)[-1]: r["value"] for r in rows})
    return texts


def numbered_lines(spark: SparkSession, path: str) -> DataFrame:
    """The file's lines with their 1-based line number: columns ``line``, ``value``."""
    lines = spark.read.text(path).withColumn("_id", F.monotonically_increasing_id())
    part = F.shiftright("_id", _ROW_BITS)
    sizes = {r["p"]: r["n"] for r in lines.groupBy(part.alias("p")).agg(F.count("*").alias("n")).collect()}
    offsets, total = {}, 0
    for p in sorted(sizes):
        offsets[p], total = total, total + sizes[p]
    if not offsets:
        return lines.select(F.lit(0).cast("bigint").alias("line"), "value")
    start = F.create_map(*[F.lit(x) for p, o in offsets.items() for x in (p, o)])
    row = F.col("_id").bitwiseAND((1 << _ROW_BITS) - 1)
    return lines.select((start[part] + row + 1).cast("bigint").alias("line"), "value")


# What Hadoop's readers say about a truncated or corrupt compressed file.
_CORRUPT_FILE = re.compile(r"(java\.io\.EOFException[^\n]*|not a gzip file|java\.util\.zip\.\w+Exception[^\n]*"
                           r"|Unexpected end of (input|ZLIB input) stream)")  # fmt: skip
_FAILED_FILE = re.compile(r"Encountered error while reading file (\S+?)\.? Details")


@contextlib.contextmanager
def readable(where: str) -> Iterator[None]:
    """Turn Spark's failure to read a truncated or corrupt (gzip) file under ``where`` into
    ``czech.DatasetError`` naming the file, as the pandas reader does; other errors pass."""
    try:
        yield
    except Exception as exc:
        text = str(exc)
        cause = _CORRUPT_FILE.search(text)
        if cause is None:
            raise
        failed = _FAILED_FILE.search(text)
        name = (failed.group(1) if failed else where).rstrip("/").rsplit("/", 1)[-1]
        raise czech.DatasetError(f"{name}: truncated or corrupt gzip file ({cause.group(0).strip()}); "
                                 "nothing was read from it: copy it again") from None  # fmt: skip


@dataclass
class RawBank:
    """The bank as Spark reads it: small relations on the driver, trans lines distributed."""

    form: czech.Form
    tables: RawTables  # the small relations (trans empty)
    parsed: DataFrame  # transforms.PARSED_SCHEMA
    unread_other: pd.DataFrame  # unreadable lines of the small tables (czech.QUARANTINE_COLUMNS)
    trans_file: str

    @property
    def dims(self) -> transforms.Dimensions:
        return transforms.Dimensions.of(self.tables)


def read_bank(spark: SparkSession, path: str) -> RawBank:
    """Read the raw tables of either form under ``path`` (a folder or an S3 prefix)."""
    names = list_files(spark, path)
    form = czech.form_of_names(names, path)
    files = {}
    for table in TABLE_COLUMNS:
        found = czech.table_file_names(names, table, form)
        if found:
            files[table] = found[0]
        elif table in REQUIRED_TABLES:
            raise czech.DatasetError(f"missing {table} table in {path} ({form} form)")
    with readable(path):
        texts = read_texts(spark, [_join(path, f) for t, f in files.items() if t != "trans"])
    tables, unread = {}, []
    for table, name in files.items():
        if table != "trans":
            tables[table], bad = czech.parse_table(table, texts[name], form)
            czech.require_rows(table, tables[table], bad, name)
            unread.append(bad)
    trans_file = _join(path, czech.table_file_names(names, "trans", form)[0])
    with readable(trans_file):
        lines = numbered_lines(spark, trans_file)  # reads the whole file: a corrupt one fails here
    lines = lines.withColumn("value", F.col("value").cast("binary"))  # decoded by the parser, as pandas does
    header = None
    if form == "asc":
        first = spark.read.text(trans_file).limit(1).collect()  # reads the first split only
        header = first[0]["value"] if first else ""
        lines = lines.where("line > 1")

    def parse(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            yield transforms.parse_trans_chunk(chunk, header, form)

    parsed = lines.mapInPandas(parse, transforms.PARSED_SCHEMA)
    small = RawTables(trans=pd.DataFrame({c: [] for c in TABLE_COLUMNS["trans"]}), **tables)
    other = pd.concat(unread, ignore_index=True) if unread else pd.DataFrame(columns=list(czech.QUARANTINE_COLUMNS))
    return RawBank(form=form, tables=small, parsed=parsed, unread_other=other, trans_file=trans_file)


# --- canonical transactions -----------------------------------------------------------------


def mark_repeated_ids(parsed: DataFrame) -> DataFrame:
    """``transforms.mark_repeated_ids`` across partitions: a readable row whose trans_id an
    earlier readable line has is quarantined as ``duplicate_id`` (the first in file order is
    kept). Only the rows of repeated ids are ranked; ``parsed`` should be persisted."""
    readable = F.col("q_reason") == ""
    repeated = parsed.where(readable).groupBy("trans_id").agg(F.count("*").alias("n")).where("n > 1")
    ids = [r["trans_id"] for r in repeated.select("trans_id").collect()]
    if not ids:
        return parsed
    suspect = readable & F.col("trans_id").isin(ids)
    first = Window.partitionBy("trans_id").orderBy(transforms.LINE)
    ranked = parsed.where(suspect).withColumn("_rank", F.row_number().over(first))
    marked = ranked.unionByName(parsed.where(~suspect).withColumn("_rank", F.lit(1)))
    again = F.col("_rank") > 1
    record = F.to_json(F.struct(*[F.col(c).cast("string") if c == "ts" else F.col(c) for c in TABLE_COLUMNS["trans"]]))
    fields = {"q_table": F.lit("trans"), "q_reason": F.lit(str(Reason.DUPLICATE_ID)), "q_detail": F.lit("trans_id"),
              "q_raw": record}  # fmt: skip
    return marked.select(*[F.when(again, fields[c]).otherwise(F.col(c)).alias(c) if c in fields else c
                           for c in parsed.columns])  # fmt: skip


def canonical(parsed: DataFrame, dims: transforms.Dimensions, buckets: int = 8) -> DataFrame:
    """Readable parsed rows -> canonical rows (CANONICAL_SCHEMA, persisted), valid or rejected
    with a reason. Accounts are spread over ``buckets`` groups; each group is joined and
    validated by the loader's own code."""

    def to_canonical(chunk: pd.DataFrame) -> pd.DataFrame:
        return transforms.canonical_chunk(chunk.drop(columns=["_bucket"]), dims)

    good = parsed.where(F.col("q_reason") == "").drop(*transforms.QUARANTINE_FIELDS)
    bucketed = good.withColumn("_bucket", F.pmod(F.xxhash64("account_id"), F.lit(buckets)))
    return bucketed.groupBy("_bucket").applyInPandas(to_canonical, transforms.CANONICAL_SCHEMA).persist()


def chunk_counts(canon: DataFrame) -> dict[str, int]:
    """``quality.chunk_counts`` per partition, summed on the driver."""
    import json

    def count(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        parts = [quality.chunk_counts(c) for c in chunks]
        yield pd.DataFrame({"counts": [json.dumps(quality.merge_counts(parts))]})

    rows = canon.mapInPandas(count, "counts string").collect()
    return quality.merge_counts(json.loads(r["counts"]) for r in rows)


def with_partition(frame: DataFrame) -> DataFrame:
    """Add the ``dt`` (YYYY-MM-DD of ``ts``) partition column."""
    return frame.withColumn(PARTITION_KEY, F.date_format("ts", "yyyy-MM-dd"))


# --- features -------------------------------------------------------------------------------


def features(transactions: DataFrame, account_groups: int = 0,
             partner_order: tuple[str, ...] = transforms.LOADER_ORDER) -> DataFrame:  # fmt: skip
    """Curated feature rows (FEATURES_SCHEMA + dt) of canonical transactions carrying ``seq``:
    the pandas path's rows (``features_with_sequence``), computed in two ``applyInPandas`` stages.

    Account and sequence features on groups of whole accounts. ``account_groups=0``: one group
    per account (``groupBy("account_id")``). ``n > 0``: accounts hashed into ``n`` groups, each
    still holding whole accounts, so that the kernel runs once per group instead of once per
    account (same result: accounts are independent). Partner features on groups of whole
    partners (the same grouping rule, on the partner key), rows without a partner left out (they
    get 0), joined back by ``trans_id``. Within a partner, rows at the same time keep
    ``partner_order`` (the loader's by default; a global position for ``features_of_frame``).
    """
    cols = transactions.select(*transforms.FEATURE_INPUT_COLUMNS)
    account = _grouped(cols, F.col("account_id"), account_groups,
                       lambda chunk: transforms.account_features(chunk, with_partners=False),
                       transforms.ACCOUNT_FEATURES_SCHEMA)  # fmt: skip
    bank, number = F.coalesce("partner_bank", F.lit("")), F.coalesce("partner_account", F.lit(""))
    partnered = cols.where((bank != "") | (number != ""))
    partner = _grouped(partnered, F.concat(bank, F.lit("/"), number), account_groups,
                       lambda chunk: transforms.partner_features(chunk, partner_order),
                       transforms.PARTNER_FEATURES_SCHEMA)  # fmt: skip
    joined = account.join(partner, "trans_id", "left").fillna(0.0, subset=list(PARTNER_FEATURE_COLUMNS))
    names = [c.split(" ")[0] for c in transforms.FEATURES_SCHEMA.split(", ")]
    return with_partition(joined.select(*names))


def _grouped(frame: DataFrame, key, groups: int, transform, schema: str) -> DataFrame:
    """``transform`` on groups of whole ``key`` values: one per value, or ``groups`` hashed ones."""

    def run(chunk: pd.DataFrame) -> pd.DataFrame:
        return transform(chunk.drop(columns=["_group"]))

    size = F.lit(groups) if groups > 0 else None
    group = F.pmod(F.xxhash64(key), size) if size is not None else key
    return frame.withColumn("_group", group).groupBy("_group").applyInPandas(run, schema)


def features_of_frame(spark: SparkSession, transactions: pd.DataFrame, account_groups: int = 16) -> pd.DataFrame:
    """Features of a pandas frame of canonical transactions through Spark, aligned with it
    (same index): within an account, ties in time keep the frame's order, as in the batch form."""
    from finsentry.features import CURATED_COLUMNS

    frame = transactions.reset_index(drop=True)
    inputs = pd.DataFrame({c: frame[c].astype(str).astype(object) for c in _STRING_INPUTS})
    for c in ("amount", "balance_before", "balance_after"):
        inputs[c] = frame[c].astype("float64")
    inputs["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[ns]")
    inputs[transforms.SEQ] = range(len(frame))
    sdf = spark.createDataFrame(inputs[list(transforms.FEATURE_INPUT_COLUMNS)], schema=_input_schema())
    out = features(sdf, account_groups, partner_order=(transforms.SEQ,)).drop(PARTITION_KEY).toPandas()
    out = out.sort_values(transforms.SEQ)
    result = out[list(CURATED_COLUMNS)].reset_index(drop=True)
    result.index = transactions.index
    return result


_STRING_INPUTS = ("trans_id", "account_id", "direction", "operation", "k_symbol", "partner_bank", "partner_account")


def _input_schema() -> str:
    types = {"ts": "timestamp", "amount": "double", "balance_before": "double", "balance_after": "double",
             transforms.SEQ: "bigint"}  # fmt: skip
    return ", ".join(f"{c} {types.get(c, 'string')}" for c in transforms.FEATURE_INPUT_COLUMNS)
