"""The ``legacy`` method: a plain grid of family x temperature x alpha, no adaptive parts."""

from __future__ import annotations

import itertools

from hpmkd.base import BaseDistiller
from hpmkd.students import StudentSpec, trial_params


class LegacyDistiller(BaseDistiller):
    """Every combination of ``config.families x config.temperatures x config.alphas`` at
    medium capacity, each trained once on soft targets; best by the validation metric.

    Uses the config fields ``families, temperatures, alphas, validation_split,
    selection_metric, time_budget_s``; the hpm-only switches do not apply.
    """

    method = "legacy"
    search_phases = ("grid",)

    def grid(self) -> list[StudentSpec]:
        """The candidate specs, in training order."""
        cfg = self.config
        n_train = len(self.split.train)
        return [
            StudentSpec(
                family=family,
                capacity="medium",
                temperature=t,
                alpha=a,
                trial=0,
                params=trial_params(family, "medium", 0, n_train, self.random_state),
            )
            for family, t, a in itertools.product(cfg.families, cfg.temperatures, cfg.alphas)
        ]

    def _search(self) -> None:
        specs = self.grid()
        with self.phase("grid", f"training {len(specs)} grid candidates"):
            for spec in specs:
                if self.budget_exhausted():
                    break
                self.train(spec, source="grid")
