"""The HPM component panels of the Distill page, from typed component records.

One renderer per component (:func:`selection_panel`, :func:`chain_panel` ...) reads the
component's record by attribute. The records come from the finished run
(:attr:`RunResult.components <hpmkd.result.RunResult>`) or, while the run trains, from
:func:`hpmkd_app.live_records.live_components`; :class:`PanelSource` says which, and the
renderers are the same. Pure functions of plain data, tested without Streamlit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hpmkd.result import (
    AttentionRecord,
    CacheRecord,
    CapacityRecord,
    ChainRecord,
    Components,
    FinalFitRecord,
    ParallelRecord,
    RunResult,
    SelectionRecord,
    TemperatureRecord,
    WarmStartRecord,
    unnamed_neighbours,
)
from hpmkd_app.live_records import live_components
from hpmkd_app.progress import candidate_rows, resolved_method
from hpmkd_app.runner import JobView


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


@dataclass(frozen=True)
class PanelSource:
    """What the panels are drawn from: a finished run or a running job.

    Attributes
    ----------
    method : str
        The resolved method.
    config : mapping
        ``HPMConfig.to_dict()``.
    components : Components
        The typed records (a finished run's, or those known so far).
    candidates : tuple of dict
        Candidate rows (``results_df`` columns) in training order.
    finished : bool
        Whether the records are final (else summaries say "so far").
    """

    method: str
    config: Mapping[str, Any]
    components: Components
    candidates: tuple[Mapping[str, Any], ...] = ()
    finished: bool = True

    @classmethod
    def of_result(cls, result: RunResult) -> PanelSource:
        """The panels of a finished run."""
        frame = result.results_df().head(len(result.candidates))
        return cls(
            method=result.method,
            config=result.config.to_dict(),
            components=result.components,
            candidates=tuple(frame.to_dict("records")),
            finished=True,
        )

    @classmethod
    def of_view(cls, view: JobView) -> PanelSource:
        """The panels of a job from its events so far."""
        return cls(
            method=resolved_method(view),
            config=view.config,
            components=live_components(view),
            candidates=tuple(candidate_rows(view)),
            finished=view.finished,
        )


def job_panels(view: JobView, result: RunResult | None) -> list[ComponentPanel]:
    """The panels of a job: from ``result`` once it is done, else from the events.

    Parameters
    ----------
    view : JobView
    result : RunResult or None
        The finished run's result (``None`` while the job runs or when it failed).
    """
    source = PanelSource.of_result(result) if result is not None else PanelSource.of_view(view)
    return component_panels(source)


def component_panels(source: PanelSource) -> list[ComponentPanel]:
    """Panels for selection, warm start, chain, capacity climb, temperature, attention,
    cache, parallel, the final fit.

    A component that did not run says ``off`` and why.

    Parameters
    ----------
    source : PanelSource
    """
    if source.method == "legacy":
        return _legacy(source)
    c = source.components
    return [
        selection_panel(c.selection, source),
        warm_start_panel(c.warm_start, source),
        chain_panel(c.chain, source),
        capacity_panel(c.capacity, source),
        temperature_panel(c.temperature, source),
        attention_panel(c.attention, source),
        cache_panel(c.cache, source),
        parallel_panel(c.parallel, source),
        final_fit_panel(c.final_fit, source),
    ]


# --------------------------------------------------------------------------- helpers
def _off(title: str, why: str | None) -> ComponentPanel:
    return ComponentPanel(title, False, f"off — {why or 'disabled'}")


def _so_far(source: PanelSource) -> str:
    return "" if source.finished else " so far"


def _cell(value: Any) -> Any:
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, default=str)
    return value


def _frame(items: Sequence[Mapping[str, Any]] | None) -> pd.DataFrame | None:
    """A table of dict rows; nested values as JSON text, test-split columns left out
    (the Distill page shows what selection sees; test scores are on Compare)."""
    if not items or not all(isinstance(i, Mapping) for i in items):
        return None
    rows = [
        {k: _cell(v) for k, v in i.items() if not str(k).startswith("test_")} for i in items
    ]
    return pd.DataFrame(rows)


def _columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame | None:
    if not rows:
        return None
    frame = pd.DataFrame(list(rows))
    return frame[[c for c in columns if c in frame.columns]]


def _fixed_temperatures(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{t:g}" for t in config.get("temperatures", []))


# --------------------------------------------------------------------------- renderers
def selection_panel(record: SelectionRecord | None, source: PanelSource) -> ComponentPanel:
    """Phase 1: the configurations kept."""
    title = "Configuration selection"
    if record is None:
        return ComponentPanel(
            title, True, f"up to {source.config.get('max_configs')} configs "
            "(details when phase 1 ends)"
        )
    if not record.enabled:
        return _off(title, record.reason)
    configs = record.configs or ()
    warm = " (warm-started from similar past runs)" if record.warm_started else ""
    return ComponentPanel(
        title, True, f"{len(configs)} configuration(s) kept{warm}", _frame(configs)
    )


def warm_start_panel(record: WarmStartRecord | None, source: PanelSource) -> ComponentPanel:
    """What the optimization memory offered phase 1."""
    title = "Warm start (optimization memory)"
    if not source.config.get("use_memory", True):
        return _off(title, "use_memory is off")
    if record is None:
        return ComponentPanel(title, True, "looking for similar past runs")
    if not record.enabled:
        return _off(title, record.reason)
    neighbours = record.neighbours or ()
    used = "used" if record.used else "not used"
    reason = f": {record.reason}" if record.reason else ""
    # The memory is shared by everyone who uses the server: past runs by id, never by
    # their table's name (also while the run is live, before its result is kept).
    return ComponentPanel(
        title, bool(record.used), f"{used}{reason} ({len(neighbours)} similar run(s))",
        _frame(list(unnamed_neighbours(neighbours))),
    )


def chain_panel(record: ChainRecord | None, source: PanelSource) -> ComponentPanel:
    """Phase 2: the chain's stages and why it stopped."""
    title = "Progressive chain"
    if not source.config.get("use_progressive", True):
        return _off(title, "use_progressive is off")
    if record is None:
        return ComponentPanel(title, True, f"0 stage(s){_so_far(source)}")
    if not record.enabled:
        return _off(title, record.reason)
    stages = record.stages
    if record.stop_reason is None:  # still training
        return ComponentPanel(title, True, f"{len(stages)} stage(s) so far", _frame(stages))
    kept = sum(1 for s in stages if s.get("kept"))
    stop = f"; stopped: {record.stop_reason}" if record.stop_reason else ""
    return ComponentPanel(
        title, True, f"{len(stages)} stage(s), {kept} kept{stop}", _frame(stages)
    )


def capacity_panel(record: CapacityRecord | None, source: PanelSource) -> ComponentPanel:
    """End of phase 3: the rungs climbed above the screened capacities and why it stopped."""
    title = "Capacity climb"
    if source.config.get("max_capacity_steps", 1) == 0:
        return _off(title, "max_capacity_steps is 0")
    if record is None:
        return ComponentPanel(title, True, "decided when phase 3's configurations are trained")
    if not record.enabled:
        return _off(title, record.reason)
    metric = source.config.get("selection_metric", "ks")
    versus = ""
    if record.start_val_metric is not None and record.teacher_val_metric is not None:
        versus = (
            f" (from {record.start}: val {metric} {record.start_val_metric:.4f} vs teacher "
            f"{record.teacher_val_metric:.4f})"
        )
    # Rungs and students at the size cap; the hard-label start is the same size.
    kept = sum(1 for s in record.steps if s.get("kept") and s.get("kind") != "hard_labels")
    return ComponentPanel(
        title, True,
        f"{kept} student(s) above large kept{versus}; stopped: {record.stop_reason}",
        _frame(record.steps),
    )


def temperature_panel(record: TemperatureRecord | None, source: PanelSource) -> ComponentPanel:
    """Every temperature chosen, with its reason."""
    title = "Temperatures"
    if record is None:
        adaptive = source.config.get("use_adaptive_temperature", True)
        mode = "adaptive (from validation feedback)" if adaptive else "fixed list"
        return ComponentPanel(title, True, mode)
    decisions = record.decisions
    if not record.adaptive:
        return ComponentPanel(
            title, True, f"adaptive off — fixed list {_fixed_temperatures(source.config)}",
            _frame(decisions),
        )
    return ComponentPanel(
        title, True, f"adaptive: {len(decisions)} decision(s){_so_far(source)}",
        _frame(decisions),
    )


def attention_panel(record: AttentionRecord | None, source: PanelSource) -> ComponentPanel:
    """Phase 4: attention weights of the multi-teacher ensemble."""
    title = "Attention-weighted multi-teacher"
    if not source.config.get("use_multi_teacher", False):
        return _off(title, "use_multi_teacher is off")
    if record is None:
        return ComponentPanel(title, True, "weights when the ensemble phase ends")
    if not record.enabled:
        return _off(title, record.reason)
    weights = record.mean_weights or {}
    fused, mean = record.val_metric_fused, record.val_metric_mean
    versus = ""
    if fused is not None and mean is not None:
        versus = f"; validation metric fused {fused:.4f} vs plain mean {mean:.4f}"
    members = record.members or tuple(weights)
    return ComponentPanel(
        title, True, f"{len(members)} member(s){versus}",
        bars={str(k): float(v) for k, v in weights.items()},
    )


def cache_panel(record: CacheRecord | None, source: PanelSource) -> ComponentPanel:
    """The engine cache's hits and misses."""
    title = "Cache"
    if not source.config.get("use_cache", True):
        return _off(title, "use_cache is off")
    if record is None:
        return ComponentPanel(title, True, f"no candidate yet{_so_far(source)}")
    if not record.enabled:
        return _off(title, record.reason)
    return ComponentPanel(
        title, True, f"{record.hits} hit(s), {record.misses} miss(es){_so_far(source)}"
    )


def parallel_panel(record: ParallelRecord | None, source: PanelSource) -> ComponentPanel:
    """Where candidates trained."""
    title = "Parallel training"
    if not source.config.get("use_parallel", False):
        return _off(title, "use_parallel is off (sequential)")
    if record is None:
        return ComponentPanel(title, True, f"{source.config.get('n_jobs')} worker(s)")
    # The scheduler's address is the server's business, not its web users'.
    where = " on the server's Dask scheduler" if record.scheduler else ""
    return ComponentPanel(title, True, f"backend {record.backend}{where}, {record.n_jobs} job(s)")


def _legacy(source: PanelSource) -> list[ComponentPanel]:
    """The legacy grid: no adaptive component; its fixed temperatures and cache hits are
    read from the candidates."""
    why = "the legacy method runs a plain grid (no adaptive components)"
    rows = source.candidates
    hits = sum(1 for r in rows if r.get("from_cache"))
    return [
        _off("Configuration selection", why),
        _off("Warm start (optimization memory)", why),
        _off("Progressive chain", why),
        _off("Capacity climb", why),
        ComponentPanel(
            "Temperatures", True, f"fixed grid: {_fixed_temperatures(source.config)}",
            _columns(rows, ("name", "source", "temperature", "alpha")),
        ),
        _off("Attention-weighted multi-teacher", why),
        ComponentPanel("Cache", True, f"{hits} candidate(s) from cache") if hits
        else _off("Cache", why),
        ComponentPanel("Parallel training", False, "off — sequential grid"),
        final_fit_panel(source.components.final_fit, source),
    ]


def final_fit_panel(record: FinalFitRecord | None, source: PanelSource) -> ComponentPanel:
    """Phase 5: the selected student and its twin fitted once more on training +
    validation rows (both methods)."""
    title = "Final fit on training + validation rows"
    if source.config.get("final_fit") == "off":
        return _off(title, "final_fit is off")
    if record is None:
        return ComponentPanel(title, True, "after the selection, in phase 5")
    if not record.enabled:
        return _off(title, record.reason)
    return ComponentPanel(title, True, record.sentence())
