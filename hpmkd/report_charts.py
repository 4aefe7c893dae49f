"""Plotly figures of the HTML report, built only from a finished run's real predictions.

Every builder returns a :class:`Chart`: a plotly figure as a plain dict (data and layout,
no template: the report adds one shared template in the browser) plus ``stats``, the
machine-readable numbers the chart shows (for example the KS gap and where it occurs),
which the report also writes into its JSON data block.

The numbers (KS curves, histograms, calibration bins, confusion counts, Pareto fronts,
thinning) come from :mod:`hpmkd.curves`, shared with the Streamlit app. Curves are computed
on the full test split; only the number of *drawn* points is thinned (deterministically:
every k-th point, always keeping the end points and the marked point), so a large test
split gives a small report and the same run gives the same report.

Class scores: for a binary target the score is the probability of the second class
(``classes[1]``), as in :mod:`hpmkd.metrics`. For three or more classes the per-class
charts (ROC, KS, score distributions, calibration, teacher-vs-student scatter) are
one-vs-rest, one view per class behind a dropdown; the view shown first is the class with
the fewest test rows (ties: the first in class order), because the rare class is the one
whose separation is hardest and most often the one of interest.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.metrics import roc_curve

from hpmkd import curves

MAX_CURVE_POINTS = 1000
MAX_SCATTER_POINTS = 5000
N_CALIBRATION_BINS = curves.N_CALIBRATION_BINS
N_HISTOGRAM_BINS = 20

TEACHER_COLOR = "#4c72b0"
STUDENT_COLOR = "#dd8452"
BASELINE_COLOR = "#55a868"
POSITIVE_COLOR = "#c44e52"
NEGATIVE_COLOR = "#4c72b0"
MUTED_COLOR = "#9aa0a6"
FRONT_COLOR = "#c44e52"


@dataclass
class Chart:
    """One report chart.

    Attributes
    ----------
    chart_id : str
        Stable identifier; the report's div id is ``chart-<chart_id>``.
    title : str
        Heading shown above the chart (plain text; the report escapes it).
    caption : str
        What the chart shows and how it was computed (plain text).
    figure : dict
        Plotly figure as ``{"data": [...], "layout": {...}}`` without a template.
    stats : dict
        Numbers the chart shows, JSON-friendly, for the report's data block and tests.
    """

    chart_id: str
    title: str
    caption: str
    figure: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers
def label(value: Any) -> str:
    """Text of a user-provided value, escaped for plotly's HTML-like text rendering.

    Parameters
    ----------
    value : object
        Class label, column name, candidate name ...

    Returns
    -------
    str
        ``html.escape(str(value))``: plotly shows the entities as the original characters
        but never interprets the value as markup (``<a href>``, ``<b>``).
    """
    return html.escape(str(value))


def figure_dict(fig: go.Figure) -> dict[str, Any]:
    """The figure as plain JSON data, without the (large, shared) template.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure

    Returns
    -------
    dict
        ``{"data": [...], "layout": {...}}`` with a default top margin of 50 px.
    """
    data = json.loads(fig.to_json(validate=False))
    layout = data.setdefault("layout", {})
    layout.pop("template", None)
    margin = layout.setdefault("margin", {})
    margin.setdefault("t", 50)
    margin.setdefault("r", 20)
    return {"data": data.get("data", []), "layout": data.get("layout", {})}


def _r(values: Any, digits: int = 6) -> list[float]:
    """Round drawn coordinates (not reported numbers) to keep the file small."""
    return [float(v) for v in np.round(np.asarray(values, dtype=float), digits)]


def _finite(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _per_class(
    fig: go.Figure,
    class_ids: list[int],
    first: int,
    class_names: list[str],
    add: Callable[[go.Figure, int], tuple[list[dict], list[dict]]],
) -> go.Figure:
    """Add one view per class (traces, shapes, annotations) and a dropdown between them.

    ``add(fig, k)`` adds class ``k``'s traces and returns its shapes and annotations.
    """
    base_annotations = [a.to_plotly_json() for a in fig.layout.annotations]
    owner: list[int] = []
    views: dict[int, tuple[list[dict], list[dict]]] = {}
    for k in class_ids:
        before = len(fig.data)
        views[k] = add(fig, k)
        owner += [k] * (len(fig.data) - before)
    for trace, k in zip(fig.data, owner, strict=True):
        trace.visible = k == first
    shapes, annotations = views[first]
    fig.update_layout(shapes=shapes, annotations=base_annotations + annotations)
    if len(class_ids) > 1:
        buttons = [
            {
                "label": f"class {class_names[k]}",
                "method": "update",
                "args": [
                    {"visible": [o == k for o in owner]},
                    {"shapes": views[k][0], "annotations": base_annotations + views[k][1]},
                ],
            }
            for k in class_ids
        ]
        fig.update_layout(
            updatemenus=[
                {
                    "buttons": buttons,
                    "direction": "down",
                    "x": 0.0,
                    "xanchor": "left",
                    "y": 1.22,
                    "yanchor": "top",
                    "active": class_ids.index(first),
                    "showactive": True,
                }
            ],
            margin={"t": 110},
        )
    return fig


def _calibration_stats(table: pd.DataFrame) -> dict[str, list[float]]:
    """The report's JSON form of :func:`hpmkd.curves.calibration_bins` (lists per field)."""
    return {
        "mean_predicted": table["mean_score"].tolist(),
        "observed": table["observed"].tolist(),
        "count": table["rows"].tolist(),
        "lower": table["lower"].tolist(),
        "upper": table["upper"].tolist(),
    }


def _class_note(n_classes: int, class_names: list[str], first: int) -> str:
    if n_classes == 2:
        return f"Score = probability of class {class_names[1]} (the positive class)."
    return (
        f"One-vs-rest: score = probability of the chosen class; use the dropdown to switch "
        f"class. Shown first: class {class_names[first]}, the class with the fewest test rows."
    )


# --------------------------------------------------------------------------- charts
@dataclass
class ChartInputs:
    """The real predictions the charts are drawn from (test split).

    Attributes
    ----------
    y : ndarray of int
        True class indices of the test rows.
    teacher : ndarray
        Primary teacher probabilities, shape (n_rows, n_classes).
    student : ndarray
        Best student probabilities, same shape and rows.
    class_names : list of str
        Class labels in column order (unescaped).
    teacher_name, student_name : str
        Display names (unescaped).
    """

    y: np.ndarray
    teacher: np.ndarray
    student: np.ndarray
    class_names: list[str]
    teacher_name: str
    student_name: str

    @property
    def n_classes(self) -> int:
        """Number of classes (probability columns)."""
        return self.teacher.shape[1]

    @property
    def names(self) -> list[str]:
        """Escaped class labels for plotly text."""
        return [label(c) for c in self.class_names]

    def models(self) -> list[tuple[str, np.ndarray, str]]:
        """``(role, probabilities, color)`` of the teacher and the student."""
        return [("teacher", self.teacher, TEACHER_COLOR), ("student", self.student, STUDENT_COLOR)]


def roc_chart(inp: ChartInputs) -> Chart:
    """ROC curves of teacher and student on the test split (one-vs-rest if multiclass).

    Parameters
    ----------
    inp : ChartInputs
        Test labels and the teacher's and student's test probabilities.

    Returns
    -------
    Chart
    """
    ids = curves.score_classes(inp.n_classes)
    first = curves.default_class(inp.y, inp.n_classes)
    stats: dict[str, Any] = {}
    fig = go.Figure()

    def add(f: go.Figure, k: int) -> tuple[list[dict], list[dict]]:
        y_pos = inp.y == k
        for role, proba, color in inp.models():
            if y_pos.all() or not y_pos.any():
                continue
            fpr, tpr, _ = roc_curve(y_pos, proba[:, k])
            keep = curves.thin_indices(len(fpr), MAX_CURVE_POINTS)
            area = float(np.trapezoid(tpr, fpr))
            stats.setdefault(inp.class_names[k], {})[role] = {"auc": area}
            f.add_trace(
                go.Scatter(
                    x=_r(fpr[keep]),
                    y=_r(tpr[keep]),
                    mode="lines",
                    line={"color": color},
                    name=f"{role} (AUC {area:.4f})",
                    legendgroup=role,
                    hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<extra>" + role + "</extra>",
                )
            )
        shapes = [
            {
                "type": "line",
                "x0": 0,
                "y0": 0,
                "x1": 1,
                "y1": 1,
                "line": {"color": MUTED_COLOR, "dash": "dot"},
            }
        ]
        return shapes, []

    _per_class(fig, ids, first, inp.names, add)
    fig.update_layout(
        height=460,
        xaxis_title="false positive rate",
        yaxis_title="true positive rate",
        legend={"x": 0.55, "y": 0.08},
    )
    caption = (
        f"Test split, {len(inp.y):,} rows. {_class_note(inp.n_classes, inp.names, first)} "
        "AUC in the legend is the area under the drawn class's curve."
    )
    return Chart("roc", "ROC curves: teacher and student", caption, figure_dict(fig), stats)


def ks_chart(inp: ChartInputs) -> Chart:
    """KS plot: score CDFs of positive and negative rows, max gap marked, per model.

    Parameters
    ----------
    inp : ChartInputs
        Test labels and the teacher's and student's test probabilities.

    Returns
    -------
    Chart
    """
    ids = curves.score_classes(inp.n_classes)
    first = curves.default_class(inp.y, inp.n_classes)
    roles = inp.models()
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=[r[0] for r in roles], horizontal_spacing=0.08
    )
    stats: dict[str, Any] = {}

    def add(f: go.Figure, k: int) -> tuple[list[dict], list[dict]]:
        shapes: list[dict] = []
        notes: list[dict] = []
        y_pos = inp.y == k
        for col, (role, proba, _color) in enumerate(roles, start=1):
            c = curves.ks_curve(y_pos, proba[:, k])
            stats.setdefault(inp.class_names[k], {})[role] = {
                "ks": None if math.isnan(c.ks) else c.ks,
                "at_score": None if math.isnan(c.at) else c.at,
            }
            keep = curves.thin_indices(len(c.x), MAX_CURVE_POINTS, keep=[c.index])
            x = np.r_[c.x[0] if len(c.x) else 0.0, c.x[keep]]
            rest = "the other classes" if inp.n_classes > 2 else "the other class"
            for group, cdf, color, who in (
                ("positives", c.cdf_pos, POSITIVE_COLOR, f"class {inp.names[k]}"),
                ("negatives", c.cdf_neg, NEGATIVE_COLOR, rest),
            ):
                f.add_trace(
                    go.Scatter(
                        x=_r(x),
                        y=_r(np.r_[0.0, cdf[keep]]),
                        mode="lines",
                        line_shape="hv",
                        line={"color": color},
                        name=f"{group}: {who}",
                        legendgroup=group,
                        showlegend=col == 1,
                        hovertemplate="score %{x:.4f}<br>CDF %{y:.4f}<extra>" + group + "</extra>",
                    ),
                    row=1,
                    col=col,
                )
            if math.isnan(c.ks):
                continue
            i = c.index
            lo, hi = sorted((float(c.cdf_pos[i]), float(c.cdf_neg[i])))
            axis = "" if col == 1 else str(col)
            shapes.append(
                {
                    "type": "line",
                    "xref": f"x{axis}",
                    "yref": f"y{axis}",
                    "x0": c.at,
                    "x1": c.at,
                    "y0": lo,
                    "y1": hi,
                    "line": {"color": "black", "width": 2},
                }
            )
            notes.append(
                {
                    "xref": f"x{axis}",
                    "yref": f"y{axis}",
                    "x": c.at,
                    "y": (lo + hi) / 2,
                    "text": f"KS = {c.ks:.4f}<br>at {c.at:.4f}",
                    "showarrow": True,
                    "ax": 45,
                    "ay": 0,
                    "bgcolor": "white",
                    "font": {"size": 11},
                }
            )
        return shapes, notes

    _per_class(fig, ids, first, inp.names, add)
    fig.update_layout(height=440, legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text="score", range=[0, 1])
    fig.update_yaxes(title_text="share of rows with score ≤ x", row=1, col=1)
    caption = (
        f"Test split. Cumulative share of positive and negative rows at or below each score; "
        f"the black line marks the largest vertical gap, the KS statistic "
        f"(= max |TPR − FPR|). {_class_note(inp.n_classes, inp.names, first)}"
        + (
            " The run's KS metric is the macro mean of these per-class values."
            if inp.n_classes > 2
            else ""
        )
    )
    return Chart("ks", "KS plot: teacher and student", caption, figure_dict(fig), stats)


def score_distribution_chart(inp: ChartInputs) -> Chart:
    """Histograms of the class score for positive and negative rows, per model.

    Parameters
    ----------
    inp : ChartInputs
        Test labels and the teacher's and student's test probabilities.

    Returns
    -------
    Chart
    """
    ids = curves.score_classes(inp.n_classes)
    first = curves.default_class(inp.y, inp.n_classes)
    roles = inp.models()
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=[r[0] for r in roles],
        horizontal_spacing=0.08,
        shared_yaxes=True,
    )

    def add(f: go.Figure, k: int) -> tuple[list[dict], list[dict]]:
        y_pos = inp.y == k
        for col, (_role, proba, _color) in enumerate(roles, start=1):
            h = curves.score_histogram(y_pos, proba[:, k], N_HISTOGRAM_BINS)
            for group, counts, share, color in (
                ("positives", h.counts_pos, h.share_pos, POSITIVE_COLOR),
                ("negatives", h.counts_neg, h.share_neg, NEGATIVE_COLOR),
            ):
                f.add_trace(
                    go.Bar(
                        x=_r(h.centers),
                        y=_r(share),
                        width=1.0 / N_HISTOGRAM_BINS,
                        marker={"color": color},
                        opacity=0.55,
                        name=group,
                        legendgroup=group,
                        showlegend=col == 1,
                        customdata=counts.tolist(),
                        hovertemplate="score bin %{x:.3f}<br>share %{y:.3f}<br>rows %{customdata}"
                        "<extra>" + group + "</extra>",
                    ),
                    row=1,
                    col=col,
                )
        return [], []

    _per_class(fig, ids, first, inp.names, add)
    fig.update_layout(
        height=400, barmode="overlay", bargap=0, legend={"orientation": "h", "y": -0.2}
    )
    fig.update_xaxes(title_text="score", range=[0, 1])
    fig.update_yaxes(title_text="share of the group's rows", row=1, col=1)
    caption = (
        f"Test split, {N_HISTOGRAM_BINS} equal-width bins; bars show the share of each "
        f"group's rows. {_class_note(inp.n_classes, inp.names, first)}"
    )
    return Chart("scores", "Score distributions", caption, figure_dict(fig))


def calibration_chart(inp: ChartInputs) -> Chart:
    """Reliability curves (binned mean predicted score vs observed share) per model.

    Parameters
    ----------
    inp : ChartInputs
        Test labels and the teacher's and student's test probabilities.

    Returns
    -------
    Chart
    """
    ids = curves.score_classes(inp.n_classes)
    first = curves.default_class(inp.y, inp.n_classes)
    fig = go.Figure()
    stats: dict[str, Any] = {}

    def add(f: go.Figure, k: int) -> tuple[list[dict], list[dict]]:
        y_pos = inp.y == k
        for role, proba, color in inp.models():
            b = _calibration_stats(curves.calibration_bins(y_pos, proba[:, k]))
            stats.setdefault(inp.class_names[k], {})[role] = b
            f.add_trace(
                go.Scatter(
                    x=_r(b["mean_predicted"]),
                    y=_r(b["observed"]),
                    mode="lines+markers",
                    line={"color": color},
                    name=role,
                    legendgroup=role,
                    marker={
                        "size": [6 + 14 * math.sqrt(n / max(len(inp.y), 1)) for n in b["count"]]
                    },
                    customdata=[
                        [n, lo, hi]
                        for n, lo, hi in zip(b["count"], b["lower"], b["upper"], strict=True)
                    ],
                    hovertemplate="bin %{customdata[1]:.1f}–%{customdata[2]:.1f}<br>"
                    "mean score %{x:.3f}<br>observed %{y:.3f}<br>rows %{customdata[0]}"
                    "<extra>" + role + "</extra>",
                )
            )
        shapes = [
            {
                "type": "line",
                "x0": 0,
                "y0": 0,
                "x1": 1,
                "y1": 1,
                "line": {"color": MUTED_COLOR, "dash": "dot"},
            }
        ]
        return shapes, []

    _per_class(fig, ids, first, inp.names, add)
    fig.update_layout(
        height=440,
        xaxis={"title": {"text": "mean predicted score"}, "range": [0, 1]},
        yaxis={"title": {"text": "observed share of positives"}, "range": [-0.02, 1.02]},
    )
    caption = (
        f"Test split, {N_CALIBRATION_BINS} equal-width score bins (empty bins left out; "
        f"marker size grows with the bin's rows). The dotted diagonal is perfect "
        f"calibration. {_class_note(inp.n_classes, inp.names, first)}"
    )
    return Chart("calibration", "Calibration (reliability curve)", caption, figure_dict(fig), stats)


def confusion_chart(inp: ChartInputs) -> Chart:
    """Confusion matrices (counts) of teacher and student on the test split.

    Parameters
    ----------
    inp : ChartInputs
        Test labels and the teacher's and student's test probabilities.

    Returns
    -------
    Chart
    """
    n = inp.n_classes
    roles = inp.models()
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=[r[0] for r in roles], horizontal_spacing=0.12
    )
    stats: dict[str, Any] = {}
    names = inp.names
    for col, (role, proba, _color) in enumerate(roles, start=1):
        matrix = curves.confusion_counts(inp.y, proba)
        stats[role] = matrix.tolist()
        fig.add_trace(
            go.Heatmap(
                z=matrix.tolist(),
                x=[f"pred {c}" for c in names],
                y=[f"true {c}" for c in names],
                text=matrix.tolist(),
                texttemplate="%{text}",
                colorscale="Blues",
                showscale=False,
                hovertemplate="%{y}<br>%{x}<br>rows %{z}<extra>" + role + "</extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(360, 60 + 28 * n))
    caption = (
        f"Test split, {len(inp.y):,} rows; predicted class = highest probability. "
        "Rows are true classes, columns predicted classes."
    )
    return Chart("confusion", "Confusion matrices", caption, figure_dict(fig), stats)


def agreement_scatter_chart(inp: ChartInputs) -> Chart:
    """Teacher vs student class score per test row (every k-th row if too many).

    Parameters
    ----------
    inp : ChartInputs
        Test labels and the teacher's and student's test probabilities.

    Returns
    -------
    Chart
    """
    ids = curves.score_classes(inp.n_classes)
    first = curves.default_class(inp.y, inp.n_classes)
    n = len(inp.y)
    budget = max(MAX_SCATTER_POINTS // len(ids), 1)
    rows = curves.thin_indices(n, budget)
    fig = go.Figure()

    def add(f: go.Figure, k: int) -> tuple[list[dict], list[dict]]:
        y_pos = inp.y[rows] == k
        for group, mask, color in (
            ("positives", y_pos, POSITIVE_COLOR),
            ("negatives", ~y_pos, NEGATIVE_COLOR),
        ):
            f.add_trace(
                go.Scatter(
                    x=_r(inp.teacher[rows][mask, k]),
                    y=_r(inp.student[rows][mask, k]),
                    mode="markers",
                    marker={"color": color, "size": 5, "opacity": 0.6},
                    name=group,
                    legendgroup=group,
                    hovertemplate="teacher %{x:.4f}<br>student %{y:.4f}<extra>"
                    + group
                    + "</extra>",
                )
            )
        shapes = [
            {
                "type": "line",
                "x0": 0,
                "y0": 0,
                "x1": 1,
                "y1": 1,
                "line": {"color": MUTED_COLOR, "dash": "dot"},
            }
        ]
        return shapes, []

    _per_class(fig, ids, first, inp.names, add)
    fig.update_layout(
        height=460,
        xaxis={"title": {"text": "teacher score"}, "range": [0, 1]},
        yaxis={"title": {"text": "student score"}, "range": [0, 1]},
    )
    shown = len(rows)
    sampled = (
        f"one row in every {math.ceil(n / budget)} ({shown:,} of {n:,} rows)"
        if shown < n
        else f"all {n:,} rows"
    )
    caption = (
        f"Test split, {sampled}. Points on the dotted diagonal are rows where student "
        f"and teacher give the same score. {_class_note(inp.n_classes, inp.names, first)}"
    )
    return Chart(
        "agreement",
        "Teacher vs student scores",
        caption,
        figure_dict(fig),
        {"rows_shown": shown, "rows_total": n},
    )


def pareto_chart(results: pd.DataFrame, metric: str = "test_ks") -> Chart:
    """Size vs test metric and latency vs test metric for every candidate, fronts drawn.

    Parameters
    ----------
    results : DataFrame
        ``results_df`` of the run.
    metric : str, default "test_ks"
        The quality column (higher is better).

    Returns
    -------
    Chart
        ``stats`` lists the candidate names on each front.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=["model size vs " + metric, "latency vs " + metric],
    )
    stats: dict[str, Any] = {}
    candidates = results[~results["source"].isin(["teacher", "baseline"])].reset_index(drop=True)
    refs = results[results["source"].isin(["teacher", "baseline"])]
    for col, cost in enumerate(("size_bytes", "latency_ms_1k"), start=1):
        c_cost = pd.Series(curves.known_cost(candidates[cost]), index=candidates.index)
        front = curves.pareto_front(c_cost, candidates[metric].astype(float))
        stats[cost] = [str(candidates.loc[i, "name"]) for i in front]
        on_front = candidates.index.isin(front)
        hover = "%{text}<br>" + cost + " %{x:,.4g}<br>" + metric + " %{y:.4f}<extra></extra>"
        fig.add_trace(
            go.Scatter(
                x=_r(c_cost[~on_front]),
                y=_r(candidates.loc[~on_front, metric]),
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
                x=_r(c_cost[front]),
                y=_r(candidates.loc[front, metric]),
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
                    x=_r(x[ok]),
                    y=_r(part.loc[ok, metric]),
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
                x=_r(curves.known_cost(sel[cost])),
                y=_r(sel[metric]),
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
    fig.update_xaxes(title_text="pickled size (bytes, log scale)", row=1, col=1)
    fig.update_xaxes(title_text="ms per 1,000 rows (log scale)", row=1, col=2)
    fig.update_yaxes(title_text=metric)
    fig.update_layout(height=460, legend={"orientation": "h", "y": -0.22})
    caption = (
        f"Every trained candidate (grey), the Pareto front (red: no other candidate is "
        f"both smaller/faster and higher on {metric}), the selected student (star), the "
        "teacher and the hard-label baseline for reference."
    )
    return Chart("pareto", "Pareto fronts: cost vs quality", caption, figure_dict(fig), stats)


def timeline_chart(timeline: list[dict[str, Any]]) -> Chart:
    """Gantt-like bars of each phase from the run's timeline.

    Parameters
    ----------
    timeline : list of dict
        ``record.timeline``: ``{"phase", "start_s", "end_s"}`` per phase run.

    Returns
    -------
    Chart
    """
    phases = [str(t.get("phase", "?")) for t in timeline]
    start = [float(t.get("start_s", 0.0)) for t in timeline]
    end = [float(t.get("end_s", 0.0)) for t in timeline]
    dur = [e - s for s, e in zip(start, end, strict=True)]
    fig = go.Figure(
        go.Bar(
            y=[label(p) for p in phases],
            x=_r(dur, 4),
            base=_r(start, 4),
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


# --------------------------------------------------------------------------- components
def selection_chart(configs: list[dict[str, Any]]) -> Chart | None:
    """Score of each configuration the manager kept (hover: the reason).

    Parameters
    ----------
    configs : list of dict
        ``details["selection"]["configs"]``.

    Returns
    -------
    Chart or None
        None when no config has a numeric score.
    """
    rows = [c for c in configs if _finite(c.get("score")) is not None]
    if not rows:
        return None
    labels = [label(c.get("label", f"config {i}")) for i, c in enumerate(rows)]
    fig = go.Figure(
        go.Bar(
            y=labels,
            x=[float(c["score"]) for c in rows],
            orientation="h",
            marker={"color": TEACHER_COLOR},
            customdata=[label(c.get("reason", "")) for c in rows],
            hovertemplate="%{y}<br>score %{x:.4f}<br>%{customdata}<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(240, 80 + 26 * len(rows)),
        xaxis_title="ranking score",
        yaxis={"autorange": "reversed", "type": "category"},
    )
    return Chart(
        "selection",
        "Selected configurations and their ranking scores",
        "Higher score = ranked more promising from the dataset's meta-features; "
        "hover a bar for the reason it was kept.",
        figure_dict(fig),
    )


def warm_start_chart(neighbours: list[dict[str, Any]], metric: str) -> Chart | None:
    """Distance vs best validation metric of the similar past runs.

    Parameters
    ----------
    neighbours : list of dict
        ``details["warm_start"]["neighbours"]``.
    metric : str
        Name of the selection metric (axis title).

    Returns
    -------
    Chart or None
        None when no neighbour has a numeric distance and metric.
    """
    rows = [
        n
        for n in neighbours
        if _finite(n.get("distance")) is not None and _finite(n.get("best_val_metric")) is not None
    ]
    if not rows:
        return None
    fig = go.Figure(
        go.Scatter(
            x=[float(n["distance"]) for n in rows],
            y=[float(n["best_val_metric"]) for n in rows],
            mode="markers+text",
            text=[label(n.get("dataset", n.get("run_id", ""))) for n in rows],
            textposition="top center",
            marker={"size": 11, "color": TEACHER_COLOR},
            hovertemplate="%{text}<br>distance %{x:.4f}<br>best val "
            + metric
            + " %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=360,
        xaxis_title="meta-feature distance (smaller = more similar)",
        yaxis_title=f"best validation {metric}",
    )
    return Chart(
        "warm-start",
        "Warm-start sources (similar past runs)",
        "Past runs in the optimization memory closest to this dataset.",
        figure_dict(fig),
    )


def chain_chart(
    stages: list[dict[str, Any]], min_improvement: float | None, metric: str
) -> Chart | None:
    """Validation metric and gain of each progressive-chain stage.

    Parameters
    ----------
    stages : list of dict
        ``details["chain"]["stages"]``.
    min_improvement : float or None
        The stopping threshold, drawn as a line on the gains.
    metric : str
        Name of the selection metric.

    Returns
    -------
    Chart or None
        None when no stage has a numeric ``val_metric``.
    """
    rows = [s for s in stages if _finite(s.get("val_metric")) is not None]
    if not rows:
        return None
    names = [f"{s.get('stage', i + 1)}: {label(s.get('name', ''))}" for i, s in enumerate(rows)]
    kept = [bool(s.get("kept", True)) for s in rows]
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=[f"validation {metric} per stage", "gain over previous"],
    )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[float(s["val_metric"]) for s in rows],
            mode="lines+markers",
            line={"color": TEACHER_COLOR},
            marker={
                "size": 11,
                "color": [STUDENT_COLOR if k else MUTED_COLOR for k in kept],
                "symbol": ["circle" if k else "x" for k in kept],
            },
            name=f"val {metric}",
            hovertemplate="%{x}<br>%{y:.4f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    gains = [_finite(s.get("gain")) for s in rows]
    fig.add_trace(
        go.Bar(
            x=names,
            y=[g if g is not None else 0.0 for g in gains],
            marker={"color": [STUDENT_COLOR if k else MUTED_COLOR for k in kept]},
            text=[f"{g:+.4f}" if g is not None else "n/a" for g in gains],
            name="gain",
            hovertemplate="%{x}<br>gain %{y:+.4f}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    if min_improvement is not None:
        fig.add_hline(
            y=float(min_improvement),
            line={"color": FRONT_COLOR, "dash": "dash"},
            annotation_text=f"min_improvement {min_improvement:g}",
            annotation_position="top left",
            row=1,
            col=2,
        )
    fig.update_layout(height=400, showlegend=False)
    return Chart(
        "chain",
        "Progressive chain stages",
        "Orange: stage kept; grey cross: stage trained but not kept. The chain stops "
        "when a stage gains less than min_improvement on validation.",
        figure_dict(fig),
    )


def temperature_chart(decisions: list[dict[str, Any]], metric: str) -> Chart | None:
    """Chosen temperature per stage/candidate and the validation feedback behind it.

    Parameters
    ----------
    decisions : list of dict
        ``details["temperature"]["decisions"]``; ``feedback`` maps temperature (number or
        text) to the validation metric measured with it.
    metric : str
        Name of the selection metric.

    Returns
    -------
    Chart or None
        None when no decision has a numeric temperature.
    """
    rows = [d for d in decisions if _finite(d.get("temperature")) is not None]
    if not rows:
        return None
    names = [label(_decision_name(d, i)) for i, d in enumerate(rows)]
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=["chosen temperature", f"validation {metric} by temperature tried"],
    )
    fig.add_trace(
        go.Bar(
            x=names,
            y=[float(d["temperature"]) for d in rows],
            marker={"color": TEACHER_COLOR},
            customdata=[label(d.get("reason", "")) for d in rows],
            name="temperature",
            hovertemplate="%{x}<br>T = %{y:g}<br>%{customdata}<extra></extra>",
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    for name, d in zip(names, rows, strict=True):
        feedback = d.get("feedback") or {}
        points = sorted(
            (float(t), float(v))
            for t, v in feedback.items()
            if _finite(t) is not None and _finite(v) is not None
        )
        if not points:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="lines+markers",
                name=name,
                hovertemplate="T %{x:g}<br>val " + metric + " %{y:.4f}<extra>" + name + "</extra>",
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="temperature", row=1, col=2)
    fig.update_xaxes(type="category", row=1, col=1)
    fig.update_layout(height=400, legend={"orientation": "h", "y": -0.25})
    return Chart(
        "temperature",
        "Temperature per stage",
        "Left: the temperature the scheduler chose (hover for its reason). Right: the "
        "measured validation metric at each temperature it tried.",
        figure_dict(fig),
    )


def _decision_name(decision: dict[str, Any], i: int) -> str:
    stage, candidate = decision.get("stage"), decision.get("candidate")
    if stage is not None and candidate:
        return f"stage {stage}: {candidate}"
    if stage is not None:
        return f"stage {stage}"
    return str(candidate) if candidate else f"decision {i + 1}"


def attention_chart(weights: dict[str, Any], fused: Any, mean: Any, metric: str) -> Chart | None:
    """Mean attention weight per member and fused vs plain-mean validation metric.

    Parameters
    ----------
    weights : dict
        ``details["attention"]["mean_weights"]``: member name to mean weight.
    fused, mean : float or None
        Validation metric of the fused target and of the plain mean of members.
    metric : str
        Name of the selection metric.

    Returns
    -------
    Chart or None
        None when no weight is numeric.
    """
    items = [(str(k), float(v)) for k, v in weights.items() if _finite(v) is not None]
    if not items:
        return None
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.15,
        column_widths=[0.65, 0.35],
        subplot_titles=["mean attention weight", f"validation {metric}"],
    )
    fig.add_trace(
        go.Bar(
            x=[w for _, w in items],
            y=[label(k) for k, _ in items],
            orientation="h",
            marker={"color": TEACHER_COLOR},
            hovertemplate="%{y}<br>%{x:.4f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    bars = [(n, _finite(v)) for n, v in (("fused", fused), ("plain mean", mean))]
    bars = [(n, v) for n, v in bars if v is not None]
    if bars:
        fig.add_trace(
            go.Bar(
                x=[n for n, _ in bars],
                y=[v for _, v in bars],
                marker={"color": [STUDENT_COLOR, MUTED_COLOR][: len(bars)]},
                text=[f"{v:.4f}" for _, v in bars],
                hovertemplate="%{x}<br>%{y:.4f}<extra></extra>",
            ),
            row=1,
            col=2,
        )
    fig.update_yaxes(autorange="reversed", type="category", row=1, col=1)
    fig.update_layout(height=max(300, 100 + 30 * len(items)), showlegend=False)
    return Chart(
        "attention",
        "Attention weights of the multi-teacher ensemble",
        "Average per-sample attention each member received on validation rows, and "
        "the validation metric of the fused target vs a plain average.",
        figure_dict(fig),
    )
