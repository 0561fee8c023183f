"""The HTML report of a run: one self-contained file (plotly.js inlined, no network needed)."""

from finsentry.report.html import PLOT_IDS, render_report, write_report

__all__ = ["PLOT_IDS", "render_report", "write_report"]
