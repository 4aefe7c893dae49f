"""The report being written: the run it is about and the charts placed so far.

Each section is a function of a :class:`ReportContext` that returns its HTML; a section
places a chart with :meth:`ReportContext.chart`, which keeps the figure for the page's
figure scripts and the chart's numbers for the data block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hpmkd.report.figures import Chart
from hpmkd.report.fmt import esc, safe_json
from hpmkd.result import RunResult


@dataclass
class ReportContext:
    """One report in the making.

    Attributes
    ----------
    result : RunResult
        The finished run.
    results : DataFrame
        ``result.results_df()``, computed once (leaderboard, Pareto chart, cache use).
    charts : list of Chart
        The charts placed so far, in page order.
    component_states : dict
        Per component key, ``{"on": bool, "reason": str}`` (for the data block).
    """

    result: RunResult
    results: pd.DataFrame
    charts: list[Chart] = field(default_factory=list)
    component_states: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, result: RunResult) -> ReportContext:
        """A fresh context for ``result``."""
        return cls(result=result, results=result.results_df())

    @property
    def metric(self) -> str:
        """The selection metric (``ks`` unless configured otherwise)."""
        return self.result.selection_metric

    def chart(self, chart: Chart | None) -> str:
        """Place ``chart`` here: its heading, an empty div it is drawn into, its caption.

        Parameters
        ----------
        chart : Chart or None
            ``None`` (a builder that had nothing to draw) places nothing.

        Returns
        -------
        str
            The HTML of the chart block (empty for ``None``).
        """
        if chart is None:
            return ""
        self.charts.append(chart)
        return (
            f"<figure class='chart-block'><h3>{esc(chart.title)}</h3>"
            f"<div class='hpmkd-chart' id='chart-{chart.chart_id}' data-chart='{chart.chart_id}'"
            f" data-figure='figure-{chart.chart_id}'></div>"
            f"<figcaption>{esc(chart.caption)}</figcaption></figure>"
        )

    def chart_stats(self) -> dict[str, Any]:
        """The numbers of every placed chart, by chart id."""
        return {c.chart_id: c.stats for c in self.charts}

    def figure_scripts(self) -> str:
        """One JSON script element per placed chart, read by ``report.js``."""
        return "".join(
            f"<script type='application/json' id='figure-{c.chart_id}'>"
            f"{safe_json(c.figure)}</script>"
            for c in self.charts
        )
