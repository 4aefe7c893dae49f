"""``HPMConfig``: every option of a distillation run, validated.

Each field is consumed by the engine; an unknown field is an error rather than being
silently ignored, so a typo in ``--set`` or in the app never runs a different experiment
than the one asked for.

Each field carries a :class:`~hpmkd.fieldspec.FieldSpec` (kind, bounds, choices, label,
help, the methods that use it) in its dataclass metadata. The validator below, the
``hpmkd distill --help`` text (:func:`settings_help`) and the app's form all read those
specs, so a bound or a label is written once, at the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import sys
from dataclasses import dataclass, fields
from typing import Any

from hpmkd.errors import HPMKDInputError
from hpmkd.fieldspec import (
    HPM_AND_LEGACY,
    FieldSpec,
    docstring_parameters,
    format_value,
    help_text,
)

SELECTION_METRICS = ("ks", "auc", "accuracy", "f1", "fidelity", "rank_fidelity")
SELECTION_RULES = ("smaller_if_noninferior", "best")
STUDENT_FAMILIES = ("logreg", "tree", "lgbm", "mlp")
TEACHER_REFITS = ("none", "oof")
FINAL_FITS = ("auto", "on", "off")
_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])"
)
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
#: The forms of a Dask scheduler address: ``tcp://``, ``tls://``, ``ucx://``, ``ws://`` or
#: ``wss://`` with a host name, IPv4 or bracketed IPv6 address and an optional port;
#: ``inproc://`` with Dask's in-process address; or a bare ``host:port`` (Dask reads it as
#: tcp). A mistyped address is refused here rather than by a connection timeout mid-run.
DASK_ADDRESS = (
    rf"(?:(?:tcp|tls|ucx|ws|wss)://{_HOST}(?::{_PORT})?"
    rf"|inproc://[^\s/]+(?:/[^\s/]+)*"
    rf"|{_HOST}:{_PORT})"
)


def _setting(default: Any, kind: str, label: str, help: str, **constraints: Any) -> Any:
    """A dataclass field with ``default`` whose metadata holds its :class:`FieldSpec`."""
    spec = FieldSpec(kind=kind, label=label, help=help, **constraints)
    return dataclasses.field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class HPMConfig:
    """Configuration of an HPM-KD (or legacy) distillation run.

    Every field is described by its :class:`~hpmkd.fieldspec.FieldSpec`
    (:meth:`field_specs`); the ``Parameters`` section below is generated from them.
    """

    max_configs: int = _setting(
        16, "int", "Student configurations kept",
        "Most student configurations phase 1 keeps from the ranked candidate space. "
        "Raise it for a wider search; lower it for a faster run.",
        min=1, max=64,
    )
    n_trials: int = _setting(
        3, "int", "Trials per configuration",
        "Hyper-parameter trials trained for each kept configuration. More trials tune "
        "capacity more finely and take proportionally longer.",
        min=1, max=20,
    )
    validation_split: float = _setting(
        0.2, "float", "Validation share",
        "Share of the non-test rows held out for validation (selection, early stopping, "
        "chain stopping, attention weights). Raise it on small tables when the chosen "
        "student changes from run to run.",
        min=0.05, max=0.5, unit="share", methods=HPM_AND_LEGACY,
    )
    use_parallel: bool = _setting(
        False, "bool", "Parallel training",
        "Train candidates in parallel worker processes (joblib/loky, or Dask when a "
        "scheduler is set). Worth it when there are many candidates and spare cores.",
    )
    use_cache: bool = _setting(
        True, "bool", "Disk cache",
        "Memoize teacher probabilities and fitted candidates on disk, so a repeated run "
        "skips the work. Turn it off to recompute everything.",
    )
    use_progressive: bool = _setting(
        True, "bool", "Progressive chain",
        "Run the progressive distillation chain (phase 2): students trained one after "
        "another, each learning from the teacher and the stage before it.",
    )
    use_multi_teacher: bool = _setting(
        False, "bool", "Multi-teacher ensemble",
        "Build the attention-weighted multi-teacher ensemble (phase 4) from the teachers "
        "and the strongest candidates. Costs extra time; most useful with several teachers. "
        "Its student learns from the fused soft targets, so it needs an alpha above 0.",
        requires=("alphas>0",),
    )
    use_adaptive_temperature: bool = _setting(
        True, "bool", "Adaptive temperature",
        "Choose temperatures from validation feedback instead of trying the fixed list. "
        "Temperatures soften soft targets, so it needs an alpha above 0.",
        requires=("alphas>0",),
    )
    cache_size_limit_gb: float = _setting(
        2.0, "float", "Cache size limit (GB)",
        "Size limit of the on-disk cache; least-recently-used entries are evicted beyond it.",
        min=0.01, unit="number of gigabytes", server=True, requires=("use_cache",),
    )
    min_improvement: float = _setting(
        0.01, "float", "Smallest gain of a chain stage",
        "The progressive chain stops when a stage improves the validation metric by less. "
        "Lower it to let the chain grow longer. A chain of one stage has nothing to compare.",
        min=0, max=1, max_inclusive=False, requires=("use_progressive", "max_chain_stages>1"),
    )
    selection_metric: str = _setting(
        "ks", "choice", "Selection metric",
        "Validation metric that picks the best student: ks (max (TPR - FPR)), auc, "
        "accuracy, f1, fidelity (same class as the teacher) or rank_fidelity (Spearman "
        "correlation with the teacher's scores).",
        choices=SELECTION_METRICS, methods=HPM_AND_LEGACY,
    )
    selection_rule: str = _setting(
        "smaller_if_noninferior", "choice", "Selection rule",
        "best: the highest validation metric. smaller_if_noninferior: that candidate, unless "
        "one at least min_saving times smaller is non-inferior to it within "
        "noninferiority_margin (one-sided bound on paired bootstrap resamples of the "
        "validation rows, Bonferroni over the candidates compared).",
        choices=SELECTION_RULES, methods=HPM_AND_LEGACY,
    )
    time_budget_s: float | None = _setting(
        None, "optional_float", "Time budget (seconds)",
        "No new candidate starts after this many seconds; the best so far is kept. "
        "Unset: no limit.",
        min=0, min_inclusive=False, unit="number of seconds", methods=HPM_AND_LEGACY,
    )
    n_jobs: int = _setting(
        2, "int", "Worker processes",
        "Worker processes when parallel training is on. More than the machine's cores "
        "only adds overhead.",
        min=1, max=256, server=True, requires=("use_parallel",),
    )
    dask_scheduler: str | None = _setting(
        None, "optional_str", "Dask scheduler address",
        "Address of a Dask scheduler (tcp://host:8786); with parallel training on, "
        "candidates train there. Needs the hpmkd[dask] extra. Unset: local processes.",
        server=True, requires=("use_parallel",), pattern=DASK_ADDRESS,
        unit="Dask scheduler address (tcp://host:port, tls://host:port, inproc://..., "
        "or host:port)",
    )
    use_memory: bool = _setting(
        True, "bool", "Optimization memory",
        "Record runs in, and warm-start from, the shared memory of past runs on similar "
        "tables. Turn it off for a run that neither learns from nor adds to the past.",
    )
    memory_dir: str | None = _setting(
        None, "optional_str", "Memory folder",
        "Folder of the optimization memory. Unset: $HPMKD_HOME/memory.",
        server=True, requires=("use_memory",), unit="folder path",
    )
    cache_dir: str | None = _setting(
        None, "optional_str", "Cache folder",
        "Folder of the disk cache. Unset: $HPMKD_HOME/cache.",
        server=True, requires=("use_cache",), unit="folder path",
    )
    families: tuple[str, ...] = _setting(
        STUDENT_FAMILIES, "multi_choice", "Student families",
        "Student model families searched: logistic regression (logreg), decision tree "
        "(tree), LightGBM (lgbm) and a small neural network (mlp). Drop the ones a "
        "deployment cannot take.",
        choices=STUDENT_FAMILIES, methods=HPM_AND_LEGACY,
    )
    temperatures: tuple[float, ...] = _setting(
        (1.0, 2.0, 4.0), "float_list", "Temperatures",
        "Temperatures that soften the teacher's probabilities: the legacy grid, and the "
        "starting points of the adaptive scheduler. Only soft targets are softened, so "
        "they need an alpha above 0.",
        min=0, min_inclusive=False, unit="temperatures", methods=HPM_AND_LEGACY,
        requires=("alphas>0",),
    )
    alphas: tuple[float, ...] = _setting(
        (0.9, 0.5, 0.1, 0.0), "float_list", "Teacher weights (alpha)",
        "Weight of the teacher's soft targets against the true labels (1 = teacher only, "
        "0 = labels only). Soft targets do not always help, so the default spans both and "
        "includes 0: when the teacher does not help, a hard-label student wins.",
        min=0, max=1, unit="weights", methods=HPM_AND_LEGACY,
    )
    max_chain_stages: int = _setting(
        4, "int", "Most chain stages",
        "Most stages of the progressive chain; it usually stops earlier on min_improvement.",
        min=1, max=10, requires=("use_progressive",),
    )
    min_saving: float = _setting(
        2.0, "float", "Smallest saving worth a smaller student",
        "With smaller_if_noninferior, a candidate replaces the top validation candidate only "
        "if it is at least this many times smaller (pickled size) and non-inferior.",
        min=1, min_inclusive=False, max=1000, unit="ratio", methods=HPM_AND_LEGACY,
        requires=("selection_rule=smaller_if_noninferior",),
    )
    noninferiority_margin: float = _setting(
        0.01, "float", "Non-inferiority margin",
        "With smaller_if_noninferior, how much lower (in the selection metric) a smaller "
        "candidate may score than the top one and still count as non-inferior.",
        min=0, max=0.2, unit="difference", methods=HPM_AND_LEGACY,
        requires=("selection_rule=smaller_if_noninferior",),
    )
    teacher_refit: str = _setting(
        "none", "choice", "Teacher refit",
        "none: students learn from the teacher's probabilities as given. oof: for a "
        "teacher that may have seen the rows (hpmkd warns when it looks so), refit clones "
        "of a cloneable teacher (a scikit-learn estimator or Pipeline, also from a file) "
        "on teacher_refit_folds - 1 folds of the training rows; students learn from the "
        "out-of-fold probabilities, and the teacher's validation and test scores come "
        "from a clone fitted on the training rows only. Costs teacher_refit_folds + 1 "
        "teacher fits.",
        choices=TEACHER_REFITS, methods=HPM_AND_LEGACY,
    )
    teacher_refit_folds: int = _setting(
        5, "int", "Teacher refit folds",
        "Folds K of teacher_refit=\"oof\": each training row's soft target comes from a "
        "clone fitted on the other K - 1 folds. More folds: clones closer to the teacher, "
        "proportionally more time.",
        min=2, max=20, methods=HPM_AND_LEGACY, requires=("teacher_refit=oof",),
    )
    max_capacity_steps: int = _setting(
        4, "int", "Capacity rungs above large",
        "While the best student is still clearly below the teacher on validation (paired "
        "bootstrap) and the largest capacity still improves, phase 3 trains bigger "
        "students one rung at a time (more trees and leaves, hidden units, depth), up to "
        "this many rungs above 'large'. 0 turns the climb off.",
        min=0, max=8,
    )
    min_compression: float = _setting(
        5.0, "float", "Smallest teacher/student size ratio",
        "A student from the capacity climb must be at least this many times smaller than "
        "the teacher (pickled size); the climb stops at the rung that would break it. "
        "Without a teacher model (probability columns) its size is unknown and only "
        "max_capacity_steps bounds the climb.",
        min=1, max=1000, unit="ratio", requires=("max_capacity_steps>0",),
    )
    final_fit: str = _setting(
        "auto", "choice", "Final fit on training + validation rows",
        "After the selection, fit the selected student and its hard-label twin once more, "
        "same configuration and seed, on the training and validation rows together (a "
        "quarter more rows at the default validation share), keeping the calibration "
        "fitted on validation for the train-only fit; validation figures stay the "
        "train-only fit's, the test figures and the download are the final fit's. auto: "
        "up to 50,000 training rows (above, where the search trains on subsamples for "
        "speed, the two extra full-size fits are left out); on: always; off: never.",
        choices=FINAL_FITS, methods=HPM_AND_LEGACY,
    )

    def __post_init__(self) -> None:
        for spec in _SPECS.values():
            object.__setattr__(self, spec.name, _normalize(spec, getattr(self, spec.name)))
        self._validate()
        # Real-number fields hold floats (an int such as time_budget_s=60 was accepted).
        for spec in _SPECS.values():
            value = getattr(self, spec.name)
            if spec.kind in ("float", "optional_float") and value is not None:
                object.__setattr__(self, spec.name, float(value))
            elif spec.kind == "float_list":
                object.__setattr__(self, spec.name, tuple(float(v) for v in value))

    def _validate(self) -> None:
        # Every constraint lives in the field specs; no field needs a bespoke check today.
        for spec in _SPECS.values():
            value = getattr(self, spec.name)
            if not spec.has_type(value):
                raise HPMKDInputError(_type_message(spec, value))
            problem = None if value is None else spec.problem(value)
            if problem is not None:
                raise HPMKDInputError(
                    f"HPMConfig.{spec.name}={value!r} is invalid: {problem}; "
                    f"{spec.requirement()}."
                )
            if not spec.accepts(value):
                raise HPMKDInputError(
                    f"HPMConfig.{spec.name}={value!r} is invalid: {spec.requirement()}."
                )

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the public fields, in declaration order."""
        return [f.name for f in fields(cls) if not f.name.startswith("_")]

    @classmethod
    def field_specs(cls) -> list[FieldSpec]:
        """The :class:`~hpmkd.fieldspec.FieldSpec` of every field, in declaration order."""
        return list(_SPECS.values())

    @classmethod
    def field_spec(cls, name: str) -> FieldSpec:
        """The :class:`~hpmkd.fieldspec.FieldSpec` of field ``name``.

        Parameters
        ----------
        name : str

        Raises
        ------
        HPMKDInputError
            ``name`` is not a field (the message suggests close names).
        """
        try:
            return _SPECS[name]
        except KeyError:
            raise HPMKDInputError(_unknown_message(name)) from None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HPMConfig:
        """Build a config from a mapping, refusing unknown keys.

        Values given as strings (from ``--set KEY=VALUE`` or a form) are converted
        according to the field's kind: ``true``/``false`` (also ``yes``/``no``,
        ``on``/``off``, ``1``/``0``), numbers, comma-separated lists. ``none`` or ``null``
        (any case) unsets an optional field (``memory_dir="none"`` is the default folder).
        Empty text and an empty item of a list (``"0.5,,0.1"``) are refused, not skipped.

        Parameters
        ----------
        values : dict
        """
        for key in values:
            if key not in _SPECS:
                raise HPMKDInputError(_unknown_message(key))
        return cls(**{k: _convert(_SPECS[k], v) for k, v in values.items()})

    def ineffective_fields(
        self, method: str, include_server: bool = True, also_used: tuple[str, ...] = ()
    ) -> list[tuple[str, str]]:
        """Fields changed from their default that have no effect on a run of ``method``.

        A field has no effect when the method does not use it (its spec's ``methods``:
        ``legacy`` ignores every hpm-only field) or when a condition it needs does not hold (its
        spec's ``requires``: ``n_jobs`` and ``dask_scheduler`` without ``use_parallel``,
        ``min_improvement`` and ``max_chain_stages`` without ``use_progressive``,
        ``min_improvement`` also with a one-stage chain (``max_chain_stages=1``),
        ``cache_dir`` and ``cache_size_limit_gb`` without ``use_cache``, ``memory_dir``
        without ``use_memory``, ``teacher_refit_folds`` unless ``teacher_refit="oof"``,
        ``min_saving`` and ``noninferiority_margin`` unless
        ``selection_rule="smaller_if_noninferior"``, ``min_compression`` with the capacity
        climb off (``max_capacity_steps=0``), and ``temperatures``,
        ``use_adaptive_temperature`` and ``use_multi_teacher`` without soft targets (no
        alpha above 0: every student learns from the labels only, which no temperature
        changes, and the ensemble's student is a copy of the best candidate).
        Fields left at their default are never listed.

        Parameters
        ----------
        method : {"hpm", "legacy"}
            The method that runs (``auto`` resolved; see ``AutoDistiller.resolve_method``).
        include_server : bool, default True
            Whether to list server fields (spec ``server=True``); the app, where the
            server sets them, leaves them out.
        also_used : tuple of str, default ()
            Fields the caller reads itself, whatever the method: the CLI caches the
            teachers' probabilities with ``use_cache``, ``cache_dir`` and
            ``cache_size_limit_gb`` before any method runs. Their switches still count.

        Returns
        -------
        list of (str, str)
            ``(field, why)`` in declaration order, e.g. ``("n_jobs", "use_parallel is
            False")``.
        """
        methods = sorted({m for spec in _SPECS.values() for m in spec.methods})
        if method not in methods:
            raise HPMKDInputError(
                f"method={method!r} is not a method that runs; use one of "
                f"{', '.join(methods)} (resolve 'auto' first)."
            )
        out = []
        for spec in _SPECS.values():
            if (spec.server and not include_server) or getattr(self, spec.name) == spec.default:
                continue
            if method not in spec.methods and spec.name not in also_used:
                out.append((spec.name, f"the {method} method does not use it"))
                continue
            unmet = [r for r in spec.requirements() if not r.holds(getattr(self, r.field))]
            if unmet:
                out.append((spec.name, " and ".join(
                    r.unmet(getattr(self, r.field)) for r in unmet
                )))
        return out

    def ineffective_messages(
        self, method: str, include_server: bool = True, also_used: tuple[str, ...] = ()
    ) -> list[str]:
        """:meth:`ineffective_fields` as sentences for a warning: what, why, what to do.

        ``"HPMConfig.n_jobs=4 has no effect: use_parallel is False; set
        use_parallel=True, or leave n_jobs at its default (2)."``

        Parameters
        ----------
        method : {"hpm", "legacy"}
        include_server : bool, default True
        also_used : tuple of str, default ()
            See :meth:`ineffective_fields`.
        """
        out = []
        for name, why in self.ineffective_fields(method, include_server, also_used):
            spec = _SPECS[name]
            if why.startswith("the "):  # the method does not use it
                fix = f"use method {' or '.join(repr(m) for m in spec.methods)}"
            else:
                fix = "set " + " and ".join(
                    r.fix(getattr(self, r.field)) for r in spec.requirements()
                    if not r.holds(getattr(self, r.field))
                )
            leave = "unset" if spec.default is None else f"at its default ({spec.default!r})"
            out.append(
                f"HPMConfig.{name}={getattr(self, name)!r} has no effect: {why}; {fix}, "
                f"or leave {name} {leave}."
            )
        return out

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


def settings_help() -> str:
    """Every field with its label, default, allowed values and methods, for CLI help.

    Returns
    -------
    str
        Plain text meant for an ``argparse`` epilog under ``RawDescriptionHelpFormatter``.
    """
    return help_text(HPMConfig.field_specs())


def _normalize(spec: FieldSpec, value: Any) -> Any:
    """The value in the Python type the spec checks, where that loses nothing.

    NumPy scalars become Python scalars, a list or array of a list field a tuple (hashable
    and frozen), a path of a text field its text. Anything else is left as given, for
    :meth:`HPMConfig._validate` to refuse by name; text is never split or parsed here
    (that is :meth:`HPMConfig.from_dict`'s job).
    """
    # NumPy is not imported for this: a value cannot be a NumPy object unless NumPy is
    # loaded already, and the command line builds configs before (or without) loading it.
    np = sys.modules.get("numpy")
    generic = np.generic if np is not None else ()
    array = (np.ndarray,) if np is not None else ()
    if isinstance(value, generic):
        value = value.item()
    if spec.kind in ("multi_choice", "float_list"):
        if isinstance(value, (list, tuple, *array)):
            value = tuple(v.item() if isinstance(v, generic) else v for v in value)
    elif spec.kind in ("str", "optional_str") and isinstance(value, os.PathLike):
        value = os.fspath(value)
    return value


def _type_message(spec: FieldSpec, value: Any) -> str:
    """Why ``value`` has the wrong type for ``spec``, and what to give instead."""
    start = f"HPMConfig.{spec.name}={value!r} is invalid"
    if spec.kind in ("multi_choice", "float_list"):
        if isinstance(value, str):
            return (
                f"{start}: a single string, not a list; pass a list such as "
                f"{_list_example(spec, value)} (comma-separated text is read only by "
                "HPMConfig.from_dict and --set)."
            )
        if isinstance(value, tuple):
            bad = next(v for v in value if not spec.has_type((v,)))
            return f"{start}: item {bad!r} is {_type_name(bad)}; {spec.requirement()}."
        return f"{start}: {_type_name(value)}, not a list; {spec.requirement()}."
    return f"{start}: {_type_name(value)}; {spec.requirement()}."


def _type_name(value: Any) -> str:
    """What a value is, in words: "a bool", "an int", "text (str)"."""
    if isinstance(value, str):
        return "text (str)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**1023:
        return "a whole number too large for a float"
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def _list_example(spec: FieldSpec, text: str) -> str:
    """The list a comma-separated ``text`` stands for (the default's when it reads as
    none): ``['lgbm']`` for ``'lgbm'``."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        example = [float(t) for t in items] if spec.kind == "float_list" else items
    except ValueError:
        example = []
    return repr(example or list(spec.default))


def _unknown_message(key: str) -> str:
    close = difflib.get_close_matches(key, HPMConfig.field_names(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (
        f"HPMConfig has no field {key!r}.{hint} Known fields: {', '.join(HPMConfig.field_names())}."
    )


# Empty text is not "unset": ``--set memory_dir=`` (a variable that expanded to nothing)
# would quietly mean the default folder; only the words unset.
_TRUE, _FALSE, _UNSET = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}, {
    "none", "null"}


def _convert(spec: FieldSpec, value: Any) -> Any:
    """Convert a string value (``--set``, a form) to the field's kind; others pass as is."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if spec.kind == "bool":
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise ValueError("not a boolean")
        if spec.optional and text.lower() in _UNSET:
            return None
        if spec.kind == "int":
            return int(text)
        if spec.kind in ("float", "optional_float"):
            return float(text)
        if spec.kind in ("float_list", "multi_choice"):
            items = [t.strip() for t in text.split(",")]
            if "" not in items:
                return (
                    tuple(float(t) for t in items) if spec.kind == "float_list"
                    else tuple(items)
                )
    except ValueError as exc:
        example = (
            ", or none to leave it unset" if spec.default is None
            else f" like {format_value(spec.default)}"
        )
        raise HPMKDInputError(
            f"HPMConfig.{spec.name}: cannot read {value!r} as {spec.allowed()}. "
            f"Give a value{example}."
        ) from exc
    if spec.kind in ("float_list", "multi_choice"):
        # "0.5,,0.1" or "0.5," is a slip, not a shorter list: refuse, never skip.
        position = [t.strip() for t in text.split(",")].index("") + 1
        raise HPMKDInputError(
            f"HPMConfig.{spec.name}: item {position} of {value!r} is empty; give the "
            f"values separated by single commas, like {format_value(spec.default)}."
        )
    return text


def _field_spec(field: dataclasses.Field) -> FieldSpec:
    # The spec is declared without its name and default; both come from the field itself
    # so they are never written twice.
    return dataclasses.replace(field.metadata["spec"], name=field.name, default=field.default)


_SPECS: dict[str, FieldSpec] = {f.name: _field_spec(f) for f in fields(HPMConfig)}
for _spec in _SPECS.values():
    for _req in _spec.requirements():
        _kind = _SPECS[_req.field].kind if _req.field in _SPECS else None
        if not ((_req.op == "=" and _kind == "bool" and _req.value is True)
                or (_req.op == "=" and _kind == "choice"
                    and _req.value in _SPECS[_req.field].choices)
                or (_req.op == ">" and _kind in ("int", "float", "float_list"))):
            raise TypeError(
                f"HPMConfig.{_spec.name} requires {_req.text()}, which is neither a switch, "
                "a value of a choice field, nor a bound of a number or list field"
            )
HPMConfig.__doc__ = (
    inspect.cleandoc(HPMConfig.__doc__ or "") + "\n\n" + docstring_parameters(_SPECS.values())
)
_dataclass_init = HPMConfig.__init__


def _checked_init(self: HPMConfig, *args: Any, **kwargs: Any) -> None:
    # The generated __init__ would raise a bare TypeError; say which field and suggest one.
    for key in kwargs:
        if key not in HPMConfig.__dataclass_fields__:
            raise HPMKDInputError(_unknown_message(key))
    _dataclass_init(self, *args, **kwargs)


_checked_init.__doc__ = _dataclass_init.__doc__
HPMConfig.__init__ = _checked_init  # type: ignore[method-assign]
