"""The report's leaderboard: one row per candidate, teacher and twin (``results_df``),
sortable and filterable in the browser by ``report.js``.

Every cell carries ``data-col`` and ``data-value`` (the exact number, or the text), which
the sort reads and tests check against ``results_df``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hpmkd.report.context import ReportContext
from hpmkd.report.fmt import data_value, esc, finite, fmt
from hpmkd.results_table import SPLIT_METRICS, to_jsonable

#: (column of ``results_df``, header, kind); kind ``text`` and ``bool`` sort as text, the
#: others as numbers and are formatted by :func:`hpmkd.report.fmt.fmt`.
LEADERBOARD_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("name", "name", "text"),
    ("source", "source", "text"),
    ("family", "family", "text"),
    ("capacity", "capacity", "text"),
    ("params", "params", "text"),
    ("temperature", "T", "float"),
    ("alpha", "alpha", "float"),
    ("trial", "trial", "int"),
    *((f"val_{m}", f"val {m}", "metric") for m in SPLIT_METRICS),
    *((f"test_{m}", f"test {m}", "metric") for m in SPLIT_METRICS),
    ("fit_seconds", "fit s", "seconds"),
    ("size_bytes", "size B", "bytes"),
    ("latency_ms_1k", "ms/1k", "ms"),
    ("from_cache", "from cache", "bool"),
)


def leaderboard_records(results: pd.DataFrame) -> list[dict[str, Any]]:
    """``results_df`` as JSON-friendly records (NaN as ``None``) for the data block.

    Parameters
    ----------
    results : DataFrame

    Returns
    -------
    list of dict
    """
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in to_jsonable(results.to_dict(orient="records"))
    ]


def _cell(col: str, kind: str, value: Any) -> str:
    if kind == "text":
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        text = "" if missing else str(value)
        return f"<td data-col='{col}' data-value='{esc(text)}'>{esc(text)}</td>"
    if kind == "bool":
        flag = bool(value)
        shown = "yes" if flag else "no"
        return f"<td data-col='{col}' data-value='{str(flag).lower()}'>{shown}</td>"
    shown = fmt(value, {"float": "general", "int": "int"}.get(kind, kind))
    if kind == "bytes" and finite(value) is not None and float(value) < 0:
        shown, value = "n/a", None  # -1 is the "unknown size" sentinel
    return f"<td data-col='{col}' data-value='{data_value(value)}'>{shown}</td>"


def section_leaderboard(ctx: ReportContext) -> str:
    """The sortable, filterable table of every model of the run.

    Parameters
    ----------
    ctx : ReportContext

    Returns
    -------
    str
        HTML.
    """
    heads = []
    for col, title, kind in LEADERBOARD_COLUMNS:
        numeric = kind not in ("text", "bool")
        heads.append(
            f"<th scope='col' tabindex='0' data-col='{col}' "
            f"data-type='{'num' if numeric else 'text'}' title='click to sort'>"
            f"{esc(title)}</th>"
        )
    rows = []
    for i, row in enumerate(ctx.results.to_dict(orient="records")):
        cells = "".join(_cell(col, kind, row.get(col)) for col, _title, kind in LEADERBOARD_COLUMNS)
        selected = bool(row.get("selected"))
        cls = " class='selected'" if selected else ""
        rows.append(
            f"<tr data-row='{i}' data-source='{esc(row.get('source', ''))}' "
            f"data-selected='{str(selected).lower()}'{cls}>{cells}</tr>"
        )
    return (
        "<p>Every candidate, the teacher(s) and the same-size hard-label baseline, as in "
        "<code>results_df</code>. Click a column header to sort; type to filter rows. The "
        f"selected student is highlighted. Selection used validation {esc(ctx.metric)}; "
        "test figures exist only for the selected student, the teacher(s) and the twin "
        "(the test rows are read once, so no candidate was ranked on them)."
        "</p><p class='filter'><label for='leaderboard-filter'>Filter rows: </label>"
        "<input type='search' id='leaderboard-filter' placeholder='e.g. lgbm, chain, "
        "T=2' autocomplete='off'> <span id='leaderboard-count'></span></p>"
        f"<div class='scroll'><table class='grid' id='leaderboard'><thead><tr>"
        f"{''.join(heads)}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
