"""Glue 5.0 job ``finsentry-<env>-features``: canonical transactions -> curated features.

Reads ``s3://<data_bucket>/curated/transactions/`` (written by the ingest job), computes the
per-account features with ``finsentry.features.compute_features`` through
``groupBy(<accounts>).applyInPandas`` (whole accounts per group; the same code as the
streaming scorer), and writes
``curated/features/dt=YYYY-MM-DD/`` (Parquet), rows with a non-finite feature to
``quarantine/features/run_id=<id>/``, the data-quality report to
``curated/features/_quality/features-<id>.json`` and CloudWatch metrics; creates or updates
the Glue table ``features``. Exits 2 when more than ``--max_rejected_share`` of the rows are
quarantined.

Arguments (Glue ``--name value``): ``--data_bucket``, ``--env`` (required); ``--run_id``,
``--max_rejected_share`` (default 0.05), ``--account_groups`` (default 64; 0 = one group per
account), ``--root``, ``--region``, ``--validation_share`` (default 0.15: the last share of the
window's days, labelled with injected anomalies, goes to ``curated/validation/``; 0 = none),
``--anomaly_rate`` (0.004), ``--seed`` (0), ``--window_start`` / ``--window_end`` (the state
machine's training window) (optional). See
``finsentry.etl.jobs``.
"""

import sys

from finsentry.etl.jobs import main

if __name__ == "__main__":
    sys.exit(main("features", sys.argv))
