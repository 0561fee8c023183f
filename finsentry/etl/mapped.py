"""Mapped source rows on Spark: the shared half of the ingest job's database and file sources.

A source reader (``finsentry.etl.jdbc`` for a PostgreSQL table, ``finsentry.etl.files`` for the
bank's own CSV/Parquet files) gives the source's cells as text and each row's place in the
source's order (``transforms.LINE``). From there both run the same code:

* ``mapped_rows`` — the pandas path's own mapping and validation (``mapping.map_table``) on
  groups of rows that hold every row sharing a trans_id (a hash of the trans_id's source column;
  of every mapped column when the id is derived), each group in source order, so the first of
  two rows with one id is kept and derived ids number their repeats as the pandas path does;
* ``with_posting_order`` — a second grouping by account gives ``seq`` (posting order) and the
  quality row flags, in ``transforms.CANONICAL_SCHEMA`` (+ the label columns);
* ``job_mapping`` — the ingest job's mapping YAML (S3 or local), parsed and checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from finsentry.etl import quality, transforms
from finsentry.mapping import MappedTable, MappingError, TableMapping, apply_mapping, map_table
from finsentry.schema import TRANSACTION_SCHEMA, ValidationResult

LABELS = ("is_anomaly", "anomaly_type")
MAPPED_SCHEMA = transforms.CANONICAL_SCHEMA + ", is_anomaly boolean, anomaly_type string"


def column(name: str) -> Column:
    """A source column by its name as it is (dots, spaces and backticks included)."""
    return F.col("`" + name.replace("`", "``") + "`")


def _id_columns(raw_columns: list[str], mapping: TableMapping) -> list[str]:
    """Source columns whose equal values put rows in one group: the trans_id's column, else
    every mapped column (identical rows number their repeats together)."""
    if "trans_id" in mapping.columns:
        return [mapping.columns["trans_id"]]
    return sorted({c for c in mapping.columns.values() if c in raw_columns})


def mapped_rows(raw: DataFrame, mapping: TableMapping, groups: int = 8) -> tuple[DataFrame, list[str], list[str]]:
    """Text rows with their source order (``transforms.LINE``) -> mapped and validated rows
    (``MAPPED_SCHEMA``: canonical columns, ``_line``, ``status``/``reason``/``detail``/``raw``,
    the label); plus the mapping's warnings and derived fields (checked on the driver first, so
    a mapping that does not fit fails here with its ``MappingError``)."""
    columns = [c for c in raw.columns if c != transforms.LINE]
    _, warnings, derived = apply_mapping(pd.DataFrame({c: pd.Series(dtype=object) for c in columns}), mapping)
    key = F.xxhash64(*[column(c) for c in _id_columns(columns, mapping)])
    bucketed = raw.withColumn("_bucket", F.pmod(key, F.lit(groups)))

    def validate(chunk: pd.DataFrame) -> pd.DataFrame:
        chunk = chunk.sort_values(transforms.LINE, kind="stable").reset_index(drop=True)
        return mapped_chunk(chunk.drop(columns=["_bucket", transforms.LINE]), chunk[transforms.LINE], mapping)

    return bucketed.groupBy("_bucket").applyInPandas(validate, MAPPED_SCHEMA), warnings, derived


def mapped_chunk(raw: pd.DataFrame, lines: pd.Series, mapping: TableMapping) -> pd.DataFrame:
    """``map_table`` of one group of text rows, in ``MAPPED_SCHEMA`` (seq and flags unset)."""
    table = map_table(raw, mapping)
    result, line = table.result, lines.to_numpy()
    valid = result.valid.copy()
    valid[transforms.LINE] = line[result.valid_positions]
    valid = valid.assign(**{transforms.SEQ: -1, "status": transforms.STATUS_VALID, "reason": "", "detail": "",
                            "raw": ""})  # fmt: skip
    labels = table.labels if table.labels is not None else pd.DataFrame({"is_anomaly": False, "anomaly_type": ""},
                                                                         index=range(len(valid)))  # fmt: skip
    rejected = result.rejected
    bad = pd.DataFrame({transforms.LINE: line[result.rejected_positions], transforms.SEQ: -1,
                        "status": transforms.STATUS_REJECTED, "reason": rejected["reason"].to_numpy(),
                        "detail": rejected["detail"].to_numpy(), "raw": rejected["raw"].to_numpy()})  # fmt: skip
    out = transforms.typed_canonical(pd.concat([valid, bad], ignore_index=True))
    out["is_anomaly"] = np.concatenate([labels["is_anomaly"].to_numpy(dtype=bool), np.zeros(len(bad), bool)])
    out["anomaly_type"] = np.concatenate([labels["anomaly_type"].astype(str).to_numpy(), np.full(len(bad), "")])
    return out


def with_posting_order(rows: DataFrame, groups: int = 8) -> DataFrame:
    """``seq`` (posting order within the account, by ``_line``) and the quality row flags of the
    valid rows, on groups of whole accounts; rejected rows pass as they are."""
    valid = rows.where(F.col("status") == transforms.STATUS_VALID)
    rejected = rows.where(F.col("status") != transforms.STATUS_VALID)

    def chain(chunk: pd.DataFrame) -> pd.DataFrame:
        chunk = chunk.drop(columns=["_bucket"]).sort_values(["account_id", transforms.LINE], kind="stable")
        chunk = chunk.reset_index(drop=True)
        chunk[transforms.SEQ] = chunk.groupby("account_id", sort=False).cumcount().astype("int64")
        flags = quality.row_flags(chunk)
        for f in quality.ROW_FLAGS:
            chunk[f] = flags[f].to_numpy()
        return chunk

    bucket = F.pmod(F.xxhash64("account_id"), F.lit(groups))
    chained = valid.withColumn("_bucket", bucket).groupBy("_bucket").applyInPandas(chain, MAPPED_SCHEMA)
    return chained.unionByName(rejected)


def mapped_table(rows: DataFrame, mapping: TableMapping, warnings: list[str], derived: list[str],
                 unread: pd.DataFrame | None = None) -> MappedTable:  # fmt: skip
    """Mapped rows back on the driver as the pandas path's ``MappedTable``: the valid canonical
    rows and their labels in source order, the rejected rows (then ``unread``: lines that were
    no row, reason / detail / raw)."""
    frame = rows.toPandas().sort_values(transforms.LINE, kind="stable").reset_index(drop=True)
    ok = frame["status"] == transforms.STATUS_VALID
    valid = frame.loc[ok, list(transforms.CANONICAL_COLUMNS)].reset_index(drop=True)
    valid = valid.astype({"ts": "datetime64[ns]"})
    for col in TRANSACTION_SCHEMA:
        if col.kind == "int" and col.name in valid:
            valid[col.name] = valid[col.name].astype("int64")
    labels = frame.loc[ok, list(LABELS)].reset_index(drop=True) if mapping.label is not None else None
    rejected = frame.loc[~ok, ["reason", "detail", "raw"]]
    rejected = pd.concat([rejected, unread], ignore_index=True) if unread is not None else rejected
    return MappedTable(result=ValidationResult(valid=valid, rejected=rejected.reset_index(drop=True)),
                       warnings=warnings, derived=derived, labels=labels)  # fmt: skip


def job_mapping(spark: SparkSession, uri: str) -> TableMapping:
    """The mapping YAML at ``uri`` (S3 or local), parsed and checked; a missing, empty or
    unparseable file is a ``MappingError`` naming it."""
    import yaml

    from finsentry.etl.spark import exists, read_texts
    from finsentry.mapping import parse_mapping

    if not exists(spark, uri):
        raise MappingError(f"{uri}: no such mapping file")
    text = read_texts(spark, [uri]).get(uri.rsplit("/", 1)[-1], "")
    if not text.strip():
        raise MappingError(f"{uri}: empty or missing mapping file")
    try:
        return parse_mapping(yaml.safe_load(text), source=uri.rsplit("/", 1)[-1])
    except yaml.YAMLError as err:
        raise MappingError(f"{uri}: not YAML ({' '.join(str(err).split())})") from err
