"""``MetaTemperatureScheduler``: distillation temperatures chosen from validation feedback.

Every trained candidate reports ``(family, capacity, temperature, validation score)``.
Scores of different capacities are not comparable (a larger student scores higher at any
temperature), so feedback is the score's *residual* within its family x capacity group
(score minus the group's mean); groups with one measurement carry no information about
temperature and are left out. The scheduler suggests the next temperature for a family:

1. explore: while fewer than three distinct temperatures have been measured (for the
   family, else overall), take the next untried value of the starting grid;
2. exploit: otherwise fit a quadratic in ``log T`` to the measured scores (weighted
   least squares, the best scores dominate) and take its maximum, kept within the
   measured range widened by a factor of two; a fit without a maximum (convex or flat)
   falls back to the best measured temperature.

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

    def __init__(self, start: tuple[float, ...] = (1.0, 2.0, 4.0), adaptive: bool = True):
        self.start = tuple(float(t) for t in start)
        self.adaptive = adaptive
        self._observations: list[tuple[str, str, float, float]] = []
        self._cycle = 0

    def observe(self, family: str, temperature: float, score: float, capacity: str = "") -> None:
        """Record a measured validation score (higher is better; NaN is ignored)."""
        if score is None or math.isnan(score):
            return
        self._observations.append((family, capacity, float(temperature), float(score)))

    def feedback(self, family: str | None = None) -> dict[float, float]:
        """Mean score residual (within family x capacity) at each measured temperature,
        for one family or all."""
        groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for fam, cap, t, s in self._observations:
            if family is None or fam == family:
                groups.setdefault((fam, cap), []).append((t, s))
        sums: dict[float, list[float]] = {}
        for items in groups.values():
            if len(items) < 2:
                continue
            mean = float(np.mean([s for _, s in items]))
            for t, s in items:
                sums.setdefault(t, []).append(s - mean)
        return {t: float(np.mean(v)) for t, v in sums.items()}

    def suggest(self, family: str) -> TemperatureDecision:
        """The temperature to train the next ``family`` student with."""
        if not self.adaptive:
            t = self.start[self._cycle % len(self.start)]
            self._cycle += 1
            return TemperatureDecision(t, "fixed grid (use_adaptive_temperature is off)")
        own = self.feedback(family)
        scope, data = (family, own) if len(own) >= 3 else ("all families", self.feedback())
        measured = {t for fam, _, t, _ in self._observations if fam == family}
        untried = [t for t in self.start if t not in measured]
        if len(measured) < 3 and untried:
            return TemperatureDecision(
                untried[0],
                f"explore: T={untried[0]:g} not yet measured for {family} "
                f"({len(measured)} measured)",
                data,
            )
        if len(data) < 2:
            # Measured, but never twice at one capacity: no comparable feedback yet.
            t = self.start[len(self._observations) % len(self.start)]
            return TemperatureDecision(
                t,
                "no comparable feedback yet (each capacity measured once): cycle the grid",
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
