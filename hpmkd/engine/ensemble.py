"""Phase 4, ensemble: the attention-weighted multi-teacher ensemble (``use_multi_teacher``).

Attention over the teachers and the strongest candidates is fitted on the validation rows
(:class:`~hpmkd.components.multi_teacher.AttentionWeightedMultiTeacher`); a student of the
best candidate's configuration trained on the fused targets is the selectable ensemble
candidate.
"""

from __future__ import annotations

import numpy as np

from hpmkd.components.multi_teacher import AttentionWeightedMultiTeacher
from hpmkd.engine.session import RunSession
from hpmkd.evaluate import CandidateResult, TrainingContext
from hpmkd.metrics import compute_metrics
from hpmkd.result import AttentionRecord
from hpmkd.stop import FitInterrupted, abandonable
from hpmkd.students import StudentSpec, proba_in_class_order

#: Strongest candidates (by validation) that join the teachers as ensemble members.
ENSEMBLE_TOP_CANDIDATES = 3


def multi_teacher_ensemble(session: RunSession) -> AttentionRecord | None:
    """Fit the attention and train the ensemble-distilled student.

    Returns
    -------
    AttentionRecord or None
        ``None`` when the method has no ensemble (legacy).
    """
    if not session.plan.components:
        return None
    with session.phase("ensemble", "attention-weighted multi-teacher ensemble"):
        return _ensemble(session)


def _ensemble(session: RunSession) -> AttentionRecord:
    cfg = session.config
    if not cfg.use_multi_teacher:
        return AttentionRecord(enabled=False, reason="use_multi_teacher=False")
    if session.should_stop():
        return AttentionRecord(enabled=False, reason=f"{session.stop_reason}: no ensemble")
    ctx, split = session.ctx, session.split
    students = sorted(
        [c for c in session.candidates if c.source in {"config", "chain", "climb"}],
        key=session.selection_key,
        reverse=True,
    )[:ENSEMBLE_TOP_CANDIDATES]
    names = [f"teacher {n}" for n in session.teacher_probas] + [c.name for c in students]
    val_members = [p[split.validation] for p in session.teacher_probas.values()]
    val_members += [c.val_proba for c in students]
    train_members = [p[split.train] for p in session.teacher_probas.values()]
    attention = AttentionWeightedMultiTeacher().fit(val_members, ctx.y_val)
    fused_val = attention.fuse(val_members)
    metric = cfg.selection_metric
    plain_val = np.mean(val_members, axis=0)
    base = session.best_so_far().spec
    spec = StudentSpec(
        base.family, base.capacity, base.temperature, base.alpha, base.trial, dict(base.params)
    )
    try:
        # The members' predictions on every training row take seconds on large tables
        # and have no stop check: a stop leaves them behind (hpmkd.stop.abandonable).
        train_members += abandonable(_predict_train_rows, students, ctx)
        result = session.train(
            spec,
            source="ensemble",
            name=f"ensemble-distilled {spec.label()}",
            teacher_train=attention.fuse(train_members),
        )
    except FitInterrupted:
        session.interrupted("the ensemble student")
        return AttentionRecord(
            enabled=False, reason=f"{session.stop_reason}: the ensemble student was abandoned"
        )
    record = AttentionRecord(
        enabled=True,
        members=tuple(names),
        mean_weights=dict(zip(names, attention.mean_weights_.tolist(), strict=True)),
        slopes={
            "confidence": float(attention.slopes_[0]),
            "agreement": float(attention.slopes_[1]),
        },
        val_metric_fused=compute_metrics(ctx.y_val, fused_val)[metric],
        val_metric_mean=compute_metrics(ctx.y_val, plain_val)[metric],
        student=result.name,
        note="the fused ensemble's validation score is fitted on validation rows; "
        "the distilled student trained on the fused targets is the selectable candidate",
    )
    session.bus.emit(
        "info",
        phase="ensemble",
        message=f"attention weights over {len(names)} members",
        attention=record.to_dict(),
    )
    return record


def _predict_train_rows(students: list[CandidateResult], ctx: TrainingContext) -> list[np.ndarray]:
    """The students' probabilities on the training rows (class order)."""
    return [proba_in_class_order(c.model, ctx.X_train, ctx.classes) for c in students]
