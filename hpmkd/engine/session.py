"""The state one run shares between its phases, and the plans of the two methods.

:class:`RunSession` holds what every phase needs: the split, the training context, the
cache, the executor, the temperature scheduler, the candidates trained so far, the phase
clock, the time budget and the stop request. It trains candidates (through the cache),
records and announces them, and compares two candidates on paired bootstrap resamples of
the validation rows.

:class:`MethodPlan` says which parts of the process a method uses: ``legacy`` is the same
run with the adaptive parts switched off, not a different code path.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from hpmkd.components.cache import IntelligentCache
from hpmkd.components.multi_teacher import AttentionWeightedMultiTeacher
from hpmkd.components.racing import PairedBootstrap
from hpmkd.components.selection_rule import rank_key
from hpmkd.components.temperature import MetaTemperatureScheduler
from hpmkd.config import HPMConfig
from hpmkd.data import DistillationDataset, Split
from hpmkd.errors import RunCancelled
from hpmkd.evaluate import (
    CandidateResult,
    TestRows,
    TrainingContext,
    calibrate_and_predict,
    score_model,
    subsample_context,
    train_candidate,
)
from hpmkd.events import EventBus
from hpmkd.metrics import compute_metrics
from hpmkd.parallel import Executor, Job
from hpmkd.result import AttentionRecord, PhaseSpan
from hpmkd.results_table import candidate_row
from hpmkd.stop import StopRequest, WaveInterrupted
from hpmkd.students import StudentSpec

#: Families whose fits :meth:`RunSession.train_jobs` may train ahead of need, beside
#: waves of the same families only: their models do not depend on the threads they are
#: fitted with (LightGBM students are built ``deterministic=True``; a decision tree is
#: single-threaded), so a fit that moves from this process to a worker is the same fit.
AHEAD_FAMILIES = ("lgbm", "tree")
#: Above this many training rows, successive halving trains every trial first on a
#: stratified subsample (rung 0) of a quarter of the rows, at least this many.
HALVING_MIN_ROWS = 50_000


@dataclass(frozen=True)
class MethodPlan:
    """Which parts of the HPM-KD process a method runs.

    Attributes
    ----------
    name : str
        ``hpm`` or ``legacy``.
    train_phase : str
        Name of the training phase in events and timings (``train``; ``grid`` for legacy).
    adaptive : bool
        Phase 1 screens and ranks configurations, warm-started from the memory, and the
        scheduler sets temperatures; otherwise phase 1 is the fixed grid of families x
        temperatures x alphas at medium capacity, one trial each.
    components : bool
        Chain, ensemble, halving, racing, cache, memory, parallel training and teacher
        fusion follow their config switches; otherwise they are not part of the run.
    candidate_source : str
        ``source`` of the configurations trained in phase 3.
    """

    name: str
    train_phase: str
    adaptive: bool
    components: bool
    candidate_source: str

    @property
    def phases(self) -> tuple[str, ...]:
        """The phases announced at the start of a run, in order."""
        if self.components:
            return ("select", "chain", self.train_phase, "ensemble", "compare")
        return (self.train_phase, "compare")


PLANS = {
    "hpm": MethodPlan("hpm", "train", adaptive=True, components=True, candidate_source="config"),
    "legacy": MethodPlan(
        "legacy", "grid", adaptive=False, components=False, candidate_source="grid"
    ),
}


class RunSession:
    """What the phases of one run share (see the module docstring).

    Parameters
    ----------
    dataset : DistillationDataset
    config : HPMConfig
    plan : MethodPlan
    random_state : int
    bus : EventBus
    stop : StopRequest, optional
        A request to stop early; it works like an expired time budget (see
        :meth:`should_stop`).
    """

    def __init__(
        self,
        dataset: DistillationDataset,
        config: HPMConfig,
        plan: MethodPlan,
        random_state: int,
        bus: EventBus,
        stop: StopRequest | None = None,
    ) -> None:
        self.dataset = dataset
        self.config = config
        self.plan = plan
        self.random_state = random_state
        self.bus = bus
        self.candidates: list[CandidateResult] = []
        self.phases: dict[str, float] = {}
        self.timeline: list[PhaseSpan] = []
        self.stop = stop if stop is not None else StopRequest()
        self.stopped_by_budget = False
        # Why the run stopped before its end (time budget or a stop request), and in
        # which phase; None while it runs to the end.
        self.stop_reason: str | None = None
        # Finished screening fits (phase 1): a run stopped before its first candidate
        # keeps the best of them (:meth:`keep_best_screened`).
        self.screened: list[CandidateResult] = []
        self._phase_now = ""
        self.temperature_log: list[dict[str, Any]] = []
        self.teacher_attention: AttentionRecord | None = None
        # The rung-0 context of successive halving, when phase 3 used one.
        self.rung0_ctx: TrainingContext | None = None
        self._bootstraps: dict[tuple[int, int], PairedBootstrap] = {}
        # Fits trained ahead of need, by cache key: a wave that leaves parallel workers
        # idle takes along the fits the next decisions will most likely ask for
        # (:meth:`train_jobs`' ``ahead``). Not candidates: a fit is recorded only when a
        # decision asks for its exact spec, rows and targets (:meth:`fit`, the waves),
        # so what is decided and in which order is the same as without them.
        self._ahead: dict[str, CandidateResult] = {}
        self._digests: dict[int, tuple[Any, str]] = {}
        self._start = time.perf_counter()
        use = plan.components
        self.cache = (
            IntelligentCache.from_config(config) if use else IntelligentCache(enabled=False)
        )
        self.executor = Executor.from_config(config) if use else Executor("sequential", 1)
        self.scheduler = MetaTemperatureScheduler(
            config.temperatures, config.use_adaptive_temperature
        )
        # Workers import their libraries while this process prepares the run.
        self.executor.start()
        try:
            self.split: Split = dataset.split(config.validation_split, random_state)
            #: Each teacher's probabilities on every row as this run uses them: as given,
            #: or cross-fitted with ``teacher_refit="oof"`` (:meth:`_refit_teachers`).
            self.teacher_probas: dict[str, np.ndarray] = self._refit_teachers(self.split)
            self.ctx = self._context(self.split)
        except BaseException:
            self.executor.close()  # nobody else will: the run never got its session
            raise

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Release the executor and the cache."""
        self.executor.close()
        self.cache.close()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self._start

    @contextmanager
    def phase(self, name: str, message: str = "") -> Iterator[None]:
        """Time a phase and announce its start and end."""
        self.bus.emit("phase_start", phase=name, message=message or name)
        self._phase_now = name
        start = time.perf_counter()
        yield
        end = time.perf_counter()
        seconds = end - start
        self.phases[name] = self.phases.get(name, 0.0) + seconds
        self.timeline.append(PhaseSpan(name, start - self._start, end - self._start))
        self.bus.emit("phase_end", phase=name, message=f"{name} done", seconds=seconds)

    def should_stop(self) -> bool:
        """Whether no new candidate may start: the stop was requested, or
        ``time_budget_s`` has passed (never before the first candidate, so a budgeted run
        always has a best to keep). Records why in :attr:`stop_reason`.

        Raises
        ------
        RunCancelled
            The stop request discards the run.
        """
        if self.stop.requested:
            if self.stop.discard:
                raise RunCancelled(self.stop.reason)
            self._stopped(f"{self.stop.reason} during the {self._phase_now or 'first'} phase")
            return True
        budget = self.config.time_budget_s
        if budget is None or not self.candidates:
            return False
        over = self.elapsed() >= budget
        if over:
            self.stopped_by_budget = True
            self._stopped(f"time budget of {budget:g} s reached in the {self._phase_now} phase")
        return over

    def interrupted(self, what: str) -> None:
        """Record that ``what`` (a fit, a phase) was abandoned by a stop request."""
        self.should_stop()
        self.bus.emit("info", phase=self._phase_now or None, message=f"stopped: {what} abandoned")

    def _stopped(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.bus.emit("info", phase=self._phase_now or None, message=reason, stopped=reason)

    def keep_best_screened(self) -> bool:
        """A run stopped before its first candidate: the best finished screening fit,
        calibrated and measured on the validation rows, becomes its only candidate.

        Returns
        -------
        bool
            Whether there was a screening fit to keep.
        """
        if not self.screened:
            return False
        best = max(self.screened, key=self.selection_key)
        # One prediction of the validation rows for the calibration and the scores: this
        # runs after a stop, which should return within seconds on large tables too.
        model, val_proba = calibrate_and_predict(best.model, self.ctx)
        kept = score_model(
            model, self.ctx, f"screening {best.name}", "screen", best.spec, best.fit_seconds,
            val_proba=val_proba,
        )
        # It was fitted on the screening subsample, not on every training row.
        self.add_candidate(replace(kept, train_rows=best.train_rows))
        return True

    # ----------------------------------------------------------------- data
    def _refit_teachers(self, split: Split) -> dict[str, np.ndarray]:
        """The teachers' probabilities this run uses.

        With ``teacher_refit="oof"``, each teacher is replaced by clones
        (:mod:`hpmkd.refit`): out-of-fold probabilities on the training rows, and on the
        validation and test rows those of a clone fitted on the training rows; a teacher
        file is refitted in its isolated process. Memoized in the cache.
        """
        ds, cfg = self.dataset, self.config
        if cfg.teacher_refit != "oof":
            return dict(ds.teacher_probas)
        from hpmkd.errors import HPMKDInputError

        folds, seed = cfg.teacher_refit_folds, self.random_state
        train_digest = hashlib.sha256(split.train.tobytes()).hexdigest()
        out = {}
        for teacher in ds.teachers:
            if teacher.kind == "proba_cols":
                raise HPMKDInputError(
                    f"teacher_refit=\"oof\" refits the teacher, but teacher {teacher.name!r} "
                    "is given as probability columns, which cannot be refitted. Give the "
                    "fitted model (a scikit-learn estimator or Pipeline) instead, or set "
                    "teacher_refit=\"none\" and give a separate test table."
                )
            identity = teacher.digest() if teacher.kind == "file" else _params_digest(teacher.model)
            start = time.perf_counter()
            out[teacher.name] = self.memo(
                "teacher_refit",
                (ds.fingerprint(), teacher.name, identity, train_digest, folds, seed),
                lambda teacher=teacher: self._refit_one(teacher, split, folds, seed),
            )
            self.bus.emit(
                "info",
                message=f"teacher {teacher.name}: out-of-fold soft targets from {folds} "
                f"clones, validation and test from a clone fitted on the training rows "
                f"({time.perf_counter() - start:.1f} s)",
                teacher_refit="oof",
            )
        return out

    def _refit_one(self, teacher: Any, split: Split, folds: int, seed: int) -> np.ndarray:
        ds = self.dataset
        if teacher.kind == "file":
            from hpmkd.isolation import refit_teacher_file

            return refit_teacher_file(
                teacher.source, ds.frame, ds.features, ds.classes, ds.y[split.train],
                split.train, folds,
                seed, ds.teacher_limits, trusted=teacher.trusted, filename=teacher.filename,
                name=teacher.name,
            )
        from hpmkd.refit import oof_probabilities

        return oof_probabilities(
            teacher.model, ds.frame, ds.features, ds.classes, ds.y[split.train], split.train,
            folds, seed, teacher.name,
        )

    def teacher_proba(self) -> np.ndarray:
        """The primary teacher's probabilities on every row, as this run uses them."""
        return self.teacher_probas[self.dataset.teachers[0].name]

    def _context(self, split: Split) -> TrainingContext:
        ds = self.dataset
        source = self._student_source_proba(split)
        # Kept for the final fit, which learns from the validation rows' targets too.
        self._source_val = source[split.validation]
        reference = self.teacher_proba()
        return TrainingContext(
            X_train=ds.X.iloc[split.train],
            y_train=ds.y[split.train],
            X_val=ds.X.iloc[split.validation],
            y_val=ds.y[split.validation],
            teacher_train=source[split.train],
            reference_val=reference[split.validation],
            classes=ds.classes,
            numeric=ds.numeric,
            categorical=ds.categorical,
            seed=self.random_state,
            # Fits in this process run while the workers (if any) wait: see
            # Executor.in_process_threads. The workers' own fits always use one thread.
            n_threads=self.executor.in_process_threads,
        )

    def validation_targets(self) -> np.ndarray:
        """What every student learns from (the teacher, or the teachers' mean or fusion),
        on the validation rows."""
        return self._source_val

    def with_validation_rows(
        self, ctx: TrainingContext, targets: tuple[np.ndarray, np.ndarray] | None = None
    ) -> TrainingContext:
        """``ctx`` with the validation rows added to its training rows: the rows of the
        final fit (:mod:`hpmkd.engine.final_fit`). ``targets``: what to learn on ``ctx``'s
        training rows and on the validation rows; by default what every student learns
        from (the teacher, or the teachers' mean or fusion). Its validation rows stay the
        same (in-sample now; nothing is chosen on them)."""
        train, val = targets if targets is not None else (
            ctx.teacher_train, self.validation_targets()
        )
        return replace(
            ctx,
            X_train=pd.concat([ctx.X_train, self.ctx.X_val]),
            y_train=np.concatenate([ctx.y_train, self.ctx.y_val]),
            teacher_train=np.vstack([train, val]),
        )

    def halving_context(self) -> TrainingContext | None:
        """The rung-0 subsample of successive halving (``None`` at or below
        ``HALVING_MIN_ROWS`` training rows or without the adaptive components).

        The chain and rung 0 of phase 3 both train there: one subsample per run, so the
        hard-label twin of a candidate from either finds its rows (``rung0_ctx``).
        """
        n_train = len(self.split.train)
        if not self.plan.components or n_train <= HALVING_MIN_ROWS:
            return None
        if self.rung0_ctx is None:
            rows = max(HALVING_MIN_ROWS, n_train // 4)
            self.rung0_ctx = subsample_context(self.ctx, rows, self.random_state, validation=False)
        return self.rung0_ctx

    def test_rows(self) -> TestRows:
        """The test rows, for the compare phase only (no other phase reads them)."""
        ds, test = self.dataset, self.split.test
        return TestRows(
            X=ds.X.iloc[test], y=ds.y[test], reference=self.teacher_proba()[test],
            classes=ds.classes,
        )

    def _student_source_proba(self, split: Split) -> np.ndarray:
        """Probabilities students learn from on every row: with ``use_multi_teacher`` and
        several teachers (hpm), the teachers fused by attention fitted on the validation
        rows; otherwise the mean of the teachers."""
        probas = self.teacher_probas
        members = list(probas.values())
        if not (self.plan.components and self.config.use_multi_teacher and len(probas) > 1):
            return np.mean(members, axis=0)
        names = list(probas)
        val = split.validation
        y_val = self.dataset.y[val]
        attention = AttentionWeightedMultiTeacher().fit([p[val] for p in members], y_val)
        fused = attention.fuse(members)
        metric = self.config.selection_metric
        self.teacher_attention = AttentionRecord(
            members=tuple(names),
            mean_weights=dict(zip(names, attention.mean_weights_.tolist(), strict=True)),
            val_metric_fused=compute_metrics(y_val, fused[val])[metric],
            val_metric_mean=compute_metrics(y_val, np.mean(members, axis=0)[val])[metric],
        )
        return fused

    # ----------------------------------------------------------------- comparison
    def selection_key(self, result: CandidateResult) -> tuple[float, float]:
        """Higher is better: the validation metric, then smaller size."""
        return rank_key(result, self.config.selection_metric)

    def best_so_far(self) -> CandidateResult:
        """The candidate with the highest :meth:`selection_key`."""
        return max(self.candidates, key=self.selection_key)

    def share_worse(
        self, incumbent: CandidateResult, candidate: CandidateResult, n_boot: int = 100
    ) -> float:
        """Share of paired bootstrap resamples of the validation rows on which
        ``candidate`` scores below ``incumbent`` (memoized by content: labels and both
        models' validation probabilities)."""
        metric = self.config.selection_metric

        def digest(array: np.ndarray) -> str:
            return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()

        def compute() -> float:
            key = (id(incumbent), n_boot)
            if key not in self._bootstraps:
                self._bootstraps[key] = PairedBootstrap(
                    self.ctx.y_val,
                    incumbent.val_proba,
                    metric,
                    self.ctx.reference_val,
                    n_boot=n_boot,
                    seed=self.random_state,
                )
            return self._bootstraps[key].share_worse(candidate.val_proba)

        parts = (
            metric,
            n_boot,
            self.random_state,
            digest(self.ctx.y_val),
            digest(incumbent.val_proba),
            digest(candidate.val_proba),
        )
        return self.memo("paired_bootstrap", parts, compute)

    # ----------------------------------------------------------------- cache
    def memo(self, kind: str, parts: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()``, memoized in the cache under ``kind`` and ``parts``."""
        return self.cache.get_or_compute(IntelligentCache.make_key(kind, *parts), compute)[0]

    def _cache_key(
        self,
        spec: StudentSpec,
        source: np.ndarray,
        ctx: TrainingContext | None = None,
        full: bool = True,
        variant: str = "",
    ) -> str:
        ctx = ctx or self.ctx
        digest = self._digest(
            source,
            lambda: hashlib.sha256(
                np.ascontiguousarray(np.round(source, 10)).tobytes()
            ).hexdigest(),
        )
        rows = self._digest(
            ctx,
            lambda: hashlib.sha256(
                np.ascontiguousarray(ctx.X_train.index.to_numpy()).tobytes()
                + np.ascontiguousarray(ctx.X_val.index.to_numpy()).tobytes()
                + self.split.test.tobytes()
            ).hexdigest(),
        )
        return IntelligentCache.make_key(
            "candidate",
            self.dataset.fingerprint(),
            rows,
            spec.key(),
            digest,
            self.random_state,
            ctx.n_threads,
            full,
            # A variant of the fit (the final fit) has keys of its own; the others'
            # keys are unchanged.
            *((variant,) if variant else ()),
        )

    def _digest(self, obj: Any, compute: Callable[[], str]) -> str:
        """``compute()`` once per object of this run: every job of a wave shares the same
        soft targets and rows, which are megabytes to hash on large data."""
        entry = self._digests.get(id(obj))
        # The object is kept with its digest, so its id cannot be reused meanwhile.
        if entry is None or entry[0] is not obj:
            entry = (obj, compute())
            self._digests[id(obj)] = entry
        return entry[1]

    # ----------------------------------------------------------------- training
    def fit(
        self, spec: StudentSpec, ctx: TrainingContext | None = None, **kwargs: Any
    ) -> CandidateResult:
        """Train and score one candidate through the cache, without recording it
        (screening, the hard-label twin)."""
        self._check_stop()
        ctx = ctx or self.ctx
        teacher_train = kwargs.get("teacher_train")
        target = ctx.teacher_train if teacher_train is None else teacher_train
        key = self._cache_key(spec, target, ctx, kwargs.get("full", True))
        ahead = self._collect(self._ahead.pop(key)) if key in self._ahead else None
        result, hit = self.cache.get_or_compute(
            key, lambda: ahead if ahead is not None else train_candidate(spec, ctx, **kwargs)
        )
        result = replace(
            result,
            from_cache=hit,
            source=kwargs.get("source", result.source),
            name=kwargs.get("name") or spec.label(),
        )
        if result.source == "screen":
            self.screened.append(result)
        return result

    def fit_many(
        self,
        specs: list[StudentSpec],
        ctx: TrainingContext,
        names: list[str],
        source: str,
        full: bool = True,
        refit_of: list[Any] | None = None,
    ) -> list[CandidateResult]:
        """:meth:`fit` for several specs on one context: those not in the cache train
        together on the executor (in parallel when parallel training is on); none is
        recorded as a candidate (screening fits are kept in :attr:`screened`).

        ``refit_of``: for the final fit, per spec the calibrated model whose
        calibration the new fit takes (``train_candidate``'s ``refit_of``).

        Raises
        ------
        WaveInterrupted
            A stop during the wave: the fits that finished are kept (in ``screened`` for
            screening) and in the exception's ``finished``, by position in ``specs``.
        """
        self._check_stop()
        variant = "final_fit" if refit_of is not None else ""
        keys = [self._cache_key(spec, ctx.teacher_train, ctx, full, variant) for spec in specs]
        taken = self._take_ahead(keys)
        missing = [i for i, key in enumerate(keys) if key not in self.cache and i not in taken]
        kwargs = [
            {"source": source, "full": full}
            | ({"refit_of": refit_of[i]} if refit_of is not None else {})
            for i in range(len(specs))
        ]
        jobs = [Job(specs[i], kwargs[i]) for i in missing]
        stopped: WaveInterrupted | None = None
        try:
            fresh = dict(zip(missing, self.executor.run(jobs, ctx), strict=True))
        except WaveInterrupted as exc:
            # Keep the fits that finished (a stopped screening keeps its best one).
            fresh = {missing[j]: result for j, result in exc.finished.items()}
            stopped = exc
        fresh.update(taken)
        out = []
        kept: dict[int, CandidateResult] = {}
        for i, (spec, key, name) in enumerate(zip(specs, keys, names, strict=True)):
            if stopped is not None and i not in fresh and key not in self.cache:
                continue  # dropped by the stop
            value, hit = self.cache.get_or_compute(
                key,
                lambda i=i, spec=spec: fresh.get(i) or train_candidate(spec, ctx, **kwargs[i]),
            )
            result = replace(value, from_cache=hit and i not in fresh, source=source, name=name)
            if source == "screen":
                self.screened.append(result)
            out.append(result)
            kept[i] = result
        if stopped is not None:
            raise WaveInterrupted(str(stopped), kept)
        return out

    def screen_many(self, specs: list[StudentSpec], ctx: TrainingContext) -> list[CandidateResult]:
        """Screening fits (``full=False``) of ``specs`` trained together: see
        :meth:`fit_many`."""
        return self.fit_many(specs, ctx, [spec.label() for spec in specs], "screen", full=False)

    def _check_stop(self) -> None:
        """Raise :class:`~hpmkd.stop.FitInterrupted` (or ``RunCancelled``) instead of
        starting a fit after a stop request."""
        self.stop.check()

    def train(self, spec: StudentSpec, source: str, **kwargs: Any) -> CandidateResult:
        """Train one candidate through the cache, record it and announce it."""
        result = self.fit(spec, source=source, **kwargs)
        self.add_candidate(result)
        return result

    def train_jobs(
        self, jobs: list[Job], ctx: TrainingContext, ahead: list[Job] | None = None
    ) -> list[CandidateResult]:
        """Train a wave of jobs on the executor, serving cached ones from the cache;
        record and announce each.

        ``ahead``: fits the next decisions will most likely ask for, most likely first;
        as many as there are workers the wave's own fits leave waiting
        (:meth:`free_slots`) train in the same wave, when it trains any and every fit
        of it is of :data:`AHEAD_FAMILIES`. They are kept aside, not
        recorded: a later :meth:`fit` or wave of the same spec on the same rows and
        targets takes the result instead of training it again; one never asked for is
        dropped with the session.

        Raises
        ------
        WaveInterrupted
            A stop came during the wave: the jobs that finished are recorded like any
            candidate, and the exception's ``finished`` holds them (by position in
            ``jobs``); the others were dropped.
        """
        self._check_stop()
        keys = [self._cache_key(job.spec, ctx.teacher_train, ctx) for job in jobs]
        taken = self._take_ahead(keys)
        missing = [i for i, key in enumerate(keys) if key not in self.cache and i not in taken]
        extra: list[tuple[str, Job]] = []
        if missing and ahead and all(jobs[i].spec.family in AHEAD_FAMILIES for i in missing):
            for job in (job for job in ahead if job.spec.family in AHEAD_FAMILIES):
                key = self._cache_key(job.spec, ctx.teacher_train, ctx)
                if key not in keys and key not in self.cache and key not in self._ahead and (
                    key not in {k for k, _ in extra}
                ):
                    extra.append((key, job))
            extra = extra[: self.free_slots(len(missing))]
        wave = [jobs[i] for i in missing] + [job for _, job in extra]
        stopped: WaveInterrupted | None = None
        try:
            results = dict(enumerate(self.executor.run(wave, ctx)))
        except WaveInterrupted as exc:
            # Keep what finished, as a sequential wave keeps the fits before the stop.
            results = dict(exc.finished)
            stopped = exc
        fresh = {missing[j]: r for j, r in results.items() if j < len(missing)}
        for j, (key, _) in enumerate(extra, start=len(missing)):
            if j in results:
                self._ahead[key] = results[j]
        fresh.update(taken)
        done = [i for i in range(len(jobs)) if i not in missing or i in fresh]
        if stopped is not None:
            # A cached job is read, never trained, after a stop (an evicted one is dropped).
            done = [i for i in done if i in fresh or keys[i] in self.cache]
        out = self._record_jobs(jobs, keys, done, fresh, ctx)
        if stopped is not None:
            raise WaveInterrupted(str(stopped), dict(zip(done, out, strict=True)))
        return out

    def _take_ahead(self, keys: list[str]) -> dict[int, CandidateResult]:
        """The fits trained ahead for ``keys`` (by position), removed from the store; one
        still training in the background is waited for."""
        out = {}
        for i, key in enumerate(keys):
            if key in self._ahead:
                result = self._collect(self._ahead.pop(key))
                if result is not None:
                    out[i] = result
        return out

    def _collect(self, value: Any) -> CandidateResult | None:
        """A fit trained ahead: the result itself, or the future of a background fit
        (:meth:`ahead_in_background`), waited for; ``None`` when a stop request came
        meanwhile or the fit failed (the caller then trains it, or not, as it would
        have without it)."""
        if isinstance(value, CandidateResult):
            return value
        from concurrent.futures import wait

        from hpmkd.stop import POLL_S

        while not value.done():
            if self.stop.requested:
                return None
            wait([value], timeout=POLL_S)
        try:
            return value.result()[0]
        except Exception:  # workers killed by a stop, or the fit failed
            return None

    def ahead_in_background(
        self, jobs: list[Job], ctx: TrainingContext, training: StudentSpec | None = None
    ) -> None:
        """Start fits the next decisions will most likely ask for in loky workers left
        free while this process trains (:meth:`~hpmkd.parallel.Executor.background_slots`),
        and go on; a later :meth:`fit` or wave of the same spec on the same rows and
        targets takes the result (waiting for it if needed) instead of training it.
        Jobs already cached or under way are skipped, and those of the spec this
        process is about to train (``training``: it stays where it is trained today);
        only :data:`AHEAD_FAMILIES`."""
        slots = self.executor.background_slots()
        for job in jobs:
            if slots <= 0 or self.stop.requested:
                return
            if job.spec.family not in AHEAD_FAMILIES or job.spec == training:
                continue
            key = self._cache_key(job.spec, ctx.teacher_train, ctx)
            if key in self.cache or key in self._ahead:
                continue
            self._ahead[key] = self.executor.submit_ahead(job, ctx)
            slots -= 1

    def free_slots(self, n_jobs: int) -> int:
        """Workers left waiting at the end of a wave of ``n_jobs`` fits, which fits
        trained ahead of need can use (:meth:`train_jobs`' ``ahead``).

        Only with loky workers: a single fit otherwise trains in this process (LightGBM
        with two threads), which on nyc_flights_delay kept 1.1-1.3 cores busy where two
        workers fitting side by side kept 1.7-1.8 (docs/BENCHMARKS.md section 8); a Dask
        cluster's idle workers are not this run's to count.
        """
        if self.executor.backend != "loky" or n_jobs <= 0:
            return 0
        return -n_jobs % self.executor.n_jobs

    def _record_jobs(
        self,
        jobs: list[Job],
        keys: list[str],
        done: list[int],
        fresh: dict[int, CandidateResult],
        ctx: TrainingContext,
    ) -> list[CandidateResult]:
        """Store the fresh results of ``done`` jobs, read the cached ones, record and
        announce each (in job order)."""
        rows_note = "" if ctx is self.ctx else f" [{len(ctx.y_train):,} rows]"
        out = []
        for i in done:
            job, key = jobs[i], keys[i]
            # A fresh result is stored now; a cached one is read (trained here only if it
            # was evicted in between).
            value, hit = self.cache.get_or_compute(
                key, lambda i=i, job=job: fresh.get(i) or train_candidate(job.spec, ctx)
            )
            result = replace(
                value,
                from_cache=hit and i not in fresh,
                source=job.kwargs.get("source", "config"),
                name=job.kwargs.get("name") or job.spec.label() + rows_note,
            )
            self.add_candidate(result)
            out.append(result)
        return out

    def add_candidate(self, result: CandidateResult) -> None:
        """Record a finished candidate and send its event."""
        self.candidates.append(result)
        metric = self.config.selection_metric
        self.bus.emit(
            "candidate",
            phase=result.source,
            message=f"{result.name}: val {metric} {result.val.get(metric, math.nan):.4f}",
            row=candidate_row(result),
            index=len(self.candidates),
        )

    def previous_stage(self, candidate: CandidateResult) -> CandidateResult | None:
        """The chain stage whose predictions ``candidate`` learned from, mixed with the
        teacher's (:class:`~hpmkd.components.chain.ProgressiveDistillationChain`): the
        stage before it, for a chain stage after the first; ``None`` for any other
        candidate, which learned from the run's own targets. The stages are the run's
        chain candidates in the order they were trained.

        Returns
        -------
        CandidateResult or None
        """
        if candidate.source != "chain":
            return None
        stages = [c for c in self.candidates if c.source == "chain"]
        index = next(i for i, c in enumerate(stages) if c.name == candidate.name)
        return stages[index - 1] if index > 0 else None


def _params_digest(model: Any) -> str:
    """What a clone of ``model`` depends on: its class and hyper-parameters."""
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    text = f"{type(model).__module__}.{type(model).__qualname__}:{sorted(params.items())!r}"
    return hashlib.sha256(text.encode()).hexdigest()
