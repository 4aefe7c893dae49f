"""Uploaded and sample tables: parsing, previews, column types and class balance.

Parsing goes through :func:`hpmkd.io.read_table_bytes`, so the app and the engine accept
exactly the same files and raise the same readable errors. Tables are identified by the
SHA-256 of their bytes (computed here with :mod:`hashlib`; Streamlit's cache never hashes
a big DataFrame).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from hpmkd.errors import HPMKDInputError
from hpmkd.io import read_table_bytes
from hpmkd_app.paths import SAMPLE_CSV

#: Rows scanned for distinct counts in the column summary (keeps big uploads fast).
SUMMARY_SAMPLE_ROWS = 100_000
#: Most distinct values a target column may have (the engine's limit).
MAX_CLASSES = 50


@dataclass
class LoadedTable:
    """A table the user loaded, kept in session state (plain data only).

    Attributes
    ----------
    frame : DataFrame
        The parsed table.
    name : str
        File name shown in the UI and used as the dataset name.
    digest : str
        SHA-256 of the file's bytes: equal digests mean equal uploads.
    n_bytes : int
        Size of the file.
    source : {"upload", "sample"}
    columns : DataFrame
        One row per column: dtype, kind, missing values, distinct values.
    raw : bytes
        The file's bytes as uploaded (empty when the table was made in memory): the
        session store keeps these, and re-parses them on restore, so a restored table is
        the very table that was loaded (:mod:`hpmkd_app.session_codec`).
    """

    frame: pd.DataFrame
    name: str
    digest: str
    n_bytes: int
    source: str
    columns: pd.DataFrame = field(default_factory=pd.DataFrame)
    raw: bytes = field(default=b"", repr=False)

    @property
    def n_rows(self) -> int:
        """Rows in the table."""
        return len(self.frame)


def digest_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data``.

    Parameters
    ----------
    data : bytes
    """
    return hashlib.sha256(data).hexdigest()


def load_table_bytes(data: bytes, filename: str, source: str = "upload") -> LoadedTable:
    """Parse an uploaded CSV or Parquet file.

    Parameters
    ----------
    data : bytes
        The file's content.
    filename : str
        Its name; ``.parquet``/``.pq`` are read as Parquet, anything else as CSV.
    source : str
        ``"upload"`` or ``"sample"``.

    Returns
    -------
    LoadedTable

    Raises
    ------
    HPMKDInputError
        The file is empty, binary, unparsable, or has duplicate column names.
    """
    frame = read_table_bytes(data, filename)
    frame.columns = [str(c) for c in frame.columns]
    return LoadedTable(
        frame=frame,
        name=filename,
        digest=digest_bytes(data),
        n_bytes=len(data),
        source=source,
        columns=column_summary(frame),
        raw=bytes(data),
    )


def load_sample() -> LoadedTable:
    """The bundled sample: German credit, 1,000 rows, ``target`` 1 = bad risk.

    Raises
    ------
    HPMKDInputError
        The sample file is missing from this installation.
    """
    if not SAMPLE_CSV.exists():
        raise HPMKDInputError(
            f"The sample data file {SAMPLE_CSV} is missing from this installation."
        )
    return load_table_bytes(SAMPLE_CSV.read_bytes(), SAMPLE_CSV.name, source="sample")


def column_kind(series: pd.Series) -> str:
    """``"numeric"``, ``"boolean"`` or ``"categorical"`` (how students will see it).

    Parameters
    ----------
    series : Series
    """
    if is_bool_dtype(series):
        return "boolean"
    if is_numeric_dtype(series):
        return "numeric"
    return "categorical"


def column_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per column: dtype, kind, missing count and share, distinct values.

    Distinct values are counted on the first :data:`SUMMARY_SAMPLE_ROWS` rows so that
    a large upload previews quickly; the column header says so when that applies.

    Parameters
    ----------
    frame : DataFrame
    """
    head = frame.iloc[:SUMMARY_SAMPLE_ROWS]
    missing = frame.isna().sum()
    distinct_label = (
        "distinct" if len(frame) <= SUMMARY_SAMPLE_ROWS else
        f"distinct (first {SUMMARY_SAMPLE_ROWS:,} rows)"
    )
    rows = []
    for col in frame.columns:
        series = frame[col]
        rows.append(
            {
                "column": col,
                "dtype": str(series.dtype),
                "kind": column_kind(series),
                "missing": int(missing[col]),
                "missing %": round(100.0 * float(missing[col]) / max(len(frame), 1), 2),
                distinct_label: int(head[col].nunique(dropna=True)),
            }
        )
    return pd.DataFrame(rows)


def default_target(columns: list[str]) -> str:
    """``"target"`` when present (any case), else the last column.

    Parameters
    ----------
    columns : list of str
    """
    for col in columns:
        if col.lower() == "target":
            return col
    return columns[-1]


def class_balance(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """Rows per class of ``target`` (missing targets counted separately).

    Parameters
    ----------
    frame : DataFrame
    target : str

    Returns
    -------
    DataFrame
        Columns ``class``, ``rows``, ``share`` sorted by class.

    Raises
    ------
    HPMKDInputError
        ``target`` is not a column, or has more than :data:`MAX_CLASSES` distinct values.
    """
    if target not in frame.columns:
        raise HPMKDInputError(f"Target column {target!r} is not in the data.")
    values = frame[target]
    counts = values.value_counts(dropna=True)
    if len(counts) > MAX_CLASSES:
        raise HPMKDInputError(
            f"Target column {target!r} has {len(counts):,} distinct values; that looks like "
            "a continuous or id column. Choose a class label column (at most "
            f"{MAX_CLASSES} classes)."
        )
    try:
        counts = counts.sort_index()
    except TypeError:
        counts = counts.sort_index(key=lambda s: s.astype(str))
    out = pd.DataFrame(
        {"class": [str(c) for c in counts.index], "rows": counts.to_numpy().astype(int)}
    )
    n_missing = int(values.isna().sum())
    if n_missing:
        out = pd.concat(
            [out, pd.DataFrame({"class": ["(missing: dropped)"], "rows": [n_missing]})],
            ignore_index=True,
        )
    out["share"] = out["rows"] / max(int(out["rows"].sum()), 1)
    return out


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric (non-boolean) columns, e.g. candidates for probability columns.

    Parameters
    ----------
    frame : DataFrame
    """
    return [c for c in frame.columns if column_kind(frame[c]) == "numeric"]


def preview(frame: pd.DataFrame, rows: int = 20) -> pd.DataFrame:
    """The first ``rows`` rows.

    Parameters
    ----------
    frame : DataFrame
    rows : int
    """
    return frame.head(rows)


def describe_size(n_bytes: int) -> str:
    """Human-readable byte count (``"1.2 MB"``).

    Parameters
    ----------
    n_bytes : int
    """
    value = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def rows_with_target(frame: pd.DataFrame, target: str) -> int:
    """Rows whose target is present (the rows a dataset keeps).

    Parameters
    ----------
    frame : DataFrame
    target : str
    """
    if target not in frame.columns:
        return len(frame)
    return int(np.count_nonzero(frame[target].notna().to_numpy()))

