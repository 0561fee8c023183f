"""``finsentry demo --metrics-port``: the run's counters scraped over HTTP from /metrics."""

from __future__ import annotations

import math
import threading
import time
import urllib.request
from types import SimpleNamespace

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from finsentry.drift import DriftMeasurement
from finsentry.local import metrics_exporter
from finsentry.local.metrics_exporter import DemoMetrics
from finsentry.monitoring import Metric
from finsentry.prometheus import NATIVE_METRICS, alert_rules


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:  # noqa: S310 - loopback
        assert resp.status == 200
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def _result() -> SimpleNamespace:
    scored = pd.DataFrame({"verdict": ["alert", "alert", "normal", "normal", "alert"] + ["normal"] * 95,
                           "anomaly_type": ["burst", "burst", "", "", "balance_mismatch"] + [""] * 95,
                           "model_version": "ensemble-0.1.0"})  # fmt: skip
    obs = SimpleNamespace(quarantine_reasons={"malformed": 2, "unknown_account": 1},
                          drift=DriftMeasurement(0.31, {"log_amount": 0.02, "history_count_log": 0.7}, 100))
    return SimpleNamespace(counts={"received": 1003, "quarantined": 3, "test_transactions": 100}, scored=scored,
                           observations=obs, timings={"load": 1.5, "score": 2.0})  # fmt: skip


@pytest.fixture
def exporter():
    metrics = DemoMetrics()
    port = metrics.serve(0)
    yield metrics, port
    metrics.close()


def test_metrics_are_served_while_running_and_filled_with_the_run(exporter):
    metrics, port = exporter
    before = _scrape(port)
    assert before[("finsentry_demo_running", ())] == 1.0
    assert math.isnan(before[("finsentry_score_psi", ())])  # not measured yet: NaN, never a false 0
    metrics.record(_result())
    got = _scrape(port)
    assert got[("finsentry_demo_running", ())] == 0.0
    assert got[("finsentry_records_received_total", ())] == 1003
    assert got[("finsentry_records_scored_total", ())] == 100
    assert got[("finsentry_records_quarantined_total", (("reason", "malformed"),))] == 2
    assert got[("finsentry_anomalies_total", (("anomaly_type", "burst"),))] == 2
    assert got[("finsentry_anomalies_total", (("anomaly_type", "balance_mismatch"),))] == 1
    assert got[("finsentry_anomaly_rate_percent", ())] == pytest.approx(3.0)
    assert got[("finsentry_score_psi", ())] == pytest.approx(0.31)
    assert got[("finsentry_feature_psi", (("feature", "history_count_log"),))] == pytest.approx(0.7)
    assert got[("finsentry_rules_only_batches_total", ())] == 0
    assert got[("finsentry_demo_stage_seconds", (("stage", "score"),))] == 2.0


def test_every_series_a_rule_reads_on_our_metrics_is_exposed(exporter):
    metrics, port = exporter
    metrics.record(_result())
    exposed = {name for name, _ in _scrape(port)}
    own = {m.name for k, m in NATIVE_METRICS.items() if k not in metrics_exporter.SKIPPED}
    assert own <= exposed
    for r in alert_rules("local")["groups"][0]["rules"]:
        names = {n for n in exposed if n in r["expr"]}
        assert names or r["expr"].startswith(("sum(max_over_time(aws_", "max(max_over_time(aws_")), r["expr"]
    assert Metric.BATCH_LATENCY in metrics_exporter.SKIPPED


def test_cli_demo_serves_metrics_during_the_run(tmp_path, monkeypatch):
    """The CLI wiring: the exporter is up before the pipeline starts and holds after it."""
    from finsentry import cli

    seen: dict = {}

    def fake_run_demo(config, bucket, progress):
        seen["during"] = _scrape(seen["port"])
        return _result()

    real_start = cli._start_exporter

    def start(port):
        exp = real_start(port)
        seen["port"] = exp.server.server_address[1]
        return exp

    monkeypatch.setattr("finsentry.local.pipeline.run_demo", fake_run_demo)
    monkeypatch.setattr(cli, "_start_exporter", start)
    monkeypatch.setattr("finsentry.local.summary.print_demo", lambda result, console: None)
    monkeypatch.setattr("finsentry.report.write_report", lambda result, path: path)
    monkeypatch.setattr(cli, "_analysts_side", lambda result, config, feedback_round: None)  # a faked run: no alerts
    done = threading.Event()

    def scrape_while_holding():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "port" not in seen:
            time.sleep(0.05)
        while time.monotonic() < deadline and not done.is_set():
            try:
                seen["after"] = _scrape(seen["port"])
                if seen["after"].get(("finsentry_records_received_total", ())) == 1003:
                    return
            except OSError:
                pass
            time.sleep(0.05)

    t = threading.Thread(target=scrape_while_holding)
    t.start()
    assert cli.main(["demo", "--out", str(tmp_path), "--metrics-port", "0", "--metrics-hold", "2"]) == 0
    done.set()
    t.join()
    assert seen["during"][("finsentry_demo_running", ())] == 1.0
    assert seen["after"][("finsentry_records_received_total", ())] == 1003
