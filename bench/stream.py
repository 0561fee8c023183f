"""Streaming throughput: the scoring core, the whole handler under moto, and a naive path.

    python -m bench.stream [--accounts 300 --months 12 --batches 20]

Replays the last 30 % of a synthetic bank as JSON records in batches of 100 and 500:

* **core** — ``StreamScorer.score_batch`` with the profiles round-tripped through their stored
  DynamoDB form per batch (``finsentry.stream.profiles``), no AWS calls;
* **handler** — ``lambdas.stream_scorer.handler.handler`` on Kinesis events (base64 payloads)
  with DynamoDB, SNS, Firehose, SQS and SSM in-process (moto): decoding, one BatchGetItem,
  scoring, conditional TransactWriteItems with the outbox, Firehose/SNS batches, the outbox trim
  and Powertools' partial batch response. moto's own request handling is part of the figure;
* **naive** — one profile read, one feature step, one model call and one write per record.

One core (numba and BLAS threads pinned to 1). Wall-clock rates depend on what else runs on the
machine; the ``*_per_cpu_s_*`` figures divide by this process's CPU time instead (records per
CPU-second: one core's rate when the machine is shared). The last line is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
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
from finsentry.stream.profiles import StoredProfile  # noqa: E402
from finsentry.stream.profiles import decode_item as _decode
from finsentry.stream.profiles import encode_item as _encode
from finsentry.stream.scorer import StreamScorer  # noqa: E402


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
    stored = {a: _encode(StoredProfile(p), 1) for a, p in profiles.items()}
    records = [json.loads(json.dumps(to_record(r))) for _, r in replay.iterrows()]
    return model, threshold, stored, records


def _core(model, threshold, stored, records, size, batches):
    scorer = StreamScorer(model, threshold=threshold, model_version="bench")
    latencies, done, cpu = [], 0, 0.0
    for b in range(batches):
        batch = records[b * size:(b + 1) * size]
        if not batch:
            break
        started, cpu_started = time.perf_counter(), time.process_time()
        accounts = {r["account_id"] for r in batch}
        profiles = {a: _decode(stored[a]).profile for a in accounts if a in stored}
        scorer.score_batch(batch, profiles)
        stored.update({a: _encode(StoredProfile(p), 1) for a, p in profiles.items()})
        latencies.append(time.perf_counter() - started)
        cpu += time.process_time() - cpu_started
        done += len(batch)
    return (done / sum(latencies), np.percentile(latencies, 50) * 1e3, np.percentile(latencies, 99) * 1e3,
            done / cpu)  # fmt: skip


def _naive(model, threshold, stored, records, limit):
    """One profile read, one feature step, one model call and one write per record."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for r in records[:limit]:
        profile = _decode(stored[r["account_id"]]).profile
        feats = profile.update(r)
        model.score(pd.DataFrame([feats]))
        stored[r["account_id"]] = _encode(StoredProfile(profile), 1)
    return limit / (time.perf_counter() - started), limit / (time.process_time() - cpu_started)


class _Timed:
    """Proxy of a boto3 client adding the time spent in its calls (moto's work) to ``spent[0]``."""

    def __init__(self, client, spent: list[float]) -> None:
        self._client, self._spent = client, spent

    def __getattr__(self, name):
        real = getattr(self._client, name)
        if not callable(real):
            return real

        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self._spent[0] += time.perf_counter() - started

        return call


class _Context:
    function_name, memory_limit_in_mb, aws_request_id = "bench-stream-scorer", 1024, "bench"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:000000000000:function:bench-stream-scorer"


def _handler(model, threshold, stored, records, sizes: tuple[int, ...], batches: int) -> dict[int, tuple]:
    """The Lambda handler on Kinesis events with moto in-process; figures per batch size."""
    from finsentry.detectors.artifact import save_model
    from finsentry.local.aws import LOCAL_REGION, local_aws
    from finsentry.local.stream_resources import create_scorer_resources, point_model
    from finsentry.stream.events import kinesis_event

    out = {}
    with local_aws(), tempfile.TemporaryDirectory() as tmp:
        res = create_scorer_resources()
        os.environ.update(res.env)
        save_model(model, Path(tmp) / "model")
        point_model(str(Path(tmp) / "model"), "bench", float(threshold))
        import boto3

        ddb = boto3.client("dynamodb", region_name=LOCAL_REGION)
        table = res.env["PROFILES_TABLE"]
        items = list(stored.values())
        for start in range(0, len(items), 25):
            ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": i}} for i in items[start:start + 25]]})
        from lambdas.stream_scorer import handler as module

        module._service = None
        arn = "arn:aws:kinesis:eu-west-1:000000000000:stream/bench"
        payloads = [json.dumps(r).encode() for r in records]
        sink = io.StringIO()
        cursor = 0
        with contextlib.redirect_stdout(sink):  # EMF lines are built as in Lambda, not printed
            module.handler(kinesis_event(payloads[:50], arn, first_sequence=10**9), _Context())  # cold start
            svc = module._service
            spent = [0.0]
            svc.profiles.workers = 1  # sequential writes: the time inside moto adds up exactly
            svc.profiles.client = _Timed(svc.profiles.client, spent)
            for out_sink in (svc.scored_sink, svc.alerts, svc.quarantine):
                out_sink.client = _Timed(out_sink.client, spent)
            for size in sizes:
                latencies, own, done = [], [], 0
                for _ in range(batches):
                    batch = payloads[cursor:cursor + size]
                    if len(batch) < size:
                        break
                    event = kinesis_event(batch, arn, first_sequence=cursor + 1)
                    started, before = time.perf_counter(), spent[0]
                    answer = module.handler(event, _Context())
                    latencies.append(time.perf_counter() - started)
                    own.append(latencies[-1] - (spent[0] - before))
                    assert answer == {"batchItemFailures": []}
                    cursor += size
                    done += size
                    sink.seek(0)
                    sink.truncate()
                out[size] = (done / sum(latencies), np.percentile(latencies, 50) * 1e3,
                             np.percentile(latencies, 99) * 1e3, done / sum(own), np.percentile(own, 50) * 1e3)
        module._service = None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)
    model, threshold, stored, records = _setup(args.accounts, args.months)
    _core(model, threshold, dict(stored), records, 100, 2)  # warm-up: numba, SHAP
    figures = {}
    table = Table(title="Stream scoring, one core (records/s, batch latency)")
    for col in ("path", "batch", "records/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    for size in (100, 500):
        rate, p50, p99, cpu_rate = _core(model, threshold, dict(stored), records, size, args.batches)
        figures[f"core_records_per_s_{size}"] = round(rate)
        figures[f"core_records_per_cpu_s_{size}"] = round(cpu_rate)
        figures[f"p50_ms_{size}"] = round(p50, 1)
        figures[f"p99_ms_{size}"] = round(p99, 1)
        table.add_row("core", str(size), f"{rate:,.0f}", f"{p50:.1f}", f"{p99:.1f}")
        table.add_row("core, per CPU-second of this process", str(size), f"{cpu_rate:,.0f}", "-", "-")
    handler = _handler(model, threshold, dict(stored), records, (100, 500), args.batches // 2)
    for size, (rate, p50, p99, own_rate, own_p50) in handler.items():
        figures[f"handler_records_per_s_{size}"] = round(rate)
        figures[f"handler_p50_ms_{size}"] = round(p50, 1)
        figures[f"handler_p99_ms_{size}"] = round(p99, 1)
        figures[f"handler_excluding_moto_records_per_s_{size}"] = round(own_rate)
        table.add_row("handler (moto)", str(size), f"{rate:,.0f}", f"{p50:.1f}", f"{p99:.1f}")
        table.add_row("handler minus time in moto calls", str(size), f"{own_rate:,.0f}", f"{own_p50:.1f}", "-")
    naive, naive_cpu = _naive(model, threshold, dict(stored), records, 500)
    figures["naive_records_per_s"] = round(naive)
    figures["naive_records_per_cpu_s"] = round(naive_cpu)
    figures["speedup_vs_naive_cpu"] = round(figures["core_records_per_cpu_s_500"] / naive_cpu, 1)
    figures["speedup_vs_naive"] = round(figures["core_records_per_s_500"] / naive, 1)
    table.add_row("naive (per record)", "1", f"{naive:,.0f}", "-", "-")
    Console().print(table)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
