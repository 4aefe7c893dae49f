"""Small rendering helpers shared by the pages (guards, links, the sidebar summary)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, HPMKDInputError
from hpmkd_app import cached, configform, jobs, state, tables, teachers

PAGES = {
    "data": ("pages/1_data.py", "Data & teachers", ":material/table_chart:"),
    "configure": ("pages/2_configure.py", "Configure", ":material/tune:"),
    "distill": ("pages/3_distill.py", "Distill", ":material/play_circle:"),
    "compare": ("pages/4_compare.py", "Compare", ":material/compare_arrows:"),
    "export": ("pages/5_export.py", "Export", ":material/download:"),
}


def page_link(name: str, label: str | None = None) -> None:
    """A link to another page (plain text when the page runs on its own, as in tests).

    Parameters
    ----------
    name : str
        Key of :data:`PAGES`.
    label : str, optional
    """
    path, title, icon = PAGES[name]
    try:
        st.page_link(path, label=label or title, icon=icon)
    except (StreamlitAPIException, KeyError):
        st.caption(f"Next: **{label or title}** page.")


def current_dataset() -> tuple[DistillationDataset | None, str | None]:
    """The dataset of the current choices, or the reason there is none.

    Returns
    -------
    (DistillationDataset or None, str or None)
        The error is the engine's message (missing target, teacher problems ...).
    """
    table = state.table()
    if table is None:
        return None, "Load data on the Data & teachers page first."
    target = state.target()
    features = state.features_()
    if not target:
        return None, "Choose a target column on the Data & teachers page."
    sources = state.teacher_sources()
    if not sources:
        return None, (
            "Add a teacher on the Data & teachers page (upload a model file, pick "
            "probability columns, or train the reference teacher)."
        )
    outcome = cached.dataset(table, target, features, sources, state.test_table())
    return outcome.value, outcome.error


def receive_test_upload(upload: Any) -> str | None:
    """Read a test table upload once and make it the run's test rows.

    An upload is read when it is new (file id, name and size); a file that cannot be
    read leaves the current test table as it was.

    Parameters
    ----------
    upload : UploadedFile or None
        The test uploader's value.

    Returns
    -------
    str or None
        The error of the file in the uploader, to show while it is there.
    """
    if upload is None:
        return None
    signature = (upload.file_id, upload.name, upload.size)
    if st.session_state.get(state.TEST_UPLOAD_SIG) != signature:
        st.session_state[state.TEST_UPLOAD_SIG] = signature
        st.session_state.pop(state.TEST_UPLOAD_ERROR, None)
        try:
            with st.spinner(f"Reading {upload.name} ..."):
                state.set_test_table(
                    tables.load_test_table_bytes(upload.getvalue(), upload.name))
        except HPMKDInputError as exc:
            st.session_state[state.TEST_UPLOAD_ERROR] = str(exc)
    return st.session_state.get(state.TEST_UPLOAD_ERROR)


def current_leakage(dataset: DistillationDataset) -> tuple[Any, str | None]:
    """The pre-run leakage check of the current inputs' dataset, or why there is none.

    Parameters
    ----------
    dataset : DistillationDataset
        From :func:`current_dataset`.

    Returns
    -------
    (LeakageCheck or None, str or None)
    """
    table = state.table()
    if table is None:
        return None, "no data"
    key = cached.dataset_key(table, state.target() or "", state.features_(),
                             state.teacher_sources(), state.test_table())
    outcome = cached.leakage_check(key, state.seed(), dataset)
    return outcome.value, outcome.error


def reference_teachers_of(dataset: DistillationDataset, validation_split: float) -> list[str]:
    """Teachers the app trained on exactly the train rows a run of these inputs will use.

    Parameters
    ----------
    dataset : DistillationDataset
    validation_split : float
        The configured validation share (with the session's seed it decides the rows).
    """
    try:
        train = dataset.split(validation_split, state.seed()).train
    except HPMKDInputError:  # the run itself will say the split is impossible
        return []
    return teachers.teachers_fitted_on(dataset, train)


def use_teacher_refit_oof() -> None:
    """Remedy B on the config form: ``teacher_refit="oof"`` (a button callback)."""
    state.replace_config_form({**state.config_form(), "teacher_refit": "oof"})


def test_rows_note(dataset: DistillationDataset) -> str:
    """Where a dataset's test rows come from, e.g. ``"test rows: from your test table,
    200 rows"``.

    Parameters
    ----------
    dataset : DistillationDataset
    """
    n_test = teachers.separate_test_rows(dataset)
    if n_test:
        return f"test rows: from your test table, {n_test:,} rows"
    return (f"test rows: {100 * dataset.test_size:.0f}% of the table held out at random "
            "(seeded)")


def current_config() -> tuple[HPMConfig | None, str | None]:
    """The validated config of the Configure page, or the engine's error text."""
    try:
        return configform.to_config(state.config_form()), None
    except HPMKDInputError as exc:
        return None, str(exc)


def current_job() -> jobs.Job | None:
    """The session's job (re-attached from the URL after a reload)."""
    return jobs.get_job(state.job_id())


def finished_run() -> tuple[jobs.Job, AutoDistiller] | None:
    """The session's finished run, or ``None`` after telling the user what to do."""
    job = current_job()
    if job is None:
        st.info("No distillation run yet. Start one on the Distill page.")
        page_link("distill", "Go to Distill")
        return None
    if not job.finished:
        st.info("The run is still going; results appear here when it is done.")
        page_link("distill", "Watch the run")
        return None
    if job.status != "done" or job.distiller is None:
        st.warning(f"The last run did not finish ({job.status}). Start a new one.")
        page_link("distill", "Go to Distill")
        return None
    return job, job.distiller


def when(timestamp: float | None) -> str:
    """Local time of a ``time.time()`` value, ``YYYY-MM-DD HH:MM:SS``.

    Parameters
    ----------
    timestamp : float or None
    """
    if not timestamp:
        return "?"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def sidebar_summary() -> None:
    """Where the user stands: data, target, teachers, config and the run."""
    side = st
    side.markdown("### Your session")
    table = state.table()
    if table is None:
        side.caption("Data: not loaded")
    else:
        side.caption(f"Data: **{table.name}** ({table.n_rows:,} rows)")
        side.caption(f"Target: **{state.target()}** · {len(state.features_())} features")
        test = state.test_table()
        side.caption(f"Test rows: **{test.name}** ({test.n_rows:,} rows)" if test is not None
                     else f"Test rows: {100 * teachers.TEST_SIZE:.0f}% of the table")
    sources = state.teacher_sources()
    side.caption(f"Teachers: {', '.join(s.name for s in sources) if sources else 'none yet'}")
    _, error = current_config()
    side.caption(f"Method: **{state.method()}** · config {'invalid' if error else 'valid'}")
    job = current_job()
    if job is not None:
        view = job.view()
        extra = " (from cache)" if view.from_cache else ""
        side.caption(f"Run `{view.id}`: **{view.status}**{extra}")
