"""What every distillation method shares: data preparation, teacher scoring, the final
comparison on the validation split, the hard-label baseline and the run record."""

from __future__ import annotations

import hashlib
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpmkd.components.racing import PairedBootstrap
from hpmkd.config import HPMConfig
from hpmkd.data import DistillationDataset, Split
from hpmkd.evaluate import CandidateResult, TrainingContext, score_model, train_candidate
from hpmkd.events import EventBus
from hpmkd.metrics import compute_metrics, latency_ms_1k, single_thread_predictor, size_bytes
from hpmkd.results import build_results_df, candidate_row
from hpmkd.students import StudentSpec
from hpmkd.teacher import Teacher

TIE_THRESHOLD = 0.9


@dataclass
class RunRecord:
    """Everything a finished run knows, as plain data plus the fitted candidates.

    ``phases`` maps phase name to seconds and ``timeline`` lists each phase's start and end
    (seconds since the run started); ``split`` and ``y_val``/``y_test`` say which rows
    each candidate's ``val_proba``/``test_proba`` belong to; ``details`` holds component
    records (selected configs with reasons, chain stages, temperatures, attention
    weights, warm start, cache statistics) for the report and the app.
    """

    method: str
    method_reason: str
    candidates: list[CandidateResult] = field(default_factory=list)
    teachers: list[CandidateResult] = field(default_factory=list)
    best: CandidateResult | None = None
    baseline: CandidateResult | None = None
    phases: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    stopped_by_budget: bool = False
    timeline: list[dict[str, Any]] = field(default_factory=list)
    split: Split | None = None
    y_val: np.ndarray | None = None
    y_test: np.ndarray | None = None


class BaseDistiller:
    """Shared machinery; subclasses implement :meth:`_search` (their phases).

    Parameters
    ----------
    dataset : DistillationDataset
    config : HPMConfig
    random_state : int
    bus : EventBus
    method_reason : str
    """

    method = "base"
    search_phases: tuple[str, ...] = ()

    def __init__(
        self,
        dataset: DistillationDataset,
        config: HPMConfig,
        random_state: int,
        bus: EventBus,
        method_reason: str = "",
    ) -> None:
        self.dataset = dataset
        self.config = config
        self.random_state = random_state
        self.bus = bus
        self.record = RunRecord(method=self.method, method_reason=method_reason)
        # Resamples and incumbent scores, reused while one incumbent is compared.
        self._bootstraps: dict[tuple[int, int], PairedBootstrap] = {}
        self._start = 0.0

    # ----------------------------------------------------------------- driver
    def run(self) -> RunRecord:
        """Run every phase and return the record."""
        self._start = time.perf_counter()
        ds = self.dataset
        self.split: Split = ds.split(self.config.validation_split, self.random_state)
        self.ctx = self._context(self.split)
        self.record.split = self.split
        self.record.y_val = self.ctx.y_val
        self.record.y_test = self.ctx.y_test
        self.record.split_sizes = {
            "train": len(self.split.train),
            "validation": len(self.split.validation),
            "test": len(self.split.test),
        }
        self.bus.emit(
            "run_start",
            message=f"{self.method}: {ds.n_rows} rows, {ds.n_features} features",
            method=self.method,
            method_reason=self.record.method_reason,
            split_sizes=self.record.split_sizes,
            phases=[*self.search_phases, "compare"],
        )
        self._search()
        with self.phase("compare"):
            self._compare()
        self.record.phases["total"] = time.perf_counter() - self._start
        self.bus.emit(
            "run_end",
            message="done",
            best=self.record.best.name,
            seconds=self.record.phases["total"],
        )
        return self.record

    def _search(self) -> None:
        raise NotImplementedError

    @contextmanager
    def phase(self, name: str, message: str = ""):
        """Time a phase and announce its start and end."""
        self.bus.emit("phase_start", phase=name, message=message or name)
        start = time.perf_counter()
        yield
        end = time.perf_counter()
        seconds = end - start
        self.record.phases[name] = self.record.phases.get(name, 0.0) + seconds
        self.record.timeline.append(
            {"phase": name, "start_s": start - self._start, "end_s": end - self._start}
        )
        self.bus.emit("phase_end", phase=name, message=f"{name} done", seconds=seconds)

    def budget_exhausted(self) -> bool:
        """Whether ``time_budget_s`` has passed (no new candidate may start).

        Never true before the first candidate: a run always has a best to keep.
        """
        budget = self.config.time_budget_s
        if budget is None or not self.record.candidates:
            return False
        over = time.perf_counter() - self._start >= budget
        if over:
            self.record.stopped_by_budget = True
        return over

    # ----------------------------------------------------------------- data
    def student_source_proba(self) -> np.ndarray:
        """Probabilities students learn from on every row: the mean of the teachers."""
        probas = list(self.dataset.teacher_probas.values())
        return np.mean(probas, axis=0)

    def _context(self, split: Split) -> TrainingContext:
        ds = self.dataset
        source = self.student_source_proba()
        reference = ds.teacher_proba()
        return TrainingContext(
            X_train=ds.X.iloc[split.train],
            y_train=ds.y[split.train],
            X_val=ds.X.iloc[split.validation],
            y_val=ds.y[split.validation],
            X_test=ds.X.iloc[split.test],
            y_test=ds.y[split.test],
            teacher_train=source[split.train],
            reference_val=reference[split.validation],
            reference_test=reference[split.test],
            classes=ds.classes,
            numeric=ds.numeric,
            categorical=ds.categorical,
            seed=self.random_state,
        )

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
            cache = self._bootstraps
            key = (id(incumbent), n_boot)
            if key not in cache:
                cache[key] = PairedBootstrap(
                    self.ctx.y_val,
                    incumbent.val_proba,
                    metric,
                    self.ctx.reference_val,
                    n_boot=n_boot,
                    seed=self.random_state,
                )
            return cache[key].share_worse(candidate.val_proba)

        parts = (
            metric,
            n_boot,
            self.random_state,
            digest(self.ctx.y_val),
            digest(incumbent.val_proba),
            digest(candidate.val_proba),
        )
        return self.memo("paired_bootstrap", parts, compute)

    def memo(self, kind: str, parts: tuple, compute: Any) -> Any:
        """``compute()``; the hpm method memoizes it in its cache under ``kind, parts``."""
        return compute()

    # ----------------------------------------------------------------- training
    def fit(
        self, spec: StudentSpec, ctx: TrainingContext | None = None, **kwargs: Any
    ) -> CandidateResult:
        """Train and score one candidate without recording it (screening, baseline).

        The hpm method serves this from its cache.
        """
        return train_candidate(spec, ctx or self.ctx, **kwargs)

    def train(self, spec: StudentSpec, source: str, **kwargs: Any) -> CandidateResult:
        """Train and score one candidate, record it, and announce it."""
        result = train_candidate(spec, self.ctx, source=source, **kwargs)
        self.add_candidate(result)
        return result

    def add_candidate(self, result: CandidateResult) -> None:
        """Record a finished candidate and send its event."""
        self.record.candidates.append(result)
        metric = self.config.selection_metric
        self.bus.emit(
            "candidate",
            phase=result.source,
            message=f"{result.name}: val {metric} {result.val.get(metric, math.nan):.4f}",
            row=candidate_row(result),
            index=len(self.record.candidates),
        )

    # ----------------------------------------------------------------- compare
    def selection_key(self, result: CandidateResult) -> tuple[float, float]:
        """Higher is better: the validation metric, then smaller size."""
        value = result.val.get(self.config.selection_metric, math.nan)
        value = -math.inf if value is None or math.isnan(value) else float(value)
        return (value, -float(result.size_bytes))

    def _compare(self) -> None:
        if not self.record.candidates:
            raise RuntimeError(
                "No candidate was trained (the time budget ran out before the first one)."
            )
        best = self._select_best()
        self.record.best = best
        test_rows = hashlib.sha256(self.split.test.tobytes()).hexdigest()
        self.record.teachers = [
            self.memo(
                "teacher_score",
                # The fingerprint covers the teachers' probabilities on every row.
                (self.dataset.fingerprint(), t.name, type(t.model).__name__, test_rows),
                lambda t=t: self._score_teacher(t),
            )
            for t in self.dataset.teachers
        ]
        self.record.baseline = self._baseline(best)
        metric = self.config.selection_metric
        self.bus.emit(
            "info",
            phase="compare",
            message=(
                f"best {best.name}: val {metric} {best.val[metric]:.4f}, "
                f"test {metric} {best.test[metric]:.4f}"
            ),
            best=best.name,
        )

    def _select_best(self) -> CandidateResult:
        """The selected student under ``config.selection_rule``.

        ``best``: the highest validation metric (ties: smaller model). ``smallest_tied``
        (default): the smallest candidate that is not clearly worse than that top
        candidate — not below it in at least 90% of paired bootstrap resamples of the
        validation rows. With many candidates and few validation rows the top score is
        partly luck (the winner's curse); among statistically tied candidates the
        smallest is both the better guess and the better student to ship.
        """
        cfg = self.config
        metric = cfg.selection_metric
        top = max(self.record.candidates, key=self.selection_key)
        chosen, tied_checked = top, []
        if cfg.selection_rule == "smallest_tied":
            smaller = sorted(
                (c for c in self.record.candidates if 0 <= c.size_bytes < top.size_bytes),
                key=lambda c: (c.size_bytes, -self.selection_key(c)[0]),
            )
            for candidate in smaller:
                share = self.share_worse(top, candidate, n_boot=200)
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
        self.record.details["selection_rule"] = {
            "rule": cfg.selection_rule,
            "top_by_validation": top.name,
            "selected": chosen.name,
            "reason": reason,
            "smaller_candidates_checked": tied_checked,
            "threshold": TIE_THRESHOLD,
        }
        return chosen

    def _baseline(self, best: CandidateResult) -> CandidateResult | None:
        """Same family, capacity and hyper-parameters as ``best``, trained on hard labels."""
        spec = self.baseline_spec(best)
        if spec is None:
            return None
        hard = StudentSpec(spec.family, spec.capacity, 1.0, 0.0, spec.trial, dict(spec.params))
        return self.fit(
            hard, self.baseline_context(best), source="baseline", name=f"baseline {hard.label()}"
        )

    def baseline_context(self, best: CandidateResult) -> TrainingContext:
        """The training rows of the hard-label twin: the same rows ``best`` learned from."""
        return self.ctx

    def baseline_spec(self, best: CandidateResult) -> StudentSpec | None:
        """The spec whose hard-label twin is the baseline (the best's own spec)."""
        return best.spec

    def _score_teacher(self, teacher: Teacher) -> CandidateResult:
        ds, split = self.dataset, self.split
        proba = ds.teacher_probas[teacher.name]
        val_p, test_p = proba[split.validation], proba[split.test]
        if teacher.model is not None:
            cols = teacher.feature_columns(ds.frame, ds.features)
            X_test = ds.frame.iloc[split.test][cols]
            size = size_bytes(teacher.model)
            latency = latency_ms_1k(single_thread_predictor(teacher.model), X_test)
        else:
            size, latency = -1, math.nan
        return CandidateResult(
            name=f"teacher {teacher.name}",
            source="teacher",
            spec=None,
            val=compute_metrics(ds.y[split.validation], val_p, self.ctx.reference_val),
            test=compute_metrics(ds.y[split.test], test_p, self.ctx.reference_test),
            fit_seconds=math.nan,
            size_bytes=size,
            latency_ms_1k=latency,
            val_proba=val_p,
            test_proba=test_p,
            model=teacher.model,
            extra={"family": type(teacher.model).__name__ if teacher.model else "proba_cols"},
        )

    def results_df(self):
        """The results table of the finished run."""
        r = self.record
        return build_results_df(r.candidates, r.best, r.teachers, r.baseline)


__all__ = ["BaseDistiller", "RunRecord", "score_model"]
