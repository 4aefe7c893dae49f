"""Teachers for the app: uploaded model files, probability columns, a reference teacher.

Session state only ever holds :class:`TeacherSource` records (plain data: the uploaded
bytes, column names, or the settings of the reference teacher). No fitted estimator sits
in session state.

An uploaded model file is **never loaded in the server process**: it is checked
(:func:`check_model_bytes`) and later scored by a separate, resource-limited process
(:mod:`hpmkd.isolation`) that loads it through the restricted loader
(:mod:`hpmkd.safe_load`); a file that crashes, hangs or exhausts that process becomes an
inline error and the server keeps serving. This module never calls
``pickle``/``joblib`` on user bytes. Only the reference teacher, which the app trains
itself, is a live model here. The one opt-in per server: started with the environment
variable ``HPMKD_APP_TRUST_UPLOADED_TEACHERS=1`` (:data:`TRUST_ENV`), the upload page
offers to load the user's own files unrestricted (``trusted=True``, still in the separate
process), which runs any code in them. Only for an app a single person runs on their own
machine; the default refuses.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

from hpmkd.data import DistillationDataset, prepare_features
from hpmkd.errors import HPMKDInputError
from hpmkd.isolation import TeacherFileInfo, check_teacher_file
from hpmkd.settings import TeacherLimits
from hpmkd.teacher import TeacherFile
from hpmkd_app.tables import LoadedTable, check_test_table, digest_bytes

#: Model file types the teacher uploader accepts.
MODEL_FILE_TYPES = ("joblib", "pkl", "pickle", "txt", "lgb", "json", "ubj", "skops")
#: Server setting that lets users load their own uploads unrestricted (off by default).
TRUST_ENV = "HPMKD_APP_TRUST_UPLOADED_TEACHERS"
#: Trees of the reference teacher.
REFERENCE_TREES = 300
#: Share of rows the engine holds out for test when no test file is given.
TEST_SIZE = 0.2


@dataclass(frozen=True)
class TeacherSource:
    """Where one teacher comes from (plain data, safe to keep in session state).

    Attributes
    ----------
    kind : {"file", "proba_cols", "reference"}
    name : str
        Shown in the UI and in results.
    filename : str
        Uploaded file name (``kind="file"``).
    data : bytes
        Uploaded file content (``kind="file"``).
    digest : str
        SHA-256 of ``data``; for other kinds a key describing the source.
    proba_cols : tuple of str
        Probability columns, one per class in class order (``kind="proba_cols"``).
    settings : dict
        Reference teacher: data digest, target, features, seed, validation split, test
        size, trees (everything that decides its training rows and its model).
    trusted : bool
        The file is loaded unrestricted (only possible when the server allows it).
    """

    kind: str
    name: str
    filename: str = ""
    data: bytes = field(default=b"", repr=False)
    digest: str = ""
    proba_cols: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    trusted: bool = False

    def key(self) -> tuple:
        """Hashable identity used as part of the dataset cache key."""
        if self.kind == "file":
            return ("file", self.name, self.digest, "trusted" if self.trusted else "restricted")
        if self.kind == "proba_cols":
            return ("proba_cols", self.proba_cols)
        return ("reference", self.name, tuple(sorted(_hashable(self.settings).items())))

    def describe(self) -> str:
        """One line for the teacher list."""
        if self.kind == "file":
            how = ", loaded unrestricted (trusted)" if self.trusted else ""
            return f"model file {self.filename} ({len(self.data):,} bytes{how})"
        if self.kind == "proba_cols":
            return f"probability columns {', '.join(self.proba_cols)}"
        s = self.settings
        return (
            f"reference LightGBM, {s.get('trees')} trees, trained on the {s.get('train_rows'):,} "
            f"train rows of the seeded split (seed {s.get('seed')}); validation and test rows "
            "unseen"
        )


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _hashable(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


# --------------------------------------------------------------------------- uploads
def trust_uploads_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this server lets users load their own uploads unrestricted.

    True only when the server was started with ``HPMKD_APP_TRUST_UPLOADED_TEACHERS=1``
    (or ``true``/``yes``); anything else, including unset, means no.

    Parameters
    ----------
    environ : mapping, optional
        The environment to read (default ``os.environ``).
    """
    value = (os.environ if environ is None else environ).get(TRUST_ENV, "")
    return value.strip().lower() in {"1", "true", "yes"}


def check_model_bytes(
    data: bytes, filename: str, trusted: bool = False, limits: TeacherLimits | None = None
) -> TeacherFileInfo:
    """Check an uploaded model file in a separate, resource-limited process.

    The file is loaded there (restricted loader; unrestricted only when ``trusted`` and
    the server allows it) and must be a classifier; nothing of it is loaded here.

    Parameters
    ----------
    data : bytes
    filename : str
    trusted : bool, default False
        Load it unrestricted (plain joblib; runs any code in the file, in that process).
        Refused unless the server allows it (:func:`trust_uploads_allowed`).
    limits : TeacherLimits, optional
        Default from the server's environment (``HPMKD_UPLOAD_LIMIT_MB``,
        ``HPMKD_TEACHER_*``).

    Returns
    -------
    TeacherFileInfo
        The model's class, columns and classes as the isolated load found them.

    Raises
    ------
    HPMKDInputError
        The loader refused the file (unsafe content, unknown format), it is not a
        classifier with ``predict_proba``, it crashed, hung or went over a limit in its
        process, or a trusted load is asked for on a server that does not allow it.
    """
    if trusted and not trust_uploads_allowed():
        raise HPMKDInputError(
            "This server does not load uploaded model files unrestricted: it was not started "
            f"with {TRUST_ENV}=1. The file was not loaded. Save the model with supported "
            "classes, or run the app on your own machine with that setting."
        )
    if not data:
        raise HPMKDInputError(f"Model file {filename!r} is empty (0 bytes).")
    return check_teacher_file(data, limits, trusted=trusted, filename=filename)


def file_source(data: bytes, filename: str, trusted: bool = False) -> TeacherSource:
    """A teacher source for an uploaded model file (not yet loaded).

    Parameters
    ----------
    data : bytes
    filename : str
    trusted : bool, default False
        Load it unrestricted (see :func:`check_model_bytes`).
    """
    return TeacherSource(
        kind="file",
        name=filename,
        filename=filename,
        data=data,
        digest=digest_bytes(data),
        trusted=bool(trusted),
    )


def proba_cols_source(columns: list[str]) -> TeacherSource:
    """A teacher source for probability columns already in the table.

    Parameters
    ----------
    columns : list of str
        One column per class, in class order.

    Raises
    ------
    HPMKDInputError
        No column given.
    """
    if not columns:
        raise HPMKDInputError(
            "Choose the probability columns: one per class, in class order (e.g. p_0, p_1)."
        )
    return TeacherSource(kind="proba_cols", name="proba_cols", proba_cols=tuple(columns))


# --------------------------------------------------------------------------- reference
def reference_settings(
    table: LoadedTable,
    target: str,
    features: list[str],
    seed: int,
    validation_split: float,
    trees: int = REFERENCE_TREES,
    test_table: LoadedTable | None = None,
) -> dict[str, Any]:
    """Everything that decides the reference teacher's training rows and model.

    Parameters
    ----------
    table : LoadedTable
    target : str
    features : list of str
    seed : int
        The run's seed: the teacher trains on exactly the rows the engine's split will
        use for training, so validation and test rows stay unseen by it.
    validation_split : float
        The configured validation share (decides the engine's train rows).
    trees : int
    test_table : LoadedTable, optional
        The separate test table: with it the whole table is split into train and
        validation, so it decides the train rows too.
    """
    return {
        "data_digest": table.digest,
        "test_digest": test_table.digest if test_table is not None else None,
        "target": target,
        "features": list(features),
        "seed": int(seed),
        "validation_split": float(validation_split),
        "test_size": TEST_SIZE,
        "trees": int(trees),
    }


def reference_model(numeric: list[str], categorical: list[str], seed: int, trees: int) -> Pipeline:
    """An unfitted reference teacher: feature normalisation + a LightGBM classifier.

    Parameters
    ----------
    numeric, categorical : list of str
        Column names of each kind.
    seed : int
    trees : int
    """
    columns = ColumnTransformer(
        [
            ("num", "passthrough", numeric),
            (
                "cat",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
                ),
                categorical,
            ),
        ],
        verbose_feature_names_out=False,
    )
    clf = LGBMClassifier(
        n_estimators=trees,
        learning_rate=0.05,
        num_leaves=31,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    )
    return Pipeline(
        [
            ("normalise", FunctionTransformer(prepare_features, feature_names_out="one-to-one")),
            ("columns", columns),
            ("model", clf),
        ]
    )


def train_reference_teacher(
    frame: pd.DataFrame, settings: dict[str, Any], test_frame: pd.DataFrame | None = None
) -> tuple[Pipeline, dict]:
    """Train the reference LightGBM teacher on the engine's train rows only.

    The rows are those of ``DistillationDataset(...).split(validation_split, seed).train``:
    the same seeded split the distillation run uses, so the teacher never sees the
    validation rows (used for selection) or the test rows (used for the final report).

    Parameters
    ----------
    frame : DataFrame
        The whole table.
    settings : dict
        From :func:`reference_settings`.
    test_frame : DataFrame, optional
        The separate test table the settings were made with (its rows are the test part;
        the teacher never sees them either).

    Returns
    -------
    model : Pipeline
        Fitted; ``feature_names_in_`` are the chosen features.
    info : dict
        ``train_rows``, ``rows``, ``train_share``.

    Raises
    ------
    HPMKDInputError
        Bad target or features (the dataset's own checks).
    """
    base = DistillationDataset(
        frame, target=settings["target"], features=list(settings["features"]),
        test_size=settings["test_size"], test_data=test_frame,
    )
    split = base.split(settings["validation_split"], settings["seed"])
    model = reference_model(base.numeric, base.categorical, settings["seed"], settings["trees"])
    X = base.frame.iloc[split.train][base.features]
    y = base.frame[base.target].iloc[split.train].to_numpy()
    model.fit(X, y)
    # The rows it saw, kept on the model: the app's leakage notice can then tell this
    # teacher's expected fit on a run's train rows from a teacher that saw other rows.
    model.hpmkd_train_rows_ = np.asarray(split.train)
    # Shares of the training table's rows (test table rows are not part of it).
    n_table = base.n_rows - separate_test_rows(base)
    info = {
        "train_rows": len(split.train),
        "rows": n_table,
        "train_share": len(split.train) / n_table,
    }
    return model, info


def separate_test_rows(dataset: DistillationDataset) -> int:
    """Rows of a dataset that came from a separate test table (0 without one).

    Parameters
    ----------
    dataset : DistillationDataset
    """
    if not dataset.has_separate_test:
        return 0
    # With a test table, the split's test part is exactly its rows (whatever the seed).
    return len(dataset.split().test)


def teachers_fitted_on(dataset: DistillationDataset, train_rows: np.ndarray) -> list[str]:
    """Names of the dataset's teachers the app trained on exactly ``train_rows``.

    Only the reference teacher carries the rows it was trained on
    (``hpmkd_train_rows_``, set by :func:`train_reference_teacher`); uploaded files and
    probability columns never count.

    Parameters
    ----------
    dataset : DistillationDataset
    train_rows : ndarray of int
        A run's train positions.
    """
    out = []
    for teacher in dataset.teachers:
        rows = getattr(teacher.model, "hpmkd_train_rows_", None)
        if rows is not None and np.array_equal(np.sort(rows), np.sort(train_rows)):
            out.append(teacher.name)
    return out


def reference_source(settings: dict[str, Any], info: dict[str, Any]) -> TeacherSource:
    """The teacher source recording a trained reference teacher.

    Parameters
    ----------
    settings : dict
    info : dict
        From :func:`train_reference_teacher`.
    """
    return TeacherSource(
        kind="reference",
        name=f"reference_lgbm_{settings['trees']}",
        settings={**settings, **info},
    )


def stale_reference_reason(
    source: TeacherSource, table: LoadedTable, target: str, features: list[str], seed: int,
    validation_split: float, test_table: LoadedTable | None = None,
) -> str | None:
    """Why a reference teacher no longer matches the current choices, or ``None``.

    Parameters
    ----------
    source : TeacherSource
    table : LoadedTable
    target : str
    features : list of str
    seed : int
    validation_split : float
    test_table : LoadedTable, optional
        The current separate test table (it decides the train rows too).
    """
    if source.kind != "reference":
        return None
    s = source.settings
    reasons = []
    if s.get("data_digest") != table.digest:
        reasons.append("the data changed")
    if s.get("test_digest") != (test_table.digest if test_table is not None else None):
        reasons.append("the test table changed" if test_table is not None and s.get("test_digest")
                       else "a test table was added" if test_table is not None
                       else "the test table was removed")
    if s.get("target") != target:
        reasons.append(f"it was trained for target {s.get('target')!r}")
    if list(s.get("features", [])) != list(features):
        reasons.append("the feature selection changed")
    if int(s.get("seed", -1)) != int(seed):
        reasons.append(f"it used seed {s.get('seed')} (now {seed})")
    if not math.isclose(float(s.get("validation_split", -1)), float(validation_split)):
        reasons.append(
            f"it used validation split {s.get('validation_split')} (now {validation_split})"
        )
    if not reasons:
        return None
    return (
        "The reference teacher is out of date: " + "; ".join(reasons) + ". Train it again so "
        "its training rows match the run's train split."
    )


# --------------------------------------------------------------------------- dataset
def build_dataset(
    table: LoadedTable,
    target: str,
    features: list[str],
    sources: list[TeacherSource],
    model_for: Callable[[TeacherSource], Any],
    limits: TeacherLimits | None = None,
    test_table: LoadedTable | None = None,
) -> DistillationDataset:
    """The :class:`~hpmkd.DistillationDataset` of the current choices.

    Uploaded files go to the dataset as :class:`~hpmkd.teacher.TeacherFile` (their
    bytes): it scores them once, each in its own isolated process.

    Parameters
    ----------
    table : LoadedTable
    target : str
    features : list of str
    sources : list of TeacherSource
        At least one.
    model_for : callable
        Returns the live model of a ``reference`` source (the app trained it).
    limits : TeacherLimits, optional
        Limits of the processes that score uploaded files (default: from the
        environment).
    test_table : LoadedTable, optional
        A separate test table (same columns): its rows are the run's test rows and the
        whole table is used for training and validation.

    Raises
    ------
    HPMKDInputError
        Missing target, no teacher, teacher lacking features, class mismatch, bad
        probability columns, too few rows per class, a test table that does not fit the
        table ... (the engine's messages).
    """
    if not sources:
        raise HPMKDInputError(
            "Add a teacher: upload a model file, pick probability columns, or train the "
            "reference teacher."
        )
    proba = [s for s in sources if s.kind == "proba_cols"]
    if len(proba) > 1:
        raise HPMKDInputError("Use at most one set of probability columns as a teacher.")
    if test_table is not None:
        check_test_table(test_table, table, target, features)
    models = [s for s in sources if s.kind != "proba_cols"]
    # Probability columns are the teacher's output, never a student's input.
    excluded = set(proba[0].proba_cols) if proba else set()
    features = [f for f in features if f not in excluded]
    objects = [
        TeacherFile(s.filename, s.data, s.trusted) if s.kind == "file" else model_for(s)
        for s in models
    ]
    dataset = DistillationDataset(
        table.frame,
        target=target,
        features=list(features),
        teacher=objects or None,
        teacher_proba_cols=list(proba[0].proba_cols) if proba else None,
        test_data=test_table.frame if test_table is not None else None,
        test_size=TEST_SIZE,
        name=table.name,
        # Recorded in the run summary: a teacher here was loaded unrestricted.
        trusted=any(s.trusted for s in models),
        teacher_limits=limits,
    )
    _rename_teachers(dataset, [s.name for s in models] + ["proba_cols"] * len(proba))
    return dataset


def _rename_teachers(dataset: DistillationDataset, names: list[str]) -> None:
    """Name object teachers after their source (file name) instead of their class."""
    teachers = getattr(dataset, "teachers", None)
    probas = getattr(dataset, "teacher_probas", None)
    if not teachers or probas is None or len(teachers) != len(names):
        return
    if getattr(dataset, "_fingerprint", None) is not None:
        return
    if any(t.name not in probas for t in teachers):
        return
    seen: dict[str, int] = {}
    renamed: dict[str, np.ndarray] = {}
    for teacher, name in zip(teachers, names, strict=True):
        count = seen.get(name, 0) + 1
        seen[name] = count
        new = name if count == 1 else f"{name}#{count}"
        renamed[new] = probas[teacher.name]
        teacher.name = new
    dataset.teacher_probas = renamed
