"""Bytes per row of the data lake's Parquet, from real encodings: what S3 stores and Athena scans.

    python -m bench.lake [--accounts 2000 --months 12 --tps 100 --handbook PATH]

For the synthetic bank and the fraud-detection handbook's card transactions (two weeks, mapped by
``bench/handbook.yaml``), each row is scored as the stream scores it (``score_transactions`` in
threshold mode, the threshold alerting 1 % of the rows (the alert budget), no SHAP: the stream's
parity with the batch path is tested in tests/stream and tests/lambdas/stream_scorer), turned into the scored row
(``scoring.scored_frame``, masked ``client_ref``), and written as Parquet with the Glue
table's types and codec (``lake.compression``: GZIP for scored, as Firehose writes it; snappy for
curated, as Spark writes it) (``lake.TABLES["scored"]``) in files of the rows Firehose buffers at ``--tps``
(one object per 900 s buffer interval: 90,000 rows at 100 TPS). The curated features
(``features_with_sequence``: ids, ``ts``, ``seq`` and ``CURATED_COLUMNS``) are written the same way.

Printed: per data set, bytes per scored row over the files (p50 / max), the compressed bytes
per row of each column, and of each Athena view (``infra/athena/views``: the columns of
``scored`` it reads, ``AthenaView.scored_columns``) — what one query scans per row. Written to
``finsentry/data/lake_sizes.json``, which ``finsentry cost`` reads (S3 storage, Athena).

The id columns (``trans_id``, ``account_id``, ``client_ref``) are measured again on files of a
bank of ``--id-accounts`` accounts (one synthetic month): a deployed bank's file holds mostly
distinct accounts, and the benchmark banks' few thousand accounts repeat in a file, which
dictionary encoding makes look cheap; each data set takes the larger figure per column. The
writer is pyarrow's (Firehose's conversion is parquet-mr's): same format, codec and dictionary
pages; a file footer is counted in the row bytes. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from finsentry.analytics import load_views
from finsentry.detectors import make_detector
from finsentry.evaluation import threshold_for_budget
from finsentry.features import DETECTOR_COLUMNS, features_with_sequence
from finsentry.lake import TABLES, compression
from finsentry.layout import PARTITION_KEY
from finsentry.scoring import SCORED_COLUMNS, score_transactions, scored_frame

SIZES_FILE = Path(__file__).resolve().parents[1] / "finsentry" / "data" / "lake_sizes.json"
HANDBOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "handbook" / \
    "simulated-data-raw_2018-04-01_2018-09-30.csv.gz"
HANDBOOK_WINDOW = ("2018-07-25", "2018-08-08")
FIREHOSE_BUFFER_S = 900  # infra: the scored stream's buffer interval (StackProfile.firehose_buffer_s)
BUDGET = 0.01
_ARROW = {"string": pa.string(), "double": pa.float64(), "bigint": pa.int64(), "int": pa.int32(),
          "timestamp": pa.timestamp("ms")}  # fmt: skip


def _synthetic(accounts: int, months: int) -> pd.DataFrame:
    from finsentry.datasets import czech, synthetic

    raw = synthetic.generate_bank(synthetic.SyntheticConfig(n_accounts=accounts, months=months))
    with tempfile.TemporaryDirectory() as tmp:
        czech.write_tables(raw, Path(tmp))
        return czech.load(Path(tmp)).transactions.valid


def _handbook(path: Path) -> pd.DataFrame:
    from finsentry.mapping import load_mapped

    valid = load_mapped(path, Path(__file__).resolve().parent / "handbook.yaml").result.valid
    return valid[(valid["ts"] >= HANDBOOK_WINDOW[0]) & (valid["ts"] < HANDBOOK_WINDOW[1])]


ID_COLUMNS = ("trans_id", "account_id", "client_ref")  # their bytes depend on how many accounts a file holds


def id_column_bytes(accounts: int, rows_per_file: int, files: int = 3) -> dict:
    """Bytes per row of the identifier columns in files of a bank of ``accounts`` accounts (one
    month of the synthetic bank, canonical rows in time order): a deployed bank's 15-minute file
    holds mostly distinct accounts, the small benchmark banks' hold each account many times, and
    the dictionary encoding makes their ids look cheaper than they are. Parquet encodes each column
    on its own, so these columns' bytes stand for the same columns of a full scored file."""
    from finsentry.datasets import czech, synthetic
    from finsentry.privacy import mask_ids

    raw = synthetic.generate_bank(synthetic.SyntheticConfig(n_accounts=accounts, months=1))
    valid = czech.to_canonical(raw).valid.sort_values("ts", kind="stable")
    frame = pd.DataFrame({"trans_id": valid["trans_id"].to_numpy(), "account_id": valid["account_id"].to_numpy(),
                          "client_ref": mask_ids(valid["client_id"]).to_numpy()})  # fmt: skip
    frame = frame.iloc[:rows_per_file * files]
    written = [f for f in parquet_files(frame, "scored", rows_per_file) if f["rows"] == rows_per_file]
    rows = sum(f["rows"] for f in written)
    distinct = [frame["account_id"].iloc[i * rows_per_file:(i + 1) * rows_per_file].nunique()
                for i in range(len(written))]
    return {"accounts": accounts, "files": len(written), "distinct_accounts_per_file": round(float(np.mean(distinct))),
            **{c: round(sum(f["columns"][c] for f in written) / rows, 2) for c in ID_COLUMNS}}  # fmt: skip


def scored_rows(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scored rows of the last 70 % in time, their curated features), as the stream scores them."""
    valid = valid.sort_values("ts", kind="stable").reset_index(drop=True)
    features = features_with_sequence(valid)
    cut = valid["ts"].quantile(0.3)
    train, test = (valid["ts"] < cut).to_numpy(), (valid["ts"] >= cut).to_numpy()
    columns = [c for c in DETECTOR_COLUMNS if c in features.columns]
    model = make_detector("isolation_forest").fit(features.loc[train, columns])
    rows, x = valid[test].reset_index(drop=True), features.loc[test, columns].reset_index(drop=True)
    threshold = threshold_for_budget(model.score(x), BUDGET)  # alerts (with their reasons) at the budget
    batch = score_transactions(model, x,
                               budget_threshold=threshold, model_version="bench-lake", explain_top=0)  # fmt: skip
    scored = scored_frame(rows, batch)[list(SCORED_COLUMNS)]
    curated = features.loc[test].reset_index(drop=True)
    curated.insert(0, "ts", rows["ts"].to_numpy())
    curated.insert(0, "account_id", rows["account_id"].to_numpy())
    curated.insert(0, "trans_id", rows["trans_id"].to_numpy())
    curated["seq"] = np.arange(len(curated), dtype=np.int64)
    return scored, curated


def _schema(table: str, frame: pd.DataFrame) -> pa.Schema:
    hive = TABLES[table][1]
    return pa.schema([(c, _ARROW[hive[c]]) for c in frame.columns if c in hive and c != PARTITION_KEY])


def parquet_files(frame: pd.DataFrame, table: str, rows_per_file: int) -> list[dict]:
    """Write ``frame`` in files of ``rows_per_file`` rows; per file its rows, total bytes and
    the compressed bytes of each column (all row groups)."""
    schema = _schema(table, frame)
    out = []
    for start in range(0, len(frame), rows_per_file):
        part = frame.iloc[start:start + rows_per_file]
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(part[schema.names], schema=schema, preserve_index=False), buf,
                       compression=compression(table))  # fmt: skip
        meta = pq.ParquetFile(io.BytesIO(buf.getvalue())).metadata
        columns = dict.fromkeys(schema.names, 0)
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                chunk = meta.row_group(g).column(c)
                columns[chunk.path_in_schema] += chunk.total_compressed_size
        out.append({"rows": len(part), "bytes": buf.getbuffer().nbytes, "columns": columns})
    return out


def measure(scored: pd.DataFrame, curated: pd.DataFrame, rows_per_file: int, ids: dict) -> dict:
    """Bytes per row of the scored and curated files, per column and per Athena view; the id
    columns at the larger of this data's and ``ids``' (a bank of deployed size) bytes."""
    files = parquet_files(scored, "scored", rows_per_file)
    full = [f for f in files if f["rows"] == rows_per_file] or files  # a short last file is not typical
    rows = sum(f["rows"] for f in full)
    own = {c: sum(f["columns"][c] for f in full) / rows for c in full[0]["columns"]}
    column = {c: max(b, ids.get(c, 0.0)) for c, b in own.items()}
    footer = sum(f["bytes"] - sum(f["columns"].values()) for f in full) / rows
    added = sum(column[c] - own[c] for c in ID_COLUMNS)
    per_file = [f["bytes"] / f["rows"] + added for f in full]  # each file at the deployed bank's id bytes
    views = {v.name: round(sum(column.get(c, 0.0) for c in v.scored_columns) + footer, 2) for v in load_views()}
    cur = parquet_files(curated, "features", rows_per_file)
    cur_full = [f for f in cur if f["rows"] == rows_per_file] or cur
    return {"scored_rows": len(scored), "files": len(full), "rows_per_file": rows_per_file,
            "scored_bytes_per_row_p50": round(float(np.percentile(per_file, 50)), 2),
            "scored_bytes_per_row_max": round(max(per_file), 2),
            "scored_bytes_per_row": round(sum(f["bytes"] for f in full) / rows + added, 2),
            "alert_share": round(float((scored["verdict"] == "alert").mean()), 4),
            "own_id_bytes_per_row": {c: round(own[c], 2) for c in ID_COLUMNS},
            "column_bytes_per_row": {c: round(b, 2) for c, b in column.items()},
            "footer_bytes_per_row": round(footer, 3),
            "view_bytes_per_row": views,
            "curated_bytes_per_row": round(sum(f["bytes"] for f in cur_full) / sum(f["rows"] for f in cur_full), 2),
            }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--id-accounts", type=int, default=200_000,
                        help="accounts of the bank whose files measure the id columns")
    parser.add_argument("--tps", type=float, default=100.0, help="load that sets the rows per Firehose file")
    parser.add_argument("--handbook", type=Path, default=HANDBOOK, help="handbook data (skipped when absent)")
    parser.add_argument("--no-write", action="store_true", help=f"do not update {SIZES_FILE.name}")
    args = parser.parse_args(argv)
    console = Console()
    rows_per_file = max(1, round(args.tps * FIREHOSE_BUFFER_S))
    sets = {"synthetic": lambda: _synthetic(args.accounts, args.months)}
    if args.handbook.is_file():
        sets["handbook"] = lambda: _handbook(args.handbook)
    figures: dict = {"command": "python -m bench.lake", "tps": args.tps}
    started = time.perf_counter()
    figures["ids"] = ids = id_column_bytes(args.id_accounts, rows_per_file)
    console.log(f"id columns of a {args.id_accounts:,}-account bank ({ids['distinct_accounts_per_file']:,} accounts "
                f"per file): {', '.join(f'{c} {ids[c]:.2f} B' for c in ID_COLUMNS)} in "
                f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    for name, load in sets.items():
        started = time.perf_counter()
        scored, curated = scored_rows(load())
        figures[name] = measure(scored, curated, min(rows_per_file, len(scored)), ids)
        console.log(f"{name}: {len(scored):,} scored rows in {time.perf_counter() - started:.1f} s")
    names = [n for n in sets]
    files = Table(title=f"Scored Parquet: bytes per row (files of {rows_per_file:,} rows = {args.tps:g} TPS x "
                        f"{FIREHOSE_BUFFER_S} s)")  # fmt: skip
    for col in ("data", "rows", "files", "p50 / file", "max / file", "all files", "curated", "alerts"):
        files.add_column(col, justify="right")
    for n in names:
        f = figures[n]
        files.add_row(n, f"{f['scored_rows']:,}", str(f["files"]), f"{f['scored_bytes_per_row_p50']:.2f}",
                      f"{f['scored_bytes_per_row_max']:.2f}", f"{f['scored_bytes_per_row']:.2f}",
                      f"{f['curated_bytes_per_row']:.2f}", f"{f['alert_share']:.2%}")  # fmt: skip
    console.print(files)
    cols = Table(title="Compressed bytes per row: columns, then what each Athena view scans")
    cols.add_column("column / view")
    for n in names:
        cols.add_column(n, justify="right")
    for c in figures[names[0]]["column_bytes_per_row"]:
        cols.add_row(c, *[f"{figures[n]['column_bytes_per_row'][c]:.2f}" for n in names])
    cols.add_row("(footer)", *[f"{figures[n]['footer_bytes_per_row']:.3f}" for n in names])
    for v in figures[names[0]]["view_bytes_per_row"]:
        cols.add_row(f"view {v}", *[f"{figures[n]['view_bytes_per_row'][v]:.2f}" for n in names])
    console.print(cols)
    if not args.no_write:
        SIZES_FILE.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
