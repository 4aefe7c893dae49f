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
   :class:`~hpmkd.components.memory.SharedOptimizationMemory`) go first, within this
   run's search space (a family, alpha, or with ``use_adaptive_temperature`` off a
   temperature, this run does not search is not used). Every stored field is used: the
   family, capacity and alpha make the configuration; the past validation score is its
   score and reason; the temperature is that of the configuration's first trial (with
   the adaptive scheduler, which sets the later trials'; without it, every trial's). Two
   stored settings that differ only in temperature are one configuration of the
   scheduler: they are merged into one whose first trials take their temperatures in
   turn (at most ``n_trials``; at alpha 0, where the temperature does nothing, they are
   simply one setting). What became of each stored setting is in
   :attr:`AdaptiveConfigurationManager.warm_use_`.

Each kept configuration records the reason it was kept.
"""

from __future__ import annotations

import dataclasses
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
    ``start_temperatures`` are then the temperatures of the first trials, in order, before
    the scheduler takes over (a warm-started setting's stored temperatures); ``source_run``
    is the id of the past run a warm-started configuration came from."""

    family: str
    capacity: str
    temperature: float | None
    alpha: float
    score: float
    reason: str
    warm_started: bool = False
    source_run: str | None = None
    start_temperatures: tuple[float, ...] = ()

    def label(self) -> str:
        """Short name, e.g. ``lgbm-medium a=0.5 T=auto``, ``lgbm-medium a=0.5 T=4,1,auto``
        (trials 0 and 1 at the stored temperatures 4 and 1, the scheduler's after)."""
        if self.temperature is not None:
            t = f"{self.temperature:g}"
        else:
            t = ",".join([*(f"{x:g}" for x in self.start_temperatures), "auto"])
        return f"{self.family}-{self.capacity} a={self.alpha:g} T={t}"

    def key(self) -> tuple:
        """What makes two configurations the same: family, capacity, alpha and the
        fixed temperature (``None`` when the scheduler sets it, and at alpha 0, where
        the temperature changes nothing)."""
        t = None if self.alpha == 0 else self.temperature
        return (self.family, self.capacity, t, self.alpha)

    def trial_temperature(self, trial: int) -> float | None:
        """The temperature of ``trial`` if the configuration fixes it (its temperature,
        or a start temperature), else ``None`` (the scheduler's)."""
        if self.temperature is not None:
            return self.temperature
        if trial < len(self.start_temperatures):
            return self.start_temperatures[trial]
        return None

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
            "start_temperatures": list(self.start_temperatures),
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
        #: After :meth:`select`: what became of each warm-start setting offered, in order
        #: ("trained as ...", "merged into ...", "not used: ..."), with the reason.
        self.warm_use_: list[str] = []

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
        :meth:`screen`).

        Parameters
        ----------
        meta_features : dict
            Of this run's dataset (for the reasons).
        warm_configs : tuple of dict
            Stored settings to try first (``WarmStart.configs``), best first.
        warm_reason : str
            Why they are offered (``WarmStart.reason``).

        Returns
        -------
        list of SelectedConfig
            Warm-started configurations first; :attr:`warm_use_` says what became of
            each of ``warm_configs``.
        """
        cfg = self.config
        adaptive_t = cfg.use_adaptive_temperature
        selected: list[SelectedConfig] = []
        seen: set[tuple] = set()

        def add(item: SelectedConfig) -> None:
            key = item.key()
            if key not in seen and len(selected) < cfg.max_configs:
                seen.add(key)
                selected.append(item)

        selected.extend(self._warm(warm_configs, warm_reason))
        seen.update(c.key() for c in selected)

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

    def _warm(self, warm_configs: tuple[dict, ...], warm_reason: str) -> list[SelectedConfig]:
        """The configurations of the warm-start settings, in order; fills
        :attr:`warm_use_` (see the module docstring, step 4)."""
        cfg = self.config
        adaptive_t = cfg.use_adaptive_temperature
        out: list[SelectedConfig] = []
        # Per stored setting: index into ``out`` (None: not used), a sentence or the verb
        # "trained as" / "merged into", and the trial its temperature starts (or None).
        fate: list[tuple[int | None, str, int | None]] = []
        for warm in warm_configs:
            why_not = self._outside(warm)
            if why_not:
                fate.append((None, f"not used: {why_not}", None))
                continue
            alpha, t = float(warm["alpha"]), float(warm.get("temperature", 1.0))
            score = warm.get("val_score")
            item = SelectedConfig(
                family=warm["family"],
                capacity=warm["capacity"],
                temperature=None if adaptive_t else t,
                alpha=alpha,
                score=_score(score),
                reason=f"{warm_reason}; that run's val score {_fmt(score)}",
                warm_started=True,
                source_run=warm.get("run_id"),
            )
            index = next((i for i, c in enumerate(out) if c.key() == item.key()), None)
            if index is None and len(out) >= cfg.max_configs:
                fate.append((None, f"not used: the max_configs={cfg.max_configs} slots are "
                             "taken by stored settings ranked before it", None))
                continue
            verb = "merged into" if index is not None else "trained as"
            if index is None:
                out.append(item)
                index = len(out) - 1
            trial = None
            first = out[index]
            if first.temperature is None and alpha > 0 and len(first.start_temperatures) < (
                cfg.n_trials
            ):
                # The scheduler's configuration: the stored temperature is the next trial's.
                trial = len(first.start_temperatures)
                also = "" if verb == "trained as" else (
                    f"; also its setting at T={t:g} (val score {_fmt(score)})"
                )
                out[index] = dataclasses.replace(
                    first, start_temperatures=(*first.start_temperatures, t),
                    reason=first.reason + also,
                )
            fate.append((index, verb, trial))
        self.warm_use_ = [
            self._warm_use(warm, out[index] if index is not None else None, text, trial)
            for warm, (index, text, trial) in zip(warm_configs, fate, strict=True)
        ]
        return out

    def _outside(self, warm: dict) -> str:
        """Why stored setting ``warm`` lies outside this run's search space ("" if it
        does not): a setting the person left out is not brought back by the memory."""
        cfg = self.config
        family, capacity = warm.get("family"), warm.get("capacity")
        if family not in cfg.families:
            return f"family {family!r} is not searched (families={','.join(cfg.families)})"
        if capacity not in CAPACITIES:
            return f"capacity {capacity!r} is not one of {', '.join(CAPACITIES)}"
        alpha = float(warm.get("alpha", math.nan))
        if alpha not in cfg.alphas:
            return (
                f"alpha {alpha:g} is not searched "
                f"(alphas={','.join(f'{a:g}' for a in cfg.alphas)})"
            )
        t = float(warm.get("temperature", 1.0))
        if not cfg.use_adaptive_temperature and alpha > 0 and t not in cfg.temperatures:
            return (
                f"temperature {t:g} is not searched (use_adaptive_temperature is off, "
                f"temperatures={','.join(f'{x:g}' for x in cfg.temperatures)})"
            )
        return ""

    def _warm_use(
        self, warm: dict, config: SelectedConfig | None, verb: str, trial: int | None
    ) -> str:
        """One sentence: what became of stored setting ``warm`` (see :meth:`_warm`)."""
        if config is None:
            return verb
        t = float(warm.get("temperature", 1.0))
        where = f"{verb} {config.label()}"
        if verb == "merged into":
            where += " (the same family, capacity and alpha"
            where += ")" if config.alpha == 0 or config.temperature is not None else (
                ", whose temperatures the scheduler sets: one configuration)"
            )
        if config.alpha == 0:
            return (
                f"{where}; its temperature {t:g} is not used: alpha 0 learns from the "
                "labels only, which no temperature changes"
            )
        if config.temperature is not None:
            return f"{where}; every trial at its temperature {t:g}"
        if trial is None:
            return (
                f"{where}; its temperature {t:g} is not used: all n_trials="
                f"{self.config.n_trials} trial(s) start at stored temperatures already"
            )
        after = _scheduler_after(config, self.config.n_trials)
        return f"{where}; its temperature {t:g} is trial {trial}'s{after}"


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


def _scheduler_after(config: SelectedConfig, n_trials: int) -> str:
    """The trials of ``config`` without a stored temperature, as the words
    ``" (the scheduler sets trials 1 to 2)"`` ("" when every trial has one)."""
    first = len(config.start_temperatures)
    if first >= n_trials:
        return ""
    trials = f"trial {first}" if first == n_trials - 1 else f"trials {first} to {n_trials - 1}"
    return f" (the scheduler sets {trials})"
