"""Page assembly: the sections in order, the navigation, the data block, the inlined
plotly.js, the stylesheet and script (package data files read with ``importlib.resources``).
"""

from __future__ import annotations

import datetime as _dt
import re
from functools import cache
from importlib import resources
from typing import Any

from hpmkd.report.components import section_components
from hpmkd.report.context import ReportContext
from hpmkd.report.dataset import section_configuration, section_dataset
from hpmkd.report.evaluation import section_cost, section_student_vs_teacher
from hpmkd.report.fmt import esc, safe_json
from hpmkd.report.leaderboard import leaderboard_records, section_leaderboard
from hpmkd.report.leakage import section_leakage
from hpmkd.report.summary import section_summary
from hpmkd.result import RunResult


@cache
def asset(name: str) -> str:
    """The text of a file of ``hpmkd/report/assets`` (``report.css``, ``report.js``).

    Parameters
    ----------
    name : str

    Returns
    -------
    str
    """
    return resources.files("hpmkd.report").joinpath("assets", name).read_text(encoding="utf-8")


def plotly_js() -> tuple[str, str]:
    """The plotly.js bundle, safe inside a ``<script>`` element, and its version.

    Returns
    -------
    (str, str)
    """
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    match = re.search(r"plotly\.js v([0-9][^\s*]*)", js[:500])
    # A literal closing tag would end the <script> element early; plotly.js has none, but
    # guard anyway.
    return js.replace("</script", "<\\/script"), match.group(1) if match else "unknown"


def plotly_template() -> dict[str, Any]:
    """The one template every chart of the page is drawn with (added in the browser).

    Returns
    -------
    dict
    """
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()


def render_page(result: RunResult, generated_at: _dt.datetime) -> str:
    """The complete, self-contained HTML document of a finished run.

    Parameters
    ----------
    result : RunResult
    generated_at : datetime
        Time stamp printed in the report (the only line that differs between renders).

    Returns
    -------
    str
    """
    ctx = ReportContext.of(result)
    js, js_version = plotly_js()
    # Evaluated in page order: the charts the sections place appear in that order.
    sections = [
        ("summary", "Summary", section_summary(ctx)),
        ("leakage", "Leakage check", section_leakage(ctx)),
        ("leaderboard", "Leaderboard", section_leaderboard(ctx)),
        ("student-vs-teacher", "Student vs teacher", section_student_vs_teacher(ctx)),
        ("cost", "Cost, quality and time", section_cost(ctx)),
        ("components", "HPM components", section_components(ctx)),
        ("dataset", "Dataset", section_dataset(ctx)),
        ("configuration", "Configuration and versions", section_configuration(ctx, js_version)),
    ]
    nav = "".join(f"<a href='#sec-{sid}'>{esc(title)}</a>" for sid, title, _ in sections)
    body = "".join(
        f"<section id='sec-{sid}'><h2>{esc(title)}</h2>{content}</section>"
        for sid, title, content in sections
    )
    data = {
        "summary": result.summary(),
        "leaderboard": leaderboard_records(ctx.results),
        "charts": ctx.chart_stats(),
        "components": ctx.component_states,
        "report": {"plotly_js": js_version},
    }
    stamp = generated_at.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = f"hpmkd report: {result.dataset.name}"
    return "".join(
        [
            "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>\n",
            f"<title>{esc(title)}</title>\n<style>{asset('report.css')}</style>\n",
            "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n",
            f"<script id='plotly-js'>{js}</script>\n</head>\n<body>\n",
            f"<header><h1>{esc(title)}</h1>\n",
            f'<p id="generated-at">Generated {stamp}</p>\n',
            f"<nav>{nav}</nav></header>\n<main>\n{body}\n</main>\n",
            f"<script type='application/json' id='hpmkd-data'>{safe_json(data)}</script>\n",
            "<script type='application/json' id='hpmkd-plotly-template'>"
            f"{safe_json(plotly_template())}</script>\n",
            ctx.figure_scripts(),
            f"\n<script>{asset('report.js')}</script>\n</body>\n</html>\n",
        ]
    )
