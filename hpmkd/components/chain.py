"""``ProgressiveDistillationChain``: students trained one after another.

Stage 1 learns from the teacher's soft targets. Each later stage learns from a mix of the
teacher's probabilities and the previous stage's probabilities on the training rows
(``stage_mix`` weight on the previous stage) and climbs one step on the capacity ladder
(``small -> medium -> large``, then further stages repeat the top capacity as
"born-again" refinements). The chain stops as soon as a stage improves the validation
metric by less than ``min_improvement`` over the best stage so far; that last stage is
still trained and reported, marked as not kept. The temperature of every stage comes
from the :class:`~hpmkd.components.temperature.MetaTemperatureScheduler`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpmkd.components.temperature import MetaTemperatureScheduler
from hpmkd.evaluate import CandidateResult, TrainingContext
from hpmkd.stop import FitInterrupted, abandonable
from hpmkd.students import CAPACITIES, StudentSpec, proba_in_class_order, trial_params

TrainFn = Callable[..., CandidateResult]


@dataclass
class ChainOutcome:
    """The stages trained and why the chain stopped."""

    stages: list[CandidateResult] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = ""


#: Weight of the previous stage in a stage's targets (``stage_mix``'s default).
STAGE_MIX = 0.5


class ProgressiveDistillationChain:
    """Train a chain of students for one family.

    Parameters
    ----------
    family : str
        Student family of every stage.
    alpha : float
        Weight of the (teacher or teacher+previous-stage) soft targets against the labels.
    scheduler : MetaTemperatureScheduler
        Gives each stage's temperature and receives its validation score.
    metric : str
        Validation metric that measures each stage's gain.
    min_improvement : float
        Smallest validation gain that lets the chain continue.
    max_stages : int
        Most stages.
    start_capacity : str
        First rung of the capacity ladder.
    stage_mix : float
        Weight of the previous stage's probabilities in a later stage's source target.
    """

    def __init__(
        self,
        family: str,
        alpha: float,
        scheduler: MetaTemperatureScheduler,
        metric: str = "ks",
        min_improvement: float = 0.01,
        max_stages: int = 4,
        start_capacity: str = "small",
        stage_mix: float = STAGE_MIX,
    ) -> None:
        self.family = family
        self.alpha = alpha
        self.scheduler = scheduler
        self.metric = metric
        self.min_improvement = min_improvement
        self.max_stages = max_stages
        self.start_capacity = start_capacity
        self.stage_mix = stage_mix

    def _source_label(self, index: int) -> str:
        if index == 1:
            return "teacher"
        mix = self.stage_mix
        return f"teacher x {1 - mix:g} + stage {index - 1} x {mix:g}"

    def ladder(self) -> list[str]:
        """Capacity of each stage."""
        rungs = list(CAPACITIES[CAPACITIES.index(self.start_capacity) :])
        return [rungs[min(i, len(rungs) - 1)] for i in range(self.max_stages)]

    def run(
        self,
        ctx: TrainingContext,
        train: TrainFn,
        seed: int,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> ChainOutcome:
        """Train stages until the gain is too small, the ladder ends, or time runs out.

        ``train(spec, source=..., name=..., teacher_train=...)`` trains and records a
        candidate (the distiller's cached, event-emitting trainer).
        """
        outcome = ChainOutcome()
        best_score = -math.inf
        source = ctx.teacher_train
        for index, capacity in enumerate(self.ladder(), start=1):
            if should_stop():
                outcome.stop_reason = f"stopped before stage {index}"
                break
            decision = self.scheduler.suggest(self.family)
            spec = StudentSpec(
                self.family,
                capacity,
                decision.temperature,
                self.alpha,
                0,
                trial_params(self.family, capacity, 0, len(ctx.y_train), seed),
            )
            try:
                result = train(
                    spec,
                    source="chain",
                    name=f"chain stage {index} {spec.label()}",
                    teacher_train=source,
                )
            except FitInterrupted:
                outcome.stop_reason = f"stopped while training stage {index} (abandoned)"
                break
            score = result.val.get(self.metric, math.nan)
            # Each stage learns from a different source: not comparable with other
            # stages, so it is its own group.
            self.scheduler.observe(
                self.family, decision.temperature, score, capacity, self.alpha, f"stage {index}"
            )
            gain = score - best_score if math.isfinite(best_score) else math.nan
            kept = not math.isfinite(best_score) or gain >= self.min_improvement
            outcome.stages.append(result)
            outcome.records.append(
                {
                    "stage": index,
                    "name": result.name,
                    "family": self.family,
                    "capacity": capacity,
                    "temperature": decision.temperature,
                    "temperature_reason": decision.reason,
                    "alpha": self.alpha,
                    "learned_from": self._source_label(index),
                    "val_metric": score,
                    "gain": gain,
                    "kept": kept,
                }
            )
            if not kept:
                outcome.stop_reason = (
                    f"stage {index} gained {gain:+.4f} val {self.metric}, below "
                    f"min_improvement {self.min_improvement:g}"
                )
                break
            best_score = max(best_score, score)
            try:
                # Seconds on large tables, with no stop check inside: a stop leaves it.
                previous = abandonable(
                    proba_in_class_order, result.model, ctx.X_train, ctx.classes
                )
            except FitInterrupted:
                outcome.stop_reason = f"stopped before stage {index + 1}"
                break
            source = (1 - self.stage_mix) * ctx.teacher_train + self.stage_mix * previous
            source = source / source.sum(axis=1, keepdims=True)
        else:
            outcome.stop_reason = f"all {self.max_stages} stages trained"
        return outcome


def chain_source_hash(source: np.ndarray) -> bytes:
    """Bytes identifying a stage's source targets (for cache keys)."""
    return np.ascontiguousarray(np.round(source, 10)).tobytes()
