"""``HPMDistiller``: the HPM-KD process in five phases.

1. ``select`` — :class:`~hpmkd.components.config_manager.AdaptiveConfigurationManager` screens and
   ranks family x capacity x temperature x alpha, warm-started from
   :class:`~hpmkd.components.memory.SharedOptimizationMemory`;
2. ``chain`` — :class:`~hpmkd.components.chain.ProgressiveDistillationChain` (``use_progressive``),
   temperatures from :class:`~hpmkd.components.temperature.MetaTemperatureScheduler`
   (adaptive with ``use_adaptive_temperature``);
3. ``train`` — every selected config, up to ``n_trials`` trials each (trial 0 of every
   config first; a config clearly worse than the incumbent on paired bootstrap resamples
   of the validation rows stops racing, see :mod:`hpmkd.components.racing`), sequentially or in
   parallel (joblib/loky, or Dask with ``dask_scheduler``), by successive halving above
   ``HALVING_MIN_ROWS`` training rows, memoized by
   :class:`~hpmkd.components.cache.IntelligentCache` (``use_cache``);
4. ``ensemble`` — :class:`~hpmkd.components.multi_teacher.AttentionWeightedMultiTeacher`
   (``use_multi_teacher``): attention over the teachers and the strongest candidates,
   fitted on validation; a student trained on the fused targets is the ensemble
   candidate;
5. ``compare`` — best candidate by the validation metric, test metrics reported.

``record.details`` holds plain data for each component: ``selection``, ``warm_start``,
``chain``, ``temperature``, ``attention`` (and ``teacher_attention`` with several
teachers), ``racing``, ``halving``, ``cache``, ``parallel``; a component that is off says
``{"enabled": False, "reason": ...}``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Any

import numpy as np

from hpmkd.base import BaseDistiller
from hpmkd.components.cache import IntelligentCache
from hpmkd.components.chain import ProgressiveDistillationChain
from hpmkd.components.config_manager import AdaptiveConfigurationManager, SelectedConfig
from hpmkd.components.memory import SharedOptimizationMemory
from hpmkd.components.multi_teacher import AttentionWeightedMultiTeacher
from hpmkd.components.temperature import MetaTemperatureScheduler
from hpmkd.evaluate import CandidateResult, TrainingContext, subsample_context, train_candidate
from hpmkd.metrics import compute_metrics
from hpmkd.parallel import Executor, Job
from hpmkd.students import StudentSpec, proba_in_class_order, trial_params

ENSEMBLE_TOP_CANDIDATES = 3
HALVING_MIN_ROWS = 50_000
RACE_THRESHOLD = 0.9


class HPMDistiller(BaseDistiller):
    """The full HPM-KD process (see the module docstring)."""

    method = "hpm"
    search_phases = ("select", "chain", "train", "ensemble")

    def run(self):
        cfg = self.config
        self.cache = IntelligentCache.from_config(cfg)
        self.memory = SharedOptimizationMemory.from_config(cfg)
        self.executor = Executor.from_config(cfg)
        self.scheduler = MetaTemperatureScheduler(cfg.temperatures, cfg.use_adaptive_temperature)
        self.temperature_log: list[dict[str, Any]] = []
        self.teacher_attention: dict[str, Any] | None = None
        self._digests: dict[int, tuple[Any, str]] = {}
        try:
            record = super().run()
        finally:
            self.executor.close()
            self.cache.close()
        self._remember()
        return record

    # ----------------------------------------------------------------- targets
    def student_source_proba(self) -> np.ndarray:
        """Fused teachers (attention fitted on validation) with ``use_multi_teacher`` and
        several teachers; otherwise the mean of the teachers."""
        probas = self.dataset.teacher_probas
        if not (self.config.use_multi_teacher and len(probas) > 1):
            return super().student_source_proba()
        names = list(probas)
        members = [probas[n] for n in names]
        val = self.split.validation
        attention = AttentionWeightedMultiTeacher().fit(
            [p[val] for p in members], self.dataset.y[val]
        )
        fused = attention.fuse(members)
        metric = self.config.selection_metric
        self.teacher_attention = {
            "members": names,
            "mean_weights": dict(zip(names, attention.mean_weights_.tolist(), strict=True)),
            "val_metric_fused": compute_metrics(self.dataset.y[val], fused[val])[metric],
            "val_metric_mean": compute_metrics(self.dataset.y[val], np.mean(members, axis=0)[val])[
                metric
            ],
        }
        return fused

    def baseline_context(self, best: CandidateResult) -> TrainingContext:
        """The rung-0 subsample when the best was trained there, else all training rows."""
        sub = getattr(self, "_rung0_ctx", None)
        if sub is not None and best.train_rows == len(sub.y_train):
            return sub
        return self.ctx

    # ----------------------------------------------------------------- training
    def _cache_key(
        self, spec: StudentSpec, source: np.ndarray, ctx: Any = None, full: bool = True
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
        )

    def _digest(self, obj: Any, compute: Any) -> str:
        """``compute()`` once per object of this run: every job of a wave shares the same
        soft targets and rows, which are megabytes to hash on large data."""
        entry = self._digests.get(id(obj))
        # The object is kept with its digest, so its id cannot be reused meanwhile.
        if entry is None or entry[0] is not obj:
            entry = (obj, compute())
            self._digests[id(obj)] = entry
        return entry[1]

    def memo(self, kind: str, parts: tuple, compute: Any) -> Any:
        """Memoize ``compute()`` in the cache under ``kind`` and ``parts``."""
        return self.cache.get_or_compute(IntelligentCache.make_key(kind, *parts), compute)[0]

    def fit(self, spec: StudentSpec, ctx: Any = None, **kwargs: Any) -> CandidateResult:
        """Train and score one candidate through the cache, without recording it."""
        ctx = ctx or self.ctx
        teacher_train = kwargs.get("teacher_train")
        target = ctx.teacher_train if teacher_train is None else teacher_train
        key = self._cache_key(spec, target, ctx, kwargs.get("full", True))
        result, hit = self.cache.get_or_compute(key, lambda: train_candidate(spec, ctx, **kwargs))
        return replace(
            result,
            from_cache=hit,
            source=kwargs.get("source", result.source),
            name=kwargs.get("name") or spec.label(),
        )

    def train(self, spec: StudentSpec, source: str, **kwargs: Any) -> CandidateResult:
        """Train one candidate through the cache, record it and announce it."""
        result = self.fit(spec, source=source, **kwargs)
        self.add_candidate(result)
        return result

    def _train_jobs(self, jobs: list[Job], ctx: TrainingContext) -> list[CandidateResult]:
        """Train a wave of jobs on the executor, serving cached ones from the cache."""
        keys = [self._cache_key(job.spec, ctx.teacher_train, ctx) for job in jobs]
        rows_note = "" if ctx is self.ctx else f" [{len(ctx.y_train):,} rows]"
        missing = [i for i, key in enumerate(keys) if key not in self.cache]
        fresh = dict(zip(missing, self.executor.run([jobs[i] for i in missing], ctx), strict=True))
        results = []
        for i, (job, key) in enumerate(zip(jobs, keys, strict=True)):
            # A fresh result is stored now; a cached one is read (trained here only if it
            # was evicted in between).
            value, hit = self.cache.get_or_compute(
                key, lambda i=i, job=job: fresh.get(i) or train_candidate(job.spec, ctx)
            )
            results.append(replace(value, from_cache=hit and i not in fresh))
        out = []
        for job, result in zip(jobs, results, strict=True):
            result = replace(
                result,
                source=job.kwargs.get("source", "config"),
                name=job.kwargs.get("name") or job.spec.label() + rows_note,
            )
            self.add_candidate(result)
            out.append(result)
        return out

    # ----------------------------------------------------------------- phases
    def _search(self) -> None:
        cfg, details = self.config, self.record.details
        details["parallel"] = self.executor.describe()
        with self.phase("select", "screening and ranking configurations"):
            selected = self._select()
        with self.phase("chain", "progressive distillation chain"):
            self._chain(selected)
        with self.phase("train", f"training {len(selected)} configs x {cfg.n_trials} trials"):
            self._train_configs(selected)
        with self.phase("ensemble", "attention-weighted multi-teacher ensemble"):
            self._ensemble()
        details["temperature"] = {
            "enabled": True,
            "adaptive": cfg.use_adaptive_temperature,
            "reason": ""
            if cfg.use_adaptive_temperature
            else "use_adaptive_temperature=False: configs take the fixed temperatures of "
            "config.temperatures; chain stages cycle that grid",
            "decisions": self.temperature_log,
        }
        details["parallel"] = self.executor.describe()
        details["cache"] = {**self.cache.stats(), "enabled": cfg.use_cache}

    def _select(self) -> list[SelectedConfig]:
        cfg, details = self.config, self.record.details
        meta = self.dataset.meta_features()
        if cfg.use_memory:
            warm = self.memory.warm_start(
                meta, cfg.selection_metric, exclude_fingerprint=self.dataset.fingerprint()
            )
            details["warm_start"] = {"enabled": True, **warm.to_dict()}
        else:
            warm = None
            details["warm_start"] = {
                "enabled": False,
                "used": False,
                "reason": "use_memory=False: no warm start, this run is not recorded",
            }
        manager = AdaptiveConfigurationManager(cfg, self.random_state)
        manager.screen(self.ctx, self.fit)
        selected = manager.select(
            meta,
            warm.configs if warm is not None and warm.used else (),
            warm.reason if warm is not None else "",
        )
        details["selection"] = {
            "enabled": True,
            "meta_features": meta,
            "screen_scores": {f"{f}-{c}": s for (f, c), s in manager.screen_scores_.items()},
            "alpha_scores": {f"{a:g}": s for a, s in manager.alpha_scores_.items()},
            "screen_seconds": manager.screen_seconds_,
            "configs": [s.to_dict() for s in selected],
            "warm_started": any(s.warm_started for s in selected),
        }
        if self.teacher_attention is not None:
            details["teacher_attention"] = self.teacher_attention
        self.bus.emit(
            "info",
            phase="select",
            message=f"kept {len(selected)} configs"
            + (" (warm-started)" if details["selection"]["warm_started"] else ""),
            configs=details["selection"]["configs"],
            warm_start=details["warm_start"],
        )
        return selected

    def _chain(self, selected: list[SelectedConfig]) -> None:
        cfg = self.config
        if not cfg.use_progressive:
            self.record.details["chain"] = {
                "enabled": False,
                "reason": "use_progressive=False",
                "stages": [],
            }
            return
        top = selected[0]
        chain = ProgressiveDistillationChain(
            family=top.family,
            alpha=top.alpha,
            scheduler=self.scheduler,
            metric=cfg.selection_metric,
            min_improvement=cfg.min_improvement,
            max_stages=cfg.max_chain_stages,
        )
        outcome = chain.run(self.ctx, self.train, self.random_state, self.budget_exhausted)
        for rec in outcome.records:
            self.temperature_log.append(
                {
                    "stage": rec["stage"],
                    "candidate": rec["name"],
                    "temperature": rec["temperature"],
                    "reason": rec["temperature_reason"],
                }
            )
        self.record.details["chain"] = {
            "enabled": True,
            "family": top.family,
            "alpha": top.alpha,
            "stages": outcome.records,
            "stop_reason": outcome.stop_reason,
        }
        self.bus.emit("info", phase="chain", message=outcome.stop_reason, stages=outcome.records)

    def _train_configs(self, selected: list[SelectedConfig]) -> None:
        """Every selected config, ``n_trials`` each; on large data by successive halving.

        Above ``HALVING_MIN_ROWS`` training rows every trial first trains on a stratified
        subsample (rung 0, a quarter of the rows, at least ``HALVING_MIN_ROWS``); the best
        third, by the validation metric, is then retrained on all rows (rung 1). Both
        rungs are real candidates in the results (``train_rows`` says which).
        """
        cfg = self.config
        n_train = len(self.split.train)
        pending = [(c, trial) for c in selected for trial in range(cfg.n_trials)]
        # Trial 0 of every config first: a time budget then still covers every config.
        pending.sort(key=lambda item: item[1])
        if n_train <= HALVING_MIN_ROWS or len(pending) <= 3:
            self._train_trials(pending, self.ctx)
            self.record.details["halving"] = {
                "enabled": False,
                "reason": f"{n_train:,} training rows (halving above {HALVING_MIN_ROWS:,})"
                if n_train <= HALVING_MIN_ROWS
                else "three trials or fewer",
            }
            return
        rows = max(HALVING_MIN_ROWS, n_train // 4)
        sub = subsample_context(self.ctx, rows, self.random_state, validation=False)
        self._rung0_ctx = sub
        rung0 = self._train_trials(pending, sub)
        keep = sorted(rung0, key=self.selection_key, reverse=True)[: math.ceil(len(rung0) / 3)]
        rung1 = []
        if keep and not self.budget_exhausted():
            jobs = [Job(r.spec, {"source": "config"}) for r in keep]
            rung1 = self._train_jobs(jobs, self.ctx)
        self.record.details["halving"] = {
            "enabled": True,
            "rung0_rows": len(sub.y_train),
            "rung0_trials": len(rung0),
            "rung1_rows": n_train,
            "promoted": [r.name for r in keep],
            "rung1_trials": len(rung1),
        }

    def _train_trials(
        self, pending: list[tuple[SelectedConfig, int]], ctx: TrainingContext
    ) -> list[CandidateResult]:
        """Train (config, trial) pairs round by round (trial 0 of every config first),
        temperatures from the scheduler; after each round, configurations that are
        clearly worse than the incumbent stop racing (see :mod:`hpmkd.components.racing`)."""
        results: list[CandidateResult] = []
        configs = list(dict.fromkeys(c for c, _ in pending))
        trials = sorted({t for _, t in pending})
        alive = list(configs)
        best_of: dict[SelectedConfig, CandidateResult] = {}
        for trial in trials:
            round_items = [(c, t) for c, t in pending if t == trial and c in alive]
            for config, result in self._train_round(round_items, ctx):
                results.append(result)
                if config not in best_of or self.selection_key(result) > self.selection_key(
                    best_of[config]
                ):
                    best_of[config] = result
            if self.record.stopped_by_budget:
                break
            if trial != trials[-1]:
                alive = self._race(alive, best_of, trial)
        return results

    def _train_round(
        self, items: list[tuple[SelectedConfig, int]], ctx: TrainingContext
    ) -> list[tuple[SelectedConfig, CandidateResult]]:
        """Train one round of trials in executor-sized waves."""
        cfg = self.config
        n_train = len(self.split.train)
        out: list[tuple[SelectedConfig, CandidateResult]] = []
        while items:
            if self.budget_exhausted():
                self.bus.emit(
                    "info",
                    phase="train",
                    message=f"time budget reached: {len(items)} trials not started",
                )
                break
            size = self.executor.batch_size
            wave, items = items[:size], items[size:]
            jobs = []
            for config, trial in wave:
                temperature, reason, feedback = self._temperature(config)
                spec = StudentSpec(
                    config.family,
                    config.capacity,
                    temperature,
                    config.alpha,
                    trial,
                    trial_params(config.family, config.capacity, trial, n_train, self.random_state),
                )
                jobs.append(Job(spec, {"source": "config"}))
                self.temperature_log.append(
                    {
                        "candidate": spec.label(),
                        "temperature": temperature,
                        "reason": reason,
                        "feedback": feedback,
                    }
                )
            for (config, _), result in zip(wave, self._train_jobs(jobs, ctx), strict=True):
                out.append((config, result))
                self.scheduler.observe(
                    result.spec.family,
                    result.spec.temperature,
                    result.val.get(cfg.selection_metric, math.nan),
                    result.spec.capacity,
                )
        return out

    def _race(
        self,
        alive: list[SelectedConfig],
        best_of: dict[SelectedConfig, CandidateResult],
        trial: int,
    ) -> list[SelectedConfig]:
        """Configurations that keep racing after ``trial``; the rest are recorded."""
        incumbent = max(self.record.candidates, key=self.selection_key)
        metric = self.config.selection_metric
        log = self.record.details.setdefault(
            "racing", {"enabled": True, "threshold": RACE_THRESHOLD, "stopped": []}
        )
        keep = []
        for config in alive:
            result = best_of.get(config)
            if result is None or result is incumbent:
                keep.append(config)
                continue
            share = self.share_worse(incumbent, result)
            if share >= RACE_THRESHOLD:
                log["stopped"].append(
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

    def _temperature(self, config: SelectedConfig) -> tuple[float, str, dict]:
        if config.temperature is not None:
            return config.temperature, "fixed by the configuration", {}
        decision = self.scheduler.suggest(config.family)
        feedback = {f"{t:g}": s for t, s in sorted(decision.feedback.items())}
        return decision.temperature, decision.reason, feedback

    def _ensemble(self) -> None:
        cfg = self.config
        if not cfg.use_multi_teacher:
            self.record.details["attention"] = {
                "enabled": False,
                "reason": "use_multi_teacher=False",
            }
            return
        if self.budget_exhausted():
            self.record.details["attention"] = {
                "enabled": False,
                "reason": "time budget reached before the ensemble phase",
            }
            return
        ds, ctx, split = self.dataset, self.ctx, self.split
        students = sorted(
            [c for c in self.record.candidates if c.source in {"config", "chain"}],
            key=self.selection_key,
            reverse=True,
        )[:ENSEMBLE_TOP_CANDIDATES]
        names = [f"teacher {n}" for n in ds.teacher_probas] + [c.name for c in students]
        val_members = [p[split.validation] for p in ds.teacher_probas.values()]
        val_members += [c.val_proba for c in students]
        train_members = [p[split.train] for p in ds.teacher_probas.values()]
        train_members += [proba_in_class_order(c.model, ctx.X_train, ctx.classes) for c in students]
        test_members = [p[split.test] for p in ds.teacher_probas.values()]
        test_members += [c.test_proba for c in students]
        attention = AttentionWeightedMultiTeacher().fit(val_members, ctx.y_val)
        fused_val = attention.fuse(val_members)
        fused_test = attention.fuse(test_members)
        metric = cfg.selection_metric
        plain_val = np.mean(val_members, axis=0)
        best = max(self.record.candidates, key=self.selection_key)
        base = best.spec
        spec = StudentSpec(
            base.family, base.capacity, base.temperature, base.alpha, base.trial, dict(base.params)
        )
        fused_train = attention.fuse(train_members)
        result = self.train(
            spec,
            source="ensemble",
            name=f"ensemble-distilled {spec.label()}",
            teacher_train=fused_train,
        )
        self.record.details["attention"] = {
            "enabled": True,
            "members": names,
            "mean_weights": dict(zip(names, attention.mean_weights_.tolist(), strict=True)),
            "slopes": {
                "confidence": float(attention.slopes_[0]),
                "agreement": float(attention.slopes_[1]),
            },
            "val_metric_fused": compute_metrics(ctx.y_val, fused_val)[metric],
            "val_metric_mean": compute_metrics(ctx.y_val, plain_val)[metric],
            "test_metric_fused": compute_metrics(ctx.y_test, fused_test)[metric],
            "student": result.name,
            "note": "the fused ensemble's validation score is fitted on validation rows; "
            "the distilled student trained on the fused targets is the selectable candidate",
        }
        self.bus.emit(
            "info",
            phase="ensemble",
            message=f"attention weights over {len(names)} members",
            attention=self.record.details["attention"],
        )

    # ----------------------------------------------------------------- memory
    def _remember(self) -> None:
        """Record this run's best configurations for warm starts on similar data: the
        selected student first, then the others by validation score."""
        if not self.config.use_memory or self.record.best is None:
            return
        best = self.record.best
        ranked = sorted(
            [
                c
                for c in self.record.candidates
                if c.spec is not None and c.source in {"config", "chain", "ensemble"}
            ],
            key=lambda c: (c is best, self.selection_key(c)),
            reverse=True,
        )
        configs, seen = [], set()
        for c in ranked:
            key = (c.spec.family, c.spec.capacity, c.spec.temperature, c.spec.alpha)
            if key in seen:
                continue
            seen.add(key)
            configs.append(
                {
                    "family": c.spec.family,
                    "capacity": c.spec.capacity,
                    "temperature": c.spec.temperature,
                    "alpha": c.spec.alpha,
                    "params": c.spec.params,
                    "val_score": c.val.get(self.config.selection_metric, math.nan),
                }
            )
            if len(configs) == 5:
                break
        self.memory.record_run(
            self.dataset.name,
            self.dataset.meta_features(),
            self.config.selection_metric,
            configs,
            fingerprint=self.dataset.fingerprint(),
        )
