"""The run report: one self-contained HTML file whose plots a real browser draws.

Headless Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it) loads the file with
the network off and dumps the DOM after plotly ran: every plot's div must hold plotly's
``svg.main-svg`` and at least one drawn trace.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from finsentry import drift
from finsentry.explain import Reason
from finsentry.report import PLOT_IDS, figures, render_report, write_report


def _chromium() -> str:
    path = shutil.which("chromium")
    assert path, "chromium is needed: apt-get install -y chromium (.ci/run does it)"
    return path


def dump_dom(html_path, profile_dir) -> str:
    """The page's DOM after its scripts ran, from headless Chromium with networking off."""
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={profile_dir}", "--virtual-time-budget=15000", "--dump-dom",
            html_path.resolve().as_uri()]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)  # noqa: S603
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def plot_segments(dom: str) -> dict[str, str]:
    """Each plot div's part of the DOM (from its opening tag to the next plot's)."""
    starts = sorted((m.start(), pid) for pid in PLOT_IDS for m in re.finditer(rf'<div id="{pid}"', dom))
    assert [pid for _, pid in starts] == sorted(PLOT_IDS, key=lambda p: dom.find(f'<div id="{p}"'))
    bounds = [s for s, _ in starts] + [len(dom)]
    return {pid: dom[bounds[i] : bounds[i + 1]] for i, (_, pid) in enumerate(starts)}


def test_report_is_one_self_contained_file(small_run):
    result, out = small_run
    path = write_report(result, out / "report.html")
    text = path.read_text(encoding="utf-8")
    assert text.count("<script") >= len(PLOT_IDS)
    assert not re.search(r'<script[^>]+src=["\']https?:', text), "plotly.js must be inlined, not fetched"
    for pid in PLOT_IDS:
        assert f'id="{pid}"' in text
    # the top alerts are in the table with their reasons
    for trans_id in result.top_alerts["trans_id"]:
        assert f">{trans_id}<" in text
    assert result.observations.top_reasons and len(result.observations.top_reasons) == len(result.top_alerts)


def test_chromium_draws_every_plot(small_run, tmp_path):
    result, out = small_run
    path = write_report(result, out / "report.html")
    dom = dump_dom(path, tmp_path / "profile")
    segments = plot_segments(dom)
    assert set(segments) == set(PLOT_IDS)
    for pid, part in segments.items():
        assert 'class="main-svg"' in part, f"{pid}: plotly drew no svg"
        assert re.search(r'class="trace[ "]', part), f"{pid}: no trace drawn"
    # bars really have geometry (a path with a non-empty outline)
    assert re.search(r'<path[^>]+d="M[0-9.]+,[0-9.]+[VH]', segments["recall-by-type"])
    assert segments["alerts-by-district"].count('class="trace treemap"') == 1


def test_the_run_carries_drift_into_metadata_cloudwatch_and_the_report(small_run):
    result, out = small_run
    obs = result.observations
    meta = json.loads((out / "model" / "metadata.json").read_text())
    ref = drift.reference_from_metadata(meta)
    assert ref is not None and set(ref.features) == set(meta["feature_columns"])
    assert 0 <= obs.drift.score_psi < 10 and obs.drift.rows == result.counts["test_transactions"]
    assert obs.published == 1 + len(obs.drift.feature_psi)  # ScorePsi + FeaturePsi per feature
    assert set(obs.detector_scores["detector"]) == set(result.reports)
    assert f"{obs.drift.score_psi:.3f}" in render_report(result)


def _reasons() -> list[list[Reason]]:
    return [[Reason("", float("nan"), float("inf"), "Balance mismatch: balance off by 90.00"),
             Reason("amount_z", 7.0, 0.12, "amount 7.0 standard deviations above the usual")],
            [Reason("n_last_hour", 6.0, 0.3, "6 transactions in the previous hour")]]  # fmt: skip


def test_reason_bars_draw_rule_hits_beyond_the_largest_shap_value():
    top = pd.DataFrame({"trans_id": ["1", "2"], "score": [1.0, 0.99], "anomaly_type": ["balance_mismatch", "burst"],
                        "true_anomaly_type": ["balance_mismatch", ""]})  # fmt: skip
    fig = figures.reason_bars(top, _reasons())
    first = fig.data[0]
    assert list(first.text) == ["0.12", "rule"]  # strongest (the rule) on top = last bar
    assert first.x[1] == pytest.approx(1.25 * 0.12)
    assert "truth: normal" in fig.layout.annotations[1].text


def test_treemap_places_every_district_under_its_region():
    scored = pd.DataFrame({"region": ["Prague", "Prague", "south Moravia", "south Moravia"],
                           "district_id": [1, 1, 50, 51],
                           "verdict": ["alert", "normal", "alert", "alert"]})  # fmt: skip
    districts = pd.DataFrame({"district_id": [1, 50, 51], "district_name": ["Hl.m. Praha", "Brno", "Znojmo"],
                              "region": ["Prague", "south Moravia", "south Moravia"]})  # fmt: skip
    tm = figures.alerts_by_place(scored, districts).data[0]
    parents = dict(zip(tm.labels, tm.parents, strict=True))
    assert parents["Brno (50)"] == "south Moravia" and parents["Hl.m. Praha (1)"] == "Prague"
    values = dict(zip(tm.labels, tm.values, strict=True))
    assert values["south Moravia"] == 2 and values["Prague"] == 1
    colours = dict(zip(tm.labels, tm.marker.colors, strict=True))
    assert colours["Hl.m. Praha (1)"] == pytest.approx(500.0)  # 1 alert in 2 transactions


def test_drift_plots_show_the_alarm_threshold():
    windows = [drift.DriftMeasurement(0.05 * k, {"a": 0.01 * k, "b": 0.2}, 600, start=pd.Timestamp("1998-01-05")
                                      + pd.Timedelta(weeks=k)) for k in range(4)]  # fmt: skip
    fig = figures.drift_over_time(windows, 0.25)
    assert fig.data[0].name == "score" and np.allclose(fig.data[0].y, [0, 0.05, 0.1, 0.15])
    assert any(s.y0 == 0.25 for s in fig.layout.shapes)
    bars = figures.feature_drift(windows[-1]).data[0]
    assert list(bars.y) == ["a", "b"]  # ascending: the largest PSI on top


def test_the_report_names_unfed_features_and_model_warnings(small_run):
    import dataclasses

    result, _ = small_run
    result = dataclasses.replace(result, unfed_features=["balance_error"],
                                 model_warnings=["rule balance_mismatch suspended: it fired on 60.0 % of the rows"])
    text = render_report(result)
    assert "features the data could not feed" in text and "balance_error" in text
    assert "model warning" in text and "balance_mismatch suspended" in text


def test_the_report_shows_verdicts_precision_by_day_and_the_supervised_figures(small_run, tmp_path):
    """Verdicts next to the alerts and precision by day come from the analysts' views on the run's
    output; a feedback round's before/after figures are shown when it trained the candidate."""
    from dataclasses import replace

    from finsentry.labels import LabelStore, validate_labels
    from finsentry.local.alerts import local_alerts, write_scored
    from finsentry.local.feedback_round import FeedbackRound

    result, _ = small_run
    out = tmp_path / "out"
    write_scored(result.scored, out)
    alerts = result.scored[result.scored["verdict"] == "alert"].nlargest(3, "score")
    verdicts = pd.DataFrame({"trans_id": alerts["trans_id"].astype(str), "verdict": ["confirmed_fraud", "dismissed",
                             "dismissed"], "who": "ana", "when": "1999-01-01T00:00:00", "note": ""})  # fmt: skip
    LabelStore(out).add(validate_labels(verdicts).valid)
    found = local_alerts(out, limit=6)
    figures_ = {"name": "supervised", "recall": 0.75, "precision": 0.5, "auc_pr": 0.6, "auc_roc": 0.9, "alerts": 12}
    fb = FeedbackRound(reviewed_days=("1995-01-01", "1995-01-31"), evaluation_days=("1995-02-01", "1995-02-28"),
                       alerts_reviewed=3, confirmed=1, dismissed=2, labels_file=out / "v.csv", outcome="trained",
                       reason="promote supervised", before={**figures_, "name": "champion:ensemble", "recall": 0.25},
                       after=figures_)  # fmt: skip
    page = render_report(replace(result, verdicts=found, feedback_round=fb))
    section = page.split("<h2>Analysts&#x27; verdicts</h2>", 1)[1].split("<h2>", 1)[0]
    assert "3 of the run's" in section and "confirmed_fraud" in section and "ana" in section
    assert "33.3 %" in section  # precision over the days with a verdict: 1 / (1 + 2)
    assert "before: champion:ensemble" in section and "after: supervised candidate" in section
    assert "25.0 %" in section and "75.0 %" in section
    skipped = render_report(replace(result, verdicts=found, feedback_round=replace(fb, outcome="skipped", after=None,
                                                                                   reason="not enough verdicts")))
    assert "was not trained: not enough verdicts" in skipped
    assert "Analysts&#x27; verdicts" not in render_report(result)  # no verdicts computed: no section
