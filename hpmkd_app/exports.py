"""Bytes for the Export page's downloads and the usage snippet."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib

from hpmkd import AutoDistiller, results_table
from hpmkd.extras import require


def model_bytes(model: Any) -> bytes:
    """The fitted model as a joblib pickle (loads where hpmkd is not installed).

    Parameters
    ----------
    model : object
        A student ``Pipeline`` (scikit-learn and LightGBM classes only).
    """
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def results_csv(distiller: AutoDistiller) -> bytes:
    """``results.csv`` as ``hpmkd distill`` writes it: one row per candidate, the teachers
    and the baseline, without the clocks (:func:`timings_csv`), so the same inputs give
    the same bytes.

    Parameters
    ----------
    distiller : AutoDistiller
    """
    return results_table.results_csv(distiller.results_df)


def timings_csv(distiller: AutoDistiller) -> bytes:
    """``timings.csv`` as ``hpmkd distill`` writes it: each row's training seconds,
    latency and whether the cache served it, by name.

    Parameters
    ----------
    distiller : AutoDistiller
    """
    return results_table.timings_csv(distiller.results_df)


def summary_json(distiller: AutoDistiller) -> bytes:
    """:meth:`~hpmkd.AutoDistiller.summary` as indented JSON.

    Parameters
    ----------
    distiller : AutoDistiller
    """
    return json.dumps(distiller.summary(), indent=2).encode()


def report_html(distiller: AutoDistiller) -> bytes:
    """The self-contained HTML report (``distiller.generate_report``).

    Parameters
    ----------
    distiller : AutoDistiller

    Raises
    ------
    ImportError
        The report module is not available in this installation.
    """
    with tempfile.TemporaryDirectory(prefix="hpmkd-report-") as tmp:
        path = Path(tmp) / "report.html"
        written = distiller.generate_report(path)
        return Path(written or path).read_bytes()


def report_missing() -> str | None:
    """Why the HTML report cannot be built in this installation (``None`` when it can)."""
    try:
        require("plotly", "The HTML report")
    except ImportError as exc:
        return str(exc)
    return None


def report_download(distiller: AutoDistiller) -> Callable[[], bytes]:
    """The HTML report as deferred ``st.download_button`` data: one click builds it (in
    Streamlit's download thread, not in the page script) and downloads it; a second
    click on the same page serves the bytes already built.

    Parameters
    ----------
    distiller : AutoDistiller
    """
    built: list[bytes] = []

    def build() -> bytes:
        if not built:
            built.append(report_html(distiller))
        return built[0]

    return build


def safe_filename(name: str) -> str:
    """A file-name-safe version of a candidate name.

    Parameters
    ----------
    name : str
    """
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    while "__" in keep:
        keep = keep.replace("__", "_")
    return keep.strip("_.") or "model"


def code_snippet(
    filename: str, features: list[str], categorical: list[str], classes: list[Any],
    target: str,
) -> str:
    """Python that loads the downloaded student and predicts on a DataFrame.

    Parameters
    ----------
    filename : str
        The downloaded file's name.
    features : list of str
        Columns the student reads, in order.
    categorical : list of str
        Text columns (converted to ``str`` as during training).
    classes : list
        The target's classes, in ``predict_proba`` column order.
    target : str
    """
    lines = [
        "import joblib",
        "import pandas as pd",
        "",
        f'model = joblib.load("{filename}")  # a scikit-learn Pipeline',
        *_list_lines("features", features),
        "",
        'df = pd.read_csv("new_rows.csv")  # any DataFrame with these columns',
        "X = df[features].copy()",
    ]
    if categorical:
        lines += [
            "# Text columns as strings (missing stay missing), as during training.",
            *_list_lines("text_columns", categorical),
            "for col in text_columns:",
            "    X[col] = X[col].where(X[col].isna(), X[col].astype(str)).astype(object)",
        ]
    lines += [
        "",
        f"proba = model.predict_proba(X)  # columns: classes {[str(c) for c in classes]}",
        f"predicted_{_identifier(target)} = model.predict(X)",
    ]
    return "\n".join(lines)


def _list_lines(name: str, values: list[str], width: int = 88) -> list[str]:
    """``name = [...]`` wrapped to ``width`` characters."""
    one = f"{name} = {values!r}"
    if len(one) <= width:
        return [one]
    lines, current = [f"{name} = ["], "    "
    for value in values:
        item = f"{value!r}, "
        if len(current) + len(item) > width and current.strip():
            lines.append(current.rstrip())
            current = "    "
        current += item
    if current.strip():
        lines.append(current.rstrip())
    lines.append("]")
    return lines


def _identifier(name: str) -> str:
    ident = "".join(ch if ch.isalnum() else "_" for ch in str(name)).strip("_").lower()
    return ident or "class"
