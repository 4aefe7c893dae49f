"""Formatting helpers of the HTML report: escaping, number formats, tables, safe JSON.

Every helper that returns HTML escapes what it is given, except the cells of
:func:`kv_table` and :func:`table`, which are HTML already (built with these helpers).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hpmkd.report.figures.base import finite
from hpmkd.results_table import to_jsonable


def esc(value: Any) -> str:
    """``value`` as text, escaped for HTML text and attribute values.

    Parameters
    ----------
    value : object

    Returns
    -------
    str
    """
    return html.escape(str(value), quote=True)


#: Display format of each number kind of :func:`fmt`.
_FORMATS = {
    "metric": "{:.4f}",
    "signed": "{:+.4f}",
    "ms": "{:.2f}",
    "seconds": "{:.3f}",
    "ratio": "{:.2f}×",
}


def fmt(value: Any, kind: str = "metric") -> str:
    """A number as display text; ``n/a`` when it is missing or not finite.

    Parameters
    ----------
    value : object
    kind : {"metric", "signed", "bytes", "ms", "seconds", "ratio", "int", "auto", "general"}
        ``metric`` 4 decimals, ``signed`` with a sign, ``bytes``/``int`` whole with
        thousands separators, ``auto`` whole numbers whole and others with 4 decimals,
        ``general`` as short as exact (temperatures, alphas).

    Returns
    -------
    str
    """
    v = finite(value)
    if v is None:
        return "n/a"
    if kind in _FORMATS:
        return _FORMATS[kind].format(v)
    if kind in ("bytes", "int"):
        return f"{int(v):,}"
    if kind == "auto":
        return f"{int(v):,}" if v.is_integer() and abs(v) < 1e15 else f"{v:.4f}"
    return f"{v:g}"


def data_value(value: Any) -> str:
    """The exact machine-readable form of a number (``data-value`` attributes).

    Parameters
    ----------
    value : object

    Returns
    -------
    str
        ``repr`` of the float; empty when the value is missing or not finite.
    """
    v = finite(value)
    return "" if v is None else repr(v)


def safe_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element.

    Parameters
    ----------
    value : object
        Plain data (numpy values and NaN are converted).

    Returns
    -------
    str
        Compact JSON in which ``<``, ``>``, ``&`` and the line separators are escaped, so
        no value can close the script element.
    """
    text = json.dumps(
        to_jsonable(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def kv_table(rows: Sequence[tuple[str, str]], table_id: str = "") -> str:
    """A two-column table of (label, value) rows; both are HTML already.

    Parameters
    ----------
    rows : sequence of (str, str)
    table_id : str, optional

    Returns
    -------
    str
    """
    ident = f' id="{table_id}"' if table_id else ""
    body = "".join(f"<tr><th scope='row'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='kv'{ident}><tbody>{body}</tbody></table>"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "grid") -> str:
    """A table with escaped column headers; cells are HTML already.

    Parameters
    ----------
    headers : sequence of str
    rows : sequence of sequence of str
    cls : str
        CSS class.

    Returns
    -------
    str
    """
    head = "".join(f"<th scope='col'>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def plain(value: Any, float_kind: str = "metric") -> str:
    """Escaped display text of a plain-data value.

    Parameters
    ----------
    value : object
        ``None``, a boolean, a number, a string, or a mapping/sequence (shown as JSON).
    float_kind : str
        :func:`fmt` kind of floats.

    Returns
    -------
    str
    """
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return esc(f"{int(value):,}")
    if isinstance(value, (float, np.floating)):
        return fmt(value, float_kind) if math.isfinite(float(value)) else "n/a"
    if isinstance(value, (Mapping, list, tuple)):
        data = dict(value) if isinstance(value, Mapping) else value
        return esc(json.dumps(to_jsonable(data), sort_keys=True, ensure_ascii=False))
    return esc(value)


def cell(key: str, value: Any) -> str:
    """Table cell text: gains signed, temperatures and alphas as given, other floats with
    4 decimals.

    Parameters
    ----------
    key : str
        The column.
    value : object

    Returns
    -------
    str
    """
    if key == "gain":
        return fmt(value, "signed")
    return plain(value, "general" if key in ("temperature", "alpha") else "metric")


def record_table(items: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str:
    """A table of entries (configs, stages, neighbours): ``keys`` first, then any other
    field an entry has (entries are plain mappings: the engine may record more).

    Parameters
    ----------
    items : sequence of mapping
    keys : sequence of str

    Returns
    -------
    str
    """
    columns = list(keys)
    for item in items:
        columns += [k for k in item if k not in columns]
    return table(
        columns, [[cell(k, item[k]) if k in item else "" for k in columns] for item in items]
    )
