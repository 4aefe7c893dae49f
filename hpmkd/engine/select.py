"""Phase 1, select: which student configurations phase 3 trains.

``hpm``: :class:`~hpmkd.components.config_manager.AdaptiveConfigurationManager` screens and
ranks family x capacity x temperature x alpha, warm-started from
:class:`~hpmkd.components.memory.SharedOptimizationMemory`. ``legacy``: the fixed grid of
``families x temperatures x alphas`` at medium capacity.
"""

from __future__ import annotations

import itertools
import math

from hpmkd.components.config_manager import AdaptiveConfigurationManager, SelectedConfig
from hpmkd.components.memory import SharedOptimizationMemory, WarmStart
from hpmkd.engine.session import RunSession
from hpmkd.evaluate import CandidateResult
from hpmkd.result import SelectionRecord, WarmStartRecord
from hpmkd.stop import FitInterrupted


def select_configurations(
    session: RunSession, memory: SharedOptimizationMemory | None
) -> tuple[list[SelectedConfig], SelectionRecord | None, WarmStartRecord | None]:
    """The configurations to train, with the selection and warm-start records.

    Parameters
    ----------
    session : RunSession
    memory : SharedOptimizationMemory or None
        ``None`` when the method has no memory (legacy).

    Returns
    -------
    (configs, selection, warm_start)
        Records are ``None`` for the legacy grid (it has no such component).
    """
    if not session.plan.adaptive:
        return _grid(session), None, None
    with session.phase("select", "screening and ranking configurations"):
        return _adaptive(session, memory)


def _grid(session: RunSession) -> list[SelectedConfig]:
    """Every family x temperature x alpha at medium capacity; at alpha 0 (labels only)
    the temperature does nothing, so that student is trained once per family."""
    cfg = session.config
    first_t = cfg.temperatures[0]
    return [
        SelectedConfig(
            family, "medium", t, a, score=math.nan, reason="legacy grid: every combination"
        )
        for family, t, a in itertools.product(cfg.families, cfg.temperatures, cfg.alphas)
        if a > 0 or t == first_t
    ]


def _adaptive(
    session: RunSession, memory: SharedOptimizationMemory | None
) -> tuple[list[SelectedConfig], SelectionRecord, WarmStartRecord]:
    cfg, dataset = session.config, session.dataset
    meta = dataset.meta_features()
    warm = None
    if cfg.use_memory and memory is not None:
        warm = memory.warm_start(
            meta, cfg.selection_metric, exclude_fingerprint=dataset.fingerprint()
        )
    manager = AdaptiveConfigurationManager(cfg, session.random_state)
    try:
        # In parallel, each screening step's fits train together; one at a time
        # otherwise, so a stop keeps every screening fit that finished.
        parallel = session.executor.backend != "sequential"
        manager.screen(session.ctx, session.fit, session.screen_many if parallel else None)
    except FitInterrupted:
        session.interrupted("screening")
        return [], _stopped_record(session), _warm_record(warm, [])
    # The temperature sweep is the scheduler's controlled comparison; the screening noise
    # scale says which temperature effects are real.
    session.scheduler.noise = manager.noise_ / 2
    if manager.temperature_family_ is not None:
        family, capacity = manager.temperature_family_
        for t, score in manager.temperature_scores_.items():
            session.scheduler.observe(
                family, t, score, capacity, manager.temperature_alpha_, "screening sweep"
            )
    selected = manager.select(
        meta,
        warm.configs if warm is not None and warm.used else (),
        warm.reason if warm is not None else "",
    )
    warm_record = _warm_record(warm, selected, manager.warm_use_)
    record = SelectionRecord(
        enabled=True,
        meta_features=meta,
        screen_scores={f"{f}-{c}": s for (f, c), s in manager.screen_scores_.items()},
        alpha_scores={f"{a:g}": s for a, s in manager.alpha_scores_.items()},
        screen_seconds=manager.screen_seconds_,
        temperature_scores={f"{t:g}": v for t, v in manager.temperature_scores_.items()},
        configs=tuple(s.to_dict() for s in selected),
        warm_started=any(s.warm_started for s in selected),
    )
    session.bus.emit(
        "info",
        phase="select",
        message=f"kept {len(selected)} configs"
        + (" (warm-started)" if record.warm_started else ""),
        selection=record.to_dict(),
        warm_start=warm_record.to_dict(),
    )
    return selected, record, warm_record


def _warm_record(
    warm: WarmStart | None, selected: list[SelectedConfig], uses: list[str] | None = None
) -> WarmStartRecord:
    """The warm-start record; each offered setting's ``use`` says what became of it
    (``AdaptiveConfigurationManager.warm_use_``: trained as, merged into, or not used and
    why), so no stored field is dropped silently."""
    if warm is None:
        return WarmStartRecord(
            enabled=False,
            used=False,
            reason="use_memory=False: no warm start, this run is not recorded",
            runs=(),
        )
    plain = warm.to_dict()
    return WarmStartRecord(
        enabled=True,
        used=warm.used,
        reason=warm.reason,
        configs=tuple(
            {**config, "use": use}
            for config, use in zip(plain["configs"], uses or [None] * len(plain["configs"]),
                                   strict=True)
        ),
        neighbours=tuple(plain["neighbours"]),
        # The past runs whose settings phase 1 kept (not every neighbour: a setting
        # of a family this run does not search is dropped), in order of first use.
        runs=tuple(
            dict.fromkeys(s.source_run for s in selected if s.warm_started and s.source_run)
        ),
    )


def _stopped_record(session: RunSession) -> SelectionRecord:
    return SelectionRecord(
        enabled=False,
        reason=f"{session.stop_reason}: screening ended after {len(session.screened)} fits, "
        "no configuration was selected",
    )


def remember(
    session: RunSession, memory: SharedOptimizationMemory, selected: CandidateResult
) -> None:
    """Record this run's best configurations for warm starts on similar data: the
    selected student first, then the others by validation score (at most five)."""
    ranked = sorted(
        [
            c
            for c in session.candidates
            if c.spec is not None and c.source in {"config", "chain", "climb", "ensemble"}
        ],
        key=lambda c: (c is selected, session.selection_key(c)),
        reverse=True,
    )
    configs, seen = [], set()
    for c in ranked:
        # At alpha 0 the temperature changes nothing: one setting, whatever its T.
        t = None if c.spec.alpha == 0 else c.spec.temperature
        key = (c.spec.family, c.spec.capacity, t, c.spec.alpha)
        if key in seen:
            continue
        seen.add(key)
        configs.append(
            {
                "family": c.spec.family,
                "capacity": c.spec.capacity,
                "temperature": c.spec.temperature,
                "alpha": c.spec.alpha,
                "val_score": c.val.get(session.config.selection_metric, math.nan),
            }
        )
        if len(configs) == 5:
            break
    dataset = session.dataset
    memory.record_run(
        dataset.name,
        dataset.meta_features(),
        session.config.selection_metric,
        configs,
        fingerprint=dataset.fingerprint(),
    )
