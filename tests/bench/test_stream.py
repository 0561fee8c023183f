"""bench.stream end to end on a small synthetic bank: every stage runs and its figures add up."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from bench import stream


@pytest.fixture(autouse=True)
def _unfrozen():
    """The bench freezes its setup out of the garbage collector (``gc.freeze``) for the timed runs;
    the test session's later tests expect a collector with nothing frozen."""
    yield
    gc.unfreeze()


def test_the_bench_runs_on_a_small_bank_and_reports_the_state_it_wrote(capsys, tmp_path: Path) -> None:
    # the scorer also writes one txn# item per alert (no version): the state scan must skip them
    assert stream.main(["--accounts", "150", "--months", "6", "--batches", "6", "--no-write",
                        "--handbook", str(tmp_path / "absent.csv")]) == 0  # fmt: skip
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["core_records_per_s_500"] > 0 and figures["handler_records_per_s_500"] > 0
    assert 0 < figures["account_item_bytes_p50"] <= figures["account_item_bytes_p99"] < 400_000
    assert 0 < figures["account_write_units_per_txn_500"] <= 1.05
    assert figures["hot_account"]["failed"] == 0
    assert "handbook" not in figures  # no handbook file: no handbook sizes, and no error
    assert gc.get_freeze_count() > 0  # the bench's own freeze, undone by the fixture
