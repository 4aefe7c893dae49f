"""The session behind the URL: runs bound to their inputs, kept across reloads and restarts.

- **Runs bound to inputs.** :func:`record_run` writes a
  :class:`~hpmkd_app.run_history.RunRecord` with the fingerprint of the current inputs
  (:data:`hpmkd_app.state.INPUTS`) when a run starts. :func:`current_record` is the run
  of the *current* inputs; any other run is only reachable from the history, opened
  explicitly (:func:`open_run`) and labelled as history.
- **Kept on the server.** :func:`save` (called by ``app.py`` after each page) writes the
  inputs and the runs to the :class:`~hpmkd_app.session_store.SessionStore` under a
  random token that goes in the URL (``?session=<token>``); :func:`sync` (called before
  each page) restores them in a new browser session that arrives with that token. A
  finished run comes back from the run cache after a server restart; a run still going
  when the server stopped cannot, and the pages say so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import streamlit as st

from hpmkd_app import configform, jobs, run_history, session_codec, state, teachers
from hpmkd_app.run_history import RunRecord
from hpmkd_app.session_store import SessionStore, SessionTooLarge, new_token, valid_token

log = logging.getLogger(__name__)

#: The URL query parameter that carries the session token.
SESSION_PARAM = "session"
#: The old query parameter of a single run (a link made before sessions existed).
JOB_PARAM = "job"
TOKEN = "hpmkd.session"
SAVED = "hpmkd.session_saved"
NOTES = "hpmkd.session_notes"
#: Why the session could not be stored (shown in the sidebar), if so.
STORE_PROBLEM = "hpmkd.session_store_problem"


def store() -> SessionStore:
    """The server's session store (its place and bounds are the server's, never a user's)."""
    return SessionStore()


def token() -> str | None:
    """This session's token, once it was stored."""
    return st.session_state.get(TOKEN)


def notes() -> list[str]:
    """What could not be restored from the stored session (shown in the sidebar)."""
    return list(st.session_state.get(NOTES, []))


# --------------------------------------------------------------------------- runs
def inputs_fingerprint() -> str:
    """Fingerprint of the current inputs (data, teachers, test rows, config, seed ...)."""
    return session_codec.fingerprint(state.inputs())


def runs() -> list[RunRecord]:
    """The session's runs, oldest first, with the status of their jobs brought up to date."""
    records = state.runs()
    fresh = []
    changed = False
    for record in records:
        if record.finished and (record.selected or record.status != "done"):
            fresh.append(record)
            continue
        job = jobs.get_job(record.job_id)
        selected = None
        if job is not None and job.status == "done" and job.result is not None:
            selected = job.result.selected.name
        new = run_history.updated(record, job.view() if job is not None else None, selected)
        changed |= new != record
        fresh.append(new)
    if changed:
        state.set_runs(fresh)
    return fresh


def record_run(job: jobs.Job, dataset_name: str) -> RunRecord:
    """Bind a just-started job to the current inputs and make it the session's run.

    Parameters
    ----------
    job : Job
    dataset_name : str
        The table's name (the history's label).

    Returns
    -------
    RunRecord
    """
    record = RunRecord(job_id=job.id, fingerprint=inputs_fingerprint(), dataset=dataset_name,
                       started_at=job.started_at, method=job.method, seed=int(job.seed),
                       status=job.status)
    state.set_runs(run_history.remember(state.runs(), record))
    state.set_opened_run_id(None)
    return record


def current_record() -> RunRecord | None:
    """The latest run made on the current inputs (``None``: they have no run yet)."""
    return run_history.current(runs(), inputs_fingerprint())


def running_record() -> RunRecord | None:
    """A run of this session still going, on any inputs."""
    return run_history.running(runs())


def opened_record() -> RunRecord | None:
    """The run opened from the history, if any (and still in the history)."""
    opened = state.opened_run_id()
    if not opened:
        return None
    return next((r for r in runs() if r.job_id == opened), None)


def open_run(job_id: str | None) -> None:
    """Open a run of the history (``None``: back to the run of the current inputs).

    Parameters
    ----------
    job_id : str or None
    """
    state.set_opened_run_id(job_id)


# --------------------------------------------------------------------------- storage
def _record() -> tuple[dict[str, Any], dict[str, bytes]]:
    """The session as JSON-ready data and the blobs it refers to."""
    blobs: dict[str, bytes] = {}
    inputs: dict[str, Any] = {}
    skipped = []
    for key, value in state.inputs().items():
        try:
            inputs[key] = session_codec.encode(value, blobs)
        except ValueError:
            skipped.append(key)  # a table made in memory (tests): nothing to store
    record = {"inputs": inputs, "runs": [r.to_dict() for r in runs()],
              "opened": state.opened_run_id(), "skipped": skipped}
    return record, blobs


def _worth_keeping(record: dict[str, Any]) -> bool:
    """Whether the session holds anything a fresh one does not (data, runs, a config)."""
    inputs = record["inputs"]
    if record["runs"] or inputs.get(state.TABLE) is not None or inputs.get(state.TEACHERS):
        return True
    return (inputs.get(state.CONFIG) != session_codec.encode(configform.default_form(), {})
            or inputs.get(state.METHOD) != "auto"
            or inputs.get(state.SEED) != state.DEFAULT_SEED)


def save() -> None:
    """Store the session when it changed; put its token in the URL.

    Never raises: a session that cannot be stored still works until the browser reloads,
    and the sidebar says why it is not kept.
    """
    try:
        record, blobs = _record()
    except Exception as exc:  # a value the codec does not know is a bug: log, keep serving
        log.exception("session not stored")
        st.session_state[STORE_PROBLEM] = f"the session could not be encoded ({exc})"
        return
    text = json.dumps(record, sort_keys=True, default=str)
    digest = hashlib.sha256((text + "|" + ",".join(sorted(blobs))).encode()).hexdigest()
    current = token()
    if digest != st.session_state.get(SAVED) and (current or _worth_keeping(record)):
        current = current or new_token()
        try:
            store().save(current, {**record, "created_at": st.session_state.get(
                "hpmkd.session_created", time.time())}, blobs)
        except SessionTooLarge as exc:
            st.session_state[STORE_PROBLEM] = str(exc)
            return
        except (OSError, ValueError) as exc:
            log.warning("session not stored: %s", exc)
            st.session_state[STORE_PROBLEM] = f"the server could not store it ({exc})"
            return
        st.session_state[TOKEN] = current
        st.session_state[SAVED] = digest
        st.session_state.pop(STORE_PROBLEM, None)
    if current and st.query_params.get(SESSION_PARAM) != current:
        st.query_params[SESSION_PARAM] = current


def sync() -> None:
    """Before a page: restore a stored session named in the URL, keep the token in it.

    A browser that reloads (or comes back after a server restart) starts a new Streamlit
    session with the same URL; its ``?session=`` token brings back the inputs and the
    runs. An unknown or malformed token is dropped with a note; an old ``?job=`` link
    opens that run as history.
    """
    current = token()
    param = st.query_params.get(SESSION_PARAM)
    if current is None and param:
        record = store().load(param) if valid_token(param) else None
        if record is None:
            st.session_state[NOTES] = [
                "The session in this link is not known to this server (it expired, was "
                "dropped to keep the server's store small, or the link is wrong). A new "
                "session was started."
            ]
            del st.query_params[SESSION_PARAM]
        else:
            _restore(record)
            st.session_state[TOKEN] = param
    elif current and param != current:
        st.query_params[SESSION_PARAM] = current
    if JOB_PARAM in st.query_params:
        _open_job_link(str(st.query_params.get(JOB_PARAM)))
        del st.query_params[JOB_PARAM]


def _restore(record: dict[str, Any]) -> None:
    problems: list[str] = []
    read_blob = store().read_blob
    for key, data in (record.get("inputs") or {}).items():
        if key not in state.INPUTS:
            continue  # an input this version no longer has
        try:
            value = session_codec.decode(data, read_blob)
        except session_codec.RestoreProblem as exc:
            problems.append(str(exc))
            continue
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"Part of the stored session could not be read ({key}: {exc}).")
            continue
        if key == state.TEACHERS and not teachers.trust_uploads_allowed():
            kept = [s for s in value if not s.trusted]
            if len(kept) < len(value):
                problems.append("A model file loaded unrestricted (trusted) was not restored: "
                                "this server no longer allows it. Upload it again.")
            value = kept
        if value is not None:
            st.session_state[key] = value
    records = []
    for item in record.get("runs") or []:
        try:
            rec = RunRecord.from_dict(item)
        except TypeError:
            continue
        if jobs.valid_job_id(rec.job_id):
            records.append(rec)
    state.set_runs(records)
    opened = record.get("opened")
    if isinstance(opened, str) and any(r.job_id == opened for r in records):
        state.set_opened_run_id(opened)
    st.session_state[NOTES] = problems
    if record.get("created_at"):
        st.session_state["hpmkd.session_created"] = float(record["created_at"])


def _open_job_link(job_id: str) -> None:
    """Open the run of an old ``?job=`` link as history (its inputs are not known)."""
    if any(r.job_id == job_id for r in state.runs()):
        state.set_opened_run_id(job_id)
        return
    job = jobs.get_job(job_id)
    if job is None:
        return
    distiller = job.distiller
    name = distiller.dataset.name if distiller is not None and distiller.dataset is not None \
        else "unknown data"
    record = RunRecord(job_id=job.id, fingerprint="", dataset=str(name),
                       started_at=job.started_at, method=job.method, seed=int(job.seed),
                       status=job.status, finished_at=job.finished_at)
    state.set_runs(run_history.remember(state.runs(), record))
    state.set_opened_run_id(job.id)


def unknown_job_message(record: RunRecord) -> str:
    """Why a run of the history is no longer available on this server.

    Parameters
    ----------
    record : RunRecord
    """
    if not record.finished or record.status == run_history.LOST:
        return (f"Run `{record.job_id}` was still going when the server stopped: a running "
                "job cannot survive a server restart. Start it again on the Distill page.")
    if record.status == "done":
        return (f"Run `{record.job_id}` is no longer in the server's run cache (it is "
                "size-limited and drops the oldest runs). Start it again on the Distill page.")
    return (f"Run `{record.job_id}` ended ({record.status}) without a result to show. Start "
            "a new one on the Distill page.")
