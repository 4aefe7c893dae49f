"""The capacity climb, at the end of phase 3: bigger students while the best one is still
clearly below the teacher on validation.

The screened ladder (small, medium, large) is sized for typical tables; on harder ones the
best student can be the largest capacity offered and still fall short of the teacher. Then
the search goes on up the ladder (:func:`hpmkd.students.capacity_params`: ``xl1``,
``xl2`` ..., each about 1.5 times the size of the rung below), one rung at a time, from the
best candidate's family, temperature, alpha and trial knobs, trained on all training rows.

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
from typing import Any

from hpmkd.components.racing import PairedBootstrap, metric_value
from hpmkd.engine.session import RunSession
from hpmkd.evaluate import CandidateResult
from hpmkd.metrics import size_bytes
from hpmkd.result import CapacityRecord
from hpmkd.stop import FitInterrupted
from hpmkd.students import (
    CAPACITIES,
    MAX_CLIMB_STEPS,
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
        if cap is not None and growth is not None and current.size_bytes * growth > cap:
            return "size_cap", _cap_text(cfg.min_compression, cap, climb_capacity(step), (
                f"about {current.size_bytes * growth:,.0f} bytes expected "
                f"({growth:.1f}x the rung below)"))
        try:
            result = _train_rung(session, current, step)
        except FitInterrupted:
            session.interrupted(f"capacity rung {climb_capacity(step)}")
            return "stopped", f"{session.stop_reason}, during rung {climb_capacity(step)}"
        entry = {
            "step": step,
            "capacity": result.spec.capacity,
            "name": result.name,
            "params": dict(result.spec.params),
            "val_metric": _val(result, metric),
            "size_bytes": result.size_bytes,
            "compression": base["teacher_size_bytes"] / result.size_bytes
            if base["teacher_size_bytes"] and result.size_bytes > 0
            else None,
            "fit_seconds": result.fit_seconds,
        }
        if cap is not None and result.size_bytes > cap:
            steps.append({**entry, "kept": False})
            return "size_cap", _cap_text(
                cfg.min_compression, cap, result.spec.capacity,
                f"{result.size_bytes:,} bytes; not kept as a candidate",
            )
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
