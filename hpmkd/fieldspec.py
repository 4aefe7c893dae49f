"""``FieldSpec``: the constraints and the words of one ``HPMConfig`` field, as data.

The validator, the ``hpmkd distill --help`` text and the app's form all read these specs,
so a bound, a choice or a label is written once, next to the field it belongs to. This
module is a leaf: it knows nothing of ``HPMConfig`` and imports nothing from the package.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: The kinds of value a field holds. ``optional_*`` kinds also accept ``None`` (unset).
KINDS = (
    "bool", "int", "float", "optional_float", "choice", "multi_choice", "float_list",
    "str", "optional_str",
)
#: Methods that read config fields (``AutoDistiller(method=...)`` resolves to one of them).
HPM_ONLY = ("hpm",)
HPM_AND_LEGACY = ("hpm", "legacy")

_NUMERIC = ("int", "float", "optional_float", "float_list")
_TEXT = ("str", "optional_str")
_LISTS = ("multi_choice", "float_list")


@dataclass(frozen=True)
class FieldSpec:
    """What one config field accepts and how it is explained to a person.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    label : str
        A short human name ("Time budget (seconds)"), for form labels and the CLI help.
    help : str
        What the field does and when to change it (the default is added by readers).
    methods : tuple of str
        Methods that use the field: ``("hpm",)`` or ``("hpm", "legacy")``.
    min, max : float or None
        Bounds of the value (of every item for ``float_list``); ``None``: unbounded.
    min_inclusive, max_inclusive : bool
        Whether a bound itself is allowed.
    choices : tuple of str
        The allowed values of ``choice`` and ``multi_choice`` fields.
    unit : str
        The noun of the requirement text: "share", "number of seconds", "weights"
        (plural for ``float_list``).
    server : bool
        A setting of the machine that runs the work (workers, folders, cache size)
        rather than of the experiment.
    requires : tuple of str
        Conditions that must all hold for this field to have any effect: a switch's name
        (a ``bool`` field that must be on: ``n_jobs`` requires ``use_parallel``),
        ``"field=value"`` for a choice (``teacher_refit_folds`` requires
        ``teacher_refit=oof``) or ``"field>number"`` for a number field that must be
        above the number, or a list field with a value above it (``min_compression``
        requires ``max_capacity_steps>0``, ``temperatures`` requires ``alphas>0``: some
        soft targets). ``HPMConfig.ineffective_fields`` reads it (see
        :class:`Requirement`).
    pattern : str
        A regular expression a text field's whole value must match (the form of an
        address); ``unit`` then names that form in words. Text is never empty either.
    name : str
        The field name; filled in by ``HPMConfig``.
    default : object
        The field's default; filled in from the dataclass field by ``HPMConfig``.
    """

    kind: str
    label: str
    help: str
    methods: tuple[str, ...] = HPM_ONLY
    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True
    choices: tuple[str, ...] = ()
    unit: str = "number"
    server: bool = False
    requires: tuple[str, ...] = ()
    pattern: str = ""
    name: str = ""
    default: Any = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"FieldSpec kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if (self.min is not None or self.max is not None) and self.kind not in _NUMERIC:
            raise ValueError(f"FieldSpec of kind {self.kind!r} cannot have bounds")
        if bool(self.choices) != (self.kind in ("choice", "multi_choice")):
            raise ValueError("choices go with (and only with) choice and multi_choice fields")
        if self.pattern and self.kind not in _TEXT:
            raise ValueError(f"FieldSpec of kind {self.kind!r} cannot have a pattern")

    @property
    def optional(self) -> bool:
        """Whether ``None`` (unset) is allowed."""
        return self.kind.startswith("optional_")

    @property
    def constrained(self) -> bool:
        """Whether :meth:`accepts` can refuse a value (bounds, choices, list content, or
        text: never empty, and of its ``pattern``)."""
        return self.min is not None or self.max is not None or self.kind in (
            "choice", "multi_choice", "float_list", *_TEXT,
        )

    # ------------------------------------------------------------------ checking
    def in_bounds(self, number: float) -> bool:
        """Whether ``number`` is finite and lies within ``min``/``max`` (inclusive flags
        honoured).

        NaN and infinities are never inside: a setting is always a real, finite number
        (an unbounded field accepts any finite value, never ``inf``).
        """
        if isinstance(number, float) and not math.isfinite(number):
            return False
        if self.min is not None and not (
            number >= self.min if self.min_inclusive else number > self.min
        ):
            return False
        return self.max is None or (number <= self.max if self.max_inclusive else number < self.max)

    def has_type(self, value: Any) -> bool:
        """Whether ``value`` has the Python type of the field's kind (bounds and choices
        aside).

        ``bool``: a bool. ``int``: an int that is not a bool (``True`` is not a count).
        ``float``: an int or float, not a bool. ``float_list``: a tuple of those.
        ``choice``, ``str``: text. ``multi_choice``: a tuple of text. ``optional_*``:
        also ``None``. Text is never a number here: ``HPMConfig.from_dict`` converts the
        text of ``--set`` and forms before the value reaches the field.
        """
        if value is None and self.optional:
            return True
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.kind in ("float", "optional_float"):
            return _is_real(value)
        if self.kind == "float_list":
            return isinstance(value, tuple) and all(_is_real(v) for v in value)
        if self.kind == "multi_choice":
            return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        return isinstance(value, str)  # choice, str, optional_str

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is valid for this field: the right type (:meth:`has_type`),
        within the bounds, among the choices, no empty list, no :meth:`problem`.

        Parameters
        ----------
        value : object
            The field's value after ``HPMConfig`` normalized it (lists made tuples).
        """
        if not self.has_type(value):
            return False
        if value is None:
            return True
        if self.problem(value) is not None:
            return False
        if self.kind in ("int", "float", "optional_float"):
            return self.in_bounds(value)
        if self.kind == "float_list":
            return bool(value) and all(self.in_bounds(v) for v in value)
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "multi_choice":
            return bool(value) and all(v in self.choices for v in value)
        return True  # bool and str: any value of the type

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of the right type beyond bounds and choices, in
        words, or ``None``: empty text, a value given twice in a list, text not of the
        field's :attr:`pattern`.

        A list with a value twice would train the same candidates twice (the same
        names in the results); empty text would quietly mean the default folder.

        Parameters
        ----------
        value : object
            A value for which :meth:`has_type` holds.
        """
        if self.kind in _LISTS and isinstance(value, tuple):
            seen: set[Any] = set()
            for item in value:
                if item in seen:
                    return f"{item!r} is given more than once (name each value once)"
                seen.add(item)
        if self.kind in _TEXT and isinstance(value, str):
            if not value.strip():
                unset = " (to leave it unset, give none)" if self.optional else ""
                return f"the text is empty{unset}"
            if self.pattern and not re.fullmatch(self.pattern, value):
                return "the text does not have the form asked for"
        return None

    # ------------------------------------------------------------------ words
    def allowed(self) -> str:
        """What the field accepts, in words: "a whole number from 1 to 64"."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        if self.kind == "multi_choice":
            return f"one or more of {', '.join(self.choices)}"
        if self.kind in _TEXT:
            # Text fields name their form by their unit ("folder path"); plain text else.
            text = "text" if self.unit == "number" else f"a {self.unit}"
        elif self.kind == "int":
            text = _with_range("whole number", self, article=True)
        elif self.kind == "float_list":
            text = "one or more " + _with_range(self.unit, self, article=False)
        else:
            text = _with_range(self.unit, self, article=True)
        return f"{text} or leave it unset" if self.optional else text

    def requirement(self) -> str:
        """The advice of a rejection message: "use a whole number from 1 to 64"."""
        verb = "choose" if self.kind in ("choice", "multi_choice") else "use"
        return f"{verb} {self.allowed()}"

    def default_text(self) -> str:
        """The default as a user would type it after ``--set KEY=``."""
        return format_value(self.default)

    def describe(self) -> str:
        """Help, allowed values, default, methods and the switches it needs in one
        paragraph."""
        used = " and ".join(self.methods)
        needs = f" Only with {self.needs_text()}." if self.requires else ""
        return (
            f"{self.help} Allowed: {self.allowed()}. Default: {self.default_text()}. "
            f"Used by: {used}.{needs}"
        )

    def requirements(self) -> list[Requirement]:
        """The conditions of ``requires``, parsed (:meth:`Requirement.parse`)."""
        return [Requirement.parse(entry) for entry in self.requires]

    def needs_text(self) -> str:
        """The conditions the field needs, as ``--set`` text: "use_parallel=true",
        "max_capacity_steps>0"."""
        return " and ".join(r.text() for r in self.requirements())


@dataclass(frozen=True)
class Requirement:
    """One condition a field needs to have any effect (an entry of ``FieldSpec.requires``).

    Attributes
    ----------
    field : str
        The field the condition is on.
    op : {"=", ">"}
        ``"="``: the field equals ``value`` (a switch on: ``True``; a choice: its text).
        ``">"``: a number field is above ``value``, or a list field holds a value above it.
    value : object
        ``True``, a choice's text, or a number.
    """

    field: str
    op: str
    value: Any

    @classmethod
    def parse(cls, entry: str) -> Requirement:
        """``"use_parallel"``, ``"teacher_refit=oof"`` or ``"alphas>0"`` as a condition.

        Parameters
        ----------
        entry : str
        """
        if ">" in entry:
            name, _, number = entry.partition(">")
            return cls(name.strip(), ">", float(number))
        name, sep, value = entry.partition("=")
        return cls(name.strip(), "=", value.strip() if sep else True)

    def holds(self, actual: Any) -> bool:
        """Whether the field's value ``actual`` meets the condition."""
        if self.op == ">":
            items = actual if isinstance(actual, tuple) else (actual,)
            return any(item is not None and item > self.value for item in items)
        return actual == self.value

    def text(self) -> str:
        """The condition as ``--set`` text: "use_parallel=true", "alphas>0"."""
        if self.op == ">":
            return f"{self.field}>{format_value(self.value)}"
        return f"{self.field}={format_value(self.value)}"

    def unmet(self, actual: Any) -> str:
        """Why the condition fails for ``actual``: "use_parallel is False", "no value of
        alphas is above 0 (alphas is (0.0,))"."""
        if self.op == ">" and isinstance(actual, tuple):
            return (
                f"no value of {self.field} is above {format_value(self.value)} "
                f"({self.field} is {actual!r})"
            )
        return f"{self.field} is {actual!r}"

    def fix(self, actual: Any) -> str:
        """What to set so the condition holds: "use_parallel=True", "max_capacity_steps
        above 0", "alphas with a value above 0"."""
        if self.op == ">":
            number = format_value(self.value)
            if isinstance(actual, tuple):
                return f"{self.field} with a value above {number}"
            return f"{self.field} above {number}"
        return f"{self.field}={self.value!r}"


def _is_real(value: Any) -> bool:
    """Whether ``value`` is a real number: an int or a float (not a bool, not text, not an
    int too large to be a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def format_value(value: Any) -> str:
    """A config value as ``--set`` text: ``none``, ``true``, ``1,2,4``, ``0.2``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _num(x: float) -> str:
    return f"{x:g}"


def _with_range(noun: str, spec: FieldSpec, *, article: bool) -> str:
    """``noun`` with the bounds of ``spec`` in words ("a share between 0.05 and 0.5")."""
    lo, hi = spec.min, spec.max
    a = "a " if article else ""
    if lo is None and hi is None:
        return f"{a}{noun}"
    if hi is None:
        if not spec.min_inclusive and lo == 0:
            return f"{a}positive {noun}"
        word = "of at least" if spec.min_inclusive else "greater than"
        return f"{a}{noun} {word} {_num(lo)}"
    if lo is None:
        word = "of at most" if spec.max_inclusive else "less than"
        return f"{a}{noun} {word} {_num(hi)}"
    if spec.min_inclusive and spec.max_inclusive:
        # Whole numbers are counted "from .. to"; real numbers lie "between".
        if spec.kind == "int":
            return f"{a}{noun} from {_num(lo)} to {_num(hi)}"
        return f"{a}{noun} between {_num(lo)} and {_num(hi)}"
    left = "[" if spec.min_inclusive else "("
    right = "]" if spec.max_inclusive else ")"
    return f"{a}{noun} in {left}{_num(lo)}, {_num(hi)}{right}"


# ---------------------------------------------------------------------- help text
def help_text(specs: Sequence[FieldSpec], width: int = 88) -> str:
    """The settings section of ``hpmkd distill --help``: one entry per field.

    Parameters
    ----------
    specs : sequence of FieldSpec
        In the order to list them.
    width : int
        Line width of the wrapped text.
    """
    intro = (
        "settings: --set KEY=VALUE, repeatable. Lists are comma-separated; 'none' unsets "
        "an optional value. Each entry reads KEY=DEFAULT, label, [the methods that use "
        "it; 'server' marks a setting of the machine that runs the work, not of the "
        "experiment; 'needs' names the settings without which it has no effect, where "
        "alphas>0 means a value of alphas above 0]. Empty text and empty list items are "
        "refused, and a list names each value once. A "
        "setting without effect on the run is reported as a 'warning:' line."
    )
    lines = [*textwrap.wrap(intro, width=width), ""]
    indent = " " * 6
    for spec in specs:
        tags = ", ".join(spec.methods) + ("; server" if spec.server else "")
        tags += f"; needs {spec.needs_text()}" if spec.requires else ""
        lines.append(f"  {spec.name}={spec.default_text()}  {spec.label} [{tags}]")
        lines.extend(textwrap.wrap(
            f"Allowed: {spec.allowed()}. {spec.help}", width=width,
            initial_indent=indent, subsequent_indent=indent,
        ))
    return "\n".join(lines)


def docstring_parameters(specs: Iterable[FieldSpec]) -> str:
    """A numpydoc ``Parameters`` section built from the specs.

    Parameters
    ----------
    specs : iterable of FieldSpec
    """
    types = {
        "bool": "bool", "int": "int", "float": "float", "optional_float": "float or None",
        "choice": "str", "multi_choice": "tuple of str", "float_list": "tuple of float",
        "str": "str", "optional_str": "str or None",
    }
    out = ["Parameters", "----------"]
    for spec in specs:
        kind = (
            "{" + ", ".join(repr(c) for c in spec.choices) + "}"
            if spec.kind == "choice" else types[spec.kind]
        )
        out.append(f"{spec.name} : {kind}, default {spec.default!r}")
        body = (
            f"{spec.label}. {spec.help} Allowed: {spec.allowed()}. "
            f"Used by: {', '.join(spec.methods)}."
        )
        out.extend(textwrap.wrap(body, width=84, initial_indent="    ",
                                 subsequent_indent="    "))
    return "\n".join(out)
