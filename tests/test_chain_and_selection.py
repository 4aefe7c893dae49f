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
    warm = ({"family": "tree", "capacity": "small", "temperature": 3.0, "alpha": 0.7,
             "val_score": 0.5},)
    selected = manager.select({"rows": 1500.0}, warm, "run abc on credit (distance 0.01)")
    assert selected[0].warm_started and selected[0].temperature == 3.0
    assert "run abc" in selected[0].reason
    assert not any(s.warm_started for s in selected[1:])


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
