"""The ``HPMConfig`` field specs are the one source of bounds, choices and labels: the
validator enforces exactly them, the app form and ``hpmkd distill --help`` show them."""

from __future__ import annotations

import math

import pytest

from hpmkd import HPMConfig, HPMKDInputError
from hpmkd.cli import main
from hpmkd.fieldspec import KINDS, FieldSpec, format_value
from hpmkd_app import configform

SPECS = HPMConfig.field_specs()
SERVER_FIELDS = {"n_jobs", "dask_scheduler", "cache_dir", "memory_dir", "cache_size_limit_gb"}


def _rejects(name: str, value) -> str:
    """The message of the error ``HPMConfig(name=value)`` raises."""
    with pytest.raises(HPMKDInputError) as info:
        HPMConfig(**{name: value})
    return str(info.value)


def _as_value(spec: FieldSpec, number: float):
    """``number`` as a value of the field (a one-item tuple for list fields)."""
    if spec.kind == "int":
        return int(number)
    return (float(number),) if spec.kind == "float_list" else float(number)


def _edges(spec: FieldSpec) -> tuple[list[float], list[float]]:
    """Numbers the field must accept (its allowed edges) and refuse (just outside)."""
    inside, outside = [], []
    for bound, inclusive, away in ((spec.min, spec.min_inclusive, -math.inf),
                                   (spec.max, spec.max_inclusive, math.inf)):
        if bound is None:
            continue
        if spec.kind == "int":
            inside.append(bound)
            outside.append(bound - 1 if away < 0 else bound + 1)
        elif inclusive:
            inside.append(bound)
            outside.append(math.nextafter(bound, away))
        else:
            inside.append(math.nextafter(bound, -away))
            outside.append(bound)
    return inside, outside


# ---------------------------------------------------------------------- the specs
def test_every_field_has_a_complete_spec():
    assert [s.name for s in SPECS] == HPMConfig.field_names()
    defaults = HPMConfig()
    labels = [s.label for s in SPECS]
    assert len(set(labels)) == len(labels), "labels tell fields apart"
    for spec in SPECS:
        assert spec.kind in KINDS
        assert spec.label and spec.help and spec.label != spec.name
        assert spec.methods in (("hpm",), ("hpm", "legacy"))
        assert HPMConfig.field_spec(spec.name) is spec
        assert spec.accepts(getattr(defaults, spec.name)), spec.name
        assert spec.server == (spec.name in SERVER_FIELDS), spec.name
    with pytest.raises(HPMKDInputError, match="Did you mean max_configs"):
        HPMConfig.field_spec("max_config")


def test_the_docstring_lists_every_field():
    for spec in SPECS:
        assert f"\n{spec.name} : " in HPMConfig.__doc__


# ---------------------------------------------------------------------- the validator
@pytest.mark.parametrize("spec", [s for s in SPECS if s.min is not None or s.max is not None],
                         ids=lambda s: s.name)
def test_validator_accepts_the_bounds_and_rejects_just_outside(spec):
    inside, outside = _edges(spec)
    assert inside and outside
    for number in inside:
        assert getattr(HPMConfig(**{spec.name: _as_value(spec, number)}), spec.name) is not None
    for number in outside:
        value = _as_value(spec, number)
        message = _rejects(spec.name, value)
        assert message == f"HPMConfig.{spec.name}={value!r} is invalid: {spec.requirement()}."
    # NaN is inside no bound; an int field wants a real int, not a float that looks like one.
    assert _rejects(spec.name, 3.0 if spec.kind == "int" else _as_value(spec, math.nan))


@pytest.mark.parametrize("spec", [s for s in SPECS if s.kind in ("float", "optional_float",
                                                                  "float_list")],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_every_real_number_field_refuses_nan_and_infinities(spec, number):
    value = _as_value(spec, number)
    assert _rejects(spec.name, value) == (
        f"HPMConfig.{spec.name}={value!r} is invalid: {spec.requirement()}."
    )
    text = {math.nan: "nan", math.inf: "inf", -math.inf: "-inf"}[number]
    with pytest.raises(HPMKDInputError, match=f"HPMConfig.{spec.name}="):
        HPMConfig.from_dict({spec.name: text})  # as --set KEY=nan would give it


def test_a_list_field_of_text_is_refused_by_name():
    assert _rejects("temperatures", ("hot",)).startswith("HPMConfig.temperatures=('hot',)")
    assert _rejects("alphas", 0.5).startswith("HPMConfig.alphas=0.5 is invalid")


def test_a_cache_too_small_to_hold_anything_is_refused():
    # 1e-12 GB is 0 bytes: the cache could not open. The bound says what is sensible.
    assert _rejects("cache_size_limit_gb", 1e-12).endswith("of at least 0.01.")
    assert HPMConfig(cache_size_limit_gb=0.01).cache_size_limit_gb == 0.01


@pytest.mark.parametrize("spec", [s for s in SPECS if s.choices], ids=lambda s: s.name)
def test_validator_accepts_each_choice_and_nothing_else(spec):
    for choice in spec.choices:
        value = (choice,) if spec.kind == "multi_choice" else choice
        assert HPMConfig(**{spec.name: value})
    bogus = ("svm",) if spec.kind == "multi_choice" else "gini"
    assert spec.requirement() in _rejects(spec.name, bogus)
    if spec.kind == "multi_choice":
        assert spec.requirement() in _rejects(spec.name, ())


def test_unconstrained_fields_are_the_switches_and_the_text():
    free = {s.name for s in SPECS if not s.constrained}
    assert free == {s.name for s in SPECS if s.kind in ("bool", "str", "optional_str")}
    assert all(s.accepts(None) for s in SPECS if s.optional)
    assert HPMConfig(time_budget_s=None).time_budget_s is None
    assert _rejects("temperatures", ()).endswith("use one or more positive temperatures.")


def test_messages_tests_and_users_rely_on_are_unchanged():
    assert _rejects("max_configs", 65).endswith("use a whole number from 1 to 64.")
    assert _rejects("validation_split", 2) == (
        "HPMConfig.validation_split=2 is invalid: use a share between 0.05 and 0.5."
    )
    assert "use a number in [0, 1)" in _rejects("min_improvement", 1.0)
    assert "use a number of gigabytes of at least 0.01" in _rejects("cache_size_limit_gb", 0)
    assert "positive number of seconds or leave it unset" in _rejects("time_budget_s", 0)
    assert "use a whole number from 1 to 256" in _rejects("n_jobs", 0)
    assert "choose one of ks, auc" in _rejects("selection_metric", "gini")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_set_text_of_the_default_reads_back_as_the_default(spec):
    config = HPMConfig.from_dict({spec.name: format_value(spec.default)})
    assert getattr(config, spec.name) == getattr(HPMConfig(), spec.name)


# ---------------------------------------------------------------------- the app form
def test_form_widgets_take_bounds_choices_and_labels_from_the_specs():
    fields = configform.field_specs()
    shown = [s for s in SPECS if not s.server]  # server fields are never on the form
    assert [f.name for f in fields] == [s.name for s in shown]
    assert not {f.name for f in fields} & SERVER_FIELDS
    for field, spec in zip(fields, shown, strict=True):
        assert (field.min, field.max) == (spec.min, spec.max), spec.name
        assert field.options == spec.choices
        assert field.label == spec.label
        assert field.help.startswith(spec.help) and spec.allowed() in field.help
        assert field.server == spec.server
        for bound in (field.min, field.max):
            if bound is not None:  # Streamlit refuses mixed int/float widgets
                assert isinstance(bound, int if field.kind in ("int", "slider") else float)
    legacy = tuple(s.name for s in SPECS if "legacy" in s.methods)
    assert legacy == configform.LEGACY_FIELDS


# ---------------------------------------------------------------------- the CLI
def test_distill_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as info:
        main(["distill", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for spec in SPECS:
        assert f"  {spec.name}={spec.default_text()}  {spec.label}" in out, spec.name
    assert "a whole number from 1 to 64" in out
    assert "one of ks, auc, accuracy, f1, fidelity, rank_fidelity" in out
