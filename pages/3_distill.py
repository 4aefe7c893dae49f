"""Page 3 — start the run in the background and watch every phase live."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from hpmkd import choose_method
from hpmkd.parallel import AUTO_PARALLEL_MAX_VALUES, AUTO_PARALLEL_MIN_ROWS
from hpmkd_app import (
    configform,
    jobs,
    leakage_view,
    panels,
    progress,
    run_history,
    sessions,
    state,
    teachers,
    ui,
)

ui.run_through_app()
st.title("3 · Distill")
st.caption(
    "The run trains in the background: you can switch pages or reload the browser and "
    "come back; the page re-attaches to the run."
)

dataset, data_error = ui.current_dataset()
config, config_error = ui.current_config()
method = state.method()

if data_error:
    st.warning(data_error)
    ui.page_link("data", "Go to Data & teachers")
if config_error:
    st.error(config_error)
    ui.page_link("configure", "Go to Configure")

if dataset is not None and config is not None:
    if method == "auto":
        resolved, reason = choose_method(dataset.n_rows, dataset.n_features)
    else:
        resolved, reason = method, f"{method}: chosen explicitly"
    auto = st.checkbox(
        "Choose parallel training by data size", value=True, key="w_auto_parallel",
        help=f"Large tables (from {AUTO_PARALLEL_MIN_ROWS:,} rows up to "
        f"{AUTO_PARALLEL_MAX_VALUES:,} values, rows x features) "
        "train two candidates at a time on both cores, even when Parallel training is off "
        "on the Configure page (switching it on there always wins). Larger tables train in "
        "one process: each worker would hold its own copy of the rows.",
    )
    config, parallel_note = configform.with_auto_parallel(
        config, dataset.n_rows, dataset.n_features, resolved, auto
    )
    expected = jobs.expected_candidates(resolved, config)
    grid = f" · {expected} grid candidates" if expected else ""
    st.markdown(
        f"**{dataset.name}**: {dataset.n_rows:,} rows ({ui.test_rows_note(dataset)}), "
        f"{dataset.n_features} features, "
        f"teacher(s) {', '.join(t.name for t in dataset.teachers)} · method **{resolved}** "
        f"({reason}){grid} · seed {state.seed()}"
    )
    if parallel_note:
        st.caption(parallel_note)
    if resolved == "hpm" and not configform.hpm_available():
        st.warning("The hpm method is not available in this installation yet; choose legacy "
                   "on the Configure page.")

# Only a run made on the current inputs is this page's run; any other is in the history.
record = sessions.current_record()
job = jobs.get_job(record.job_id) if record is not None else None
busy = sessions.running_record()
busy_job = jobs.get_job(busy.job_id) if busy is not None else None
busy = busy if busy_job is not None and not busy_job.finished else None
ready = dataset is not None and config is not None

c1, c2 = st.columns([1, 3], vertical_alignment="center")
fresh = c2.checkbox(
    "Train again even if an identical run is in the app's run cache", value=False,
    key="w_fresh",
    help="Identical runs (same data fingerprint, teachers, config, method and seed) are "
    "normally served instantly from the cache.",
)
if c1.button("Start distillation", type="primary", icon=":material/play_arrow:",
             disabled=not ready or busy is not None):
    job = jobs.start_job(dataset, config, method=method, seed=state.seed(),
                         use_run_cache=not fresh)
    record = busy = sessions.record_run(job, dataset.name)
running = job is not None and not job.finished
if running:
    st.caption("A run is in progress; stop or cancel it below to start another.")
elif busy is not None:
    st.warning(
        f"A run on **other inputs** is still going: `{busy.job_id}` "
        f"({run_history.label(busy, sessions.inputs_fingerprint())}). It is not the run of "
        "the current inputs; cancel it to start one on them, or wait for it.",
        icon=":material/history:",
    )
    st.button("Cancel that run", icon=":material/stop_circle:", key=f"cancel_{busy.job_id}",
              on_click=jobs.cancel_job, args=(busy.job_id,))


def _status(view: jobs.JobView, result: Any) -> None:
    elapsed = (view.finished_at or time.time()) - view.started_at
    if view.status == "done" and result is not None and result.partial:
        st.warning(
            f"**Partial run** after {elapsed:.1f} s — {result.stop_reason}. It keeps the "
            f"{len(result.candidates)} candidate(s) that finished; compare and export it "
            "like any run."
        )
    elif view.status == "done" and view.from_cache:
        st.success(
            f"Done — **served from cache** (identical run finished at "
            f"{ui.when(view.cached_finished_at)}); no training was needed."
        )
    elif view.status == "done":
        st.success(f"Done in {elapsed:.1f} s.")
    elif view.status == "error":
        st.error(view.error or "The run failed.")
    elif view.status == "cancelled":
        st.warning(f"Cancelled after {elapsed:.1f} s. {view.error or 'Nothing was kept.'} "
                   "Earlier runs stay on Compare and Export.")
    elif view.status == "waiting":
        st.info("An identical run is being trained by another session; waiting to reuse it.")
    else:
        n = len(progress.candidate_rows(view))
        phase = progress.running_phase(view) or "starting"
        st.info(f"Running — phase **{phase}**, {n} candidate(s) finished, {elapsed:.0f} s.")
    if view.cache_note:
        st.caption(view.cache_note)


def _components(components: list[panels.ComponentPanel]) -> None:
    cols = st.columns(2)
    for i, panel in enumerate(components):
        with cols[i % 2].container(border=True):
            badge = ":green-badge[on]" if panel.on else ":gray-badge[off]"
            st.markdown(f"**{panel.title}** {badge}")
            st.caption(panel.summary)
            if panel.bars:
                weights = pd.DataFrame({"member": list(panel.bars),
                                        "mean weight": list(panel.bars.values())})
                st.dataframe(weights, hide_index=True, width="stretch", column_config={
                    "mean weight": st.column_config.ProgressColumn(
                        min_value=0.0, max_value=1.0, format="%.3f")})
            if panel.table is not None and not panel.table.empty:
                st.dataframe(panel.table, hide_index=True, width="stretch", height=160)


def render_job(job_id: str, polling: bool) -> None:
    """Status, progress, phases, leaderboard and components of one job."""
    current = jobs.get_job(job_id)
    if current is None:
        st.warning("This run is no longer known to the server (it was restarted). Start a "
                   "new run.")
        return
    view = current.view()
    result = current.result if view.status == "done" else None
    method_name = result.method if result is not None else progress.resolved_method(view)
    _status(view, result)
    metric = view.config.get("selection_metric", "ks")
    expected_n = jobs.expected_candidates(method_name, current.config)
    st.progress(progress.progress_fraction(view, expected_n),
                text=f"run {view.id} · {view.status}")
    if not view.finished:
        b1, b2 = st.columns(2)
        b1.button("Stop and keep the best so far", icon=":material/stop_circle:",
                  key=f"stop_{view.id}", on_click=jobs.stop_job, args=(view.id,),
                  disabled=current.cancel_requested,
                  help="Ends the run within seconds (a fit in progress is abandoned) and "
                  "keeps every candidate that finished: the best of them is compared and "
                  "exported as a partial run.")
        b2.button("Cancel and discard", icon=":material/cancel:", key=f"cancel_{view.id}",
                  on_click=jobs.cancel_job, args=(view.id,),
                  disabled=current.cancel_requested,
                  help="Ends the run and keeps nothing of it; earlier runs stay available.")
    left, right = st.columns([1, 2])
    with left:
        st.markdown("**Phases**")
        phases = (progress.recorded_phase_frame(result.phases)
                  if view.from_cache and result is not None else progress.phase_frame(view))
        st.dataframe(phases, hide_index=True, width="stretch")
        reason = result.method_reason if result is not None else progress.method_reason(view)
        if reason:
            st.caption(reason)
    board = result.results_df() if result is not None else None
    with right:
        if view.from_cache and board is not None:
            st.markdown("**Results** (from the cached run)")
            st.dataframe(board, hide_index=True, width="stretch", height=300)
        else:
            st.markdown(f"**Leaderboard** — by validation {metric} (test scores on Compare; "
                        "ECE and Brier: lower is better)")
            st.dataframe(progress.leaderboard(view, metric), hide_index=True, width="stretch",
                         height=300)
    st.markdown("**HPM components**")
    _components(panels.job_panels(view, result))
    if result is not None:
        st.markdown(f"**Best student:** `{result.selected.name}`")
        ui.show_verdict(result)
        dataset_run = current.distiller.dataset
        leakage_view.render(
            result.leakage, dataset_run.has_separate_test, "distill",
            refit_possible=any(t.kind != "proba_cols" for t in dataset_run.teachers),
            trained_here=teachers.teachers_fitted_on(dataset_run, result.split.train),
        )
        with st.expander("Full results table"):
            st.dataframe(board, hide_index=True, width="stretch")
        ui.page_link("compare", "Next: Compare teacher and student")
    with st.expander("Event log"):
        st.dataframe(progress.event_log(view), hide_index=True, width="stretch")
    if polling and view.finished:
        st.rerun()  # a full rerun: stops polling and enables the Start button again


if job is None:
    if record is not None:
        st.warning(sessions.unknown_job_message(record))
    elif ready:
        st.info("Ready. The current inputs have no run yet: click **Start distillation**.")
else:
    poll = st.fragment(run_every=1.0 if running else None)(render_job)
    poll(job.id, running)
ui.run_history_list(switch_to="compare")
