"""The self-contained interactive HTML report of a finished distillation run.

:func:`write_report` writes one HTML file that opens offline: plotly.js is inlined once,
each chart is a JSON figure drawn by ``Plotly.newPlot``, the leaderboard is sortable and
filterable with a few lines of inline JavaScript, and nothing references an external URL
(no CDN, no MathJax, no web fonts, no outgoing links).

Every number comes from the finished run's typed :class:`~hpmkd.result.RunResult`
(candidates with their real test predictions, timeline, component records, results
table). Nothing is sampled at random and nothing is a placeholder; a component that was
off, or that the method does not have, is named as such with its reason instead of being
drawn.

The report is deterministic: the same run gives the same bytes except for the single
``<p id="generated-at">`` line. Machine-readable copies of the numbers are in
``data-metric``/``data-value`` attributes of the summary cells, ``data-col``/``data-value``
attributes of the leaderboard cells and the ``<script type="application/json"
id="hpmkd-data">`` block.

Modules
-------
- :mod:`~hpmkd.report.page`: page assembly, assets (``assets/report.css``,
  ``assets/report.js``), inlined plotly.js.
- :mod:`~hpmkd.report.summary`, :mod:`~hpmkd.report.leaderboard`,
  :mod:`~hpmkd.report.evaluation`, :mod:`~hpmkd.report.components`,
  :mod:`~hpmkd.report.dataset`, :mod:`~hpmkd.report.leakage`: the sections.
- :mod:`~hpmkd.report.context`: the report being written (placed charts).
- :mod:`~hpmkd.report.fmt`: escaping, number formats, tables.
- :mod:`~hpmkd.report.figures`: plotly figure builders, shared with the Streamlit app.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

from hpmkd.report.components import ComponentState, component_state
from hpmkd.report.page import render_page
from hpmkd.result import RunResult

GENERATED_AT_PATTERN = re.compile(r'<p id="generated-at">[^<]*</p>')

__all__ = [
    "ComponentState",
    "component_state",
    "render_report",
    "strip_generated_at",
    "write_report",
]


def write_report(
    result: RunResult, path: str | Path, generated_at: _dt.datetime | None = None
) -> Path:
    """Write the interactive HTML report of a finished run.

    Parameters
    ----------
    result : RunResult
        A finished run (``AutoDistiller.result_``).
    path : str or Path
        File to write (parent folders are created).
    generated_at : datetime, optional
        Time stamp printed in the report; default now (UTC).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    text = render_report(result, generated_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def render_report(result: RunResult | None, generated_at: _dt.datetime | None = None) -> str:
    """The report of a finished run as one HTML string (see :func:`write_report`).

    Parameters
    ----------
    result : RunResult or None
        A finished run; ``None`` (a distiller that has not run) is an error.
    generated_at : datetime, optional
        Time stamp printed in the report; default now (UTC).

    Returns
    -------
    str
        The complete, self-contained HTML document.

    Raises
    ------
    RuntimeError
        When ``result`` is ``None``.
    """
    if result is None:
        raise RuntimeError("Call run() before writing a report.")
    return render_page(result, generated_at or _dt.datetime.now(_dt.UTC))


def strip_generated_at(text: str) -> str:
    """The report text without its one time-stamp line (for comparing two renders).

    Parameters
    ----------
    text : str
        A report produced by :func:`render_report`.

    Returns
    -------
    str
    """
    return GENERATED_AT_PATTERN.sub("", text)
