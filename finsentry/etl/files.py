"""A bank's own transaction files on Spark: the Glue ingest job with a mapping without ``database:``.

Every ``.csv``, ``.tsv``, ``.txt``, ``.parquet`` or ``.pq`` file directly under the raw prefix
(gzip allowed: ``.csv.gz``), in name order, is one part of one table. Spark's ``binaryFile``
reader gives each file's bytes; a ``mapInPandas`` task writes them to a temporary file of the
same name (the suffix says CSV, Parquet, gzip) and reads it with ``mapping.read_table``, the
pandas path's one reader: a line that is not a row of the table (too many fields, bytes that
are not UTF-8) is set apart as ``malformed`` with the same detail, and a file the reader
cannot read at all (a truncated ``.gz``, not Parquet) is the same ``MappingError``, raised on
the driver. The cells the mapping reads go on as text (``mapping.cell_text``: Parquet's typed
cells as ``derive_trans_ids`` prints them) with their place in the table (``transforms.LINE`` =
file number x 2**40 + row number, 1-based) to ``finsentry.etl.mapped``: the pandas path's
mapping and validation, then posting order.

The files are one table: the pandas path's ``map_table`` of their rows concatenated in name
order (a trans_id repeated in a later file is a ``duplicate_id``; derived ids number identical
rows across files). One file is read whole by one task: its rows must fit a worker's memory as
a pandas frame, as they must in the pandas path; split a very large export into several files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.types import LongType, StringType, StructField, StructType

from finsentry.datasets.czech import DatasetError
from finsentry.etl import transforms
from finsentry.etl.mapped import mapped_rows, with_posting_order
from finsentry.mapping import MappingError, TableMapping, apply_mapping, cell_text, read_table

SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
FILE_BITS = 40  # LINE = file number << FILE_BITS | row number (1-based; 0: a malformed line)
READ_FIELDS = ("q_reason", "q_detail", "q_raw")  # set on a line that is not a row of the table
UNREADABLE = "unreadable_file"  # q_reason of a file the reader cannot read at all (q_detail: why)
OUT_ROWS = 100_000  # rows per frame handed back to Spark


def is_table_file(name: str) -> bool:
    """A file the mapped source reads: a table suffix, optionally gzipped."""
    return name.lower().removesuffix(".gz").endswith(SUFFIXES)


def table_files(spark: SparkSession, uri: str) -> list[str]:
    """Names of the table files directly under ``uri``, in name order; none is a ``MappingError``."""
    from finsentry.etl.spark import list_files

    try:
        names = [n for n in list_files(spark, uri) if is_table_file(n)]
    except DatasetError:  # no such folder (an S3 prefix without objects is one)
        names = []
    if not names:
        raise MappingError(f"no bank file under {uri} ({', '.join(SUFFIXES)}; gzip allowed, e.g. .csv.gz)")
    return names


def source_columns(mapping: TableMapping) -> list[str]:
    """The source columns the mapping reads (mapped fields, then the label columns), once each."""
    return list(dict.fromkeys([*mapping.columns.values(), *(c for c in (mapping.label, mapping.label_type) if c)]))


def parsed_schema(columns: list[str]) -> StructType:
    return StructType([StructField(c, StringType()) for c in columns] + [StructField(transforms.LINE, LongType())]
                      + [StructField(f, StringType()) for f in READ_FIELDS])  # fmt: skip


def file_rows(name: str, content: bytes, number: int, mapping: TableMapping) -> pd.DataFrame:
    """One file's rows as ``parsed_schema``: the mapping's source columns as text with their
    ``LINE``, then its malformed lines (``q_*`` set); a file that cannot be read, or lacks a
    column the mapping reads, is one ``UNREADABLE`` row saying why."""
    columns = source_columns(mapping)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        try:
            table = read_table(path, mapping)
            apply_mapping(table.rows.iloc[:0], mapping)  # the columns the mapping reads are there
        except MappingError as err:
            message = str(err) if str(err).startswith(name) else f"{name}: {err}"
            why = pd.DataFrame({"reason": [UNREADABLE], "detail": [message], "raw": [""]})
            return _spark_ready(_read_rows(columns, number, why))
    rows = pd.DataFrame({c: table.rows[c].map(cell_text).astype(object) for c in columns})
    rows[transforms.LINE] = (number << FILE_BITS) + pd.RangeIndex(1, len(rows) + 1).to_numpy(dtype="int64")
    for f in READ_FIELDS:
        rows[f] = ""
    return _spark_ready(pd.concat([rows, _read_rows(columns, number, table.malformed)], ignore_index=True))


def _spark_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain objects (pandas 3's string dtype reaches Arrow as a chunked array)."""
    return frame.astype({c: object for c in frame.columns if c != transforms.LINE})


def _read_rows(columns: list[str], number: int, rejected: pd.DataFrame) -> pd.DataFrame:
    """Lines that are not rows (reason, detail, raw) in ``parsed_schema``, at row 0 of the file."""
    out = pd.DataFrame({c: pd.Series("", index=range(len(rejected)), dtype=object) for c in columns})
    out[transforms.LINE] = pd.Series(number << FILE_BITS, index=out.index, dtype="int64")
    for f, source in zip(READ_FIELDS, ("reason", "detail", "raw"), strict=True):
        out[f] = rejected[source].astype(str).to_numpy()
    return out


def read_files(spark: SparkSession, uri: str, names: list[str], mapping: TableMapping) -> DataFrame:
    """The files ``names`` under ``uri`` parsed (``file_rows`` per file, on the workers)."""
    number = {n: i for i, n in enumerate(names)}

    def parse(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            for path, content in zip(chunk["path"], chunk["content"], strict=True):
                name = path.rsplit("/", 1)[-1]
                name = name if name in number else unquote(name)
                rows = file_rows(name, bytes(content), number[name], mapping)
                for start in range(0, max(len(rows), 1), OUT_ROWS):
                    yield rows.iloc[start:start + OUT_ROWS]

    contents = spark.read.format("binaryFile").load([uri.rstrip("/") + "/" + n for n in names])
    return contents.select("path", "content").mapInPandas(parse, parsed_schema(source_columns(mapping)))


@dataclass
class MappedFiles:
    """The files after mapping: ``rows`` (``mapped.MAPPED_SCHEMA``, posting order set,
    persisted), the lines that were no rows (``unread``: table, line, reason, detail, raw), the
    malformed count per reason, and the mapping's warnings and derived fields."""

    names: list[str]
    parsed: DataFrame
    rows: DataFrame
    read_reasons: dict[str, int]
    warnings: list[str]
    derived: list[str]

    def location(self) -> tuple[Column, Column]:
        """Where a row comes from: its file's name and its row number in the file (null for a
        line that is not a row)."""
        number = F.shiftright(F.col(transforms.LINE), FILE_BITS)
        row = F.col(transforms.LINE).bitwiseAND((1 << FILE_BITS) - 1)
        table = F.element_at(F.array(*[F.lit(n) for n in self.names]), (number + 1).cast("int"))
        return table, F.when(row > 0, row)

    @property
    def unread(self) -> DataFrame:
        table, line = self.location()
        return self.parsed.where(F.col("q_reason") != "").select(
            table.alias("table"), line.alias("line"), F.col("q_reason").alias("reason"),
            F.col("q_detail").alias("detail"), F.col("q_raw").alias("raw"))  # fmt: skip

    def unpersist(self) -> None:
        self.rows.unpersist()
        self.parsed.unpersist()


def read_mapped_files(spark: SparkSession, uri: str, mapping: TableMapping, groups: int = 8) -> MappedFiles:
    """The whole Spark path of the files under ``uri``: list, read, map, validate, posting
    order. A file the reader cannot read is a ``MappingError`` (the first in name order)."""
    names = table_files(spark, uri)
    parsed = read_files(spark, uri, names, mapping).persist()
    counted = parsed.where("q_reason != ''").groupBy("q_reason").count().collect()
    by_reason = {r["q_reason"]: r["count"] for r in counted}
    if UNREADABLE in by_reason:
        message = _unreadable(parsed)
        parsed.unpersist()
        raise MappingError(message)
    rows, warnings, derived = mapped_rows(parsed.where("q_reason = ''").drop(*READ_FIELDS), mapping, groups)
    return MappedFiles(names, parsed, with_posting_order(rows, groups).persist(), by_reason, warnings, derived)


def _unreadable(parsed: DataFrame) -> str:
    why = sorted(parsed.where(F.col("q_reason") == UNREADABLE).select(transforms.LINE, "q_detail").collect())
    more = f" (and {len(why) - 1} more unreadable file{'s' if len(why) > 2 else ''})" if len(why) > 1 else ""
    return why[0]["q_detail"] + more


def load_mapped_files_spark(spark: SparkSession, uri: str, mapping: TableMapping, groups: int = 8):
    """The files under ``uri`` read on Spark, back on the driver as the pandas path's
    ``MappedTable`` (valid rows and labels in table order; rejections, malformed lines last)."""
    from finsentry.etl.mapped import mapped_table

    read = read_mapped_files(spark, uri, mapping, groups)
    try:
        unread = read.unread.select("reason", "detail", "raw").toPandas()
        return mapped_table(read.rows, mapping, read.warnings, read.derived, unread)
    finally:
        read.unpersist()
