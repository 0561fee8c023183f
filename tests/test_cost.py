"""The cost model's arithmetic: quantities × list prices, scaling with load and retention."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import yaml

from finsentry.analytics import load_views
from finsentry.cli import main
from finsentry.cost import (
    ETL_METRICS,
    EVENT_METRICS,
    LAKE_SIZES,
    PriceFileError,
    StackProfile,
    alarm_metric_count,
    custom_metric_count,
    dynamodb_units,
    estimate,
    kinesis_shards,
    load_prices,
    measured_lake,
    measured_state,
    metric_series,
    per_million_matrix,
    prices_path,
)
from finsentry.monitoring import ALARMS, SERVICE_ALARMS, Metric

HOURS = 730


def _items(est, service: str) -> dict[str, float]:
    return {i.item: i.quantity for i in est.items if i.service == service}


def test_the_price_file_is_dated_sourced_and_complete():
    prices = load_prices()
    assert prices.region == "eu-west-1" and prices.currency == "USD"
    assert prices.as_of[:4].isdigit() and len(prices.as_of) == 10
    used = {i.service for i in estimate(100).items}
    assert used == set(prices.services), "every priced service is used and every used service is priced"
    for name in prices.services:
        assert prices.source(name).startswith("https://aws.amazon.com/")


def test_every_line_is_quantity_times_unit_price_and_the_totals_add_up():
    est = estimate(100)
    for item in est.items:
        assert item.cost == pytest.approx(item.quantity * item.unit_price)
        assert item.quantity >= 0 and item.unit_price > 0
    assert sum(est.by_service().values()) == pytest.approx(est.total)
    assert est.transactions_per_month == 100 * HOURS * 3600
    assert est.per_million == pytest.approx(est.total / (100 * HOURS * 3600 / 1e6))


def test_per_transaction_parts_scale_linearly_with_tps():
    low, high = estimate(1000), estimate(2000)
    for service in ("dynamodb", "firehose", "sns", "sqs", "athena"):
        for item, qty in _items(low, service).items():
            if item != "profile storage":
                assert _items(high, service)[item] == pytest.approx(2 * qty), (service, item)
    # at these rates every Lambda batch is full: invocations and GB-seconds double too
    for service, item in (("kinesis", "PUT payload units"), ("lambda", "scorer requests"),
                          ("lambda", "scorer GB-seconds (arm64)")):  # fmt: skip
        assert _items(high, service)[item] == pytest.approx(2 * _items(low, service)[item]), item
    # fixed parts do not move
    for service in ("ecr",):
        assert high.by_service()[service] == pytest.approx(low.by_service()[service])
    assert high.per_million < estimate(10).per_million  # fixed costs are spread over more transactions


def test_dynamodb_is_priced_per_unit_from_the_measured_item_sizes():
    prices = load_prices()
    n = 50 * HOURS * 3600
    measured = measured_state()
    assert measured["account_item_bytes"] > 0 and 0 < measured["partner_share"] < 1
    on_demand = estimate(50, stack=replace(StackProfile(), dynamodb_mode="on-demand"))
    wu, ru = dynamodb_units(on_demand)
    # one account write (1 KB steps) + the partner share x one partner write + one mark per batch
    # + the alert index (one write per alert)
    batch = on_demand.transactions_per_month / next(i.quantity for i in on_demand.items
                                                    if i.item == "scorer requests")  # records per invocation
    expected = (math.ceil(measured["account_item_bytes"] / 1024) + measured["partner_share"]
                * math.ceil(measured["partner_item_bytes"] / 1024) + 1 / batch + 0.01)  # fmt: skip
    assert wu == pytest.approx(expected)
    # reads: the same items (4 KB steps) + the mark; the risk items only while the model reads risk
    reads = (math.ceil(measured["account_item_bytes"] / 4096) + measured["partner_share"]
             * math.ceil(measured["partner_item_bytes"] / 4096) + 1 / batch)  # fmt: skip
    assert ru == pytest.approx(reads)  # the default deployment serves an unsupervised model
    supervised = dynamodb_units(estimate(50, stack=replace(on_demand.stack, serves_risk=True)))[1]
    assert supervised == pytest.approx(reads + 1 + measured["partner_share"])
    writes = next(i for i in on_demand.items if i.item.startswith("writes ("))
    assert writes.quantity == pytest.approx(n * wu)
    assert writes.cost == pytest.approx(n * wu * prices.get("dynamodb", "write_request_units_per_million") / 1e6)
    provisioned = estimate(50)  # the default: provisioned capacity at auto scaling's 70 % target
    capacity = next(i for i in provisioned.items if i.item.startswith("write capacity"))
    assert capacity.quantity == pytest.approx(50 * wu / 0.7 * HOURS)
    assert capacity.unit_price == prices.get("dynamodb", "provisioned_wcu_hour")
    assert provisioned.by_service()["dynamodb"] < on_demand.by_service()["dynamodb"]


def test_larger_profile_items_cost_more_write_units():
    small = dynamodb_units(estimate(100, stack=replace(StackProfile(), account_item_bytes=900.0)))[0]
    large = dynamodb_units(estimate(100, stack=replace(StackProfile(), account_item_bytes=2100.0)))[0]
    assert large == pytest.approx(small + 2)  # 900 B: 1 WCU, 2,100 B: 3 WCU


def test_the_scorer_is_priced_on_graviton_by_default():
    arm, x86 = estimate(100), estimate(100, stack=replace(StackProfile(), lambda_architecture="x86_64"))
    assert arm.by_service()["lambda"] < x86.by_service()["lambda"]


def test_the_matrix_covers_both_capacity_modes_and_three_loads():
    matrix = per_million_matrix()
    assert set(matrix) == {"provisioned", "on-demand"} and set(matrix["provisioned"]) == {10, 100, 1000}
    assert all(matrix["provisioned"][t][0] < matrix["on-demand"][t][0] for t in (100, 1000))
    # at 10 TPS auto scaling's floor (50 RCU and 50 WCU in prod) is more than the load needs
    assert matrix["provisioned"][10][1] > matrix["on-demand"][10][1]


def test_provisioned_capacity_never_goes_under_the_floor():
    est = estimate(10)
    wcu = next(i for i in est.items if i.item.startswith("write capacity"))
    assert wcu.quantity == pytest.approx(StackProfile().dynamodb_min_capacity * HOURS)
    high = next(i for i in estimate(100).items if i.item.startswith("write capacity"))
    assert high.quantity == pytest.approx(100 * dynamodb_units(estimate(100))[0] / 0.7 * HOURS)


def test_the_model_prices_prod_as_the_cdk_app_deploys_it():
    from infra.config import CONFIGS
    from infra.stacks.storage import COOL_AFTER_DAYS

    prod, s = CONFIGS["prod"], StackProfile()
    assert s.lambda_memory_mb == prod.scorer_memory_mb and s.lambda_architecture == "arm64"
    assert (s.batch_size, s.batching_window_s) == (prod.scorer_batch_size, prod.scorer_batching_window_s)
    assert s.firehose_buffer_s == prod.firehose_buffer_s
    assert s.dynamodb_mode == "provisioned" and prod.profiles_provisioned
    assert s.dynamodb_min_capacity == prod.profiles_min_capacity
    assert s.dynamodb_target_utilization * 100 == pytest.approx(prod.profiles_target_utilization)
    assert s.glue_dpus == prod.glue_workers * {"G.1X": 1, "G.2X": 2}[prod.glue_worker_type]
    assert prod.training_schedule_cron == "cron(0 3 ? * MON *)"  # weekly
    assert s.runs_per_month == pytest.approx(HOURS / 24 / 7)
    assert s.log_retention_days == prod.log_retention_days and s.s3_cool_after_days == COOL_AFTER_DAYS


def test_parquet_bytes_and_the_views_scan_are_the_measured_ones():
    lake = measured_lake()
    data = json.loads(LAKE_SIZES.read_text())
    views = data["synthetic"]["view_bytes_per_row"]
    assert set(views) == {v.name for v in load_views()}
    assert lake["athena_view_bytes_per_row"] >= sum(views.values()) / len(views)
    assert 0 < lake["athena_view_bytes_per_row"] < lake["scored_parquet_bytes"]
    est = estimate(100)
    athena = next(i for i in est.items if i.service == "athena")
    queries = StackProfile().athena_queries_per_day * HOURS / 24
    assert athena.quantity == pytest.approx(queries * 30 * 100 * 86_400 * lake["athena_view_bytes_per_row"] / 2**40)
    # a stack's own figure wins over the measured one
    half = estimate(100, stack=replace(StackProfile(), athena_view_bytes_per_row=lake["athena_view_bytes_per_row"] / 2))
    assert half.by_service()["athena"] == pytest.approx(est.by_service()["athena"] / 2)


def test_old_days_are_priced_in_standard_ia():
    est = estimate(100, retention_days=365)
    standard, ia = (next(i for i in est.items if i.item.startswith(p))
                    for p in ("storage, Standard (", "storage, Standard-IA"))
    assert ia.quantity == pytest.approx(standard.quantity * (365 - 90) / 90)
    assert ia.unit_price < standard.unit_price
    month = estimate(100, retention_days=30)
    assert next(i for i in month.items if i.item.startswith("storage, Standard-IA")).quantity == 0


def test_metrics_sent_only_on_events_are_billed_for_their_hours():
    est = estimate(100)
    billed = next(i for i in est.items if i.item.startswith("custom metrics")).quantity
    assert billed < custom_metric_count()
    series = metric_series()
    always = sum(n for m, n in series.items() if m not in EVENT_METRICS | ETL_METRICS)
    assert always < billed < always + 1.0


def test_longer_retention_raises_only_the_s3_storage():
    short, long = estimate(100, retention_days=30), estimate(100, retention_days=365)
    storage = [k for k in _items(short, "s3") if k.startswith("storage")]
    assert len(storage) == 2  # Standard, Standard-IA
    total = {e.retention_days: sum(i.quantity for i in e.items if i.item.startswith("storage")) for e in (short, long)}
    assert total[365] == pytest.approx(total[30] * 365 / 30)
    assert long.by_service()["s3"] > short.by_service()["s3"]
    for service, cost in short.by_service().items():
        if service != "s3":
            assert long.by_service()[service] == pytest.approx(cost), service


def test_kinesis_shards_follow_records_and_bytes_at_the_peak():
    s = StackProfile()
    assert kinesis_shards(1, s) == 1
    assert kinesis_shards(1000, s) == 2  # 2,000 records/s at the peak: two shards
    assert kinesis_shards(1000, replace(s, record_bytes=2000)) == 4  # 4 MB/s at the peak
    est = estimate(1000)
    assert _items(est, "kinesis")["shard-hours"] == 2 * HOURS


def test_low_load_still_pays_one_lambda_batch_per_shard_per_second():
    est = estimate(10)
    assert _items(est, "lambda")["scorer requests"] == pytest.approx(1 * HOURS * 3600)


def test_packing_rows_into_firehose_records_cuts_the_5kb_rounding():
    one = estimate(100)
    one = estimate(100, stack=replace(StackProfile(), firehose_record_bytes=310))  # one row per record
    packed = estimate(100, stack=replace(StackProfile(), firehose_record_bytes=16 * 310))  # 16 x 310 B < 5 KB
    ingest = "ingestion (5 KB steps per record)"
    assert _items(packed, "firehose")[ingest] == pytest.approx(_items(one, "firehose")[ingest] / 16)


def test_on_demand_kinesis_pays_stream_hours_and_data():
    est = estimate(100, stack=replace(StackProfile(), kinesis_mode="on-demand"))
    items = _items(est, "kinesis")
    assert items["stream-hours (on-demand)"] == HOURS
    assert items["data ingested"] == pytest.approx(100 * HOURS * 3600 * 1024 / 2**30)
    with pytest.raises(ValueError, match="kinesis_mode"):
        estimate(10, stack=replace(StackProfile(), kinesis_mode="serverless"))


def test_monitoring_lines_come_from_the_monitoring_module():
    est = estimate(10)
    cw = _items(est, "cloudwatch")
    alarms = next(v for k, v in cw.items() if k.startswith("alarms"))
    # every alarm the CDK app deploys; the two door alarms read both doors' series (labels-unresolved
    # also their accepted counts): metric math is billed per metric read, 4 more than one each
    assert alarms == alarm_metric_count() == len(ALARMS) + len(SERVICE_ALARMS) + 4
    assert custom_metric_count() == sum(metric_series().values()) > len(Metric)
    assert next(v for k, v in cw.items() if k.startswith("custom metrics")) <= custom_metric_count()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["services"]["lambda"].pop("gb_second_arm64"), "services.lambda.gb_second_arm64"),
    (lambda d: d["services"]["sns"].pop("source"), "no source URL for sns"),
    (lambda d: d.pop("as_of"), "missing as_of"),
])  # fmt: skip
def test_a_broken_price_file_is_a_clear_error(tmp_path, edit, message):
    data = yaml.safe_load(prices_path().read_text())
    edit(data)
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PriceFileError, match=message):
        estimate(10, prices=load_prices(path))


def test_bad_load_is_rejected():
    with pytest.raises(ValueError, match="tps"):
        estimate(0)
    with pytest.raises(ValueError, match="retention"):
        estimate(10, retention_days=0)


def test_cli_prints_the_table_and_the_same_figures_as_json(capsys):
    assert main(["cost", "--tps", "100", "--retention-days", "90", "--json"]) == 0
    out = capsys.readouterr().out
    assert "DynamoDB (profiles)" in out and "per M txns" in out and "as of" in out
    figures = json.loads(out.strip().splitlines()[-1])
    est = estimate(100, retention_days=90)
    assert figures["total"] == pytest.approx(est.total, abs=0.01)
    assert figures["per_million_transactions"] == pytest.approx(est.per_million, abs=1e-4)


def test_cli_prices_the_supervised_candidate_serving_with_its_risk_reads(capsys):
    assert main(["cost", "--tps", "100", "--json"]) == 0
    default = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["cost", "--tps", "100", "--serving", "supervised", "--json"]) == 0
    supervised = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = estimate(100, stack=StackProfile(serves_risk=True))
    assert supervised["per_million_transactions"] == pytest.approx(expected.per_million, abs=1e-4)
    assert supervised["per_million_transactions"] > default["per_million_transactions"]


def test_cli_reports_a_missing_price_file(tmp_path, capsys):
    assert main(["cost", "--tps", "5", "--prices", str(tmp_path / "none.yaml")]) == 2
    assert "no price file" in capsys.readouterr().err
