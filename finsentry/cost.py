"""Monthly cost of the deployed pipeline at a given load, from one dated file of list prices.

``estimate(tps)`` turns the stack's resources (``StackProfile``: what the CDK app deploys and
how the scorer uses it) and a steady load in transactions per second into monthly quantities
per service (shard-hours, GB-seconds, request units, GB stored...), prices each quantity with
``finsentry/data/prices_<region>.yaml`` and sums. Every figure is a ``LineItem`` (quantity ×
unit price), so the arithmetic can be checked line by line.

Units: money in the price file's currency (USD) per month of ``hours_per_month`` (730) hours;
sizes in bytes, GB = 2**30 bytes, TB = 2**40 bytes. Free tiers and savings plans are ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from finsentry.anomalies import AnomalyType
from finsentry.features import DETECTOR_COLUMNS
from finsentry.monitoring import ALARMS, SERVICE_ALARMS, Metric
from finsentry.schema import Reason
from finsentry.yaml_files import read_yaml

PRICES_DIR = Path(__file__).resolve().parent / "data"
STATE_SIZES = PRICES_DIR / "stream_state_sizes.json"  # measured by ``python -m bench.stream``
LAKE_SIZES = PRICES_DIR / "lake_sizes.json"  # measured by ``python -m bench.lake``
DEFAULT_REGION = "eu-west-1"
GB = 2**30
TB = 2**40


class PriceFileError(ValueError):
    """The price file is missing, unreadable or lacks a price the model needs."""


@dataclass(frozen=True)
class Prices:
    """List prices of one region, as of a date (see the file's header for how they were got)."""

    as_of: str
    region: str
    currency: str
    hours_per_month: float
    services: dict[str, dict[str, Any]]
    path: Path

    def get(self, service: str, key: str) -> float:
        try:
            return float(self.services[service][key])
        except (KeyError, TypeError, ValueError) as err:
            raise PriceFileError(f"{self.path.name}: no numeric price services.{service}.{key}") from err

    def source(self, service: str) -> str:
        return str(self.services.get(service, {}).get("source", ""))


def prices_path(region: str = DEFAULT_REGION) -> Path:
    return PRICES_DIR / f"prices_{region}.yaml"


def load_prices(path: Path | str | None = None) -> Prices:
    """Read a price file; every service must name its source page, the file its date."""
    path = Path(path) if path is not None else prices_path()
    data = read_yaml(path, PriceFileError, f"no price file {path}")
    if not isinstance(data, dict):
        raise PriceFileError(f"{path.name}: expected a mapping at the top level")
    missing = [k for k in ("as_of", "region", "currency", "hours_per_month", "services") if k not in data]
    if missing:
        raise PriceFileError(f"{path.name}: missing {', '.join(missing)}")
    services = data["services"]
    unsourced = [name for name, entry in services.items() if not str(entry.get("source", "")).startswith("https://")]
    if unsourced:
        raise PriceFileError(f"{path.name}: no source URL for {', '.join(unsourced)}")
    return Prices(as_of=str(data["as_of"]), region=str(data["region"]), currency=str(data["currency"]),
                  hours_per_month=float(data["hours_per_month"]), services=services, path=path)  # fmt: skip


# Metrics sent only when their event happens (a fault, a refused request, an unreadable file):
# CloudWatch bills a custom metric for the hours it receives data, prorated by the hour; priced at
# EVENT_METRIC_HOURS hours a month each (a day of faults a month: a stated budget, not measured).
EVENT_METRICS = frozenset({Metric.RULES_ONLY, Metric.MODEL_LOAD_FAILED, Metric.CORRUPT_ITEMS,
                           Metric.MARK_WRITE_FAILED, Metric.LABEL_REQUESTS_REFUSED,
                           Metric.FEEDBACK_UNREADABLE, Metric.INDEX_WRITE_FAILED})  # fmt: skip
# counts both label doors send, each under its own service (feedback-ingest and labels-api)
DOOR_METRICS = frozenset({Metric.LABELS_RECEIVED, Metric.LABELS_ACCEPTED, Metric.LABELS_NEW, Metric.LABELS_REJECTED,
                          Metric.LABELS_UNRESOLVED, Metric.RISK_WRITE_FAILED})  # fmt: skip
LABEL_DOORS = 2
EVENT_METRIC_HOURS = 24.0
# sent by the Glue jobs at the end of each run (finsentry.etl.quality): one hour per job and run
ETL_METRICS = frozenset({Metric.ETL_ROWS_IN, Metric.ETL_ROWS_OUT, Metric.ETL_QUARANTINED, Metric.ETL_REJECTED_SHARE,
                         Metric.ETL_BALANCE_BREAKS, Metric.ETL_DUPLICATES})  # fmt: skip


def metric_series() -> dict[Metric, int]:
    """Series per custom metric: its dimension values (the series a month of traffic publishes)."""
    per_dimension = {Metric.QUARANTINED: len(Reason), Metric.ANOMALIES: len(AnomalyType),
                     Metric.FEATURE_PSI: len(DETECTOR_COLUMNS), Metric.ETL_QUARANTINED: 1 + len(Reason),
                     **dict.fromkeys(DOOR_METRICS, LABEL_DOORS)}  # fmt: skip
    return {m: per_dimension.get(m, 1) for m in Metric}


def alarm_metric_count() -> int:
    """Alarm metrics billed: CloudWatch bills a metric-math alarm per metric it reads. An alarm
    on a door count reads both doors' series (infra/stacks/monitoring.py), and a share reads its
    denominator's too; every other alarm reads one metric."""
    def reads(metric) -> int:
        return LABEL_DOORS if metric in DOOR_METRICS else 1

    return sum(reads(a.metric) + (reads(a.share_of) if a.share_of is not None else 0)
               for a in (*ALARMS, *SERVICE_ALARMS))


def custom_metric_count() -> int:
    """Custom CloudWatch metric series the deployment publishes: each metric × its dimension values."""
    return sum(metric_series().values())


def custom_metric_months(s: StackProfile, hours_per_month: float) -> float:
    """Metric-months billed: series always sent count whole months; event metrics their budgeted
    hours; the Glue jobs' metrics one hour per job run."""
    etl_hours = s.runs_per_month * s.glue_jobs_per_run
    return sum(n * (EVENT_METRIC_HOURS / hours_per_month if m in EVENT_METRICS
                    else min(1.0, etl_hours / hours_per_month) if m in ETL_METRICS else 1.0)
               for m, n in metric_series().items())  # fmt: skip


@dataclass(frozen=True)
class StackProfile:
    """The deployed resources and how the pipeline uses them (the model's assumptions).

    Sizes marked *measured* come from this repository (``bench.stream``, the scored and
    curated Parquet the demo writes); the rest are design choices of the stack or stated
    assumptions, all overridable.
    """

    # Kinesis: one JSON record per transaction (measured: 424 bytes from schema.to_record)
    kinesis_mode: str = "provisioned"  # or "on-demand"
    record_bytes: int = 450
    peak_factor: float = 2.0  # shards sized for twice the average rate
    on_demand_min_shards: int = 4  # what an on-demand stream starts with (pollers for Lambda)
    # scorer Lambda (container image, arm64 / Graviton: 20 % less per GB-second than x86); memory as
    # infra/config.py deploys it in prod (a test keeps them equal)
    lambda_architecture: str = "arm64"  # or "x86_64"
    lambda_memory_mb: int = 2048
    batch_size: int = 500
    batching_window_s: float = 1.0
    # the scoring core's CPU time per batch = fixed + per record x records: MEASURED (None = read
    # ``bench.stream``'s core CPU seconds per batch of 100 and of 500 from the sizes file, the line
    # through both points); priced at the records per batch the load gives (about 100 at 100 TPS)
    core_seconds_per_batch: float | None = None
    core_seconds_per_record: float | None = None
    seconds_per_batch: float = 0.08  # DynamoDB BatchGet/PutItem, Firehose, SNS round trips (assumed)
    log_bytes_per_invocation: int = 1500  # START/END/REPORT lines and the EMF metrics blob
    # DynamoDB profiles (finsentry.stream.state / protocol). Per batch: one strongly consistent
    # read of every item it touches; one conditional write per account and per partner touched
    # (state, checkpoints and the new records' recipes in ONE write: no second write to trim an
    # outbox), one write of the channel mark. Item sizes are MEASURED: ``bench.stream`` encodes
    # the items the scorer really writes (synthetic bank) and the handbook's customers, into
    # ``finsentry/data/stream_state_sizes.json``; None here = read that file (the larger p99).
    dynamodb_mode: str = "provisioned"  # prod: provisioned + auto scaling; or "on-demand"
    dynamodb_target_utilization: float = 0.7  # auto scaling's target: capacity = load / this
    dynamodb_min_capacity: int = 50  # auto scaling's floor in prod (RCU and WCU each; infra/config.py)
    account_item_bytes: float | None = None
    partner_item_bytes: float | None = None
    channel_item_bytes: float = 120.0  # a mark with nothing pending (bench.stream prints it)
    partner_share: float | None = None  # share of transactions with a partner (measured, same file)
    account_writes_per_txn: float = 1.0  # one account per transaction per batch (prudent: bench.stream
                                         # measures fewer when an account has several in a batch)
    accounts: int = 500_000
    # label-derived risk (finsentry.stream.risk): one unconditional write of the alert index
    # (``txn#``, < 1 KB) per alert, always; while the served model reads risk (the supervised
    # candidate), one more read per transaction for its account's risk item and one per
    # partner (< 4 KB each; a missing item is billed as a read too). The doors' writes follow
    # the analysts' verdicts, not the transactions: not counted here.
    alert_share: float = 0.01  # alerts per transaction (the 1 % alert budget)
    # the default deployment serves an unsupervised model (no risk reads); the supervised
    # candidate serves only once analysts' verdicts reach the minimum and it wins the selection:
    # `finsentry cost --serving supervised` prices that state
    serves_risk: bool = False
    # Firehose -> S3 scored/ (Parquet)
    scored_json_bytes: int = 310  # measured: a scored row as JSON
    firehose_record_bytes: int = 50 * 1024  # rows packed per Firehose record (finsentry.stream.sinks.PACK_BYTES)
    firehose_buffer_s: int = 900  # infra/config.py firehose_buffer_s (a test keeps them equal)
    # Parquet bytes per row, MEASURED (None = ``bench.lake``'s file: scored rows written as Firehose
    # writes them, files of 100 TPS x 900 s, synthetic bank and handbook, the larger; curated the same)
    s3_cool_after_days: int = 90  # scored/ and curated/features/ move to Standard-IA (infra/stacks/storage.py)
    scored_parquet_bytes: float | None = None  # was 50 (prudent guess); measured 28-29 (bench.lake)
    curated_parquet_bytes: float | None = None  # was 80; measured 176-182 with the LSTM's sequence columns
    # alerts and quarantine
    alert_share: float = 0.01  # the alert budget
    quarantine_share: float = 0.001
    # the scheduled training pipeline (Step Functions), as prod deploys it (infra/config.py; a test
    # keeps them equal): weekly, Glue G.2X x 10 workers = 20 DPU
    runs_per_month: float = 730 / (24 * 7)  # weekly
    transitions_per_run: int = 30
    glue_jobs_per_run: int = 2  # ingest, features
    glue_dpus: int = 20
    glue_startup_h: float = 0.05
    # per job; was 20 M (a guess). bench.etl (README, 2026-11-25, local[2], load 2-4): ingest 1,056,320
    # rows in 80.3 s (47 M rows/h on 2 cores), features in 44.0 s (86 M/h); a DPU has 4 vCPU: priced at
    # the slower job's 2-core rate (half a DPU's cores for Glue's and S3's overheads), rounded down
    glue_rows_per_dpu_hour: float = 40e6
    detectors_per_run: int = 3  # Isolation Forest, LOF, LSTM
    training_rows_cap: float = 2e6  # training samples at most this many rows
    training_rows_per_hour: float = 4e6
    training_min_h: float = 0.1
    evaluate_h: float = 0.25
    transform_rows_per_hour: float = 18e6  # about 5,000 records/s per instance
    # analysts on Athena (Tableau): queries spread evenly over the views of infra/athena/views, each
    # over the last ``athena_days_scanned`` days (partition dt). Bytes a query scans per row: MEASURED
    # (None = ``bench.lake``: the compressed bytes of the scored columns each view reads, their mean;
    # was 50 B x a 0.5 column share = 25 B, a guess)
    athena_queries_per_day: int = 100
    athena_days_scanned: int = 30
    athena_view_bytes_per_row: float | None = None
    # always-on pieces
    kms_keys: int = 1
    kms_encrypting_resources: int = 10  # data-key reuse: about 12 requests per hour each
    log_retention_days: int = 365  # prod's
    dashboards: int = 1
    image_gb: float = 4.5  # scorer image and the SageMaker image in ECR


@dataclass(frozen=True)
class LineItem:
    service: str
    item: str
    quantity: float
    unit: str
    unit_price: float

    @property
    def cost(self) -> float:
        return self.quantity * self.unit_price


@dataclass
class CostEstimate:
    tps: float
    retention_days: int
    prices: Prices
    stack: StackProfile
    items: list[LineItem] = field(default_factory=list)

    @property
    def transactions_per_month(self) -> float:
        return self.tps * self.prices.hours_per_month * 3600

    @property
    def total(self) -> float:
        return sum(i.cost for i in self.items)

    @property
    def per_million(self) -> float:
        """Monthly total divided by the month's transactions, in millions."""
        return self.total / (self.transactions_per_month / 1e6)

    def by_service(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for i in self.items:
            out[i.service] = out.get(i.service, 0.0) + i.cost
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "tps": self.tps, "retention_days": self.retention_days, "region": self.prices.region,
            "prices_as_of": self.prices.as_of, "currency": self.prices.currency,
            "transactions_per_month": self.transactions_per_month,
            "by_service": {k: round(v, 2) for k, v in self.by_service().items()},
            "total": round(self.total, 2), "per_million_transactions": round(self.per_million, 4),
            "items": [{**asdict(i), "cost": round(i.cost, 4)} for i in self.items],
        }  # fmt: skip


def kinesis_shards(tps: float, s: StackProfile) -> int:
    """Provisioned shards for the peak: 1,000 records/s and 1 MB/s of writes per shard."""
    peak = tps * s.peak_factor
    return max(1, math.ceil(peak / 1000), math.ceil(peak * s.record_bytes / 1e6))


def lambda_batches_per_second(tps: float, shards: int, s: StackProfile) -> float:
    """Full batches when the load fills them, else one batch per shard per batching window."""
    return max(tps / s.batch_size, min(tps, shards / s.batching_window_s))


def estimate(tps: float, retention_days: int = 365, stack: StackProfile | None = None,
             prices: Prices | None = None) -> CostEstimate:  # fmt: skip
    """The monthly cost of the pipeline at a steady ``tps`` with ``retention_days`` of S3 data."""
    if tps <= 0:
        raise ValueError(f"tps must be positive, got {tps}")
    if retention_days < 1:
        raise ValueError(f"retention must be at least one day, got {retention_days}")
    s = stack or StackProfile()
    if s.kinesis_mode not in ("provisioned", "on-demand"):
        raise ValueError(f"kinesis_mode must be provisioned or on-demand, got {s.kinesis_mode!r}")
    p = prices or load_prices()
    est = CostEstimate(tps=tps, retention_days=retention_days, prices=p, stack=s)
    for part in (_kinesis, _lambda, _dynamodb, _firehose, _s3, _athena, _messaging, _training, _always_on):
        est.items.extend(part(est))
    return est


def _item(est: CostEstimate, service: str, item: str, quantity: float, unit: str, price_key: str,
          per: float = 1.0) -> LineItem:  # fmt: skip
    return LineItem(service, item, quantity, unit, est.prices.get(service, price_key) / per)


def _shards(est: CostEstimate) -> int:
    shards = kinesis_shards(est.tps, est.stack)
    return shards if est.stack.kinesis_mode == "provisioned" else max(shards, est.stack.on_demand_min_shards)


def _kinesis(est: CostEstimate) -> list[LineItem]:
    s, hours, n = est.stack, est.prices.hours_per_month, est.transactions_per_month
    if s.kinesis_mode == "provisioned":
        units = n * math.ceil(s.record_bytes / 25_600)
        return [_item(est, "kinesis", "shard-hours", _shards(est) * hours, "shard-h", "provisioned_shard_hour"),
                _item(est, "kinesis", "PUT payload units", units, "unit", "put_payload_units_per_million", 1e6)]
    gb = n * max(s.record_bytes, 1024) / GB  # on-demand bills each record rounded up to 1 KB
    return [_item(est, "kinesis", "stream-hours (on-demand)", hours, "h", "on_demand_stream_hour"),
            _item(est, "kinesis", "data ingested", gb, "GB", "on_demand_ingested_per_gb"),
            _item(est, "kinesis", "data retrieved (scorer)", gb, "GB", "on_demand_retrieved_per_gb")]  # fmt: skip


def _invocations(est: CostEstimate) -> float:
    seconds = est.prices.hours_per_month * 3600
    return lambda_batches_per_second(est.tps, _shards(est), est.stack) * seconds


def core_seconds(s: StackProfile) -> tuple[float, float]:
    """(CPU seconds per batch, per record) of the scoring core: the stack's, else the line through
    ``bench.stream``'s measured CPU seconds per batch of 100 and of 500 records."""
    if s.core_seconds_per_batch is not None and s.core_seconds_per_record is not None:
        return s.core_seconds_per_batch, s.core_seconds_per_record
    m = measured_state()
    if "core_cpu_s_per_batch_100" not in m:
        raise PriceFileError(f"no measured core time in {STATE_SIZES} (run python -m bench.stream)")
    small, large = m["core_cpu_s_per_batch_100"], m["core_cpu_s_per_batch_500"]
    per_record = max((large - small) / 400, 0.0)
    return max(small - 100 * per_record, 0.0), per_record


def _lambda(est: CostEstimate) -> list[LineItem]:
    s = est.stack
    invocations = _invocations(est)
    fixed, per_record = core_seconds(s)
    busy_s = invocations * (s.seconds_per_batch + fixed) + est.transactions_per_month * per_record
    if s.lambda_architecture not in ("arm64", "x86_64"):
        raise ValueError(f"lambda_architecture must be arm64 or x86_64, got {s.lambda_architecture!r}")
    key = "gb_second_arm64" if s.lambda_architecture == "arm64" else "gb_second_x86"
    return [_item(est, "lambda", f"scorer GB-seconds ({s.lambda_architecture})", busy_s * s.lambda_memory_mb / 1024,
                  "GB-s", key),
            _item(est, "lambda", "scorer requests", invocations, "request", "requests_per_million", 1e6)]  # fmt: skip


@lru_cache(maxsize=4)
def measured_state(path: Path = STATE_SIZES) -> dict[str, float]:
    """Item sizes and the partner share as ``bench.stream`` measured them: per kind, the larger
    p99 of the synthetic bank's items and the handbook's."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise PriceFileError(f"no measured item sizes in {path} (run python -m bench.stream): {err}") from err
    out: dict[str, float] = {}
    for kind in ("account", "partner", "channel"):
        values = [float(part[f"{kind}_item_bytes_p99"]) for part in (data.get("synthetic"), data.get("handbook"))
                  if part and f"{kind}_item_bytes_p99" in part]  # fmt: skip
        if values:
            out[f"{kind}_item_bytes"] = max(values)
    out["partner_share"] = float(data.get("synthetic", {}).get("partner_share", 1.0))
    for size in (100, 500):
        key = f"core_cpu_s_per_batch_{size}"
        if key in data.get("core", {}):
            out[key] = float(data["core"][key])
    return out


@lru_cache(maxsize=4)
def measured_lake(path: Path = LAKE_SIZES) -> dict[str, float]:
    """Parquet bytes per row as ``bench.lake`` measured them, the larger of the synthetic bank's
    and the handbook's: scored (the largest file), curated, and what an Athena query on the
    views scans per row (the mean over the views)."""
    try:
        data = json.loads(path.read_text())
        parts = [data[k] for k in ("synthetic", "handbook") if data.get(k)]
        return {"scored_parquet_bytes": max(p["scored_bytes_per_row_max"] for p in parts),
                "curated_parquet_bytes": max(p["curated_bytes_per_row"] for p in parts),
                "athena_view_bytes_per_row": max(sum(p["view_bytes_per_row"].values()) / len(p["view_bytes_per_row"])
                                                 for p in parts)}  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as err:
        raise PriceFileError(f"no measured Parquet sizes in {path} (run python -m bench.lake): {err!r}") from err


def lake_profile(s: StackProfile) -> dict[str, float]:
    """The stack's Parquet bytes per row, else the measured ones."""
    own = {"scored_parquet_bytes": s.scored_parquet_bytes, "curated_parquet_bytes": s.curated_parquet_bytes,
           "athena_view_bytes_per_row": s.athena_view_bytes_per_row}  # fmt: skip
    m = measured_lake() if None in own.values() else {}
    return {k: v if v is not None else m[k] for k, v in own.items()}


def state_profile(s: StackProfile) -> dict[str, float]:
    """The stack's item sizes and partner share: its own figures, else the measured ones."""
    m = measured_state() if s.account_item_bytes is None or s.partner_item_bytes is None or s.partner_share is None \
        else {}
    return {"account_item_bytes": s.account_item_bytes if s.account_item_bytes is not None else m["account_item_bytes"],
            "partner_item_bytes": s.partner_item_bytes if s.partner_item_bytes is not None else m["partner_item_bytes"],
            "partner_share": s.partner_share if s.partner_share is not None else m["partner_share"]}  # fmt: skip


def dynamodb_units(est: CostEstimate) -> tuple[float, float]:
    """(write units, read units) per transaction: item sizes in DynamoDB's 1 KB write steps and
    4 KB strongly consistent read steps; the channel mark once per batch; the alert index per
    alert and, while the model reads risk, the risk items (``finsentry.stream.risk``)."""
    s = est.stack
    m = state_profile(s)
    batch = est.transactions_per_month / max(_invocations(est), 1.0)  # records per batch at this load
    account_w, partner_w = math.ceil(m["account_item_bytes"] / 1024), math.ceil(m["partner_item_bytes"] / 1024)
    account_r, partner_r = math.ceil(m["account_item_bytes"] / 4096), math.ceil(m["partner_item_bytes"] / 4096)
    writes = s.account_writes_per_txn * account_w + m["partner_share"] * partner_w \
        + math.ceil(s.channel_item_bytes / 1024) / batch + s.alert_share  # the alert index: 1 unit each
    reads = s.account_writes_per_txn * account_r + m["partner_share"] * partner_r + 1 / batch
    if s.serves_risk:  # the account's and the partner's risk items
        reads += s.account_writes_per_txn + m["partner_share"]
    return writes, reads


def _dynamodb(est: CostEstimate) -> list[LineItem]:
    s, n = est.stack, est.transactions_per_month
    if s.dynamodb_mode not in ("provisioned", "on-demand"):
        raise ValueError(f"dynamodb_mode must be provisioned or on-demand, got {s.dynamodb_mode!r}")
    wu, ru = dynamodb_units(est)
    m = state_profile(s)
    storage = _item(est, "dynamodb", "profile storage", s.accounts * m["account_item_bytes"] / GB, "GB-month",
                    "storage_gb_month")  # fmt: skip
    if s.dynamodb_mode == "on-demand":
        return [_item(est, "dynamodb", f"reads ({ru:.3f} RRU per transaction)", n * ru, "RRU",
                      "read_request_units_per_million", 1e6),
                _item(est, "dynamodb", f"writes ({wu:.3f} WRU per transaction)", n * wu, "WRU",
                      "write_request_units_per_million", 1e6), storage]  # fmt: skip
    hours = est.prices.hours_per_month
    # capacity auto scaling keeps provisioned: load / target, never under the floor
    wcu = max(est.tps * wu / s.dynamodb_target_utilization, s.dynamodb_min_capacity)
    rcu = max(est.tps * ru / s.dynamodb_target_utilization, s.dynamodb_min_capacity)
    return [_item(est, "dynamodb", f"read capacity ({ru:.3f} RCU per transaction)", rcu * hours,
                  "RCU-h", "provisioned_rcu_hour"),
            _item(est, "dynamodb", f"write capacity ({wu:.3f} WCU per transaction)", wcu * hours,
                  "WCU-h", "provisioned_wcu_hour"), storage]  # fmt: skip


def _firehose(est: CostEstimate) -> list[LineItem]:
    s, n = est.stack, est.transactions_per_month
    step = est.prices.get("firehose", "record_rounding_kb") * 1024
    rows_per_record = max(1, s.firehose_record_bytes // s.scored_json_bytes)
    record_bytes = rows_per_record * s.scored_json_bytes
    billed = (n / rows_per_record) * math.ceil(record_bytes / step) * step / GB
    return [_item(est, "firehose", f"ingestion ({step / 1024:.0f} KB steps per record)", billed, "GB",
                  "ingested_per_gb"),
            _item(est, "firehose", "JSON -> Parquet conversion", n * s.scored_json_bytes / GB, "GB",
                  "format_conversion_per_gb")]  # fmt: skip


def _objects_per_day(est: CostEstimate) -> float:
    """Parquet objects Firehose writes per day: one per buffer interval (or per 128 MB)."""
    daily_bytes = est.tps * 86_400 * lake_profile(est.stack)["scored_parquet_bytes"]
    return max(86_400 / est.stack.firehose_buffer_s, daily_bytes / (128 * 2**20))


def _s3(est: CostEstimate) -> list[LineItem]:
    s, lake = est.stack, lake_profile(est.stack)
    per_row = lake["scored_parquet_bytes"] + lake["curated_parquet_bytes"]
    # steady state under the lifecycle rules: the newest days in Standard, the older ones in Standard-IA
    hot_days = min(est.retention_days, s.s3_cool_after_days)
    stored = est.tps * 86_400 * hot_days * per_row / GB
    cool = est.tps * 86_400 * (est.retention_days - hot_days) * per_row / GB
    days = est.prices.hours_per_month / 24
    puts = _objects_per_day(est) * days * 2  # scored/ by Firehose, curated/ by Glue
    gets = s.athena_queries_per_day * days * s.athena_days_scanned * _objects_per_day(est)
    return [_item(est, "s3", f"storage, Standard ({hot_days} days of scored/ and curated/)", stored, "GB-month",
                  "standard_gb_month"),
            _item(est, "s3", f"storage, Standard-IA (the {est.retention_days - hot_days} days before)", cool,
                  "GB-month", "standard_ia_gb_month"),
            _item(est, "s3", "PUT requests", puts, "request", "put_per_thousand", 1e3),
            _item(est, "s3", "GET requests (Athena)", gets, "request", "get_per_thousand", 1e3)]  # fmt: skip


def _athena(est: CostEstimate) -> list[LineItem]:
    s = est.stack
    scan = s.athena_days_scanned * est.tps * 86_400 * lake_profile(s)["athena_view_bytes_per_row"]
    scan = max(scan, est.prices.get("athena", "minimum_mb_per_query") * 2**20)
    queries = s.athena_queries_per_day * est.prices.hours_per_month / 24
    per_row = lake_profile(s)["athena_view_bytes_per_row"]
    return [_item(est, "athena", f"data scanned by the views ({per_row:.1f} B per row and query)", queries * scan / TB,
                  "TB", "per_tb_scanned")]  # fmt: skip


def _messaging(est: CostEstimate) -> list[LineItem]:
    s, n = est.stack, est.transactions_per_month
    return [_item(est, "sns", "alert publishes", n * s.alert_share, "publish", "publish_per_million", 1e6),
            _item(est, "sqs", "quarantine send/receive/delete", n * s.quarantine_share * 3, "request",
                  "requests_per_million", 1e6)]  # fmt: skip


def _training(est: CostEstimate) -> list[LineItem]:
    s = est.stack
    rows_per_run = est.transactions_per_month / s.runs_per_month  # each run processes what is new
    dpu_h = s.runs_per_month * s.glue_jobs_per_run * (s.glue_dpus * s.glue_startup_h
                                                      + rows_per_run / s.glue_rows_per_dpu_hour)
    train_h = s.runs_per_month * s.detectors_per_run * max(
        s.training_min_h, min(rows_per_run, s.training_rows_cap) / s.training_rows_per_hour)
    transform_h = s.runs_per_month * max(s.training_min_h, rows_per_run / s.transform_rows_per_hour)
    return [_item(est, "glue", "ETL DPU-hours", dpu_h, "DPU-h", "dpu_hour"),
            _item(est, "sagemaker", "training (3 detectors)", train_h, "instance-h", "training_instance_hour"),
            _item(est, "sagemaker", "evaluation (processing)", s.runs_per_month * s.evaluate_h, "instance-h",
                  "processing_instance_hour"),
            _item(est, "sagemaker", "backfill (batch transform)", transform_h, "instance-h",
                  "transform_instance_hour"),
            _item(est, "stepfunctions", "state transitions", s.runs_per_month * s.transitions_per_run,
                  "transition", "per_thousand_transitions", 1e3)]  # fmt: skip


def _always_on(est: CostEstimate) -> list[LineItem]:
    s, hours = est.stack, est.prices.hours_per_month
    kms_requests = (s.kms_encrypting_resources + _shards(est)) * 12 * hours
    logs_gb = (_invocations(est) * s.log_bytes_per_invocation
               + est.transactions_per_month * s.quarantine_share * 1024) / GB  # fmt: skip
    return [_item(est, "kms", "customer managed keys", s.kms_keys, "key-month", "key_month"),
            _item(est, "kms", "requests (data-key reuse)", kms_requests, "request", "requests_per_ten_thousand", 1e4),
            _item(est, "cloudwatch", f"custom metrics ({custom_metric_count()} series, billed by the hour sent)",
                  custom_metric_months(s, hours), "metric-month", "metric_month"),
            _item(est, "cloudwatch", f"alarms ({len(ALARMS) + len(SERVICE_ALARMS)}, billed per metric read)",
                  alarm_metric_count(), "alarm-metric-month", "alarm_month"),
            _item(est, "cloudwatch", "dashboard", s.dashboards, "dashboard-month", "dashboard_month"),
            _item(est, "cloudwatch", "logs ingested", logs_gb, "GB", "logs_ingested_per_gb"),
            _item(est, "cloudwatch", "logs stored", logs_gb * s.log_retention_days / 30, "GB-month",
                  "logs_stored_gb_month"),
            _item(est, "ecr", "container images", s.image_gb, "GB-month", "storage_gb_month")]  # fmt: skip


SERVICE_TITLES = {
    "kinesis": "Kinesis Data Streams", "lambda": "Lambda (scorer)", "dynamodb": "DynamoDB (profiles)",
    "firehose": "Data Firehose", "s3": "S3", "athena": "Athena", "sns": "SNS (alerts)", "sqs": "SQS (quarantine)",
    "glue": "Glue", "sagemaker": "SageMaker", "stepfunctions": "Step Functions", "kms": "KMS",
    "cloudwatch": "CloudWatch", "ecr": "ECR",
}  # fmt: skip


def print_estimate(est: CostEstimate, console, detail: bool = False) -> None:
    """A table per service (and per line item with ``detail``), the total and per million."""
    from rich.table import Table

    cur = est.prices.currency
    title = (f"Monthly cost at {est.tps:,.0f} TPS ({est.transactions_per_month / 1e6:,.1f} M transactions), "
             f"{est.retention_days} days retention, Kinesis {est.stack.kinesis_mode}, "
             f"DynamoDB {est.stack.dynamodb_mode}")  # fmt: skip
    console.print(f"[bold]{title}[/bold]")
    table = Table()
    table.add_column("service")
    if detail:
        table.add_column("item")
        table.add_column("quantity", justify="right")
    table.add_column(f"{cur}/month", justify="right")
    table.add_column(f"{cur} per M txns", justify="right")
    table.add_column("share", justify="right")
    million = est.transactions_per_month / 1e6
    rows = ([(SERVICE_TITLES.get(i.service, i.service), i.item, f"{i.quantity:,.1f} {i.unit}", i.cost)
             for i in est.items] if detail else
            [(SERVICE_TITLES.get(k, k), v) for k, v in sorted(est.by_service().items(), key=lambda kv: -kv[1])])
    for *labels, cost in rows:
        share = cost / est.total if est.total else 0.0
        table.add_row(*labels, f"{cost:,.2f}", f"{cost / million:,.4f}", f"{share:.1%}")
    blanks = ["", ""] if detail else []
    table.add_row("[bold]total[/bold]", *blanks, f"[bold]{est.total:,.2f}[/bold]",
                  f"[bold]{est.per_million:,.4f}[/bold]", "100.0%")  # fmt: skip
    console.print(table)
    console.print(f"List prices {est.prices.region} as of {est.prices.as_of} ({est.prices.path.name}; "
                  "recalled list prices, check before budgeting). No free tier, no discounts.")  # fmt: skip


def per_million_matrix(tps_values: tuple[float, ...] = (10, 100, 1000), retention_days: int = 365,
                       prices: Prices | None = None, **stack: Any) -> dict[str, dict[float, tuple[float, float]]]:
    """$ per million transactions and DynamoDB's share of it, per DynamoDB capacity mode and load."""
    out: dict[str, dict[float, tuple[float, float]]] = {}
    for mode in ("provisioned", "on-demand"):
        out[mode] = {}
        for tps in tps_values:
            est = estimate(tps, retention_days=retention_days, prices=prices,
                           stack=StackProfile(dynamodb_mode=mode, **stack))  # fmt: skip
            ddb = est.by_service().get("dynamodb", 0.0) / (est.transactions_per_month / 1e6)
            out[mode][tps] = (est.per_million, ddb)
    return out


def print_matrix(matrix: dict[str, dict[float, tuple[float, float]]], console) -> None:
    from rich.table import Table

    table = Table(title="USD per million transactions (DynamoDB's part in brackets)")
    table.add_column("DynamoDB")
    loads = sorted(next(iter(matrix.values())))
    for tps in loads:
        table.add_column(f"{tps:,.0f} TPS", justify="right")
    for mode, row in matrix.items():
        table.add_row(mode, *[f"{row[t][0]:.3f} ({row[t][1]:.3f})" for t in loads])
    console.print(table)
