"""The final fit: the selected student and its hard-label twin fitted once more, same
configuration and seed, on the training and validation rows together.

Every decision is taken before it, on the validation rows (the pick, the twin's trial),
so adding those rows to the training rows changes none of them; it gives the shipped
student a quarter more rows to learn from at the default validation share. Out of fold
on the development tables (``bench/final_fit_gain.py``, no test row read) the same
configuration gained KS from the extra rows on case b on every seed, and on most real
tables (docs/HPM.md, "The final fit on training + validation rows").

The final fit cannot be calibrated on the validation rows (it trained on them); it takes
the calibration fitted there for the train-only fit
(:func:`~hpmkd.evaluate.with_calibration_of`). The student keeps the train-only fit's
validation figures; the test rows are read once, afterwards, for the final fits. The twin
is fitted on the same rows, so the verdict still compares like with like.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hpmkd.components.chain import STAGE_MIX
from hpmkd.engine.session import HALVING_MIN_ROWS, RunSession
from hpmkd.evaluate import CandidateResult, TrainingContext
from hpmkd.result import FinalFitRecord
from hpmkd.stop import FitInterrupted
from hpmkd.students import proba_in_class_order

#: Largest training rows of the final fit under ``final_fit="auto"``: the successive
#: halving threshold. Above it the search itself trades rows for speed, and on
#: nyc_flights_delay and us_census_fertility the two extra full-size fits took 2.6 s and
#: 0.6 s, taking the runs to or past three times the teacher's fit (docs/BENCHMARKS.md 8).
FINAL_FIT_MAX_ROWS = HALVING_MIN_ROWS

#: Sources of candidates that learned from the run's own soft targets.
PLAIN_SOURCES = ("config", "grid", "climb")

CALIBRATION = "calibrated by the temperature fitted on validation for the train-only fit"


def final_fits(
    session: RunSession,
    selected: CandidateResult,
    twin: CandidateResult | None,
    ctx: TrainingContext,
) -> tuple[CandidateResult, CandidateResult | None, FinalFitRecord]:
    """The selected student and its twin fitted on ``ctx``'s training rows plus the
    validation rows (``ctx``: the rows both learned from), and the record of it.

    When the final fit is off, not possible for the selected candidate, or a stop was
    requested, the train-only fits are returned unchanged and the record says why.
    """
    selected, twin, record = _fit_final(session, selected, twin, ctx)
    session.bus.emit("info", phase="compare", message=record.sentence(),
                     final_fit=record.to_dict())
    return selected, twin, record


def _fit_final(
    session: RunSession,
    selected: CandidateResult,
    twin: CandidateResult | None,
    ctx: TrainingContext,
) -> tuple[CandidateResult, CandidateResult | None, FinalFitRecord]:
    why_not = _why_not(session, selected)
    if why_not is not None:
        return selected, twin, FinalFitRecord(enabled=False, reason=why_not)
    all_rows = session.with_validation_rows(ctx, _targets(session, selected, ctx))
    shared = twin is not None and twin.model is selected.model
    pair = [selected] + ([twin] if twin is not None and not shared else [])
    try:
        fitted = session.fit_many(
            [c.spec for c in pair], all_rows, [c.name for c in pair], "final_fit",
            refit_of=[c.model for c in pair],
        )
    except FitInterrupted:
        session.interrupted("the final fit on training + validation rows")
        return selected, twin, FinalFitRecord(
            enabled=False, reason=f"{session.stop_reason}: the train-only fits are shipped"
        )
    shipped = [_shipped(c, f) for c, f in zip(pair, fitted, strict=True)]
    new_twin = None
    if twin is not None:
        new_twin = _shipped(twin, fitted[0]) if shared else shipped[1]
    record = FinalFitRecord(
        rows=len(all_rows.y_train),
        train_only_rows=len(ctx.y_train),
        validation_rows=len(session.ctx.y_val),
        student=selected.name,
        twin=twin.name if twin is not None else None,
        fit_seconds=round(sum(f.fit_seconds for f in fitted), 3),
        calibration=CALIBRATION,
    )
    return shipped[0], new_twin, record


def _why_not(session: RunSession, selected: CandidateResult) -> str | None:
    """Why the train-only fit is shipped, or None when the final fit runs."""
    mode, rows = session.config.final_fit, len(session.split.train)
    if mode == "off":
        return "final_fit is off"
    if mode == "auto" and rows > FINAL_FIT_MAX_ROWS:
        return (
            f"final_fit='auto' leaves it out above {FINAL_FIT_MAX_ROWS:,} training rows "
            f"({rows:,} here), where the search trains on subsamples for speed; "
            "final_fit='on' fits anyway (two more full-size fits)"
        )
    if session.stop.requested:
        session.should_stop()  # records where the stop landed
        return f"{session.stop_reason}: the final fit was skipped"
    if selected.spec is None or selected.source not in (*PLAIN_SOURCES, "chain"):
        return (
            f"the selected student is a {selected.source} candidate, whose training targets "
            "(fused with other students' predictions) exist on the training rows only"
        )
    return None


def _targets(
    session: RunSession, selected: CandidateResult, ctx: TrainingContext
) -> tuple[np.ndarray, np.ndarray] | None:
    """What ``selected`` learned from, on ``ctx``'s training rows and on the validation
    rows; None for the run's own soft targets.

    A chain stage after the first learned from the teacher mixed with the stage before
    it (:meth:`~hpmkd.engine.session.RunSession.previous_stage`): the same mix, with that stage's
    predictions on the validation rows too.
    """
    stage = session.previous_stage(selected)
    if stage is None:
        return None
    previous = stage.model
    return tuple(
        _mix(source, proba_in_class_order(previous, X, ctx.classes))
        for source, X in ((ctx.teacher_train, ctx.X_train),
                          (session.validation_targets(), session.ctx.X_val))
    )


def _mix(source: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """A chain stage's targets: the chain's own formula."""
    mixed = (1 - STAGE_MIX) * source + STAGE_MIX * previous
    return mixed / mixed.sum(axis=1, keepdims=True)


def _shipped(candidate: CandidateResult, final: CandidateResult) -> CandidateResult:
    """``candidate`` with the final fit's model, size, latency and fit time; its
    validation figures (and name, source, rows) stay the train-only fit's."""
    return replace(
        candidate,
        model=final.model,
        size_bytes=final.size_bytes,
        latency_ms_1k=final.latency_ms_1k,
        extra={
            **candidate.extra,
            "final_fit": {
                "rows": final.train_rows,
                "fit_seconds": round(final.fit_seconds, 3),
                "from_cache": bool(final.from_cache),
                "train_only_size_bytes": candidate.size_bytes,
            },
        },
    )
