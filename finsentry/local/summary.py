"""Console tables of a run: recall per anomaly type, precision and AUC-PR per detector, alerts."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from finsentry.anomalies import AnomalyType
from finsentry.evaluation import ModelReport


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def detector_table(reports: dict[str, ModelReport], title: str) -> Table:
    """Rows: anomaly types then the summary metrics; columns: detectors."""
    table = Table(title=title, title_justify="left")
    table.add_column("recall % at budget", style="bold")
    for name in reports:
        table.add_column(name, justify="right")
    types = [t.value for t in AnomalyType]
    for t in types:
        values = [r.recall_by_type.get(t) for r in reports.values()]
        if all(v is None for v in values):
            continue
        table.add_row(t, *(_pct(v) for v in values))
    table.add_section()
    table.add_row("all anomalies", *(_pct(r.recall) for r in reports.values()))
    table.add_row("precision %", *(_pct(r.precision) for r in reports.values()))
    table.add_row("AUC-PR %", *(_pct(r.auc_pr) for r in reports.values()))
    table.add_row("AUC-ROC %", *(_pct(r.auc_roc) for r in reports.values()))
    table.add_row("alerts", *(f"{r.alerts:,}" for r in reports.values()))
    return table


def alerts_table(top, title: str = "Top alerts") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("trans_id", "account", "ts", "amount", "score", "type", "reasons", "truth"):
        table.add_column(col, overflow="fold")
    for row in top.itertuples():
        table.add_row(
            str(row.trans_id),
            str(row.account_id),
            f"{row.ts:%Y-%m-%d %H:%M}",
            f"{row.amount:,.2f}",
            f"{row.score:.3f}",
            row.anomaly_type,
            row.reasons.replace(" ; ", "\n"),
            getattr(row, "true_anomaly_type", "") or "normal",
        )
    return table


def print_demo(result, console: Console) -> None:
    """The demo's closing output."""
    console.print(detector_table(result.reports, "Validation period: candidates"))
    sel = result.selection
    console.print(f"[bold]Selected:[/bold] {sel['best']} — {sel['reason']}")
    from finsentry.local.training_run import print_training_run

    print_training_run(getattr(result, "training_run", None), console)
    console.print(detector_table({result.test_report.name: result.test_report},
                                 "Test period: selected model"))  # fmt: skip
    if result.missing_recurring_recall is not None:
        console.print(
            "missing recurring payments (rule on permanent orders): recall "
            f"{_pct(result.missing_recurring_recall)} %"
        )
    console.print(alerts_table(result.top_alerts))
    if getattr(result, "unfed_features", None):
        console.print(f"features the data could not feed (all empty, not used): {', '.join(result.unfed_features)}")
    for warning in getattr(result, "model_warnings", None) or []:
        console.print(f"[yellow]model warning:[/yellow] {warning}")
    c = result.counts
    console.print(
        f"received {c['received']:,} raw transactions: {c['valid']:,} valid, "
        f"{c['quarantined']:,} quarantined; {c['injected']:,} anomalies injected; "
        f"{c['test_transactions']:,} test transactions scored, {c['alerts']:,} alerts"
    )
    console.print(
        f"s3://{result.bucket}/ (in-process): "
        + ", ".join(f"{k}/ {v} objects" for k, v in result.keys.items())
    )
    if getattr(result, "stream", None) is not None:
        console.print(result.stream.summary())
    console.print("stage seconds: " + ", ".join(f"{k} {v}" for k, v in result.timings.items()))
