"""The ``HPMConfig`` form: one widget description per config field.

The form's values are kept as a plain dict (``{field: widget value}``) in session state
under the app's own key, so they survive page switches (Streamlit deletes widget keys
when a page unmounts). :func:`to_config` turns them into a validated
:class:`~hpmkd.HPMConfig` through ``HPMConfig.from_dict``, so the app shows exactly the
engine's error text for an invalid value.

Labels, help, bounds and choices come from the engine's field specs
(``HPMConfig.field_specs()``); this module only adds presentation (widget kind, group,
step, number format, placeholder). A field added to ``HPMConfig`` later gets a widget
without changing this module.

Server fields (spec ``server=True``: worker count, Dask scheduler, cache and memory
folders, cache size) are never on the form and never read from the browser: a scheduler
address runs code in the server process and a folder makes the server write wherever it
may. :func:`to_config` takes them from the server's own settings
(:class:`hpmkd.settings.ServerSettings`, environment variables), and a configuration file
a person uploads (:func:`form_from_json`) is refused when it names one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hpmkd.checks import SEED_MAX
from hpmkd.config import HPMConfig
from hpmkd.distiller import METHODS
from hpmkd.errors import HPMKDInputError
from hpmkd.fieldspec import FieldSpec
from hpmkd.parallel import auto_parallel
from hpmkd.settings import ServerSettings, refuse_server_fields

#: Widget kinds: checkbox, slider (int), int, float, float_optional, choice, multichoice,
#: floats (comma-separated text), text_optional (blank = default), text (fallback).
WIDGET_KINDS = (
    "checkbox", "slider", "int", "float", "float_optional", "choice", "multichoice", "floats",
    "text_optional", "text",
)

METHOD_LABELS = {
    "auto": "auto — choose by dataset size",
    "hpm": "hpm — adaptive HPM-KD (5 phases)",
    "legacy": "legacy — plain grid of family x temperature x alpha",
}

#: Fields the legacy method uses (from the specs); the others are hpm-only.
LEGACY_FIELDS = tuple(s.name for s in HPMConfig.field_specs() if "legacy" in s.methods)

_GROUPS = {
    "Search": ("max_configs", "n_trials", "families", "temperatures", "alphas",
               "selection_metric", "selection_rule", "validation_split", "time_budget_s",
               "max_capacity_steps", "min_compression", "final_fit"),
    "Components": ("use_progressive", "max_chain_stages", "min_improvement",
                   "use_adaptive_temperature", "use_multi_teacher", "use_memory", "use_cache"),
    # Cross-fitted soft targets: the remedy the leakage notice points to.
    "Teacher": ("teacher_refit", "teacher_refit_folds"),
    "Compute": ("use_parallel",),
}

#: Widget kind of each spec kind; an int field with both bounds is a slider instead.
_WIDGET_OF_KIND = {
    "bool": "checkbox", "int": "int", "float": "float", "optional_float": "float_optional",
    "choice": "choice", "multi_choice": "multichoice", "float_list": "floats",
    "optional_str": "text_optional", "str": "text",
}

#: Presentation only (step, number format, placeholder); bounds and labels are the specs'.
_PRESENTATION: dict[str, dict[str, Any]] = {
    "validation_split": {"step": 0.05},
    "min_improvement": {"step": 0.005, "format": "%.3f"},
    "time_budget_s": {"step": 10.0},
}

#: Keys of a configuration file besides the config fields: the method and the seed.
JSON_EXTRA_KEYS = ("method", "random_state")
#: Seeds the app accepts (the Configure page's seed input uses the same bounds).

#: A small, fast search for a first look (a few seconds on the sample data).
QUICK_PRESET: dict[str, Any] = {
    "max_configs": 4,
    "n_trials": 1,
    "families": ["logreg", "lgbm"],
    "temperatures": "2",
    "alphas": "0.5",
    "max_chain_stages": 2,
    "use_multi_teacher": False,
    "use_parallel": False,
}


@dataclass(frozen=True)
class FormField:
    """How one ``HPMConfig`` field is shown.

    Attributes
    ----------
    name : str
        The field name.
    kind : str
        One of :data:`WIDGET_KINDS`.
    label : str
        The spec's label.
    help : str
        The spec's help, allowed values, default and methods.
    group : str
    options : tuple
        Choices for ``choice``/``multichoice``.
    min, max : int, float or None
        The spec's bounds, as the widget's number type. Streamlit bounds are inclusive,
        so an excluded bound (``cache_size_limit_gb > 0``) is the widget's edge and the
        engine's message explains why that one value is refused.
    step : float or None
    format : str or None
    placeholder : str
    server : bool
        A setting of the machine that runs the work (the spec's ``server`` flag); such
        fields are never in :func:`field_specs`, which lists what the form shows.
    """

    name: str
    kind: str
    label: str
    help: str
    group: str
    options: tuple = ()
    min: float | None = None
    max: float | None = None
    step: float | None = None
    format: str | None = None
    placeholder: str = ""
    server: bool = False


def _widget_kind(spec: FieldSpec) -> str:
    if spec.kind == "int" and spec.min is not None and spec.max is not None:
        return "slider"
    return _WIDGET_OF_KIND[spec.kind]


def _as_widget_number(bound: float | None, kind: str) -> float | None:
    # Streamlit refuses a widget whose value and bounds mix int and float.
    if bound is None:
        return None
    return int(bound) if kind in ("int", "slider") else float(bound)


def form_field(spec: FieldSpec) -> FormField:
    """The widget description of one field spec.

    Parameters
    ----------
    spec : FieldSpec
        From ``HPMConfig.field_specs()``.
    """
    group_of = {f: g for g, names in _GROUPS.items() for f in names}
    kind = _widget_kind(spec)
    return FormField(
        name=spec.name,
        kind=kind,
        label=spec.label,
        help=spec.describe(),
        group=group_of.get(spec.name, "Other"),
        options=spec.choices,
        min=_as_widget_number(spec.min, kind),
        max=_as_widget_number(spec.max, kind),
        server=spec.server,
        **_PRESENTATION.get(spec.name, {}),
    )


def field_specs() -> list[FormField]:
    """A :class:`FormField` for every field the form shows, in declaration order: every
    ``HPMConfig`` field except the server's (spec ``server=True``)."""
    return [form_field(spec) for spec in HPMConfig.field_specs() if not spec.server]


def groups() -> list[str]:
    """Group names in display order (only groups with fields)."""
    used = {s.group for s in field_specs()}
    return [g for g in [*_GROUPS, "Other"] if g in used]


def default_form() -> dict[str, Any]:
    """Form values of ``HPMConfig()`` (the specification's defaults)."""
    return config_to_form(HPMConfig().to_dict())


def config_to_form(values: dict[str, Any]) -> dict[str, Any]:
    """Widget values for a config dict (tuples as comma text, ``None`` as blank).

    Parameters
    ----------
    values : dict
        ``HPMConfig.to_dict()`` output or a partial dict.
    """
    specs = {s.name: s for s in field_specs()}
    out: dict[str, Any] = {}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            continue
        if spec.kind == "floats":
            out[name] = ", ".join(_fmt_float(v) for v in value) if not isinstance(value, str) \
                else value
        elif spec.kind == "multichoice":
            out[name] = list(value)
        elif spec.kind == "text_optional":
            out[name] = "" if value is None else str(value)
        elif spec.kind == "text":
            out[name] = "" if value is None else (
                ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            )
        else:
            out[name] = value
    return out


def _fmt_float(value: Any) -> str:
    value = float(value)
    return f"{value:g}"


def form_to_values(form: dict[str, Any]) -> dict[str, Any]:
    """Config values for ``HPMConfig.from_dict`` (blank optional text becomes ``None``).

    Parameters
    ----------
    form : dict
    """
    specs = {s.name: s for s in field_specs()}
    out: dict[str, Any] = {}
    for name, value in form.items():
        spec = specs.get(name)
        if spec is None:
            out[name] = value  # from_dict names the unknown field
            continue
        if spec.kind == "text_optional":
            text = (value or "").strip()
            out[name] = text or None
        elif spec.kind == "multichoice":
            out[name] = tuple(value or ())
        elif spec.kind in ("int", "slider") and isinstance(value, float) and value.is_integer():
            out[name] = int(value)
        else:
            out[name] = value
    return out


def to_config(form: dict[str, Any], settings: ServerSettings | None = None) -> HPMConfig:
    """Validate the form into an :class:`~hpmkd.HPMConfig` with the server's settings.

    The experiment fields come from the form; the server fields (workers, scheduler,
    folders, cache size) from ``settings``, never from the form.

    Parameters
    ----------
    form : dict
    settings : ServerSettings, optional
        Default :meth:`ServerSettings.from_env() <hpmkd.settings.ServerSettings.from_env>`.

    Raises
    ------
    HPMKDInputError
        The engine's message for the first invalid value; the form names a server field;
        or a server setting is invalid (the message names its environment variable).
    """
    settings = settings if settings is not None else ServerSettings.from_env()
    return settings.config(form_to_values(form))


def experiment_values(config: HPMConfig) -> dict[str, Any]:
    """The fields of ``config`` a person chooses (no server field), JSON-friendly.

    Parameters
    ----------
    config : HPMConfig
    """
    shown = {s.name for s in field_specs()}
    return {k: v for k, v in config.to_dict().items() if k in shown}


def config_json(config: HPMConfig, method: str, seed: int) -> bytes:
    """The configuration file the Configure page offers: method, seed and the experiment
    fields (what :func:`form_from_json` reads back).

    Parameters
    ----------
    config : HPMConfig
    method : str
    seed : int
    """
    payload = {"method": method, "random_state": int(seed), **experiment_values(config)}
    return json.dumps(payload, indent=2).encode()


def form_from_json(
    data: bytes, filename: str, form: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str | None, int | None]:
    """Read an uploaded configuration file into form values, a method and a seed.

    The file is a JSON object of config fields, optionally with ``method`` and
    ``random_state`` (the shape :func:`config_json` writes); fields it leaves out keep
    their value in ``form``.

    Parameters
    ----------
    data : bytes
        The file's content.
    filename : str
        For messages.
    form : dict, optional
        The current form (default: the defaults).

    Returns
    -------
    (dict, str or None, int or None)
        The new form, and the file's method and seed when it has them.

    Raises
    ------
    HPMKDInputError
        Not JSON, not an object, a server field (workers, scheduler, folders, cache size:
        the server's own), an unknown field, an invalid method, seed or value.
    """
    where = f"the configuration file {filename!r}"
    try:
        values = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HPMKDInputError(
            f"The configuration file {filename!r} is not valid JSON ({exc}). Upload a file "
            "saved with 'Download the configuration'."
        ) from None
    if not isinstance(values, dict):
        raise HPMKDInputError(
            f"The configuration file {filename!r} holds a JSON {type(values).__name__}, "
            "not an object of field names and values."
        )
    refuse_server_fields(values, where)
    method = values.pop("method", None)
    if method is not None and method not in METHODS:
        raise HPMKDInputError(
            f"The configuration file {filename!r} has method={method!r}; choose one of "
            f"{', '.join(METHODS)}."
        )
    seed = values.pop("random_state", None)
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX
    ):
        raise HPMKDInputError(
            f"The configuration file {filename!r} has random_state={seed!r}; use a whole "
            f"number from 0 to {SEED_MAX}."
        )
    # Validate the file's values on their own first, so the message names the file's value.
    try:
        config = HPMConfig.from_dict(values)
    except HPMKDInputError as exc:
        raise HPMKDInputError(f"In the configuration file {filename!r}: {exc}") from None
    new_form = dict(form if form is not None else default_form())
    new_form.update(config_to_form({k: getattr(config, k) for k in values}))
    return new_form, method, seed


def apply_preset(form: dict[str, Any], preset: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``form`` with ``preset`` values (form representation) applied.

    Parameters
    ----------
    form : dict
    preset : dict
    """
    out = dict(form)
    out.update(config_to_form({k: v for k, v in preset.items() if not isinstance(v, str)}))
    out.update({k: v for k, v in preset.items() if isinstance(v, str)})
    return out


def widget_key(name: str, version: int = 0) -> str:
    """Widget key of a config field.

    A preset bumps ``version`` so every widget gets a new identity: the browser then
    drops the values it holds for the old widgets instead of sending them back.

    Parameters
    ----------
    name : str
    version : int
    """
    return f"cfg_{name}" if version == 0 else f"cfg_{name}__{version}"


def method_options() -> list[str]:
    """``auto``, ``hpm``, ``legacy``."""
    return list(METHODS)


def hpm_available() -> bool:
    """Whether ``method="hpm"`` can run in this installation (``hpmkd.engine`` exists)."""
    import importlib.util

    try:
        return importlib.util.find_spec("hpmkd.engine") is not None
    except (ImportError, ValueError):
        return False


def with_auto_parallel(
    config: HPMConfig, n_rows: int, n_features: int, method: str, auto: bool = True
) -> tuple[HPMConfig, str]:
    """The config a run starts with when the app picks parallel training by data size.

    With ``auto`` and ``use_parallel`` left off, an hpm run on a table of at least
    :data:`hpmkd.parallel.AUTO_PARALLEL_MIN_ROWS` rows and at most
    :data:`hpmkd.parallel.AUTO_PARALLEL_MAX_VALUES` values trains in parallel (with the
    server's worker count); a config that already asks for parallel training, a legacy
    run, or ``auto=False`` keep the config as it is.

    Parameters
    ----------
    config : HPMConfig
    n_rows : int
        Rows of the dataset.
    n_features : int
        Feature columns of the dataset.
    method : str
        The resolved method (``hpm`` or ``legacy``).
    auto : bool, default True
        Whether the person lets the app choose.

    Returns
    -------
    (HPMConfig, str)
        The config to run and a sentence for the page ("" when nothing was decided).
    """
    if config.use_parallel or method != "hpm" or not auto:
        return config, ""
    on, why = auto_parallel(n_rows, n_features, config.n_jobs)
    return (config.with_updates(use_parallel=True) if on else config), why


def ineffective_messages(config: HPMConfig, method: str | None) -> list[str]:
    """Why settings of the form have no effect on the run the page would start.

    The engine's own messages (:meth:`HPMConfig.ineffective_messages`), for the fields a
    person chooses: server fields are the server's (never on the form), so they are left
    out.

    Parameters
    ----------
    config : HPMConfig
        The validated form.
    method : {"hpm", "legacy"} or None
        The method that would run (``auto`` resolved on the data); ``None`` when ``auto``
        cannot be resolved yet (no data): then the settings without effect whichever
        method ``auto`` picks, in the words of ``hpm``.
    """
    if method is not None:
        return config.ineffective_messages(method, include_server=False)
    fields = config.ineffective_fields("hpm", include_server=False)
    messages = config.ineffective_messages("hpm", include_server=False)
    under_legacy = {name for name, _ in config.ineffective_fields("legacy", include_server=False)}
    return [m for (name, _), m in zip(fields, messages, strict=True) if name in under_legacy]
