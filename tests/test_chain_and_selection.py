"""ProgressiveDistillationChain and AdaptiveConfigurationManager do real, measured work."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpmkd import DistillationDataset, HPMConfig
from hpmkd.components.chain import ProgressiveDistillationChain
from hpmkd.components.config_manager import AdaptiveConfigurationManager
from hpmkd.components.temperature import MetaTemperatureScheduler
from hpmkd.evaluate import TrainingContext, train_candidate
from hpmkd.students import proba_in_class_order
from tests.conftest import fit_lgbm_teacher, make_classification_frame


def _context(n_rows: int = 1500, seed: int = 0) -> TrainingContext:
    frame = make_classification_frame(n_rows=n_rows, n_features=6, seed=seed)
    teacher = fit_lgbm_teacher(frame.drop(columns="target"), frame["target"], 80)
    ds = DistillationDataset(frame, target="target", teacher=teacher)
    split = ds.split(0.25, 42)
    proba = ds.teacher_proba()
    return TrainingContext(
        X_train=ds.X.iloc[split.train], y_train=ds.y[split.train],
        X_val=ds.X.iloc[split.validation], y_val=ds.y[split.validation],
        teacher_train=proba[split.train], reference_val=proba[split.validation],
        classes=ds.classes,
        numeric=ds.numeric, categorical=ds.categorical, seed=42,
    ), ds


@pytest.fixture(scope="module")
def ctx():
    return _context()[0]


def _recording_train(ctx, log):
    def train(spec, source, name=None, teacher_train=None):
        result = train_candidate(spec, ctx, source=source, name=name, teacher_train=teacher_train)
        log.append((spec, teacher_train))
        return result
    return train


def test_chain_stage_learns_from_previous_stage_and_stops_on_small_gain(ctx):
    log = []
    chain = ProgressiveDistillationChain(
        "tree", alpha=0.8, scheduler=MetaTemperatureScheduler((1.0, 2.0)),
        min_improvement=0.01, max_stages=4,
    )
    outcome = chain.run(ctx, _recording_train(ctx, log), seed=42)
    records = outcome.records
    assert 1 <= len(records) <= 4
    assert records[0]["capacity"] == "small"
    # Stage 1 learns from the teacher, stage 2 from teacher + stage 1's probabilities.
    assert log[0][1] is ctx.teacher_train
    if len(log) > 1:
        stage1 = proba_in_class_order(outcome.stages[0].model, ctx.X_train, ctx.classes)
        expected = 0.5 * ctx.teacher_train + 0.5 * stage1
        np.testing.assert_allclose(log[1][1], expected / expected.sum(1, keepdims=True))
    for rec, stage in zip(records, outcome.stages, strict=True):
        assert rec["val_metric"] == stage.val["ks"]
    last = records[-1]
    if len(records) < 4:
        assert not last["kept"] and last["gain"] < 0.01
        assert "below min_improvement" in outcome.stop_reason
    else:
        assert outcome.stop_reason == "all 4 stages trained"


def test_chain_with_huge_min_improvement_stops_after_stage_two(ctx):
    chain = ProgressiveDistillationChain(
        "logreg", alpha=0.5, scheduler=MetaTemperatureScheduler(), min_improvement=0.9,
        max_stages=3,
    )
    outcome = chain.run(ctx, _recording_train(ctx, []), seed=42)
    assert [r["kept"] for r in outcome.records] == [True, False]


def test_manager_screens_ranks_and_keeps_diverse_configs(ctx):
    cfg = HPMConfig(max_configs=6, alphas=(0.9, 0.5, 0.1))
    manager = AdaptiveConfigurationManager(cfg, 42)
    scores = manager.screen(ctx)
    # Every family x capacity was measured (large capacity dropped below 2,000 train rows).
    assert set(scores) == {(f, c) for f in cfg.families for c in ("small", "medium")}
    assert all(math.isfinite(s) for s in scores.values())
    assert set(manager.alpha_scores_) == {0.9, 0.5, 0.1}
    selected = manager.select({"rows": 1500.0})
    assert 1 <= len(selected) <= 6
    best_pair = max(scores, key=scores.get)
    assert (selected[0].family, selected[0].capacity) == best_pair
    assert all(s.reason.startswith("screening val ks") for s in selected)
    assert len({s.label() for s in selected}) == len(selected)
    assert all(s.temperature is None for s in selected)  # adaptive: the scheduler decides


def test_manager_puts_warm_start_configs_first(ctx):
    cfg = HPMConfig(max_configs=4, use_adaptive_temperature=False)
    manager = AdaptiveConfigurationManager(cfg, 42)
    manager.screen(ctx)
    warm = ({"family": "tree", "capacity": "small", "temperature": 4.0, "alpha": 0.1,
             "val_score": 0.5},)
    selected = manager.select({"rows": 1500.0}, warm, "run abc on credit (distance 0.01)")
    assert selected[0].warm_started and selected[0].temperature == 4.0
    assert "run abc" in selected[0].reason
    assert not any(s.warm_started for s in selected[1:])
    assert manager.warm_use_ == [
        "trained as tree-small a=0.1 T=4; every trial at its temperature 4"]


def _warm(family, capacity, t, alpha, score, run="r1"):
    return {"family": family, "capacity": capacity, "temperature": t, "alpha": alpha,
            "val_score": score, "run_id": run}


@pytest.fixture(scope="module")
def screened(ctx):
    """A manager that screened ``ctx`` (n_trials=2), for select() with warm settings."""
    manager = AdaptiveConfigurationManager(HPMConfig(max_configs=5, n_trials=2), 42)
    manager.screen(ctx)
    return manager


def test_stored_temperatures_start_the_trials_and_a_merge_is_recorded(screened):
    # Three stored settings of one configuration of the scheduler (they differ only in T)
    # and two labels-only settings (where T does nothing): two configurations, and every
    # stored setting says what became of it and of its temperature.
    warm = (_warm("logreg", "small", 4.0, 0.9, 0.57), _warm("logreg", "small", 1.0, 0.9, 0.56),
            _warm("lgbm", "small", 2.0, 0.0, 0.55, "r2"),
            _warm("logreg", "small", 2.0, 0.9, 0.55), _warm("lgbm", "small", 4.0, 0.0, 0.54))
    selected = screened.select({"rows": 1500.0}, warm, "warm start from 2 similar runs")
    first, second = selected[:2]
    assert (first.label(), first.start_temperatures) == ("logreg-small a=0.9 T=4,1,auto",
                                                         (4.0, 1.0))
    assert first.trial_temperature(0) == 4.0 and first.trial_temperature(1) == 1.0
    assert first.trial_temperature(2) is None  # the scheduler's
    assert first.reason.endswith("val score 0.5700; also its setting at T=1 (val score 0.5600)")
    assert (second.label(), second.start_temperatures) == ("lgbm-small a=0 T=auto", ())
    assert not any(s.warm_started for s in selected[2:])
    assert len({s.key() for s in selected}) == len(selected)
    merged = ("merged into logreg-small a=0.9 T=4,1,auto (the same family, capacity and "
              "alpha, whose temperatures the scheduler sets: one configuration)")
    labels_only = "is not used: alpha 0 learns from the labels only, which no temperature changes"
    assert screened.warm_use_ == [
        "trained as logreg-small a=0.9 T=4,1,auto; its temperature 4 is trial 0's",
        f"{merged}; its temperature 1 is trial 1's",
        f"trained as lgbm-small a=0 T=auto; its temperature 2 {labels_only}",
        f"{merged}; its temperature 2 is not used: all n_trials=2 trial(s) start at stored "
        "temperatures already",
        "merged into lgbm-small a=0 T=auto (the same family, capacity and alpha); its "
        f"temperature 4 {labels_only}",
    ]
    assert first.to_dict()["start_temperatures"] == [4.0, 1.0]


def test_one_stored_temperature_leaves_the_later_trials_to_the_scheduler(screened):
    selected = screened.select({"rows": 1500.0}, (_warm("tree", "medium", 2.0, 0.5, 0.5),), "w")
    assert selected[0].label() == "tree-medium a=0.5 T=2,auto"
    assert screened.warm_use_ == [
        "trained as tree-medium a=0.5 T=2,auto; its temperature 2 is trial 0's (the scheduler "
        "sets trial 1)"]


def test_stored_settings_outside_the_search_space_are_not_used_and_say_why(ctx):
    cfg = HPMConfig(max_configs=2, families=("logreg", "tree"), alphas=(0.5, 0.0),
                    use_adaptive_temperature=False, temperatures=(1.0, 2.0))
    manager = AdaptiveConfigurationManager(cfg, 42)
    manager.screen(ctx)
    warm = (_warm("mlp", "small", 2.0, 0.5, 0.6), _warm("tree", "small", 2.0, 0.9, 0.6),
            _warm("tree", "small", 4.0, 0.5, 0.6), _warm("tree", "huge", 2.0, 0.5, 0.6),
            _warm("tree", "small", 2.0, 0.5, 0.6), _warm("logreg", "small", 1.0, 0.5, 0.5),
            _warm("logreg", "medium", 1.0, 0.5, 0.4))
    selected = manager.select({"rows": 1500.0}, warm, "w")
    assert [s.label() for s in selected] == ["tree-small a=0.5 T=2", "logreg-small a=0.5 T=1"]
    assert manager.warm_use_ == [
        "not used: family 'mlp' is not searched (families=logreg,tree)",
        "not used: alpha 0.9 is not searched (alphas=0.5,0)",
        "not used: temperature 4 is not searched (use_adaptive_temperature is off, "
        "temperatures=1,2)",
        "not used: capacity 'huge' is not one of small, medium, large",
        "trained as tree-small a=0.5 T=2; every trial at its temperature 2",
        "trained as logreg-small a=0.5 T=1; every trial at its temperature 1",
        "not used: the max_configs=2 slots are taken by stored settings ranked before it",
    ]


def test_different_data_changes_the_ranking():
    # Linear signal favours logreg; an XOR-like signal needs trees.
    ctx_lin, _ = _context(1200, seed=1)
    rng = np.random.default_rng(0)
    import pandas as pd
    X = rng.normal(size=(1200, 4))
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["target"] = y
    teacher = fit_lgbm_teacher(frame.drop(columns="target"), y, 80)
    ds = DistillationDataset(frame, target="target", teacher=teacher)
    split = ds.split(0.25, 42)
    p = ds.teacher_proba()
    ctx_xor = TrainingContext(
        ds.X.iloc[split.train], ds.y[split.train], ds.X.iloc[split.validation],
        ds.y[split.validation], p[split.train], p[split.validation], ds.classes, ds.numeric,
        ds.categorical, 42,
    )
    cfg = HPMConfig(max_configs=4)
    m_lin = AdaptiveConfigurationManager(cfg, 42)
    m_xor = AdaptiveConfigurationManager(cfg, 42)
    m_lin.screen(ctx_lin)
    m_xor.screen(ctx_xor)
    assert m_xor.screen_scores_[("logreg", "medium")] < 0.3
    best_xor = max(m_xor.screen_scores_, key=m_xor.screen_scores_.get)
    assert best_xor[0] in {"tree", "lgbm"}
    assert m_lin.screen_scores_[("logreg", "medium")] > 0.5
