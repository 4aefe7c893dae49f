"""What the models' probabilities say row by row: calibration, confusion matrices and the
agreement scatter of each model against the first (the teacher).

Each builder takes :class:`~hpmkd.report.figures.base.ChartInputs` and returns a
:class:`~hpmkd.report.figures.base.Chart`; the numbers come from :mod:`hpmkd.curves`.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hpmkd import curves
from hpmkd.report.figures.base import (
    MAX_SCATTER_POINTS,
    N_CALIBRATION_BINS,
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


def _calibration_stats(table: pd.DataFrame) -> dict[str, list[float]]:
    """The report's JSON form of :func:`hpmkd.curves.calibration_bins` (lists per field)."""
    return {
        "mean_predicted": table["mean_score"].tolist(),
        "observed": table["observed"].tolist(),
        "count": table["rows"].tolist(),
        "lower": table["lower"].tolist(),
        "upper": table["upper"].tolist(),
    }


def calibration_chart(inp: ChartInputs) -> Chart:
    """Reliability curves (binned mean predicted score vs observed share), models overlaid.

    Parameters
    ----------
    inp : ChartInputs
        True labels and the models' probabilities.

    Returns
    -------
    Chart
        ``stats[class][model]``: the bins' mean predicted score, observed share, row
        count and bounds.
    """
    ids, first = inp.class_views()
    fig = go.Figure()
    stats: dict[str, Any] = {}

    def add(f: go.Figure, k: int) -> Views:
        y_pos = inp.y == k
        for name, proba, color in inp.colored():
            b = _calibration_stats(curves.calibration_bins(y_pos, proba[:, k]))
            stats.setdefault(inp.class_names[k], {})[name] = b
            text = label(name)
            f.add_trace(
                go.Scatter(
                    x=rounded(b["mean_predicted"]),
                    y=rounded(b["observed"]),
                    mode="lines+markers",
                    line={"color": color},
                    name=text,
                    legendgroup=text,
                    # Marker area grows with the bin's rows: a sparse bin's point is noisy.
                    marker={
                        "size": [6 + 14 * math.sqrt(n / max(len(inp.y), 1)) for n in b["count"]]
                    },
                    customdata=[
                        [n, lo, hi]
                        for n, lo, hi in zip(b["count"], b["lower"], b["upper"], strict=True)
                    ],
                    hovertemplate="bin %{customdata[1]:.1f}–%{customdata[2]:.1f}<br>"
                    "mean score %{x:.3f}<br>observed %{y:.3f}<br>rows %{customdata[0]}"
                    "<extra>" + text + "</extra>",
                )
            )
        return [diagonal()], []

    per_class(fig, ids, first, inp.names, add)
    fig.update_layout(
        height=440,
        xaxis={"title": {"text": "mean predicted score"}, "range": [0, 1]},
        yaxis={"title": {"text": "observed share of positives"}, "range": [-0.02, 1.02]},
    )
    caption = (
        f"Test split, {N_CALIBRATION_BINS} equal-width score bins (empty bins left out; "
        f"marker size grows with the bin's rows). The dotted diagonal is perfect "
        f"calibration. {inp.class_note(first)}"
    )
    return Chart("calibration", "Calibration (reliability curve)", caption, figure_dict(fig), stats)


def confusion_chart(inp: ChartInputs) -> Chart:
    """Confusion matrices (counts, every class), one panel per model.

    Parameters
    ----------
    inp : ChartInputs
        True labels and the models' probabilities.

    Returns
    -------
    Chart
        ``stats[model]``: the matrix as nested lists (rows: true class).
    """
    n = inp.n_classes
    models = inp.colored()
    fig = make_subplots(
        rows=1,
        cols=len(models),
        subplot_titles=[label(short(name)) for name, _, _ in models],
        horizontal_spacing=0.12,
    )
    stats: dict[str, Any] = {}
    names = inp.names
    for col, (name, proba, _color) in enumerate(models, start=1):
        matrix = curves.confusion_counts(inp.y, proba)
        stats[name] = matrix.tolist()
        fig.add_trace(
            go.Heatmap(
                z=matrix.tolist(),
                x=[f"pred {c}" for c in names],
                y=[f"true {c}" for c in names],
                text=matrix.tolist(),
                texttemplate="%{text}",
                colorscale="Blues",
                showscale=False,
                hovertemplate="%{y}<br>%{x}<br>rows %{z}<extra>" + label(name) + "</extra>",
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
    """Class score of each model against the first model's, per row (every k-th row if
    too many); one panel per compared model.

    Parameters
    ----------
    inp : ChartInputs
        True labels and the probabilities of at least two models; the first is the
        reference (the x axis).

    Returns
    -------
    Chart
        ``stats``: ``rows_shown`` and ``rows_total``.

    Raises
    ------
    ValueError
        With fewer than two models.
    """
    if len(inp.models) < 2:
        raise ValueError("the agreement scatter needs a reference model and one to compare")
    ids, first = inp.class_views()
    (ref_name, ref_proba), others = inp.models[0], inp.models[1:]
    many = len(others) > 1
    n = len(inp.y)
    budget = max(MAX_SCATTER_POINTS // len(ids), 1)
    rows = curves.thin_indices(n, budget)
    fig = (
        make_subplots(rows=1, cols=len(others), subplot_titles=[label(short(m)) for m, _ in others])
        if many
        else go.Figure()
    )
    ref_text = label(ref_name)

    def add(f: go.Figure, k: int) -> Views:
        y_pos = inp.y[rows] == k
        shapes = []
        for col, (name, proba) in enumerate(others, start=1):
            place = {"row": 1, "col": col} if many else {}
            for group, mask, color in (
                ("positives", y_pos, POSITIVE_COLOR),
                ("negatives", ~y_pos, NEGATIVE_COLOR),
            ):
                f.add_trace(
                    go.Scatter(
                        x=rounded(ref_proba[rows][mask, k]),
                        y=rounded(proba[rows][mask, k]),
                        mode="markers",
                        marker={"color": color, "size": 5, "opacity": 0.6},
                        name=group,
                        legendgroup=group,
                        # None leaves the property unset: one panel keeps plotly's default.
                        showlegend=col == 1 if many else None,
                        hovertemplate=ref_text
                        + " %{x:.4f}<br>"
                        + label(name)
                        + " %{y:.4f}<extra>"
                        + group
                        + "</extra>",
                    ),
                    **place,
                )
            axis = "" if col == 1 else str(col)
            shapes.append(diagonal(f"x{axis}", f"y{axis}") if many else diagonal())
        return shapes, []

    per_class(fig, ids, first, inp.names, add)
    if many:
        # The subplot titles name the compared models; short axis titles keep narrow
        # panels from overlapping.
        fig.update_layout(height=460)
        fig.update_xaxes(title_text=f"{label(short(ref_name, 24))} score", range=[0, 1])
        fig.update_yaxes(range=[0, 1])
        fig.update_yaxes(title_text="score of the panel's model", row=1, col=1)
    else:
        fig.update_layout(
            height=460,
            xaxis={"title": {"text": f"{ref_text} score"}, "range": [0, 1]},
            yaxis={"title": {"text": f"{label(others[0][0])} score"}, "range": [0, 1]},
        )
    shown = len(rows)
    sampled = (
        f"one row in every {math.ceil(n / budget)} ({shown:,} of {n:,} rows)"
        if shown < n
        else f"all {n:,} rows"
    )
    who = f"a model and {ref_name}" if many else f"{others[0][0]} and {ref_name}"
    caption = (
        f"Test split, {sampled}. Points on the dotted diagonal are rows where {who} "
        f"give the same score. {inp.class_note(first)}"
    )
    title = f"{ref_name} vs {and_list([m for m, _ in others])} scores"
    return Chart(
        "agreement",
        title[:1].upper() + title[1:],
        caption,
        figure_dict(fig),
        {"rows_shown": shown, "rows_total": n},
    )
