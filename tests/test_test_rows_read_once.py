"""The test rows are read once: poisoning their labels changes no selection decision.

Screening, racing, temperatures, chain stopping, the capacity climb, attention, fusion and
the selection rule all run on training and validation rows; only the compare phase reads
the test rows, for the selected student, the teacher and the twin.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig
from tests.conftest import fit_lgbm_teacher, make_classification_frame
from tests.test_capacity_climb import FAST, oracle_frame, screen_large_only


def _run(train, test, teachers):
    ds = DistillationDataset(train, target="target", teacher=teachers, test_data=test)
    config = HPMConfig(
        max_configs=4, n_trials=2, families=("logreg", "tree", "lgbm"),
        use_multi_teacher=True, use_cache=False, use_memory=False,
    )
    distiller = AutoDistiller(ds, method="hpm", config=config, random_state=7)
    distiller.run()
    return distiller


def test_poisoned_test_labels_change_no_selection_decision():
    frame = make_classification_frame(n_rows=1600, n_features=6, seed=3)
    train, test = frame.iloc[:1200], frame.iloc[1200:].reset_index(drop=True)
    X, y = train.drop(columns="target"), train["target"]
    teachers = [fit_lgbm_teacher(X, y, 60), fit_lgbm_teacher(X, y.sample(frac=1, random_state=1)
                                                            .to_numpy(), 30)]
    clean = _run(train, test, teachers)
    poisoned_test = test.assign(
        target=np.random.default_rng(0).permutation(test["target"].to_numpy())
    )
    poisoned = _run(train, poisoned_test, teachers)
    a, b = clean.results_df, poisoned.results_df
    val_cols = [c for c in a.columns if c.startswith("val_")] + [
        "name", "source", "temperature", "alpha", "trial", "params", "size_bytes", "selected"
    ]
    assert a[val_cols].equals(b[val_cols])
    ca, cb = clean.result_.components, poisoned.result_.components
    for name in ("selection", "warm_start", "chain", "temperature", "racing", "halving",
                 "capacity", "attention", "teacher_attention", "selection_rule"):
        record_a, record_b = getattr(ca, name), getattr(cb, name)
        if name == "selection":  # a clock, not a decision
            record_a = dataclasses.replace(record_a, screen_seconds=None)
            record_b = dataclasses.replace(record_b, screen_seconds=None)
        assert record_a == record_b, name
    assert clean.best_name == poisoned.best_name
    # The poison is real: the test figures did change.
    assert clean.best_metrics["ks"] != poisoned.best_metrics["ks"]


def test_poisoned_test_labels_change_no_step_of_the_capacity_climb():
    # A table where the climb trains rungs above large (see tests/test_capacity_climb.py).
    train, test = oracle_frame(6000), oracle_frame(1500, seed=9)
    poisoned = test.assign(
        target=np.random.default_rng(1).permutation(test["target"].to_numpy())
    )
    runs = []
    for test_rows in (test, poisoned):
        ds = DistillationDataset(
            train, target="target", teacher_proba_cols=["p0", "p1"], test_data=test_rows
        )
        config = HPMConfig(**{**FAST, "use_cache": False, "max_capacity_steps": 2})
        distiller = AutoDistiller(ds, method="hpm", config=config, random_state=42)
        with screen_large_only():
            distiller.run()
        runs.append(distiller)
    clean, dirty = (r.result_.components.capacity for r in runs)
    assert clean.steps, clean.stop_reason  # the climb really trained rungs

    def decisions(record):  # everything but the clock
        steps = tuple({k: v for k, v in s.items() if k != "fit_seconds"} for s in record.steps)
        return dataclasses.replace(record, steps=steps)

    assert decisions(clean) == decisions(dirty)
    assert runs[0].best_name == runs[1].best_name
    assert runs[0].best_metrics["ks"] != runs[1].best_metrics["ks"]


def test_poisoned_test_labels_change_no_warm_start_halving_or_legacy_decision(
    tmp_path, monkeypatch
):
    # The paths the first test leaves empty: a warm start from a past run in the memory,
    # successive halving (its threshold lowered so a small table crosses it) and the
    # legacy grid. Each run of a pair starts from its own copy of the same memory.
    import shutil

    import hpmkd.engine.session as session_module
    import hpmkd.engine.train as train_module

    monkeypatch.setattr(session_module, "HALVING_MIN_ROWS", 300)
    monkeypatch.setattr(train_module, "HALVING_MIN_ROWS", 300)
    past = make_classification_frame(n_rows=1600, n_features=6, seed=4)
    frame = make_classification_frame(n_rows=1600, n_features=6, seed=5)
    train, test = frame.iloc[:1200], frame.iloc[1200:].reset_index(drop=True)
    poisoned_test = test.assign(
        target=np.random.default_rng(2).permutation(test["target"].to_numpy())
    )
    teacher = fit_lgbm_teacher(train.drop(columns="target"), train["target"], 60)
    memory = tmp_path / "memory"
    config = HPMConfig(max_configs=4, n_trials=2, families=("logreg", "tree", "lgbm"),
                       use_cache=False, memory_dir=str(memory))
    past_teacher = fit_lgbm_teacher(past.drop(columns="target"), past["target"], 60)
    AutoDistiller(DistillationDataset(past, target="target", teacher=past_teacher),
                  method="hpm", config=config, random_state=3).run()
    runs = {}
    for label, test_rows in (("clean", test), ("poisoned", poisoned_test)):
        copy = tmp_path / f"memory-{label}"
        shutil.copytree(memory, copy)
        ds = DistillationDataset(train, target="target", teacher=teacher, test_data=test_rows)
        configs = {"hpm": config.with_updates(memory_dir=str(copy)),
                   "legacy": HPMConfig(families=("logreg", "tree", "lgbm"))}
        for method, method_config in configs.items():
            distiller = AutoDistiller(ds, method=method, random_state=7, config=method_config)
            distiller.run()
            runs[label, method] = distiller
    hpm = runs["clean", "hpm"].result_.components
    assert hpm.warm_start.used and hpm.warm_start.runs  # the warm start really happened
    assert hpm.halving.enabled  # and so did halving
    for method in ("hpm", "legacy"):
        a, b = runs["clean", method], runs["poisoned", method]
        val_cols = [c for c in a.results_df.columns if c.startswith("val_")] + [
            "name", "source", "temperature", "alpha", "trial", "params", "size_bytes",
            "selected",
        ]
        assert a.results_df[val_cols].equals(b.results_df[val_cols]), method
        assert a.best_name == b.best_name, method
        assert a.best_metrics["ks"] != b.best_metrics["ks"], method  # the poison is real
    ca, cb = runs["clean", "hpm"].result_.components, runs["poisoned", "hpm"].result_.components
    for name in ("warm_start", "halving", "chain", "temperature", "racing", "selection_rule"):
        assert getattr(ca, name) == getattr(cb, name), name
