"""Work removed from a run leaves its numbers unchanged: the one-prediction calibration
equals scikit-learn's own fit and predict_proba, and scoring several models on shared
bootstrap resamples equals scoring them one comparison at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hpmkd import DistillationDataset
from hpmkd.components.racing import PairedBootstrap
from hpmkd.evaluate import TrainingContext, calibrate, calibrate_and_predict
from hpmkd.students import (
    build_student,
    fit_on_soft_targets,
    proba_in_class_order,
    soft_targets,
    trial_params,
)
from tests.conftest import fit_lgbm_teacher, make_classification_frame


def _context(n_classes: int) -> TrainingContext:
    frame = make_classification_frame(n_rows=900, n_features=6, n_classes=n_classes, seed=4)
    teacher = fit_lgbm_teacher(frame.drop(columns="target"), frame["target"], 30)
    ds = DistillationDataset(frame, target="target", teacher=teacher)
    split = ds.split(0.25, 42)
    proba = ds.teacher_proba()
    return TrainingContext(
        X_train=ds.X.iloc[split.train], y_train=ds.y[split.train],
        X_val=ds.X.iloc[split.validation], y_val=ds.y[split.validation],
        teacher_train=proba[split.train], reference_val=proba[split.validation],
        classes=ds.classes, numeric=ds.numeric, categorical=ds.categorical, seed=42,
    )


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("family", ["logreg", "mlp", "lgbm", "tree"])
def test_one_prediction_calibration_equals_sklearn_fit(family, n_classes):
    ctx = _context(n_classes)
    params = trial_params(family, "small", 1, len(ctx.y_train), 42)
    model = build_student(family, params, ctx.numeric, ctx.categorical, 42)
    fit_on_soft_targets(
        model, ctx.X_train, soft_targets(ctx.teacher_train, ctx.y_train, 3.0, 0.5), ctx.classes
    )
    reference = calibrate(model, ctx)
    fast, val_proba = calibrate_and_predict(model, ctx)
    assert type(fast) is type(reference)
    # The same temperature and the same probabilities as scikit-learn's own steps.
    t_ref = reference.calibrated_classifiers_[0].calibrators[0].beta_
    t_fast = fast.calibrated_classifiers_[0].calibrators[0].beta_
    assert t_fast == pytest.approx(t_ref, rel=1e-9, abs=1e-12)
    np.testing.assert_array_equal(val_proba, proba_in_class_order(fast, ctx.X_val, ctx.classes))
    np.testing.assert_allclose(
        val_proba, proba_in_class_order(reference, ctx.X_val, ctx.classes), rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(fast.classes_, reference.classes_)
    assert fast.n_features_in_ == reference.n_features_in_


def test_scores_many_equals_one_comparison_at_a_time():
    rng = np.random.default_rng(0)
    n = 700
    y = rng.integers(0, 2, n)
    probas = []
    for shift in (0.1, 0.2, 0.3):
        p = np.clip(rng.normal(0.5 + shift * (y - 0.5), 0.2), 0, 1)
        p[::5] = np.round(p[::5], 1)  # ties
        probas.append(np.column_stack([1 - p, p]))
    for metric in ("ks", "accuracy"):
        together = PairedBootstrap(y, None, metric, n_boot=150, seed=9).scores_many(probas)
        for proba, scores in zip(probas, together, strict=True):
            alone = PairedBootstrap(y, proba, metric, n_boot=150, seed=9)._incumbent
            np.testing.assert_array_equal(scores, alone)
        # differences() (incumbent minus candidate) from shared scores, bit for bit.
        one = PairedBootstrap(y, probas[0], metric, n_boot=150, seed=9).differences(probas[1])
        a, b = together[0], together[1]
        valid = ~(np.isnan(a) | np.isnan(b))
        np.testing.assert_array_equal(one, a[valid] - b[valid])


@pytest.mark.parametrize("family", ["lgbm", "mlp"])
def test_shared_validation_encoding_equals_the_pipelines_own_predictions(family):
    # Candidates on the same rows share the encoded validation rows; their validation
    # probabilities are still exactly those of their own pipeline on the raw rows.
    from hpmkd.evaluate import train_candidate
    from hpmkd.students import StudentSpec

    frame = make_classification_frame(n_rows=900, n_features=5, seed=6)
    rng = np.random.default_rng(6)
    frame["city"] = rng.choice(["north", "south", "east", None], size=len(frame))
    frame["kind"] = np.where(frame["f0"] > 0, "a", "b")
    teacher_frame = frame.drop(columns=["target", "city", "kind"])
    teacher = fit_lgbm_teacher(teacher_frame, frame["target"], 30)
    proba = teacher.predict_proba(teacher_frame)
    from hpmkd.data import prepare_features

    X = prepare_features(frame.drop(columns="target"))
    y = frame["target"].to_numpy()
    train, val = np.arange(600), np.arange(600, 900)
    ctx = TrainingContext(
        X_train=X.iloc[train], y_train=y[train], X_val=X.iloc[val], y_val=y[val],
        teacher_train=proba[train], reference_val=proba[val], classes=[0, 1],
        numeric=[f"f{i}" for i in range(5)], categorical=["city", "kind"], seed=42,
    )
    for trial, full in [(0, True), (1, True), (2, False), (1, False)]:
        params = trial_params(family, "small", trial, len(train), 42)
        result = train_candidate(StudentSpec(family, "small", 2.0, 0.5, trial, params), ctx,
                                 full=full)
        own = proba_in_class_order(result.model, ctx.X_val, ctx.classes)
        np.testing.assert_array_equal(result.val_proba, own)
    from hpmkd.evaluate import _VAL_ENCODED

    assert any(train_ref() is ctx.X_train for train_ref, *_ in _VAL_ENCODED)


@pytest.mark.parametrize("family", ["lgbm", "mlp", "logreg"])
def test_text_held_as_objects_fits_the_same_student(family):
    # The dataset holds pandas' Arrow-backed text columns as object arrays of the same
    # values (hpmkd.data.text_as_objects): a student fitted on them pickles to the very
    # bytes of one fitted on the text as it came, and predicts the same on either.
    import pickle

    from hpmkd.data import text_as_objects

    frame = make_classification_frame(n_rows=600, n_features=4, seed=8)
    rng = np.random.default_rng(8)
    frame["city"] = pd.Series(rng.choice(["north", "south", "east", None], size=600), dtype="str")
    frame["kind"] = pd.Series(np.where(frame["f0"] > 0, "a", "b"), dtype="str")
    X = frame.drop(columns="target")
    objects = text_as_objects(X)
    assert objects["city"].dtype == object
    assert objects["city"].isna().sum() == X["city"].isna().sum()
    targets = np.column_stack([1 - frame["target"].to_numpy() * 0.8 - 0.1,
                               frame["target"].to_numpy() * 0.8 + 0.1])
    numeric, categorical = [f"f{i}" for i in range(4)], ["city", "kind"]
    fitted = []
    for rows in (X, objects):
        model = build_student(family, trial_params(family, "small", 0, 600, 0), numeric,
                              categorical, 0, 1)
        fitted.append(fit_on_soft_targets(model, rows, targets, [0, 1]))
    assert pickle.dumps(fitted[0]) == pickle.dumps(fitted[1])
    np.testing.assert_array_equal(fitted[0].predict_proba(X), fitted[1].predict_proba(objects))
