"""``finsentry demo --engine spark``: the demo's loading and features through local Spark."""

from __future__ import annotations

from finsentry.cli import build_parser, main


def test_engine_flag_defaults_to_pandas():
    assert build_parser().parse_args(["demo"]).engine == "pandas"
    assert build_parser().parse_args(["demo", "--engine", "spark"]).engine == "spark"


def test_demo_runs_on_spark(spark, tmp_path, capsys):
    code = main(["demo", "--accounts", "40", "--months", "6", "--engine", "spark", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "spark engine" in out and "selected" in out.lower()
    assert (tmp_path / "model").is_dir()
