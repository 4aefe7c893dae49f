"""``AdaptiveConfigurationManager``: which student configurations are worth training.

The candidate space is student family x capacity x temperature x alpha. The manager ranks
it from measurements on the dataset at hand, not from a fixed table:

1. **Screening** (real fits on a stratified subsample of at most ``screen_rows`` training
   rows): every family x capacity at a middle temperature and alpha, scored on the
   validation rows; then, for the best family x capacity, every alpha. Each fit is a few
   hundred milliseconds at most.
2. **Ranking**: a configuration's score is its family x capacity screening score plus its
   alpha's measured advantage over the mean alpha. Meta-features shape the space: on
   small data (fewer than 2,000 training rows) the large capacities are dropped, since
   they cannot be validated reliably there.
3. **Diversity**: family x capacity pairs within a tolerance of the best (half the
   sampling-noise scale of the metric on the screening validation rows,
   ``sqrt((n1 + n2) / (n1 n2)) / 2``, at least 0.01) share the ``max_configs`` slots
   round-robin from the best, so no single pair takes every slot and each family that
   screened close to the best is kept; alphas more than half the tolerance behind the
   best alpha are dropped. The manager may so keep fewer than ``max_configs``: slots
   are not filled with configurations the screening already showed to be worse.
4. **Warm start**: settings that won on similar past datasets (from
   :class:`~hpmkd.components.memory.SharedOptimizationMemory`) go first.

Each kept configuration records the reason it was kept.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpmkd.config import HPMConfig
from hpmkd.evaluate import CandidateResult, TrainingContext, subsample_context, train_candidate
from hpmkd.students import CAPACITIES, StudentSpec, trial_params

SCREEN_ROWS = 4000
SMALL_DATA_ROWS = 2000


@dataclass(frozen=True)
class SelectedConfig:
    """One configuration to train. ``temperature`` is ``None`` when the scheduler sets it;
    ``source_run`` is the id of the past run a warm-started configuration came from."""

    family: str
    capacity: str
    temperature: float | None
    alpha: float
    score: float
    reason: str
    warm_started: bool = False
    source_run: str | None = None

    def label(self) -> str:
        """Short name, e.g. ``lgbm-medium a=0.5 T=auto``."""
        t = "auto" if self.temperature is None else f"{self.temperature:g}"
        return f"{self.family}-{self.capacity} a={self.alpha:g} T={t}"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for the run record."""
        return {
            "label": self.label(),
            "family": self.family,
            "capacity": self.capacity,
            "temperature": self.temperature,
            "alpha": self.alpha,
            "score": None if math.isnan(self.score) else self.score,
            "reason": self.reason,
            "warm_started": self.warm_started,
            "source_run": self.source_run,
        }


class AdaptiveConfigurationManager:
    """Rank the configuration space from screening fits and keep a diverse top set.

    Parameters
    ----------
    config : HPMConfig
    random_state : int
    """

    def __init__(self, config: HPMConfig, random_state: int = 42) -> None:
        self.config = config
        self.random_state = random_state
        self.screen_scores_: dict[tuple[str, str], float] = {}
        self.alpha_scores_: dict[float, float] = {}
        self.screen_seconds_: float = 0.0
        self.noise_: float = 0.0
        self.temperature_scores_: dict[float, float] = {}
        self.temperature_alpha_: float | None = None
        self.temperature_family_: tuple[str, str] | None = None

    # ------------------------------------------------------------------ screening
    def capacities(self, n_train: int) -> tuple[str, ...]:
        """Capacities worth screening for this many training rows."""
        return CAPACITIES[:2] if n_train < SMALL_DATA_ROWS else CAPACITIES

    def screen(
        self,
        ctx: TrainingContext,
        fit: Callable[..., CandidateResult] | None = None,
        fit_many: Callable[[list[StudentSpec], TrainingContext], list[CandidateResult]]
        | None = None,
    ) -> dict[tuple[str, str], float]:
        """Score every family x capacity, then every alpha, then every temperature, with
        cheap real fits.

        ``fit(spec, ctx, source=..., full=False)`` trains one screening candidate (the
        distiller passes its cached trainer); default: train directly.
        ``fit_many(specs, ctx)``, when given, trains the screening fits of each of the
        three steps together (in parallel when the run trains in parallel) and returns
        them in order; the fits and scores are those of ``fit``.
        """
        fit = fit or (lambda spec, c, **kw: train_candidate(spec, c, **kw))
        import time

        start = time.perf_counter()
        metric = self.config.selection_metric
        small = subsample_context(ctx, SCREEN_ROWS, self.random_state)
        counts = np.bincount(small.y_val)
        n1, n2 = counts.min(), counts.sum() - counts.min()
        # Scale of sampling noise of a KS/AUC-like score on the screening validation rows
        # (the KS two-sample statistic's standard scale): gaps below it are not real.
        self.noise_ = float(np.sqrt((n1 + n2) / max(n1 * n2, 1)))
        # Middle values that are on the grids (a median of an even count may not be).
        t_mid = sorted(self.config.temperatures)[len(self.config.temperatures) // 2]
        a_mid = sorted(self.config.alphas)[len(self.config.alphas) // 2]
        n = len(small.y_train)

        def spec_of(family: str, capacity: str, alpha: float, t: float = t_mid) -> StudentSpec:
            params = trial_params(family, capacity, 0, n, self.random_state)
            return StudentSpec(family, capacity, t, alpha, 0, params)

        def scores(specs: list[StudentSpec]) -> list[float]:
            if fit_many is not None and len(specs) > 1:
                results = fit_many(specs, small)
            else:
                results = [fit(spec, small, source="screen", full=False) for spec in specs]
            return [_score(r.val.get(metric)) for r in results]

        pairs = list(
            itertools.product(self.config.families, self.capacities(len(ctx.y_train)))
        )
        for pair, score in zip(
            pairs, scores([spec_of(f, c, a_mid) for f, c in pairs]), strict=True
        ):
            self.screen_scores_[pair] = score
        best_family, best_capacity = max(self.screen_scores_, key=self.screen_scores_.get)
        others = [a for a in self.config.alphas if a != a_mid]
        fitted = dict(
            zip(others, scores([spec_of(best_family, best_capacity, a) for a in others]),
                strict=True)
        )
        for alpha in self.config.alphas:
            self.alpha_scores_[alpha] = (
                self.screen_scores_[(best_family, best_capacity)]
                if alpha == a_mid
                else fitted[alpha]
            )
        # Temperature sweep: the same configuration (family, capacity, alpha, parameters)
        # at every temperature, so the scheduler sees temperature effects with nothing
        # else varying. At alpha 0 the temperature does nothing, so a soft alpha is used.
        soft = [a for a in self.alpha_scores_ if a > 0]
        if soft:
            best_soft = max(soft, key=self.alpha_scores_.get)
            self.temperature_alpha_ = best_soft
            self.temperature_family_ = (best_family, best_capacity)
            others = [t for t in self.config.temperatures if t != t_mid]
            fitted = dict(zip(
                others,
                scores([spec_of(best_family, best_capacity, best_soft, t) for t in others]),
                strict=True,
            ))
            for t in self.config.temperatures:
                self.temperature_scores_[t] = (
                    self.alpha_scores_[best_soft] if t == t_mid else fitted[t]
                )
        self.screen_seconds_ = time.perf_counter() - start
        return self.screen_scores_

    # ------------------------------------------------------------------ selection
    def select(
        self,
        meta_features: dict[str, float],
        warm_configs: tuple[dict, ...] = (),
        warm_reason: str = "",
    ) -> list[SelectedConfig]:
        """Keep up to ``max_configs`` promising, diverse configurations (call after
        :meth:`screen`)."""
        cfg = self.config
        adaptive_t = cfg.use_adaptive_temperature
        selected: list[SelectedConfig] = []
        seen: set[tuple] = set()

        def add(item: SelectedConfig) -> None:
            key = (item.family, item.capacity, item.temperature, item.alpha)
            if key not in seen and len(selected) < cfg.max_configs:
                seen.add(key)
                selected.append(item)

        for warm in warm_configs:
            if warm.get("family") not in cfg.families or warm.get("capacity") not in CAPACITIES:
                continue
            add(
                SelectedConfig(
                    family=warm["family"],
                    capacity=warm["capacity"],
                    temperature=None if adaptive_t else float(warm.get("temperature", 1.0)),
                    alpha=float(warm.get("alpha", 0.5)),
                    score=_score(warm.get("val_score")),
                    reason=f"{warm_reason}; that run's val score {_fmt(warm.get('val_score'))}",
                    warm_started=True,
                    source_run=warm.get("run_id"),
                )
            )

        ranked_pairs = sorted(self.screen_scores_.items(), key=lambda kv: -kv[1])
        scores = np.array([s for _, s in ranked_pairs if np.isfinite(s)])
        best = scores.max() if scores.size else 0.0
        # Two models scored on the same rows differ by far less noise than one model's
        # score varies, so half the single-score scale is the tolerance.
        tolerance = max(0.01, self.noise_ / 2)
        kept_pairs = [p for p, s in ranked_pairs if s >= best - tolerance] or [ranked_pairs[0][0]]
        alpha_mean = float(np.mean(list(self.alpha_scores_.values()))) if self.alpha_scores_ else 0
        alphas = sorted(cfg.alphas, key=lambda a: -self.alpha_scores_.get(a, alpha_mean))
        if self.alpha_scores_:
            # Alphas that screened clearly worse than the best are not worth full fits.
            best_alpha = max(self.alpha_scores_.values())
            alphas = [
                a
                for a in alphas
                if self.alpha_scores_.get(a, best_alpha) >= best_alpha - tolerance / 2
            ]
        temps: list[float | None] = [None] if adaptive_t else list(cfg.temperatures)
        per_pair = {pair: [(a, t) for a in alphas for t in temps] for pair in kept_pairs}
        # Round-robin over the kept pairs, best pair first, so slots are shared.
        for round_index in range(max(len(v) for v in per_pair.values())):
            for pair in kept_pairs:
                options = per_pair[pair]
                if round_index >= len(options):
                    continue
                alpha, temperature = options[round_index]
                pair_score = self.screen_scores_[pair]
                alpha_gain = self.alpha_scores_.get(alpha, alpha_mean) - alpha_mean
                add(
                    SelectedConfig(
                        family=pair[0],
                        capacity=pair[1],
                        temperature=temperature,
                        alpha=alpha,
                        score=pair_score + alpha_gain,
                        reason=self._reason(
                            pair, pair_score, best, tolerance, alpha, alpha_gain, meta_features
                        ),
                    )
                )
        return selected

    def _reason(
        self,
        pair: tuple[str, str],
        pair_score: float,
        best: float,
        tolerance: float,
        alpha: float,
        alpha_gain: float,
        meta: dict[str, float],
    ) -> str:
        metric = self.config.selection_metric
        where = (
            "best family x capacity"
            if pair_score >= best
            else f"within {tolerance:.3f} of the best ({best - pair_score:.3f} behind)"
        )
        small = meta.get("rows", 0) < SMALL_DATA_ROWS / (1 - self.config.validation_split)
        size_note = "; large capacity dropped on small data" if small else ""
        return (
            f"screening val {metric} {pair_score:.4f} ({where}){size_note}; "
            f"alpha {alpha:g} measured {alpha_gain:+.4f} vs mean alpha"
        )


def _score(value: Any) -> float:
    if value is None:
        return -math.inf
    value = float(value)
    return -math.inf if math.isnan(value) else value


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.4f}"
