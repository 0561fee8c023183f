"""Assemble the run's plots and tables into ONE self-contained HTML file.

plotly.js is inlined once (``include_plotlyjs=True`` on the first plot; about 4.5 MB), so the
file opens offline and can be mailed or archived as it is. Each plot sits in a ``div`` whose id
is in ``PLOT_IDS``: the rendering test checks that plotly drew an ``svg.main-svg`` in each.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import plotly.io as pio

from finsentry import __version__
from finsentry.monitoring import alarm
from finsentry.report import figures

PLOT_IDS = (
    "score-distribution",
    "anomalies-over-time",
    "recall-by-type",
    "alerts-by-district",
    "alerts-by-region",
    "top-alert-reasons",
    "feature-drift",
    "drift-over-time",
)

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1240px; color: #222; }
h1 { margin-bottom: 4px; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 24px; font-size: 13px; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } .num { text-align: right; } .plot { margin: 12px 0 28px; }
.kpi { display: inline-block; margin: 0 28px 12px 0; } .kpi b { font-size: 22px; display: block; }
.alarm { color: #b00; font-weight: bold; } .ok { color: #080; }
"""


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.1f} %"


def _kpis(result) -> str:
    c, t = result.counts, result.test_report
    items = [("transactions received", f"{c['received']:,}"), ("quarantined", f"{c['quarantined']:,}"),
             ("test transactions scored", f"{c['test_transactions']:,}"), ("alerts", f"{c['alerts']:,}"),
             ("selected model", result.selection["best"]),
             ("model selection ranked on", "analysts' verdicts" if result.selection.get("basis") == "analyst_labels"
              else "injected anomalies (too few verdicts)"),
             ("test recall at budget", _pct(t.recall)),
             ("test precision", _pct(t.precision)), ("test AUC-PR", _pct(t.auc_pr))]  # fmt: skip
    unfed = getattr(result, "unfed_features", None)
    if unfed:
        items.append(("features the data could not feed", html.escape(", ".join(unfed))))
    for warning in getattr(result, "model_warnings", None) or []:
        items.append(("model warning", html.escape(warning)))
    obs = result.observations
    if obs is not None:
        spec = alarm("score-drift")
        fired = obs.drift.score_psi > spec.threshold
        verdict = f'<span class="{"alarm" if fired else "ok"}">{"ALARM" if fired else "ok"}</span>'
        items.append(("score PSI vs training", f"{obs.drift.score_psi:.3f} {verdict}"))
    return "".join(f'<div class="kpi"><b>{v}</b>{html.escape(k)}</div>' for k, v in items)


def _alerts_table(top: pd.DataFrame) -> str:
    cols = ["trans_id", "account_id", "ts", "amount", "region", "score", "anomaly_type", "reasons"]
    if "true_anomaly_type" in top:
        cols.append("true_anomaly_type")
    head = "".join(f"<th>{c}</th>" for c in cols)
    rows = []
    for _, r in top.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c == "reasons":
                text = "<br>".join(html.escape(x) for x in str(v).split(" ; "))
            elif c == "score":
                text = f"{v:.4f}"
            elif c == "amount":
                text = f"{v:,.2f}"
            elif c == "true_anomaly_type":
                text = html.escape(str(v) or "normal")
            else:
                text = html.escape(str(v))
            cells.append(f'<td class="{"num" if c in ("amount", "score") else ""}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _table(frame: pd.DataFrame, numeric: dict[str, str]) -> str:
    """A plain HTML table; ``numeric`` maps a column to its format ("pct", "int", "score", "money")."""
    fmt = {"pct": lambda v: _pct(v), "int": lambda v: f"{int(v):,}", "score": lambda v: f"{v:.4f}",
           "money": lambda v: f"{v:,.2f}"}  # fmt: skip
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, r in frame.iterrows():
        cells = []
        for c in frame.columns:
            v = r[c]
            missing = v is None or (not isinstance(v, str) and pd.isna(v))
            text = "-" if missing and c in numeric else "" if missing else (
                fmt[numeric[c]](v) if c in numeric else html.escape(str(v)).replace(" ; ", "<br>"))
            cells.append(f'<td class="{"num" if c in numeric else ""}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _feedback_section(result) -> str:
    """Verdicts next to the alerts, precision of the alerts by day (the Athena views
    alert_verdicts / alert_precision_daily run on the local output) and, when a feedback round
    ran, the supervised candidate's figures beside the model in production."""
    found = result.verdicts
    parts = [f"<p>{found.reviewed:,} of the run's {found.total:,} alerts have an analyst's verdict "
             "(<code>finsentry label</code>; <code>finsentry alerts --local</code> lists them). Highest scores:</p>",
             _table(found.alerts[["trans_id", "ts", "amount", "score", "anomaly_type", "reasons", "analyst_verdict",
                                  "verdict_by"]], {"amount": "money", "score": "score"})]  # fmt: skip
    daily = found.precision[found.precision["confirmed"] + found.precision["dismissed"] > 0]
    if len(daily):
        confirmed, dismissed = int(daily["confirmed"].sum()), int(daily["dismissed"].sum())
        parts.append(f"<p>Precision of the alerts by day (days with a verdict): confirmed / (confirmed + dismissed); "
                     f"over them {_pct(confirmed / (confirmed + dismissed))} ({confirmed:,} confirmed, "
                     f"{dismissed:,} dismissed).</p>")  # fmt: skip
        parts.append(_table(daily[["dt", "alerts", "confirmed", "dismissed", "unreviewed", "precision"]],
                            {"alerts": "int", "confirmed": "int", "dismissed": "int", "unreviewed": "int",
                             "precision": "pct"}))  # fmt: skip
    fb = result.feedback_round
    if fb is not None:
        parts.append(f"<p>Feedback round: a scripted analyst reviewed the {fb.alerts_reviewed:,} alerts of "
                     f"{fb.reviewed_days[0]} .. {fb.reviewed_days[1]} ({fb.confirmed:,} confirmed, {fb.dismissed:,} "
                     f"dismissed). ")  # fmt: skip
        if fb.outcome == "trained":
            before = fb.before or {}
            rows = [{**before, "model": f"before: {before.get('name', 'no model in production')}"},
                    {**fb.after, "model": "after: supervised candidate"}]  # fmt: skip
            frame = pd.DataFrame(rows)[["model", "recall", "precision", "auc_pr", "auc_roc", "alerts"]]
            parts.append(f"The supervised candidate, trained on those verdicts, against the model in production on "
                         f"{fb.evaluation_days[0]} .. {fb.evaluation_days[1]} (no verdict there: figures on the "
                         f"injected anomalies). {html.escape(fb.reason)}</p>")  # fmt: skip
            parts.append(_table(frame, {"recall": "pct", "precision": "pct", "auc_pr": "pct", "auc_roc": "pct",
                                        "alerts": "int"}))  # fmt: skip
        else:
            parts.append(f"The supervised candidate was not trained: {html.escape(fb.reason)}</p>")
    return "".join(parts)


def _drift_text(obs) -> str:
    spec = alarm("score-drift")
    top = ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in obs.drift.top_features(3))
    return (f"<p>Population stability index (PSI) of the test period against the training window "
            f"(bins from the training window, stored in the model's metadata). Score PSI "
            f"<b>{obs.drift.score_psi:.3f}</b> (alarm <code>{spec.name}</code> above {spec.threshold:g}); "
            f"features that moved most: {top}. Reading: below 0.1 stable, 0.1–0.25 moving, above 0.25 "
            f"drifted. {obs.published} data points published to CloudWatch "
            f"(<code>ScorePsi</code>, <code>FeaturePsi</code>).</p>")  # fmt: skip


def _figures(result) -> dict[str, object]:
    obs = result.observations
    if obs is None:
        raise ValueError("the run has no observations (drift, score distributions): nothing to report")
    thresholds = {n: r.threshold for n, r in result.reports.items()}
    reports = {f"{n} (validation)": r for n, r in result.reports.items()}
    reports[f"{result.test_report.name} (test)"] = result.test_report
    return {
        "score-distribution": figures.score_distributions(obs.detector_scores, thresholds),
        "anomalies-over-time": figures.anomalies_over_time(result.scored),
        "recall-by-type": figures.recall_by_type(reports),
        "alerts-by-district": figures.alerts_by_place(result.scored, obs.districts),
        "alerts-by-region": figures.alerts_by_region(result.scored),
        "top-alert-reasons": figures.reason_bars(result.top_alerts, obs.top_reasons),
        "feature-drift": figures.feature_drift(obs.drift),
        "drift-over-time": figures.drift_over_time(obs.drift_windows, alarm("score-drift").threshold),
    }


def render_report(result) -> str:
    """The report of a ``DemoResult`` (with its ``observations``) as one HTML document."""
    figs = _figures(result)
    plots = {}
    for i, (plot_id, fig) in enumerate(figs.items()):
        plots[plot_id] = pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=plot_id,
                                     config={"displaylogo": False, "responsive": True})  # fmt: skip
    obs = result.observations
    sel = result.selection
    anomalies = int(obs.detector_scores["is_anomaly"].sum()) // max(1, obs.detector_scores["detector"].nunique())
    sections = [
        ("Overview", f"<p>Selected <b>{html.escape(sel['best'])}</b>: {html.escape(sel['reason'])}</p>"),
        ("Score distribution per detector",
         f"<p>Scores of every candidate on the test period: all {anomalies:,} "
         f"injected anomalies and a random sample of {obs.normal_sample:,} normal transactions; each class "
         f"in % of itself (log scale). A good detector puts the red mass right of the dashed threshold.</p>"
         + plots["score-distribution"]),
        ("Anomalies over time", plots["anomalies-over-time"]),
        ("Recall per anomaly type", plots["recall-by-type"]),
        ("Alerts by region and district", plots["alerts-by-district"] + plots["alerts-by-region"]),
        ("Top alerts", _alerts_table(result.top_alerts) + plots["top-alert-reasons"]),
        ("Drift", _drift_text(obs) + plots["feature-drift"] + plots["drift-over-time"]),
    ]  # fmt: skip
    if getattr(result, "verdicts", None) is not None:
        sections.insert(6, ("Analysts' verdicts", _feedback_section(result)))
    body = "".join(f"<h2>{html.escape(title)}</h2><div class='plot'>{content}</div>" for title, content in sections)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>finsentry report</title>"
            f"<style>{CSS}</style></head><body><h1>finsentry run report</h1>"
            f"<p class='sub'>finsentry {__version__} · {when} · s3://{html.escape(result.bucket)}/ (in-process)</p>"
            f"{_kpis(result)}{body}</body></html>")  # fmt: skip


def write_report(result, path: Path | str) -> Path:
    """Write ``render_report(result)`` to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result), encoding="utf-8")
    return path
