"""The app's only ``st.cache_*`` users: live objects made from plain session data.

Session state holds plain records (:class:`~hpmkd_app.tables.LoadedTable`,
:class:`~hpmkd_app.teachers.TeacherSource`); the reference teacher, the checks of uploaded
files (done in an isolated process: an upload is never loaded here) and the
:class:`~hpmkd.DistillationDataset` are made here and shared read-only. Cache keys are
short strings (SHA-256 digests, column names): Streamlit never hashes a DataFrame or an
upload's bytes (``_``-prefixed arguments are not hashed).

Errors are cached with the result (:class:`Outcome`), so a teacher that fails its checks
is not re-evaluated on every rerun.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from hpmkd.data import DistillationDataset
from hpmkd.errors import HPMKDInputError
from hpmkd.settings import TeacherLimits
from hpmkd_app import teachers as teacher_lib
from hpmkd_app.server_errors import web_message
from hpmkd_app.tables import LoadedTable
from hpmkd_app.teachers import TeacherSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """A cached result or the readable error that prevented it.

    Attributes
    ----------
    value : object or None
    error : str or None
        The ``HPMKDInputError``/``ValueError`` text.
    """

    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether there is a value."""
        return self.error is None


@st.cache_resource(max_entries=16, show_spinner="Checking the model file in a separate process")
def check_teacher_upload(
    digest: str, filename: str, _data: bytes, trusted: bool = False
) -> Outcome:
    """An uploaded model file checked in an isolated process (never loaded here).

    Parameters
    ----------
    digest : str
        SHA-256 of the bytes (the cache key).
    filename : str
    _data : bytes
        The file's content (not hashed).
    trusted : bool, default False
        Load unrestricted; refused unless the server allows it (part of the cache key).

    Returns
    -------
    Outcome
        ``value`` is a :class:`~hpmkd.isolation.TeacherFileInfo`.
    """
    try:
        limits = TeacherLimits.from_env()
        return Outcome(teacher_lib.check_model_bytes(_data, filename, trusted=trusted,
                                                     limits=limits))
    except ValueError as exc:
        return Outcome(error=web_message(exc, "teacher files cannot be checked", log))


@st.cache_resource(max_entries=4, show_spinner="Training the reference teacher ...")
def reference_teacher(settings_json: str, _frame: Any, _test_frame: Any = None) -> Outcome:
    """The fitted reference teacher for these settings (deterministic, seeded).

    Parameters
    ----------
    settings_json : str
        :func:`~hpmkd_app.teachers.reference_settings` as sorted JSON (the cache key;
        includes the table's and the test table's digests).
    _frame : DataFrame
        The table (not hashed).
    _test_frame : DataFrame, optional
        The separate test table (not hashed).

    Returns
    -------
    Outcome
        ``value`` is ``(model, info)``.
    """
    settings = json.loads(settings_json)
    try:
        return Outcome(teacher_lib.train_reference_teacher(_frame, settings, _test_frame))
    except ValueError as exc:
        return Outcome(error=str(exc))


def settings_json(settings: dict[str, Any]) -> str:
    """Canonical JSON of reference settings (the cache key).

    Parameters
    ----------
    settings : dict
    """
    keep = {k: settings[k] for k in ("data_digest", "target", "features", "seed",
                                     "validation_split", "test_size", "trees")}
    # Settings made before test tables existed have no test digest: no test table.
    keep["test_digest"] = settings.get("test_digest")
    return json.dumps(keep, sort_keys=True)


def teacher_model(
    source: TeacherSource, table: LoadedTable, test_table: LoadedTable | None = None
) -> Any:
    """The live model of a ``reference`` teacher source (uploaded files have none here:
    they are only ever loaded in their isolated process).

    Parameters
    ----------
    source : TeacherSource
    table : LoadedTable
        The current table (the reference teacher is trained on it).
    test_table : LoadedTable, optional
        The current separate test table (it decides the teacher's train rows).

    Raises
    ------
    HPMKDInputError
        The model cannot be made (message says why).
    """
    if source.kind != "reference":
        raise HPMKDInputError(f"A {source.kind} teacher has no model object in the app.")
    if source.settings.get("data_digest") != table.digest:
        raise HPMKDInputError(
            "The reference teacher was trained on another table. Train it again on "
            "the Data & teachers page."
        )
    test_digest = test_table.digest if test_table is not None else None
    if source.settings.get("test_digest") != test_digest:
        raise HPMKDInputError(
            "The reference teacher was trained before the test table changed, so its "
            "training rows may include this run's validation or test rows. Train it again "
            "on the Data & teachers page."
        )
    out = reference_teacher(settings_json(source.settings), table.frame,
                            test_table.frame if test_table is not None else None)
    if not out.ok:
        raise HPMKDInputError(out.error)
    return out.value[0]


def dataset_key(
    table: LoadedTable, target: str, features: list[str], sources: list[TeacherSource],
    test_table: LoadedTable | None = None,
) -> str:
    """Short key of the dataset inputs (digests and names only).

    Parameters
    ----------
    table : LoadedTable
    target : str
    features : list of str
    sources : list of TeacherSource
    test_table : LoadedTable, optional
    """
    test = [test_table.digest, test_table.name] if test_table is not None else None
    return json.dumps(
        [table.digest, table.name, target, list(features), [list(map(str, s.key()))
                                                            for s in sources], test],
        default=str,
    )


@st.cache_resource(max_entries=4, show_spinner="Checking the teachers against the data ...")
def _dataset(key: str, _table: LoadedTable, target: str, _features: list[str],
             _sources: list[TeacherSource], _test: LoadedTable | None) -> Outcome:
    try:
        limits = TeacherLimits.from_env()
        dataset = teacher_lib.build_dataset(
            _table, target, _features, _sources, lambda s: teacher_model(s, _table, _test),
            limits, test_table=_test,
        )
        return Outcome(dataset)
    except ValueError as exc:
        return Outcome(error=web_message(exc, "teacher files cannot be checked", log))


def dataset(
    table: LoadedTable, target: str, features: list[str], sources: list[TeacherSource],
    test_table: LoadedTable | None = None,
) -> Outcome:
    """The :class:`~hpmkd.DistillationDataset` of the current choices, or its error.

    Parameters
    ----------
    table : LoadedTable
    target : str
    features : list of str
    sources : list of TeacherSource
    test_table : LoadedTable, optional
        A separate test table (its rows are the run's test rows).

    Returns
    -------
    Outcome
        ``value`` is a :class:`~hpmkd.DistillationDataset` (shared read-only).
    """
    # The engine class's identity is part of the key: after a development reload of
    # hpmkd, a dataset made by the old class is never handed to the new AutoDistiller.
    key = (f"{dataset_key(table, target, features, sources, test_table)}"
           f"|{id(DistillationDataset)}")
    return _dataset(key, table, target, list(features), list(sources), test_table)


@st.cache_resource(max_entries=8,
                   show_spinner="Checking whether the teacher saw these rows ...")
def leakage_check(key: str, seed: int, _dataset: DistillationDataset) -> Outcome:
    """The pre-run leakage check of a dataset (:func:`hpmkd.leakage.check_dataset`).

    Parameters
    ----------
    key : str
        The dataset's input key (:func:`dataset_key`; the cache key with ``seed``).
    seed : int
        The run's seed: the check reads only the rows a run with it will not test on.
    _dataset : DistillationDataset
        The dataset of those inputs (not hashed).

    Returns
    -------
    Outcome
        ``value`` is a :class:`~hpmkd.leakage.LeakageCheck`.
    """
    from hpmkd.leakage import check_dataset

    try:
        return Outcome(check_dataset(_dataset, random_state=seed))
    except ValueError as exc:
        return Outcome(error=str(exc))


@st.cache_data(max_entries=64, show_spinner="Computing feature importance ...")
def importance(job_id: str, name: str, k: int, _distiller: Any) -> tuple[Any, str]:
    """Feature importance of one model of a finished run for class ``k``.

    Parameters
    ----------
    job_id : str
        Identifies the run (cache key with ``name`` and ``k``).
    name : str
        Model name (a teacher ``"teacher ..."`` or a candidate).
    k : int
        Class index (one-vs-rest).
    _distiller : AutoDistiller
        The finished run (not hashed).

    Returns
    -------
    (Importance or None, str)
        See :func:`hpmkd_app.explain.feature_importance`.
    """
    from hpmkd_app import compare, explain

    result = _distiller.result_
    entries = compare.teachers(result) + compare.students(result)
    entry = next((e for e in entries if e.name == name), None)
    if entry is None:
        return None, f"no model named {name!r} in this run"
    model, X, predict = compare.model_inputs(_distiller.dataset, result, entry)
    if model is None:
        teacher = next((t for t in _distiller.dataset.teachers
                        if t.name == entry.result.teacher_name), None)
        if teacher is not None and teacher.kind == "file":
            return None, ("not available for a teacher file: it only ever runs in its "
                          "isolated process, never in this server")
        return None, "no model object (the teacher was given as probability columns)"
    positions = explain.sample_positions(len(X))
    y = np.asarray(result.y_test, dtype=int)[positions]
    return explain.feature_importance(model, X.iloc[positions], y, k, predict)


@st.cache_data(max_entries=32, show_spinner=False)
def model_download(job_id: str, name: str, _distiller: Any) -> bytes:
    """Joblib bytes of one candidate of a finished run.

    Parameters
    ----------
    job_id : str
    name : str
        Candidate name.
    _distiller : AutoDistiller
        The finished run (not hashed).
    """
    from hpmkd_app import compare, exports

    entry = next(e for e in compare.candidates(_distiller.result_) if e.name == name)
    return exports.model_bytes(entry.result.model)
