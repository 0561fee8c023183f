"""Batch data preparation time: raw Czech bank files -> curated Parquet, on Spark and on pandas.

    python -m bench.etl [--transactions 1056320] [--cores 2] [--buckets 16] [--skip-pandas]
                        [--db-transactions N] [--skip-database]

Writes a synthetic bank of exactly ``--transactions`` transactions (the Czech dataset's full
size by default) as ``.asc`` files, then times raw -> curated twice:

* **spark**: the Glue jobs' code (``finsentry.etl.jobs.run_ingest`` then ``run_features``) on a
  local SparkSession with ``--cores`` cores: parse, validate and join, quality report,
  quarantine, ``curated/transactions/`` and ``curated/features/`` Parquet partitioned by day,
  catalog and metrics calls (moto). JVM start-up is reported apart.
* **pandas**: the same transforms in one process (``finsentry.etl.pandas_engine``), writing
  the same two Parquet datasets with pyarrow.

Then the database source (``--db-transactions``, default 1,000,000; the first N canonical
rows): a local PostgreSQL server (``finsentry.local.postgres``) is started and loaded with them
as a bank's typed table, and the same two engines read it into curated features:

* **spark (PostgreSQL)**: the ingest job's database path (``jobs.run_ingest_database``: JDBC
  reads partitioned by the watermark, mapping and validation, posting order) then
  ``run_features``;
* **pandas (PostgreSQL)**: ``finsentry.database.read_rows`` (server-side cursor, chunks) and
  ``mapping.map_table``, then the pandas engine's features; both write the same Parquet.

Loading the table is not timed. Prints a table, then as its last line one JSON object: rows,
spark_seconds, pandas_seconds, rows per second for both, the stage split, whether Spark met
the 120 s goal, and the database rows (``db_*``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from finsentry.datasets import czech
from finsentry.datasets.synthetic import config_for_transactions, generate_bank

GOAL_SECONDS = 120.0
CZECH_TRANSACTIONS = 1_056_320


def _bank(n: int, directory: Path, console: Console) -> int:
    """Write a synthetic bank with exactly ``n`` transactions (the last account cut short)."""
    config = config_for_transactions(n)
    raw = generate_bank(config)
    if len(raw.trans) < n:
        config.n_accounts = math.ceil(config.n_accounts * n / len(raw.trans) * 1.02)
        raw = generate_bank(config)
    raw.trans = raw.trans.iloc[:n].reset_index(drop=True)
    czech.write_tables(raw, directory, form="asc")
    console.log(f"{len(raw.trans):,} transactions on {config.n_accounts:,} accounts written to {directory}")
    return len(raw.trans)


def _pandas(raw_dir: Path, out: Path) -> dict[str, float]:
    from finsentry.etl import pandas_engine

    laps: dict[str, float] = {}
    started = time.perf_counter()
    result = pandas_engine.ingest(raw_dir)
    transactions = result.transactions
    transactions = transactions.assign(dt=transactions["ts"].dt.strftime("%Y-%m-%d"))
    pq.write_to_dataset(pa.Table.from_pandas(transactions, preserve_index=False), out / "transactions",
                        partition_cols=["dt"])  # fmt: skip
    laps["ingest"] = time.perf_counter() - started
    features = pandas_engine.features(result.transactions)
    pq.write_to_dataset(pa.Table.from_pandas(features, preserve_index=False), out / "features", partition_cols=["dt"])
    laps["features"] = time.perf_counter() - started - laps["ingest"]
    laps["total"] = time.perf_counter() - started
    laps["rows_out"] = result.report.rows_out
    return laps


def _spark(raw_dir: Path, root: Path, cores: int, buckets: int) -> dict[str, float]:
    """Both Glue jobs on local Spark; ``raw_dir`` is a folder of ``root``."""

    from finsentry.etl import jobs
    from finsentry.etl.spark import local_session

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - moto
                 "AWS_DEFAULT_REGION": "eu-west-1"}.items():  # fmt: skip
        os.environ.setdefault(k, v)
    started = time.perf_counter()
    spark = local_session(cores=cores, shuffle_partitions=2 * cores, memory="6g", app="bench-etl")
    laps = {"startup": time.perf_counter() - started}
    opts = jobs.JobOptions(data_bucket="bench", env="bench", root=str(root), buckets=buckets, max_rejected_share=0.05,
                           raw_prefix=raw_dir.name + "/")  # fmt: skip
    return {**laps, **_job_laps(spark, opts)}


def _job_laps(spark, opts) -> dict:
    """The Glue ingest and features jobs on ``spark`` (S3 in moto): seconds per stage, rows out."""
    from moto import mock_aws

    from finsentry.etl import jobs

    with mock_aws():
        started = time.perf_counter()
        report = jobs.run_ingest(spark, opts)
        laps = {"ingest": time.perf_counter() - started}
        second = jobs.run_features(spark, opts)
        laps["features"] = time.perf_counter() - started - laps["ingest"]
    laps["stages"] = {"ingest": report.seconds, "features": second.seconds}
    laps["total"] = laps["ingest"] + laps["features"]
    laps["rows_out"] = report.rows_out
    spark.stop()
    return laps


def _load_database(raw_dir: Path, n: int, console: Console):
    """A started local PostgreSQL holding the first ``n`` canonical rows of the bank in
    ``raw_dir`` as ``bank.transactions``; and the mapping file that reads it."""
    import yaml

    from finsentry.local.postgres import BANK_TYPES, LocalPostgres, bank_mapping, bank_table

    canonical = czech.load(raw_dir).transactions.valid.iloc[:n]
    server = LocalPostgres().start()
    started = time.perf_counter()
    server.load("bank.transactions", bank_table(canonical), BANK_TYPES)
    console.log(f"{len(canonical):,} rows loaded into {server.url} in {time.perf_counter() - started:.1f} s")
    mapping = raw_dir.parent / "bank.mapping.yaml"
    mapping.write_text(yaml.safe_dump(bank_mapping("bank.transactions", chunk_rows=50_000)))
    return server, mapping, len(canonical)


def _pandas_database(url: str, mapping_path: Path, out: Path) -> dict[str, float]:
    from finsentry import database as db
    from finsentry.etl import pandas_engine, transforms
    from finsentry.mapping import load_mapping, map_table

    mapping = load_mapping(mapping_path)
    started = time.perf_counter()
    table = map_table(db.read_rows(url, mapping.database).raw, mapping)
    valid = table.result.valid
    valid[transforms.SEQ] = valid.groupby("account_id", sort=False).cumcount()
    transactions = valid.assign(dt=valid["ts"].dt.strftime("%Y-%m-%d"))
    pq.write_to_dataset(pa.Table.from_pandas(transactions, preserve_index=False), out / "transactions",
                        partition_cols=["dt"])  # fmt: skip
    laps = {"ingest": time.perf_counter() - started}
    features = pandas_engine.features(valid)
    pq.write_to_dataset(pa.Table.from_pandas(features, preserve_index=False), out / "features", partition_cols=["dt"])
    laps["features"] = time.perf_counter() - started - laps["ingest"]
    laps["total"] = time.perf_counter() - started
    laps["rows_out"] = len(valid)
    return laps


def _spark_database(url: str, mapping: Path, root: Path, cores: int, buckets: int) -> dict[str, float]:
    """The ingest job's database path, then the features job, on local Spark."""

    from finsentry.etl import jobs
    from finsentry.etl.spark import local_session

    spark = local_session(cores=cores, shuffle_partitions=2 * cores, memory="6g", app="bench-etl")
    opts = jobs.JobOptions(data_bucket="bench", env="bench", root=str(root), buckets=buckets, max_rejected_share=0.05,
                           source_mapping=str(mapping), source_url=url, source_partitions=2 * cores)  # fmt: skip
    return _job_laps(spark, opts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=CZECH_TRANSACTIONS)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--buckets", type=int, default=16, help="account groups of the canonical stage")
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--db-transactions", type=int, default=1_000_000,
                        help="rows of the PostgreSQL source (at most --transactions)")
    parser.add_argument("--skip-database", action="store_true")
    args = parser.parse_args(argv)
    console = Console(stderr=False)
    with tempfile.TemporaryDirectory(prefix="bench-etl-") as tmp:
        tmp_path = Path(tmp)
        rows = _bank(args.transactions, tmp_path / "raw", console)
        console.log(f"spark: local[{args.cores}]")
        spark = _spark(tmp_path / "raw", tmp_path, args.cores, args.buckets)
        pandas = None
        if not args.skip_pandas:
            console.log("pandas engine")
            pandas = _pandas(tmp_path / "raw", tmp_path / "pandas")
        db_rows, db_spark, db_pandas = 0, None, None
        if not args.skip_database:
            server, mapping, db_rows = _load_database(tmp_path / "raw", args.db_transactions, console)
            try:
                console.log("spark engine, PostgreSQL source")
                db_spark = _spark_database(server.url, mapping, tmp_path / "db", args.cores, args.buckets)
                console.log("pandas engine, PostgreSQL source")
                db_pandas = _pandas_database(server.url, mapping, tmp_path / "db-pandas")
            finally:
                server.stop()
    table = Table(title=f"raw -> curated, {rows:,} transactions")
    for column in ("engine", "ingest s", "features s", "total s", "rows/s", "rows out"):
        table.add_column(column, justify="right")
    table.add_column("rows in", justify="right")
    for name, laps, n in (("spark, files", spark, rows), ("pandas (1 process), files", pandas, rows),
                          ("spark, PostgreSQL", db_spark, db_rows), ("pandas (1 process), PostgreSQL", db_pandas,
                                                                     db_rows)):  # fmt: skip
        if laps is not None:
            table.add_row(name, f"{laps['ingest']:.1f}", f"{laps['features']:.1f}", f"{laps['total']:.1f}",
                          f"{n / laps['total']:,.0f}", f"{int(laps['rows_out']):,}", f"{n:,}")  # fmt: skip
    console.print(table)
    console.print(f"Spark start-up (JVM, not counted): {spark['startup']:.1f} s; goal <= {GOAL_SECONDS:.0f} s")
    figures = {
        "rows": rows,
        "spark_seconds": round(spark["total"], 1),
        "pandas_seconds": None if pandas is None else round(pandas["total"], 1),
        "spark_rows_per_second": round(rows / spark["total"]),
        "pandas_rows_per_second": None if pandas is None else round(rows / pandas["total"]),
        "spark_ingest_seconds": round(spark["ingest"], 1),
        "spark_features_seconds": round(spark["features"], 1),
        "spark_startup_seconds": round(spark["startup"], 1),
        "pandas_ingest_seconds": None if pandas is None else round(pandas["ingest"], 1),
        "pandas_features_seconds": None if pandas is None else round(pandas["features"], 1),
        "spark_stage_seconds": spark["stages"],
        "cores": args.cores,
        "goal_seconds": GOAL_SECONDS,
        "spark_within_goal": spark["total"] <= GOAL_SECONDS,
        "db_rows": db_rows,
        "db_spark_seconds": None if db_spark is None else round(db_spark["total"], 1),
        "db_pandas_seconds": None if db_pandas is None else round(db_pandas["total"], 1),
        "db_spark_rows_per_second": None if db_spark is None else round(db_rows / db_spark["total"]),
        "db_pandas_rows_per_second": None if db_pandas is None else round(db_rows / db_pandas["total"]),
        "db_spark_stage_seconds": None if db_spark is None else db_spark["stages"],
        "db_pandas_ingest_seconds": None if db_pandas is None else round(db_pandas["ingest"], 1),
        "db_pandas_features_seconds": None if db_pandas is None else round(db_pandas["features"], 1),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "python": sys.version.split()[0],
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
