"""The read side of a finished run: a frozen, typed :class:`RunResult`.

The engine (:mod:`hpmkd.engine`) builds one ``RunResult`` at the end of ``run()``; the
facade (:class:`~hpmkd.distiller.AutoDistiller`), the CLI, the HTML report and the app read
it and nothing else. Teachers are found by :attr:`CandidateResult.teacher_name`, components
by attribute of :class:`Components`; no display string or untyped dict is a key.

Every component record is a frozen dataclass whose field names are the keys of its plain-data
form (:meth:`ComponentRecord.to_dict`, used by ``summary.json``). A field left at ``None``
is absent from that form: it did not apply (for instance ``stop_reason`` of a chain that was
switched off).
"""

from __future__ import annotations

import dataclasses
import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd

from hpmkd._version import __version__
from hpmkd.components.selection_rule import SelectionDecision
from hpmkd.config import HPMConfig
from hpmkd.data import Split
from hpmkd.evaluate import CandidateResult
from hpmkd.leakage import LeakageCheck, LeakageSignal  # noqa: F401 - re-exported
from hpmkd.results_table import build_results_df, metrics_dict, to_jsonable
from hpmkd.settings import server_field_names


# =========================================================================== components
@dataclass(frozen=True)
class ComponentRecord:
    """What one component did in a run.

    ``enabled`` is False when the component was switched off or could not run, and
    ``reason`` then says why.
    """

    enabled: bool = True
    reason: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The record from its plain form (:meth:`to_dict`, e.g. an event's payload):
        lists back to tuples, keys that are not fields left out."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{
                key: tuple(value) if isinstance(value, list) else value
                for key, value in data.items()
                if key in names
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data: every field that applies (``None`` fields are left out)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class SelectionRecord(ComponentRecord):
    """Phase 1: the configurations ``AdaptiveConfigurationManager`` kept, and why."""

    meta_features: Mapping[str, float] | None = None
    screen_scores: Mapping[str, float] | None = None
    alpha_scores: Mapping[str, float] | None = None
    screen_seconds: float | None = None
    temperature_scores: Mapping[str, float] | None = None
    configs: tuple[Mapping[str, Any], ...] | None = None
    warm_started: bool | None = None


@dataclass(frozen=True)
class WarmStartRecord(ComponentRecord):
    """What ``SharedOptimizationMemory`` offered phase 1; ``runs`` are the ids of the past
    runs whose settings phase 1 kept (``summary.json["warm_start_runs"]``)."""

    used: bool | None = None
    configs: tuple[Mapping[str, Any], ...] | None = None
    neighbours: tuple[Mapping[str, Any], ...] | None = None
    runs: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ChainRecord(ComponentRecord):
    """Phase 2: the stages of the progressive chain and why it stopped."""

    family: str | None = None
    alpha: float | None = None
    stages: tuple[Mapping[str, Any], ...] = ()
    stop_reason: str | None = None


@dataclass(frozen=True)
class TemperatureRecord(ComponentRecord):
    """Every temperature ``MetaTemperatureScheduler`` chose, with its reason and feedback."""

    adaptive: bool | None = None
    decisions: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class RacingRecord(ComponentRecord):
    """Configurations that stopped racing in phase 3 (paired bootstrap, validation rows)."""

    threshold: float | None = None
    stopped: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class HalvingRecord(ComponentRecord):
    """Successive halving of phase 3 on large training sets."""

    rung0_rows: int | None = None
    rung0_trials: int | None = None
    rung1_rows: int | None = None
    promoted: tuple[str, ...] | None = None
    rung1_trials: int | None = None


@dataclass(frozen=True)
class CapacityRecord(ComponentRecord):
    """The capacity climb at the end of phase 3: bigger students of the best family while
    the best is clearly below the teacher on validation (``hpmkd.engine.climb``).

    ``stop`` is the stopping reason as a code (``reached_teacher``, ``size_cap``,
    ``not_improving``, ``time_budget``, ``stopped``, ``max_steps``) and ``stop_reason`` says it in
    words; ``steps`` holds one entry per rung tried (its validation metric, size,
    compression against the teacher and the share of paired bootstrap resamples of the
    validation rows where it scored below the teacher).
    """

    family: str | None = None
    start: str | None = None
    start_val_metric: float | None = None
    start_share_below_teacher: float | None = None
    teacher_val_metric: float | None = None
    teacher_size_bytes: int | None = None
    size_cap_bytes: int | None = None
    min_compression: float | None = None
    threshold: float | None = None
    steps: tuple[Mapping[str, Any], ...] = ()
    stop: str | None = None
    stop_reason: str | None = None


@dataclass(frozen=True)
class FinalFitRecord(ComponentRecord):
    """The final fit of the compare phase (``hpmkd.engine.final_fit``): the selected student
    and its hard-label twin fitted once more on the training and validation rows.

    ``rows`` is the final fits' training rows, ``train_only_rows`` those of the fits the
    selection saw; ``calibration`` says where the shipped model's calibration comes from.
    """

    rows: int | None = None
    train_only_rows: int | None = None
    validation_rows: int | None = None
    student: str | None = None
    twin: str | None = None
    fit_seconds: float | None = None
    calibration: str | None = None

    def sentence(self) -> str:
        """What was shipped, in words."""
        if not self.enabled:
            return f"train-only fit shipped: {self.reason}"
        return (
            f"final fit on training + validation rows: {self.rows:,} rows (the selection "
            f"saw fits on {self.train_only_rows:,}), {self.calibration}; validation "
            "figures are the train-only fit's, test figures the final fit's"
        )


@dataclass(frozen=True)
class AttentionRecord(ComponentRecord):
    """Phase 4, or the fusion of several teachers: attention weights fitted on validation."""

    members: tuple[str, ...] | None = None
    mean_weights: Mapping[str, float] | None = None
    slopes: Mapping[str, float] | None = None
    val_metric_fused: float | None = None
    val_metric_mean: float | None = None
    student: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class CacheRecord(ComponentRecord):
    """``IntelligentCache`` counters of this run."""

    hits: int = 0
    misses: int = 0
    directory: str | None = None
    size_bytes: int = 0
    size_limit_bytes: int | None = None


@dataclass(frozen=True)
class ParallelRecord(ComponentRecord):
    """Where candidates trained."""

    backend: str = "sequential"
    n_jobs: int = 1
    scheduler: str | None = None
    workers: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The backend's description (it has no ``enabled`` switch of its own)."""
        out = super().to_dict()
        out.pop("enabled", None)
        return out


@dataclass(frozen=True)
class Components:
    """Every component's record; ``None`` means the method has no such component."""

    selection: SelectionRecord | None = None
    warm_start: WarmStartRecord | None = None
    chain: ChainRecord | None = None
    temperature: TemperatureRecord | None = None
    racing: RacingRecord | None = None
    halving: HalvingRecord | None = None
    capacity: CapacityRecord | None = None
    attention: AttentionRecord | None = None
    teacher_attention: AttentionRecord | None = None
    cache: CacheRecord | None = None
    parallel: ParallelRecord | None = None
    selection_rule: SelectionDecision | None = None
    final_fit: FinalFitRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data keyed by component (``summary.json["details"]``)."""
        return {
            f.name: getattr(self, f.name).to_dict()
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }


# =========================================================================== run
@dataclass(frozen=True)
class PhaseSpan:
    """One phase's start and end, in seconds since the run started."""

    phase: str
    start_s: float
    end_s: float


#: The outcome of a comparison whose 95% interval excludes 0, by the model the student is
#: compared with: (student above it, student below it). The selection metrics and KS are
#: all higher-is-better.
OUTCOME_WORDS: Mapping[str, tuple[str, str]] = {
    "twin": ("helped", "hurt"),
    "teacher": ("better than the teacher", "worse than the teacher"),
}
#: The outcome of a comparison whose 95% interval contains 0.
NO_DIFFERENCE = "no measurable difference"
#: The outcome of a comparison without an interval: a run stopped on request skips the
#: paired bootstrap (a stop ends the run within seconds), so its differences are points.
NOT_MEASURED = "not measured"
#: The outcome of a comparison in a metric that is undefined on the test rows.
UNDEFINED = "undefined"
#: The models a comparison can be against, in words (the verdict table's first column).
AGAINST_WORDS: Mapping[str, str] = {"twin": "hard-label twin", "teacher": "teacher"}
#: Columns of :meth:`Verdict.table`, as the report and the app show them.
VERDICT_COLUMNS = (
    "against", "model", "metric", "student", "other", "difference (student - other)",
    "95% interval", "outcome", "test rows",
)


def comparison_outcome(against: str, low: float, high: float) -> str:
    """The outcome of one comparison from its 95% interval.

    Parameters
    ----------
    against : {"twin", "teacher"}
    low, high : float
        The interval of student minus other; NaN when it was not computed.

    Returns
    -------
    str
        ``OUTCOME_WORDS[against][0]`` when the interval is above 0, ``[1]`` when below,
        :data:`NO_DIFFERENCE` when it contains 0, :data:`NOT_MEASURED` without one.
    """
    if math.isnan(low) or math.isnan(high):
        return NOT_MEASURED
    above, below = OUTCOME_WORDS[against]
    return above if low > 0 else below if high < 0 else NO_DIFFERENCE


@dataclass(frozen=True)
class Difference:
    """The selected student against another model on the test rows, in one metric.

    ``against`` is ``twin`` or ``teacher`` (``against_name`` names the model: with several
    teachers, one comparison per teacher); ``difference`` is student minus other;
    ``low``/``high`` bound its 95% paired bootstrap interval (percentile, ``VERDICT_BOOT``
    resamples of the test rows; NaN when not computed); ``outcome`` is
    :func:`comparison_outcome` of the interval (against the twin ``helped``, ``no
    measurable difference`` or ``hurt``; against a teacher ``better than the teacher``,
    ``no measurable difference`` or ``worse than the teacher``), or ``undefined`` when the
    metric is undefined on the test rows.
    """

    against: str
    against_name: str
    metric: str
    student: float
    other: float
    difference: float
    low: float
    high: float
    n_rows: int
    outcome: str

    def interval(self) -> str:
        """The 95% interval as text (``[+0.0012, +0.0345]``), or why there is none."""
        if math.isnan(self.low) or math.isnan(self.high):
            return "not computed (run stopped)" if self.outcome == NOT_MEASURED else "n/a"
        return f"[{self.low:+.4f}, {self.high:+.4f}]"

    def sentence(self) -> str:
        """The comparison in words, with its interval and the test size."""
        return (
            f"test {self.metric} {self.student:.4f} vs {self.other:.4f} ({self.against_name}):"
            f" {self.difference:+.4f}, 95% interval {self.interval()} on {self.n_rows:,} test "
            "rows"
        )

    def row(self) -> dict[str, Any]:
        """The comparison as one row of :meth:`Verdict.table` (keys
        :data:`VERDICT_COLUMNS`)."""

        def num(value: float, spec: str) -> str:
            return "n/a" if math.isnan(value) else format(value, spec)

        return dict(zip(VERDICT_COLUMNS, (
            AGAINST_WORDS.get(self.against, self.against),
            self.against_name,
            self.metric,
            num(self.student, ".4f"),
            num(self.other, ".4f"),
            num(self.difference, "+.4f"),
            self.interval(),
            self.outcome,
            int(self.n_rows),
        ), strict=True))


@dataclass(frozen=True)
class Verdict:
    """Distillation gain, measured: the selected student against its hard-label twin and
    against every teacher, on the test rows, in the selection metric and in KS, each with
    its 95% interval (:class:`Difference`).

    ``metric`` is the metric the headline is judged in: the selection metric, or KS when
    the selection metric measures agreement with the teacher (``fidelity``,
    ``rank_fidelity``: soft targets raise it by construction, and a teacher agrees with
    itself, so the teachers are not compared in it either). ``gains`` maps ``ks``,
    ``auc``, ``accuracy``, ``f1``, ``ece`` and ``brier`` to student minus twin (point
    values, ``None`` when undefined; empty without a twin; for ``ece`` and ``brier``
    lower is better, so a negative gain is an improvement). ``outcome`` is the headline
    comparison's (the twin in ``metric``): ``helped``, ``no measurable difference``,
    ``hurt``, ``undefined``, or ``not measured`` (no twin, or no interval in a run
    stopped on request); ``text`` says it in words.
    """

    gains: Mapping[str, float | None]
    differences: tuple[Difference, ...]
    outcome: str
    text: str
    metric: str

    @property
    def headline(self) -> Difference | None:
        """The comparison the outcome is: the twin in :attr:`metric` (None without a
        twin)."""
        return self.against("twin", self.metric)

    def against(self, who: str, metric: str, name: str | None = None) -> Difference | None:
        """The comparison with ``twin`` or ``teacher`` in ``metric``, if made.

        Parameters
        ----------
        who : {"twin", "teacher"}
        metric : str
        name : str, optional
            The model's name (``against_name``); default the first such comparison (for
            ``teacher``, the primary teacher).
        """
        return next(
            (
                d for d in self.differences
                if d.against == who and d.metric == metric
                and (name is None or d.against_name == name)
            ),
            None,
        )

    def table(self) -> pd.DataFrame:
        """Every comparison, one row each (columns :data:`VERDICT_COLUMNS`): what the
        report and the app show."""
        return pd.DataFrame([d.row() for d in self.differences], columns=list(VERDICT_COLUMNS))

    def to_dict(self) -> dict[str, Any]:
        """``summary.json["distillation_gain"]``."""
        return {
            **self.gains,
            "outcome": self.outcome,
            "verdict": self.text,
            "metric": self.metric,
            "comparisons": [dataclasses.asdict(d) for d in self.differences],
        }


@dataclass(frozen=True)
class DatasetFacts:
    """What a finished run records of its dataset (no rows)."""

    name: str
    classes: tuple[Any, ...]
    n_rows: int
    n_features: int
    dropped_missing_target: int
    fingerprint: str
    profile: Mapping[str, Any]
    teacher_trusted: bool = False


#: What a :meth:`RunResult.without_server_details` copy shows in place of a server's
#: folder or address.
HIDDEN = "(hidden by the server)"


def unnamed_neighbours(neighbours: Any) -> tuple[dict[str, Any], ...]:
    """The warm start's similar past runs without their table's name (``dataset``): a
    server's memory holds other people's runs (ids, distances and scores stay).

    Parameters
    ----------
    neighbours : iterable of mapping
    """
    return tuple({k: v for k, v in n.items() if k != "dataset"} for n in neighbours)


@dataclass(frozen=True)
class RunResult:
    """Everything a finished run knows.

    Attributes
    ----------
    method, method_reason : str
        The method that ran and why it was chosen.
    candidates : tuple of CandidateResult
        Every trained candidate, in training order (fitted models included).
    selected : CandidateResult
        The selected student (one of ``candidates``).
    teachers : tuple of CandidateResult
        Each teacher scored on the same rows; ``teacher_name`` names it in the dataset.
        The first is the primary teacher (agreement metrics are measured against it).
    twin : CandidateResult or None
        The same-size hard-label twin of ``selected`` (alpha 0, same rows).
    components : Components
        Per-component records.
    phases : mapping of str to float
        Seconds per phase, and ``total``.
    timeline : tuple of PhaseSpan
    verdict : Verdict or None
    split : Split
        Row positions of train, validation and test; ``y_val``/``y_test`` are their
        labels as class indices (the order of every ``val_proba``/``test_proba``).
    leakage : LeakageCheck or None
        Whether the teacher(s) as given look fitted on the run's rows
        (:func:`hpmkd.leakage.check_run`); ``None`` when the run made no check.
    stopped_by_budget : bool
        The time budget ran out before every candidate was trained.
    stop_reason : str or None
        Why and in which phase the run stopped before its end (a stop request or the
        time budget); ``None`` when it ran to the end. See :attr:`partial`.
    server_details_hidden : bool
        A copy made by :meth:`without_server_details`.
    """

    method: str
    method_reason: str
    selection_metric: str
    candidates: tuple[CandidateResult, ...]
    selected: CandidateResult
    teachers: tuple[CandidateResult, ...]
    twin: CandidateResult | None
    components: Components
    phases: Mapping[str, float]
    timeline: tuple[PhaseSpan, ...]
    verdict: Verdict | None
    split: Split
    y_val: np.ndarray
    y_test: np.ndarray
    stopped_by_budget: bool
    config: HPMConfig
    random_state: int
    dataset: DatasetFacts
    versions: Mapping[str, str] = field(default_factory=dict)
    leakage: LeakageCheck | None = None
    stop_reason: str | None = None
    server_details_hidden: bool = False

    @property
    def partial(self) -> bool:
        """Whether the run stopped before its end (stop request or time budget): its
        candidates are the ones that finished (``stop_reason`` says why and where)."""
        return self.stop_reason is not None

    @property
    def primary_teacher(self) -> CandidateResult:
        """The teacher agreement metrics are measured against."""
        return self.teachers[0]

    @property
    def split_sizes(self) -> dict[str, int]:
        """Rows in train, validation and test."""
        return {
            "train": len(self.split.train),
            "validation": len(self.split.validation),
            "test": len(self.split.test),
        }

    def results_df(self) -> pd.DataFrame:
        """One row per candidate, then the teachers and the hard-label twin."""
        return build_results_df(
            list(self.candidates), self.selected, list(self.teachers), self.twin
        )

    def without_server_details(self) -> RunResult:
        """A copy to show people who use a shared server but do not run it.

        A server (the app) sets the server fields of the configuration itself (its cache
        and memory folders, its Dask scheduler's address, its worker count and cache size:
        ``HPMConfig`` fields whose spec has ``server=True``), and its optimization memory
        holds the runs of everyone who uses it. In the copy, :meth:`summary` and the
        report (which reads the same data) leave out the server fields of the
        configuration (``summary.json["config_set_by_server"]`` names them), and the
        records show :data:`HIDDEN` for the cache's folder and the scheduler's address and
        leave out the table names of the warm start's similar past runs (their ids,
        distances and scores stay; the memory's reasons name past runs by id only).
        Numbers, models and every other record are the run's.

        Returns
        -------
        RunResult
        """
        parts = self.components
        cache, parallel, warm = parts.cache, parts.parallel, parts.warm_start
        if cache is not None and cache.directory is not None:
            cache = dataclasses.replace(cache, directory=HIDDEN)
        if parallel is not None and parallel.scheduler is not None:
            parallel = dataclasses.replace(parallel, scheduler=HIDDEN)
        if warm is not None and warm.neighbours:
            warm = dataclasses.replace(warm, neighbours=unnamed_neighbours(warm.neighbours))
        return dataclasses.replace(
            self,
            components=dataclasses.replace(
                parts, cache=cache, parallel=parallel, warm_start=warm
            ),
            server_details_hidden=True,
        )

    def shown_config(self) -> dict[str, Any]:
        """``config.to_dict()`` as :meth:`summary` and the report show it: without the
        server fields in a :meth:`without_server_details` copy."""
        values = self.config.to_dict()
        if self.server_details_hidden:
            for name in server_field_names():
                values.pop(name, None)
        return values

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly summary: method, selected student, teacher/student/twin test
        metrics, distillation gain, phase timings, split sizes, config, versions."""
        teacher = self.primary_teacher
        twin = metrics_dict(self.twin) if self.twin else None
        out: dict[str, Any] = {
            "method": self.method,
            "method_reason": self.method_reason,
            "best_model": self.selected.name,
            "best_source": self.selected.source,
            "selection_metric": self.selection_metric,
            "classes": [str(c) for c in self.dataset.classes],
            "n_rows": self.dataset.n_rows,
            "n_features": self.dataset.n_features,
            "split_sizes": self.split_sizes,
            "teacher": metrics_dict(teacher),
            "teachers": {t.teacher_name: metrics_dict(t) for t in self.teachers},
            "student": metrics_dict(self.selected),
            "baseline": twin,
            "baseline_model": self.twin.name if self.twin else None,
            "distillation_gain": self.verdict.to_dict() if self.verdict else {},
            "compression": compression(teacher, self.selected),
            "timings": {k: float(v) for k, v in self.phases.items()},
            "phases": [k for k in self.phases if k != "total"],
            "n_candidates": len(self.candidates),
            "stopped_by_time_budget": self.stopped_by_budget,
            "partial": self.partial,
            "stop_reason": self.stop_reason,
            "config": self.shown_config(),
            "random_state": self.random_state,
            # Past runs that warm-started this one: with the memory on, reproducing the
            # run needs a memory that holds them (see README, "Reproducing a run").
            "warm_start_runs": list(self.components.warm_start.runs or ())
            if self.components.warm_start is not None
            else [],
            "dropped_missing_target": self.dataset.dropped_missing_target,
            "teacher_trusted": self.dataset.teacher_trusted,
            "teacher_refit": self.config.teacher_refit,
            "leakage": self.leakage.to_dict() if self.leakage is not None else None,
            "details": self.components.to_dict(),
            "versions": dict(self.versions),
        }
        if self.server_details_hidden:
            out["config_set_by_server"] = list(server_field_names())
        return to_jsonable(out)


def compression(teacher: CandidateResult, student: CandidateResult) -> dict[str, Any]:
    """Teacher-over-student size and latency ratios (``None`` when not measurable)."""
    size = (
        teacher.size_bytes / student.size_bytes
        if teacher.size_bytes > 0 and student.size_bytes > 0
        else None
    )
    lat = (
        teacher.latency_ms_1k / student.latency_ms_1k
        if not math.isnan(teacher.latency_ms_1k) and student.latency_ms_1k > 0
        else None
    )
    return {"size_ratio": size, "latency_ratio": lat}


def versions() -> dict[str, str]:
    """Versions of hpmkd, Python and the key libraries."""
    import lightgbm
    import sklearn

    return {
        "hpmkd": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "lightgbm": lightgbm.__version__,
    }
