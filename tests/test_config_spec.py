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


#: Values of the wrong type for each kind (every one of them used to be a mistake the
#: validator let through, or could be).
WRONG_TYPES = {
    "bool": ["no", "true", 1, 0, None, 1.0],
    "int": [2.5, 3.0, True, "8", None],
    "float": ["0.2", True, None, [0.2]],
    "optional_float": ["60", True, [60.0]],
    "choice": [1, None, ["ks"], b"ks"],
    "multi_choice": ["lgbm", "lgbm,tree", {"lgbm"}, ("lgbm", 3), None, 5],
    "float_list": ["1,2", [1, "a"], ["2"], [True], {1.0}, None, 2.0],
    "str": [3, True, b"x"],
    "optional_str": [3, True, b"x", ["tcp://a:1"]],
}


def test_every_kind_has_wrong_type_cases():
    assert set(WRONG_TYPES) == set(KINDS)


@pytest.mark.parametrize(
    ("spec", "value"),
    [(s, v) for s in SPECS for v in WRONG_TYPES[s.kind]],
    ids=lambda x: x.name if isinstance(x, FieldSpec) else repr(x),
)
def test_every_field_refuses_values_of_the_wrong_type(spec, value):
    message = _rejects(spec.name, value)
    # List fields hold tuples, so a list given to one is shown as the tuple it became.
    listy = spec.kind in ("multi_choice", "float_list") and isinstance(value, list)
    shown = tuple(value) if listy else value
    assert message.startswith(f"HPMConfig.{spec.name}={shown!r} is invalid: "), message
    assert spec.requirement() in message or "not a list; pass a list such as" in message


def test_type_messages_say_what_the_value_is_and_what_to_give():
    assert _rejects("use_progressive", "no") == (
        "HPMConfig.use_progressive='no' is invalid: text (str); use true or false."
    )
    assert _rejects("max_configs", 2.5) == (
        "HPMConfig.max_configs=2.5 is invalid: a float; use a whole number from 1 to 64."
    )
    assert _rejects("max_configs", True) == (
        "HPMConfig.max_configs=True is invalid: a bool; use a whole number from 1 to 64."
    )
    assert _rejects("families", "lgbm") == (
        "HPMConfig.families='lgbm' is invalid: a single string, not a list; pass a list "
        "such as ['lgbm'] (comma-separated text is read only by HPMConfig.from_dict and "
        "--set)."
    )
    assert _rejects("temperatures", [1, "a"]) == (
        "HPMConfig.temperatures=(1, 'a') is invalid: item 'a' is text (str); use one or "
        "more positive temperatures."
    )
    # A set has no order, and the grid's order (and so a run) would depend on it.
    assert "a set, not a list" in _rejects("families", {"lgbm", "tree"})


def test_text_is_converted_by_from_dict_and_the_cli_only():
    # from_dict (--set, forms, configuration files) reads text for every kind ...
    config = HPMConfig.from_dict({
        "use_progressive": "no", "max_configs": "8", "validation_split": "0.25",
        "time_budget_s": "60", "families": "lgbm", "temperatures": "1,2",
        "selection_metric": "auc", "dask_scheduler": "none",
    })  # fmt: skip
    assert (config.use_progressive, config.max_configs, config.validation_split) == (
        False, 8, 0.25)
    assert (config.families, config.temperatures, config.time_budget_s) == (
        ("lgbm",), (1.0, 2.0), 60.0)
    # ... and refuses text it cannot read, naming the field.
    with pytest.raises(HPMKDInputError, match=r"HPMConfig.max_configs: cannot read '2.5'"):
        HPMConfig.from_dict({"max_configs": "2.5"})
    with pytest.raises(HPMKDInputError, match=r"HPMConfig.use_cache: cannot read 'maybe'"):
        HPMConfig.from_dict({"use_cache": "maybe"})


def test_values_of_the_right_type_are_normalized():
    from pathlib import Path

    import numpy as np

    config = HPMConfig(
        max_configs=np.int64(5), use_cache=np.bool_(False), time_budget_s=60,
        validation_split=np.float32(0.25), temperatures=np.array([1, 2]),
        families=["lgbm", np.str_("tree")], memory_dir=Path("/tmp/hpmkd-memory"),
    )  # fmt: skip
    assert type(config.max_configs) is int and config.max_configs == 5
    assert config.use_cache is False
    assert type(config.time_budget_s) is float and config.time_budget_s == 60.0
    assert type(config.validation_split) is float
    assert config.temperatures == (1.0, 2.0) and all(type(t) is float for t in config.temperatures)
    assert config.families == ("lgbm", "tree") and type(config.families[1]) is str
    assert config.memory_dir == "/tmp/hpmkd-memory"
    assert config == HPMConfig.from_dict(config.to_dict())  # a round trip changes nothing
    hash(config)


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


# ---------------------------------------------------------------------- fields without effect
def test_fields_are_only_reported_when_changed_and_unused():
    assert HPMConfig().ineffective_fields("hpm") == []
    assert HPMConfig().ineffective_fields("legacy") == []
    hpm_only = [s for s in SPECS if s.methods == ("hpm",)]
    # "legacy ignores 15 of 22" (issue 13), plus min_saving and noninferiority_margin, both
    # used, teacher_refit and teacher_refit_folds (issue 10), both used, and the capacity
    # climb's max_capacity_steps and min_compression (issue 12), and the final fit's
    # final_fit (used by both).
    assert len(hpm_only) == 17 and len(SPECS) == 29
    changed = {s.name: _changed(s) for s in hpm_only}
    config = HPMConfig(**changed)
    assert [name for name, _ in config.ineffective_fields("legacy")] == list(changed)
    assert all(why == "the legacy method does not use it"
               for _, why in config.ineffective_fields("legacy"))
    assert [name for name, _ in config.ineffective_fields("legacy", include_server=False)] == [
        name for name in changed if name not in SERVER_FIELDS]
    assert [name for name, _ in config.ineffective_fields("legacy", also_used=("use_cache",))
            ] == [name for name in changed if name != "use_cache"]
    with pytest.raises(HPMKDInputError, match="method='auto' is not a method that runs"):
        config.ineffective_fields("auto")


def _changed(spec: FieldSpec):
    """A valid value of the field other than its default."""
    return {
        "bool": lambda: not spec.default,
        "int": lambda: int(spec.min) if spec.default != spec.min else int(spec.min) + 1,
        "float": lambda: spec.default * 2 if spec.accepts(spec.default * 2) else spec.default / 2,
        "optional_float": lambda: 30.0,
        "optional_str": lambda: "tcp://127.0.0.1:1" if spec.name == "dask_scheduler" else "/x",
    }[spec.kind]()


NEEDS = {
    "n_jobs": ("use_parallel",), "dask_scheduler": ("use_parallel",),
    "min_improvement": ("use_progressive",), "max_chain_stages": ("use_progressive",),
    "cache_dir": ("use_cache",), "cache_size_limit_gb": ("use_cache",),
    "memory_dir": ("use_memory",), "teacher_refit_folds": ("teacher_refit=oof",),
}


def test_the_switches_a_field_needs_are_data_on_its_spec():
    assert {s.name: s.requires for s in SPECS if s.requires} == NEEDS
    for name, (switch,) in NEEDS.items():
        if "=" in switch:
            continue  # a choice, not a switch: see the next test
        spec = HPMConfig.field_spec(name)
        assert f"Only with {switch}=true." in spec.describe()
        off = HPMConfig(**{name: _changed(spec), switch: False})
        assert off.ineffective_fields("hpm") == [(name, f"{switch} is False")], name
        assert off.ineffective_messages("hpm")[0].startswith(
            f"HPMConfig.{name}={_changed(spec)!r} has no effect: {switch} is False; set "
            f"{switch}=True, or leave {name} ")
        on = HPMConfig(**{name: _changed(spec), switch: True})
        assert on.ineffective_fields("hpm") == [], name


def test_a_field_said_to_need_a_switch_really_does_nothing_without_it(tmp_path):
    from hpmkd.components.cache import IntelligentCache
    from hpmkd.components.memory import InMemoryStore, SharedOptimizationMemory
    from hpmkd.parallel import Executor

    executor = Executor.from_config(HPMConfig(n_jobs=4, dask_scheduler="tcp://127.0.0.1:1"))
    assert executor.describe() == {"backend": "sequential", "n_jobs": 1}
    cache = IntelligentCache.from_config(
        HPMConfig(use_cache=False, cache_dir=str(tmp_path / "c"), cache_size_limit_gb=5))
    assert cache.directory is None and not (tmp_path / "c").exists()
    memory = SharedOptimizationMemory.from_config(
        HPMConfig(use_memory=False, memory_dir=str(tmp_path / "m")))
    assert isinstance(memory.store, InMemoryStore) and not (tmp_path / "m").exists()


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


def test_a_field_that_needs_a_choice_warns_without_it():
    # teacher_refit_folds only counts with teacher_refit="oof"; set alone, the folds are
    # silently unused, so they are reported like a field whose switch is off.
    spec = HPMConfig.field_spec("teacher_refit_folds")
    assert "Only with teacher_refit=oof." in spec.describe()
    alone = HPMConfig(teacher_refit_folds=3)
    assert alone.ineffective_fields("hpm") == [("teacher_refit_folds", "teacher_refit is 'none'")]
    assert alone.ineffective_messages("legacy") == [
        "HPMConfig.teacher_refit_folds=3 has no effect: teacher_refit is 'none'; set "
        "teacher_refit='oof', or leave teacher_refit_folds at its default (5)."
    ]
    assert HPMConfig(teacher_refit_folds=3, teacher_refit="oof").ineffective_fields("hpm") == []
