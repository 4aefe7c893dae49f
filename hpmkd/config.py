"""``HPMConfig``: every option of a distillation run, validated.

Each field is consumed by the engine; an unknown field is an error rather than being
silently ignored, so a typo in ``--set`` or in the app never runs a different experiment
than the one asked for.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, fields
from typing import Any

from hpmkd.errors import HPMKDInputError

SELECTION_METRICS = ("ks", "auc", "accuracy", "f1", "fidelity", "rank_fidelity")
SELECTION_RULES = ("smallest_tied", "best")
STUDENT_FAMILIES = ("logreg", "tree", "lgbm", "mlp")


@dataclass(frozen=True)
class HPMConfig:
    """Configuration of an HPM-KD (or legacy) distillation run.

    Parameters
    ----------
    max_configs : int, default 16
        Most student configurations phase 1 keeps (hpm).
    n_trials : int, default 3
        Hyper-parameter trials trained per selected configuration (hpm).
    validation_split : float, default 0.2
        Share of the non-test rows held out for validation (selection, early stopping,
        chain stopping, attention weights).
    use_parallel : bool, default False
        Train candidates in parallel processes (joblib/loky, or Dask when
        ``dask_scheduler`` is set).
    use_cache : bool, default True
        Memoize teacher probabilities and fitted candidates on disk.
    use_progressive : bool, default True
        Run the progressive distillation chain (phase 2).
    use_multi_teacher : bool, default False
        Build the attention-weighted multi-teacher ensemble (phase 4).
    use_adaptive_temperature : bool, default True
        Choose temperatures from validation feedback instead of a fixed list.
    cache_size_limit_gb : float, default 2.0
        Size limit of the on-disk cache; least-recently-used entries are evicted beyond it.
    min_improvement : float, default 0.01
        The progressive chain stops when a stage improves the validation metric by less.
    selection_metric : str, default "ks"
        Validation metric that picks the best student.
    selection_rule : {"smallest_tied", "best"}, default "smallest_tied"
        ``best``: the highest validation metric. ``smallest_tied``: the smallest candidate
        not clearly worse than that one on paired bootstrap resamples of the validation
        rows (guards against the winner's curse of many candidates on few rows).
    time_budget_s : float or None, default None
        No new candidate starts after this many seconds; the best so far is kept.
    n_jobs : int, default 2
        Worker processes when ``use_parallel`` is on.
    dask_scheduler : str or None, default None
        Address of a Dask scheduler; when set with ``use_parallel`` candidates train there.
    use_memory : bool, default True
        Record runs in, and warm-start from, the shared optimization memory.
    memory_dir : str or None, default None
        Directory of the optimization memory; defaults to ``$HPMKD_HOME/memory``.
    cache_dir : str or None, default None
        Directory of the cache; defaults to ``$HPMKD_HOME/cache``.
    families : tuple of str, default ("logreg", "tree", "lgbm", "mlp")
        Student families searched.
    temperatures : tuple of float, default (1.0, 2.0, 4.0)
        Temperatures of the legacy grid and the starting points of the scheduler.
    alphas : tuple of float, default (0.9, 0.5, 0.1)
        Weight of the teacher's soft targets against the true labels (1 = teacher only).
    max_chain_stages : int, default 4
        Most stages of the progressive chain.
    """

    max_configs: int = 16
    n_trials: int = 3
    validation_split: float = 0.2
    use_parallel: bool = False
    use_cache: bool = True
    use_progressive: bool = True
    use_multi_teacher: bool = False
    use_adaptive_temperature: bool = True
    cache_size_limit_gb: float = 2.0
    min_improvement: float = 0.01
    selection_metric: str = "ks"
    selection_rule: str = "smallest_tied"
    time_budget_s: float | None = None
    n_jobs: int = 2
    dask_scheduler: str | None = None
    use_memory: bool = True
    memory_dir: str | None = None
    cache_dir: str | None = None
    families: tuple[str, ...] = STUDENT_FAMILIES
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0)
    alphas: tuple[float, ...] = (0.9, 0.5, 0.1)
    max_chain_stages: int = 4

    def __post_init__(self) -> None:
        # Tuples keep the config hashable and frozen even when lists are passed.
        for name in ("families", "temperatures", "alphas"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = tuple(v for v in value.split(",") if v)
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, why: str) -> HPMKDInputError:
            return HPMKDInputError(f"HPMConfig.{name}={getattr(self, name)!r} is invalid: {why}.")

        if not (isinstance(self.max_configs, int) and 1 <= self.max_configs <= 64):
            raise bad("max_configs", "use a whole number from 1 to 64")
        if not (isinstance(self.n_trials, int) and 1 <= self.n_trials <= 20):
            raise bad("n_trials", "use a whole number from 1 to 20")
        if not 0.05 <= float(self.validation_split) <= 0.5:
            raise bad("validation_split", "use a share between 0.05 and 0.5")
        if float(self.cache_size_limit_gb) <= 0:
            raise bad("cache_size_limit_gb", "use a positive number of gigabytes")
        if not 0 <= float(self.min_improvement) < 1:
            raise bad("min_improvement", "use a number in [0, 1)")
        if self.selection_metric not in SELECTION_METRICS:
            raise bad("selection_metric", f"choose one of {', '.join(SELECTION_METRICS)}")
        if self.selection_rule not in SELECTION_RULES:
            raise bad("selection_rule", f"choose one of {', '.join(SELECTION_RULES)}")
        if self.time_budget_s is not None and float(self.time_budget_s) <= 0:
            raise bad("time_budget_s", "use a positive number of seconds or leave it unset")
        if not (isinstance(self.n_jobs, int) and self.n_jobs >= 1):
            raise bad("n_jobs", "use a whole number of at least 1")
        unknown = [f for f in self.families if f not in STUDENT_FAMILIES]
        if unknown or not self.families:
            raise bad("families", f"choose from {', '.join(STUDENT_FAMILIES)}")
        if not self.temperatures or any(t <= 0 for t in self.temperatures):
            raise bad("temperatures", "use one or more positive temperatures")
        if not self.alphas or any(not 0 <= a <= 1 for a in self.alphas):
            raise bad("alphas", "use one or more weights in [0, 1]")
        if not (isinstance(self.max_chain_stages, int) and 1 <= self.max_chain_stages <= 10):
            raise bad("max_chain_stages", "use a whole number from 1 to 10")

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the public fields, in declaration order."""
        return [f.name for f in fields(cls) if not f.name.startswith("_")]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HPMConfig:
        """Build a config from a mapping, refusing unknown keys.

        Values given as strings (from ``--set KEY=VALUE`` or a form) are converted to
        the field's type.
        """
        known = set(cls.field_names())
        for key in values:
            if key not in known:
                raise HPMKDInputError(_unknown_message(key))
        defaults = cls()
        converted = {k: _convert(k, v, getattr(defaults, k)) for k, v in values.items()}
        return cls(**converted)

    def with_updates(self, **changes: Any) -> HPMConfig:
        """Return a copy with ``changes`` applied (validated like ``from_dict``)."""
        return HPMConfig.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """The public fields as a plain, JSON-friendly dict."""
        out = {}
        for name in self.field_names():
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


def _unknown_message(key: str) -> str:
    close = difflib.get_close_matches(key, HPMConfig.field_names(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (
        f"HPMConfig has no field {key!r}.{hint} Known fields: {', '.join(HPMConfig.field_names())}."
    )


def _convert(key: str, value: Any, default: Any) -> Any:
    """Convert a string value to the type of the field's default."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if isinstance(default, bool):
            lowered = text.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError("not a boolean")
        if text.lower() in {"none", "null", ""} and key in _OPTIONAL_FIELDS:
            return None
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float) or key in {"time_budget_s"}:
            return float(text)
        if isinstance(default, tuple):
            items = [t.strip() for t in text.split(",") if t.strip()]
            return tuple(float(t) for t in items) if key != "families" else tuple(items)
    except ValueError as exc:
        raise HPMKDInputError(
            f"HPMConfig.{key}: cannot read {value!r} as {type(default).__name__}. "
            f"Give a value like {default!r}."
        ) from exc
    return text


_OPTIONAL_FIELDS = {f.name for f in dataclasses.fields(HPMConfig) if f.default is None}
_dataclass_init = HPMConfig.__init__


def _checked_init(self: HPMConfig, *args: Any, **kwargs: Any) -> None:
    # The generated __init__ would raise a bare TypeError; say which field and suggest one.
    for key in kwargs:
        if key not in HPMConfig.__dataclass_fields__:
            raise HPMKDInputError(_unknown_message(key))
    _dataclass_init(self, *args, **kwargs)


_checked_init.__doc__ = _dataclass_init.__doc__
HPMConfig.__init__ = _checked_init  # type: ignore[method-assign]
