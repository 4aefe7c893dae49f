"""Phase 5, compare: pick the student on the validation split, train its hard-label twin
with the same tuning budget, fit both once more on training + validation rows
(:mod:`hpmkd.engine.final_fit`), and read the test rows once: for the selected student, the
teacher(s) and the twin, with paired-bootstrap intervals on their differences.

Nothing before this phase reads the test rows, and nothing here feeds back into a choice.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from hpmkd.components.racing import PairedBootstrap
from hpmkd.components.selection_rule import SelectionDecision, rank_key, select_student
from hpmkd.engine.final_fit import final_fits
from hpmkd.engine.session import RunSession
from hpmkd.evaluate import (
    CandidateResult,
    TestRows,
    TrainingContext,
    score_on_test,
    uncalibrated,
)
from hpmkd.metrics import (
    AGREEMENT_METRICS,
    compute_metrics,
    latency_ms_1k,
    single_thread_predictor,
    size_bytes,
)
from hpmkd.result import (
    NOT_MEASURED,
    UNDEFINED,
    Difference,
    FinalFitRecord,
    Verdict,
    comparison_outcome,
)
from hpmkd.results_table import metrics_dict
from hpmkd.stop import FitInterrupted, abandonable
from hpmkd.students import N_MEMBERS, StudentSpec, sibling_trial_params
from hpmkd.teacher import Teacher

#: Paired resamples of the test rows behind each verdict interval.
VERDICT_BOOT = 1000


@dataclass(frozen=True)
class Comparison:
    """What phase 5 decided and measured."""

    selected: CandidateResult
    decision: SelectionDecision
    teachers: tuple[CandidateResult, ...]
    twin: CandidateResult | None
    verdict: Verdict | None
    final_fit: FinalFitRecord


def compare_candidates(session: RunSession) -> Comparison:
    """Select the student, train its twin, score student, teachers and twin on test."""
    with session.phase("compare"):
        if not session.candidates:
            raise RuntimeError(
                "No candidate was trained (the time budget ran out before the first one)."
            )
        cfg = session.config
        selected, decision = _select(session)
        twin = _twin(session, selected)
        if twin is None and session.stop.requested:
            session.bus.emit(
                "info",
                phase="compare",
                message=f"{session.stop_reason}: the hard-label twin was not trained, so "
                "this partial run has no distillation verdict (the student is compared with "
                "the teacher(s) only)",
            )
        chosen = selected
        selected, twin, final_fit = final_fits(
            session, selected, twin, _twin_context(session, chosen)
        )
        # The one read of the test rows.
        rows = session.test_rows()
        selected, twin = _score_pair(selected, twin, rows)
        session.candidates = [selected if c is chosen else c for c in session.candidates]
        teachers = _score_teachers(session, rows)
        stopped = session.stop.requested
        if stopped:
            # A stop ends the run within seconds: the verdict's paired-bootstrap intervals
            # (thousands of resamples of the test rows) are skipped, its comparisons kept
            # as point values.
            session.should_stop()  # records where the stop landed
            session.bus.emit(
                "info",
                phase="compare",
                message=f"{session.stop_reason}: the verdict's intervals were not computed",
            )
        verdict = _verdict(session, selected, twin, teachers, rows, intervals=not stopped)
        metric = cfg.selection_metric
        session.bus.emit(
            "info",
            phase="compare",
            message=(
                f"best {selected.name}: val {metric} {selected.val[metric]:.4f}, "
                f"test {metric} {selected.test[metric]:.4f}"
            ),
            best=selected.name,
        )
    return Comparison(selected, decision, teachers, twin, verdict, final_fit)


def _select(session: RunSession) -> tuple[CandidateResult, SelectionDecision]:
    """The selected student under the configured rule; in a stopped run, the top
    validation candidate.

    The rule's bootstrap comparison of smaller candidates takes seconds on large tables
    (400 resamples of the validation rows per close candidate) and has no stop check: a
    stop, before or during it, leaves it (:func:`~hpmkd.stop.abandonable`) and the
    partial run keeps the best candidate by validation, saying so in the decision.
    """
    cfg = session.config
    common = (session.candidates, session.ctx.y_val, session.ctx.reference_val,
              cfg.selection_metric)
    rest = (cfg.min_saving, cfg.noninferiority_margin, session.random_state)
    if cfg.selection_rule == "best":
        return select_student(*common, "best", *rest)
    try:
        return abandonable(select_student, *common, cfg.selection_rule, *rest)
    except FitInterrupted:
        session.should_stop()  # records where the stop landed
        selected, decision = select_student(*common, "best", *rest)
        reason = (f"{decision.reason}; {session.stop_reason}: the check for a smaller, "
                  "non-inferior candidate was skipped")
        session.bus.emit("info", phase="compare", message=f"{session.stop_reason}: selected "
                         "the top validation candidate without the smaller-model check")
        return selected, replace(decision, rule=cfg.selection_rule, reason=reason)


# ----------------------------------------------------------------------------- twin
def _twin(session: RunSession, selected: CandidateResult) -> CandidateResult | None:
    """The selected student's family and capacity on hard labels, from the rows it learned
    from, with the same tuning budget: every trial the configuration had, the best on
    validation kept."""
    spec = selected.spec
    # A run stopped on request skips the twin (n_trials more fits; a stop must be quick):
    # the partial run is labelled, its verdict has the teachers only. An expired time budget
    # still trains it, as before.
    if spec is None:
        return None
    if session.stop.requested:
        session.should_stop()  # records where the stop landed
        return None
    n_trials = session.config.n_trials if session.plan.adaptive else 1
    n_train = len(session.split.train)
    ctx = _twin_context(session, selected)
    # A seed-averaged student's search trials were single fits, and only the best
    # configuration was averaged (engine/climb.py): the twin gets the same, single-fit
    # trials, then its best trial averaged over as many seeds.
    members = int(spec.params.get(N_MEMBERS, 1))
    specs = []
    for trial in range(n_trials):
        params = sibling_trial_params(spec, trial, n_train, session.random_state)
        params.pop(N_MEMBERS, None)
        specs.append(StudentSpec(spec.family, spec.capacity, 1.0, 0.0, trial, params))
    names = [f"baseline {hard.label()}" for hard in specs]
    # A candidate of the search with alpha 0 and the same family, capacity and
    # hyper-parameters, trained on the same rows, is this twin trial already (its
    # temperature changes nothing at alpha 0): reused, not fitted again.
    reused = {i: _same_fit(session, hard, ctx) for i, hard in enumerate(specs)}
    reused = {i: r for i, r in reused.items() if r is not None}
    todo = [i for i in range(len(specs)) if i not in reused]
    try:
        fitted = session.fit_many(
            [specs[i] for i in todo], ctx, [names[i] for i in todo], "baseline"
        ) if todo else []
    except FitInterrupted:
        session.interrupted("the hard-label twin")
        return None
    trials = dict(zip(todo, fitted, strict=True))
    for i, result in reused.items():
        # Served from the cache exactly when the search candidate it reuses was.
        trials[i] = replace(result, spec=specs[i], source="baseline", name=names[i])
    ordered = [trials[i] for i in range(len(specs))]
    best = max(ordered, key=lambda c: rank_key(c, session.config.selection_metric))
    if members < 2 or best.spec is None:
        return best
    hard = best.spec
    averaged = StudentSpec(hard.family, hard.capacity, 1.0, 0.0, hard.trial,
                           {**hard.params, N_MEMBERS: members})
    try:
        # The best trial is the average's first copy (same seed, rows and labels).
        return session.fit(averaged, ctx, source="baseline", name=f"baseline {averaged.label()}",
                           first_member=uncalibrated(best.model))
    except FitInterrupted:
        session.interrupted("the hard-label twin")
        return None


def _same_fit(
    session: RunSession, hard: StudentSpec, ctx: TrainingContext
) -> CandidateResult | None:
    """A finished search candidate that is the fit ``hard`` (alpha 0) would make: alpha 0,
    same family, capacity and hyper-parameters, fitted and calibrated on ``ctx``'s rows."""
    params = sorted(hard.params.items())
    for result in session.candidates:
        other = result.spec
        if (
            other is not None
            and other.alpha == 0
            and (other.family, other.capacity) == (hard.family, hard.capacity)
            and sorted(other.params.items()) == params
            and result.train_rows == len(ctx.y_train)
            and result.source != "screen"  # a screening subsample, not ctx's rows
            and result.size_bytes >= 0  # fully scored and calibrated
        ):
            return result
    return None


def _twin_context(session: RunSession, selected: CandidateResult) -> TrainingContext:
    """The rung-0 subsample when ``selected`` was trained there, else all training rows."""
    sub = session.rung0_ctx
    if sub is not None and selected.train_rows == len(sub.y_train):
        return sub
    return session.ctx


def _score_pair(
    selected: CandidateResult, twin: CandidateResult | None, rows: TestRows
) -> tuple[CandidateResult, CandidateResult | None]:
    """The selected student and its twin scored on the test rows, the twin in a second
    thread beside the student.

    A student's prediction mostly runs on one core (LightGBM students with ``n_jobs=1``,
    encoders in Python; LightGBM and NumPy release the GIL while they compute), and the
    run's workers are idle by now: on nyc_flights_delay the two predictions of 65,470
    rows took 0.7 s one after the other. Each model is used by one thread only, and no
    thread-pool limit is set meanwhile (the teachers' latency is timed after both), so
    the predictions are the very ones made one after the other (a model shared by both
    is predicted once).
    """
    if twin is None:
        return score_on_test(selected, rows), None
    if twin.model is selected.model:
        # The twin's best trial is the selected (hard-label) student itself: one
        # prediction serves both.
        scored = score_on_test(selected, rows)
        return scored, replace(
            twin, test=copy.deepcopy(scored.test), test_proba=scored.test_proba.copy()
        )
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="hpmkd-twin-test") as pool:
        # A frame of its own (the same values, not copied): pandas may consolidate a
        # frame's blocks in place while reading it, which two threads must not share.
        own = replace(rows, X=rows.X.copy(deep=False))
        scored_twin = pool.submit(score_on_test, twin, own)
        scored = score_on_test(selected, rows)
        return scored, scored_twin.result()


# ----------------------------------------------------------------------------- teachers
def _score_teachers(session: RunSession, rows: TestRows) -> tuple[CandidateResult, ...]:
    dataset = session.dataset
    test_rows = hashlib.sha256(session.split.test.tobytes()).hexdigest()
    return tuple(
        replace(
            session.memo(
                "teacher_score",
                # The fingerprint covers the teachers' probabilities on every row.
                (dataset.fingerprint(), t.name, type(t.model).__name__, test_rows,
                 session.config.teacher_refit, session.config.teacher_refit_folds),
                lambda t=t: _score_teacher(session, t, rows),
            ),
            teacher_name=t.name,
        )
        for t in dataset.teachers
    )


def _score_teacher(session: RunSession, teacher: Teacher, rows: TestRows) -> CandidateResult:
    ds, split, ctx = session.dataset, session.split, session.ctx
    # With teacher_refit="oof", validation and test rows are scored by a clone fitted on
    # the training rows only: the teacher's scores come from rows it did not train on.
    proba = session.teacher_probas[teacher.name]
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
        val=compute_metrics(ctx.y_val, val_p, ctx.reference_val),
        test=compute_metrics(rows.y, test_p, rows.reference),
        fit_seconds=math.nan,
        size_bytes=size,
        latency_ms_1k=latency,
        val_proba=val_p,
        test_proba=test_p,
        model=teacher.model,
        extra={"family": teacher.family, "refit": session.config.teacher_refit},
        teacher_name=teacher.name,
    )


# ----------------------------------------------------------------------------- verdict
#: Student-minus-twin point gains recorded in ``Verdict.gains`` (``ece`` and ``brier``:
#: lower is better, so a negative gain is an improvement).
GAIN_METRICS = ("ks", "auc", "accuracy", "f1", "ece", "brier")


def _verdict(
    session: RunSession,
    student: CandidateResult,
    twin: CandidateResult | None,
    teachers: tuple[CandidateResult, ...],
    rows: TestRows,
    intervals: bool = True,
) -> Verdict | None:
    why = session.stop_reason or "it was not trained"
    return build_verdict(student, twin, teachers, rows, session.config.selection_metric,
                         session.random_state, intervals=intervals, why_no_twin=why)


def build_verdict(
    student: CandidateResult,
    twin: CandidateResult | None,
    teachers: Sequence[CandidateResult],
    rows: TestRows,
    metric: str,
    seed: int,
    intervals: bool = True,
    why_no_twin: str = "it was not trained",
) -> Verdict | None:
    """The student against its hard-label twin and every teacher on the test rows, in
    ``metric`` and in KS, each difference with its 95% paired-bootstrap interval.

    A selection metric that measures agreement with the teacher (``fidelity``,
    ``rank_fidelity``) is raised by soft targets by construction, and a teacher agrees
    with itself: the headline is then the twin in KS, and no teacher is compared in the
    agreement metric (the twin still is).

    Parameters
    ----------
    student, twin : CandidateResult
        Scored on the test rows (``test``, ``test_proba``); ``twin`` None when it was not
        trained (a stopped run): the teachers are compared all the same.
    teachers : sequence of CandidateResult
        Those with test probabilities are compared (the first is the primary teacher).
    rows : TestRows
        The test rows the models were scored on.
    metric : str
        The selection metric.
    seed : int
        Seed of the paired resamples.
    intervals : bool, default True
        False skips the bootstrap (a run stopped on request): differences are point
        values, their outcome ``not measured``.
    why_no_twin : str
        Why there is no twin, for the headline.

    Returns
    -------
    Verdict or None
        None when there is nothing to compare the student with.
    """
    judged_in = "ks" if metric in AGREEMENT_METRICS else metric
    metrics = list(dict.fromkeys([metric, "ks"]))
    others = [("twin", twin)] if twin is not None else []
    others += [("teacher", t) for t in teachers if t.test_proba is not None]
    if not others:
        return None

    def compared(m: str) -> list[tuple[str, CandidateResult]]:
        return [(who, o) for who, o in others if not (who == "teacher" and m in AGREEMENT_METRICS)]

    by_metric: dict[str, dict[str, Difference]] = {}
    for m in metrics:
        models = compared(m)
        scores = (_resample_scores(student, [o for _, o in models], m, rows, seed)
                  if intervals else [None] * (1 + len(models)))
        by_metric[m] = {
            o.name: _difference(student, o, who, m, rows, scores[0], scores[1 + i])
            for i, (who, o) in enumerate(models)
        }
    # Grouped by model, the selection metric first.
    differences = tuple(
        by_metric[m][o.name] for _, o in others for m in metrics if o.name in by_metric[m]
    )
    gains: dict[str, float | None] = {}
    if twin is not None:
        s, t = metrics_dict(student), metrics_dict(twin)
        gains = {
            m: None if s.get(m) is None or t.get(m) is None else s[m] - t[m]
            for m in GAIN_METRICS
        }
    main = by_metric[judged_in].get(twin.name) if twin is not None else None
    if main is None:
        return Verdict(
            gains=gains, differences=differences, outcome=NOT_MEASURED, metric=judged_in,
            text=f"not measured: no hard-label twin was trained ({why_no_twin}), so there is "
            "no twin to judge distillation by; the student is compared with the teacher(s) "
            "only",
        )
    outcome = main.outcome
    if outcome == UNDEFINED:
        text = f"undefined ({judged_in} could not be computed on test)"
    elif outcome == NOT_MEASURED:
        text = ("not measured: the run was stopped, so the paired-bootstrap intervals were "
                "not computed")
    elif outcome == "helped":
        text = "distillation helped: the student beats its hard-label twin"
    elif outcome == "hurt":
        text = "soft targets hurt: the hard-label twin scores higher than the student"
    else:
        text = "no measurable difference between the student and its hard-label twin"
    if judged_in != metric:
        text += (f" (judged in KS: the selection metric {metric} measures agreement with "
                 "the teacher, which soft targets raise by construction)")
    if student.spec is not None and student.spec.alpha == 0:
        text += " (the selected student itself learned from the labels only, alpha 0)"
    return Verdict(gains=gains, differences=differences, outcome=outcome, metric=judged_in,
                   text=f"{text}: {main.sentence()}")


def _resample_scores(
    student: CandidateResult,
    others: list[CandidateResult],
    metric: str,
    rows: TestRows,
    seed: int,
) -> list[np.ndarray | None]:
    """Scores of the student and each other model on the same paired resamples of the
    test rows (one pass: the student is scored once for all comparisons); None for a
    model whose test score is undefined."""
    models = [student, *others]
    defined = [not math.isnan(float(m.test.get(metric, math.nan))) for m in models]
    if not defined[0] or not any(defined[1:]):
        return [None] * len(models)
    boot = PairedBootstrap(rows.y, None, metric, rows.reference, n_boot=VERDICT_BOOT, seed=seed)
    picked = [m.test_proba for m, ok in zip(models, defined, strict=True) if ok]
    scores = iter(boot.scores_many(picked))
    return [next(scores) if ok else None for ok in defined]


def _difference(
    student: CandidateResult,
    other: CandidateResult,
    who: str,
    metric: str,
    rows: TestRows,
    student_scores: np.ndarray | None,
    other_scores: np.ndarray | None,
) -> Difference:
    """Student minus ``other`` in ``metric``, with the percentile interval of the paired
    resampled differences (none when either resampled score is None: undefined, or the
    bootstrap skipped)."""
    a = float(student.test.get(metric, math.nan))
    b = float(other.test.get(metric, math.nan))
    low = high = math.nan
    if math.isnan(a) or math.isnan(b):
        outcome = UNDEFINED
    elif student_scores is None or other_scores is None:
        outcome = NOT_MEASURED
    else:
        # Resamples where either score is undefined are left out.
        valid = ~(np.isnan(other_scores) | np.isnan(student_scores))
        spread = student_scores[valid] - other_scores[valid]  # student minus other
        if len(spread):
            low, high = (float(v) for v in np.percentile(spread, [2.5, 97.5]))
            outcome = comparison_outcome(who, low, high)
        else:
            outcome = UNDEFINED
    return Difference(
        against=who,
        against_name=other.name,
        metric=metric,
        student=a,
        other=b,
        difference=a - b,
        low=low,
        high=high,
        n_rows=len(rows.y),
        outcome=outcome,
    )
