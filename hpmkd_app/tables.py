"""Uploaded and sample tables: parsing, previews, column types and class balance.

Parsing goes through :func:`hpmkd.io.read_table_bytes`, so the app and the engine accept
exactly the same files and raise the same readable errors. Tables are identified by the
SHA-256 of their bytes (computed here with :mod:`hashlib`; Streamlit's cache never hashes
a big DataFrame).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from hpmkd.checks import MIN_ROWS_PER_CLASS
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


#: A float target with more distinct values than this, some not whole numbers, is a
#: measurement rather than a class label.
MAX_FLOAT_CLASSES = 10


def target_problem(frame: pd.DataFrame, target: str) -> str | None:
    """Why ``target`` cannot be distilled as a class label, said at upload (``None``: it
    can). Checked here so the user learns it before training a teacher or starting a run.

    Flags a column with no values, a single class, a float column that looks continuous
    and a class with too few rows for the train/validation/test split (the engine's own
    minimum). More than :data:`MAX_CLASSES` values is :func:`class_balance`'s error.

    Parameters
    ----------
    frame : DataFrame
    target : str
    """
    if target not in frame.columns:
        return f"Target column {target!r} is not in the data."
    values = frame[target].dropna()
    if values.empty:
        return (f"Target column {target!r} is empty in every row. Choose the column that "
                "holds the class labels.")
    counts = values.value_counts()
    if len(counts) == 1:
        return (f"Target column {target!r} has a single class ({_label(counts.index[0])}) in all "
                f"{len(values):,} rows; distillation needs at least two classes. Choose "
                "another target column, or upload a table with both outcomes.")
    if pd.api.types.is_float_dtype(values) and len(counts) > MAX_FLOAT_CLASSES:
        whole = np.all(np.mod(values.to_numpy(dtype=float), 1.0) == 0)
        if not whole:
            return (f"Target column {target!r} holds {len(counts):,} different decimal "
                    f"values (e.g. {', '.join(f'{v:g}' for v in counts.index[:3])}); it "
                    "looks like a measurement, not a class label. Choose a column of class "
                    "labels, or bin this one into a few classes before uploading.")
    rare = counts[counts < MIN_ROWS_PER_CLASS]
    if len(rare) and len(counts) <= MAX_CLASSES:
        shown = ", ".join(f"{_label(c)} has {int(n)}" for c, n in rare.items())
        return (f"Class {shown} row(s) in {target!r}; each class needs at least "
                f"{MIN_ROWS_PER_CLASS} rows to appear in the train, validation and test "
                "parts. Add rows, merge rare classes, or remove those rows.")
    return None


def _label(value: object) -> str:
    """A class value as people write it (``1``, ``'yes'``; not ``np.int64(1)``)."""
    value = value.item() if hasattr(value, "item") else value
    return repr(value) if isinstance(value, str) else str(value)


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



def load_test_table_bytes(data: bytes, filename: str) -> LoadedTable:
    """Parse an uploaded test table (CSV or Parquet), like :func:`load_table_bytes`.

    Parameters
    ----------
    data : bytes
    filename : str

    Returns
    -------
    LoadedTable
        ``source="test"``.

    Raises
    ------
    HPMKDInputError
        The file is empty, binary or unparsable (the message names the test table).
    """
    try:
        return load_table_bytes(data, filename, source="test")
    except HPMKDInputError as exc:
        raise HPMKDInputError(f"Test table: {exc}") from exc


def check_test_table(
    test: LoadedTable, train: LoadedTable, target: str | None, features: list[str]
) -> list[str]:
    """Check that a test table fits the training table; return notes for the user.

    The engine appends the test rows under the training table's columns, so every column
    of the training table must be in the test table with the same kind (numeric,
    boolean or categorical: a numeric column that reads as text in one file would turn
    into a categorical feature for both), and the test target may hold only classes the
    training table has (a student cannot predict a class it never saw).

    Parameters
    ----------
    test : LoadedTable
        The uploaded test table.
    train : LoadedTable
        The training table.
    target : str or None
        The chosen target column.
    features : list of str
        The chosen feature columns.

    Returns
    -------
    list of str
        Notes (extra columns ignored, rows without a target dropped).

    Raises
    ------
    HPMKDInputError
        Missing columns, a column of another kind, unknown classes, or no test row with
        a target; the message names the columns and says what to do.
    """
    t_frame, tr_frame = test.frame, train.frame
    missing = [c for c in tr_frame.columns if c not in t_frame.columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise HPMKDInputError(
            f"The test table {test.name!r} lacks column(s) {shown}{more} that the training "
            f"table {train.name!r} has. Give both tables the same columns (export them from "
            "the same source), or remove this test table to test on a held-out part of the "
            "training table."
        )
    for col in tr_frame.columns:
        want, got = column_kind(tr_frame[col]), column_kind(t_frame[col])
        if want != got and t_frame[col].notna().any():
            raise HPMKDInputError(
                f"Column {col!r} is {want} in the training table {train.name!r} but "
                f"{got} in the test table {test.name!r}"
                f"{_odd_value(t_frame[col], want)}. Fix the values so the "
                "column has the same type in both files."
            )
    notes = []
    extra = [c for c in t_frame.columns if c not in tr_frame.columns]
    if extra:
        shown = ", ".join(repr(c) for c in extra[:10])
        more = f" and {len(extra) - 10} more" if len(extra) > 10 else ""
        notes.append(f"Column(s) {shown}{more} are not in the training table and are ignored.")
    if target and target in tr_frame.columns:
        both = pd.concat([tr_frame[target], t_frame[target]], ignore_index=True)
        seen = set(both.iloc[: len(tr_frame)].dropna())
        test_values = both.iloc[len(tr_frame):]
        n_labelled = int(test_values.notna().sum())
        if n_labelled == 0:
            raise HPMKDInputError(
                f"The test table {test.name!r} has no value in target column {target!r}: "
                "test rows need their true class. Fill the column or upload another file."
            )
        unknown = sorted({str(v) for v in test_values.dropna() if v not in seen})
        if unknown:
            shown = ", ".join(repr(v) for v in unknown[:10])
            raise HPMKDInputError(
                f"The test table's target {target!r} holds class(es) {shown} that the "
                f"training table {train.name!r} does not have; no model can learn a class it "
                "never saw. Remove those rows from the test table, or add examples of them "
                "to the training table."
            )
        dropped = len(test_values) - n_labelled
        if dropped:
            notes.append(f"{dropped:,} test row(s) without a target are dropped.")
    return notes


def _odd_value(test_col: pd.Series, want: str) -> str:
    """``" (e.g. value 'abc' in row 7)"``: a test value that breaks a numeric column."""
    if want != "numeric":
        return ""
    values = test_col.dropna()
    parsed = pd.to_numeric(values, errors="coerce")
    bad = values[parsed.isna()]
    if bad.empty:
        return ""
    # Row numbers as in a spreadsheet: header is row 1.
    return f" (e.g. value {str(bad.iloc[0])!r} in data row {int(bad.index[0]) + 1})"


def describe_test_rows(
    test: LoadedTable | None, target: str | None, n_rows: int, test_size: float
) -> str:
    """Where the run's test rows come from, in one line.

    Parameters
    ----------
    test : LoadedTable or None
        The uploaded test table, if any.
    target : str or None
        The target column (test rows without it are dropped).
    n_rows : int
        Rows with a target in the training table (used when there is no test table).
    test_size : float
        Share held out when there is no test table.
    """
    if test is not None:
        n_test = rows_with_target(test.frame, target) if target else test.n_rows
        return f"Test rows: from your test table `{test.name}`, {n_test:,} rows."
    # scikit-learn's train_test_split rounds the test part up.
    n_test = math.ceil(test_size * n_rows)
    return (
        f"Test rows: {100 * test_size:.0f}% of your table held out at random (seeded), "
        f"{n_test:,} rows."
    )
