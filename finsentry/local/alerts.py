"""The local run's alerts with the analysts' verdicts: the deployment's Athena views, on DuckDB.

``finsentry demo`` keeps its scored test period in ``<out>/scored/dt=<day>/`` (the layout of the
deployment's ``scored/`` prefix) and ``finsentry label`` keeps the verdicts in
``<out>/feedback/labels.parquet``. ``finsentry alerts --local <out>`` and the report read them
through the same two views analysts query on Athena (``infra/athena/views/alert_verdicts.sql``,
``alert_precision_daily.sql``, via ``finsentry.analytics.duckdb_connection``), so the local
listing and the deployment's cannot disagree on which verdict is current or how precision counts.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from finsentry.layout import PARTITION_KEY, PREFIXES

SCORED_DIR = PREFIXES.scored.rstrip("/")
# what the listing shows of alert_verdicts, in order (the reasons are long: last but one)
LISTED = ("dt", "ts", "trans_id", "client_ref", "amount", "operation", "region", "score", "anomaly_type", "reasons",
          "analyst_verdict", "verdict_by")  # fmt: skip


class NoLocalRun(FileNotFoundError):
    """The folder holds no scored output of ``finsentry demo``."""


@dataclass
class LocalAlerts:
    alerts: pd.DataFrame  # LISTED columns, highest score first
    precision: pd.DataFrame  # alert_precision_daily, by day
    reviewed: int  # alerts with a verdict among all the run's alerts (not only those listed)
    total: int  # every alert of the run


def write_scored(scored: pd.DataFrame, out_dir: Path | str) -> Path:
    """``scored`` (``finsentry.scoring.scored_frame``) as ``<out>/scored/dt=<day>/part-0.parquet``,
    replacing an earlier run's."""
    root = Path(out_dir) / SCORED_DIR
    if root.exists():
        shutil.rmtree(root)
    days = pd.to_datetime(scored["ts"]).dt.strftime("%Y-%m-%d")
    for day, rows in scored.groupby(days.to_numpy(), sort=True):
        folder = root / f"{PARTITION_KEY}={day}"
        folder.mkdir(parents=True)
        rows.to_parquet(folder / "part-0.parquet", index=False)
    return root


def connection(out_dir: Path | str):
    """DuckDB with the run's ``scored``, its label history as ``labels`` and every Athena view."""
    from finsentry import analytics
    from finsentry.labels import LabelStore

    root = Path(out_dir) / SCORED_DIR
    if not any(root.glob(f"{PARTITION_KEY}=*/*.parquet")):
        raise NoLocalRun(f"no scored alerts in {root}: run `finsentry demo --out {out_dir}` first")
    return analytics.duckdb_connection(root, labels=LabelStore(Path(out_dir)).history())


def local_alerts(out_dir: Path | str, since: str | None = None, until: str | None = None, types: Sequence[str] = (),
                 limit: int | None = 200) -> LocalAlerts:  # fmt: skip
    """The run's alerts from day ``since`` (inclusive) to ``until`` (exclusive), of ``types``,
    the ``limit`` highest scores first, with their current verdicts; and precision by day."""
    con = connection(out_dir)
    where, params = ["1 = 1"], []
    if since:
        where.append("dt >= ?")
        params.append(since)
    if until:
        where.append("dt < ?")
        params.append(until)
    if types:
        where.append(f"anomaly_type IN ({', '.join('?' for _ in types)})")
        params += list(types)
    sql = (f"SELECT {', '.join(LISTED)} FROM alert_verdicts WHERE {' AND '.join(where)} "  # noqa: S608 - fixed names
           "ORDER BY score DESC, trans_id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    alerts = con.execute(sql, params).df()
    precision = con.execute("SELECT * FROM alert_precision_daily ORDER BY dt").df()
    totals = con.execute("SELECT COUNT(*), SUM(CASE WHEN outcome = 'unreviewed' THEN 0 ELSE 1 END) "
                         "FROM alert_verdicts").fetchone()  # fmt: skip
    return LocalAlerts(alerts=alerts, precision=precision, reviewed=int(totals[1] or 0), total=int(totals[0]))


def last_day(out_dir: Path | str) -> str:
    """The last scored day of the run (``--since Nd`` counts back from it on the local run)."""
    days = sorted(p.name.split("=", 1)[1] for p in (Path(out_dir) / SCORED_DIR).glob(f"{PARTITION_KEY}=*"))
    if not days:
        raise NoLocalRun(f"no scored alerts in {Path(out_dir) / SCORED_DIR}: run `finsentry demo --out {out_dir}` "
                         "first")
    return days[-1]
