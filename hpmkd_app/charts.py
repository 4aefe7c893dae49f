"""The Compare page's figures: the engine's chart builders with the app's layout.

The evaluation charts (ROC, KS, score distributions, calibration, confusion, agreement
scatter, Pareto) are built by :mod:`hpmkd.report.figures`, the same builders and palette
as the HTML report, so a chart of the same run shows the same numbers and colours in both
places. This module only lays them out for Streamlit (:func:`show`) and draws the feature
importance, which the report does not have.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hpmkd.report.figures import Chart, label, model_colors, short

#: Room above the plot for the title (the report puts its titles outside the figure).
TITLE_MARGIN = 70


def show(chart: Chart, title: str, **layout: Any) -> go.Figure:
    """A shared chart as a plotly figure for ``st.plotly_chart``, with a title.

    Parameters
    ----------
    chart : Chart
        From :mod:`hpmkd.report.figures`.
    title : str
        Short title (the chart's own title names every model: too long for a column).
    **layout
        Further ``update_layout`` arguments (an axis title, a height ...).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    fig = go.Figure(chart.figure)
    top = max(fig.layout.margin.t or 0, TITLE_MARGIN)
    fig.update_layout(title=title, template="plotly_white", margin={"t": top}, **layout)
    return fig


def importance_figure(
    importances: dict[str, pd.Series], methods: dict[str, str], top: int = 15
) -> go.Figure:
    """Horizontal bars of feature importance per model (top features of the first).

    Parameters
    ----------
    importances : dict of str to Series
        Model name to importance by feature (comparable within one model).
    methods : dict of str to str
        Model name to how the importance was computed (shown in the legend).
    top : int
    """
    names = list(importances)
    first = importances[names[0]]
    order = list(first.sort_values(ascending=False).index[:top])
    for s in list(importances.values())[1:]:
        order += [f for f in s.sort_values(ascending=False).index[:top] if f not in order]
    order = order[: top + 5][::-1]
    fig = make_subplots(
        rows=1,
        cols=len(names),
        shared_yaxes=True,
        subplot_titles=[f"{label(short(n))}<br><sup>{methods[n]}</sup>" for n in names],
    )
    colors = model_colors(names)
    for col, name in enumerate(names, start=1):
        s = importances[name].reindex(order).fillna(0.0)
        fig.add_trace(
            go.Bar(
                x=s.to_numpy(),
                y=order,
                orientation="h",
                name=name,
                marker_color=colors[name],
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    fig.update_layout(
        title="Feature importance on a fixed sample of test rows",
        height=max(380, 22 * len(order) + 120),
        margin={"l": 50, "r": 20, "t": 60, "b": 45},
        template="plotly_white",
    )
    return fig
