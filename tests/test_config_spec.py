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


def test_unconstrained_fields_are_the_switches():
    # Text is constrained too: never empty, and an address has its form.
    free = {s.name for s in SPECS if not s.constrained}
    assert free == {s.name for s in SPECS if s.kind == "bool"}
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
    "min_improvement": ("use_progressive", "max_chain_stages>1"),
    "max_chain_stages": ("use_progressive",),
    "cache_dir": ("use_cache",), "cache_size_limit_gb": ("use_cache",),
    "memory_dir": ("use_memory",), "teacher_refit_folds": ("teacher_refit=oof",),
    "min_saving": ("selection_rule=smaller_if_noninferior",),
    "noninferiority_margin": ("selection_rule=smaller_if_noninferior",),
    "min_compression": ("max_capacity_steps>0",),
    "temperatures": ("alphas>0",), "use_adaptive_temperature": ("alphas>0",),
    "use_multi_teacher": ("alphas>0",),
}


def test_the_switches_a_field_needs_are_data_on_its_spec():
    assert {s.name: s.requires for s in SPECS if s.requires} == NEEDS
    for name, (switch, *_) in NEEDS.items():
        if "=" in switch or ">" in switch:
            continue  # a choice or a bound, not a switch: see the tests below
        spec = HPMConfig.field_spec(name)
        assert f"Only with {switch}=true" in spec.describe()
        off = HPMConfig(**{name: _changed(spec), switch: False})
        assert off.ineffective_fields("hpm") == [(name, f"{switch} is False")], name
        assert off.ineffective_messages("hpm")[0].startswith(
            f"HPMConfig.{name}={_changed(spec)!r} has no effect: {switch} is False; set "
            f"{switch}=True, or leave {name} ")
        on = HPMConfig(**{name: _changed(spec), switch: True})
        assert on.ineffective_fields("hpm") == [], name


def _warned(config: HPMConfig, method: str = "hpm") -> dict[str, str]:
    """Field -> the sentence of its warning, as the CLI, the API and the app say it."""
    fields = [name for name, _ in config.ineffective_fields(method)]
    return dict(zip(fields, config.ineffective_messages(method), strict=True))


@pytest.mark.parametrize("method", ["hpm", "legacy"])
def test_the_rule_settings_warn_under_the_best_rule(method):
    config = HPMConfig(selection_rule="best", min_saving=3.0, noninferiority_margin=0.02)
    assert _warned(config, method) == {
        "min_saving": "HPMConfig.min_saving=3.0 has no effect: selection_rule is 'best'; "
        "set selection_rule='smaller_if_noninferior', or leave min_saving at its default "
        "(2.0).",
        "noninferiority_margin": "HPMConfig.noninferiority_margin=0.02 has no effect: "
        "selection_rule is 'best'; set selection_rule='smaller_if_noninferior', or leave "
        "noninferiority_margin at its default (0.01).",
    }
    # Under the rule that reads them, or at their defaults, nothing is said.
    assert _warned(config.with_updates(selection_rule="smaller_if_noninferior"), method) == {}
    assert _warned(HPMConfig(selection_rule="best"), method) == {}


def test_min_compression_warns_with_the_climb_off():
    config = HPMConfig(max_capacity_steps=0, min_compression=10.0)
    assert _warned(config) == {
        "min_compression": "HPMConfig.min_compression=10.0 has no effect: max_capacity_steps "
        "is 0; set max_capacity_steps above 0, or leave min_compression at its default (5.0)."
    }
    assert _warned(config.with_updates(max_capacity_steps=1)) == {}
    assert HPMConfig.field_spec("min_compression").describe().endswith(
        "Only with max_capacity_steps>0.")


def test_min_improvement_warns_with_a_one_stage_chain():
    config = HPMConfig(max_chain_stages=1, min_improvement=0.05)
    assert _warned(config) == {
        "min_improvement": "HPMConfig.min_improvement=0.05 has no effect: max_chain_stages is "
        "1; set max_chain_stages above 1, or leave min_improvement at its default (0.01)."
    }
    # Both conditions unmet: both named, and both fixes.
    both = _warned(config.with_updates(use_progressive=False))["min_improvement"]
    assert "use_progressive is False and max_chain_stages is 1; set use_progressive=True and " \
        "max_chain_stages above 1," in both
    assert _warned(config.with_updates(max_chain_stages=2)) == {}


@pytest.mark.parametrize("method", ["hpm", "legacy"])
def test_temperature_settings_warn_without_soft_targets(method):
    config = HPMConfig(alphas=(0.0,), temperatures=(1.0, 3.0), use_adaptive_temperature=False,
                       use_multi_teacher=True)
    warned = _warned(config, method)
    why = "no value of alphas is above 0 (alphas is (0.0,)); set alphas with a value above 0"
    assert warned["temperatures"] == (
        f"HPMConfig.temperatures=(1.0, 3.0) has no effect: {why}, or leave temperatures at "
        "its default ((1.0, 2.0, 4.0))."
    )
    if method == "hpm":
        assert set(warned) == {"temperatures", "use_adaptive_temperature", "use_multi_teacher"}
        assert warned["use_adaptive_temperature"].startswith(
            f"HPMConfig.use_adaptive_temperature=False has no effect: {why}, ")
    else:  # legacy uses neither switch at all, and says so
        assert "the legacy method does not use it" in warned["use_adaptive_temperature"]
    # One alpha above 0 is enough (the hard-label alpha beside it changes nothing).
    soft = _warned(config.with_updates(alphas=(0.0, 0.5)), method)
    assert set(soft) == (set() if method == "hpm" else {
        "use_adaptive_temperature", "use_multi_teacher"})


def test_the_api_warns_them_before_the_run(binary_frame, monkeypatch):
    import hpmkd.distiller
    from hpmkd import AutoDistiller, DistillationDataset, HPMKDConfigWarning

    class Stopped(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stopped

    monkeypatch.setattr(hpmkd.distiller.engine, "run", stop)  # the warnings come first
    ds = DistillationDataset(binary_frame.assign(p0=0.5, p1=0.5), target="target",
                             teacher_proba_cols=["p0", "p1"])
    config = HPMConfig(alphas=(0.0,), temperatures=(2.0,), selection_rule="best",
                       noninferiority_margin=0.05)
    with pytest.warns(HPMKDConfigWarning) as caught, pytest.raises(Stopped):
        AutoDistiller(ds, method="hpm", config=config).run()
    messages = [str(w.message) for w in caught if w.category is HPMKDConfigWarning]
    assert messages == config.ineffective_messages("hpm")
    assert [m.split("=", 1)[0] for m in messages] == [
        "HPMConfig.temperatures", "HPMConfig.noninferiority_margin"]


def test_the_app_and_the_help_show_the_new_conditions():
    config = HPMConfig(selection_rule="best", min_saving=3.0, alphas=(0.0,),
                       temperatures=(2.0,), max_capacity_steps=0, min_compression=9.0)
    messages = configform.ineffective_messages(config, "hpm")
    assert messages == config.ineffective_messages("hpm", include_server=False)
    assert {m.split("=", 1)[0] for m in messages} == {
        "HPMConfig.min_saving", "HPMConfig.temperatures", "HPMConfig.min_compression"}
    # With the method still open (no data yet), what has no effect under either method
    # (legacy has no climb: min_compression is idle there too).
    open_method = configform.ineffective_messages(config, None)
    assert open_method == messages
    help_text = HPMConfig.field_spec("temperatures").describe()
    assert help_text.endswith("Only with alphas>0.")


def test_a_field_said_to_need_a_condition_really_does_nothing_without_it():
    # Soft targets at alpha 0 are the labels whatever the temperature.
    import numpy as np

    from hpmkd.components.selection_rule import select_student
    from hpmkd.students import soft_targets
    from tests.test_selection_rule import _candidate, _labels

    rng = np.random.default_rng(0)
    teacher = rng.dirichlet([1, 1], size=50)
    y = rng.integers(0, 2, size=50)
    labels = soft_targets(teacher, y, temperature=1.0, alpha=0.0)
    for t in (0.5, 3.0, 16.0):
        np.testing.assert_array_equal(soft_targets(teacher, y, t, 0.0), labels)
    assert not np.array_equal(soft_targets(teacher, y, 3.0, 0.5), labels)  # can differ
    # Under "best", min_saving and the margin change neither the choice nor its record;
    # under the default rule the same candidates give another choice (so it can fail).
    y_val = _labels(1)
    big = _candidate("big", y_val, 1.2, 1, 100_000)
    alike = _candidate("alike", y_val, 1.19, 1, 10_000)
    settings = ((2.0, 0.01), (1.1, 0.2), (50.0, 0.0))
    decisions = [select_student([big, alike], y_val, None, "ks", "best", saving, margin, 0)
                 for saving, margin in settings]
    assert all(d == decisions[0] for d in decisions) and decisions[0][0] is big
    default_rule = select_student([big, alike], y_val, None, "ks", "smaller_if_noninferior",
                                  2.0, 0.05, 0)
    assert default_rule[0] is alike


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


# ---------------------------------------------------------------------- loose values refused
REFUSED = [
    # (field, value for HPMConfig, text for from_dict / --set, words of the message)
    ("families", ("lgbm", "lgbm"), "lgbm,lgbm", "'lgbm' is given more than once"),
    ("alphas", (0.5, 0.5), "0.5,0.5", "0.5 is given more than once"),
    ("temperatures", (2.0, 1.0, 2.0), "2,1,2", "2.0 is given more than once"),
    ("memory_dir", "", "", "the text is empty (to leave it unset, give none)"),
    ("cache_dir", "  ", " ", "the text is empty"),
    ("dask_scheduler", "not an address", "not an address",
     "the text does not have the form asked for; use a Dask scheduler address"),
    ("dask_scheduler", "tcp://host:99999", "tcp://host:99999", "does not have the form"),
    ("dask_scheduler", "localhost", "localhost", "does not have the form"),
]


@pytest.mark.parametrize(("name", "value", "text", "words"), REFUSED,
                         ids=[f"{r[0]}={r[2]!r}" for r in REFUSED])
def test_loose_values_are_refused_in_the_config_from_dict_and_set(
    name, value, text, words, tmp_path, capsys
):
    message = _rejects(name, value)
    assert message.startswith(f"HPMConfig.{name}=") and words in message, message
    assert HPMConfig.field_spec(name).requirement() in message  # what to give instead
    with pytest.raises(HPMKDInputError) as info:
        HPMConfig.from_dict({name: text})
    assert words in str(info.value)
    data = tmp_path / "data.csv"
    data.write_text("a,target\n1,0\n")
    code = main(["distill", str(data), "--target", "target", "--set", f"{name}={text}",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: HPMConfig.{name}=") and words in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", ["0.5,,0.1", "0.5,", ",0.5", ","])
def test_an_empty_list_item_is_refused_not_skipped(text):
    with pytest.raises(HPMKDInputError) as info:
        HPMConfig.from_dict({"alphas": text})
    position = [t.strip() for t in text.split(",")].index("") + 1
    assert str(info.value) == (
        f"HPMConfig.alphas: item {position} of {text!r} is empty; give the values separated "
        "by single commas, like 0.9,0.5,0.1,0."
    )
    with pytest.raises(HPMKDInputError, match=r"item 2 of 'lgbm, ,tree' is empty"):
        HPMConfig.from_dict({"families": "lgbm, ,tree"})
    # Spaces around the commas are still fine.
    assert HPMConfig.from_dict({"alphas": " 0.5 , 0.1 "}).alphas == (0.5, 0.1)


def test_none_unsets_but_empty_text_does_not():
    # The documented convention (--set help, HPMConfig.from_dict): none/null unset.
    for word in ("none", "None", "null"):
        assert HPMConfig.from_dict({"memory_dir": word}).memory_dir is None
        assert HPMConfig.from_dict({"time_budget_s": word}).time_budget_s is None
    assert "none" in HPMConfig.from_dict.__doc__
    with pytest.raises(HPMKDInputError, match="Give a value, or none to leave it unset"):
        HPMConfig.from_dict({"time_budget_s": ""})


@pytest.mark.parametrize("address", [
    "tcp://127.0.0.1:8786", "tcp://scheduler", "tls://sched.example.com:8786",
    "tls://[::1]:8786", "ucx://10.0.0.5:13337", "ws://host:8786", "inproc://10.0.0.1/4242/1",
    "sched-1.internal:8786", "127.0.0.1:8786", "[::1]:8786",
])
def test_dask_addresses_of_every_form_dask_reads_are_accepted(address):
    assert HPMConfig(dask_scheduler=address).dask_scheduler == address
    assert HPMConfig.from_dict({"dask_scheduler": address}).dask_scheduler == address
