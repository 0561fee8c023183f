"""Prometheus alert rules from the CloudWatch alarm specs: same thresholds, valid for Prometheus.

``promtool`` (Debian's ``prometheus`` package; ``.ci/run`` installs it) checks the file and
unit-tests the rules on synthetic series, so the PromQL is proven to fire when it should.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from finsentry.cli import main
from finsentry.layout import RESOURCES, resource_name
from finsentry.monitoring import ALARMS, METRIC_NAMESPACE, AlarmSpec, Comparison, alarm
from finsentry.prometheus import NATIVE_METRICS, alert_name, alert_rules, duration, expression, snake, write_rules

DURATION = re.compile(r"^(0|[0-9]+(ms|s|m|h|d|w|y))$")
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
FUNCTIONS = {"sum", "avg", "max", "min", "increase", "avg_over_time", "max_over_time", "min_over_time",
             "quantile_over_time"}  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess:
    """promtool with our own arguments (no shell, no outside input)."""
    return subprocess.run([_promtool(), *args], capture_output=True, text=True, check=False)  # noqa: S603


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is needed: apt-get install -y --no-install-recommends prometheus (.ci/run does it)"
    return path


def _check_promql(expr: str) -> tuple[str, str, float]:
    """A minimal PromQL check: balanced brackets, known functions, valid durations and label
    matchers, and a trailing ``<op> <number>``; returns (left side, operator, threshold)."""
    m = re.fullmatch(r"(?P<lhs>.+) (?P<op>>=|>|<=|<|==|!=) (?P<thr>-?[0-9.]+(?:e[+-]?[0-9]+)?)", expr)
    assert m, expr
    lhs = m.group("lhs")
    depth = 0
    for ch in lhs:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        assert depth >= 0, expr
    assert depth == 0, expr
    for fn in re.findall(rf"({NAME})\(", lhs):
        assert fn in FUNCTIONS, f"unknown function {fn} in {expr}"
    for d in re.findall(r"\[([^\]]+)\]", lhs) + re.findall(r"offset ([0-9a-z]+)", lhs):
        assert DURATION.match(d), f"bad duration {d} in {expr}"
    for matchers in re.findall(r"\{([^}]*)\}", lhs):
        for matcher in matchers.split(","):
            assert re.fullmatch(rf'{NAME}(=|!=|=~|!~)"[^"]*"', matcher.strip()), matcher
    return lhs, m.group("op"), float(m.group("thr"))


def test_every_alarm_becomes_one_rule_with_the_same_threshold():
    doc = alert_rules("prod")
    assert list(doc) == ["groups"] and len(doc["groups"]) == 1
    group = doc["groups"][0]
    assert set(group) == {"name", "rules"} and group["name"] == "finsentry-prod"
    by_alarm = {r["labels"]["alarm"]: r for r in group["rules"]}
    assert set(by_alarm) == {a.name for a in ALARMS}
    for spec in ALARMS:
        r = by_alarm[spec.name]
        assert set(r) == {"alert", "expr", "for", "labels", "annotations"}
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", r["alert"]) and r["alert"] == alert_name(spec)
        _, op, threshold = _check_promql(r["expr"])
        assert threshold == spec.threshold
        assert op == {Comparison.GREATER: ">", Comparison.GREATER_OR_EQUAL: ">="}[spec.comparison]
        assert DURATION.match(r["for"])
        assert r["annotations"]["summary"] == spec.summary
        assert r["annotations"]["runbook_url"].endswith(f"#{spec.runbook}")


def test_the_four_named_alerts_read_the_right_series():
    rules = {r["labels"]["alarm"]: r for r in alert_rules("prod")["groups"][0]["rules"]}
    scorer = resource_name("prod", RESOURCES.scorer_function)
    assert rules["anomaly-rate"]["expr"] == "avg(avg_over_time(finsentry_anomaly_rate_percent[15m])) > 5"
    assert rules["anomaly-rate"]["for"] == "15m"  # 2 periods of 15 min: one window + 15 min held
    assert rules["score-drift"]["expr"] == "max(max_over_time(finsentry_score_psi[1h])) > 0.25"
    assert rules["score-drift"]["for"] == "0s"
    assert f'aws_lambda_errors_sum{{function_name="{scorer}"}}[5m] offset 10m' in rules["scorer-errors"]["expr"]
    assert rules["iterator-age"]["expr"].startswith(
        f'max(max_over_time(aws_lambda_iterator_age_maximum{{function_name="{scorer}"}}[1m] offset 10m))')
    assert rules["iterator-age"]["for"] == "4m"


def test_own_metrics_have_native_names_and_sum_needs_a_counter():
    assert {m.name for m in NATIVE_METRICS.values()} == {m.name for m in NATIVE_METRICS.values()
                                                         if re.fullmatch(r"finsentry_[a-z_]+", m.name)}  # fmt: skip
    assert all(m.name.endswith("_total") == (m.kind == "counter") for m in NATIVE_METRICS.values())
    bad = AlarmSpec("x", METRIC_NAMESPACE, "ScorePsi", "Sum", 1, Comparison.GREATER, 60, 1, "s", "r")
    with pytest.raises(ValueError, match="gauge"):
        expression(bad, "prod")
    with pytest.raises(ValueError, match="statistic"):
        expression(AlarmSpec("x", METRIC_NAMESPACE, "ScorePsi", "SampleCount", 1, Comparison.GREATER, 60, 1,
                             "s", "r"), "prod")  # fmt: skip
    p99 = AlarmSpec("lat", METRIC_NAMESPACE, "BatchLatency", "p99", 500, Comparison.GREATER_OR_EQUAL, 300, 3, "s", "r")
    assert expression(p99, "dev") == "max(quantile_over_time(0.99, finsentry_batch_latency_milliseconds[5m])) >= 500"


def test_helpers():
    assert snake("IteratorAge") == "iterator_age" and snake("AWS/Lambda") == "aws_lambda"
    assert [duration(s) for s in (0, 90, 300, 3600, 5400)] == ["0s", "90s", "5m", "1h", "90m"]
    assert alert_name(alarm("score-drift")) == "FinsentryScoreDrift"


def test_promtool_accepts_the_written_file(tmp_path):
    path = write_rules(tmp_path / "rules.yml", env="dev")
    assert yaml.safe_load(path.read_text())["groups"][0]["name"] == "finsentry-dev"
    out = _run("check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(ALARMS)} rules found" in out.stdout


def _expected(spec: AlarmSpec, value: str) -> dict:
    r = next(r for r in alert_rules("prod")["groups"][0]["rules"] if r["labels"]["alarm"] == spec.name)
    annotations = {**r["annotations"], "description": r["annotations"]["description"].replace("{{ $value }}", value)}
    return {"exp_labels": r["labels"], "exp_annotations": annotations}


def test_promtool_unit_tests_fire_the_rules_when_and_only_when_they_should(tmp_path):
    rules = write_rules(tmp_path / "rules.yml", env="prod")
    scorer = resource_name("prod", RESOURCES.scorer_function)
    tests = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {   # score drift: fires as soon as the hourly max passes 0.25
                "interval": "1m",
                "input_series": [{"series": "finsentry_score_psi", "values": "0.1x10 0.4x10"}],
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": "FinsentryScoreDrift", "exp_alerts": []},
                    {"eval_time": "12m", "alertname": "FinsentryScoreDrift",
                     "exp_alerts": [_expected(alarm("score-drift"), "0.4")]},
                ],
            },
            {   # anomaly rate: 15-min mean above 5 % held for 15 more minutes
                "interval": "1m",
                "input_series": [{"series": "finsentry_anomaly_rate_percent", "values": "1x30 9x60"}],
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": "FinsentryAnomalyRate", "exp_alerts": []},
                    {"eval_time": "45m", "alertname": "FinsentryAnomalyRate", "exp_alerts": []},  # pending
                    {"eval_time": "70m", "alertname": "FinsentryAnomalyRate",
                     "exp_alerts": [_expected(alarm("anomaly-rate"), "9")]},
                ],
            },
            {   # iterator age of OUR scorer only, read 10 min late (cloudwatch_exporter), held 4 min
                "interval": "1m",
                "input_series": [
                    {"series": f'aws_lambda_iterator_age_maximum{{function_name="{scorer}"}}',
                     "values": "0x10 120000x30"},
                    {"series": 'aws_lambda_iterator_age_maximum{function_name="someone-else"}', "values": "900000x40"},
                ],
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": "FinsentryIteratorAge", "exp_alerts": []},
                    {"eval_time": "30m", "alertname": "FinsentryIteratorAge",
                     "exp_alerts": [_expected(alarm("iterator-age"), "120000")]},
                ],
            },
            {   # scorer errors: any error in a 5-min period
                "interval": "1m",
                "input_series": [{"series": f'aws_lambda_errors_sum{{function_name="{scorer}"}}',
                                  "values": "0x20 3x10"}],
                "alert_rule_test": [
                    {"eval_time": "25m", "alertname": "FinsentryScorerErrors", "exp_alerts": []},
                    {"eval_time": "33m", "alertname": "FinsentryScorerErrors",
                     "exp_alerts": [_expected(alarm("scorer-errors"), "3")]},
                ],
            },
            {   # model load failures: the counter moves only while a successor model cannot load
                "interval": "1m",
                "input_series": [{"series": "finsentry_model_load_failures_total", "values": "0x20 1+1x10"}],
                "alert_rule_test": [
                    {"eval_time": "15m", "alertname": "FinsentryModelLoadFailed", "exp_alerts": []},
                    {"eval_time": "28m", "alertname": "FinsentryModelLoadFailed",
                     "exp_alerts": [_expected(alarm("model-load-failed"), "5")]},
                ],
            },
            {   # quarantine: 10 records/min (50 per 5 min) is fine, 30/min (150) is not
                "interval": "1m",
                "input_series": [{"series": 'finsentry_records_quarantined_total{reason="malformed"}',
                                  "values": "0+10x20 200+30x20"}],
                "alert_rule_test": [
                    {"eval_time": "15m", "alertname": "FinsentryQuarantineRate", "exp_alerts": []},
                    {"eval_time": "35m", "alertname": "FinsentryQuarantineRate",
                     "exp_alerts": [_expected(alarm("quarantine-rate"), "150")]},
                ],
            },
        ],
    }  # fmt: skip
    path = tmp_path / "rules_test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    out = _run("test", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_command_writes_the_file(tmp_path, capsys):
    out = tmp_path / "prom" / "rules.yml"
    assert main(["rules", "--out", str(out), "--env", "dev", "--runbook-base", "https://wiki/ops"]) == 0
    doc = yaml.safe_load(out.read_text())
    urls = {r["annotations"]["runbook_url"] for r in doc["groups"][0]["rules"]}
    assert "https://wiki/ops#drift" in urls
    assert f"{len(ALARMS)} alert rules for dev" in capsys.readouterr().out
