"""The local demo's choice of engine (``finsentry demo --engine pandas|spark``).

Both engines run the same code: ``pandas`` calls the loader and the feature kernel in this
process; ``spark`` runs them through a local SparkSession (``finsentry.etl.spark``), as the
Glue jobs do, and hands back the same pandas objects.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from finsentry.datasets import czech
from finsentry.features import features_with_sequence
from finsentry.schema import ValidationResult

ENGINES = ("pandas", "spark")


def _check(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")


def load_bank(directory: Path | str, engine: str = "pandas") -> czech.LoadedBank:
    """Canonical transactions, orders, districts and quarantine of a folder of bank files."""
    _check(engine)
    if engine == "pandas":
        return czech.load(directory)
    return spark_load_bank(directory)


def compute(transactions: pd.DataFrame, engine: str = "pandas") -> pd.DataFrame:
    """``features_with_sequence`` of ``transactions`` (aligned with it): the point-in-time
    features, in this process or on Spark, plus the LSTM's sequence columns."""
    _check(engine)
    if engine == "pandas":
        return features_with_sequence(transactions)
    from finsentry.etl import spark

    return spark.features_of_frame(spark.local_session(), transactions)


def spark_load_bank(directory: Path | str, buckets: int = 8) -> czech.LoadedBank:
    """``czech.load`` through local Spark: same rows, same order, same reasons."""
    from pyspark.sql import functions as F  # noqa: N812

    from finsentry.etl import spark, transforms

    session = spark.local_session()
    bank = spark.read_bank(session, str(Path(directory).resolve()))
    parsed = spark.mark_repeated_ids(bank.parsed.persist())
    canon = spark.canonical(parsed, bank.dims, buckets)
    rows = canon.toPandas()
    held = parsed.where(F.col("q_reason") != "").toPandas()
    canon.unpersist()
    parsed.unpersist()
    valid = rows[rows["status"] == transforms.STATUS_VALID]
    order = pd.DataFrame({"a": pd.to_numeric(valid["account_id"], errors="coerce"), "s": valid[transforms.SEQ]})
    valid = valid.loc[order.sort_values(["a", "s"], kind="stable").index, list(transforms.CANONICAL_COLUMNS)]
    valid = valid.astype({"ts": "datetime64[ns]"}).reset_index(drop=True)
    repeated = held["q_reason"] == transforms.DUPLICATE_ID
    rejected = pd.concat([
        rows.loc[rows["status"] != transforms.STATUS_VALID, ["reason", "detail", "raw"]],
        held.loc[repeated, ["q_reason", "q_detail", "q_raw"]].set_axis(["reason", "detail", "raw"], axis=1),
    ], ignore_index=True)  # fmt: skip
    unread = held.loc[~repeated, ["q_table", transforms.LINE, "q_reason", "q_detail", "q_raw"]]
    unread = unread.set_axis(list(czech.QUARANTINE_COLUMNS), axis=1)
    return czech.LoadedBank(
        transactions=ValidationResult(valid=valid, rejected=rejected),
        orders=czech.orders_frame(bank.tables), districts=czech.districts_frame(bank.tables),
        quarantine=pd.concat([bank.unread_other, unread], ignore_index=True), form=bank.form,
    )  # fmt: skip
