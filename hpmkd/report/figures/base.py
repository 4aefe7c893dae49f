"""What every figure builder shares: the :class:`Chart` record, the palette, the inputs of
the evaluation charts and the per-class dropdown.

A figure is kept as plain JSON data (``{"data": [...], "layout": {...}}``) without a
template: the HTML report adds one shared template in the browser, the app turns the dict
into a ``plotly.graph_objects.Figure`` with its own layout (:mod:`hpmkd_app.charts`).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from hpmkd import curves

#: Most points drawn per curve (ROC, KS); statistics always use every row.
MAX_CURVE_POINTS = 1000
#: Most rows drawn in a scatter, over all class views.
MAX_SCATTER_POINTS = 5000
N_CALIBRATION_BINS = curves.N_CALIBRATION_BINS
N_HISTOGRAM_BINS = 20

#: Model colours, in the order models are given: the first (the teacher) blue, the second
#: (the selected student) orange, then the others. Red is left out: it marks positives
#: and Pareto fronts.
MODEL_COLORS = (
    "#4c72b0",
    "#dd8452",
    "#55a868",
    "#8172b3",
    "#937860",
    "#da8bc3",
    "#8c8c8c",
    "#ccb974",
    "#64b5cd",
)
TEACHER_COLOR = MODEL_COLORS[0]
STUDENT_COLOR = MODEL_COLORS[1]
BASELINE_COLOR = MODEL_COLORS[2]
POSITIVE_COLOR = "#c44e52"
NEGATIVE_COLOR = MODEL_COLORS[0]
MUTED_COLOR = "#9aa0a6"
FRONT_COLOR = POSITIVE_COLOR


@dataclass
class Chart:
    """One chart: a figure and the numbers it shows.

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


def model_colors(names: Sequence[str]) -> dict[str, str]:
    """The palette colour of each model, by position (cycling past the last colour).

    Parameters
    ----------
    names : sequence of str

    Returns
    -------
    dict of str to str
    """
    return {n: MODEL_COLORS[i % len(MODEL_COLORS)] for i, n in enumerate(names)}


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


def short(name: str, limit: int = 32) -> str:
    """``name`` cut to ``limit`` characters (side-by-side subplot titles must not overlap).

    Parameters
    ----------
    name : str
    limit : int

    Returns
    -------
    str
    """
    return name if len(name) <= limit else name[: limit - 1] + "…"


def and_list(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``.

    Parameters
    ----------
    names : sequence of str

    Returns
    -------
    str
    """
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


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


def rounded(values: Any, digits: int = 6) -> list[float]:
    """Drawn coordinates rounded (never reported numbers): keeps the report small.

    Parameters
    ----------
    values : array-like of float
    digits : int

    Returns
    -------
    list of float
    """
    return [float(v) for v in np.round(np.asarray(values, dtype=float), digits)]


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, boolean, not a number, NaN, inf).

    Records are plain data: a value may be missing or of another kind, and a flag is
    never a number.

    Parameters
    ----------
    value : object

    Returns
    -------
    float or None
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def diagonal(xref: str = "", yref: str = "") -> dict[str, Any]:
    """The dotted ``y = x`` line (chance, perfect calibration, agreement).

    Parameters
    ----------
    xref, yref : str
        Axes of a subplot (``"x2"``, ``"y2"``); empty for the only plot.

    Returns
    -------
    dict
        A plotly layout shape.
    """
    refs = {"xref": xref, "yref": yref} if xref else {}
    return {
        **refs,
        "type": "line",
        "x0": 0,
        "y0": 0,
        "x1": 1,
        "y1": 1,
        "line": {"color": MUTED_COLOR, "dash": "dot"},
    }


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ChartInputs:
    """The real predictions the evaluation charts are drawn from (one split's rows).

    Attributes
    ----------
    y : ndarray of int
        True class indices of the rows.
    models : tuple of (str, ndarray)
        Display name (unescaped) and class probabilities, shape (n_rows, n_classes), of
        each model drawn, in the order they are coloured. The report passes
        ``("teacher", ...)`` then ``("student", ...)``; the app any models it shows. The
        first model is the reference of the agreement scatter.
    class_names : tuple of str
        Class labels in column order (unescaped).
    views : tuple of int, optional
        The classes whose one-vs-rest view is drawn, the first shown first. Default: the
        positive class of a binary target, every class otherwise, shown first the class
        with the fewest rows (:func:`hpmkd.curves.default_class`).
    """

    y: np.ndarray
    models: tuple[tuple[str, np.ndarray], ...]
    class_names: tuple[str, ...]
    views: tuple[int, ...] | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes (probability columns)."""
        return len(self.class_names)

    @property
    def names(self) -> list[str]:
        """Escaped class labels for plotly text."""
        return [label(c) for c in self.class_names]

    @property
    def model_names(self) -> list[str]:
        """Display names of the models (unescaped)."""
        return [name for name, _ in self.models]

    def class_views(self) -> tuple[list[int], int]:
        """The classes drawn and the one shown first."""
        if self.views:
            return list(self.views), self.views[0]
        return curves.score_classes(self.n_classes), curves.default_class(self.y, self.n_classes)

    def colored(self) -> list[tuple[str, np.ndarray, str]]:
        """``(name, probabilities, colour)`` of each model."""
        colors = model_colors(self.model_names)
        return [(name, proba, colors[name]) for name, proba in self.models]

    def class_note(self, first: int) -> str:
        """Caption sentence saying which score the per-class charts show."""
        names = self.names
        if self.n_classes == 2:
            return f"Score = probability of class {names[1]} (the positive class)."
        ids, _ = self.class_views()
        if len(ids) == 1:
            return f"One-vs-rest: score = probability of class {names[first]}."
        return (
            f"One-vs-rest: score = probability of the chosen class; use the dropdown to switch "
            f"class. Shown first: class {names[first]}, the class with the fewest test rows."
        )


# --------------------------------------------------------------------------- per class
Views = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def per_class(
    fig: go.Figure,
    class_ids: list[int],
    first: int,
    class_names: list[str],
    add: Callable[[go.Figure, int], Views],
) -> go.Figure:
    """Add one view per class (traces, shapes, annotations) and a dropdown between them.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        The figure (its own annotations, such as subplot titles, are kept in every view).
    class_ids : list of int
        Classes to draw; a single class gets no dropdown.
    first : int
        The class shown first.
    class_names : list of str
        Escaped class labels.
    add : callable
        ``add(fig, k)`` adds class ``k``'s traces and returns its shapes and annotations.

    Returns
    -------
    plotly.graph_objects.Figure
        ``fig``.
    """
    base_annotations = [a.to_plotly_json() for a in fig.layout.annotations]
    owner: list[int] = []
    views: dict[int, Views] = {}
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
