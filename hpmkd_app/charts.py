"""Plotly figures of the Compare page, built from arrays of the run's test predictions.

Each builder takes the true labels as a boolean "is class k" array and the models' scores
for class k (one-vs-rest), so binary and multiclass runs share the same charts. The numbers
(KS curves, histograms, calibration bins, confusion counts, thinning) come from
:mod:`hpmkd.curves`, shared with the HTML report. Large test sets are thinned
deterministically (every k-th point) for the browser; the statistics (AUC, KS, bins) are
always computed on every row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.metrics import roc_auc_score, roc_curve

from hpmkd import curves

TEACHER_COLOR = "#4C78A8"
STUDENT_COLOR = "#F58518"
EXTRA_COLORS = ("#54A24B", "#B279A2", "#E45756", "#72B7B2")
#: Most points drawn per curve or scatter.
MAX_POINTS = 2000


def colors_for(names: list[str]) -> dict[str, str]:
    """Teacher blue, student orange, then other colours, in the order given.

    Parameters
    ----------
    names : list of str
    """
    palette = (TEACHER_COLOR, STUDENT_COLOR, *EXTRA_COLORS)
    return {n: palette[i % len(palette)] for i, n in enumerate(names)}


def short(name: str, limit: int = 32) -> str:
    """``name`` cut to ``limit`` characters (subplot titles must not overlap).

    Parameters
    ----------
    name : str
    limit : int
    """
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 50, "r": 20, "t": 60, "b": 45},
        legend={"orientation": "h", "y": -0.2},
        template="plotly_white",
    )
    return fig


def roc_figure(is_k: np.ndarray, scores: dict[str, np.ndarray], class_label: str) -> go.Figure:
    """ROC curves of several models for class ``k`` one-vs-rest.

    Parameters
    ----------
    is_k : array of bool
        True where the row's class is k.
    scores : dict of str to array
        Model name to its class-k score.
    class_label : str
    """
    fig = go.Figure()
    colors = colors_for(list(scores))
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#999"}
        )
    )
    for name, score in scores.items():
        if is_k.all() or not is_k.any():
            continue
        fpr, tpr, _ = roc_curve(is_k, score)
        keep = curves.thin_indices(len(fpr), MAX_POINTS)
        auc = roc_auc_score(is_k, score)
        fig.add_trace(
            go.Scatter(
                x=fpr[keep],
                y=tpr[keep],
                mode="lines",
                name=f"{name} (AUC {auc:.3f})",
                line={"color": colors[name]},
            )
        )
    fig.update_xaxes(title="false positive rate", range=[0, 1])
    fig.update_yaxes(title="true positive rate", range=[0, 1])
    return _layout(fig, f"ROC curve — class {class_label} vs rest")


def ks_figure(is_k: np.ndarray, scores: dict[str, np.ndarray], class_label: str) -> go.Figure:
    """KS plot per model: CDFs of class-k and other rows' scores, the max gap marked.

    Parameters
    ----------
    is_k : array of bool
    scores : dict of str to array
    class_label : str
    """
    names = list(scores)
    fig = make_subplots(
        rows=1, cols=len(names), subplot_titles=[short(n) for n in names], shared_yaxes=True
    )
    for col, name in enumerate(names, start=1):
        c = curves.ks_curve(is_k, scores[name])
        keep = curves.thin_indices(len(c.x), MAX_POINTS, keep=[c.index])
        t = c.x[keep]
        fig.add_trace(
            go.Scatter(
                x=t,
                y=c.cdf_pos[keep],
                mode="lines",
                line={"shape": "hv", "color": STUDENT_COLOR},
                name=f"class {class_label}",
                legendgroup="pos",
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=c.cdf_neg[keep],
                mode="lines",
                line={"shape": "hv", "color": TEACHER_COLOR},
                name="other classes",
                legendgroup="neg",
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title=f"score of class {class_label}", row=1, col=col)
        if np.isnan(c.ks):  # one group is empty: no gap to mark
            continue
        at, pos_at, neg_at = c.at, float(c.cdf_pos[c.index]), float(c.cdf_neg[c.index])
        fig.add_trace(
            go.Scatter(
                x=[at, at],
                y=[pos_at, neg_at],
                mode="lines+markers",
                line={"color": "#E45756", "width": 3},
                name="max gap (KS)",
                legendgroup="ks",
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
        fig.add_annotation(
            x=at,
            y=(pos_at + neg_at) / 2,
            text=f"KS {c.ks:.3f}",
            showarrow=True,
            ax=40,
            ay=0,
            row=1,
            col=col,
        )
    fig.update_yaxes(title="share of rows with score ≤ x", row=1, col=1)
    return _layout(fig, f"KS plot — score CDFs of class {class_label} vs the rest")


def distribution_figure(
    is_k: np.ndarray, scores: dict[str, np.ndarray], class_label: str, bins: int = 25
) -> go.Figure:
    """Histograms of each model's class-k score, split by true class (shares per group).

    Parameters
    ----------
    is_k : array of bool
    scores : dict of str to array
    class_label : str
    bins : int
    """
    names = list(scores)
    fig = make_subplots(
        rows=1, cols=len(names), subplot_titles=[short(n) for n in names], shared_yaxes=True
    )
    for col, name in enumerate(names, start=1):
        h = curves.score_histogram(is_k, scores[name], bins)
        for share, label, color in (
            (h.share_pos, f"class {class_label}", STUDENT_COLOR),
            (h.share_neg, "other classes", TEACHER_COLOR),
        ):
            fig.add_trace(
                go.Bar(
                    x=h.centers,
                    y=share,
                    name=label,
                    marker_color=color,
                    opacity=0.6,
                    legendgroup=label,
                    showlegend=col == 1,
                    width=1.0 / bins,
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title=f"score of class {class_label}", range=[0, 1], row=1, col=col)
    fig.update_layout(barmode="overlay")
    fig.update_yaxes(title="share of rows", row=1, col=1)
    return _layout(fig, "Score distributions on the test rows")


def calibration_figure(
    is_k: np.ndarray, scores: dict[str, np.ndarray], class_label: str
) -> go.Figure:
    """Reliability diagram: observed share of class k against the mean score per bin.

    Parameters
    ----------
    is_k : array of bool
    scores : dict of str to array
    class_label : str
    """
    fig = go.Figure()
    colors = colors_for(list(scores))
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfectly calibrated",
            line={"dash": "dot", "color": "#999"},
        )
    )
    for name, score in scores.items():
        table = curves.calibration_bins(is_k, score)
        fig.add_trace(
            go.Scatter(
                x=table["mean_score"],
                y=table["observed"],
                mode="lines+markers",
                name=name,
                line={"color": colors[name]},
                customdata=table["rows"],
                hovertemplate="mean score %{x:.3f}<br>observed %{y:.3f}<br>%{customdata} rows",
            )
        )
    fig.update_xaxes(title=f"mean score of class {class_label} (10 bins)", range=[0, 1])
    fig.update_yaxes(title=f"observed share of class {class_label}", range=[0, 1])
    return _layout(fig, "Calibration")


def confusion_figure(
    y_true: np.ndarray, probas: dict[str, np.ndarray], labels: list[str]
) -> go.Figure:
    """Confusion matrices (arg-max predictions, all classes) side by side.

    Parameters
    ----------
    y_true : array of int
        Class indices.
    probas : dict of str to array of shape (n, n_classes)
    labels : list of str
        Class labels in index order.
    """
    names = list(probas)
    fig = make_subplots(
        rows=1,
        cols=len(names),
        subplot_titles=[short(n, 26) for n in names],
        horizontal_spacing=0.12,
    )
    for col, name in enumerate(names, start=1):
        cm = curves.confusion_counts(y_true, probas[name])
        fig.add_trace(
            go.Heatmap(
                z=cm,
                x=[f"pred {c}" for c in labels],
                y=[f"true {c}" for c in labels],
                text=cm,
                texttemplate="%{text}",
                colorscale="Blues",
                showscale=False,
                hovertemplate="%{y}, %{x}: %{z} rows<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    return _layout(fig, "Confusion matrices on the test rows", height=360)


def scatter_figure(
    teacher_score: np.ndarray,
    student_score: np.ndarray,
    is_k: np.ndarray,
    teacher_name: str,
    student_name: str,
    class_label: str,
) -> go.Figure:
    """Teacher vs student class-k probability per test row, coloured by true class.

    Parameters
    ----------
    teacher_score, student_score : array of float
    is_k : array of bool
    teacher_name, student_name, class_label : str
    """
    keep = curves.thin_indices(len(teacher_score), MAX_POINTS)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="agreement",
            line={"dash": "dot", "color": "#999"},
        )
    )
    for mask, label, color in (
        (is_k, f"class {class_label}", STUDENT_COLOR),
        (~is_k, "other classes", TEACHER_COLOR),
    ):
        sel = keep[mask[keep]]
        fig.add_trace(
            go.Scattergl(
                x=teacher_score[sel],
                y=student_score[sel],
                mode="markers",
                name=label,
                marker={"color": color, "size": 6, "opacity": 0.6},
            )
        )
    note = "" if len(keep) == len(teacher_score) else f" ({len(keep):,} evenly spaced rows)"
    fig.update_xaxes(title=f"{teacher_name}: P(class {class_label})", range=[0, 1])
    fig.update_yaxes(title=f"{student_name}: P(class {class_label})", range=[0, 1])
    return _layout(fig, f"Teacher vs student probabilities{note}")


def pareto_figure(
    frame: pd.DataFrame,
    cost: str,
    class_label: str,
    teacher_point: tuple[float, float] | None = None,
) -> go.Figure:
    """Test KS against size or latency of every student, the Pareto front drawn.

    Parameters
    ----------
    frame : DataFrame
        From :func:`hpmkd_app.compare.candidates_frame`.
    cost : {"size_bytes", "latency_ms_1k"}
    class_label : str
    teacher_point : (cost, ks), optional
        The teacher, drawn as a star for reference.
    """
    flag = "pareto_size" if cost == "size_bytes" else "pareto_latency"
    title = "Size" if cost == "size_bytes" else "Latency"
    axis = "size (bytes, log)" if cost == "size_bytes" else "latency per 1k rows (ms, log)"
    fig = go.Figure()
    data = frame[~np.isnan(curves.known_cost(frame[cost]))]  # unknown costs not drawn
    fig.add_trace(
        go.Scatter(
            x=data[cost],
            y=data["test_ks"],
            mode="markers",
            name="candidates",
            text=data["name"],
            marker={"color": "#9ecae9", "size": 9},
            hovertemplate="%{text}<br>%{x}<br>KS %{y:.3f}<extra></extra>",
        )
    )
    front = data[data[flag]].sort_values(cost)
    fig.add_trace(
        go.Scatter(
            x=front[cost],
            y=front["test_ks"],
            mode="lines+markers",
            name="Pareto front",
            line={"color": STUDENT_COLOR, "shape": "hv"},
            marker={"size": 10},
            text=front["name"],
            hovertemplate="%{text}<br>%{x}<br>KS %{y:.3f}<extra></extra>",
        )
    )
    best = data[data["selected"]]
    if not best.empty:
        fig.add_trace(
            go.Scatter(
                x=best[cost],
                y=best["test_ks"],
                mode="markers",
                name="selected (by validation)",
                marker={"symbol": "diamond", "size": 14, "color": "#E45756"},
            )
        )
    if teacher_point and teacher_point[0] > 0:
        fig.add_trace(
            go.Scatter(
                x=[teacher_point[0]],
                y=[teacher_point[1]],
                mode="markers",
                name="teacher",
                marker={"symbol": "star", "size": 16, "color": TEACHER_COLOR},
            )
        )
    fig.update_xaxes(title=axis, type="log")
    fig.update_yaxes(title=f"test KS (class {class_label} vs rest)")
    return _layout(fig, f"{title} vs test KS")


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
        subplot_titles=[f"{short(n)}<br><sup>{methods[n]}</sup>" for n in names],
    )
    colors = colors_for(names)
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
    return _layout(
        fig,
        "Feature importance on a fixed sample of test rows",
        height=max(380, 22 * len(order) + 120),
    )
