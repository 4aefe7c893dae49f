"""Session-state keys of the app and typed accessors.

Every key is the app's own (``hpmkd.*``), never a widget key: Streamlit deletes a
widget's state when its page unmounts, so values that must survive page switches are
copied here. Only plain data is stored (tables, teacher sources with their bytes, the
test table, the config form dict, the run records); live models and datasets come from
:mod:`hpmkd_app.cached`, runs from :mod:`hpmkd_app.jobs`.

:data:`INPUTS` lists every input of a run in one place: a run is bound to their
fingerprint, and the session store keeps them (:mod:`hpmkd_app.sessions`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from hpmkd_app import configform
from hpmkd_app.run_history import RunRecord
from hpmkd_app.tables import LoadedTable, default_target
from hpmkd_app.teachers import TeacherSource

# The run's data inputs: the table, its target and features, the teachers and the
# optional separate test table (plain data; everything a dataset is built from).
TABLE = "hpmkd.table"
TARGET = "hpmkd.target"
FEATURES = "hpmkd.features"
TEACHERS = "hpmkd.teachers"
TEST_TABLE = "hpmkd.test_table"
TEST_UPLOAD_VERSION = "hpmkd.test_upload_version"
#: The test upload already read (file id, name, size) and the error of the last one.
TEST_UPLOAD_SIG = "hpmkd.test_upload_sig"
TEST_UPLOAD_ERROR = "hpmkd.test_upload_error"
TEACHER_ERRORS = "hpmkd.teacher_errors"
DATA_VERSION = "hpmkd.data_version"
CONFIG = "hpmkd.config"
CONFIG_VERSION = "hpmkd.config_version"
METHOD = "hpmkd.method"
SEED = "hpmkd.seed"
REPORTS = "hpmkd.reports"
#: The session's runs (:class:`~hpmkd_app.run_history.RunRecord`, oldest first).
RUNS = "hpmkd.runs"
#: Job id of a run opened explicitly from the run history.
OPENED_RUN = "hpmkd.opened_run"
DEFAULT_SEED = 42


def table() -> LoadedTable | None:
    """The loaded table, if any."""
    return st.session_state.get(TABLE)


def set_table(new: LoadedTable) -> None:
    """Make ``new`` the current table and reset the choices that depend on the old one.

    The target defaults to ``target`` (or the last column) and the features to all other
    columns. Uploaded model files stay (they may fit the new table); the reference
    teacher and probability columns, which belong to the old table, are removed.

    Parameters
    ----------
    new : LoadedTable
    """
    st.session_state[TABLE] = new
    columns = list(new.frame.columns)
    target = default_target(columns)
    st.session_state[TARGET] = target
    st.session_state[FEATURES] = [c for c in columns if c != target]
    st.session_state[TEACHERS] = [s for s in teacher_sources() if s.kind == "file"]
    bump_data_version()


def data_version() -> int:
    """Generation of the target/feature widgets (bumped when the app changes them)."""
    return int(st.session_state.get(DATA_VERSION, 0))


def bump_data_version() -> None:
    """Give the target/feature widgets new identities so the browser forgets old values."""
    st.session_state[DATA_VERSION] = data_version() + 1


def target() -> str | None:
    """The chosen target column."""
    return st.session_state.get(TARGET)


def set_target(value: str) -> None:
    """Choose the target; it is removed from the features.

    Parameters
    ----------
    value : str
    """
    old = st.session_state.get(TARGET)
    st.session_state[TARGET] = value
    features = [c for c in features_() if c != value]
    current = table()
    if old and old != value and current is not None and old in current.frame.columns:
        features.append(old)
        order = list(current.frame.columns)
        features.sort(key=order.index)
    st.session_state[FEATURES] = features


def features_() -> list[str]:
    """The chosen feature columns."""
    return list(st.session_state.get(FEATURES, []))


def set_features(values: list[str]) -> None:
    """Choose the features.

    Parameters
    ----------
    values : list of str
    """
    st.session_state[FEATURES] = list(values)


def teacher_sources() -> list[TeacherSource]:
    """The teachers added so far."""
    return list(st.session_state.get(TEACHERS, []))


def add_teacher(source: TeacherSource) -> None:
    """Add a teacher source, replacing one with the same identity.

    Parameters
    ----------
    source : TeacherSource
    """
    kept = [s for s in teacher_sources() if s.key() != source.key()]
    if source.kind == "file":  # the same file loaded restricted or trusted: keep the last
        kept = [s for s in kept if (s.kind, s.name, s.digest) != ("file", source.name,
                                                                    source.digest)]
    if source.kind in ("reference", "proba_cols"):
        kept = [s for s in kept if s.kind != source.kind]
    st.session_state[TEACHERS] = [*kept, source]


def remove_teacher(index: int) -> None:
    """Remove the teacher at ``index``.

    Parameters
    ----------
    index : int
    """
    sources = teacher_sources()
    if 0 <= index < len(sources):
        sources.pop(index)
    st.session_state[TEACHERS] = sources


def test_table() -> LoadedTable | None:
    """The separate test table, if one was uploaded (its rows are the run's test rows)."""
    return st.session_state.get(TEST_TABLE)


def set_test_table(new: LoadedTable | None) -> None:
    """Use ``new`` as the run's test rows; ``None`` holds out part of the table instead.

    Removing it also gives the test uploader a new identity, so the browser forgets the
    file it still shows.

    Parameters
    ----------
    new : LoadedTable or None
    """
    if new is None:
        st.session_state.pop(TEST_TABLE, None)
        st.session_state[TEST_UPLOAD_VERSION] = test_upload_version() + 1
        st.session_state.pop(TEST_UPLOAD_SIG, None)
        st.session_state.pop(TEST_UPLOAD_ERROR, None)
    else:
        st.session_state[TEST_TABLE] = new


def test_upload_version() -> int:
    """Generation of the test table uploader (bumped when the test table is removed)."""
    return int(st.session_state.get(TEST_UPLOAD_VERSION, 0))


def teacher_errors() -> dict[str, str]:
    """Outcome of each model upload already checked, by upload file id and loading mode
    (``"<file id>:restricted"`` or ``":trusted"``; ``""`` when the model loaded, else the
    error text)."""
    return st.session_state.setdefault(TEACHER_ERRORS, {})


def config_form() -> dict[str, Any]:
    """The config form values (initialised to ``HPMConfig()`` defaults)."""
    form = st.session_state.get(CONFIG)
    if form is None:
        form = configform.default_form()
        st.session_state[CONFIG] = form
    # A field added to HPMConfig after the form was stored gets its default.
    missing = {k: v for k, v in configform.default_form().items() if k not in form}
    if missing:
        form = {**form, **missing}
        st.session_state[CONFIG] = form
    return dict(form)


def set_config_form(form: dict[str, Any]) -> None:
    """Store the config form values.

    Parameters
    ----------
    form : dict
    """
    st.session_state[CONFIG] = dict(form)


def config_version() -> int:
    """Generation of the config widgets (bumped when a preset replaces the form)."""
    return int(st.session_state.get(CONFIG_VERSION, 0))


def replace_config_form(form: dict[str, Any]) -> None:
    """Replace the whole form (a preset) and give the config widgets new identities.

    Parameters
    ----------
    form : dict
    """
    set_config_form(form)
    st.session_state[CONFIG_VERSION] = config_version() + 1


def method() -> str:
    """The chosen method (``auto`` by default)."""
    return st.session_state.get(METHOD, "auto")


def set_method(value: str) -> None:
    """Choose the method.

    Parameters
    ----------
    value : str
    """
    st.session_state[METHOD] = value


def seed() -> int:
    """The run's random seed."""
    return int(st.session_state.get(SEED, DEFAULT_SEED))


def set_seed(value: int) -> None:
    """Set the run's random seed.

    Parameters
    ----------
    value : int
    """
    st.session_state[SEED] = int(value)


def runs() -> list[RunRecord]:
    """The session's runs, oldest first (each bound to the fingerprint of its inputs)."""
    return list(st.session_state.get(RUNS, []))


def set_runs(records: list[RunRecord]) -> None:
    """Store the session's runs.

    Parameters
    ----------
    records : list of RunRecord
    """
    st.session_state[RUNS] = list(records)


def opened_run_id() -> str | None:
    """The job id of the run the user opened from the history, if any."""
    return st.session_state.get(OPENED_RUN)


def set_opened_run_id(value: str | None) -> None:
    """Open a run from the history (``None``: back to the run of the current inputs).

    Parameters
    ----------
    value : str or None
    """
    if value:
        st.session_state[OPENED_RUN] = value
    else:
        st.session_state.pop(OPENED_RUN, None)


#: Every input of a run held in the session, with its accessor. The one place that says
#: what a run depends on: the run fingerprint (:func:`hpmkd_app.sessions.inputs_fingerprint`)
#: and the session store both read this, so a new input (e.g. a test table) joins both by
#: adding its line here. Values must be types :mod:`hpmkd_app.session_codec` knows.
INPUTS: dict[str, Callable[[], Any]] = {
    TABLE: table,
    TARGET: target,
    FEATURES: features_,
    TEACHERS: teacher_sources,
    TEST_TABLE: test_table,
    CONFIG: config_form,
    METHOD: method,
    SEED: seed,
}


def inputs() -> dict[str, Any]:
    """The current value of every run input (:data:`INPUTS`), by session key."""
    return {key: read() for key, read in INPUTS.items()}
