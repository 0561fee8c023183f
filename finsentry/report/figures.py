"""The report's plots, one function per plot, each from plain frames (no pipeline objects).

Every function returns a ``plotly.graph_objects.Figure``; ``finsentry.report.html`` lays them
out. Colours are plotly's defaults; sizes fit a 1,200-pixel-wide page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from finsentry.drift import PSI_DRIFTED, PSI_MOVING, DriftMeasurement  # the usual reading (the alarm passes its own)
from finsentry.evaluation import ALL, ModelReport
from finsentry.explain import Reason

REASON_CHARS = 70  # a reason's text is cut to this length on a bar label


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 60, "r": 30, "t": 60, "b": 50},
                      template="plotly_white", legend={"orientation": "h", "y": -0.15})  # fmt: skip
    return fig


def score_distributions(scores: pd.DataFrame, threshold: Mapping[str, float]) -> go.Figure:
    """Histogram of each detector's scores, normal and anomalous rows apart (shares per class),
    with the detector's alert threshold. ``scores``: detector, score, is_anomaly."""
    detectors = list(dict.fromkeys(scores["detector"]))
    fig = make_subplots(rows=1, cols=len(detectors), subplot_titles=detectors, shared_yaxes=True)
    bins = {"start": 0.0, "end": 1.0, "size": 0.02}
    for col, name in enumerate(detectors, start=1):
        part = scores[scores["detector"] == name]
        classes = (("normal", ~part["is_anomaly"], "#4c78a8"), ("anomaly", part["is_anomaly"], "#e45756"))
        for label, mask, colour in classes:
            fig.add_trace(go.Histogram(x=part.loc[mask, "score"], xbins=bins, histnorm="percent", name=label,
                                       marker_color=colour, opacity=0.7, legendgroup=label,
                                       showlegend=col == 1), row=1, col=col)  # fmt: skip
        if name in threshold:
            fig.add_vline(x=threshold[name], line_dash="dash", line_color="black", row=1, col=col)
        fig.update_xaxes(title_text="score", range=[0, 1], row=1, col=col)
    fig.update_yaxes(type="log", dtick=1)
    fig.update_yaxes(title_text="% of the class", row=1, col=1)
    fig.update_layout(barmode="overlay")
    return _layout(fig, "Score distribution per detector (test period; dashed: alert threshold)")


def anomalies_over_time(scored: pd.DataFrame) -> go.Figure:
    """Alerts per day stacked by the type they were given, and the injected anomalies per day."""
    day = pd.to_datetime(scored["ts"]).dt.floor("D")
    alerts = scored[scored["verdict"] == "alert"]
    by_type = alerts.groupby([day[alerts.index], alerts["anomaly_type"]]).size().unstack(fill_value=0)
    fig = go.Figure()
    for t in by_type.columns:
        fig.add_trace(go.Bar(x=by_type.index, y=by_type[t], name=str(t) or "untyped"))
    if "true_anomaly_type" in scored:
        truth = scored["true_anomaly_type"].fillna("").astype(str) != ""
        injected = truth.groupby(day).sum()
        fig.add_trace(go.Scatter(x=injected.index, y=injected.to_numpy(), name="injected anomalies (truth)",
                                 mode="lines", line={"color": "black", "width": 1.5}))  # fmt: skip
    fig.update_layout(barmode="stack", yaxis_title="transactions per day")
    return _layout(fig, "Alerts per day by anomaly type (test period)")


def recall_by_type(reports: Mapping[str, ModelReport]) -> go.Figure:
    """Recall at the alert budget per anomaly type, one bar per report (detector / period)."""
    types = sorted({t for r in reports.values() for t in r.recall_by_type if t != ALL})
    fig = go.Figure()
    for label, r in reports.items():
        values = [r.recall_by_type.get(t) for t in [*types, ALL]]
        pct = [None if v is None or not math.isfinite(v) else 100 * v for v in values]
        text = [f"{v:.0f}" if v is not None else "" for v in pct]
        fig.add_trace(go.Bar(x=[*types, "all anomalies"], y=pct, name=label, text=text, textposition="outside"))
    fig.update_layout(barmode="group", yaxis_title="recall % at the alert budget", yaxis_range=[0, 110])
    return _layout(fig, "Recall per anomaly type", height=460)


def alerts_by_place(scored: pd.DataFrame, districts: pd.DataFrame) -> go.Figure:
    """Treemap region -> district: area = alerts, colour = alerts per 1,000 transactions."""
    names = districts.set_index("district_id")["district_name"]
    frame = scored.assign(alert=scored["verdict"] == "alert")
    g = frame.groupby(["region", "district_id"]).agg(alerts=("alert", "sum"), rows=("alert", "size")).reset_index()
    g = g[g["alerts"] > 0]
    g["label"] = [f"{names.get(d, str(d))} ({d})" for d in g["district_id"]]
    g["rate"] = 1000 * g["alerts"] / g["rows"]
    regions = g.groupby("region").agg(alerts=("alerts", "sum"), rows=("rows", "sum")).reset_index()
    ids = [*regions["region"], *(g["region"] + "/" + g["label"])]
    fig = go.Figure(go.Treemap(
        ids=ids,
        labels=[*regions["region"], *g["label"]],
        parents=[""] * len(regions) + list(g["region"]),
        values=[*regions["alerts"], *g["alerts"]],
        branchvalues="total",
        marker={"colors": [*(1000 * regions["alerts"] / regions["rows"]), *g["rate"]],
                "colorscale": "Reds", "colorbar": {"title": "alerts / 1,000 txns"}},
        hovertemplate="%{label}<br>%{value} alerts<br>%{color:.1f} per 1,000 transactions<extra></extra>",
    ))  # fmt: skip
    return _layout(fig, f"Alerts by region and district ({g['district_id'].nunique()} districts with alerts "
                        f"in {regions['region'].nunique()} regions)", height=560)  # fmt: skip


def alerts_by_region(scored: pd.DataFrame) -> go.Figure:
    """Alerts and alert rate per region (bars: alerts; labels: per 1,000 transactions)."""
    frame = scored.assign(alert=scored["verdict"] == "alert")
    g = frame.groupby("region").agg(alerts=("alert", "sum"), rows=("alert", "size")).sort_values("alerts")
    rate = 1000 * g["alerts"] / g["rows"]
    fig = go.Figure(go.Bar(x=g["alerts"], y=g.index, orientation="h",
                           text=[f"{r:.1f} / 1,000" for r in rate], textposition="outside"))  # fmt: skip
    fig.update_layout(xaxis_title="alerts", yaxis_title="", xaxis_range=[0, 1.2 * max(1, g["alerts"].max())])
    return _layout(fig, "Alerts per region (label: alerts per 1,000 transactions)", height=380)


def _bar_value(reason: Reason, finite_max: float) -> float:
    return reason.contribution if math.isfinite(reason.contribution) else 1.25 * finite_max


def reason_bars(top: pd.DataFrame, reasons: Sequence[Sequence[Reason]]) -> go.Figure:
    """One small bar chart per top alert: its reasons' SHAP contributions towards "anomalous".

    A rule hit has no SHAP value: its bar is drawn a quarter longer than the alert's largest
    SHAP bar and labelled "rule"."""
    n = max(len(top), 1)
    titles = [f"#{i + 1} {r.trans_id} · score {r.score:.3f} · {r.anomaly_type or '-'}"
              + (f" · truth: {r.true_anomaly_type or 'normal'}" if hasattr(r, "true_anomaly_type") else "")
              for i, r in enumerate(top.itertuples())]  # fmt: skip
    fig = make_subplots(rows=n, cols=1, subplot_titles=titles or ["no alerts"], vertical_spacing=0.35 / n)
    for i, rs in enumerate(reasons, start=1):
        finite = [r.contribution for r in rs if math.isfinite(r.contribution)]
        top_value = max(finite, default=1.0)
        rs = list(rs)[::-1]  # strongest on top
        fig.add_trace(go.Bar(
            x=[_bar_value(r, top_value) for r in rs],
            y=[r.text[:REASON_CHARS] + ("…" if len(r.text) > REASON_CHARS else "") for r in rs],
            text=["rule" if not math.isfinite(r.contribution) else f"{r.contribution:.3g}" for r in rs],
            textposition="auto", orientation="h", showlegend=False,
            marker_color=["#e45756" if not math.isfinite(r.contribution) else "#f58518" for r in rs],
            hovertext=[f"{r.feature} = {r.value:.4g}" for r in rs], hoverinfo="text",
        ), row=i, col=1)  # fmt: skip
    fig.update_xaxes(showticklabels=False)
    fig.update_annotations(font_size=12, x=0, xanchor="left")
    return _layout(fig, "Top alerts: their reasons and SHAP contributions towards anomalous", height=130 * n + 80)


def feature_drift(measurement: DriftMeasurement) -> go.Figure:
    """PSI per feature for the whole test period, largest first, with the 0.1 / 0.25 guides."""
    items = sorted(((k, v) for k, v in measurement.feature_psi.items() if math.isfinite(v)), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
                           marker_color=["#e45756" if v > PSI_DRIFTED else "#f58518" if v > PSI_MOVING else "#54a24b"
                                         for _, v in items]))  # fmt: skip
    for x in (PSI_MOVING, PSI_DRIFTED):
        fig.add_vline(x=x, line_dash="dot", line_color="grey")
    fig.update_layout(xaxis_title="PSI vs the training window", xaxis_type="log")
    return _layout(fig, f"Feature drift over the test period (score PSI {measurement.score_psi:.3f}; "
                        f"{measurement.rows:,} rows)", height=560)  # fmt: skip


def drift_over_time(windows: Sequence[DriftMeasurement], alarm_threshold: float, features: int = 3) -> go.Figure:
    """Weekly score PSI (thick) and the PSI of the features that drift most, with the alarm line."""
    fig = go.Figure()
    if windows:
        x = [w.start for w in windows]
        fig.add_trace(go.Scatter(x=x, y=[w.score_psi for w in windows], name="score", mode="lines+markers",
                                 line={"width": 3, "color": "black"}))  # fmt: skip
        mean = pd.DataFrame([w.feature_psi for w in windows]).mean().sort_values(ascending=False)
        for name in mean.index[:features]:
            fig.add_trace(go.Scatter(x=x, y=[w.feature_psi[name] for w in windows], name=name, mode="lines"))
    fig.add_hline(y=alarm_threshold, line_dash="dash", line_color="#e45756",
                  annotation_text=f"score-drift alarm ({alarm_threshold:g})")  # fmt: skip
    fig.update_layout(xaxis_title="week", yaxis_title="PSI vs the training window")
    return _layout(fig, "Drift per week of the test period")

