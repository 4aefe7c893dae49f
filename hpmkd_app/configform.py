"""The ``HPMConfig`` form: one widget description per config field.

The form's values are kept as a plain dict (``{field: widget value}``) in session state
under the app's own key, so they survive page switches (Streamlit deletes widget keys
when a page unmounts). :func:`to_config` turns them into a validated
:class:`~hpmkd.HPMConfig` through ``HPMConfig.from_dict``, so the app shows exactly the
engine's error text for an invalid value.

Fields are discovered from the dataclass, so a field added to ``HPMConfig`` later still
gets a widget (a text box converted by ``from_dict``) without changing this module.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from hpmkd.config import SELECTION_METRICS, SELECTION_RULES, STUDENT_FAMILIES, HPMConfig
from hpmkd.distiller import METHODS

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

#: Fields the legacy method uses; the others are hpm-only.
LEGACY_FIELDS = (
    "families", "temperatures", "alphas", "validation_split", "selection_metric",
    "selection_rule", "time_budget_s",
)

_GROUPS = {
    "Search": ("max_configs", "n_trials", "families", "temperatures", "alphas",
               "selection_metric", "selection_rule", "validation_split", "time_budget_s"),
    "Components": ("use_progressive", "max_chain_stages", "min_improvement",
                   "use_adaptive_temperature", "use_multi_teacher", "use_memory", "use_cache",
                   "cache_size_limit_gb"),
    "Compute and storage": ("use_parallel", "n_jobs", "dask_scheduler", "memory_dir",
                            "cache_dir"),
}

_OVERRIDES: dict[str, dict[str, Any]] = {
    "max_configs": {"kind": "slider", "min": 1, "max": 64},
    "n_trials": {"kind": "slider", "min": 1, "max": 20},
    "max_chain_stages": {"kind": "slider", "min": 1, "max": 10},
    "n_jobs": {"kind": "int", "min": 1, "max": 64},
    "validation_split": {"kind": "float", "min": 0.05, "max": 0.5, "step": 0.05},
    "min_improvement": {"kind": "float", "min": 0.0, "max": 0.99, "step": 0.005,
                        "format": "%.3f"},
    "cache_size_limit_gb": {"kind": "float", "min": 0.01, "max": 1024.0, "step": 0.5},
    "time_budget_s": {"kind": "float_optional", "min": 1.0, "step": 10.0},
    "selection_metric": {"kind": "choice", "options": list(SELECTION_METRICS)},
    "selection_rule": {"kind": "choice", "options": list(SELECTION_RULES)},
    "families": {"kind": "multichoice", "options": list(STUDENT_FAMILIES)},
    "temperatures": {"kind": "floats"},
    "alphas": {"kind": "floats"},
    "dask_scheduler": {"kind": "text_optional", "placeholder": "tcp://host:8786 (blank: none)"},
    "memory_dir": {"kind": "text_optional", "placeholder": "blank: $HPMKD_HOME/memory"},
    "cache_dir": {"kind": "text_optional", "placeholder": "blank: $HPMKD_HOME/cache"},
}

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
class FieldSpec:
    """How one ``HPMConfig`` field is shown.

    Attributes
    ----------
    name : str
        The field name (also the widget's label suffix).
    kind : str
        One of :data:`WIDGET_KINDS`.
    label : str
    help : str
        The field's description from the ``HPMConfig`` docstring.
    group : str
    options : tuple
        Choices for ``choice``/``multichoice``.
    min, max, step : float or None
    format : str or None
    placeholder : str
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


def field_docs() -> dict[str, str]:
    """Each field's description, parsed from the numpydoc ``Parameters`` section."""
    doc = HPMConfig.__doc__ or ""
    out: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for raw in doc.splitlines():
        match = re.match(r"^    (\w+) : (.+)$", raw)
        if match:
            if current:
                out[current] = " ".join(lines).strip()
            current, lines = match.group(1), [f"({match.group(2)})"]
        elif current and raw.startswith("        "):
            lines.append(raw.strip())
    if current:
        out[current] = " ".join(lines).strip()
    # Put the description first and the type/default last.
    return {k: _reorder(v) for k, v in out.items()}


def _reorder(text: str) -> str:
    if text.startswith("(") and ")" in text:
        head, _, rest = text.partition(") ")
        return f"{rest} {head})".strip() if rest else text
    return text


def _label(name: str) -> str:
    text = name.replace("_", " ")
    text = re.sub(r"\buse\b ", "use ", text)
    return text[0].upper() + text[1:]


def field_specs() -> list[FieldSpec]:
    """A :class:`FieldSpec` for every ``HPMConfig`` field, in declaration order."""
    docs = field_docs()
    group_of = {f: g for g, names in _GROUPS.items() for f in names}
    defaults = HPMConfig()
    specs = []
    for f in dataclasses.fields(HPMConfig):
        if f.name.startswith("_"):
            continue
        default = getattr(defaults, f.name)
        override = dict(_OVERRIDES.get(f.name, {}))
        if "kind" not in override:
            if isinstance(default, bool):
                override["kind"] = "checkbox"
            elif isinstance(default, int):
                override["kind"] = "int"
            elif isinstance(default, float):
                override["kind"] = "float"
            else:
                override["kind"] = "text"
        kind = override.pop("kind")
        options = tuple(override.pop("options", ()))
        specs.append(
            FieldSpec(
                name=f.name,
                kind=kind,
                label=_label(f.name),
                help=docs.get(f.name, ""),
                group=group_of.get(f.name, "Other"),
                options=options,
                **override,
            )
        )
    return specs


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


def to_config(form: dict[str, Any]) -> HPMConfig:
    """Validate the form into an :class:`~hpmkd.HPMConfig`.

    Parameters
    ----------
    form : dict

    Raises
    ------
    HPMKDInputError
        The engine's message for the first invalid value.
    """
    return HPMConfig.from_dict(form_to_values(form))


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


def unused_by_legacy(form: dict[str, Any], defaults: dict[str, Any] | None = None) -> list[str]:
    """Fields changed from their default that the legacy method ignores.

    Parameters
    ----------
    form : dict
    defaults : dict, optional
        Default form (``default_form()`` when omitted).
    """
    defaults = defaults or default_form()
    return [
        name for name, value in form.items()
        if name not in LEGACY_FIELDS and defaults.get(name) != value
    ]
