"""What the Distill page shows, computed from a job's events and the run's details.

Everything here is a pure function of plain data (:class:`~hpmkd_app.jobs.JobView`,
``record.details``, the config dict), so it is tested without Streamlit.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hpmkd_app.jobs import JobView

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


def leaderboard(view: JobView, metric: str) -> pd.DataFrame:
    """Finished candidates ranked by the validation selection metric.

    Shows validation metrics (what selection sees), size, latency, fit time and whether
    the candidate came from the engine's cache; test metrics appear only after the run
    on the Compare page.

    Parameters
    ----------
    view : JobView
    metric : str
        The selection metric, e.g. ``"ks"``.
    """
    rows = candidate_rows(view)
    columns = [
        *LEADERBOARD_COLUMNS, f"val_{metric}", "val_auc", "val_fidelity", "size_bytes",
        "latency_ms_1k", "fit_seconds", "from_cache",
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


def temperature_frame(view: JobView) -> pd.DataFrame:
    """Temperature and alpha of each finished candidate.

    Parameters
    ----------
    view : JobView
    """
    rows = candidate_rows(view)
    cols = ["name", "source", "temperature", "alpha"]
    if not rows:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame(rows)
    return frame[[c for c in cols if c in frame.columns]]


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


# --------------------------------------------------------------------------- components
@dataclass
class ComponentPanel:
    """One HPM component as shown on the Distill page.

    Attributes
    ----------
    title : str
    on : bool
        Whether the component ran.
    summary : str
        One line: what it did, or why it is off.
    table : DataFrame or None
        Details (selected configs, chain stages, temperature decisions ...).
    bars : dict of str to float
        A small bar chart (attention weights), if any.
    """

    title: str
    on: bool
    summary: str
    table: pd.DataFrame | None = None
    bars: dict[str, float] = field(default_factory=dict)


def _off(title: str, why: str) -> ComponentPanel:
    return ComponentPanel(title, False, f"off — {why}")


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value


def _frame(items: Any) -> pd.DataFrame | None:
    """A table of dict rows; nested values as JSON text, test-split columns left out
    (the Distill page shows what selection sees; test scores are on Compare)."""
    if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
        rows = [{k: _cell(v) for k, v in i.items() if not str(k).startswith("test_")}
                for i in items]
        return pd.DataFrame(rows)
    return None


def live_details(view: JobView) -> dict[str, Any]:
    """Component records known from the run's ``info`` events so far.

    The hpm method announces the selected configs and warm start (``select``), the chain
    stages (``chain``) and the attention weights (``ensemble``) as they happen; the full
    ``record.details`` replaces these when the run ends.

    Parameters
    ----------
    view : JobView
    """
    out: dict[str, Any] = {}
    for event in view.events:
        if event.kind != "info":
            continue
        data = event.data
        if event.phase == "select" and isinstance(data.get("configs"), list):
            configs = data["configs"]
            out["selection"] = {
                "enabled": True,
                "configs": configs,
                "warm_started": any(isinstance(c, dict) and c.get("warm_started")
                                    for c in configs),
            }
            if isinstance(data.get("warm_start"), dict):
                out["warm_start"] = data["warm_start"]
        elif event.phase == "chain" and isinstance(data.get("stages"), list):
            out["chain"] = {"enabled": True, "stages": data["stages"],
                            "stop_reason": event.message}
        elif event.phase == "ensemble" and isinstance(data.get("attention"), dict):
            out["attention"] = data["attention"]
    return out


def component_panels(
    method: str, config: dict[str, Any], details: dict[str, Any] | None,
    view: JobView | None = None,
) -> list[ComponentPanel]:
    """Panels for selection, warm start, chain, temperature, attention, cache, parallel.

    Uses ``record.details`` when the run finished, else what the events show so far.
    A component that did not run says ``off`` and why.

    Parameters
    ----------
    method : str
        The resolved method.
    config : dict
        ``HPMConfig.to_dict()``.
    details : dict or None
        ``record.details`` (``None`` while running).
    view : JobView, optional
        For live values (chain stages, temperatures, cache hits) during the run.
    """
    live = live_details(view) if view is not None else {}
    details = {**live, **(details or {})}
    rows = candidate_rows(view) if view is not None else []
    if method == "legacy":
        why = "the legacy method runs a plain grid (no adaptive components)"
        hits = sum(1 for r in rows if r.get("from_cache"))
        return [
            _off("Configuration selection", why),
            _off("Warm start (optimization memory)", why),
            _off("Progressive chain", why),
            ComponentPanel(
                "Temperatures", True,
                "fixed grid: " + ", ".join(f"{t:g}" for t in config.get("temperatures", [])),
                temperature_frame(view) if view is not None else None,
            ),
            _off("Attention-weighted multi-teacher", why),
            _off("Cache", why) if not hits else ComponentPanel(
                "Cache", True, f"{hits} candidate(s) from cache"),
            ComponentPanel("Parallel training", False, "off — sequential grid"),
        ]
    return [
        _selection(details, config, rows),
        _warm_start(details, config),
        _chain(details, config, rows),
        _temperature(details, config, rows),
        _attention(details, config),
        _cache(details, config, rows),
        _parallel(details, config),
    ]


def _selection(details: dict, config: dict, rows: list[dict]) -> ComponentPanel:
    title = "Configuration selection"
    sel = details.get("selection")
    if not isinstance(sel, dict):
        return ComponentPanel(title, True, f"up to {config.get('max_configs')} configs "
                              "(details when the run ends)")
    if not sel.get("enabled", True):
        return _off(title, str(sel.get("reason", "disabled")))
    configs = sel.get("configs") or []
    warm = " (warm-started from similar past runs)" if sel.get("warm_started") else ""
    return ComponentPanel(title, True, f"{len(configs)} configuration(s) kept{warm}",
                          _frame(configs))


def _warm_start(details: dict, config: dict) -> ComponentPanel:
    title = "Warm start (optimization memory)"
    if not config.get("use_memory", True):
        return _off(title, "use_memory is off")
    ws = details.get("warm_start")
    if not isinstance(ws, dict):
        return ComponentPanel(title, True, "looking for similar past runs")
    if not ws.get("enabled", True):
        return _off(title, str(ws.get("reason", "disabled")))
    neighbours = ws.get("neighbours") or []
    used = "used" if ws.get("used") else "not used"
    reason = f": {ws['reason']}" if ws.get("reason") else ""
    return ComponentPanel(title, bool(ws.get("used")),
                          f"{used}{reason} ({len(neighbours)} similar run(s))",
                          _frame(neighbours))


def _chain(details: dict, config: dict, rows: list[dict]) -> ComponentPanel:
    title = "Progressive chain"
    if not config.get("use_progressive", True):
        return _off(title, "use_progressive is off")
    chain = details.get("chain")
    if not isinstance(chain, dict):
        stages = [r for r in rows if r.get("source") == "chain"]
        table = None
        if stages:
            frame = pd.DataFrame(stages)
            metric = f"val_{config.get('selection_metric', 'ks')}"
            table = frame[[c for c in ("name", "temperature", "alpha", metric)
                           if c in frame.columns]]
        return ComponentPanel(title, True, f"{len(stages)} stage(s) so far", table)
    if not chain.get("enabled", True):
        return _off(title, str(chain.get("reason", "disabled")))
    stages = chain.get("stages") or []
    kept = sum(1 for s in stages if isinstance(s, dict) and s.get("kept"))
    stop = f"; stopped: {chain['stop_reason']}" if chain.get("stop_reason") else ""
    return ComponentPanel(title, True, f"{len(stages)} stage(s), {kept} kept{stop}",
                          _frame(stages))


def _temperature(details: dict, config: dict, rows: list[dict]) -> ComponentPanel:
    title = "Temperatures"
    temp = details.get("temperature")
    if not isinstance(temp, dict):
        adaptive = config.get("use_adaptive_temperature", True)
        mode = "adaptive (from validation feedback)" if adaptive else "fixed list"
        table = pd.DataFrame(rows)[["name", "source", "temperature"]] if rows else None
        return ComponentPanel(title, True, mode, table)
    decisions = temp.get("decisions") or []
    if not temp.get("adaptive", config.get("use_adaptive_temperature", True)):
        temps = ", ".join(f"{t:g}" for t in config.get("temperatures", []))
        return ComponentPanel(title, True, f"adaptive off — fixed list {temps}",
                              _frame(decisions))
    return ComponentPanel(title, True, f"adaptive: {len(decisions)} decision(s)",
                          _frame(decisions))


def _attention(details: dict, config: dict) -> ComponentPanel:
    title = "Attention-weighted multi-teacher"
    if not config.get("use_multi_teacher", False):
        return _off(title, "use_multi_teacher is off")
    att = details.get("attention")
    if not isinstance(att, dict):
        return ComponentPanel(title, True, "weights when the ensemble phase ends")
    if not att.get("enabled", True):
        return _off(title, str(att.get("reason", "disabled")))
    weights = att.get("mean_weights") or {}
    fused, mean = att.get("val_metric_fused"), att.get("val_metric_mean")
    versus = ""
    if isinstance(fused, (int, float)) and isinstance(mean, (int, float)):
        versus = f"; validation metric fused {fused:.4f} vs plain mean {mean:.4f}"
    members = att.get("members") or list(weights)
    return ComponentPanel(
        title, True, f"{len(members)} member(s){versus}",
        bars={str(k): float(v) for k, v in weights.items() if isinstance(v, (int, float))},
    )


def _cache(details: dict, config: dict, rows: list[dict]) -> ComponentPanel:
    title = "Cache"
    if not config.get("use_cache", True):
        return _off(title, "use_cache is off")
    cache = details.get("cache")
    if isinstance(cache, dict):
        if not cache.get("enabled", True):
            return _off(title, str(cache.get("reason", "disabled")))
        return ComponentPanel(title, True,
                              f"{cache.get('hits', 0)} hit(s), {cache.get('misses', 0)} miss(es)")
    hits = sum(1 for r in rows if r.get("from_cache"))
    return ComponentPanel(title, True, f"{hits} candidate(s) from cache so far")


def _parallel(details: dict, config: dict) -> ComponentPanel:
    title = "Parallel training"
    par = details.get("parallel")
    if not config.get("use_parallel", False):
        return _off(title, "use_parallel is off (sequential)")
    if isinstance(par, dict):
        return ComponentPanel(title, True,
                              f"backend {par.get('backend', '?')}, {par.get('n_jobs', '?')} job(s)")
    return ComponentPanel(title, True, f"{config.get('n_jobs')} worker(s)")
