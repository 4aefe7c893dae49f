"""The final fit: the selected student and its hard-label twin fitted once more, same
configuration and seed, on the training and validation rows together.

Every decision is taken before it, on the validation rows (the pick, the twin's trial),
so adding those rows to the training rows changes none of them; it gives the shipped
student a quarter more rows to learn from at the default validation share. Out of fold
on the development tables (``bench/refit_gain.py``, no test row read) the same
configuration gained KS from the extra rows on case b on every seed, and on most real
tables (docs/HPM.md, "The final fit on training + validation rows").

The final fit cannot be calibrated on the validation rows (it trained on them); it takes
the calibration fitted there for the train-only fit
(:func:`~hpmkd.evaluate.with_calibration_of`). The student keeps the train-only fit's
validation figures; the test rows are read once, afterwards, for the final fits. The twin
is fitted on the same rows, so the verdict still compares like with like.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace

import numpy as np

from hpmkd.components.chain import STAGE_MIX
from hpmkd.engine.session import RunSession
from hpmkd.evaluate import CandidateResult, TrainingContext
from hpmkd.result import RefitRecord
from hpmkd.stop import FitInterrupted
from hpmkd.students import proba_in_class_order

#: Sources of candidates that learned from the run's own soft targets.
PLAIN_SOURCES = ("config", "grid", "climb")

CALIBRATION = "calibrated by the temperature fitted on validation for the train-only fit"


class FinalFits:
    """The final fits of one run's selected student and its twin.

    :meth:`start` may begin the student's final fit early, while the twin's trials train;
    :meth:`finish` fits the twin (once its best trial is known) and returns both.

    Parameters
    ----------
    session : RunSession
    selected : CandidateResult
        The selected student (train-only fit).
    ctx : TrainingContext
        The rows it and its twin learned from (all training rows or the halving
        subsample).
    """

    def __init__(
        self, session: RunSession, selected: CandidateResult, ctx: TrainingContext
    ) -> None:
        self.session, self.selected, self.ctx = session, selected, ctx
        self._rows: TrainingContext | None = None
        self._early: Future | None = None

    def rows(self) -> TrainingContext:
        """``ctx``'s training rows plus the validation rows, with the student's targets."""
        if self._rows is None:
            self._rows = self.session.with_validation_rows(
                self.ctx, _targets(self.session, self.selected, self.ctx)
            )
        return self._rows

    def start(self) -> None:
        """Start the student's final fit now, in a thread of this process, when the twin's
        trials are about to train in loky workers.

        The run's process only waits for the workers meanwhile: on nyc_flights_delay the
        twin's trials and the student's final fit took 1.5 s and 2.8 s one after the
        other. The early fit uses one thread, as in a sequential run (the workers have
        the other cores). Elsewhere (sequential, Dask) nothing starts early.
        """
        session = self.session
        if session.executor.backend != "loky" or _why_not(session, self.selected) is not None:
            return
        ctx = replace(self.rows(), n_threads=1)
        pool = ThreadPoolExecutor(1, thread_name_prefix="hpmkd-final-fit")
        # In a copy of this context: the fit sees the run's stop request.
        self._early = pool.submit(contextvars.copy_context().run, self._fit, [self.selected], ctx)
        pool.shutdown(wait=False)

    def settle(self) -> None:
        """Wait for an early fit (the phase is leaving on an error or a stop)."""
        if self._early is not None:
            wait([self._early])

    def finish(
        self, twin: CandidateResult | None
    ) -> tuple[CandidateResult, CandidateResult | None, RefitRecord]:
        """The selected student and ``twin`` fitted on :meth:`rows`, and the record.

        When the final fit is off, not possible for the selected candidate, or a stop was
        requested, the train-only fits are returned unchanged and the record says why.
        """
        selected, twin, record = self._finish(twin)
        self.session.bus.emit("info", phase="compare", message=record.sentence(),
                              refit=record.to_dict())
        return selected, twin, record

    def _fit(self, pair: list[CandidateResult], ctx: TrainingContext) -> list[CandidateResult]:
        return self.session.fit_many(
            [c.spec for c in pair], ctx, [c.name for c in pair], "refit",
            refit_of=[c.model for c in pair],
        )

    def _finish(
        self, twin: CandidateResult | None
    ) -> tuple[CandidateResult, CandidateResult | None, RefitRecord]:
        session, selected = self.session, self.selected
        why_not = _why_not(session, selected)
        if why_not is not None:
            self.settle()
            return selected, twin, RefitRecord(enabled=False, reason=why_not)
        shared = twin is not None and twin.model is selected.model
        pair = [selected] + ([twin] if twin is not None and not shared else [])
        try:
            if self._early is not None:
                fitted = self._early.result() + (self._fit(pair[1:], self.rows())
                                                 if len(pair) > 1 else [])
            else:
                fitted = self._fit(pair, self.rows())
        except FitInterrupted:
            self.settle()
            session.interrupted("the final fit on training + validation rows")
            return selected, twin, RefitRecord(
                enabled=False, reason=f"{session.stop_reason}: the train-only fits are shipped"
            )
        shipped = [_shipped(c, f) for c, f in zip(pair, fitted, strict=True)]
        new_twin = None
        if twin is not None:
            new_twin = _shipped(twin, fitted[0]) if shared else shipped[1]
        record = RefitRecord(
            rows=len(self.rows().y_train),
            train_only_rows=len(self.ctx.y_train),
            validation_rows=len(session.ctx.y_val),
            student=selected.name,
            twin=twin.name if twin is not None else None,
            fit_seconds=round(sum(f.fit_seconds for f in fitted), 3),
            calibration=CALIBRATION,
        )
        return shipped[0], new_twin, record


def _why_not(session: RunSession, selected: CandidateResult) -> str | None:
    """Why the train-only fit is shipped, or None when the final fit runs."""
    if not session.config.refit_with_validation:
        return "refit_with_validation is off"
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
    it (:class:`~hpmkd.components.chain.ProgressiveDistillationChain`): the same mix,
    with that stage's predictions on the validation rows too. The stages are the run's
    chain candidates in the order they were trained.
    """
    if selected.source != "chain":
        return None
    stages = [c.name for c in session.candidates if c.source == "chain"]
    index = stages.index(selected.name)
    if index == 0:
        return None
    previous = next(c for c in session.candidates if c.name == stages[index - 1]).model
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
