"""Glue 5.0 job ``finsentry-<env>-ingest``: raw Czech bank files -> canonical transactions.

Reads the raw tables in either public form (``.asc`` or Teradata ``fin_*.tsv``, optionally
gzipped) from ``s3://<data_bucket>/raw/``, validates them and joins accounts, dispositions,
clients and districts; writes ``curated/transactions/dt=YYYY-MM-DD/`` (Parquet), the rejected
rows with their reason to ``quarantine/ingest/run_id=<id>/``, the data-quality report to
``curated/transactions/_quality/ingest-<id>.json`` and CloudWatch metrics; creates or updates
the Glue table ``transactions``. Exits 2 when more than ``--max_rejected_share`` of the rows
are quarantined. With ``--source_mapping`` it reads the mapping's PostgreSQL table instead, or,
for a mapping without ``database:``, the bank's own CSV/Parquet files under ``raw/``.

Arguments (Glue ``--name value``): ``--data_bucket``, ``--env`` (required); ``--run_id``,
``--max_rejected_share`` (default 0.05), ``--root``, ``--raw_prefix`` (default ``raw/``),
``--buckets``, ``--region`` (optional). See ``finsentry.etl.jobs``.
"""

import sys

from finsentry.etl.jobs import main

if __name__ == "__main__":
    sys.exit(main("ingest", sys.argv))
