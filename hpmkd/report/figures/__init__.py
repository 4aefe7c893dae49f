"""Plotly figure builders shared by the HTML report and the Streamlit app.

One set of builders and one palette: a chart of a run shows the same numbers and colours in
the report (teacher against the selected student) and on the app's Compare page (whichever
models the user picks). Every builder returns a :class:`Chart`: the figure as plain JSON
data without a template, a title, a caption and ``stats``, the machine-readable numbers
the chart shows.

The numbers (KS curves, histograms, calibration bins, confusion counts, Pareto fronts,
thinning) come from :mod:`hpmkd.curves`. Curves are computed on every row; only the number
of *drawn* points is thinned (deterministically: every k-th point, always keeping the end
points and the marked point), so a large test split gives a small figure and the same run
gives the same figure.

Class scores: for a binary target the score is the probability of the second class
(``classes[1]``), as in :mod:`hpmkd.metrics`. For three or more classes the per-class
charts (ROC, KS, score distributions, calibration, agreement scatter) are one-vs-rest, one
view per class behind a dropdown (or only the classes named in
:attr:`ChartInputs.views`); the view shown first is by default the class with the fewest
rows (ties: the first in class order), because the rare class is the one whose separation
is hardest and most often the one of interest.

Modules
-------
- :mod:`~hpmkd.report.figures.base`: :class:`Chart`, :class:`ChartInputs`, the palette.
- :mod:`~hpmkd.report.figures.separation`: ROC, KS, score distributions.
- :mod:`~hpmkd.report.figures.probabilities`: calibration, confusion, agreement scatter.
- :mod:`~hpmkd.report.figures.cost`: Pareto fronts, phase timeline.
- :mod:`~hpmkd.report.figures.components`: the HPM components' records.
"""

from hpmkd.report.figures.base import (
    BASELINE_COLOR,
    FRONT_COLOR,
    MAX_CURVE_POINTS,
    MAX_SCATTER_POINTS,
    MODEL_COLORS,
    MUTED_COLOR,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    STUDENT_COLOR,
    TEACHER_COLOR,
    Chart,
    ChartInputs,
    figure_dict,
    label,
    model_colors,
    short,
)
from hpmkd.report.figures.components import (
    attention_chart,
    chain_chart,
    decision_label,
    selection_chart,
    temperature_chart,
    warm_start_chart,
)
from hpmkd.report.figures.cost import pareto_chart, timeline_chart
from hpmkd.report.figures.probabilities import (
    agreement_scatter_chart,
    calibration_chart,
    confusion_chart,
)
from hpmkd.report.figures.separation import ks_chart, roc_chart, score_distribution_chart

#: The evaluation charts of a set of models on one split, in the order they are shown.
EVALUATION_CHARTS = (
    roc_chart,
    ks_chart,
    score_distribution_chart,
    calibration_chart,
    confusion_chart,
    agreement_scatter_chart,
)

__all__ = [
    "BASELINE_COLOR",
    "EVALUATION_CHARTS",
    "FRONT_COLOR",
    "MAX_CURVE_POINTS",
    "MAX_SCATTER_POINTS",
    "MODEL_COLORS",
    "MUTED_COLOR",
    "NEGATIVE_COLOR",
    "POSITIVE_COLOR",
    "STUDENT_COLOR",
    "TEACHER_COLOR",
    "Chart",
    "ChartInputs",
    "agreement_scatter_chart",
    "attention_chart",
    "calibration_chart",
    "chain_chart",
    "confusion_chart",
    "decision_label",
    "figure_dict",
    "ks_chart",
    "label",
    "model_colors",
    "pareto_chart",
    "roc_chart",
    "score_distribution_chart",
    "selection_chart",
    "short",
    "temperature_chart",
    "timeline_chart",
    "warm_start_chart",
]
