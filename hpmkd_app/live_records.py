"""Typed component records of a run still in progress, rebuilt from its events.

A finished run's records are :attr:`RunResult.components <hpmkd.result.RunResult>`; while
a run trains the app knows only its progress events. This module turns those events into
the same record types (:class:`~hpmkd.result.SelectionRecord`,
:class:`~hpmkd.result.ChainRecord` ...), so one panel renderer per component
(:mod:`hpmkd_app.panels`) serves a live and a finished run:

- the ``info`` event of a component carries its record's plain form
  (``record.to_dict()``) under the component's name (``selection`` and ``warm_start``
  from phase 1, ``chain`` from phase 2, ``capacity`` from the end of phase 3,
  ``attention`` from phase 4); :func:`selection_record`, :func:`warm_start_record`,
  :func:`chain_record`, :func:`capacity_record` and :func:`attention_record` rebuild the
  records;
- the chain's stages before its own event, the temperatures and the cache hits are read
  from the candidates trained so far (:func:`chain_so_far`, :func:`temperature_so_far`,
  :func:`cache_so_far`).

In the live :class:`~hpmkd.result.Components` of :func:`live_components`, ``None`` means
"not reported yet" as well as "not part of the method".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from hpmkd.result import (
    AttentionRecord,
    CacheRecord,
    CapacityRecord,
    ChainRecord,
    ComponentRecord,
    Components,
    FinalFitRecord,
    SelectionRecord,
    TemperatureRecord,
    WarmStartRecord,
)
from hpmkd_app.progress import candidate_rows, resolved_method
from hpmkd_app.runner import JobView

R = TypeVar("R", bound=ComponentRecord)
Row = Mapping[str, Any]


def _record(cls: type[R], data: Mapping[str, Any]) -> R:
    """``cls`` from its plain form (see :meth:`hpmkd.result.ComponentRecord.from_dict`)."""
    return cls.from_dict(data)


def selection_record(data: Mapping[str, Any]) -> SelectionRecord:
    """Phase 1's :class:`~hpmkd.result.SelectionRecord` from its event payload."""
    return _record(SelectionRecord, data)


def warm_start_record(data: Mapping[str, Any]) -> WarmStartRecord:
    """Phase 1's :class:`~hpmkd.result.WarmStartRecord` from its event payload."""
    return _record(WarmStartRecord, data)


def chain_record(data: Mapping[str, Any]) -> ChainRecord:
    """Phase 2's :class:`~hpmkd.result.ChainRecord` from its event payload."""
    return _record(ChainRecord, data)


def capacity_record(data: Mapping[str, Any]) -> CapacityRecord:
    """The capacity climb's :class:`~hpmkd.result.CapacityRecord` from its event payload."""
    return _record(CapacityRecord, data)


def attention_record(data: Mapping[str, Any]) -> AttentionRecord:
    """Phase 4's :class:`~hpmkd.result.AttentionRecord` from its event payload."""
    return _record(AttentionRecord, data)


#: Key of a component's record in an ``info`` event -> the function rebuilding it (the
#: keys are the attribute names of :class:`~hpmkd.result.Components`).
FROM_EVENT: dict[str, Callable[[Mapping[str, Any]], ComponentRecord]] = {
    "selection": selection_record,
    "warm_start": warm_start_record,
    "chain": chain_record,
    "capacity": capacity_record,
    "attention": attention_record,
    "final_fit": FinalFitRecord.from_dict,
}


def chain_so_far(rows: Sequence[Row], metric: str) -> ChainRecord | None:
    """The chain's stages trained so far (``None`` before the first).

    Stages have the keys of the engine's stage records that are known before the chain
    ends; ``stop_reason`` stays ``None`` (the chain has not stopped yet).

    Parameters
    ----------
    rows : sequence of dict
        Candidate rows in training order.
    metric : str
        The selection metric (``val_<metric>`` is the stage's ``val_metric``).
    """
    stages = tuple(
        {
            "stage": index,
            "name": row.get("name"),
            "family": row.get("family"),
            "capacity": row.get("capacity"),
            "temperature": row.get("temperature"),
            "alpha": row.get("alpha"),
            "val_metric": row.get(f"val_{metric}"),
        }
        for index, row in enumerate((r for r in rows if r.get("source") == "chain"), start=1)
    )
    return ChainRecord(enabled=True, stages=stages) if stages else None


#: Candidate sources whose temperature the scheduler chose (the ensemble student reuses
#: its base configuration's).
SCHEDULED_SOURCES = ("chain", "config")


def temperature_so_far(rows: Sequence[Row], adaptive: bool) -> TemperatureRecord:
    """The temperature of every chain stage and configuration trained so far.

    Parameters
    ----------
    rows : sequence of dict
    adaptive : bool
        ``use_adaptive_temperature`` of the config.
    """
    decisions = tuple(
        {"candidate": r.get("name"), "source": r.get("source"), "temperature": r.get("temperature")}
        for r in rows
        if r.get("source") in SCHEDULED_SOURCES
    )
    return TemperatureRecord(enabled=True, adaptive=adaptive, decisions=decisions)


def cache_so_far(rows: Sequence[Row]) -> CacheRecord:
    """Candidates served from the engine's cache so far (hits) and trained (misses)."""
    hits = sum(1 for r in rows if r.get("from_cache"))
    return CacheRecord(enabled=True, hits=hits, misses=len(rows) - hits)


def live_components(view: JobView) -> Components:
    """The component records a running job has shown so far.

    Parameters
    ----------
    view : JobView

    Returns
    -------
    Components
        Records of the components reported by ``info`` events; for the hpm method also
        the chain stages, temperatures and cache hits of the candidates so far. The legacy
        grid has no components (all ``None``), as in its finished result.
    """
    if resolved_method(view) == "legacy":
        return Components()
    found: dict[str, ComponentRecord] = {}
    for event in view.events:
        if event.kind != "info":
            continue
        for name, build in FROM_EVENT.items():
            payload = event.data.get(name)
            if isinstance(payload, Mapping):
                found[name] = build(payload)
    rows = candidate_rows(view)
    config = view.config
    if "chain" not in found:
        chain = chain_so_far(rows, str(config.get("selection_metric", "ks")))
        if chain is not None:
            found["chain"] = chain
    found["temperature"] = temperature_so_far(
        rows, bool(config.get("use_adaptive_temperature", True))
    )
    found["cache"] = cache_so_far(rows)
    return Components(**found)
