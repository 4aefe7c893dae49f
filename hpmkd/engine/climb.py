"""The capacity climb, at the end of phase 3: bigger students while the best one is still
clearly below the teacher on validation.

The screened ladder (small, medium, large) is sized for typical tables; on harder ones the
best student can be the largest capacity offered and still fall short of the teacher. Then
the search goes on up the ladder (:func:`hpmkd.students.capacity_params`: ``xl1``,
``xl2`` ..., each about 1.5 times the size of the rung below), one rung at a time, from the
best candidate on validation (whatever its alpha), with its family, temperature, alpha and
trial knobs, trained on all training rows.

Hard labels compete first: before the first rung, a start with ``alpha > 0`` is trained
again on all training rows with ``alpha = 0`` (labels only, same shape and knobs), and the
climb goes on from the better of the two on validation. Phase 1 chose the alpha on a
4,000-row screening subsample, where the teacher's soft targets help most; on all rows
labels can be worth more (on nyc_flights_delay, where the teacher saw 94% of the training
rows, lgbm-large scored validation KS 0.4154 on labels against 0.4025 at alpha 0.9).

When the size cap stops a LightGBM climb while the best student is still clearly below
the teacher, the room left under the cap is used: students with 2 and 3 times the best
one's leaves per tree (:data:`FILL_SHAPES`) and as many trees as fit in
:data:`FILL_SHARE` of the cap, by a size model fitted on the run's LightGBM candidates
(:func:`lgbm_size_model`); each is a candidate if it is under the cap (``kind="at_cap"``
in the record).

Seeds are averaged before anything else: when the best candidate's family is one whose
fits vary with their seed (:data:`SEED_AVERAGE_FAMILIES`: the MLP), it is not yet an
average and it is not clearly above the teacher already (it scores below the teacher in
at least ``1 - CLIMB_THRESHOLD`` = 10% of the paired bootstrap resamples of the
validation rows: the racing rule, the other way round; above that the issue's target is
met by the student as it is, and the fits are not spent), :data:`SEED_MEMBERS` copies of
its configuration that differ only in their seed are trained on all training rows and
averaged (:func:`hpmkd.students.fit_seed_average`; ``kind="seed_average"`` in the
record). When there is a runner-up (:data:`AVERAGED_CONFIGS`: the best single fit of the
same family on validation in another configuration, trained by the plain path on all
training rows), the two configurations are first averaged over :data:`COMPARE_MEMBERS`
seeds each, and the one whose average has the lower validation Brier score (ties: the
start's) is averaged over :data:`SEED_MEMBERS` (its copies reused); the record's
``compared`` lists both. Why: on 1,600 validation rows (case b) the configurations'
single fits differ in KS by a few rows, and the one on top is partly the luckiest seed;
an average takes most of the seed's share out, and the Brier score, which weighs every
row's probability rather than one threshold, separates two averages with less noise
(docs/HPM.md, "The runner-up's average"). Unless the kept average is clearly worse than
its own start (below it in at least
:data:`CLIMB_THRESHOLD` of paired bootstrap resamples of the validation rows, the racing
rule), the climb goes on from the average, and it **supersedes** the start: the start is
one of its members (or the same configuration fitted on fewer rows), so its
configuration is represented by the average from then on; the start stays in the
results, marked ``extra["superseded_by"]``, and no longer competes in the selection
(:func:`hpmkd.components.selection_rule.select_student`). When the runner-up's
configuration went on, the climb's start no longer competes either (``outranked`` in the
record): its configuration's average lost the comparison, and its own validation score is
the biased maximum the comparison is there to avoid. A chain stage after the first
is not superseded: it learned from the teacher mixed with the stage before it, the
average's copies from the run's own targets, so it stays a candidate (``start_kept`` in
the record says so). Why not simply the better of the two on validation: the start's
validation score is the maximum over some twenty candidates' noisy estimates, biased
upwards, and the average's is a single fresh estimate; on 1,600 validation rows (case b)
the two differ by a few rows, while out of fold on all 8,000 rows the average was the
better on all five seeds. For the same reason this step does not wait for the teacher
comparison below ("reached the teacher" is read from that biased maximum). On case b
(clean protocol, 5 seeds) the runs' usual MLP configuration was within 0.004 of the
teacher's validation KS or above it on three seeds, yet 0.0035-0.013 below it out of
fold on all 8,000 rows on all five; a wider MLP did not close that gap (144 units:
-0.0083 on the mean, 64 units -0.0078), an average of three seeds did (docs/HPM.md,
"Seed averages").

It climbs while all of these hold, and records the first that does not as the stop:

- ``reached_teacher`` — the best student is no longer clearly below the teacher: it
  scores below the teacher in fewer than :data:`CLIMB_THRESHOLD` of paired bootstrap
  resamples of the validation rows (the racing rule, with the teacher as incumbent);
- ``not_improving`` — the best student is not at the top of the screened ladder
  (``large``), or the last rung did not raise the validation metric over the one below;
- ``size_cap`` — the next rung would be (or turned out) less than ``min_compression``
  times smaller than the teacher; a rung over the cap is not kept as a candidate;
- ``time_budget`` — ``time_budget_s`` has passed; ``stopped`` — a stop request came;
- ``max_steps`` — ``max_capacity_steps`` rungs were climbed.

Only validation rows drive these decisions; the test rows are read by phase 5 alone.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from hpmkd.components.racing import PairedBootstrap, metric_value
from hpmkd.components.selection_rule import SUPERSEDED_BY
from hpmkd.engine.session import RunSession
from hpmkd.evaluate import CandidateResult, uncalibrated
from hpmkd.metrics import size_bytes
from hpmkd.result import CapacityRecord
from hpmkd.stop import FitInterrupted, WaveInterrupted
from hpmkd.students import (
    CAPACITIES,
    MAX_CLIMB_STEPS,
    N_MEMBERS,
    StudentSpec,
    capacity_params,
    climb_capacity,
    climb_step,
)

#: Share of paired bootstrap resamples of the validation rows on which the student must
#: score below the teacher for the gap to count as real (the racing threshold).
CLIMB_THRESHOLD = 0.9
#: Resamples behind each comparison with the teacher.
CLIMB_BOOT = 200
#: Candidate sources a climb may start from (single students of phases 2 and 3).
CLIMB_SOURCES = ("config", "chain")
#: Share of the size cap the students trained at the cap aim at: the size model
#: (:func:`lgbm_size_model`) predicted the nyc_flights_delay students within 1%.
FILL_SHARE = 0.97
#: Leaves per tree of the students trained at the cap, as multiples of the best one's
#: (``num_leaves + 1``): deeper, fewer trees (the same shape with more trees did not beat
#: the rung below on validation; docs/HPM.md, "The capacity climb: hard labels first,
#: leaves first, filling the size cap").
FILL_SHAPES = (2, 3)
#: Fewest trees of a student trained at the cap.
FILL_MIN_TREES = 5
#: Families whose students are averaged over seeds before the climb: an MLP's fit depends
#: on its seeded initialisation and row order, a tree's or a logistic regression's not,
#: and LightGBM is already an average of trees.
SEED_AVERAGE_FAMILIES = ("mlp",)
#: Copies in a seed average (docs/HPM.md, "Five seeds in the average": against three,
#: out of fold on case b's fifteen seeds, +0.0015 KS, 95% interval +0.0007 to +0.0023).
SEED_MEMBERS = 5
#: Configurations seed-averaged before the climb goes on: the start's and the runner-up's
#: (docs/HPM.md, "The runner-up's average").
AVERAGED_CONFIGS = 2
#: Copies in the averages that compare them; the chosen one goes on to SEED_MEMBERS.
COMPARE_MEMBERS = 3
#: Sources of candidates fitted on the run's training rows and the teacher's targets by
#: the plain path (the chain's later stages learn from a mix of targets).
OWN_FITS = ("config", "climb")


def climb_capacity_ladder(session: RunSession) -> CapacityRecord:
    """Climb the capacity ladder from the best candidate so far (see the module docstring).

    Climbed students are recorded as candidates with source ``climb``.

    Parameters
    ----------
    session : RunSession
        After phase 3's configurations trained (at least one candidate).

    Returns
    -------
    CapacityRecord
    """
    cfg = session.config
    if cfg.max_capacity_steps == 0:
        return CapacityRecord(enabled=False, reason="max_capacity_steps=0: the climb is off")
    metric = cfg.selection_metric
    y_val, teacher_val = session.ctx.y_val, session.ctx.reference_val
    teacher_score = metric_value(metric, y_val, teacher_val, teacher_val)
    teacher_size = _teacher_size(session)
    known = teacher_size is not None and teacher_size > 0
    cap = math.floor(teacher_size / cfg.min_compression) if known else None
    candidates = [c for c in session.candidates if c.source in CLIMB_SOURCES and c.spec]
    if not candidates or not math.isfinite(teacher_score):
        why = (
            "no single student was trained in phases 2 and 3"
            if not candidates
            else f"the teacher's validation {metric} is undefined"
        )
        return CapacityRecord(enabled=False, reason=why)
    boot = PairedBootstrap(
        y_val, teacher_val, metric, teacher_val, n_boot=CLIMB_BOOT, seed=session.random_state
    )
    current = max(candidates, key=session.selection_key)
    base = dict(
        enabled=True,
        family=current.spec.family,
        start=current.name,
        start_val_metric=_val(current, metric),
        start_share_below_teacher=boot.share_worse(current.val_proba),
        teacher_val_metric=teacher_score,
        teacher_size_bytes=teacher_size if known else None,
        size_cap_bytes=cap,
        min_compression=cfg.min_compression,
        threshold=CLIMB_THRESHOLD,
    )
    steps: list[dict[str, Any]] = []
    stop, why = _climb(session, current, boot, base, cap, steps)
    record = CapacityRecord(**base, steps=tuple(steps), stop=stop, stop_reason=why)
    session.bus.emit(
        "info",
        phase=session.plan.train_phase,
        message=f"capacity climb: {why}",
        capacity=record.to_dict(),
    )
    return record


def _climb(
    session: RunSession,
    current: CandidateResult,
    boot: PairedBootstrap,
    base: dict[str, Any],
    cap: int | None,
    steps: list[dict[str, Any]],
) -> tuple[str, str]:
    """Train rungs until a stop; returns ``(stop, stop_reason)``."""
    cfg, metric = session.config, session.config.selection_metric
    teacher = f"{base['teacher_val_metric']:.4f}"
    share = base["start_share_below_teacher"]
    limit = min(cfg.max_capacity_steps, MAX_CLIMB_STEPS)
    growth: float | None = None
    challenged = False
    try:
        current, share = _average_seeds(session, current, share, boot, base, cap, steps)
    except FitInterrupted:
        session.interrupted("the seed average of the capacity climb")
        return "stopped", f"{session.stop_reason}, during the seed average"
    while True:
        score = _val(current, metric)
        if share < CLIMB_THRESHOLD:
            return "reached_teacher", (
                f"reached the teacher within noise: {current.name} val {metric} "
                f"{score:.4f} vs teacher {teacher}, below it in only {share:.0%} of "
                f"paired bootstrap resamples of the validation rows"
            )
        capacity = current.spec.capacity
        if climb_step(capacity) == 0 and capacity != CAPACITIES[-1]:
            # A smaller capacity won: more size is not what the student lacks.
            return "not_improving", (
                f"no longer improving: the best student {current.name} is at capacity "
                f"{capacity}, below the largest screened ({CAPACITIES[-1]})"
            )
        step = climb_step(capacity) + 1
        if step > limit:
            return "max_steps", (
                f"climbed {limit} rung(s) above large (max_capacity_steps={cfg.max_capacity_steps})"
                f"; {current.name} is still below the teacher (val {metric} {score:.4f} vs "
                f"{teacher})"
            )
        if session.should_stop():
            # The budget or a stop request; the session's reason says which.
            kind = "time_budget" if session.stopped_by_budget else "stopped"
            return kind, f"{session.stop_reason}, before rung {climb_capacity(step)}"
        if cap is not None and current.size_bytes >= cap:
            return "size_cap", _cap_text(cfg.min_compression, cap, climb_capacity(step), (
                f"{current.name} alone is already {current.size_bytes:,} bytes"))
        if not challenged and current.spec.alpha > 0 and not _has_hard_twin(session, current):
            # Hard labels compete before the climb spends anything on the soft alpha.
            challenged = True
            try:
                hard = _train_hard(session, current)
            except FitInterrupted:
                session.interrupted("the hard-label start of the capacity climb")
                return "stopped", f"{session.stop_reason}, during the hard-label start"
            entry = _entry(base, 0, "hard_labels", hard, metric)
            if cap is not None and hard.size_bytes > cap:
                steps.append({**entry, "kept": False})
                continue
            session.add_candidate(hard)
            better = session.selection_key(hard) > session.selection_key(current)
            hard_share = boot.share_worse(hard.val_proba)
            steps.append({**entry, "share_below_teacher": hard_share, "improved": better,
                          "kept": True})
            if better:
                current, share = hard, hard_share
            # Checked again from the top: the better start may have reached the teacher.
            continue
        if cap is not None and growth is not None and current.size_bytes * growth > cap:
            why = _cap_text(cfg.min_compression, cap, climb_capacity(step), (
                f"about {current.size_bytes * growth:,.0f} bytes expected "
                f"({growth:.1f}x the rung below)"))
            return "size_cap", why + _fill_cap(session, current, boot, base, cap, step, steps)
        try:
            result = _train_rung(session, current, step)
        except FitInterrupted:
            session.interrupted(f"capacity rung {climb_capacity(step)}")
            return "stopped", f"{session.stop_reason}, during rung {climb_capacity(step)}"
        entry = _entry(base, step, "rung", result, metric)
        if cap is not None and result.size_bytes > cap:
            steps.append({**entry, "kept": False})
            why = _cap_text(
                cfg.min_compression, cap, result.spec.capacity,
                f"{result.size_bytes:,} bytes; not kept as a candidate",
            )
            return "size_cap", why + _fill_cap(session, current, boot, base, cap, step, steps)
        session.add_candidate(result)
        share = boot.share_worse(result.val_proba)
        improved = session.selection_key(result) > session.selection_key(current)
        steps.append({**entry, "share_below_teacher": share, "improved": improved, "kept": True})
        if not improved:
            return "not_improving", (
                f"no longer improving: {result.name} val {metric} {_val(result, metric):.4f} "
                f"is not above {current.name} ({score:.4f})"
            )
        growth = result.size_bytes / current.size_bytes if current.size_bytes > 0 else None
        current = result


def _average_seeds(
    session: RunSession,
    current: CandidateResult,
    share: float,
    boot: PairedBootstrap,
    base: dict[str, Any],
    cap: int | None,
    steps: list[dict[str, Any]],
) -> tuple[CandidateResult, float]:
    """The seed average of ``current``'s configuration or of the runner-up's, whichever
    averages to the lower validation Brier score (see the module docstring), kept as a
    candidate if under the cap; returns the student the climb goes on from and its share
    below the teacher."""
    spec, metric = current.spec, session.config.selection_metric
    if (
        share < 1 - CLIMB_THRESHOLD  # clearly above the teacher already
        or spec.family not in SEED_AVERAGE_FAMILIES
        or spec.params.get(N_MEMBERS, 1) > 1
        or (cap is not None and current.size_bytes >= cap)
        or session.should_stop()
    ):
        return current, share
    starts = [current, *_runners_up(session, current)]
    compared: list[dict[str, Any]] = []
    start, first = current, None
    if len(starts) > 1:
        # Averages of COMPARE_MEMBERS copies, the one with the lower validation Brier score
        # (ties: the start's) goes on to SEED_MEMBERS copies; its copies are reused.
        trials = []
        for candidate in starts:
            if trials and session.should_stop():
                break
            trial = _fit_average(session, candidate, COMPARE_MEMBERS)
            trials.append((candidate, trial))
            compared.append({"average_of": candidate.name, "members": COMPARE_MEMBERS,
                             "val_brier": trial.val.get("brier"),
                             "val_metric": _val(trial, metric)})
        start, chosen = min(trials, key=lambda t: _brier(t[1]))
        first = uncalibrated(chosen.model)
    result = _fit_average(session, start, SEED_MEMBERS, first)
    entry = {**_entry(base, 0, "seed_average", result, metric), "average_of": start.name}
    if compared:
        entry["compared"] = compared
    if cap is not None and result.size_bytes > cap:
        steps.append({**entry, "kept": False})
        return current, share
    session.add_candidate(result)
    better = session.selection_key(result) > session.selection_key(current)
    # Below its first member (the start itself) in how many paired resamples: the racing
    # rule says whether the average is clearly worse than the start.
    versus = PairedBootstrap(session.ctx.y_val, start.val_proba, metric,
                             session.ctx.reference_val, n_boot=CLIMB_BOOT,
                             seed=session.random_state)
    below_start = versus.share_worse(result.val_proba)
    carries_on = below_start < CLIMB_THRESHOLD
    # The average's copies learn the run's own targets; a chain stage after the first
    # learned the teacher mixed with the stage before it: another configuration, which
    # the average does not stand for.
    stage = session.previous_stage(start)
    supersedes = carries_on and stage is None
    result_share = boot.share_worse(result.val_proba)
    entry.update(share_below_teacher=result_share, improved=better,
                 share_below_start=below_start,
                 supersedes=start.name if supersedes else None, kept=True)
    steps.append(entry)
    if stage is not None:
        entry["start_kept"] = (
            f"{start.name} learned from the teacher mixed with {stage.name}, the average "
            "from the run's own targets: it stays a candidate"
        )
    if not carries_on:
        return current, share
    # The average is the start's configuration (the start is one of its copies, or it was
    # fitted on fewer rows): it is represented by the average from now on and no longer
    # competes in the selection. So is the climb's start when the runner-up went on: its
    # configuration's average lost the comparison, and its own score is the biased
    # maximum the comparison is there to avoid.
    retired = [start] if supersedes else []
    if start is not current and session.previous_stage(current) is None:
        retired.append(current)
        entry["outranked"] = current.name
    for candidate in retired:
        index = next(i for i, c in enumerate(session.candidates) if c is candidate)
        session.candidates[index] = replace(
            candidate, extra={**candidate.extra, SUPERSEDED_BY: result.name}
        )
    return result, result_share


def _runners_up(session: RunSession, current: CandidateResult) -> list[CandidateResult]:
    """The best single fit of ``current``'s family on validation in another
    configuration, trained by the plain path on all training rows (none: an empty list)."""
    n_train, key = len(session.split.train), current.spec.key()
    others = [
        c for c in session.candidates
        if c.spec is not None and c.spec.family == current.spec.family
        and c.spec.params.get(N_MEMBERS, 1) == 1 and c.source in OWN_FITS
        and c.train_rows == n_train and c.spec.key() != key
    ]
    return sorted(others, key=session.selection_key, reverse=True)[:AVERAGED_CONFIGS - 1]


def _fit_average(session: RunSession, start: CandidateResult, members: int,
                 first: Any = None) -> CandidateResult:
    """``members`` copies of ``start``'s configuration on all training rows; ``first``: an
    average of fewer copies of it, made here (its copies are reused)."""
    spec = start.spec
    averaged = StudentSpec(spec.family, spec.capacity, spec.temperature, spec.alpha,
                           spec.trial, {**spec.params, N_MEMBERS: members})
    # The start is the copy with the run's seed when it was fitted on these rows and
    # targets: reused, not fitted again.
    own = start.source in OWN_FITS and start.train_rows == len(session.split.train)
    if first is None and own:
        first = uncalibrated(start.model)
    return session.fit(averaged, source="climb", name=f"climb {averaged.label()}",
                       first_member=first)


def _brier(result: CandidateResult) -> float:
    """Validation Brier score (``inf`` when undefined: never preferred)."""
    value = result.val.get("brier", math.nan)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else math.inf


def _entry(
    base: dict[str, Any], step: int, kind: str, result: CandidateResult, metric: str
) -> dict[str, Any]:
    """One student of the climb, as the record shows it."""
    teacher_size = base["teacher_size_bytes"]
    return {
        "step": step,
        "kind": kind,
        "capacity": result.spec.capacity,
        "name": result.name,
        "alpha": result.spec.alpha,
        "params": dict(result.spec.params),
        "val_metric": _val(result, metric),
        "size_bytes": result.size_bytes,
        "compression": teacher_size / result.size_bytes
        if teacher_size and result.size_bytes > 0
        else None,
        "fit_seconds": result.fit_seconds,
    }


def _has_hard_twin(session: RunSession, current: CandidateResult) -> bool:
    """Whether ``current``'s configuration on hard labels and all rows is a candidate."""
    spec, n_train = current.spec, len(session.split.train)
    return any(
        c.spec is not None and c.spec.alpha == 0 and c.train_rows == n_train
        and (c.spec.family, c.spec.capacity, c.spec.params)
        == (spec.family, spec.capacity, spec.params)
        for c in session.candidates
    )


def _hard_spec(spec: StudentSpec) -> StudentSpec:
    """``spec`` on hard labels (alpha 0, T 1): the climb's hard-label start."""
    return StudentSpec(spec.family, spec.capacity, 1.0, 0.0, spec.trial, dict(spec.params))


def _train_hard(session: RunSession, current: CandidateResult) -> CandidateResult:
    """``current``'s configuration on hard labels (alpha 0, T 1), on all training rows."""
    hard = _hard_spec(current.spec)
    return session.fit(hard, source="climb", name=f"climb {hard.label()}")


def first_fits(session: RunSession, starts: list[StudentSpec]) -> list[StudentSpec]:
    """The fits the climb will most likely ask for first, were it to start from one of
    ``starts`` (best first): the hard-label start of each that would get one.

    Successive halving trains them ahead, beside its full-rows rung, in workers that
    would otherwise wait (:meth:`~hpmkd.engine.session.RunSession.train_jobs`' ``ahead``):
    the climb's first fit used to train alone afterwards. Only what the climb asks for
    is used, so nothing the climb decides depends on this list; a start that gets a seed
    average first (the MLP) or sits below the top of the screened ladder (the climb stops
    there) is left out.

    Parameters
    ----------
    session : RunSession
    starts : list of StudentSpec
        Specs about to be trained on all training rows.

    Returns
    -------
    list of StudentSpec
    """
    if not session.plan.adaptive or session.config.max_capacity_steps == 0:
        return []
    return [
        _hard_spec(spec)
        for spec in starts
        if spec.alpha > 0
        and spec.capacity == CAPACITIES[-1]
        and spec.family not in SEED_AVERAGE_FAMILIES
        and spec.params.get(N_MEMBERS, 1) == 1
    ]


def _fill_cap(
    session: RunSession,
    current: CandidateResult,
    boot: PairedBootstrap,
    base: dict[str, Any],
    cap: int,
    step: int,
    steps: list[dict[str, Any]],
) -> str:
    """Use the room left under the size cap (LightGBM; see the module docstring).

    Returns the text appended to the stop reason ("" when nothing was tried).
    """
    spec, metric = current.spec, session.config.selection_metric
    trees, leaves = spec.params.get("n_estimators"), spec.params.get("num_leaves")
    if spec.family != "lgbm" or not trees or not leaves or current.size_bytes <= 0:
        return ""
    fixed, per_tree, per_leaf = lgbm_size_model(session.candidates, current)
    shapes = []
    for factor in FILL_SHAPES:
        deeper = (leaves + 1) * factor - 1
        n = math.floor((FILL_SHARE * cap - fixed) / (per_tree + per_leaf * deeper))
        # The same shape only with room for a tenth more trees; none below a few trees.
        if n >= FILL_MIN_TREES and (factor > 1 or n >= 1.1 * trees):
            shapes.append((n, deeper))
    tried = []
    grown_specs, names = [], []
    for n, deeper in shapes:
        params = {**spec.params, "n_estimators": n, "num_leaves": deeper}
        # Named after the rung that did not fit; its shape is in its params.
        grown = StudentSpec(spec.family, climb_capacity(step), spec.temperature, spec.alpha,
                            spec.trial, params)
        grown_specs.append(grown)
        names.append(f"climb {grown.label()} at cap {n}x{deeper}")
    results: list[CandidateResult] = []
    if grown_specs and not session.should_stop():
        # The students at the cap do not depend on each other: one wave, so parallel
        # training fits them side by side (the workers sit idle during the climb).
        try:
            results = session.fit_many(grown_specs, session.ctx, names, "climb")
        except WaveInterrupted as exc:
            session.interrupted("a student at the size cap")
            results = [exc.finished[i] for i in sorted(exc.finished)]
        except FitInterrupted:
            session.interrupted("a student at the size cap")
    for result in results:
        entry = _entry(base, step, "at_cap", result, metric)
        if result.size_bytes > cap:
            steps.append({**entry, "kept": False})
            continue
        session.add_candidate(result)
        improved = session.selection_key(result) > session.selection_key(current)
        steps.append({**entry, "share_below_teacher": boot.share_worse(result.val_proba),
                      "improved": improved, "kept": True})
        tried.append(result)
    if not tried:
        return "; no student fitted under the cap" if shapes else ""
    best = max(tried, key=session.selection_key)
    return (
        f"; {len(tried)} student(s) trained at the cap ({', '.join(s for s in _shapes(tried))}), "
        f"best {best.name} val {metric} {_val(best, metric):.4f}"
    )


def lgbm_size_model(
    candidates: list[CandidateResult], current: CandidateResult
) -> tuple[float, float, float]:
    """Pickled size of a LightGBM student as ``fixed + per_tree * trees + per_leaf *
    trees * leaves`` (bytes), fitted by least squares on the candidates' sizes.

    The fixed part is the preprocessing (its category lists: about 42 kB on
    nyc_flights_delay, a fifth of a ``large`` student), so bytes per leaf measured on one
    student overstate what a deeper one costs: 26 x 95 took 88% of the cap it was sized
    to fill at 95%. Fitted on the run's small, medium, large and ``xl1`` students there
    (20 x 7 to 45 x 47), the model predicted 26 x 95, 17 x 143 and 54 x 47 within 1%.
    With fewer than three distinct shapes, or a fit with a negative part, it falls back
    to ``current``'s bytes per leaf.

    Parameters
    ----------
    candidates : list of CandidateResult
        The run's candidates (LightGBM ones with ``n_estimators`` and ``num_leaves``
        are used).
    current : CandidateResult
        The best LightGBM student (the fallback's measure).

    Returns
    -------
    (fixed, per_tree, per_leaf) : tuple of float
    """
    points = {}
    for c in candidates:
        params = c.spec.params if c.spec is not None and c.spec.family == "lgbm" else {}
        if params.get("n_estimators") and params.get("num_leaves") and c.size_bytes > 0:
            trees = params["n_estimators"]
            points[(trees, params["num_leaves"])] = (trees, trees * params["num_leaves"],
                                                     c.size_bytes)
    if len(points) >= 3:
        rows = np.array(list(points.values()), dtype=float)
        design = np.column_stack([np.ones(len(rows)), rows[:, 0], rows[:, 1]])
        coef = np.linalg.lstsq(design, rows[:, 2], rcond=None)[0]
        if (coef >= 0).all() and coef[2] > 0:
            return float(coef[0]), float(coef[1]), float(coef[2])
    params = current.spec.params
    return 0.0, 0.0, current.size_bytes / (params["n_estimators"] * params["num_leaves"])


def _shapes(results: list[CandidateResult]) -> list[str]:
    return [f"{r.spec.params['n_estimators']}x{r.spec.params['num_leaves']}" for r in results]


def _train_rung(session: RunSession, current: CandidateResult, step: int) -> CandidateResult:
    """``current``'s configuration one rung up, on all training rows (not recorded)."""
    spec = current.spec
    capacity = climb_capacity(step)
    # The trial's other knobs (learning rate, leaf size ...) stay: only the size grows.
    params = {**spec.params, **capacity_params(spec.family, capacity)}
    grown = StudentSpec(spec.family, capacity, spec.temperature, spec.alpha, spec.trial, params)
    return session.fit(grown, source="climb", name=f"climb {grown.label()}")


def _teacher_size(session: RunSession) -> int | None:
    """Pickled size of the primary teacher (``None`` when unknown: probability columns)."""
    teacher = session.dataset.teachers[0]
    if teacher.model is not None:
        return size_bytes(teacher.model)
    return teacher.size_bytes if teacher.size_bytes > 0 else None


def _val(result: CandidateResult, metric: str) -> float:
    return float(result.val.get(metric, math.nan))


def _cap_text(ratio: float, cap: int, capacity: str, detail: str) -> str:
    return (
        f"size cap {ratio:g}x: rung {capacity} would be over {cap:,} bytes "
        f"(the teacher's size / min_compression): {detail}"
    )
