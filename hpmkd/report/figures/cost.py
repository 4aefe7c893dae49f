"""Cost against quality, and where the time went: the Pareto chart of every candidate and
the phase timeline of the run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hpmkd import curves
from hpmkd.report.figures.base import (
    BASELINE_COLOR,
    FRONT_COLOR,
    MUTED_COLOR,
    STUDENT_COLOR,
    TEACHER_COLOR,
    Chart,
    figure_dict,
    label,
    rounded,
)
from hpmkd.result import PhaseSpan

#: Per cost column: its name in subplot titles and its axis title.
COSTS = {
    "size_bytes": ("model size", "pickled size (bytes, log scale)"),
    "latency_ms_1k": ("latency", "ms per 1,000 rows (log scale)"),
}


def pareto_chart(
    results: pd.DataFrame,
    metric: str,
    costs: Sequence[str] = ("size_bytes", "latency_ms_1k"),
) -> Chart:
    """Each cost against a quality metric for every candidate, the Pareto front drawn.

    Parameters
    ----------
    results : DataFrame
        One row per model with ``name``, ``source``, ``selected``, the ``costs`` columns
        and ``metric``: ``results_df`` of the run, or any frame shaped like it. Rows whose
        source is ``teacher`` or ``baseline`` are drawn for reference, never on a front.
    metric : str
        The quality column (higher is better), e.g. ``"val_ks"``. No default: candidates
        are ranked on validation figures (a ``test_`` column holds figures only for the
        models scored on the test rows, which no choice may use).
    costs : sequence of {"size_bytes", "latency_ms_1k"}
        One panel per cost (lower is better; an unknown cost is not drawn).

    Returns
    -------
    Chart
        ``stats[cost]`` lists the candidate names on that cost's front.
    """
    fig = make_subplots(
        rows=1,
        cols=len(costs),
        horizontal_spacing=0.1,
        subplot_titles=[f"{COSTS[cost][0]} vs {metric}" for cost in costs],
    )
    stats: dict[str, Any] = {}
    candidates = results[~results["source"].isin(["teacher", "baseline"])].reset_index(drop=True)
    refs = results[results["source"].isin(["teacher", "baseline"])]
    for col, cost in enumerate(costs, start=1):
        c_cost = pd.Series(curves.known_cost(candidates[cost]), index=candidates.index)
        front = curves.pareto_front(c_cost, candidates[metric].astype(float))
        stats[cost] = [str(candidates.loc[i, "name"]) for i in front]
        on_front = candidates.index.isin(front)
        hover = "%{text}<br>" + cost + " %{x:,.4g}<br>" + metric + " %{y:.4f}<extra></extra>"
        fig.add_trace(
            go.Scatter(
                x=rounded(c_cost[~on_front]),
                y=rounded(candidates.loc[~on_front, metric]),
                mode="markers",
                text=[label(v) for v in candidates.loc[~on_front, "name"]],
                marker={"color": MUTED_COLOR, "size": 8},
                name="candidate",
                legendgroup="candidate",
                showlegend=col == 1,
                hovertemplate=hover,
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=rounded(c_cost[front]),
                y=rounded(candidates.loc[front, metric]),
                mode="lines+markers",
                line_shape="hv",
                text=[label(candidates.loc[i, "name"]) for i in front],
                marker={"color": FRONT_COLOR, "size": 10},
                line={"color": FRONT_COLOR},
                name="Pareto front",
                legendgroup="front",
                showlegend=col == 1,
                hovertemplate=hover,
            ),
            row=1,
            col=col,
        )
        for source, symbol, color in (
            ("teacher", "diamond", TEACHER_COLOR),
            ("baseline", "square", BASELINE_COLOR),
        ):
            part = refs[refs["source"] == source]
            x = pd.Series(curves.known_cost(part[cost]), index=part.index)
            ok = x.notna() & part[metric].notna()
            if not ok.any():
                continue
            fig.add_trace(
                go.Scatter(
                    x=rounded(x[ok]),
                    y=rounded(part.loc[ok, metric]),
                    mode="markers",
                    text=[label(v) for v in part.loc[ok, "name"]],
                    marker={"color": color, "size": 12, "symbol": symbol},
                    name=source,
                    legendgroup=source,
                    showlegend=col == 1,
                    hovertemplate=hover,
                ),
                row=1,
                col=col,
            )
        sel = candidates[candidates["selected"].astype(bool)]
        fig.add_trace(
            go.Scatter(
                x=rounded(curves.known_cost(sel[cost])),
                y=rounded(sel[metric]),
                mode="markers",
                text=[label(v) for v in sel["name"]],
                marker={
                    "color": STUDENT_COLOR,
                    "size": 16,
                    "symbol": "star",
                    "line": {"color": "black", "width": 1},
                },
                name="selected student",
                legendgroup="selected",
                showlegend=col == 1,
                hovertemplate=hover,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(type="log")
    for col, cost in enumerate(costs, start=1):
        fig.update_xaxes(title_text=COSTS[cost][1], row=1, col=col)
    fig.update_yaxes(title_text=metric)
    fig.update_layout(height=460, legend={"orientation": "h", "y": -0.22})
    caption = (
        f"Every trained candidate (grey), the Pareto front (red: no other candidate is "
        f"both smaller/faster and higher on {metric}), the selected student (star), the "
        "teacher and the hard-label baseline for reference."
    )
    return Chart("pareto", "Pareto fronts: cost vs quality", caption, figure_dict(fig), stats)


def timeline_chart(timeline: Sequence[PhaseSpan]) -> Chart:
    """Gantt-like bars of each phase from the run's timeline.

    Parameters
    ----------
    timeline : sequence of PhaseSpan
        ``RunResult.timeline``: one span per phase run.

    Returns
    -------
    Chart
        ``stats["phases"]``: phase, start and end of each span.
    """
    phases = [span.phase for span in timeline]
    start = [float(span.start_s) for span in timeline]
    end = [float(span.end_s) for span in timeline]
    dur = [e - s for s, e in zip(start, end, strict=True)]
    fig = go.Figure(
        go.Bar(
            y=[label(p) for p in phases],
            x=rounded(dur, 4),
            base=rounded(start, 4),
            orientation="h",
            marker={"color": TEACHER_COLOR},
            text=[f"{d:.2f} s" for d in dur],
            textposition="auto",
            customdata=[[s, e] for s, e in zip(start, end, strict=True)],
            hovertemplate="%{y}<br>start %{customdata[0]:.3f} s<br>end %{customdata[1]:.3f} s"
            "<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(220, 90 + 40 * len(set(phases))),
        showlegend=False,
        xaxis_title="seconds since the run started",
        yaxis={"autorange": "reversed", "type": "category"},
    )
    return Chart(
        "timeline",
        "Phase timeline",
        "Each bar spans a phase's start and end as recorded by the run.",
        figure_dict(fig),
        {
            "phases": [
                {"phase": p, "start_s": s, "end_s": e}
                for p, s, e in zip(phases, start, end, strict=True)
            ]
        },
    )
