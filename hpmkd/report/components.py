"""The report's HPM components section: what each component did, read from the typed
records of :class:`~hpmkd.result.Components`.

Each of the seven components, and the capacity climb of phase 3, gets a block that says
whether it ran (and why not), lays out its record and draws its chart. A record's typed
fields that the block does not lay out itself are listed under "Other recorded fields",
and the records that have no block of their own (racing, halving, the teachers' attention,
the selection rule) under "Other recorded details", so the report shows everything the run
recorded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hpmkd.report import figures
from hpmkd.report.context import ReportContext
from hpmkd.report.fmt import esc, finite, fmt, kv_table, plain, record_table, table
from hpmkd.result import (
    AttentionRecord,
    CacheRecord,
    CapacityRecord,
    ChainRecord,
    ComponentRecord,
    ParallelRecord,
    SelectionRecord,
    TemperatureRecord,
    WarmStartRecord,
)
from hpmkd.results_table import to_jsonable

#: (field of ``Components``, heading, the component's class) of each component block.
COMPONENTS = (
    ("selection", "Configuration selection", "AdaptiveConfigurationManager"),
    ("warm_start", "Memory warm start", "SharedOptimizationMemory"),
    ("chain", "Progressive chain", "ProgressiveDistillationChain"),
    ("capacity", "Capacity climb", "phase 3, beyond the screened capacities"),
    ("temperature", "Temperature scheduling", "MetaTemperatureScheduler"),
    ("attention", "Multi-teacher attention", "AttentionWeightedMultiTeacher"),
    ("cache", "Cache", "IntelligentCache"),
    ("parallel", "Parallel training", "joblib / Dask backend"),
)
#: The fields each block lays out itself (the others go to "Other recorded fields").
SHOWN_FIELDS: dict[str, frozenset[str]] = {
    "selection": frozenset({"enabled", "meta_features", "configs", "warm_started"}),
    "warm_start": frozenset({"enabled", "used", "reason", "neighbours"}),
    "chain": frozenset({"enabled", "stages", "stop_reason"}),
    "capacity": frozenset(
        {
            "enabled", "start", "start_val_metric", "teacher_val_metric", "teacher_size_bytes",
            "size_cap_bytes", "min_compression", "steps", "stop_reason",
        }
    ),
    "temperature": frozenset({"enabled", "adaptive", "decisions"}),
    "attention": frozenset(
        {"enabled", "members", "mean_weights", "val_metric_fused", "val_metric_mean"}
    ),
    "cache": frozenset({"enabled", "hits", "misses"}),
    "parallel": frozenset({"enabled", "backend", "n_jobs"}),
}
LEGACY_REASON = (
    "not part of the legacy method (a fixed grid of families × temperatures × "
    "alphas trained one after another, with no adaptive components)"
)


@dataclass(frozen=True)
class ComponentState:
    """Whether a component ran, and why not when it did not.

    Attributes
    ----------
    on : bool
    reason : str
        Empty when ``on``.
    """

    on: bool
    reason: str = ""


def component_state(record: ComponentRecord | None, method: str) -> ComponentState:
    """Whether a component's record says it ran, and why not if it did not.

    Parameters
    ----------
    record : ComponentRecord or None
        The component's field of ``RunResult.components``; ``None`` when the method has no
        such component.
    method : str
        The method that ran (it explains a missing record).

    Returns
    -------
    ComponentState
        Off when the record is missing or ``enabled`` is False; the reason is then the
        record's own reason when it has one. A :class:`~hpmkd.result.ParallelRecord` has
        no switch: present means on.
    """
    if record is None:
        if method == "legacy":
            return ComponentState(False, LEGACY_REASON)
        return ComponentState(False, "the run recorded nothing for this component")
    if isinstance(record, ParallelRecord) or record.enabled:
        return ComponentState(True)
    return ComponentState(False, record.reason or "switched off (no reason recorded)")


def section_components(ctx: ReportContext) -> str:
    """One block per component, then the records without a block of their own.

    Parameters
    ----------
    ctx : ReportContext
        ``ctx.component_states`` is filled in for the data block.

    Returns
    -------
    str
        HTML.
    """
    renderers: dict[str, Callable[[ReportContext, Any], str]] = {
        "selection": _selection,
        "warm_start": _warm_start,
        "chain": _chain,
        "capacity": _capacity,
        "temperature": _temperature,
        "attention": _attention,
        "cache": _cache,
        "parallel": _parallel,
    }
    method = ctx.result.method
    out = [
        f"<p>What each HPM-KD component did in this run (method "
        f"<strong>{esc(method)}</strong>).</p>"
    ]
    for key, title, component in COMPONENTS:
        record = getattr(ctx.result.components, key)
        state = component_state(record, method)
        ctx.component_states[key] = {"on": state.on, "reason": state.reason}
        head = f"<h3>{esc(title)} <span class='component-name'>({esc(component)})</span></h3>"
        if state.on:
            inner = renderers[key](ctx, record) + _other_fields(record, SHOWN_FIELDS[key])
        else:
            inner = (
                f"<p class='component-off'><strong>Off / not part of this run:"
                f"</strong> {esc(state.reason)}</p>" + (_cache_use(ctx) if key == "cache" else "")
            )
        out.append(
            f"<div class='component' id='component-{key.replace('_', '-')}' "
            f"data-component='{key}' data-state='{'on' if state.on else 'off'}'>"
            f"{head}{inner}</div>"
        )
    out.append(_other_records(ctx))
    return "".join(out)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, tuple, dict)) and len(value) == 0)


def _other_fields(record: ComponentRecord, shown: frozenset[str]) -> str:
    """The record's fields that its block did not lay out (nothing when all are empty)."""
    rest = [
        (f.name, getattr(record, f.name))
        for f in dataclasses.fields(record)
        if f.name not in shown and not _is_empty(getattr(record, f.name))
    ]
    if not rest:
        return ""
    return (
        f"<details class='extra'><summary>Other recorded fields ({len(rest)})</summary>"
        + kv_table([(esc(k), plain(v, "auto")) for k, v in rest])
        + "</details>"
    )


def _other_records(ctx: ReportContext) -> str:
    """The records that have no block of their own, as their plain data."""
    shown = {key for key, _, _ in COMPONENTS}
    other = {
        f.name: getattr(ctx.result.components, f.name).to_dict()
        for f in dataclasses.fields(ctx.result.components)
        if f.name not in shown and getattr(ctx.result.components, f.name) is not None
    }
    if not other:
        return ""
    return (
        "<div class='component' id='component-other'><h3>Other recorded "
        f"details</h3><pre>{esc(json.dumps(to_jsonable(other), indent=2))}</pre></div>"
    )


def _cache_use(ctx: ReportContext) -> str:
    n = int(ctx.results["from_cache"].astype(bool).sum())
    return (
        f"<p>Rows of the leaderboard served from the cache: "
        f"<span data-metric='from_cache_rows' data-value='{n}'>{n:,}</span> of "
        f"{len(ctx.results):,}.</p>"
    )


# --------------------------------------------------------------------------- blocks
def _selection(ctx: ReportContext, rec: SelectionRecord) -> str:
    parts = []
    if rec.warm_started is not None:
        parts.append(
            f"<p>Warm-started from the optimization memory: "
            f"<strong>{'yes' if rec.warm_started else 'no'}</strong>.</p>"
        )
    if rec.meta_features:
        parts.append(
            "<h4>Dataset meta-features used for ranking</h4>"
            + kv_table([(esc(k), plain(v, "auto")) for k, v in rec.meta_features.items()])
        )
    if rec.configs:
        keys = ["label", "family", "capacity", "temperature", "alpha", "score", "reason"]
        parts.append(
            f"<h4>{len(rec.configs)} configuration(s) kept</h4>" + record_table(rec.configs, keys)
        )
        parts.append(ctx.chart(figures.selection_chart(rec.configs)))
    else:
        parts.append("<p>No configurations were recorded.</p>")
    return "".join(parts)


def _warm_start(ctx: ReportContext, rec: WarmStartRecord) -> str:
    parts = [
        f"<p>Warm start used: <strong>{'yes' if rec.used else 'no'}</strong>"
        + (f" — {esc(rec.reason)}" if rec.reason else "")
        + ".</p>"
    ]
    if rec.neighbours:
        keys = [k for k in ("run_id", "dataset", "distance", "best_config", "best_val_metric")
                if any(k in n for n in rec.neighbours)]
        parts.append("<h4>Similar past runs</h4>" + record_table(rec.neighbours, keys))
        parts.append(ctx.chart(figures.warm_start_chart(rec.neighbours, ctx.metric)))
    else:
        parts.append("<p>No similar past runs were found in the memory.</p>")
    return "".join(parts)


def _chain(ctx: ReportContext, rec: ChainRecord) -> str:
    parts = []
    if rec.stages:
        keys = [
            "stage",
            "name",
            "family",
            "capacity",
            "temperature",
            "alpha",
            "val_metric",
            "gain",
            "kept",
        ]
        parts.append(record_table(rec.stages, keys))
        min_imp = finite(ctx.result.config.min_improvement)
        parts.append(ctx.chart(figures.chain_chart(rec.stages, min_imp, ctx.metric)))
    else:
        parts.append("<p>No chain stages were recorded.</p>")
    if rec.stop_reason:
        parts.append(f"<p><strong>Stopped because:</strong> {esc(rec.stop_reason)}</p>")
    return "".join(parts)


def _capacity(ctx: ReportContext, rec: CapacityRecord) -> str:
    cap = (
        f"{fmt(rec.size_cap_bytes, 'bytes')} bytes (teacher {fmt(rec.teacher_size_bytes, 'bytes')}"
        f" bytes / min_compression {fmt(rec.min_compression, 'general')})"
        if rec.size_cap_bytes is not None
        else "none (the teacher's size is unknown)"
    )
    parts = [
        kv_table(
            [
                ("started from", esc(rec.start or "")),
                (f"its validation {esc(ctx.metric)}", fmt(rec.start_val_metric)),
                (f"teacher's validation {esc(ctx.metric)}", fmt(rec.teacher_val_metric)),
                ("size cap", esc(cap)),
            ]
        )
    ]
    if rec.steps:
        keys = [
            "step",
            "kind",
            "capacity",
            "name",
            "alpha",
            "val_metric",
            "size_bytes",
            "compression",
            "share_below_teacher",
            "improved",
            "kept",
        ]
        parts.append(record_table(rec.steps, keys))
    else:
        parts.append("<p>No rung above the screened capacities was trained.</p>")
    if rec.stop_reason:
        parts.append(f"<p><strong>Stopped because:</strong> {esc(rec.stop_reason)}</p>")
    return "".join(parts)


def _temperature(ctx: ReportContext, rec: TemperatureRecord) -> str:
    parts = []
    if rec.adaptive is not None:
        how = (
            "adapted from validation feedback"
            if rec.adaptive
            else "taken from the fixed list (not adaptive)"
        )
        parts.append(f"<p>Temperatures were <strong>{how}</strong>.</p>")
    if not rec.decisions:
        parts.append("<p>No temperature decisions were recorded.</p>")
        return "".join(parts)
    rows = []
    for d in rec.decisions:
        feedback = d.get("feedback") or {}
        tried = ", ".join(f"T={fmt(t, 'general')}: {fmt(v)}" for t, v in feedback.items())
        rows.append(
            [
                esc(figures.decision_label(d)),
                fmt(d.get("temperature"), "general"),
                esc(d.get("reason", "")),
                esc(tried),
            ]
        )
    headers = [
        "stage / candidate",
        "temperature",
        "reason",
        f"validation {ctx.metric} by temperature",
    ]
    parts.append(table(headers, rows))
    parts.append(ctx.chart(figures.temperature_chart(rec.decisions, ctx.metric)))
    return "".join(parts)


def _attention(ctx: ReportContext, rec: AttentionRecord) -> str:
    parts = []
    if rec.members:
        parts.append("<p>Members: " + ", ".join(esc(m) for m in rec.members) + ".</p>")
    fused, mean = rec.val_metric_fused, rec.val_metric_mean
    if finite(fused) is not None or finite(mean) is not None:
        parts.append(
            f"<p>Validation {esc(ctx.metric)} of the attention-fused target "
            f"<strong>{fmt(fused)}</strong> vs the plain mean of members "
            f"<strong>{fmt(mean)}</strong>.</p>"
        )
    if rec.mean_weights:
        parts.append(ctx.chart(figures.attention_chart(rec.mean_weights, fused, mean, ctx.metric)))
    else:
        parts.append("<p>No attention weights were recorded.</p>")
    return "".join(parts)


def _cache(ctx: ReportContext, rec: CacheRecord) -> str:
    rows = [("hits", fmt(rec.hits, "int")), ("misses", fmt(rec.misses, "int"))]
    if rec.hits + rec.misses > 0:
        rows.append(("hit rate", f"{rec.hits / (rec.hits + rec.misses):.1%}"))
    return kv_table(rows) + _cache_use(ctx)


def _parallel(ctx: ReportContext, rec: ParallelRecord) -> str:
    return kv_table([("backend", esc(rec.backend)), ("workers (n_jobs)", fmt(rec.n_jobs, "int"))])
