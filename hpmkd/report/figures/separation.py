"""How well each model's scores separate the classes: ROC curves, KS plots and score
distributions, one-vs-rest per class.

Each builder takes :class:`~hpmkd.report.figures.base.ChartInputs` (true labels and any
number of models' probabilities) and returns a :class:`~hpmkd.report.figures.base.Chart`;
the numbers come from :mod:`hpmkd.curves`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.metrics import roc_curve

from hpmkd import curves
from hpmkd.report.figures.base import (
    MAX_CURVE_POINTS,
    N_HISTOGRAM_BINS,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    Chart,
    ChartInputs,
    Views,
    and_list,
    diagonal,
    figure_dict,
    label,
    per_class,
    rounded,
    short,
)


def roc_chart(inp: ChartInputs) -> Chart:
    """ROC curves of every model, overlaid (one-vs-rest if multiclass).

    Parameters
    ----------
    inp : ChartInputs
        True labels and the models' probabilities.

    Returns
    -------
    Chart
        ``stats[class][model] = {"auc": area}``.
    """
    ids, first = inp.class_views()
    stats: dict[str, Any] = {}
    fig = go.Figure()

    def add(f: go.Figure, k: int) -> Views:
        y_pos = inp.y == k
        for name, proba, color in inp.colored():
            if y_pos.all() or not y_pos.any():
                continue
            fpr, tpr, _ = roc_curve(y_pos, proba[:, k])
            keep = curves.thin_indices(len(fpr), MAX_CURVE_POINTS)
            area = float(np.trapezoid(tpr, fpr))
            stats.setdefault(inp.class_names[k], {})[name] = {"auc": area}
            text = label(name)
            f.add_trace(
                go.Scatter(
                    x=rounded(fpr[keep]),
                    y=rounded(tpr[keep]),
                    mode="lines",
                    line={"color": color},
                    name=f"{text} (AUC {area:.4f})",
                    legendgroup=text,
                    hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<extra>" + text + "</extra>",
                )
            )
        return [diagonal()], []

    per_class(fig, ids, first, inp.names, add)
    fig.update_layout(
        height=460,
        xaxis_title="false positive rate",
        yaxis_title="true positive rate",
        legend={"x": 0.55, "y": 0.08},
    )
    caption = (
        f"Test split, {len(inp.y):,} rows. {inp.class_note(first)} "
        "AUC in the legend is the area under the drawn class's curve."
    )
    title = f"ROC curves: {and_list(inp.model_names)}"
    return Chart("roc", title, caption, figure_dict(fig), stats)


def ks_chart(inp: ChartInputs) -> Chart:
    """KS plot, one panel per model: score CDFs of positive and negative rows, max gap marked.

    Parameters
    ----------
    inp : ChartInputs
        True labels and the models' probabilities.

    Returns
    -------
    Chart
        ``stats[class][model] = {"ks": gap, "at_score": score}`` (``None`` when undefined).
    """
    ids, first = inp.class_views()
    models = inp.colored()
    fig = make_subplots(
        rows=1,
        cols=len(models),
        subplot_titles=[label(short(name)) for name, _, _ in models],
        horizontal_spacing=0.08,
    )
    stats: dict[str, Any] = {}

    def add(f: go.Figure, k: int) -> Views:
        shapes: list[dict] = []
        notes: list[dict] = []
        y_pos = inp.y == k
        for col, (name, proba, _color) in enumerate(models, start=1):
            c = curves.ks_curve(y_pos, proba[:, k])
            stats.setdefault(inp.class_names[k], {})[name] = {
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
                        x=rounded(x),
                        y=rounded(np.r_[0.0, cdf[keep]]),
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
            if math.isnan(c.ks):  # one group is empty: no gap to mark
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

    per_class(fig, ids, first, inp.names, add)
    fig.update_layout(height=440, legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text="score", range=[0, 1])
    fig.update_yaxes(title_text="share of rows with score ≤ x", row=1, col=1)
    caption = (
        f"Test split. Cumulative share of positive and negative rows at or below each score; "
        f"the black line marks the largest vertical gap, the KS statistic "
        f"(= max (TPR − FPR)). {inp.class_note(first)}"
        + (
            " The run's KS metric is the macro mean of these per-class values."
            if inp.n_classes > 2
            else ""
        )
    )
    title = f"KS plot: {and_list(inp.model_names)}"
    return Chart("ks", title, caption, figure_dict(fig), stats)


def score_distribution_chart(inp: ChartInputs) -> Chart:
    """Histograms of the class score for positive and negative rows, one panel per model.

    Parameters
    ----------
    inp : ChartInputs
        True labels and the models' probabilities.

    Returns
    -------
    Chart
    """
    ids, first = inp.class_views()
    models = inp.colored()
    fig = make_subplots(
        rows=1,
        cols=len(models),
        subplot_titles=[label(short(name)) for name, _, _ in models],
        horizontal_spacing=0.08,
        shared_yaxes=True,
    )

    def add(f: go.Figure, k: int) -> Views:
        y_pos = inp.y == k
        for col, (_name, proba, _color) in enumerate(models, start=1):
            h = curves.score_histogram(y_pos, proba[:, k], N_HISTOGRAM_BINS)
            for group, counts, share, color in (
                ("positives", h.counts_pos, h.share_pos, POSITIVE_COLOR),
                ("negatives", h.counts_neg, h.share_neg, NEGATIVE_COLOR),
            ):
                f.add_trace(
                    go.Bar(
                        x=rounded(h.centers),
                        y=rounded(share),
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

    per_class(fig, ids, first, inp.names, add)
    fig.update_layout(
        height=400, barmode="overlay", bargap=0, legend={"orientation": "h", "y": -0.2}
    )
    fig.update_xaxes(title_text="score", range=[0, 1])
    fig.update_yaxes(title_text="share of the group's rows", row=1, col=1)
    caption = (
        f"Test split, {N_HISTOGRAM_BINS} equal-width bins; bars show the share of each "
        f"group's rows. {inp.class_note(first)}"
    )
    return Chart("scores", "Score distributions", caption, figure_dict(fig))
