"""Synthetic bank throughput: generating N transactions, then writing them as ``.asc`` files.

    python -m bench.generate [--transactions 1000000] [--months 24] [--seed 7] [--form asc]

Generation covers everything ``generate_bank`` does, up to the finished ``RawTables`` frames;
writing is ``czech.write_tables`` into a temporary directory. Prints a table, then as its last
line one JSON object: rows, generate_seconds, write_seconds, seconds_per_million (generation
seconds scaled to 1,000,000 transactions), rows_per_second, accounts, months.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from finsentry.datasets.synthetic import config_for_transactions, generate_bank


def _write_seconds(raw, form: str) -> tuple[float | None, int]:
    """Seconds to write the tables in ``form`` and the bytes written (None if unavailable)."""
    try:
        from finsentry.datasets import czech
    except ImportError:
        return None, 0
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = czech.write_tables(raw, Path(tmp), form=form)
        seconds = time.perf_counter() - started
        size = sum(Path(p).stat().st_size for p in paths)
    return seconds, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--form", choices=("asc", "tsv"), default="asc")
    args = parser.parse_args(argv)
    console = Console(stderr=False)

    config = config_for_transactions(args.transactions, months=args.months, seed=args.seed)
    console.log(f"{config.n_accounts:,} accounts x {config.months} months (seed {config.seed})")
    started = time.perf_counter()
    raw = generate_bank(config, progress=lambda stage: console.log(stage))
    generate_seconds = time.perf_counter() - started
    rows = len(raw.trans)
    write_seconds, size = _write_seconds(raw, args.form)

    table = Table(title="synthetic bank generation")
    for column in ("rows", "accounts", "generate s", f"write {args.form} s", "rows/s", "s / 1M"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{rows:,}",
        f"{config.n_accounts:,}",
        f"{generate_seconds:.2f}",
        "n/a (no czech module)" if write_seconds is None else f"{write_seconds:.2f}",
        f"{rows / generate_seconds:,.0f}",
        f"{generate_seconds * 1e6 / rows:.2f}",
    )
    console.print(table)
    figures = {
        "rows": rows,
        "accounts": config.n_accounts,
        "months": config.months,
        "generate_seconds": round(generate_seconds, 3),
        "write_seconds": None if write_seconds is None else round(write_seconds, 3),
        "write_form": args.form,
        "written_bytes": size,
        "rows_per_second": round(rows / generate_seconds),
        "seconds_per_million": round(generate_seconds * 1e6 / rows, 3),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
