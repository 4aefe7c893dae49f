"""Phase 3, train: every selected configuration, ``n_trials`` trials each.

Trial 0 of every configuration first (a time budget then still covers every
configuration); jobs go to the executor in waves (sequential, joblib/loky or Dask), each
served from the cache when it can be; temperatures come from the scheduler between waves
(a warm-started configuration's first trials take the temperatures stored with it);
after each round of trials a configuration clearly worse than the incumbent on paired
bootstrap resamples of the validation rows stops racing (:mod:`hpmkd.components.racing`);
above ``HALVING_MIN_ROWS`` training rows, trials first train on a subsample and the best
third is retrained on all rows (successive halving); last, while the best student is
still clearly below the teacher on validation, the capacity ladder is climbed further
(:mod:`hpmkd.engine.climb`). With loky workers, a wave that leaves some of them waiting
takes along the fits the next decisions will most likely ask for (the next round's
trials, the climb's hard-label start), and the chain starts rung 0's first trials in the
background; a decision takes such a fit only for its exact spec, rows and targets, so
what is decided, and in which order, is the same as without them. The legacy grid takes
the same path with one trial per configuration, in order, and no halving and no climb.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

from hpmkd.components.config_manager import SelectedConfig
from hpmkd.components.temperature import MetaTemperatureScheduler
from hpmkd.engine.climb import climb_capacity_ladder, first_fits
from hpmkd.engine.session import HALVING_MIN_ROWS, RunSession
from hpmkd.evaluate import CandidateResult, TrainingContext
from hpmkd.parallel import Job
from hpmkd.result import CapacityRecord, HalvingRecord, RacingRecord
from hpmkd.stop import FitInterrupted, WaveInterrupted
from hpmkd.students import StudentSpec, trial_params

__all__ = ["HALVING_MIN_ROWS", "RACE_THRESHOLD", "train_configurations"]

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
    # best third of the configurations, each by its best rung-0 trial, retrained on all
    # rows. Both rungs are real candidates in the results (``train_rows`` says which).
    sub = session.halving_context()
    assert sub is not None  # more than HALVING_MIN_ROWS rows and the components on
    rung0 = _train_trials(session, pending, sub, race)
    keep = _promoted(session, rung0)
    rung1: list[CandidateResult] = []
    if keep and not session.should_stop():
        jobs = [Job(r.spec, {"source": session.plan.candidate_source}) for r in keep]
        # In executor-sized waves, so a stop keeps the rung-1 fits that finished. loky
        # keeps what finished within a wave already (WaveInterrupted) and hands a job to
        # a worker as soon as one is free, and nothing is decided between these fits:
        # one wave. With waves of four, a fifth promoted configuration ran alone after
        # them, in the run's process, while both workers waited (an MLP on all rows: 1.3
        # s of one core on us_census_fertility).
        loky = session.executor.backend == "loky"
        size = max(1, len(jobs)) if loky else session.executor.batch_size
        # Workers this wave leaves waiting train the climb's first fits ahead (its
        # hard-label start used to train alone after this wave, on nyc_flights_delay
        # 1.3 s in this process, while both workers waited).
        starts = first_fits(session, [r.spec for r in keep])
        ahead = [Job(spec, {"source": "climb"}) for spec in starts]
        for start in range(0, len(jobs), size):
            if session.should_stop():
                break
            try:
                rung1 += session.train_jobs(jobs[start : start + size], session.ctx, ahead)
            except WaveInterrupted as exc:
                # The wave's finished fits are candidates already; count them too.
                rung1 += [result for _, result in sorted(exc.finished.items())]
                session.interrupted("the full-rows rung of successive halving")
                break
            except FitInterrupted:
                session.interrupted("the full-rows rung of successive halving")
                break
    return HalvingRecord(
        enabled=True,
        rung0_rows=len(sub.y_train),
        rung0_trials=len(rung0),
        rung1_rows=n_train,
        promoted=tuple(r.name for r in keep),
        rung1_trials=len(rung1),
    )


def first_round_ahead(
    session: RunSession, selected: list[SelectedConfig], suggestions_before: int, family: str
) -> list[Job]:
    """The first wave of successive halving's rung 0 as it will most likely be: trial 0
    of the first configurations, at the temperatures the scheduler would give them after
    ``suggestions_before`` more suggestions for ``family`` (the chain's stages still to
    come), if no score in between changed its comparisons (a chain stage's never does:
    each stage is a group of its own).

    The chain starts them in the background, in workers its stages (trained in this
    process) leave waiting
    (:meth:`~hpmkd.engine.session.RunSession.ahead_in_background`): rung 0 takes a
    result trained ahead only for the same spec, rows and targets, so what is decided,
    and in which order, does not depend on this prediction. Empty where phase 3 does
    not halve (its trials then train on all rows).

    Parameters
    ----------
    session : RunSession
    selected : list of SelectedConfig
        Phase 1's configurations, in the order phase 3 trains them.
    suggestions_before : int
        Temperatures the scheduler will still suggest before phase 3.
    family : str
        The family of those suggestions.

    Returns
    -------
    list of Job
    """
    n_trials = session.config.n_trials if session.plan.adaptive else 1
    n_train = len(session.split.train)
    if (
        not session.plan.components
        or n_train <= HALVING_MIN_ROWS
        or len(selected) * n_trials <= 3
    ):
        return []
    items = [(c, 0) for c in selected[: session.executor.batch_size]]
    return _predicted_jobs(session, items, n_train, suggestions_before, family)


def _predicted_jobs(
    session: RunSession,
    items: list[tuple[SelectedConfig, int]],
    n_train: int,
    suggestions_before: int = 0,
    family: str = "",
) -> list[Job]:
    """Trials ``items`` as jobs at the temperatures the scheduler would give them after
    ``suggestions_before`` more suggestions for ``family``: asked of a copy, so the real
    scheduler's suggestions stay those of today's order."""
    scheduler = copy.deepcopy(session.scheduler)
    for _ in range(suggestions_before):
        scheduler.suggest(family)
    source = {"source": session.plan.candidate_source}
    return [
        Job(_trial_spec(session, c, t, _temperature(scheduler, c, t)[0], n_train), source)
        for c, t in items
    ]


def _promoted(session: RunSession, rung0: list[CandidateResult]) -> list[CandidateResult]:
    """The rung-0 candidates retrained on all rows: the best trial of each
    configuration, for the best third of the configurations, leaving out those clearly
    worse than the best (below it in ``RACE_THRESHOLD`` of paired bootstrap resamples).

    One trial per configuration: trials of a configuration differ in minor knobs whose
    rung-0 ranking is within noise, and every full-row refit costs about four rung-0 fits
    (on nyc_flights_delay the best third of all trials was 16 refits, most of phase 3).
    """
    ranked = sorted(rung0, key=session.selection_key, reverse=True)
    best_per_config: dict[tuple, CandidateResult] = {}
    for result in ranked:
        spec = result.spec
        config = (spec.family, spec.capacity, spec.alpha) if spec is not None else result.name
        best_per_config.setdefault(config, result)
    leaders = list(best_per_config.values())[: math.ceil(len(best_per_config) / 3)]
    if not leaders:
        return []
    best = leaders[0]
    return [best] + [r for r in leaders[1:] if session.share_worse(best, r) < RACE_THRESHOLD]


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
    for k, trial in enumerate(trials):
        round_items = [(c, t) for c, t in pending if t == trial and c in alive]
        # The next round as it stands if every configuration keeps racing: trained ahead
        # in workers this round leaves waiting (see _train_round).
        following = [(c, t) for c, t in pending if k + 1 < len(trials)
                     and t == trials[k + 1] and c in alive]
        for config, result in _train_round(session, round_items, ctx, following):
            results.append(result)
            if config not in best_of or session.selection_key(result) > session.selection_key(
                best_of[config]
            ):
                best_of[config] = result
        if session.stop_reason is not None:
            break
        if trial != trials[-1]:
            alive = _race(session, alive, best_of, trial, race)
    return results


def _train_round(
    session: RunSession,
    items: list[tuple[SelectedConfig, int]],
    ctx: TrainingContext,
    following: list[tuple[SelectedConfig, int]] | None = None,
) -> list[tuple[SelectedConfig, CandidateResult]]:
    """Train one round of trials in executor-sized waves.

    ``following``: the next round's trials if every configuration keeps racing. The
    round's last wave trains them ahead in workers it leaves waiting
    (:meth:`~hpmkd.engine.session.RunSession.train_jobs`' ``ahead``), at the temperatures
    the scheduler would give them if this round's scores changed none of its
    comparisons (each trial has knobs of its own, so its score is usually compared with
    nothing). The next round trains them again only if a configuration stopped racing
    or a temperature came out otherwise: it takes a result trained ahead only for the
    same spec, so nothing decided depends on them. On nyc_flights_delay racing left one
    configuration after trial 0, whose trials 1 and 2 used to train one after the
    other, each alone in this process.
    """
    cfg = session.config
    n_train = len(session.split.train)
    out: list[tuple[SelectedConfig, CandidateResult]] = []
    while items:
        if session.should_stop():
            session.bus.emit(
                "info",
                phase=session.plan.train_phase,
                message=f"{session.stop_reason}: {len(items)} trials not started",
            )
            break
        size = session.executor.batch_size
        wave, items = items[:size], items[size:]
        jobs = []
        for config, trial in wave:
            temperature, reason, feedback = _temperature(session.scheduler, config, trial)
            spec = _trial_spec(session, config, trial, temperature, n_train)
            jobs.append(Job(spec, {"source": session.plan.candidate_source}))
            session.temperature_log.append(
                {
                    "candidate": spec.label(),
                    "temperature": temperature,
                    "reason": reason,
                    "feedback": feedback,
                }
            )
        ahead: list[Job] = []
        if not items and following and session.free_slots(len(jobs)):
            ahead = _predicted_jobs(session, following, n_train)
        unfinished = 0
        try:
            trained = list(zip(wave, session.train_jobs(jobs, ctx, ahead), strict=True))
        except WaveInterrupted as exc:
            # A parallel wave left by a stop: its finished trials count like any other.
            trained = [(wave[i], result) for i, result in sorted(exc.finished.items())]
            unfinished = len(jobs) - len(trained)
        except FitInterrupted:
            session.interrupted(f"{len(jobs)} trial(s) in progress")
            break
        for (config, _), result in trained:
            out.append((config, result))
            session.scheduler.observe(
                result.spec.family,
                result.spec.temperature,
                result.val.get(cfg.selection_metric, math.nan),
                result.spec.capacity,
                result.spec.alpha,
                f"{json.dumps(result.spec.params, sort_keys=True)} rows={result.train_rows}",
            )
        if unfinished:
            session.interrupted(f"{unfinished} trial(s) in progress")
            break
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


def _trial_spec(
    session: RunSession, config: SelectedConfig, trial: int, temperature: float, n_train: int
) -> StudentSpec:
    return StudentSpec(
        config.family,
        config.capacity,
        temperature,
        config.alpha,
        trial,
        trial_params(config.family, config.capacity, trial, n_train, session.random_state),
    )


def _temperature(
    scheduler: MetaTemperatureScheduler, config: SelectedConfig, trial: int
) -> tuple[float, str, dict]:
    """The temperature of ``config``'s ``trial``, why, and the scheduler's feedback."""
    if config.temperature is not None:
        return config.temperature, "fixed by the configuration", {}
    fixed = config.trial_temperature(trial)
    if fixed is not None:
        # A warm start's stored temperature: the setting as it did well on similar data;
        # the scheduler's suggestion is not asked for (its grid cycle is not advanced).
        return fixed, (
            f"warm start: the temperature this setting had in a similar past run (trials "
            f"0 to {len(config.start_temperatures) - 1} take stored temperatures, the "
            "scheduler sets any later one)"
        ), {}
    decision = scheduler.suggest(config.family)
    feedback = {f"{t:g}": s for t, s in sorted(decision.feedback.items())}
    return decision.temperature, decision.reason, feedback
