"""The report's chart sections: the selected student against the primary teacher on the
test split, and cost, quality and time of every candidate."""

from __future__ import annotations

import numpy as np

from hpmkd.report import figures
from hpmkd.report.context import ReportContext
from hpmkd.report.fmt import esc, fmt, table


def chart_inputs(ctx: ReportContext) -> figures.ChartInputs:
    """The test labels, and the primary teacher's and selected student's test probabilities.

    The models are named by role (``teacher``, ``student``): the section's intro names
    them, and the chart statistics are keyed by role.

    Parameters
    ----------
    ctx : ReportContext

    Returns
    -------
    ChartInputs
    """
    r = ctx.result
    return figures.ChartInputs(
        y=np.asarray(r.y_test, dtype=int),
        models=(
            ("teacher", np.asarray(r.primary_teacher.test_proba, dtype=float)),
            ("student", np.asarray(r.selected.test_proba, dtype=float)),
        ),
        class_names=tuple(str(c) for c in r.dataset.classes),
    )


def section_student_vs_teacher(ctx: ReportContext) -> str:
    """ROC, KS, score distributions, calibration, confusion and agreement charts.

    Parameters
    ----------
    ctx : ReportContext

    Returns
    -------
    str
        HTML.
    """
    r = ctx.result
    inp = chart_inputs(ctx)
    intro = (
        f"<p>Primary teacher <strong>{esc(r.primary_teacher.name)}</strong> against the "
        f"selected student <strong>{esc(r.selected.name)}</strong> on the "
        f"{len(inp.y):,} test rows.</p>"
    )
    return intro + "".join(ctx.chart(build(inp)) for build in figures.EVALUATION_CHARTS)


def section_cost(ctx: ReportContext) -> str:
    """The Pareto chart, the phase timeline and the phase durations.

    Parameters
    ----------
    ctx : ReportContext

    Returns
    -------
    str
        HTML.
    """
    r = ctx.result
    # Candidates are ranked as the run ranked them: the selection metric on validation
    # (every selection metric is higher-is-better; the test rows are read once).
    parts = [ctx.chart(figures.pareto_chart(ctx.results, f"val_{ctx.metric}"))]
    if r.timeline:
        parts.append(ctx.chart(figures.timeline_chart(r.timeline)))
    parts.append(
        "<h3>Phase durations</h3>"
        + table(
            ["phase", "seconds"],
            [[esc(k), fmt(v, "seconds")] for k, v in r.phases.items()],
        )
    )
    return "".join(parts)
