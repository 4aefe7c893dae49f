"""Teachers: where their probabilities come from, and the checks they must pass.

A teacher is given as a fitted object with ``predict_proba`` (the user's own object, used
in this process), as a model file - a path, or a :class:`TeacherFile` holding an upload's
bytes - or as probability columns already present in the data. A model file is never
loaded in this process: it is loaded (through :mod:`hpmkd.safe_load`) and scored in a
separate, resource-limited process (:mod:`hpmkd.isolation`), which returns its
probabilities and what it measured (:class:`FileTeacherReport`). Probabilities are
computed once for every row, aligned to the dataset's class order, and checked: features
present, shape ``(n_rows, n_classes)``, finite, rows summing to 1, classes matching the
target's.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpmkd.errors import HPMKDInputError
from hpmkd.settings import TeacherLimits

_ROW_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class TeacherFile:
    """A teacher model file given by its content (an upload) instead of a path.

    Attributes
    ----------
    name : str
        The file's name: its extension picks the format; shown in results.
    data : bytes
        The file's content.
    trusted : bool
        Load it unrestricted (runs any code in it, in the isolated process). This flag
        alone decides for the file; ``trusted=`` of the dataset does not change it.
    """

    name: str
    data: bytes = field(repr=False)
    trusted: bool = False


@dataclass(frozen=True)
class FileTeacherReport:
    """What the isolated process found while scoring a teacher file (plain data).

    Attributes
    ----------
    columns : list of str
        Columns of the data the teacher read.
    family : str
        Class of the model.
    size_bytes : int
        Pickled size of the model, -1 if unknown.
    latency_ms_1k : float
        Milliseconds per 1,000 rows on one thread, measured there; NaN if unknown.
    """

    columns: list[str]
    family: str
    size_bytes: int
    latency_ms_1k: float


@dataclass
class Teacher:
    """One teacher and how to get its probabilities.

    Attributes
    ----------
    name : str
        Shown in results (file name, class name, or ``proba_cols``).
    kind : {"object", "file", "proba_cols"}
    model : object or None
        The fitted model of an ``object`` teacher; ``None`` for the others (a file is
        only ever loaded in its isolated process).
    proba_cols : list of str or None
        Columns holding the probabilities, one per class in class order.
    trusted : bool
        The model is (or was) loaded unrestricted, running any code in its file.
    source : Path or bytes or None
        A ``file`` teacher's path or content.
    filename : str or None
        The name of a file given by its content (its extension picks the format).
    report : FileTeacherReport or None
        A ``file`` teacher's columns, class, size and latency, once scored.
    """

    name: str
    kind: str
    model: Any = None
    proba_cols: list[str] | None = None
    trusted: bool = False
    source: Path | bytes | None = field(default=None, repr=False)
    filename: str | None = None
    report: FileTeacherReport | None = None

    @property
    def family(self) -> str:
        """The model's class name (``"proba_cols"`` for probability columns)."""
        if self.model is not None:
            return type(self.model).__name__
        if self.report is not None:
            return self.report.family
        return "proba_cols" if self.kind == "proba_cols" else "model file"

    @property
    def size_bytes(self) -> int:
        """Pickled size of a file teacher measured where it ran; -1 when unknown."""
        return self.report.size_bytes if self.report is not None else -1

    @property
    def latency_ms_1k(self) -> float:
        """Latency of a file teacher measured where it ran; NaN when unknown."""
        return self.report.latency_ms_1k if self.report is not None else math.nan

    def digest(self) -> str:
        """SHA-256 of a ``file`` teacher's bytes (its identity for caches)."""
        digest = hashlib.sha256()
        if isinstance(self.source, bytes):
            digest.update(self.source)
        elif self.source is not None:
            with open(self.source, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    def feature_columns(self, frame: pd.DataFrame, default: list[str]) -> list[str]:
        """Columns of ``frame`` the teacher reads, checking they all exist."""
        if self.kind == "file":
            if self.report is None:
                raise HPMKDInputError(
                    f"Teacher {self.name!r} has not been scored yet: its columns are known "
                    "once its file was read (DistillationDataset does that)."
                )
            return list(self.report.columns)
        names = expected_feature_names(self.model) if self.model is not None else None
        if names is None:
            n_expected = getattr(self.model, "n_features_in_", None)
            if n_expected is not None and int(n_expected) != len(default):
                raise HPMKDInputError(
                    f"Teacher {self.name!r} expects {int(n_expected)} features but the data "
                    f"has {len(default)} feature columns, and the teacher does not record "
                    "feature names to match them by. Refit the teacher on a DataFrame (so it "
                    "stores feature names) or pass exactly its features with features=[...]."
                )
            return list(default)
        names = _match_columns(names, [str(c) for c in frame.columns])
        missing = [c for c in names if c not in frame.columns]
        if missing:
            shown = ", ".join(repr(c) for c in missing[:10])
            more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
            raise HPMKDInputError(
                f"Teacher {self.name!r} needs column(s) {shown}{more}, which are not in the "
                "data. Add them to the CSV, or use a teacher trained on the data's columns."
            )
        return list(names)

    def raw_proba(self, X: pd.DataFrame) -> tuple[np.ndarray, list[Any] | None]:
        """Probabilities in the teacher's own class order and that order (if known)."""
        model = self.model
        if _is_lgb_booster(model):
            raw = np.asarray(model.predict(X), dtype=float)
            if raw.ndim == 1:
                raw = np.column_stack([1.0 - raw, raw])
            return raw, None
        if not callable(getattr(model, "predict_proba", None)):
            raise HPMKDInputError(
                f"Teacher {self.name!r} ({type(model).__name__}) has no predict_proba method. "
                "Give a fitted classifier with predict_proba (for an SVC, fit it with "
                "probability=True), or pass the teacher's probabilities as columns with "
                "teacher_proba_cols."
            )
        try:
            proba = model.predict_proba(X)
        except Exception as exc:
            raise self._predict_error(exc) from exc
        classes = getattr(model, "classes_", None)
        return np.asarray(proba, dtype=float), (list(classes) if classes is not None else None)

    def _predict_error(self, exc: Exception) -> HPMKDInputError:
        return HPMKDInputError(
            f"Teacher {self.name!r} failed to predict on the data: "
            f"{type(exc).__name__}: {exc}. Check that the data has the columns and types "
            "the teacher was trained on."
        )

    def pipelined_proba(
        self, frame: pd.DataFrame, cols: list[str], chunk_rows: int
    ) -> tuple[list[np.ndarray], list[Any] | None] | None:
        """Probabilities of a plain scikit-learn ``Pipeline`` teacher on ``frame[cols]``,
        chunk by chunk, the transformations of each chunk made in a second thread while
        the final estimator predicts the chunk before; ``None`` for any other teacher.

        ``Pipeline.predict_proba`` is its steps' ``transform`` one after the other, then
        its final estimator's ``predict_proba``: the very calls made here, on chunks of
        ``chunk_rows`` rows (predictions are row by row, so the numbers are the same).
        Each step is used by one thread at a time. Worth it because the two rarely use
        the same resources: encoders of text columns work in Python, one core, while a
        gradient-boosted final estimator predicts on every core without Python's lock
        (nyc_flights_delay, 327,346 rows: an ``OrdinalEncoder`` on 9 text columns takes
        about 1 CPU s, LightGBM-500 about 5 CPU s on two threads).

        Returns
        -------
        (list of arrays, list or None) or None
            The chunks' probabilities in row order and the teacher's class order.
        """
        parts = _pipeline_parts(self.model)
        if parts is None:
            return None
        head, last = parts
        from concurrent.futures import ThreadPoolExecutor

        from sklearn.utils.validation import check_is_fitted

        starts = list(range(0, len(frame), chunk_rows))

        def transform(start: int) -> Any:
            return head.transform(frame.iloc[start : start + chunk_rows][cols])

        out = []
        try:
            check_is_fitted(self.model)  # what Pipeline.predict_proba checks first
            with ThreadPoolExecutor(1, thread_name_prefix="hpmkd-teacher-transform") as pool:
                ahead = pool.submit(transform, starts[0])
                for i in range(len(starts)):
                    encoded = ahead.result()
                    if i + 1 < len(starts):
                        ahead = pool.submit(transform, starts[i + 1])
                    out.append(np.asarray(last.predict_proba(encoded), dtype=float))
                    del encoded
        except Exception as exc:
            raise self._predict_error(exc) from exc
        classes = getattr(self.model, "classes_", None)
        return out, (list(classes) if classes is not None else None)


def _match_columns(names: list[str], columns: list[str]) -> list[str]:
    """Map recorded names to data columns; LightGBM records names with blanks as ``_``."""
    present = set(columns)
    sanitized = {re.sub(r"\s", "_", c): c for c in columns}
    return [n if n in present else sanitized.get(n, n) for n in names]


def expected_feature_names(model: Any) -> list[str] | None:
    """Feature names a fitted model records, or ``None`` if it records none."""
    if _is_lgb_booster(model):
        names = list(model.feature_name())
        return None if _are_generic_lgb_names(names) else names
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    booster = getattr(model, "booster_", None)
    if booster is not None:
        names = list(booster.feature_name())
        return None if _are_generic_lgb_names(names) else names
    return None


def _are_generic_lgb_names(names: list[str]) -> bool:
    return all(n == f"Column_{i}" for i, n in enumerate(names))


def _pipeline_parts(model: Any) -> tuple[Any, Any] | None:
    """``(model[:-1], final estimator)`` of a scikit-learn ``Pipeline`` itself (not a
    subclass, whose ``predict_proba`` may do more) whose last step predicts
    probabilities; ``None`` otherwise."""
    try:
        from sklearn.pipeline import Pipeline
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return None
    if type(model) is not Pipeline or len(model.steps) < 2:
        return None
    last = model.steps[-1][1]
    if not callable(getattr(last, "predict_proba", None)):
        return None
    return model[:-1], last


def _is_lgb_booster(model: Any) -> bool:
    try:
        import lightgbm
    except ImportError:  # pragma: no cover - lightgbm is a dependency
        return False
    return isinstance(model, lightgbm.Booster)


def make_teachers(
    teacher: Any = None,
    teacher_proba_cols: list[str] | str | None = None,
    trusted: bool = False,
) -> list[Teacher]:
    """Turn the user's teacher arguments into :class:`Teacher` records.

    Parameters
    ----------
    teacher : object, path, TeacherFile, or list of them
        Fitted models, model file paths and/or uploaded model files.
    teacher_proba_cols : list of str or comma-separated str, optional
        Probability columns already in the data, one per class in class order.
    trusted : bool, default False
        Load model file paths with plain joblib instead of the restricted loader (see
        :func:`hpmkd.safe_load.load_model_file`): runs any code in them (in the isolated
        process that scores them). Only for your own files on your own machine. A
        :class:`TeacherFile` carries its own flag.
    """
    items = teacher if isinstance(teacher, (list, tuple)) else [teacher]
    teachers: list[Teacher] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if not path.exists():
                raise HPMKDInputError(f"Teacher file {str(path)!r} does not exist. Check the path.")
            if path.is_dir():
                raise HPMKDInputError(
                    f"Teacher file {str(path)!r} is a folder, not a file. Give the file inside it."
                )
            # Loaded and scored only in an isolated process (teacher_probabilities).
            teachers.append(Teacher(name=path.name, kind="file", trusted=trusted, source=path))
        elif isinstance(item, TeacherFile):
            # Its own flag decides (an app mixes trusted and restricted uploads).
            teachers.append(Teacher(name=item.name, kind="file", trusted=item.trusted,
                                    source=bytes(item.data), filename=item.name))
        else:
            # trusted=True with objects: the caller loaded them unrestricted (the app does).
            teachers.append(
                Teacher(name=type(item).__name__, kind="object", model=item, trusted=trusted)
            )
    if teacher_proba_cols:
        cols = (
            [c.strip() for c in teacher_proba_cols.split(",") if c.strip()]
            if isinstance(teacher_proba_cols, str)
            else list(teacher_proba_cols)
        )
        teachers.append(Teacher(name="proba_cols", kind="proba_cols", proba_cols=cols))
    _deduplicate_names(teachers)
    return teachers


def _deduplicate_names(teachers: list[Teacher]) -> None:
    seen: dict[str, int] = {}
    for t in teachers:
        if t.name in seen:
            seen[t.name] += 1
            t.name = f"{t.name}#{seen[t.name]}"
        else:
            seen[t.name] = 1


#: Rows of the table a teacher object predicts at once (:func:`teacher_probabilities`).
TEACHER_CHUNK_ROWS = 200_000
#: Rows per chunk of a ``Pipeline`` teacher on a larger table, whose transformations of a
#: chunk run beside its final estimator's predictions (:meth:`Teacher.pipelined_proba`).
PIPELINE_CHUNK_ROWS = 50_000


def _stack_chunks(parts: list[np.ndarray], name: str) -> np.ndarray:
    """The chunks' probabilities one below the other (a chunk of another shape is the
    teacher's error, reported by the caller's shape check)."""
    widths = {p.shape[1] if p.ndim == 2 else -1 for p in parts}
    if len(widths) != 1 or -1 in widths:
        raise HPMKDInputError(
            f"Teacher {name!r} returned probabilities of different shapes for different "
            f"rows ({', '.join(str(p.shape) for p in parts)}): it must return one column "
            "per class for every row."
        )
    return np.concatenate(parts, axis=0)


def teacher_probabilities(
    teacher: Teacher,
    frame: pd.DataFrame,
    feature_cols: list[str],
    classes: list[Any],
    limits: TeacherLimits | None = None,
    pipelined: bool = True,
) -> np.ndarray:
    """Probabilities of ``teacher`` on every row of ``frame``, columns in ``classes`` order.

    With ``pipelined`` (the default) a scikit-learn ``Pipeline`` teacher on more than
    :data:`PIPELINE_CHUNK_ROWS` rows transforms a chunk in a second thread while it
    predicts the previous one (:meth:`Teacher.pipelined_proba`); the isolated process of
    a teacher file passes ``False``: its thread count is limited and watched.

    A ``file`` teacher is loaded and scored in an isolated process
    (:func:`hpmkd.isolation.run_teacher_file`, under ``limits``); what it measured is
    kept in ``teacher.report``.

    Raises
    ------
    HPMKDInputError
        Missing features, wrong shape, non-finite values, rows not summing to 1, or
        classes that differ from the target's; for a file, also a refused or unreadable
        file, or one that crashed, hung or went over a limit
        (:class:`~hpmkd.errors.TeacherProcessError`).
    """
    n_classes = len(classes)
    if teacher.kind == "file":
        from hpmkd.isolation import run_teacher_file

        assert teacher.source is not None
        scores = run_teacher_file(
            teacher.source, frame, feature_cols, classes, limits, trusted=teacher.trusted,
            filename=teacher.filename,
            name=teacher.name,
        )
        teacher.report = FileTeacherReport(
            columns=scores.columns, family=scores.family, size_bytes=scores.size_bytes,
            latency_ms_1k=scores.latency_ms_1k,
        )
        # Checked again here: nothing the isolated process returns is taken on trust.
        _check_proba(scores.proba, len(frame), n_classes, f"teacher {teacher.name!r}")
        return scores.proba
    if teacher.kind == "proba_cols":
        cols = teacher.proba_cols or []
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise HPMKDInputError(
                f"Probability column(s) {', '.join(map(repr, missing))} are not in the data. "
                f"Available columns: {', '.join(map(str, frame.columns[:30]))}."
            )
        if len(cols) != n_classes:
            raise HPMKDInputError(
                f"teacher_proba_cols names {len(cols)} column(s) but the target has "
                f"{n_classes} classes ({', '.join(map(str, classes))}); give one column per "
                "class, in that order."
            )
        values = frame[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        _check_proba(values, len(frame), n_classes, f"probability columns {cols}")
        return values
    cols = teacher.feature_columns(frame, feature_cols)
    # In chunks of rows: the teacher's input (the columns selected, then whatever its own
    # pipeline makes of them) exists for one chunk at a time, not for every row at once
    # (on 1,000,000 x 50 rows, 400 MB for the selection and as much again for a
    # Pipeline's encoded copy). Predictions are row by row, so the numbers are the same;
    # tables up to one chunk are predicted in one call, as before.
    piped = (
        teacher.pipelined_proba(frame, cols, PIPELINE_CHUNK_ROWS)
        if pipelined and len(frame) > PIPELINE_CHUNK_ROWS
        else None
    )
    if piped is not None:
        parts, teacher_classes = piped
    else:
        chunks = [
            teacher.raw_proba(frame.iloc[start : start + TEACHER_CHUNK_ROWS][cols])
            for start in range(0, max(len(frame), 1), TEACHER_CHUNK_ROWS)
        ]
        parts, teacher_classes = [c for c, _ in chunks], chunks[0][1]
    raw = parts[0] if len(parts) == 1 else _stack_chunks(parts, teacher.name)
    if raw.ndim != 2 or raw.shape[0] != len(frame):
        raise HPMKDInputError(
            f"Teacher {teacher.name!r} returned probabilities of shape {raw.shape} for "
            f"{len(frame)} rows; expected ({len(frame)}, {n_classes})."
        )
    if teacher_classes is not None:
        raw = _align_classes(raw, teacher_classes, classes, teacher.name)
    elif raw.shape[1] != n_classes:
        raise HPMKDInputError(
            f"Teacher {teacher.name!r} predicts {raw.shape[1]} classes but the target has "
            f"{n_classes} ({', '.join(map(str, classes))}). Use a teacher trained on this "
            "target."
        )
    _check_proba(raw, len(frame), n_classes, f"teacher {teacher.name!r}")
    return raw


def _align_classes(
    raw: np.ndarray, teacher_classes: list[Any], classes: list[Any], name: str
) -> np.ndarray:
    """Reorder the teacher's columns to the dataset's class order, matching by value.

    Numbers match by numeric value (a teacher fitted on 0.0/1.0 fits a target 0/1); when
    both sides are text, text matches exact text; a number and a text label match when the
    text reads as that number ("1" and 1: a CSV carries no types). Booleans match only
    booleans, so "yes"/"no" or True/False never pass for 1/0.
    """
    as_text = [_label_text(c) for c in teacher_classes]
    wanted_text = [_label_text(c) for c in classes]
    if all(isinstance(c, str) for c in [*teacher_classes, *classes]):
        teacher_keys: list[Any] = list(as_text)  # text on both sides: exact text
        wanted_keys: list[Any] = list(wanted_text)
    else:
        teacher_keys = [_label_key(c) for c in teacher_classes]
        wanted_keys = [_label_key(c) for c in classes]
    if (
        len(set(teacher_keys)) != len(teacher_keys)
        or len(teacher_keys) != len(wanted_keys)
        or set(teacher_keys) != set(wanted_keys)
    ):
        raise HPMKDInputError(
            f"Teacher {name!r} was trained on classes [{', '.join(as_text)}] but the target "
            f"column has classes [{', '.join(wanted_text)}]. Pick the target the teacher was "
            "trained on, or a teacher trained on this target."
        )
    if raw.shape[1] != len(as_text):
        raise HPMKDInputError(
            f"Teacher {name!r} returned {raw.shape[1]} probability columns for "
            f"{len(as_text)} classes."
        )
    return raw[:, [teacher_keys.index(k) for k in wanted_keys]]


def _label_text(label: Any) -> str:
    """A class label as shown in messages (``1.0`` as ``1.0``, ``"yes"`` as ``yes``)."""
    return str(label.item() if isinstance(label, np.generic) else label)


def _label_key(label: Any) -> tuple[str, Any]:
    """What a class label is compared by when the two sides are not both text: its
    numeric value (Python's ``1 == 1.0``), or its text.

    Booleans stay booleans (``True`` is a label of its own, not the number 1). Text that
    reads as a finite number compares as that number, so a target read from a CSV as
    integers matches a teacher fitted on the same labels as text.
    """
    if isinstance(label, np.generic):
        label = label.item()
    if isinstance(label, bool):
        return ("bool", label)
    if isinstance(label, int):
        return ("number", label)
    if isinstance(label, float):
        return ("number", label) if math.isfinite(label) else ("text", str(label))
    text = str(label).strip()
    for parse in (int, float):
        try:
            number = parse(text)
        except ValueError:
            continue
        if math.isfinite(number):
            return ("number", number)
    return ("text", str(label))


def _check_proba(values: np.ndarray, n_rows: int, n_classes: int, what: str) -> None:
    if values.shape != (n_rows, n_classes):
        raise HPMKDInputError(
            f"The {what} give shape {values.shape}; expected ({n_rows}, {n_classes})."
        )
    if not np.all(np.isfinite(values)):
        bad = int(np.sum(~np.all(np.isfinite(values), axis=1)))
        raise HPMKDInputError(
            f"The {what} have missing or non-numeric values in {bad} row(s). "
            "Every row needs a probability for every class."
        )
    if np.any(values < -1e-9) or np.any(values > 1 + 1e-9):
        raise HPMKDInputError(f"The {what} have values outside [0, 1].")
    sums = values.sum(axis=1)
    off = np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE
    if np.any(off):
        first = int(np.argmax(off))
        raise HPMKDInputError(
            f"The {what} do not sum to 1 in {int(off.sum())} row(s) (row {first} sums to "
            f"{sums[first]:.4f}). Give one probability column per class so each row sums to 1."
        )
