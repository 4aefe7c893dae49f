"""Small rendering helpers shared by the pages (guards, links, the sidebar summary)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, HPMKDInputError
from hpmkd.result import RunResult
from hpmkd_app import cached, configform, jobs, run_history, sessions, state, tables, teachers
from hpmkd_app.server_errors import web_message

log = logging.getLogger(__name__)

PAGES = {
    "data": ("pages/1_data.py", "Data & teachers", ":material/table_chart:"),
    "configure": ("pages/2_configure.py", "Configure", ":material/tune:"),
    "distill": ("pages/3_distill.py", "Distill", ":material/play_circle:"),
    "compare": ("pages/4_compare.py", "Compare", ":material/compare_arrows:"),
    "export": ("pages/5_export.py", "Export", ":material/download:"),
}


def run_through_app() -> None:
    """Make sure ``app.py`` runs around the page (call first on every page).

    Streamlit treats a ``pages/`` folder beside the entry script as an old-style
    multipage app until the process first runs ``st.navigation``. So the first request
    a fresh server gets for a page URL (a reload of ``/export`` after a restart) runs the
    page file *alone*: no page config, no navigation, no session restored from the
    ``?session=`` link. Here the page notices (the flag is still set), clears it, as
    ``st.navigation`` would, and reruns: the rerun goes through ``app.py`` to the same
    page (a page's id is derived from its URL path, which ``app.py`` keeps). A page run
    on its own in a test has no ``pages/`` folder beside it, so nothing happens there.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


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


#: What the verdict table's intervals and outcomes mean (under the table).
VERDICT_NOTE = (
    "Every comparison of the selected student on the test rows, student minus the other "
    "model (higher is better in each metric shown). 95% interval: paired bootstrap "
    "(percentile) over the test rows. Above 0: *helped* (against the hard-label twin) or "
    "*better than the teacher*; below 0: *hurt* or *worse than the teacher*; containing 0: "
    "no measurable difference."
)


def show_verdict(result: RunResult) -> None:
    """The distillation verdict of a finished run: its headline, then every comparison
    of the selected student (twin and each teacher, in the selection metric and in KS)
    as :meth:`hpmkd.result.Verdict.table` builds it for the report too.

    Parameters
    ----------
    result : RunResult
    """
    verdict = result.verdict
    if verdict is None:
        st.caption("The student was compared with no other model on the test rows: no "
                   "distillation verdict.")
        return
    st.markdown(f"**Distillation verdict** ({verdict.outcome}): {verdict.text}.")
    st.dataframe(verdict.table(), hide_index=True, width="stretch")
    st.caption(VERDICT_NOTE)


def current_config() -> tuple[HPMConfig | None, str | None]:
    """The validated config of the Configure page, or the error text to show."""
    try:
        return configform.to_config(state.config_form()), None
    except HPMKDInputError as exc:
        return None, web_message(exc, "no run can start", log)


def current_job() -> jobs.Job | None:
    """The job of the latest run made on the current inputs (``None``: no such run, or
    the server no longer knows it)."""
    record = sessions.current_record()
    return jobs.get_job(record.job_id) if record is not None else None


def finished_run() -> tuple[jobs.Job, AutoDistiller] | None:
    """The finished run the page shows, or ``None`` after telling the user why not.

    The run of the *current* inputs, unless the user opened another one from the run
    history: then a banner says which run it is and whether it matches the current
    inputs. A run made on other data, teachers or settings is never shown as current.
    """
    fingerprint = sessions.inputs_fingerprint()
    opened = sessions.opened_record()
    if opened is not None:
        return _opened_run(opened, fingerprint)
    records = sessions.runs()
    record = run_history.current(records, fingerprint)
    if record is None:
        if records:
            st.info("**The current inputs have no run yet.** The runs of this session were "
                    "made on other data, teachers or settings; they are in the run history "
                    "below, where you can open one explicitly. Start a run on the current "
                    "inputs on the Distill page.")
        else:
            st.info("No distillation run yet. Start one on the Distill page.")
        page_link("distill", "Go to Distill")
        return None
    job = jobs.get_job(record.job_id)
    if job is None or (job.finished and job.status != "done"):
        # The last try on these inputs was cancelled, failed, or was lost in a server
        # restart: an earlier finished run of the very same inputs is still their run.
        done = run_history.latest_done(records, fingerprint)
        earlier = jobs.get_job(done.job_id) if done is not None else None
        if earlier is not None and earlier.status == "done" and earlier.distiller is not None:
            if job is None:
                st.warning(sessions.unknown_job_message(record))
            else:
                st.info(f"The last run on these inputs ended ({job.status}).")
            st.info(f"Showing the previous finished run of the same inputs, `{earlier.id}` "
                    f"(started {when(earlier.started_at)}).")
            return earlier, earlier.distiller
    return _usable(record, job)


def _usable(record: run_history.RunRecord,
            job: jobs.Job | None) -> tuple[jobs.Job, AutoDistiller] | None:
    if job is None:
        st.warning(sessions.unknown_job_message(record))
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
    result = job.distiller.result_
    if result is not None and result.partial:
        st.warning(f"**Partial run** — {result.stop_reason}. It holds the "
                   f"{len(result.candidates)} candidate(s) that finished; the best of them "
                   "is compared and exported below.")
    return job, job.distiller


def _opened_run(record: run_history.RunRecord,
                fingerprint: str) -> tuple[jobs.Job, AutoDistiller] | None:
    text = (f"**Run history:** viewing run `{record.job_id}` on **{record.dataset}**, "
            f"started {when(record.started_at)}"
            + (f", student `{record.selected}`" if record.selected else "") + ".")
    if record.matches(fingerprint):
        st.info(text + " It matches the current inputs.", icon=":material/history:")
    else:
        st.warning(text + " **It does not match the current inputs** (the data, teachers "
                   "or settings changed since): it is not the current run.",
                   icon=":material/history:")
    st.button("Back to the run of the current inputs", icon=":material/undo:",
              key="close_history_run", on_click=sessions.open_run, args=(None,))
    return _usable(record, jobs.get_job(record.job_id))


def run_history_list(switch_to: str | None = None) -> None:
    """The session's runs, newest first, each with an **Open** button.

    Parameters
    ----------
    switch_to : str, optional
        Page (key of :data:`PAGES`) to go to after opening a run (from Distill:
        ``"compare"``); default: stay on this page.
    """
    records = sessions.runs()
    if not records:
        return
    fingerprint = sessions.inputs_fingerprint()
    opened = state.opened_run_id()
    with st.expander(f"Run history ({len(records)})", icon=":material/history:"):
        st.caption("Every run of this session, with the inputs it ran on. Only a run that "
                   "matches the current inputs is the current run; open another one "
                   "explicitly to view it as history.")
        for record in reversed(records):
            c1, c2 = st.columns([6, 1], vertical_alignment="center")
            mark = " · **open**" if record.job_id == opened else ""
            c1.markdown(f"`{record.job_id}` — {run_history.label(record, fingerprint)}{mark}")
            label = f"Open in {PAGES[switch_to][1]}" if switch_to else "Open"
            if c2.button(label, key=f"open_run_{record.job_id}",
                         disabled=record.job_id == opened):
                sessions.open_run(record.job_id)
                if switch_to:
                    # A page run on its own (tests) has no other page to go to.
                    with contextlib.suppress(StreamlitAPIException, KeyError):
                        st.switch_page(PAGES[switch_to][0])
                st.rerun()


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
    record = sessions.current_record()
    if record is None:
        side.caption("Run: **none on the current inputs** yet")
    else:
        job = jobs.get_job(record.job_id)
        if job is None:
            side.caption(f"Run `{record.job_id}`: no longer on the server")
        else:
            view = job.view()
            extra = " (from cache)" if view.from_cache else ""
            side.caption(f"Run `{view.id}`: **{view.status}**{extra}")
    others = len(sessions.runs()) - (record is not None)
    if others > 0:
        side.caption(f"{others} other run(s) in the run history")
    if sessions.token():
        side.caption("Session kept on the server: reload or bookmark this page's link to "
                     "come back to it.")
    problem = st.session_state.get(sessions.STORE_PROBLEM)
    if problem:
        side.warning(f"This session is not kept on the server: {problem}. A reload will "
                     "start over.")
    for note in sessions.notes():
        side.warning(note)
