"""Phase 5, compare: pick the selected student on the validation split, score the teachers
on the same rows, and train the selected student's hard-label twin.

Test metrics are reported, never used to choose.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

from hpmkd.engine.session import RunSession
from hpmkd.evaluate import CandidateResult, TrainingContext
from hpmkd.metrics import compute_metrics, latency_ms_1k, single_thread_predictor, size_bytes
from hpmkd.result import SelectionDecision
from hpmkd.students import StudentSpec
from hpmkd.teacher import Teacher

#: ``smallest_tied``: a smaller candidate is tied with the top one unless it scores below
#: it in at least this share of paired bootstrap resamples of the validation rows.
TIE_THRESHOLD = 0.9


@dataclass(frozen=True)
class Comparison:
    """What phase 5 decided and measured."""

    selected: CandidateResult
    decision: SelectionDecision
    teachers: tuple[CandidateResult, ...]
    twin: CandidateResult | None


def compare_candidates(session: RunSession) -> Comparison:
    """Select the student, score the teachers and train the hard-label twin."""
    with session.phase("compare"):
        if not session.candidates:
            raise RuntimeError(
                "No candidate was trained (the time budget ran out before the first one)."
            )
        selected, decision = select_student(session)
        test_rows = hashlib.sha256(session.split.test.tobytes()).hexdigest()
        dataset = session.dataset
        teachers = tuple(
            replace(
                session.memo(
                    "teacher_score",
                    # The fingerprint covers the teachers' probabilities on every row.
                    (dataset.fingerprint(), t.name, type(t.model).__name__, test_rows),
                    lambda t=t: _score_teacher(session, t),
                ),
                teacher_name=t.name,
            )
            for t in dataset.teachers
        )
        twin = _twin(session, selected)
        metric = session.config.selection_metric
        session.bus.emit(
            "info",
            phase="compare",
            message=(
                f"best {selected.name}: val {metric} {selected.val[metric]:.4f}, "
                f"test {metric} {selected.test[metric]:.4f}"
            ),
            best=selected.name,
        )
    return Comparison(selected, decision, teachers, twin)


def select_student(session: RunSession) -> tuple[CandidateResult, SelectionDecision]:
    """The selected student under ``config.selection_rule``, and the decision record.

    ``best``: the highest validation metric (ties: smaller model). ``smallest_tied``
    (default): the smallest candidate that is not clearly worse than that top candidate
    — not below it in at least 90% of paired bootstrap resamples of the validation rows.
    With many candidates and few validation rows the top score is partly luck (the
    winner's curse); among statistically tied candidates the smallest is both the better
    guess and the better student to ship.
    """
    cfg = session.config
    metric = cfg.selection_metric
    top = session.best_so_far()
    chosen, tied_checked = top, []
    if cfg.selection_rule == "smallest_tied":
        smaller = sorted(
            (c for c in session.candidates if 0 <= c.size_bytes < top.size_bytes),
            key=lambda c: (c.size_bytes, -session.selection_key(c)[0]),
        )
        for candidate in smaller:
            share = session.share_worse(top, candidate, n_boot=200)
            tied_checked.append({"name": candidate.name, "share_worse": share})
            if share < TIE_THRESHOLD:
                chosen = candidate
                break
    if chosen is top:
        reason = f"highest validation {metric} ({top.val.get(metric, math.nan):.4f})" + (
            ""
            if cfg.selection_rule == "best"
            else "; no smaller candidate is statistically tied with it"
        )
    else:
        reason = (
            f"smallest candidate statistically tied with the top validation {metric} "
            f"({top.name}: {top.val.get(metric, math.nan):.4f}; this one "
            f"{chosen.val.get(metric, math.nan):.4f}, below it in only "
            f"{tied_checked[-1]['share_worse']:.0%} of paired bootstrap resamples), "
            f"{top.size_bytes / max(chosen.size_bytes, 1):.1f}x smaller"
        )
    decision = SelectionDecision(
        rule=cfg.selection_rule,
        top_by_validation=top.name,
        selected=chosen.name,
        reason=reason,
        smaller_candidates_checked=tuple(tied_checked),
        threshold=TIE_THRESHOLD,
    )
    return chosen, decision


def _twin(session: RunSession, selected: CandidateResult) -> CandidateResult | None:
    """Same family, capacity and hyper-parameters as ``selected``, trained on hard labels
    from the same rows it learned from."""
    spec = selected.spec
    if spec is None:
        return None
    hard = StudentSpec(spec.family, spec.capacity, 1.0, 0.0, spec.trial, dict(spec.params))
    return session.fit(
        hard, _twin_context(session, selected), source="baseline", name=f"baseline {hard.label()}"
    )


def _twin_context(session: RunSession, selected: CandidateResult) -> TrainingContext:
    """The rung-0 subsample when ``selected`` was trained there, else all training rows."""
    sub = session.rung0_ctx
    if sub is not None and selected.train_rows == len(sub.y_train):
        return sub
    return session.ctx


def _score_teacher(session: RunSession, teacher: Teacher) -> CandidateResult:
    ds, split, ctx = session.dataset, session.split, session.ctx
    proba = ds.teacher_probas[teacher.name]
    val_p, test_p = proba[split.validation], proba[split.test]
    if teacher.model is not None:
        cols = teacher.feature_columns(ds.frame, ds.features)
        X_test = ds.frame.iloc[split.test][cols]
        size = size_bytes(teacher.model)
        latency = latency_ms_1k(single_thread_predictor(teacher.model), X_test)
    else:
        # A teacher file only ever runs in its isolated process, which measured these
        # (-1 and NaN for probability columns).
        size, latency = teacher.size_bytes, teacher.latency_ms_1k
    return CandidateResult(
        name=f"teacher {teacher.name}",
        source="teacher",
        spec=None,
        val=compute_metrics(ds.y[split.validation], val_p, ctx.reference_val),
        test=compute_metrics(ds.y[split.test], test_p, ctx.reference_test),
        fit_seconds=math.nan,
        size_bytes=size,
        latency_ms_1k=latency,
        val_proba=val_p,
        test_proba=test_p,
        model=teacher.model,
        extra={"family": teacher.family},
        teacher_name=teacher.name,
    )
