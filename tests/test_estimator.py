"""HPMKDClassifier: the scikit-learn contract (params, clone, fitted attributes, errors),
teachers fitted on DataFrames and on arrays, Pipeline, GridSearchCV, cross_val_score, and
the distillation contract (a different teacher gives a different student)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils import estimator_checks

from hpmkd import AutoDistiller, HPMConfig, HPMKDClassifier, HPMKDInputError
from tests.conftest import fit_lgbm_teacher, make_classification_frame

INIT_ARGS = {"teacher", "method", "config", "test_size", "random_state"}


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("HPMKD_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def fast():
    return HPMConfig(
        max_configs=2, n_trials=1, families=("logreg", "tree"),
        use_progressive=False, use_cache=False, use_memory=False,
    )


@pytest.fixture(scope="module")
def data():
    frame = make_classification_frame(n_rows=600, n_features=5, seed=3)
    return frame.drop(columns="target"), frame["target"].to_numpy()


@pytest.fixture(scope="module")
def teacher(data):
    X, y = data
    return fit_lgbm_teacher(X, y)


@pytest.fixture(scope="module")
def fitted(data, teacher, fast):
    X, y = data
    return HPMKDClassifier(teacher=teacher, method="hpm", config=fast, random_state=0).fit(X, y)


class ArrayOnlyTeacher:
    """A teacher that accepts nothing but NumPy arrays (like many hand-written models)."""

    def __init__(self, model):
        self.model = model
        self.classes_ = model.classes_
        self.n_features_in_ = model.n_features_in_

    def predict_proba(self, X):
        assert type(X) is np.ndarray, f"teacher got {type(X).__name__}"
        return self.model.predict_proba(X)


# ----------------------------------------------------------------------------- contract
def test_get_params_returns_exactly_the_init_arguments(teacher, fast):
    kd = HPMKDClassifier(teacher=teacher, config=fast)
    params = kd.get_params()
    assert set(params) == INIT_ARGS
    assert params["teacher"] is teacher and params["config"] is fast
    assert kd.get_params(deep=False) == params
    assert kd.set_params(random_state=7, method="legacy") is kd
    assert (kd.random_state, kd.method) == (7, "legacy")
    with pytest.raises(ValueError, match="Invalid parameter"):
        kd.set_params(teacher__n_estimators=3)


@pytest.mark.parametrize(
    "check",
    [
        "check_no_attributes_set_in_init",
        "check_parameters_default_constructible",
        "check_get_params_invariance",
        "check_set_params",
        "check_do_not_raise_errors_in_init_or_set_params",
        "check_estimator_cloneable",
        "check_estimator_repr",
        "check_estimators_unfitted",
        "check_mixin_order",
    ],
)
def test_applicable_sklearn_estimator_checks(check):
    # The checks that fit on generated data cannot apply: they have no teacher for it.
    getattr(estimator_checks, check)("HPMKDClassifier", HPMKDClassifier())


def test_init_stores_arguments_without_validating():
    kd = HPMKDClassifier(method="nonsense", config="not a config", test_size=9)
    assert (kd.method, kd.config, kd.test_size) == ("nonsense", "not a config", 9)


def test_clone_copies_params_and_keeps_the_fitted_teacher(fitted, teacher):
    copy = clone(fitted)
    assert copy.get_params()["teacher"] is teacher
    assert copy.get_params()["config"] == fitted.config
    assert not hasattr(copy, "classes_") and not hasattr(copy, "distiller_")


def test_unfitted_predict_raises_not_fitted(teacher, data):
    with pytest.raises(NotFittedError):
        HPMKDClassifier(teacher=teacher).predict(data[0])


def test_fit_without_teacher_is_an_input_error(data):
    with pytest.raises(HPMKDInputError, match="needs a fitted teacher"):
        HPMKDClassifier().fit(*data)


def test_bad_method_and_config_are_rejected_at_fit(data, teacher):
    with pytest.raises(HPMKDInputError, match="method="):
        HPMKDClassifier(teacher=teacher, method="nonsense").fit(*data)
    with pytest.raises(HPMKDInputError, match="no field 'max_config'"):
        HPMKDClassifier(teacher=teacher, config={"max_config": 2}).fit(*data)


# ----------------------------------------------------------------------------- fitted state
def test_fit_returns_self_with_fitted_attributes(fitted, data, teacher):
    X, y = data
    assert isinstance(fitted.distiller_, AutoDistiller)
    assert fitted.distiller_.method_ == "hpm"
    np.testing.assert_array_equal(fitted.classes_, [0, 1])
    assert fitted.n_features_in_ == 5
    assert list(fitted.feature_names_in_) == list(X.columns)
    assert fitted.results_ is fitted.distiller_.results_df
    assert fitted.best_model_ is fitted.distiller_.best_model()
    assert (fitted.results_["source"] == "teacher").sum() == 1
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba, fitted.distiller_.predict_proba(X))
    assert set(fitted.predict(X)) <= {0, 1}
    assert fitted.score(X, y) > 0.75
    # Arrays are read by position; extra or reordered DataFrame columns by name.
    np.testing.assert_allclose(fitted.predict_proba(X.to_numpy()), proba)
    np.testing.assert_allclose(fitted.predict_proba(X[X.columns[::-1]].assign(id=1)), proba)
    with pytest.raises(HPMKDInputError, match="4 features"):
        fitted.predict_proba(X.to_numpy()[:, :4])


def test_string_labels_come_back_as_labels(data, teacher, fast):
    X, y = data
    labels = np.where(y == 1, "bad", "good")
    t = fit_lgbm_teacher(X, labels)
    kd = HPMKDClassifier(teacher=t, method="legacy", config=fast).fit(X, labels)
    np.testing.assert_array_equal(kd.classes_, ["bad", "good"])
    assert set(kd.predict(X)) <= {"bad", "good"}
    # Column j of predict_proba is classes_[j]: agree with the teacher's own order.
    proba_bad = kd.predict_proba(X)[:, 0]
    assert np.corrcoef(proba_bad, t.predict_proba(X)[:, list(t.classes_).index("bad")])[0, 1] > 0.8
    assert "__target__" not in kd.distiller_.dataset.features


def test_target_name_cannot_clash_with_a_feature(data, teacher, fast):
    X, y = data
    Xc = X.assign(__target__=X["f0"])
    t = fit_lgbm_teacher(Xc, y)
    kd = HPMKDClassifier(teacher=t, method="legacy", config=fast).fit(Xc, y)
    assert kd.distiller_.dataset.features == list(Xc.columns)
    assert kd.distiller_.dataset.target not in Xc.columns


def test_legacy_method_runs_the_config_grid(data, teacher, fast):
    kd = HPMKDClassifier(teacher=teacher, method="legacy", config=fast).fit(*data)
    grid = kd.results_[kd.results_["source"] == "grid"]
    assert kd.distiller_.method_ == "legacy"
    soft = [a for a in fast.alphas if a > 0]
    hard = len(fast.alphas) - len(soft)  # alpha 0 ignores the temperature: one per family
    assert len(grid) == len(fast.families) * (len(fast.temperatures) * len(soft) + hard)


# ----------------------------------------------------------------------------- array teachers
@pytest.mark.parametrize("kind", ["lgbm", "sklearn", "array_only"])
def test_teacher_fitted_on_arrays_is_scored_on_arrays(data, fast, kind):
    X, y = data
    values = X.to_numpy()
    base = fit_lgbm_teacher(values, y) if kind == "lgbm" else LogisticRegression().fit(values, y)
    t = ArrayOnlyTeacher(base) if kind == "array_only" else base
    with warnings.catch_warnings():
        # e.g. "X has feature names, but LogisticRegression was fitted without feature names"
        warnings.filterwarnings("error", message=".*feature names.*")
        kd = HPMKDClassifier(config=fast, method="legacy").fit(values, y, teacher=t)
        proba = kd.predict_proba(values)
    assert not hasattr(kd, "feature_names_in_") and kd.n_features_in_ == 5
    teacher_proba = kd.distiller_.dataset.teacher_proba()
    np.testing.assert_allclose(teacher_proba, base.predict_proba(values))
    assert np.mean((proba[:, 1] > 0.5) == (teacher_proba[:, 1] > 0.5)) > 0.85
    # Fitted on arrays, a DataFrame is read by position whatever its column names.
    np.testing.assert_allclose(kd.predict_proba(X.set_axis(list("abcde"), axis=1)), proba)


def test_named_teacher_with_array_input_says_what_to_do(data, teacher, fast):
    X, y = data
    with pytest.raises(HPMKDInputError, match=r"fitted on named columns \('f0'.*DataFrame"):
        HPMKDClassifier(teacher=teacher, config=fast).fit(X.to_numpy(), y)


def test_refit_on_arrays_forgets_feature_names(data, fast):
    X, y = data
    t = fit_lgbm_teacher(X.to_numpy(), y)
    kd = HPMKDClassifier(teacher=t, method="legacy", config=fast).fit(X, y)
    assert hasattr(kd, "feature_names_in_")
    assert not hasattr(kd.fit(X.to_numpy(), y), "feature_names_in_")


# ----------------------------------------------------------------------------- sklearn tools
def test_pipeline_with_a_teacher_fitted_on_the_transformed_arrays(data, fast):
    X, y = data
    scaled = StandardScaler().fit_transform(X)  # what the pipeline's first step outputs
    t = LogisticRegression().fit(scaled, y)
    pipe = Pipeline([("scale", StandardScaler()), ("kd", HPMKDClassifier(teacher=t, config=fast))])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*feature names.*")
        pipe.fit(X, y)
        proba = pipe.predict_proba(X)
    kd = pipe.named_steps["kd"]
    np.testing.assert_array_equal(pipe.classes_, [0, 1])
    np.testing.assert_allclose(kd.distiller_.dataset.teacher_proba(), t.predict_proba(scaled))
    assert np.mean(pipe.predict(X) == t.predict(scaled)) > 0.85
    assert proba.shape == (len(X), 2)
    assert "kd__random_state" in pipe.get_params()
    scores = cross_val_score(pipe, X, y, cv=2)
    assert scores.shape == (2,) and np.all(scores > 0.7)


def test_grid_search_over_seed_and_config_keeps_the_teacher(data, teacher, fast):
    X, y = data
    other = HPMConfig.from_dict({**fast.to_dict(), "families": ["tree"]})
    search = GridSearchCV(
        HPMKDClassifier(teacher=teacher, method="legacy", config=fast),
        {"random_state": [0, 1], "config": [fast, other]}, cv=2,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = search.best_estimator_
    assert best.teacher is teacher and hasattr(best, "classes_")
    assert search.score(X, y) > 0.75
    teacher.predict_proba(X)  # the user's teacher is still fitted and untouched


def test_cross_val_score_with_the_teacher_as_a_fit_param(data, teacher, fast):
    X, y = data
    scores = cross_val_score(
        HPMKDClassifier(config=fast, method="legacy"), X, y, cv=2, params={"teacher": teacher},
        scoring="roc_auc",
    )
    assert scores.shape == (2,) and np.all(scores > 0.8)


def test_fitted_classifier_pickles(fitted, data):
    X, _ = data
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(again.predict_proba(X), fitted.predict_proba(X))


# ----------------------------------------------------------------------------- distillation
def test_a_different_teacher_gives_a_different_student(data):
    X, y = data
    # Two teachers that disagree: one follows the label, the other a different feature.
    teacher_a = fit_lgbm_teacher(X, y)
    teacher_b = fit_lgbm_teacher(X, (X["f2"] + 0.3 * X["f3"] > 0).astype(int).to_numpy())
    config = HPMConfig(
        families=("tree",), temperatures=(1.0,), alphas=(1.0,),
        use_progressive=False, use_cache=False, use_memory=False,
    )
    kd = HPMKDClassifier(method="legacy", config=config, random_state=0)
    a = clone(kd).fit(X, y, teacher=teacher_a)
    b = clone(kd).fit(X, y, teacher=teacher_b)
    pa, pb = a.predict(X), b.predict(X)
    assert np.mean(pa != pb) > 0.2
    # Each student agrees with its own teacher more than with the other one.
    assert np.mean(pa == teacher_a.predict(X)) > np.mean(pa == teacher_b.predict(X)) + 0.2
    assert np.mean(pb == teacher_b.predict(X)) > np.mean(pb == teacher_a.predict(X)) + 0.2
    # The teacher passed to fit overrides the constructor's.
    override = clone(kd).set_params(teacher=teacher_a).fit(X, y, teacher=teacher_b)
    np.testing.assert_array_equal(override.predict(X), pb)


def test_engine_split_sizes_follow_test_size(data, teacher, fast):
    kd = HPMKDClassifier(teacher=teacher, method="legacy", config=fast, test_size=0.3).fit(*data)
    sizes = kd.distiller_.result_.split_sizes
    assert sizes["test"] == 180 and sum(sizes.values()) == 600


def test_dataframe_text_columns_stay_categories(fast):
    frame = make_classification_frame(n_rows=600, n_features=3, seed=5)
    frame["colour"] = np.where(frame["f2"] + frame["f0"] > 0, "red", "blue")
    X, y = frame.drop(columns="target"), frame["target"]  # a pandas Series y
    encode = ColumnTransformer([("cat", OneHotEncoder(), ["colour"])], remainder="passthrough")
    t = Pipeline([("encode", encode), ("model", LogisticRegression())]).fit(X, y)
    kd = HPMKDClassifier(teacher=t, method="legacy", config=fast).fit(X, y)
    assert kd.distiller_.dataset.categorical == ["colour"]
    assert list(kd.feature_names_in_) == ["f0", "f1", "f2", "colour"]
    assert kd.score(X, y) > 0.7
