"""The two Glue jobs, end to end: options, read, transform, quality gate, write, catalog.

``glue_jobs/ingest.py`` and ``glue_jobs/features.py`` only call ``main``. Options follow Glue's
``--name value`` convention (``awsglue.utils.getResolvedOptions`` when it is importable, else
argparse with the same names, so the scripts run locally and in tests):

=====================  ========  ==============================================================
option                 required  meaning
=====================  ========  ==============================================================
``--data_bucket``      yes       the deployment's data bucket (``layout.bucket_name``)
``--env``              yes       deployment name: Glue database ``finsentry-<env>``, metric Env
``--run_id``           no        names the quarantine folder and the quality report (default:
                                 UTC time ``YYYYmmddTHHMMSS``)
``--max_rejected_share`` no      fail the job above this quarantined share (default 0.05)
``--root``             no        base URI of the bucket's objects (default ``s3://<bucket>``;
                                 a local folder for tests and local runs)
``--raw_prefix``       no        where the raw bank files are (default ``raw/``)
``--buckets``          no        account groups of the canonical stage (default 16)
``--account_groups``   no        account groups of the features stage (default 64; 0 = one
                                 ``applyInPandas`` group per account, several times slower)
``--region``           no        AWS region of the Glue and CloudWatch clients
``--validation_share`` no        features job: share of the window's rows (whole days, the last
                                 ones) written as the labelled validation period to
                                 ``curated/validation/`` (default 0.15; 0 = none)
``--anomaly_rate``     no        features job: share of the validation rows turned into labelled
                                 anomalies (default 0.004)
``--seed``             no        features job: seed of the anomaly injection (default 0)
``--window_start``     no        features job: the state machine's training window (YYYY-MM-DD;
``--window_end``                 empty or 0001-01-01 / 9999-12-31 = open): the validation period
                                 is the last share of it (``finsentry.training.validation_set``)
``--source_mapping``   no        ingest job: a mapping YAML (URI). With a ``database:`` section
                                 the job reads that PostgreSQL table or query; without one, the
                                 bank's own CSV/Parquet files under ``--raw_prefix`` (every
                                 ``.csv``/``.tsv``/``.txt``/``.parquet``/``.pq``, gzip allowed,
                                 in name order: ``finsentry.etl.files``) instead of Czech files
``--source_secret``    no        ingest job: Secrets Manager id of the database's credentials
                                 (RDS form: username, password, host, port, dbname)
``--source_url``       no        ingest job, local runs only: ``postgresql://user@host/db`` (the
                                 password from ``PGPASSWORD``; never in a deployed job's arguments)
``--source_partitions`` no       ingest job: parallel JDBC reads (default 4)
=====================  ========  ==============================================================

A database source (``finsentry.etl.jdbc``) is read incrementally when its mapping names a
watermark column: the mark of the last successful run is ``curated/transactions/_watermark.json``
(written after the rows are published; new rows are appended to their days' partitions). The
bank's own files (``finsentry.etl.files``) are read whole on every run, like the Czech files:
their days are overwritten; their quarantine names the file (``table``) and the row in it
(``line``; empty for a line that is no row of the table).

Outputs (prefixes from ``finsentry.layout.PREFIXES``): ``curated/transactions/dt=.../`` and
``curated/features/dt=.../`` (Parquet), ``quarantine/<job>/run_id=<id>/`` (JSON lines, one
reason per row), ``<output>/_quality/<job>-<run_id>.json`` (the quality report), CloudWatch
metrics ``Metric.ETL_*``, and the Glue tables ``transactions`` / ``features`` with their
partitions; the features job also writes ``curated/validation/validation.parquet`` (ids,
``CURATED_COLUMNS``, ``is_anomaly``, ``anomaly_type``: ``finsentry.training.validation_set.labelled_validation``
on the driver; permanent orders read from ``raw/``, without them the missing-recurring type is
skipped and the report says so). Training drops that period (``exclude_validation``), so
``curated/features/`` keeps every row for Batch Transform. When the quality gate fails, the
quarantine, the report and the metrics are written, nothing is published to ``curated/``, and
the process exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finsentry import lake
from finsentry.etl import quality, transforms
from finsentry.features import DETECTOR_COLUMNS
from finsentry.layout import PARTITION_KEY, PREFIXES
from finsentry.training.validation_set import DEFAULT_ANOMALY_RATE, DEFAULT_VALIDATION_SHARE

REQUIRED = ("data_bucket", "env")
OPTIONAL: dict[str, str] = {
    "run_id": "", "max_rejected_share": str(quality.DEFAULT_MAX_REJECTED_SHARE), "root": "",
    "raw_prefix": PREFIXES.raw, "buckets": "16", "account_groups": "64", "region": "",
    "validation_share": str(DEFAULT_VALIDATION_SHARE), "anomaly_rate": str(DEFAULT_ANOMALY_RATE), "seed": "0",
    "window_start": "", "window_end": "", "source_mapping": "", "source_secret": "", "source_url": "",
    "source_partitions": "4",
}  # fmt: skip
QUARANTINE_COLUMNS = ("stage", "table", "line", "reason", "detail", "raw")


@dataclass
class JobOptions:
    data_bucket: str
    env: str
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%S", time.gmtime()))
    max_rejected_share: float = quality.DEFAULT_MAX_REJECTED_SHARE
    root: str = ""
    raw_prefix: str = PREFIXES.raw
    buckets: int = 16
    account_groups: int = 64
    region: str = ""
    validation_share: float = DEFAULT_VALIDATION_SHARE
    anomaly_rate: float = DEFAULT_ANOMALY_RATE
    seed: int = 0
    window_start: str = ""
    window_end: str = ""
    source_mapping: str = ""
    source_secret: str = ""
    source_url: str = ""
    source_partitions: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.validation_share < 1:
            raise ValueError(f"--validation_share must be a share in [0, 1), got {self.validation_share}")
        if not 0 <= self.max_rejected_share <= 1:
            raise ValueError(f"--max_rejected_share must be a share in [0, 1], got {self.max_rejected_share}")
        self.root = self.root or f"s3://{self.data_bucket}"

    def uri(self, prefix: str) -> str:
        return f"{self.root.rstrip('/')}/{prefix}"


def resolve_options(argv: list[str]) -> JobOptions:
    """Glue's job arguments (``--name value``) into ``JobOptions``."""
    present = [n for n in OPTIONAL if f"--{n}" in argv]
    try:
        from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
    except ImportError:
        parser = argparse.ArgumentParser(description="finsentry Glue job")
        for name in REQUIRED:
            parser.add_argument(f"--{name}", required=True)
        for name in OPTIONAL:
            parser.add_argument(f"--{name}")
        parsed, _ = parser.parse_known_args(argv[1:])  # Glue adds its own (--JOB_NAME, ...)
        args = {k: v for k, v in vars(parsed).items() if v is not None}
    else:
        args = getResolvedOptions(argv, [*REQUIRED, *present])
    values = {**{k: v for k, v in OPTIONAL.items() if v}, **{k: args[k] for k in (*REQUIRED, *present)}}
    return JobOptions(
        data_bucket=values["data_bucket"], env=values["env"],
        max_rejected_share=float(values["max_rejected_share"]), root=values.get("root", ""),
        raw_prefix=values["raw_prefix"], buckets=int(values["buckets"]),
        account_groups=int(values["account_groups"]), region=values.get("region", ""),
        validation_share=float(values["validation_share"]), anomaly_rate=float(values["anomaly_rate"]),
        seed=int(values["seed"]), window_start=values.get("window_start", ""), window_end=values.get("window_end", ""),
        source_mapping=values.get("source_mapping", ""), source_secret=values.get("source_secret", ""),
        source_url=values.get("source_url", ""), source_partitions=int(values["source_partitions"]),
        **({"run_id": values["run_id"]} if values.get("run_id") else {}),
    )  # fmt: skip


def write_text(uri: str, text: str, s3=None) -> str:
    """Write a small text object to ``s3://bucket/key`` (boto3) or a local path."""
    return write_bytes(uri, text.encode(), s3, "application/json")


def read_text(uri: str, s3=None) -> str | None:
    """A small text object at ``s3://bucket/key`` or a local path; None when there is none."""
    if uri.startswith("s3://"):
        bucket, key = uri[len("s3://"):].split("/", 1)
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        except s3.exceptions.NoSuchKey:
            return None
    path = Path(uri.removeprefix("file://"))
    return path.read_text() if path.is_file() else None


def write_bytes(uri: str, data: bytes, s3=None, content_type: str = "application/octet-stream") -> str:
    """Write an object (driver-sized) to ``s3://bucket/key`` (boto3) or a local path."""
    if uri.startswith("s3://"):
        bucket, key = uri[len("s3://"):].split("/", 1)
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return uri
    path = Path(uri.removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return uri


@dataclass
class Clients:
    """The AWS clients a job talks to (moto's in tests); created lazily."""

    region: str = ""
    glue: Any = None
    cloudwatch: Any = None
    s3: Any = None

    def __post_init__(self) -> None:
        import boto3

        kw = {"region_name": self.region} if self.region else {}
        self.glue = self.glue or boto3.client("glue", **kw)
        self.cloudwatch = self.cloudwatch or boto3.client("cloudwatch", **kw)
        self.s3 = self.s3 or boto3.client("s3", **kw)

    def session(self):
        """A boto3 session in the Glue client's region, for awswrangler (``finsentry.lake``)."""
        import boto3

        return boto3.Session(region_name=self.glue.meta.region_name)


def _finish(report: quality.QualityReport, opts: JobOptions, clients: Clients, output_prefix: str) -> None:
    """Report JSON beside the output and metrics, then the gate (raises DataQualityError)."""
    uri = opts.uri(f"{output_prefix}_quality/{report.job}-{opts.run_id}.json")
    report.outputs["quality_report"] = uri
    write_text(uri, report.to_json(), clients.s3)
    quality.publish_metrics(report, opts.env, clients.cloudwatch)
    report.check()


def _write_quarantine(frame, opts: JobOptions, job: str) -> str:
    uri = opts.uri(f"{PREFIXES.quarantine}{job}/run_id={opts.run_id}/")
    frame.coalesce(1).write.mode("overwrite").json(uri)
    return uri


def _publish(frame, opts: JobOptions, clients: Clients, table: str, prefix: str,
             mode: str = "overwrite") -> dict[str, Any]:  # fmt: skip
    """Write ``frame`` as Parquet partitioned by dt (``overwrite``: the days it holds are
    replaced; ``append``: rows added) and register the table and its partitions."""
    uri = opts.uri(prefix)
    frame.repartition(PARTITION_KEY).write.mode(mode).partitionBy(PARTITION_KEY).parquet(uri)
    days = [r[PARTITION_KEY] for r in frame.select(PARTITION_KEY).distinct().collect()]
    return lake.publish(opts.env, table, opts.root, days, clients.session())


class Laps:
    """Wall time per stage (Spark is lazy: a stage's time is spent at its action)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._last, 2)
        self._last = now


def run_ingest(spark, opts: JobOptions, clients: Clients | None = None) -> quality.QualityReport:
    """raw/ bank files -> curated/transactions/ (+ quarantine, report, metrics, catalog)."""
    from pyspark.sql import functions as F  # noqa: N812

    from finsentry.etl import spark as engine

    clients = clients or Clients(opts.region)
    if opts.source_mapping:
        return run_ingest_mapped(spark, opts, clients)
    lap = Laps()
    bank = engine.read_bank(spark, opts.uri(opts.raw_prefix))
    lap("read")
    parsed = engine.mark_repeated_ids(bank.parsed.persist())
    by_reason = {r["q_reason"]: r["count"] for r in parsed.groupBy("q_reason").count().collect()}
    rows_in = sum(by_reason.values())
    read_reasons = {k: v for k, v in by_reason.items() if k}
    unread = parsed.where(F.col("q_reason") != "")
    lap("parse")
    canon = engine.canonical(parsed, bank.dims, opts.buckets)
    counts = engine.chunk_counts(canon)
    lap("canonical")
    other = bank.unread_other
    report = quality.report_from_counts(
        "ingest", opts.run_id, rows_in, counts, read_reasons, opts.max_rejected_share,
        other_tables={str(t): g["reason"].value_counts().to_dict() for t, g in other.groupby("table")},
    )  # fmt: skip
    report.seconds = lap.seconds
    rejected = _rejections(canon, F.lit("trans"), F.col(transforms.LINE))
    read = unread.select(F.lit("read").alias("stage"), F.col("q_table").alias("table"),
                         F.col(transforms.LINE).alias("line"), F.col("q_reason").alias("reason"),
                         F.col("q_detail").alias("detail"), F.col("q_raw").alias("raw"))  # fmt: skip
    quarantine = read.unionByName(rejected)
    if len(other):
        small = other.astype({"line": "int64"}).assign(stage="read")[list(QUARANTINE_COLUMNS)]
        quarantine = quarantine.unionByName(spark.createDataFrame(small.astype(object), quarantine.schema))
    report.outputs["quarantine"] = _write_quarantine(quarantine, opts, "ingest")
    lap("quarantine")
    _finish(report, opts, clients, PREFIXES.transactions)
    report.outputs["catalog"] = json.dumps(_publish(_curated(canon), opts, clients, "transactions",
                                                    PREFIXES.transactions))  # fmt: skip
    lap("write")
    report.outputs["transactions"] = opts.uri(PREFIXES.transactions)
    parsed.unpersist()
    canon.unpersist()
    return report


def _rejections(rows, table, line):
    """The validator's rejections among ``rows`` as quarantine rows (stage ``validate``)."""
    from pyspark.sql import functions as F  # noqa: N812

    return rows.where(F.col("status") != transforms.STATUS_VALID).select(
        F.lit("validate").alias("stage"), table.alias("table"), line.alias("line"), "reason", "detail", "raw")


def _curated(rows):
    """The valid rows as ``curated/transactions/`` holds them (canonical columns, seq, dt)."""
    from pyspark.sql import functions as F  # noqa: N812

    from finsentry.etl import spark as engine

    valid = rows.where(F.col("status") == transforms.STATUS_VALID)
    return engine.with_partition(valid.select(*transforms.CANONICAL_COLUMNS, transforms.SEQ))


def _mapped_report(rows, opts: JobOptions, read_reasons: dict[str, int]) -> quality.QualityReport:
    """The report of a mapped source's rows (``finsentry.etl.mapped.MAPPED_SCHEMA``) and of its
    lines that were no row (``read_reasons``): rows in = valid + rejected + unread."""
    from finsentry.etl import spark as engine

    counts = engine.chunk_counts(rows)
    rows_in = counts.get("rows_out", 0) + sum(v for k, v in counts.items() if k.startswith("reason:"))
    rows_in += sum(read_reasons.values())
    return quality.report_from_counts("ingest", opts.run_id, rows_in, counts, read_reasons, opts.max_rejected_share)


def run_ingest_mapped(spark, opts: JobOptions, clients: Clients) -> quality.QualityReport:
    """``--source_mapping``: the mapping's ``database:`` table or query (``run_ingest_database``)
    or, when it has no ``database:`` section, the bank's own files under ``--raw_prefix``
    (``run_ingest_files``)."""
    from finsentry.etl.mapped import job_mapping
    from finsentry.mapping import DatabaseSpec, MappingError

    mapping = job_mapping(spark, opts.source_mapping)
    if mapping.database != DatabaseSpec():
        return run_ingest_database(spark, opts, clients, mapping)
    if opts.source_secret or opts.source_url:
        raise MappingError(f"--source_secret / --source_url name a database, but {opts.source_mapping} has no "
                           "database: section (table or query): add it, or drop them to read the files under "
                           f"{opts.raw_prefix}")  # fmt: skip
    return run_ingest_files(spark, opts, clients, mapping)


def run_ingest_files(spark, opts: JobOptions, clients: Clients, mapping) -> quality.QualityReport:
    """The bank's own CSV/Parquet files under ``--raw_prefix`` through ``mapping``
    (``finsentry.etl.files``) -> curated/transactions/ (overwritten, as by the Czech files)
    + quarantine (stage ``read``: lines that are no row; ``validate``: the validator's
    rejections; table = the file's name), report, metrics, catalog."""
    from pyspark.sql import functions as F  # noqa: N812

    from finsentry.etl import files

    lap = Laps()
    read = files.read_mapped_files(spark, opts.uri(opts.raw_prefix), mapping, opts.buckets)
    lap("read")
    report = _mapped_report(read.rows, opts, read.read_reasons)
    report.seconds = lap.seconds
    report.outputs.update({"files": json.dumps(read.names), "derived": json.dumps(read.derived),
                           "warnings": json.dumps(read.warnings)})  # fmt: skip
    unread = read.unread.select(F.lit("read").alias("stage"), "*")
    report.outputs["quarantine"] = _write_quarantine(unread.unionByName(_rejections(read.rows, *read.location())),
                                                     opts, "ingest")  # fmt: skip
    lap("quarantine")
    _finish(report, opts, clients, PREFIXES.transactions)
    report.outputs["catalog"] = json.dumps(_publish(_curated(read.rows), opts, clients, "transactions",
                                                    PREFIXES.transactions))  # fmt: skip
    lap("write")
    report.outputs["transactions"] = opts.uri(PREFIXES.transactions)
    read.unpersist()
    return report


def run_ingest_database(spark, opts: JobOptions, clients: Clients, mapping=None) -> quality.QualityReport:
    """A PostgreSQL source (``finsentry.etl.jdbc``) -> curated/transactions/ (+ quarantine,
    report, metrics, catalog, and the watermark of the rows read)."""
    from pyspark.sql import functions as F  # noqa: N812

    from finsentry.etl import jdbc

    lap = Laps()
    mapping = mapping or jdbc.job_mapping(spark, opts.source_mapping)
    src = jdbc.job_source(opts.source_secret, opts.source_url, clients.region)
    mark_uri = opts.uri(f"{PREFIXES.transactions}_watermark.json")
    since = jdbc.stored_mark(read_text(mark_uri, clients.s3), mark_uri, mapping.database)
    rows, mark, _, _ = jdbc.read_mapped(spark, src, mapping, since, opts.source_partitions, opts.buckets)
    lap("read")
    report = _mapped_report(rows, opts, {})
    report.seconds = lap.seconds
    rejected = _rejections(rows, F.lit(jdbc.db.relation_text(mapping.database)), F.col(transforms.LINE))
    report.outputs["quarantine"] = _write_quarantine(rejected, opts, "ingest")
    lap("quarantine")
    _finish(report, opts, clients, PREFIXES.transactions)
    published = _publish(_curated(rows), opts, clients, "transactions", PREFIXES.transactions,
                         mode="append" if since is not None else "overwrite")  # fmt: skip
    report.outputs["catalog"] = json.dumps(published)
    report.outputs["transactions"] = opts.uri(PREFIXES.transactions)
    if mark is not None:  # after the rows are published: a failed run leaves the last mark
        report.outputs["watermark"] = write_text(mark_uri, jdbc.mark_json(mark, mapping.database, src), clients.s3)
    lap("write")
    rows.unpersist()
    return report


def run_features(spark, opts: JobOptions, clients: Clients | None = None) -> quality.QualityReport:
    """curated/transactions/ -> curated/features/ (+ quarantine, report, metrics, catalog)."""
    import pandas as pd
    from pyspark.sql import functions as F  # noqa: N812

    from finsentry.etl import spark as engine

    clients = clients or Clients(opts.region)
    lap = Laps()
    transactions = spark.read.parquet(opts.uri(PREFIXES.transactions))
    rows_in = transactions.count()
    lap("read")
    features = engine.features(transactions, opts.account_groups).persist()

    def count(chunks):
        parts = [quality.feature_counts(c, DETECTOR_COLUMNS) for c in chunks]
        yield pd.DataFrame({"counts": [json.dumps(quality.merge_counts(parts))]})

    rows = features.mapInPandas(count, "counts string").collect()
    counts = quality.merge_counts(json.loads(r["counts"]) for r in rows)
    lap("features")
    report = quality.report_from_counts("features", opts.run_id, rows_in, counts, {}, opts.max_rejected_share,
                                        null_base=rows_in)  # fmt: skip
    report.seconds = lap.seconds
    finite = F.lit(True)
    for c in DETECTOR_COLUMNS:
        finite = finite & ~F.isnan(c) & F.col(c).isNotNull() & (F.abs(F.col(c)) < float("inf"))
    bad = features.where(~finite).select(
        F.lit("features").alias("stage"), F.lit("transactions").alias("table"),
        F.lit(None).cast("bigint").alias("line"),
        F.lit(quality.NON_FINITE_FEATURE).alias("reason"), F.lit("features").alias("detail"),
        F.to_json(F.struct(*features.columns)).alias("raw"))  # fmt: skip
    report.outputs["quarantine"] = _write_quarantine(bad, opts, "features")
    lap("quarantine")
    _finish(report, opts, clients, PREFIXES.curated)
    published = _publish(features.where(finite), opts, clients, "features", PREFIXES.curated)
    report.outputs["catalog"] = json.dumps(published)
    lap("write")
    report.outputs["features"] = opts.uri(PREFIXES.curated)
    features.unpersist()
    if opts.validation_share > 0:
        report.outputs.update(_write_validation(spark, transactions, opts, clients))
        lap("validation")
        write_text(report.outputs["quality_report"], report.to_json(), clients.s3)  # now with the validation set
    return report


def _orders(spark, opts: JobOptions) -> tuple[Any, str]:
    """Permanent orders from the raw bank files (for the missing-recurring anomalies), or none
    with the reason (the job then skips that anomaly type and says so in its report)."""
    import pandas as pd

    from finsentry.datasets import czech
    from finsentry.etl import spark as engine

    try:
        return czech.orders_frame(engine.read_bank(spark, opts.uri(opts.raw_prefix)).tables), ""
    except Exception as exc:  # noqa: BLE001 - any unreadable raw folder: validation goes on without orders
        empty = pd.DataFrame(columns=["account_id", "partner_bank", "partner_account", "amount", "k_symbol"])
        return empty, f"no permanent orders ({type(exc).__name__}: {exc})"


def _write_validation(spark, transactions, opts: JobOptions, clients: Clients) -> dict[str, str]:
    """The labelled validation period (``validation_set.labelled_validation``, on the driver) as
    one Parquet file under ``curated/validation/``; its figures for the report."""
    import io

    from finsentry.training.validation_set import labelled_validation

    canonical = transactions.select(*transforms.CANONICAL_COLUMNS, transforms.SEQ).toPandas()
    canonical = canonical.sort_values(["account_id", transforms.SEQ], kind="stable")
    canonical = canonical[list(transforms.CANONICAL_COLUMNS)].reset_index(drop=True)
    orders, why = _orders(spark, opts)
    result = labelled_validation(canonical, orders, opts.validation_share, start=opts.window_start,
                                 end=opts.window_end, rate=opts.anomaly_rate, seed=opts.seed)  # fmt: skip
    buffer = io.BytesIO()
    result.frame.to_parquet(buffer, index=False)
    uri = write_bytes(opts.uri(f"{PREFIXES.validation}validation.parquet"), buffer.getvalue(), clients.s3,
                      "application/x-parquet")  # fmt: skip
    skipped = {**result.skipped, **({"orders": why} if why else {})}
    anomalies = int(result.frame["is_anomaly"].sum())
    return {"validation": uri, "validation_start": f"{result.start:%Y-%m-%d}",
            "validation_rows": str(len(result.frame)), "validation_anomalies": str(anomalies),
            "validation_skipped": json.dumps(skipped)}  # fmt: skip


RUNNERS = {"ingest": run_ingest, "features": run_features}


def session():
    """The Glue job's SparkSession, or a local one outside Glue."""
    from pyspark.sql import SparkSession

    from finsentry.etl import spark as engine

    active = SparkSession.getActiveSession()
    if active is not None:
        return engine.configure(active)
    try:
        import awsglue  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return engine.local_session()
    return engine.configure(SparkSession.builder.getOrCreate())


def main(job: str, argv: list[str] | None = None, spark=None, clients: Clients | None = None) -> int:
    """Run one job; 0 on success, 2 (with the reason in one line on stderr) when the quality gate
    fails, the raw files cannot be read (``DatasetError``: a required table missing or empty, a
    truncated gzip file), a mapped source cannot be read (``MappingError``: a missing or wrong
    mapping, no bank file under the prefix, a file the reader cannot read;
    ``DatabaseSourceError``) or an option is wrong. Other errors propagate (Glue logs the trace)."""
    from finsentry.database import DatabaseSourceError
    from finsentry.datasets.czech import DatasetError
    from finsentry.mapping import MappingError

    argv = list(sys.argv if argv is None else argv)
    try:
        opts = resolve_options(argv)
    except ValueError as exc:
        print(f"finsentry {job} job: bad option: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        report = RUNNERS[job](spark or session(), opts, clients)
    except quality.DataQualityError as exc:
        print(f"finsentry {job} job FAILED the data-quality gate: {exc}", file=sys.stderr)
        return 2
    except DatasetError as exc:
        print(f"finsentry {job} job FAILED: the raw bank files cannot be read: {exc}", file=sys.stderr)
        return 2
    except DatabaseSourceError as exc:  # its messages hold no password
        print(f"finsentry {job} job FAILED: the database source: {exc}", file=sys.stderr)
        return 2
    except MappingError as exc:  # the mapping, the bank's own files under raw/, or the database's settings
        print(f"finsentry {job} job FAILED: the mapped source: {exc}", file=sys.stderr)
        return 2
    summary = {"job": job, "run_id": opts.run_id, "seconds": round(time.perf_counter() - started, 1),
               "rows_in": report.rows_in, "rows_out": report.rows_out,
               "quarantined": report.rows_quarantined}  # fmt: skip
    print(json.dumps(summary))
    return 0
