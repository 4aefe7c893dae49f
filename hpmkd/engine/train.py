"""Phase 3, train: every selected configuration, ``n_trials`` trials each.

Trial 0 of every configuration first (a time budget then still covers every
configuration); jobs go to the executor in waves (sequential, joblib/loky or Dask), each
served from the cache when it can be; temperatures come from the scheduler between waves;
after each round of trials a configuration clearly worse than the incumbent on paired
bootstrap resamples of the validation rows stops racing (:mod:`hpmkd.components.racing`);
above ``HALVING_MIN_ROWS`` training rows, trials first train on a subsample and the best
third is retrained on all rows (successive halving); last, while the best student is
still clearly below the teacher on validation, the capacity ladder is climbed further
(:mod:`hpmkd.engine.climb`). The legacy grid takes the same path with one trial per
configuration, in order, and no halving and no climb.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from hpmkd.components.config_manager import SelectedConfig
from hpmkd.engine.climb import climb_capacity_ladder
from hpmkd.engine.session import RunSession
from hpmkd.evaluate import CandidateResult, TrainingContext, subsample_context
from hpmkd.parallel import Job
from hpmkd.result import CapacityRecord, HalvingRecord, RacingRecord
from hpmkd.students import StudentSpec, trial_params

HALVING_MIN_ROWS = 50_000
RACE_THRESHOLD = 0.9


@dataclass
class _Race:
    """Racing state of one training phase."""

    ran: bool = False
    stopped: list[dict[str, Any]] = field(default_factory=list)


def train_configurations(
    session: RunSession, selected: list[SelectedConfig]
) -> tuple[HalvingRecord | None, RacingRecord | None, CapacityRecord | None]:
    """Train every selected configuration, then climb the capacity ladder (see the module
    docstring).

    Returns
    -------
    (halving, racing, capacity)
        ``None`` where the method has no such component or racing never ran.
    """
    cfg, plan = session.config, session.plan
    n_trials = cfg.n_trials if plan.adaptive else 1
    message = (
        f"training {len(selected)} configs x {cfg.n_trials} trials"
        if plan.adaptive
        else f"training {len(selected)} grid candidates"
    )
    race = _Race()
    with session.phase(plan.train_phase, message):
        halving = _train(session, selected, n_trials, race)
        capacity = (
            climb_capacity_ladder(session) if plan.adaptive and session.candidates else None
        )
    racing = (
        RacingRecord(enabled=True, threshold=RACE_THRESHOLD, stopped=tuple(race.stopped))
        if race.ran
        else None
    )
    return halving, racing, capacity


def _train(
    session: RunSession, selected: list[SelectedConfig], n_trials: int, race: _Race
) -> HalvingRecord | None:
    n_train = len(session.split.train)
    pending = [(c, trial) for c in selected for trial in range(n_trials)]
    pending.sort(key=lambda item: item[1])
    if not session.plan.components:
        _train_trials(session, pending, session.ctx, race)
        return None
    if n_train <= HALVING_MIN_ROWS or len(pending) <= 3:
        _train_trials(session, pending, session.ctx, race)
        return HalvingRecord(
            enabled=False,
            reason=f"{n_train:,} training rows (halving above {HALVING_MIN_ROWS:,})"
            if n_train <= HALVING_MIN_ROWS
            else "three trials or fewer",
        )
    # Rung 0: a stratified quarter of the rows (at least HALVING_MIN_ROWS); rung 1: the
    # best third of rung 0, by the validation metric, retrained on all rows. Both rungs
    # are real candidates in the results (``train_rows`` says which).
    rows = max(HALVING_MIN_ROWS, n_train // 4)
    sub = subsample_context(session.ctx, rows, session.random_state, validation=False)
    session.rung0_ctx = sub
    rung0 = _train_trials(session, pending, sub, race)
    keep = sorted(rung0, key=session.selection_key, reverse=True)[: math.ceil(len(rung0) / 3)]
    rung1: list[CandidateResult] = []
    if keep and not session.budget_exhausted():
        jobs = [Job(r.spec, {"source": session.plan.candidate_source}) for r in keep]
        rung1 = session.train_jobs(jobs, session.ctx)
    return HalvingRecord(
        enabled=True,
        rung0_rows=len(sub.y_train),
        rung0_trials=len(rung0),
        rung1_rows=n_train,
        promoted=tuple(r.name for r in keep),
        rung1_trials=len(rung1),
    )


def _train_trials(
    session: RunSession,
    pending: list[tuple[SelectedConfig, int]],
    ctx: TrainingContext,
    race: _Race,
) -> list[CandidateResult]:
    """Train (config, trial) pairs round by round; after each round, configurations
    clearly worse than the incumbent stop racing."""
    results: list[CandidateResult] = []
    configs = list(dict.fromkeys(c for c, _ in pending))
    trials = sorted({t for _, t in pending})
    alive = list(configs)
    best_of: dict[SelectedConfig, CandidateResult] = {}
    for trial in trials:
        round_items = [(c, t) for c, t in pending if t == trial and c in alive]
        for config, result in _train_round(session, round_items, ctx):
            results.append(result)
            if config not in best_of or session.selection_key(result) > session.selection_key(
                best_of[config]
            ):
                best_of[config] = result
        if session.stopped_by_budget:
            break
        if trial != trials[-1]:
            alive = _race(session, alive, best_of, trial, race)
    return results


def _train_round(
    session: RunSession, items: list[tuple[SelectedConfig, int]], ctx: TrainingContext
) -> list[tuple[SelectedConfig, CandidateResult]]:
    """Train one round of trials in executor-sized waves."""
    cfg = session.config
    n_train = len(session.split.train)
    out: list[tuple[SelectedConfig, CandidateResult]] = []
    while items:
        if session.budget_exhausted():
            session.bus.emit(
                "info",
                phase=session.plan.train_phase,
                message=f"time budget reached: {len(items)} trials not started",
            )
            break
        size = session.executor.batch_size
        wave, items = items[:size], items[size:]
        jobs = []
        for config, trial in wave:
            temperature, reason, feedback = _temperature(session, config)
            spec = StudentSpec(
                config.family,
                config.capacity,
                temperature,
                config.alpha,
                trial,
                trial_params(config.family, config.capacity, trial, n_train, session.random_state),
            )
            jobs.append(Job(spec, {"source": session.plan.candidate_source}))
            session.temperature_log.append(
                {
                    "candidate": spec.label(),
                    "temperature": temperature,
                    "reason": reason,
                    "feedback": feedback,
                }
            )
        for (config, _), result in zip(wave, session.train_jobs(jobs, ctx), strict=True):
            out.append((config, result))
            session.scheduler.observe(
                result.spec.family,
                result.spec.temperature,
                result.val.get(cfg.selection_metric, math.nan),
                result.spec.capacity,
                result.spec.alpha,
                f"{json.dumps(result.spec.params, sort_keys=True)} rows={result.train_rows}",
            )
    return out


def _race(
    session: RunSession,
    alive: list[SelectedConfig],
    best_of: dict[SelectedConfig, CandidateResult],
    trial: int,
    race: _Race,
) -> list[SelectedConfig]:
    """Configurations that keep racing after ``trial``; the rest are recorded."""
    race.ran = True
    incumbent = session.best_so_far()
    metric = session.config.selection_metric
    keep = []
    for config in alive:
        result = best_of.get(config)
        if result is None or result is incumbent:
            keep.append(config)
            continue
        share = session.share_worse(incumbent, result)
        if share >= RACE_THRESHOLD:
            race.stopped.append(
                {
                    "config": config.label(),
                    "after_trial": trial,
                    "share_worse": share,
                    "reason": f"below {incumbent.name} in {share:.0%} of paired bootstrap "
                    f"resamples of the validation rows (val {metric} "
                    f"{result.val.get(metric, math.nan):.4f} vs "
                    f"{incumbent.val.get(metric, math.nan):.4f})",
                }
            )
        else:
            keep.append(config)
    return keep


def _temperature(session: RunSession, config: SelectedConfig) -> tuple[float, str, dict]:
    if config.temperature is not None:
        return config.temperature, "fixed by the configuration", {}
    decision = session.scheduler.suggest(config.family)
    feedback = {f"{t:g}": s for t, s in sorted(decision.feedback.items())}
    return decision.temperature, decision.reason, feedback
