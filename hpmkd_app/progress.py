"""A job's progress folded from its events: phases, candidates so far, the event log.

Everything here is a pure function of a :class:`~hpmkd_app.runner.JobView` (plain data),
so it is tested without Streamlit. The component panels (selection, chain, attention ...)
are in :mod:`hpmkd_app.panels`, their live records in :mod:`hpmkd_app.live_records`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hpmkd_app.runner import JobView

#: Phases each method announces (the run_start event carries the authoritative list).
METHOD_PHASES = {
    "legacy": ("grid", "compare"),
    "hpm": ("select", "chain", "train", "ensemble", "compare"),
}
PHASE_LABELS = {
    "select": "1 · select configurations",
    "chain": "2 · progressive chain",
    "train": "3 · train candidates",
    "ensemble": "4 · multi-teacher ensemble",
    "compare": "compare on validation",
    "grid": "train the grid",
}


def resolved_method(view: JobView) -> str:
    """The method the run uses (from its ``run_start`` event, else as requested).

    Parameters
    ----------
    view : JobView
    """
    for event in view.events:
        if event.kind == "run_start":
            return str(event.data.get("method", view.method))
    return view.method


def method_reason(view: JobView) -> str | None:
    """Why the method was chosen (from ``run_start``), if known.

    Parameters
    ----------
    view : JobView
    """
    for event in view.events:
        if event.kind == "run_start":
            return event.data.get("method_reason")
    return None


def expected_phases(view: JobView) -> list[str]:
    """Phase names of the run in order.

    Parameters
    ----------
    view : JobView
    """
    for event in view.events:
        if event.kind == "run_start" and event.data.get("phases"):
            return [str(p) for p in event.data["phases"]]
    method = resolved_method(view)
    if method in METHOD_PHASES:
        return list(METHOD_PHASES[method])
    return []


@dataclass(frozen=True)
class PhaseStatus:
    """One phase's state.

    Attributes
    ----------
    name : str
    state : {"pending", "running", "done", "skipped", "stopped"}
    seconds : float or None
    """

    name: str
    state: str
    seconds: float | None


def phase_statuses(view: JobView, now: float | None = None) -> list[PhaseStatus]:
    """State and seconds of every phase.

    Phases that started and ended are ``done`` (seconds from ``phase_end``); one that
    started but has not ended is ``running`` (seconds so far), or ``stopped`` if the job
    ended; a phase that never started is ``pending`` while the job runs and ``skipped``
    after it finished.

    Parameters
    ----------
    view : JobView
    now : float, optional
        Current ``time.time()`` (for the running phase's seconds).
    """
    now = time.time() if now is None else now
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    order: list[str] = []
    for event in view.events:
        if event.phase is None:
            continue
        if event.kind == "phase_start":
            started.setdefault(event.phase, event.time)
            if event.phase not in order:
                order.append(event.phase)
        elif event.kind == "phase_end":
            seconds[event.phase] = seconds.get(event.phase, 0.0) + float(
                event.data.get("seconds", event.time - started.get(event.phase, event.time))
            )
    names = expected_phases(view)
    names += [p for p in order if p not in names]
    out = []
    for name in names:
        if name in seconds and (name not in started or _ended_last(view, name)):
            out.append(PhaseStatus(name, "done", seconds[name]))
        elif name in started:
            state = "stopped" if view.finished else "running"
            end = view.finished_at if view.finished and view.finished_at else now
            out.append(PhaseStatus(name, state, max(0.0, end - started[name])))
        else:
            state = "skipped" if view.finished and view.status == "done" else "pending"
            if view.finished and view.status != "done":
                state = "not run"
            out.append(PhaseStatus(name, state, None))
    return out


def running_phase(view: JobView) -> str | None:
    """The phase running now, if any.

    Parameters
    ----------
    view : JobView
    """
    return next((p.name for p in phase_statuses(view) if p.state == "running"), None)


def _ended_last(view: JobView, phase: str) -> bool:
    """Whether the phase's last start has a matching end."""
    last = None
    for event in view.events:
        if event.phase == phase and event.kind in ("phase_start", "phase_end"):
            last = event.kind
    return last == "phase_end"


def phase_frame(view: JobView, now: float | None = None) -> pd.DataFrame:
    """The phase table: phase, status, seconds.

    Parameters
    ----------
    view : JobView
    now : float, optional
    """
    rows = [
        {
            "phase": PHASE_LABELS.get(p.name, p.name),
            "status": p.state,
            "seconds": None if p.seconds is None else round(p.seconds, 1),
        }
        for p in phase_statuses(view, now)
    ]
    return pd.DataFrame(rows, columns=["phase", "status", "seconds"])


def recorded_phase_frame(phases: dict[str, float]) -> pd.DataFrame:
    """The phase table of a finished run from ``record.phases`` (a run served from cache
    shows the timings of the run that produced it).

    Parameters
    ----------
    phases : dict of str to float
        Phase name to seconds (``total`` is left out).
    """
    rows = [
        {"phase": PHASE_LABELS.get(name, name), "status": "done (cached run)",
         "seconds": round(float(seconds), 1)}
        for name, seconds in phases.items() if name != "total"
    ]
    return pd.DataFrame(rows, columns=["phase", "status", "seconds"])


def candidate_rows(view: JobView) -> list[dict[str, Any]]:
    """The results rows of the candidates finished so far (from ``candidate`` events).

    Parameters
    ----------
    view : JobView
    """
    return [dict(e.data["row"]) for e in view.events
            if e.kind == "candidate" and isinstance(e.data.get("row"), dict)]


def progress_fraction(view: JobView, expected_candidates: int | None = None) -> float:
    """Share of the run done, in [0, 1].

    Finished phases count whole; the running phase counts half, or by finished
    candidates when their number is known in advance (the legacy grid).

    Parameters
    ----------
    view : JobView
    expected_candidates : int, optional
    """
    if view.status == "done":
        return 1.0
    statuses = phase_statuses(view)
    if not statuses:
        return 0.0
    done = sum(1 for s in statuses if s.state in ("done", "skipped"))
    partial = 0.0
    running = [s for s in statuses if s.state == "running"]
    if running:
        partial = 0.5
        if expected_candidates and running[0].name in ("grid", "train"):
            n = len(candidate_rows(view))
            partial = min(1.0, n / expected_candidates)
    return max(0.0, min(1.0, (done + partial) / len(statuses)))


LEADERBOARD_COLUMNS = (
    "name", "source", "family", "capacity", "temperature", "alpha",
)
#: Validation calibration columns of the leaderboard (lower is better).
CALIBRATION_COLUMNS = ("val_ece", "val_brier")


def leaderboard(view: JobView, metric: str) -> pd.DataFrame:
    """Finished candidates ranked by the validation selection metric.

    Shows validation metrics (what selection sees; ``val_ece`` and ``val_brier``, lower
    is better, when the candidates carry them), size, latency, fit time and whether the
    candidate came from the engine's cache; test metrics appear only after the run on the
    Compare page.

    Parameters
    ----------
    view : JobView
    metric : str
        The selection metric, e.g. ``"ks"``.
    """
    rows = candidate_rows(view)
    # Calibration (lower is better) where the candidates' rows carry it.
    calibration = [c for c in CALIBRATION_COLUMNS if any(c in row for row in rows)]
    columns = [
        *LEADERBOARD_COLUMNS, f"val_{metric}", "val_auc", "val_fidelity", *calibration,
        "size_bytes", "latency_ms_1k", "fit_seconds", "from_cache",
    ]
    columns = list(dict.fromkeys(columns))
    if not rows:
        return pd.DataFrame(columns=["rank", *columns])
    frame = pd.DataFrame(rows)
    for col in columns:
        if col not in frame.columns:
            frame[col] = math.nan
    frame = frame[columns].sort_values(f"val_{metric}", ascending=False, na_position="last")
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame.reset_index(drop=True)


def cache_counts(view: JobView) -> tuple[int, int]:
    """Candidates served from the engine's cache, and candidates trained.

    Parameters
    ----------
    view : JobView
    """
    rows = candidate_rows(view)
    hits = sum(1 for r in rows if r.get("from_cache"))
    return hits, len(rows) - hits


def event_log(view: JobView, limit: int = 200) -> pd.DataFrame:
    """The run's messages with seconds since the job started (latest last).

    Parameters
    ----------
    view : JobView
    limit : int
    """
    rows = [
        {
            "s": round(e.time - view.started_at, 1),
            "event": e.kind,
            "phase": e.phase or "",
            "message": e.message,
        }
        for e in view.events
    ]
    return pd.DataFrame(rows[-limit:], columns=["s", "event", "phase", "message"])
