"""Train one candidate and score it: the single place where a student meets the data.

``TrainingContext`` holds the split data and the soft-target source; ``train_candidate``
is a pure function of it and a :class:`~hpmkd.students.StudentSpec`, so the same code runs
sequentially, in joblib workers and on Dask workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hpmkd.metrics import compute_metrics, latency_ms_1k, single_thread_predictor, size_bytes
from hpmkd.students import (
    StudentSpec,
    build_student,
    fit_on_soft_targets,
    proba_in_class_order,
    soft_targets,
)


@dataclass
class TrainingContext:
    """Everything a candidate needs, already split.

    ``teacher_*`` are the probabilities students learn from (one teacher, a mean, or the
    attention-fused target); ``reference_*`` are the probabilities agreement metrics
    (fidelity, KL) are measured against: the primary teacher.
    """

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    teacher_train: np.ndarray
    reference_val: np.ndarray
    reference_test: np.ndarray
    classes: list[Any]
    numeric: list[str]
    categorical: list[str]
    seed: int = 42
    n_threads: int = 1


@dataclass
class CandidateResult:
    """A trained, scored model. ``model`` is the fitted student (not plain data).

    Teachers are scored into the same record; ``teacher_name`` is then the teacher's name
    in the dataset (``None`` for students).
    """

    name: str
    source: str
    spec: StudentSpec | None
    val: dict[str, Any]
    test: dict[str, Any]
    fit_seconds: float
    size_bytes: int
    latency_ms_1k: float
    val_proba: np.ndarray
    test_proba: np.ndarray
    model: Any = None
    from_cache: bool = False
    train_rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    teacher_name: str | None = None


def train_candidate(
    spec: StudentSpec,
    ctx: TrainingContext,
    source: str = "config",
    name: str | None = None,
    teacher_train: np.ndarray | None = None,
    full: bool = True,
) -> CandidateResult:
    """Fit ``spec`` on the soft targets of the training rows and score it.

    Parameters
    ----------
    spec : StudentSpec
    ctx : TrainingContext
    source : str
        ``config``, ``grid``, ``chain``, ``baseline`` ... (recorded in the results).
    name : str, optional
        Candidate name; default ``spec.label()``.
    teacher_train : ndarray, optional
        Probabilities to learn from instead of ``ctx.teacher_train`` (the chain passes
        a mix of the teacher and the previous stage).
    full : bool
        ``False`` (screening) skips test metrics, size and latency.
    """
    source_proba = ctx.teacher_train if teacher_train is None else teacher_train
    targets = soft_targets(source_proba, ctx.y_train, spec.temperature, spec.alpha)
    start = time.perf_counter()
    model = build_student(
        spec.family, spec.params, ctx.numeric, ctx.categorical, ctx.seed, ctx.n_threads
    )
    fit_on_soft_targets(model, ctx.X_train, targets, ctx.classes)
    fit_seconds = time.perf_counter() - start
    return score_model(model, ctx, name or spec.label(), source, spec, fit_seconds, full=full)


def score_model(
    model: Any,
    ctx: TrainingContext,
    name: str,
    source: str,
    spec: StudentSpec | None,
    fit_seconds: float,
    full: bool = True,
) -> CandidateResult:
    """Validation and test metrics, size and latency of a fitted model.

    With ``full=False`` only validation metrics are computed (test metrics are NaN).
    """
    val_proba = proba_in_class_order(model, ctx.X_val, ctx.classes)
    if full:
        test_proba = proba_in_class_order(model, ctx.X_test, ctx.classes)
        test = compute_metrics(ctx.y_test, test_proba, ctx.reference_test)
        size, latency = size_bytes(model), latency_ms_1k(single_thread_predictor(model), ctx.X_test)
    else:
        test_proba = np.empty((0, len(ctx.classes)))
        test, size, latency = {"undefined": {"all": "screening fit"}}, -1, float("nan")
    return CandidateResult(
        name=name,
        source=source,
        spec=spec,
        val=compute_metrics(ctx.y_val, val_proba, ctx.reference_val),
        test=test,
        fit_seconds=fit_seconds,
        size_bytes=size,
        latency_ms_1k=latency,
        val_proba=val_proba,
        test_proba=test_proba,
        model=model,
        train_rows=len(ctx.y_train),
    )


def subsample_context(
    ctx: TrainingContext, rows: int, seed: int, validation: bool = True
) -> TrainingContext:
    """A context with a stratified, seeded subsample of at most ``rows`` training rows
    (and validation rows too when ``validation``); the test rows are kept."""
    from dataclasses import replace

    def pick(y: np.ndarray) -> np.ndarray:
        if len(y) <= rows:
            return np.arange(len(y))
        rng = np.random.default_rng(seed)
        parts = []
        for k in np.unique(y):
            idx = np.flatnonzero(y == k)
            take = max(2, round(rows * len(idx) / len(y)))
            parts.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
        return np.sort(np.concatenate(parts))

    tr = pick(ctx.y_train)
    out = replace(
        ctx,
        X_train=ctx.X_train.iloc[tr],
        y_train=ctx.y_train[tr],
        teacher_train=ctx.teacher_train[tr],
    )
    if validation:
        va = pick(ctx.y_val)
        out = replace(
            out,
            X_val=ctx.X_val.iloc[va],
            y_val=ctx.y_val[va],
            reference_val=ctx.reference_val[va],
        )
    return out
