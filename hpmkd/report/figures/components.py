"""Charts of the HPM components' records: selected configurations, warm-start sources,
progressive-chain stages, temperature decisions and attention weights.

The records are typed (:mod:`hpmkd.result`), but their entries (a config, a stage, a
decision) are plain mappings whose values may be missing: each builder draws the entries
that have the numbers it needs and returns ``None`` when none has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hpmkd.report.figures.base import (
    FRONT_COLOR,
    MUTED_COLOR,
    STUDENT_COLOR,
    TEACHER_COLOR,
    Chart,
    figure_dict,
    finite,
    label,
)


def selection_chart(configs: Sequence[Mapping[str, Any]]) -> Chart | None:
    """Score of each configuration the manager kept (hover: the reason).

    Parameters
    ----------
    configs : sequence of mapping
        ``SelectionRecord.configs``.

    Returns
    -------
    Chart or None
        None when no config has a numeric score.
    """
    rows = [c for c in configs if finite(c.get("score")) is not None]
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


def warm_start_chart(neighbours: Sequence[Mapping[str, Any]], metric: str) -> Chart | None:
    """Distance vs best validation metric of the similar past runs.

    Parameters
    ----------
    neighbours : sequence of mapping
        ``WarmStartRecord.neighbours``.
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
        if finite(n.get("distance")) is not None and finite(n.get("best_val_metric")) is not None
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
    stages: Sequence[Mapping[str, Any]], min_improvement: float | None, metric: str
) -> Chart | None:
    """Validation metric and gain of each progressive-chain stage.

    Parameters
    ----------
    stages : sequence of mapping
        ``ChainRecord.stages``.
    min_improvement : float or None
        The stopping threshold, drawn as a line on the gains.
    metric : str
        Name of the selection metric.

    Returns
    -------
    Chart or None
        None when no stage has a numeric ``val_metric``.
    """
    rows = [s for s in stages if finite(s.get("val_metric")) is not None]
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
    gains = [finite(s.get("gain")) for s in rows]
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


def temperature_chart(decisions: Sequence[Mapping[str, Any]], metric: str) -> Chart | None:
    """Chosen temperature per stage/candidate and the validation feedback behind it.

    Parameters
    ----------
    decisions : sequence of mapping
        ``TemperatureRecord.decisions``; ``feedback`` maps temperature (number or text) to
        the validation metric measured with it.
    metric : str
        Name of the selection metric.

    Returns
    -------
    Chart or None
        None when no decision has a numeric temperature.
    """
    rows = [d for d in decisions if finite(d.get("temperature")) is not None]
    if not rows:
        return None
    names = [label(decision_label(d, f"decision {i + 1}")) for i, d in enumerate(rows)]
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
            if finite(t) is not None and finite(v) is not None
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


def decision_label(decision: Mapping[str, Any], fallback: str = "") -> str:
    """Who a temperature decision was for: ``stage N``, the candidate, or both.

    Parameters
    ----------
    decision : mapping
        One entry of ``TemperatureRecord.decisions``.
    fallback : str
        The label when the decision names neither a stage nor a candidate.

    Returns
    -------
    str
        Plain (unescaped) text.
    """
    stage, candidate = decision.get("stage"), decision.get("candidate")
    if stage is not None and candidate:
        return f"stage {stage}: {candidate}"
    if stage is not None:
        return f"stage {stage}"
    return str(candidate) if candidate else fallback


def attention_chart(
    weights: Mapping[str, float], fused: float | None, mean: float | None, metric: str
) -> Chart | None:
    """Mean attention weight per member and fused vs plain-mean validation metric.

    Parameters
    ----------
    weights : mapping of str to float
        ``AttentionRecord.mean_weights``: member name to mean weight.
    fused, mean : float or None
        Validation metric of the fused target and of the plain mean of members.
    metric : str
        Name of the selection metric.

    Returns
    -------
    Chart or None
        None when no weight is numeric.
    """
    items = [(str(k), float(v)) for k, v in weights.items() if finite(v) is not None]
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
    bars = [(n, finite(v)) for n, v in (("fused", fused), ("plain mean", mean))]
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
