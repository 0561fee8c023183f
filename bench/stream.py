"""Streaming throughput through the scoring core (the handler figures come with issue 3).

    python -m bench.stream [--accounts 300 --months 12 --batches 20]

Replays the last 30 % of a synthetic bank as JSON records in batches of 100 and 500 through
``StreamScorer.score_batch`` (profiles round-tripped through their stored form per batch, as
the Lambda does with DynamoDB), next to a naive path that reads, scores and writes one record
at a time. One core (numba and BLAS threads pinned to 1). The last line is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from finsentry.datasets import czech, synthetic  # noqa: E402
from finsentry.detectors import make_detector  # noqa: E402
from finsentry.evaluation import threshold_for_budget  # noqa: E402
from finsentry.features import AccountProfile, compute_features  # noqa: E402
from finsentry.schema import to_record  # noqa: E402
from finsentry.streaming import StreamScorer  # noqa: E402


def _setup(accounts: int, months: int):
    raw = synthetic.generate_bank(synthetic.SyntheticConfig(n_accounts=accounts, months=months))
    with tempfile.TemporaryDirectory() as tmp:
        czech.write_tables(raw, Path(tmp))
        valid = czech.load(Path(tmp)).transactions.valid
    cut = valid["ts"].quantile(0.7)
    train, replay = valid[valid["ts"] < cut], valid[valid["ts"] >= cut].sort_values("ts")
    features = compute_features(train)
    model = make_detector("isolation_forest").fit(features)
    threshold = threshold_for_budget(model.score(features), 0.01)
    profiles: dict[str, AccountProfile] = {}
    StreamScorer(None).score_batch([to_record(r) for _, r in train.iterrows()], profiles)
    stored = {a: p.to_dict() for a, p in profiles.items()}
    records = [json.loads(json.dumps(to_record(r))) for _, r in replay.iterrows()]
    return model, threshold, stored, records


def _core(model, threshold, stored, records, size, batches):
    scorer = StreamScorer(model, threshold=threshold, model_version="bench")
    latencies, done = [], 0
    for b in range(batches):
        batch = records[b * size:(b + 1) * size]
        if not batch:
            break
        started = time.perf_counter()
        accounts = {r["account_id"] for r in batch}
        profiles = {a: AccountProfile.from_dict(stored[a]) for a in accounts if a in stored}
        scorer.score_batch(batch, profiles)
        stored.update({a: p.to_dict() for a, p in profiles.items()})
        latencies.append(time.perf_counter() - started)
        done += len(batch)
    return done / sum(latencies), np.percentile(latencies, 50) * 1e3, np.percentile(latencies, 99) * 1e3


def _naive(model, threshold, stored, records, limit):
    """One profile read, one feature step, one model call and one write per record."""
    started = time.perf_counter()
    for r in records[:limit]:
        profile = AccountProfile.from_dict(stored[r["account_id"]])
        feats = profile.update(r)
        model.score(pd.DataFrame([feats]))
        stored[r["account_id"]] = profile.to_dict()
    return limit / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)
    model, threshold, stored, records = _setup(args.accounts, args.months)
    _core(model, threshold, dict(stored), records, 100, 2)  # warm-up: numba, SHAP
    figures = {}
    table = Table(title="Scoring core, one core (records/s, batch latency)")
    for col in ("path", "batch", "records/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    for size in (100, 500):
        rate, p50, p99 = _core(model, threshold, dict(stored), records, size, args.batches)
        figures[f"core_records_per_s_{size}"] = round(rate)
        figures[f"p50_ms_{size}"] = round(p50, 1)
        figures[f"p99_ms_{size}"] = round(p99, 1)
        table.add_row("core", str(size), f"{rate:,.0f}", f"{p50:.1f}", f"{p99:.1f}")
    naive = _naive(model, threshold, dict(stored), records, 500)
    figures["naive_records_per_s"] = round(naive)
    figures["speedup_vs_naive"] = round(figures["core_records_per_s_500"] / naive, 1)
    table.add_row("naive (per record)", "1", f"{naive:,.0f}", "-", "-")
    Console().print(table)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
