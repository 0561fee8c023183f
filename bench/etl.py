"""Batch data preparation time: raw Czech bank files -> curated Parquet, on Spark and on pandas.

    python -m bench.etl [--transactions 1056320] [--cores 2] [--buckets 16] [--skip-pandas]

Writes a synthetic bank of exactly ``--transactions`` transactions (the Czech dataset's full
size by default) as ``.asc`` files, then times raw -> curated twice:

* **spark**: the Glue jobs' code (``finsentry.etl.jobs.run_ingest`` then ``run_features``) on a
  local SparkSession with ``--cores`` cores: parse, validate and join, quality report,
  quarantine, ``curated/transactions/`` and ``curated/features/`` Parquet partitioned by day,
  catalog and metrics calls (moto). JVM start-up is reported apart.
* **pandas**: the same transforms in one process (``finsentry.etl.pandas_engine``), writing
  the same two Parquet datasets with pyarrow.

Prints a table, then as its last line one JSON object: rows, spark_seconds, pandas_seconds,
rows per second for both, the stage split, and whether Spark met the 120 s goal.
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
    from moto import mock_aws

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
    with mock_aws():
        started = time.perf_counter()
        report = jobs.run_ingest(spark, opts)
        laps["ingest"] = time.perf_counter() - started
        second = jobs.run_features(spark, opts)
        laps["features"] = time.perf_counter() - started - laps["ingest"]
    laps["stages"] = {"ingest": report.seconds, "features": second.seconds}
    laps["total"] = laps["ingest"] + laps["features"]
    laps["rows_out"] = report.rows_out
    spark.stop()
    return laps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=CZECH_TRANSACTIONS)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--buckets", type=int, default=16, help="account groups of the canonical stage")
    parser.add_argument("--skip-pandas", action="store_true")
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
    table = Table(title=f"raw -> curated, {rows:,} transactions")
    for column in ("engine", "ingest s", "features s", "total s", "rows/s", "rows out"):
        table.add_column(column, justify="right")
    for name, laps in (("spark", spark), ("pandas (1 process)", pandas)):
        if laps is not None:
            table.add_row(name, f"{laps['ingest']:.1f}", f"{laps['features']:.1f}", f"{laps['total']:.1f}",
                          f"{rows / laps['total']:,.0f}", f"{int(laps['rows_out']):,}")  # fmt: skip
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
        "load_average_1m": round(os.getloadavg()[0], 1),
        "python": sys.version.split()[0],
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
