"""``DistillationDataset``: validated table, target, teachers, splits, meta-features."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from hpmkd.checks import (
    check_category_types,
    check_class_counts,
    check_finite_features,
    check_target_name,
    check_test_size,
    choose_features,
    encode_target,
    is_numeric,
)
from hpmkd.errors import HPMKDInputError
from hpmkd.io import read_table
from hpmkd.settings import TeacherLimits
from hpmkd.teacher import FileTeacherReport, Teacher, make_teachers, teacher_probabilities


@dataclass(frozen=True)
class Split:
    """Row positions of the train, validation and test parts (into the dataset's rows)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


class DistillationDataset:
    """A table with a target column and one or more teachers, ready to distill.

    Parameters
    ----------
    data : DataFrame, str or Path
        The table, or a CSV/Parquet path (CSV delimiter and encoding are detected).
    target : str
        Target column. Rows whose target is missing are dropped (``n_dropped_missing_target``).
    features : list of str, optional
        Feature columns; default all columns but the target, ``drop`` and probability columns.
    drop : list of str, optional
        Columns that are not features (ids, leaks).
    teacher : object, path, TeacherFile, or list of them, optional
        Fitted classifiers with ``predict_proba`` (used in this process) and/or model
        files (``.joblib``, ``.pkl``, ``.pickle``, LightGBM ``.txt``, XGBoost
        ``.json``/``.ubj``, ``.skops``), as paths or as :class:`~hpmkd.teacher.TeacherFile`
        (an upload's bytes). Files are loaded by the restricted loader
        (:mod:`hpmkd.safe_load`) and scored in a separate, resource-limited process
        (:mod:`hpmkd.isolation`), once for all rows.
    teacher_proba_cols : list of str, optional
        Columns already holding a teacher's probabilities, one per class in class order.
    test_data : DataFrame, str or Path, optional
        A separate test table (same columns); otherwise a test part is split off.
    test_size : float, default 0.2
        Share of rows held out for test when ``test_data`` is not given.
    name : str, optional
        Shown in results and reports.
    cache : IntelligentCache, optional
        Memoizes the teachers' probabilities (keyed by the data and the teacher: a file's
        bytes, an object pickled), so reloading the same data and teacher does not
        predict again.
    trusted : bool, default False
        Load the teacher *files* with plain joblib instead of the restricted loader,
        which runs any code in them (in their isolated process). Only for your own files
        on your own machine; the run summary records it as ``teacher_trusted``. Also set
        it when ``teacher`` holds models you loaded that way yourself, so the summary
        says so.
    teacher_limits : TeacherLimits, optional
        Limits of the process that scores teacher files; default
        :meth:`~hpmkd.settings.TeacherLimits.from_env` (``HPMKD_UPLOAD_LIMIT_MB``,
        ``HPMKD_TEACHER_*``).

    Attributes
    ----------
    frame : DataFrame
        All rows (training table first, then ``test_data`` if given), target kept.
    X : DataFrame
        The feature columns of ``frame``: numeric columns as float, categorical columns
        (bool, ``category``, text) with their raw values.
    y : ndarray of int
        Class indices into ``classes``.
    classes : list
        Sorted original target labels.
    teachers : list of Teacher
    teacher_probas : dict of str to ndarray
        Each teacher's probabilities on every row, columns in ``classes`` order.
    teacher_trusted : bool
        Whether teacher files were loaded unrestricted (``trusted=True``).
    """

    def __init__(
        self,
        data: pd.DataFrame | str | Path,
        target: str,
        features: list[str] | None = None,
        drop: list[str] | None = None,
        teacher: Any = None,
        teacher_proba_cols: list[str] | str | None = None,
        test_data: pd.DataFrame | str | Path | None = None,
        test_size: float = 0.2,
        name: str | None = None,
        cache: Any = None,
        trusted: bool = False,
        teacher_limits: TeacherLimits | None = None,
    ) -> None:
        # With a test table the two are concatenated into a new frame below, so neither
        # needs a copy of its own first (on 1,000,000 x 50 rows: 400 MB less at the peak).
        frame = _load(data, copy=test_data is None)
        self.name = name or (Path(data).name if isinstance(data, (str, Path)) else "dataframe")
        self.test_size = check_test_size(test_size)
        n_main = len(frame)
        if test_data is not None:
            test_frame = _load(test_data, copy=False)
            missing = [c for c in frame.columns if c not in test_frame.columns]
            if missing:
                raise HPMKDInputError(
                    f"The test data lacks column(s) {', '.join(map(repr, missing))} that the "
                    "training data has. Give both tables the same columns."
                )
            frame = pd.concat([frame, test_frame[frame.columns]], ignore_index=True)
        self.target = check_target_name(target, frame)
        missing_target = frame[self.target].isna().to_numpy()
        is_test = np.zeros(len(frame), dtype=bool)
        is_test[n_main:] = True
        self.n_dropped_missing_target = int(missing_target.sum())
        if self.n_dropped_missing_target == len(frame):
            raise HPMKDInputError(
                f"Every value of target column {self.target!r} is missing. "
                "Choose a column that holds the labels."
            )
        if self.n_dropped_missing_target:
            frame = frame.loc[~missing_target].reset_index(drop=True)
        self._is_test = is_test[~missing_target]
        self.teachers: list[Teacher] = make_teachers(teacher, teacher_proba_cols, trusted=trusted)
        self.teacher_limits = teacher_limits
        # Only a model can have been loaded unrestricted, not probability columns.
        self.teacher_trusted = any(t.trusted for t in self.teachers)
        proba_cols = [c for t in self.teachers for c in (t.proba_cols or [])]
        self.features = choose_features(frame, self.target, features, drop, proba_cols)
        self.frame = frame
        self.classes, self.y = encode_target(frame[self.target], self.target)
        check_class_counts(self.classes, self.y, self._is_test)
        self.check_split()
        self.X = text_as_objects(prepare_features(frame[self.features]))
        check_finite_features(self.X, "the data")
        check_category_types(self.X)
        self.categorical = [c for c in self.features if not is_numeric(self.X[c])]
        self.numeric = [c for c in self.features if c not in self.categorical]
        self._fingerprint: str | None = None
        self._row_hashes: np.ndarray | None = None
        self._meta: dict[str, float] | None = None
        self.teacher_probas: dict[str, np.ndarray] = {
            t.name: self._teacher_proba(t, cache) for t in self.teachers
        }

    def _teacher_proba(self, teacher: Teacher, cache: Any) -> np.ndarray:
        def compute() -> np.ndarray:
            return teacher_probabilities(
                teacher, self.frame, self.features, self.classes, self.teacher_limits
            )

        if cache is None or teacher.kind == "proba_cols":
            return compute()
        classes = [str(c) for c in self.classes]
        if teacher.kind == "file":
            # Keyed by the file's bytes, never by a loaded object (which never exists
            # here): the probabilities and what the isolated process measured.
            frame_hash = _frame_digest(self.frame)
            key = cache.make_key(
                "teacher_file_proba", teacher.digest(), teacher.trusted, frame_hash,
                list(self.features), classes,
            )

            def compute_file() -> tuple[np.ndarray, dict[str, Any]]:
                proba = compute()
                assert teacher.report is not None
                return proba, vars(teacher.report)

            (proba, report), _ = cache.get_or_compute(key, compute_file)
            teacher.report = FileTeacherReport(**report)
            return proba
        import pickle

        # Feature checks run first, so a bad teacher fails the same way cached or not.
        # (An object teacher is the caller's own object, so pickling it for the key is
        # theirs to run.)
        columns = teacher.feature_columns(self.frame, self.features)
        model_hash = hashlib.sha256(
            pickle.dumps(teacher.model, protocol=pickle.HIGHEST_PROTOCOL)
        ).hexdigest()
        # Column by column: hashing ``frame[columns]`` whole first copied the columns
        # (400 MB on 1,000,000 x 50 rows).
        digest = hashlib.sha256()
        for column in columns:
            digest.update(
                pd.util.hash_pandas_object(self.frame[column], index=False).to_numpy().tobytes()
            )
        key = cache.make_key("teacher_proba_v2", model_hash, digest.hexdigest(), columns, classes)
        value, _ = cache.get_or_compute(key, compute)
        return value

    # ------------------------------------------------------------------ properties
    @property
    def n_rows(self) -> int:
        """Rows kept (missing-target rows dropped)."""
        return len(self.frame)

    @property
    def n_features(self) -> int:
        """Feature columns given to students."""
        return len(self.features)

    @property
    def n_classes(self) -> int:
        """Distinct target classes."""
        return len(self.classes)

    @property
    def has_separate_test(self) -> bool:
        """Whether the test rows are a separate table (``test_data``), not split off."""
        return bool(self._is_test.any())

    @property
    def has_teacher(self) -> bool:
        """Whether at least one teacher was given."""
        return bool(self.teachers)

    def teacher_proba(self, name: str | None = None) -> np.ndarray:
        """Probabilities of the named (default: first) teacher on every row."""
        if not self.teachers:
            raise HPMKDInputError(
                "No teacher was given. Pass teacher=<model or file> or teacher_proba_cols=[...]."
            )
        return self.teacher_probas[name or self.teachers[0].name]

    # ------------------------------------------------------------------ splits
    def check_split(self, validation_split: float | None = None) -> None:
        """Check that a stratified split can put every class in every part.

        A stratified split needs at least as many rows in each part as there are
        classes. Called with the test part only when the dataset is made, and by
        :class:`~hpmkd.AutoDistiller` with the run's ``validation_split`` before any work.

        Parameters
        ----------
        validation_split : float, optional
            Share of the non-test rows held out for validation; ``None`` checks the test
            part only.

        Raises
        ------
        HPMKDInputError
            Names the part that is too small, the smallest classes and what to do.
        """
        n_classes = self.n_classes
        parts: list[tuple[str, int, str]] = []
        n_rest = int((~self._is_test).sum())
        if not self._is_test.any():
            n_test = math.ceil(self.test_size * self.n_rows)
            n_rest = self.n_rows - n_test
            parts.append(("test", n_test, f"test_size {self.test_size:g} of {self.n_rows} rows"))
        if validation_split is not None:
            n_val = math.ceil(float(validation_split) * n_rest)
            parts.append((
                "validation", n_val,
                f"validation_split {float(validation_split):g} of {n_rest} non-test rows",
            ))
            parts.append(("train", n_rest - n_val, f"the {n_rest} non-test rows less validation"))
        else:
            parts.append(("non-test", n_rest, "the rows left after the test part"))
        short = [(name, n, how) for name, n, how in parts if n < n_classes]
        if not short:
            return
        name, n, how = short[0]
        counts = np.bincount(self.y, minlength=n_classes)
        order = np.argsort(counts, kind="stable")[:5]
        smallest = ", ".join(f"{self.classes[i]!r} ({int(counts[i])} rows)" for i in order)
        raise HPMKDInputError(
            f"Too few rows per class to split: the target {self.target!r} has {n_classes} "
            f"classes but the {name} part would hold only {n} rows ({how}), and a stratified "
            f"split needs at least one row of every class in each part. Smallest classes: "
            f"{smallest}. Add rows, merge rare classes into fewer classes, or choose a target "
            "with fewer classes."
        )

    def split(self, validation_split: float = 0.2, random_state: int = 42) -> Split:
        """Stratified, seeded train / validation / test positions.

        The test part is ``test_data`` when given, else ``test_size`` of the rows; the
        validation part is ``validation_split`` of the remaining rows.

        Raises
        ------
        HPMKDInputError
            A part would be too small to hold every class (see :meth:`check_split`).
        """
        self.check_split(validation_split)
        positions = np.arange(self.n_rows)
        if self._is_test.any():
            test = positions[self._is_test]
            rest = positions[~self._is_test]
        else:
            rest, test = train_test_split(
                positions, test_size=self.test_size, stratify=self.y, random_state=random_state
            )
        train, validation = train_test_split(
            rest, test_size=validation_split, stratify=self.y[rest], random_state=random_state
        )
        return Split(np.sort(train), np.sort(validation), np.sort(test))

    # ------------------------------------------------------------------ descriptions
    def meta_features(self) -> dict[str, float]:
        """Numbers that describe the dataset for configuration ranking and memory lookup.

        ``rows, features, categorical_share, missing_share, minority_share, n_classes,
        teacher_confidence`` (mean of the first teacher's largest class probability; NaN
        without a teacher).
        """
        if self._meta is not None:
            return dict(self._meta)
        counts = np.bincount(self.y, minlength=self.n_classes)
        confidence = (
            float(np.mean(self.teacher_proba().max(axis=1))) if self.teachers else float("nan")
        )
        self._meta = {
            "rows": float(self.n_rows),
            "features": float(self.n_features),
            "categorical_share": len(self.categorical) / max(self.n_features, 1),
            "missing_share": float(self.X.isna().to_numpy().mean()) if self.n_features else 0.0,
            "minority_share": float(counts.min() / counts.sum()),
            "n_classes": float(self.n_classes),
            "teacher_confidence": confidence,
        }
        return dict(self._meta)

    def profile(self) -> dict[str, Any]:
        """A plain-data description for reports: sizes, column types, missing, balance."""
        counts = np.bincount(self.y, minlength=self.n_classes)
        return {
            "name": self.name,
            "rows": self.n_rows,
            "features": self.n_features,
            "numeric_features": list(self.numeric),
            "categorical_features": list(self.categorical),
            "missing_by_feature": {c: int(v) for c, v in self.X.isna().sum().items() if int(v) > 0},
            "class_counts": {str(c): int(n) for c, n in zip(self.classes, counts, strict=True)},
            "dropped_missing_target": self.n_dropped_missing_target,
            "teachers": [t.name for t in self.teachers],
            "target": self.target,
        }

    def fingerprint(self) -> str:
        """SHA-256 of the feature and target values, column names and dtypes, and the
        teachers' probabilities: equal fingerprints mean equal distillation inputs."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            # Students learn raw categorical values and select their columns by name
            # (version 2): candidates cached under the old format must not be reused.
            digest.update(b"student-input-v2")
            digest.update(repr([(c, str(self.X[c].dtype)) for c in self.features]).encode())
            digest.update(self.row_hashes().tobytes())
            digest.update(self.y.tobytes())
            digest.update(repr([str(c) for c in self.classes]).encode())
            for name in sorted(self.teacher_probas):
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(self.teacher_probas[name]).tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def row_hashes(self) -> np.ndarray:
        """One 64-bit hash per row of the feature values (:func:`pandas.util.hash_pandas_object`
        of :attr:`X`), computed once: the fingerprint and the leakage check's repeated-row
        cells use it (hashing ``X.iloc[rows]`` copied the rows first)."""
        if self._row_hashes is None:
            self._row_hashes = pd.util.hash_pandas_object(self.X, index=False).to_numpy()
        return self._row_hashes

    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """Select and normalise the feature columns of new rows for prediction."""
        if not isinstance(X, pd.DataFrame):
            raise HPMKDInputError("Pass the rows to predict as a pandas DataFrame.")
        missing = [c for c in self.features if c not in X.columns]
        if missing:
            raise HPMKDInputError(
                f"The rows to predict lack feature column(s) {', '.join(map(repr, missing))}."
            )
        prepared = prepare_features(X[self.features])
        check_finite_features(prepared, "the rows to predict")
        return prepared


def _frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's values, column names and dtypes."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(frame[c].dtype)) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def prepare_features(X: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as float; every other column (bool, pandas ``category``, text) as
    it came, raw values and missing values untouched.

    Students select their columns and encode categories themselves (see
    :func:`hpmkd.students.build_student`) and learn the raw values, so the saved student
    takes the raw table the teacher took and maps it to the categories it learned; the
    engine hands students exactly these values. Turning ints into floats changes no
    student input (every student computes in floating point).
    """
    if len(X.columns) and all(dtype == np.float64 for dtype in X.dtypes):
        # Nothing to convert: the values as they are, without building the table again
        # column by column (on 1,000,000 x 50 rows that was 400 MB more, kept for the
        # whole run; with pandas' copy-on-write this shares the memory of ``X``, and a
        # write to either copies then).
        return X.astype(float)
    out = {}
    for col in X.columns:
        series = X[col]
        out[col] = series.astype(float) if is_numeric(series) else series.copy()
    return pd.DataFrame(out, index=X.index)


def text_as_objects(X: pd.DataFrame) -> pd.DataFrame:
    """``X`` with its columns of pandas' string dtype held as numpy object arrays of the
    very same values (missing values as they were), one shared Python string per
    distinct value.

    Pandas 3 stores text in Arrow by default, and scikit-learn's encoders convert such a
    column to Python objects on every call: every fit, prediction and latency
    measurement of every student paid it again. The encoders learn the same categories
    from either (a fitted student pickles to the same bytes) and map rows to the same
    codes; on nyc_flights_delay (196,000 rows, 9 text columns) encoding the training rows
    took 0.36 s instead of 0.80 s, and the workers' context files shrank from 36 to 12 MB
    of text.

    Parameters
    ----------
    X : DataFrame
        Prepared features (:func:`prepare_features`).

    Returns
    -------
    DataFrame
        ``X`` itself when it has no such column, else a copy.
    """
    text = [c for c in X.columns if isinstance(X[c].dtype, pd.StringDtype)]
    if not text:
        return X
    # Shallow: the text columns are replaced below, the others are shared, not copied.
    out = X.copy(deep=False)
    for col in text:
        series = X[col]
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        values = np.asarray(uniques, dtype=object)[codes]
        missing = codes < 0
        if missing.any():
            values[missing] = series.to_numpy(dtype=object)[missing]
        out[col] = pd.Series(values, index=X.index, name=col, dtype=object)
    return out


def _load(data: pd.DataFrame | str | Path, copy: bool = True) -> pd.DataFrame:
    """The table as a DataFrame with string column names and a fresh range index.

    A DataFrame given is copied unless ``copy=False``: the caller then makes a new frame
    of it (a concatenation) before anything could change the caller's data.
    """
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise HPMKDInputError("The DataFrame has no rows.")
        dupes = data.columns[data.columns.duplicated()].tolist()
        if dupes:
            raise HPMKDInputError(
                f"The DataFrame has duplicate column name(s): {', '.join(map(repr, dupes))}."
            )
        out = data.reset_index(drop=True)
        out = out.copy() if copy else out.copy(deep=False)
        out.columns = [str(c) for c in out.columns]
        return out
    if isinstance(data, (str, Path)):
        return read_table(data)
    raise HPMKDInputError(
        f"data must be a DataFrame or a CSV/Parquet path, not {type(data).__name__}."
    )


