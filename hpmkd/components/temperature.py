"""``MetaTemperatureScheduler``: distillation temperatures chosen from validation feedback.

Every trained candidate reports ``(family, capacity, alpha, parameters, temperature,
validation score)``. A temperature effect is only read where nothing else varies: scores
are compared within groups of *identical* configurations (same family, capacity, alpha
and hyper-parameters) measured at two or more temperatures, as the residual from the
group's mean. Phase 1 measures such a group on purpose (the temperature sweep of
:class:`~hpmkd.components.config_manager.AdaptiveConfigurationManager`); candidates at
alpha 0 carry no temperature information and are ignored.

The scheduler suggests the next temperature for a family:

1. with no comparable feedback, or feedback whose spread is within the sampling noise of
   the metric (``noise``), it cycles the fixed starting grid and says so;
2. otherwise it fits a quadratic in ``log T`` to the residuals (weighted least squares,
   the best scores dominate) and takes its maximum, kept within the measured range
   widened by a factor of two; a fit without a maximum falls back to the best measured
   temperature.

Each suggestion carries the reason and the feedback it used, so the temperature of every
candidate is explained in the results. With ``adaptive=False`` the scheduler cycles the
fixed grid and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

T_MIN, T_MAX = 0.5, 16.0


@dataclass(frozen=True)
class TemperatureDecision:
    """A suggested temperature, why, and the measured feedback behind it."""

    temperature: float
    reason: str
    feedback: dict[float, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for the run record."""
        return {
            "temperature": self.temperature,
            "reason": self.reason,
            "feedback": {f"{t:g}": s for t, s in sorted(self.feedback.items())},
        }


class MetaTemperatureScheduler:
    """Suggest temperatures per student family from observed validation scores.

    Parameters
    ----------
    start : sequence of float
        The starting grid explored first (e.g. ``HPMConfig.temperatures``).
    adaptive : bool
        ``False`` cycles ``start`` without using feedback.
    """

    def __init__(
        self,
        start: tuple[float, ...] = (1.0, 2.0, 4.0),
        adaptive: bool = True,
        noise: float = 0.0,
    ) -> None:
        self.start = tuple(float(t) for t in start)
        self.adaptive = adaptive
        self.noise = float(noise)
        self._observations: list[tuple[str, tuple, float, float]] = []
        self._cycle = 0

    def observe(
        self,
        family: str,
        temperature: float,
        score: float,
        capacity: str = "",
        alpha: float | None = None,
        params: str = "",
    ) -> None:
        """Record a measured validation score (higher is better; NaN and alpha 0, where
        the temperature has no effect, are ignored). ``capacity``, ``alpha`` and
        ``params`` (any text identifying the hyper-parameters and rows) define which
        scores are comparable."""
        if score is None or math.isnan(score) or alpha == 0:
            return
        group = (family, capacity, alpha, params)
        self._observations.append((family, group, float(temperature), float(score)))

    def feedback(self, family: str | None = None) -> dict[float, float]:
        """Mean score residual at each measured temperature, within groups of identical
        configurations measured at two or more temperatures (one family or all)."""
        groups: dict[tuple, list[tuple[float, float]]] = {}
        for fam, group, t, s in self._observations:
            if family is None or fam == family:
                groups.setdefault(group, []).append((t, s))
        sums: dict[float, list[float]] = {}
        for items in groups.values():
            if len({t for t, _ in items}) < 2:
                continue
            mean = float(np.mean([s for _, s in items]))
            for t, s in items:
                sums.setdefault(t, []).append(s - mean)
        return {t: float(np.mean(v)) for t, v in sums.items()}

    def _grid(self, reason: str, data: dict[float, float]) -> TemperatureDecision:
        t = self.start[self._cycle % len(self.start)]
        self._cycle += 1
        return TemperatureDecision(t, reason, data)

    def suggest(self, family: str) -> TemperatureDecision:
        """The temperature to train the next ``family`` student with."""
        if not self.adaptive:
            return self._grid("fixed grid (use_adaptive_temperature is off)", {})
        own = self.feedback(family)
        scope, data = (family, own) if len(own) >= 2 else ("all families", self.feedback())
        if len(data) < 2:
            return self._grid(
                "no comparable feedback (no configuration measured at two temperatures "
                "with nothing else changed): fixed grid",
                data,
            )
        spread = max(data.values()) - min(data.values())
        if spread <= self.noise:
            return self._grid(
                f"no signal: temperature effects ({scope}) span {spread:.4f}, within the "
                f"metric's sampling noise {self.noise:.4f}: fixed grid",
                data,
            )
        return self._exploit(data, scope)

    def _exploit(self, data: dict[float, float], scope: str) -> TemperatureDecision:
        temps = np.array(sorted(data))
        scores = np.array([data[t] for t in temps])
        best_t = float(temps[int(np.argmax(scores))])
        if len(temps) >= 3 and np.ptp(scores) > 0:
            x = np.log(temps)
            # Weights favour the neighbourhood of the best scores.
            w = np.exp((scores - scores.max()) / max(np.ptp(scores), 1e-9) * 2.0)
            a, b, _ = np.polyfit(x, scores, 2, w=w)
            if a < 0:
                peak = float(np.exp(-b / (2 * a)))
                low = max(T_MIN, float(temps.min()) / 2)
                high = min(T_MAX, float(temps.max()) * 2)
                t = float(np.clip(peak, low, high))
                t = round(t, 2)
                return TemperatureDecision(
                    t,
                    f"quadratic fit of val score residuals over log T ({scope}) peaks at "
                    f"T={t:g}; best measured T={best_t:g} ({data[best_t]:+.4f})",
                    data,
                )
        return TemperatureDecision(
            best_t,
            f"best measured T={best_t:g} ({scope}: val score residual {data[best_t]:+.4f})",
            data,
        )
