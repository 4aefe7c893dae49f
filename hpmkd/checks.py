"""Checks that turn bad input into an :class:`~hpmkd.errors.HPMKDInputError` saying what
was wrong, where, and what to do: seeds, shares, the target column, feature columns,
classes and their counts, infinite values."""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from hpmkd.errors import HPMKDInputError

if TYPE_CHECKING:
    import pandas as pd

MIN_ROWS_PER_CLASS = 5
#: Allowed share of rows split off for test when no separate test table is given.
TEST_SIZE_MIN, TEST_SIZE_MAX = 0.05, 0.5
#: Largest seed: splits and students take seeds in [0, 2**32 - 1] (numpy's range).
SEED_MAX = 2**32 - 1


def check_random_state(value: object, name: str = "random_state") -> int:
    """Return ``value`` as a seed, or say how it is wrong.

    Parameters
    ----------
    value : object
        A whole number from 0 to :data:`SEED_MAX`.
    name : str
        How the user gave it (``random_state``, ``--seed``), for the message.

    Raises
    ------
    HPMKDInputError
        Not a whole number, or outside the range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise HPMKDInputError(
            f"{name}={value!r} is not a whole number; use a seed from 0 to {SEED_MAX}."
        )
    if not 0 <= int(value) <= SEED_MAX:
        raise HPMKDInputError(
            f"{name}={value} is out of range; use a seed from 0 to {SEED_MAX}."
        )
    return int(value)


def check_test_size(value: object, name: str = "test_size") -> float:
    """Return ``value`` as the test share, or say how it is wrong.

    Parameters
    ----------
    value : object
        A share from :data:`TEST_SIZE_MIN` to :data:`TEST_SIZE_MAX`.
    name : str
        How the user gave it (``test_size``, ``--test-size``), for the message.

    Raises
    ------
    HPMKDInputError
    """
    try:
        share = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        share = math.nan
    if not TEST_SIZE_MIN <= share <= TEST_SIZE_MAX:  # NaN is never inside
        raise HPMKDInputError(
            f"{name}={value} is invalid: use a share of the rows between {TEST_SIZE_MIN} and "
            f"{TEST_SIZE_MAX} (0.2 holds a fifth of the rows out for the test)."
        )
    return share


def check_finite_features(X: pd.DataFrame, where: str) -> None:
    """Refuse ``inf`` and ``-inf`` in numeric feature columns (NaN, a missing value, is
    allowed: students and teachers handle missing values).

    Parameters
    ----------
    X : DataFrame
        Prepared features (numeric columns as float).
    where : str
        What the rows are ("the data", "the rows to predict"), for the message.

    Raises
    ------
    HPMKDInputError
        Names each column with infinite values and how many rows hold them.
    """
    numeric = [c for c in X.columns if is_numeric(X[c])]
    if not numeric:
        return
    infinite = np.isinf(X[numeric].to_numpy(dtype=float))
    if not infinite.any():
        return
    per_column = infinite.sum(axis=0)
    bad = [(c, int(n)) for c, n in zip(numeric, per_column, strict=True) if n]
    shown = ", ".join(f"{c!r} ({n} row{'s' if n > 1 else ''})" for c, n in bad[:10])
    more = f" and {len(bad) - 10} more column(s)" if len(bad) > 10 else ""
    raise HPMKDInputError(
        f"Feature column(s) {shown}{more} in {where} hold infinite values (inf or -inf) in "
        f"{int(infinite.any(axis=1).sum())} row(s). Replace them with finite numbers, or "
        "leave those cells empty to mark them missing (missing values are allowed)."
    )


def check_category_types(X: pd.DataFrame) -> None:
    """Refuse a categorical column whose values mix types (text and numbers, bools and
    text, ...) or hold ``pd.NA`` in an object column.

    Students learn categorical columns with their raw values (so a saved student takes
    the teacher's raw table), and scikit-learn's encoders take one type per column.

    Parameters
    ----------
    X : DataFrame
        Prepared features (:func:`hpmkd.data.prepare_features`).

    Raises
    ------
    HPMKDInputError
        Names the column, the types found and how to give it one type.
    """
    for col in X.columns:
        series = X[col]
        if is_numeric(series) or _pandas().api.types.is_bool_dtype(series):
            continue
        categorical = isinstance(series.dtype, _pandas().CategoricalDtype)
        values = series.cat.categories if categorical else series
        # Text only (the usual case): one kind, and pd.NA is looked for among the
        # distinct values, not in every row (a Python loop over all rows took 1.8 s on
        # the nine text columns of a 327,000-row table). Any other mix is checked value
        # by value below (hashing would merge True with 1).
        text_only = _pandas().api.types.infer_dtype(values, skipna=True) == "string"
        is_object = values.dtype == object
        if text_only and is_object:
            values = _pandas().Series(_pandas().unique(values), dtype=object)
        if is_object and any(v is _pandas().NA for v in values):
            raise HPMKDInputError(
                f"Categorical column {col!r} holds pd.NA in a column of dtype object, which "
                "scikit-learn's encoders refuse. Mark its missing values with NaN or None, "
                "in the data and in the rows to predict."
            )
        kinds = ["text"] if text_only else sorted({_kind(v) for v in values.dropna()})
        if len(kinds) > 1:
            raise HPMKDInputError(
                f"Categorical column {col!r} mixes value types ({', '.join(kinds)}); a "
                "student learns the raw values of a column, which must share one type. Give "
                f"the column one type in the data and in the rows to predict, e.g. "
                f"df[{col!r}] = df[{col!r}].astype(str)."
            )


def _kind(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def _pandas() -> Any:
    """pandas, imported on first use: the seed and share checks run in the command line
    before (or without) any table is read, and pandas alone takes about 0.3 s to load."""
    import pandas

    return pandas


def is_numeric(series: pd.Series) -> bool:
    types = _pandas().api.types
    return types.is_numeric_dtype(series) and not types.is_bool_dtype(series)


def check_target_name(target: str, frame: pd.DataFrame) -> str:
    if target in frame.columns:
        return target
    columns = [str(c) for c in frame.columns]
    close = difflib.get_close_matches(target, columns, n=3, cutoff=0.5)
    lowered = [c for c in columns if c.lower() == str(target).lower()]
    suggestions = list(dict.fromkeys(lowered + close))
    hint = f" Did you mean {', '.join(map(repr, suggestions))}?" if suggestions else ""
    raise HPMKDInputError(
        f"Target column {target!r} is not in the data.{hint} "
        f"Columns: {', '.join(columns[:30])}{' ...' if len(columns) > 30 else ''}."
    )


def choose_features(
    frame: pd.DataFrame,
    target: str,
    features: list[str] | None,
    drop: list[str] | None,
    proba_cols: list[str],
) -> list[str]:
    drop = list(drop or [])
    unknown = [c for c in [*(features or []), *drop] if c not in frame.columns]
    if unknown:
        raise HPMKDInputError(
            f"Column(s) {', '.join(map(repr, unknown))} named in features/drop are not in the data."
        )
    if features is not None:
        if target in features:
            raise HPMKDInputError(f"The target {target!r} cannot also be a feature.")
        chosen = [c for c in features if c not in drop]
    else:
        excluded = {target, *drop, *proba_cols}
        chosen = [c for c in frame.columns if c not in excluded]
    if not chosen:
        raise HPMKDInputError(
            "No feature columns are left. The data needs at least one column besides the "
            "target (and any dropped or probability columns)."
        )
    return chosen


def encode_target(series: pd.Series, name: str) -> tuple[list[Any], np.ndarray]:
    values = series.to_numpy()
    try:
        classes, codes = np.unique(values, return_inverse=True)
    except TypeError:
        # Mixed types (e.g. 1 and "1"): compare as text.
        classes, codes = np.unique(values.astype(str), return_inverse=True)
    classes_list = [c.item() if hasattr(c, "item") else c for c in classes]
    if len(classes_list) < 2:
        raise HPMKDInputError(
            f"Target column {name!r} has a single class ({classes_list[0]!r}); "
            "distillation of a classifier needs at least two classes."
        )
    if len(classes_list) > 50:
        raise HPMKDInputError(
            f"Target column {name!r} has {len(classes_list)} distinct values; that looks like "
            "a continuous or id column. Choose a class label column (at most 50 classes)."
        )
    return classes_list, codes.astype(int).ravel()


def check_class_counts(classes: list[Any], y: np.ndarray, is_test: np.ndarray) -> None:
    counts = np.bincount(y[~is_test], minlength=len(classes))
    small = [(c, int(n)) for c, n in zip(classes, counts, strict=True) if n < MIN_ROWS_PER_CLASS]
    if small:
        shown = ", ".join(f"{c!r} has {n}" for c, n in small)
        raise HPMKDInputError(
            f"Too few rows to split into train, validation and test: class {shown} row(s); "
            f"each class needs at least {MIN_ROWS_PER_CLASS}. Add rows, or merge rare classes."
        )
