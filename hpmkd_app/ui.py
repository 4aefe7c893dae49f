"""Small rendering helpers shared by the pages (guards, links, the sidebar summary)."""

from __future__ import annotations

import datetime as dt

import streamlit as st
from streamlit.errors import StreamlitAPIException

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, HPMKDInputError
from hpmkd_app import cached, configform, jobs, state

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
    outcome = cached.dataset(table, target, features, sources)
    return outcome.value, outcome.error


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
    latest = current_job()
    job = jobs.shown_run(latest)
    if job is None:
        if latest is not None:
            st.warning(f"The last run did not finish ({latest.status}). Start a new one.")
            page_link("distill", "Go to Distill")
            return None
        st.info("No distillation run yet. Start one on the Distill page.")
        page_link("distill", "Go to Distill")
        return None
    if job is not latest:
        st.info(f"The last run was {latest.status}; showing the previous run `{job.id}`.")
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
    sources = state.teacher_sources()
    side.caption(f"Teachers: {', '.join(s.name for s in sources) if sources else 'none yet'}")
    _, error = current_config()
    side.caption(f"Method: **{state.method()}** · config {'invalid' if error else 'valid'}")
    job = current_job()
    if job is not None:
        view = job.view()
        extra = " (from cache)" if view.from_cache else ""
        side.caption(f"Run `{view.id}`: **{view.status}**{extra}")
