"""Soft targets are real: temperature, alpha and the teacher all change what is trained."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig
from hpmkd.students import (
    build_student,
    fit_on_soft_targets,
    proba_in_class_order,
    soft_targets,
    soften,
    trial_params,
)

FEATURES = ["f0", "f1", "f2", "f3", "f4"]


@pytest.fixture(scope="module")
def task(make_frame, fit_teacher):
    """Train / held-out rows of a binary task and an LGBM teacher's probabilities."""
    frame = make_frame(n_rows=600, seed=21)
    train, held = frame.iloc[:400].reset_index(drop=True), frame.iloc[400:].reset_index(drop=True)
    teacher = fit_teacher(train[FEATURES], train["target"], n_estimators=50)
    return {
        "X": train[FEATURES],
        "y": train["target"].to_numpy(),
        "X_held": held[FEATURES],
        "y_held": held["target"].to_numpy(),
        "teacher_proba": teacher.predict_proba(train[FEATURES]),
        "teacher": teacher,
    }


def _student(family: str, targets: np.ndarray, task: dict, seed: int = 0):
    params = trial_params(family, "medium", 0, len(task["X"]), seed)
    model = build_student(family, params, FEATURES, [], seed)
    fit_on_soft_targets(model, task["X"], targets, [0, 1])
    return proba_in_class_order(model, task["X_held"], [0, 1])


# ----------------------------------------------------------------------------- (a), (b)
@pytest.mark.parametrize("family", ["logreg", "lgbm"])
def test_temperature_changes_the_trained_student(task, family):
    t1 = soft_targets(task["teacher_proba"], task["y"], temperature=1.0, alpha=1.0)
    t4 = soft_targets(task["teacher_proba"], task["y"], temperature=4.0, alpha=1.0)
    p1, p4 = _student(family, t1, task), _student(family, t4, task)
    assert np.max(np.abs(p1 - p4)) > 0.02
    # A hotter teacher gives a less confident student.
    assert np.mean(np.abs(p4[:, 1] - 0.5)) < np.mean(np.abs(p1[:, 1] - 0.5))
    # Same inputs, same student: the difference is not noise.
    assert np.array_equal(p1, _student(family, t1, task))


@pytest.mark.parametrize("family", ["logreg", "lgbm"])
def test_alpha_changes_the_trained_student(task, family):
    hi = soft_targets(task["teacher_proba"], task["y"], temperature=2.0, alpha=0.9)
    lo = soft_targets(task["teacher_proba"], task["y"], temperature=2.0, alpha=0.1)
    p_hi, p_lo = _student(family, hi, task), _student(family, lo, task)
    assert np.max(np.abs(p_hi - p_lo)) > 0.02
    # Mostly-label targets are sharper than mostly-(softened-)teacher targets.
    assert np.mean(np.abs(p_lo[:, 1] - 0.5)) > np.mean(np.abs(p_hi[:, 1] - 0.5))


# ----------------------------------------------------------------------------- (c)
def test_student_follows_its_own_teacher(make_frame, fit_teacher):
    """Teacher A sees every feature; teacher B sees only f1..f4 (not the strongest, f0).
    Both are fitted on rows the students never see (so their outputs on the students' rows
    carry no memorised labels). Each student (alpha=1: teacher only) agrees more with its
    own teacher than with the other one."""
    frame = make_frame(n_rows=1200, seed=31)
    fit_rows, train, held = frame.iloc[:400], frame.iloc[400:800], frame.iloc[800:]
    subset = ["f1", "f2", "f3", "f4"]
    teacher_a = fit_teacher(fit_rows[FEATURES], fit_rows["target"])
    teacher_b = fit_teacher(fit_rows[subset], fit_rows["target"])
    pa_train = teacher_a.predict_proba(train[FEATURES])
    pb_train = teacher_b.predict_proba(train[subset])
    pa_held = teacher_a.predict_proba(held[FEATURES])
    pb_held = teacher_b.predict_proba(held[subset])
    # The teachers really disagree on held-out rows.
    assert np.mean(pa_held.argmax(1) != pb_held.argmax(1)) > 0.15
    y = train["target"].to_numpy()

    def student(teacher_proba):
        params = trial_params("lgbm", "small", 0, len(train), 0)
        model = build_student("lgbm", params, FEATURES, [], 0)
        targets = soft_targets(teacher_proba, y, 1.0, 1.0)
        fit_on_soft_targets(model, train[FEATURES], targets, [0, 1])
        return proba_in_class_order(model, held[FEATURES], [0, 1])

    sa, sb = student(pa_train), student(pb_train)
    assert np.mean(np.abs(sa - sb)) > 0.05

    def fidelity(p, q):
        return float(np.mean(p.argmax(1) == q.argmax(1)))

    assert fidelity(sa, pa_held) > fidelity(sa, pb_held) + 0.1
    assert fidelity(sb, pb_held) > fidelity(sb, pa_held) + 0.1


def test_different_teacher_gives_different_distilled_student_end_to_end(make_frame, fit_teacher):
    """Through AutoDistiller: a teacher fitted on labels flipped for 30% of rows gives a
    different best student than one fitted on the real labels."""
    frame = make_frame(n_rows=400, seed=41)
    X, y = frame[FEATURES], frame["target"].to_numpy()
    rng = np.random.default_rng(0)
    flipped = y.copy()
    flip = rng.choice(len(y), size=int(0.3 * len(y)), replace=False)
    flipped[flip] = 1 - flipped[flip]
    config = HPMConfig(
        families=("logreg",), temperatures=(1.0,), alphas=(1.0,), use_cache=False, use_memory=False
    )
    probas, reports = [], []
    for labels in (y, flipped):
        ds = DistillationDataset(frame, target="target", teacher=fit_teacher(X, labels))
        distiller = AutoDistiller(ds, method="legacy", config=config)
        distiller.run()
        probas.append(distiller.predict_proba(frame))
        reports.append(distiller.best_metrics)
    assert np.max(np.abs(probas[0] - probas[1])) > 0.05
    # The student distilled from the clean teacher is the better classifier.
    assert reports[0]["auc"] > reports[1]["auc"]


# ----------------------------------------------------------------------------- (d)
def test_soft_targets_rows_sum_to_one_and_mix_as_documented():
    rng = np.random.default_rng(3)
    teacher = rng.dirichlet(np.ones(3), size=50)
    y = rng.integers(0, 3, size=50)
    onehot = np.eye(3)[y]
    for temperature in (1.0, 2.5):
        for alpha in (0.0, 0.3, 1.0):
            targets = soft_targets(teacher, y, temperature, alpha)
            assert targets.shape == (50, 3)
            assert np.allclose(targets.sum(axis=1), 1.0)
            expected = alpha * soften(teacher, temperature) + (1 - alpha) * onehot
            assert np.allclose(targets, expected)
    assert np.array_equal(soft_targets(teacher, y, 3.0, 0.0), onehot)
    assert np.allclose(soft_targets(teacher, y, 1.0, 1.0), teacher)


def test_soften_identity_at_one_and_flattens_as_temperature_rises():
    rng = np.random.default_rng(4)
    proba = rng.dirichlet(np.full(3, 0.5), size=40)
    assert np.allclose(soften(proba, 1.0), proba)
    entropies = [entropy(soften(proba, t), axis=1).mean() for t in (1.0, 2.0, 4.0, 16.0)]
    assert all(a < b for a, b in itertools.pairwise(entropies))
    assert entropies[-1] < np.log(3) + 1e-12
    # softmax(log p / T) equals p^(1/T) renormalised; the order of classes is kept.
    power = proba ** (1 / 4.0)
    assert np.allclose(soften(proba, 4.0), power / power.sum(axis=1, keepdims=True))
    assert np.array_equal(soften(proba, 4.0).argmax(1), proba.argmax(1))


def test_soften_below_one_sharpens():
    proba = np.array([[0.6, 0.4]])
    assert soften(proba, 0.5)[0, 0] > 0.6


# ----------------------------------------------------------------------------- (e), (f)
def test_alpha_zero_equals_a_plain_fit_on_hard_labels(task):
    params = trial_params("tree", "medium", 0, len(task["X"]), 0)
    targets = soft_targets(task["teacher_proba"], task["y"], 2.0, 0.0)
    soft = fit_on_soft_targets(
        build_student("tree", params, FEATURES, [], seed=0), task["X"], targets, [0, 1]
    )
    plain = build_student("tree", params, FEATURES, [], seed=0).fit(task["X"], task["y"])
    assert np.array_equal(soft.predict(task["X_held"]), plain.predict(task["X_held"]))
    assert np.allclose(soft.predict_proba(task["X_held"]), plain.predict_proba(task["X_held"]))
    tree_soft, tree_plain = soft[-1].tree_, plain[-1].tree_
    assert tree_soft.node_count == tree_plain.node_count
    assert np.array_equal(tree_soft.feature, tree_plain.feature)


def test_soft_fit_uses_the_soft_targets_not_the_labels(task):
    # A tree with one leaf per distinct row reproduces the target distribution per row.
    X = pd.DataFrame({"a": np.arange(8.0)})
    targets = np.array([[0.7, 0.3]] * 4 + [[0.2, 0.8]] * 4)
    model = build_student("tree", {"max_depth": 3}, ["a"], [], seed=0)
    fit_on_soft_targets(model, X, targets, [0, 1])
    assert np.allclose(model.predict_proba(X), targets)


@pytest.mark.parametrize("family", ["logreg", "tree", "lgbm"])
def test_string_labels_are_the_fitted_students_classes(task, family):
    labels = np.where(task["y"] == 1, "yes", "no")
    classes = ["no", "yes"]
    targets = soft_targets(task["teacher_proba"], task["y"], 2.0, 0.5)
    params = trial_params(family, "small", 0, len(task["X"]), 0)
    model = fit_on_soft_targets(
        build_student(family, params, FEATURES, [], seed=0), task["X"], targets, classes
    )
    assert list(model.classes_) == classes
    pred = model.predict(task["X"])
    assert set(pred) <= set(classes)
    assert np.mean(pred == labels) > 0.75
    proba = proba_in_class_order(model, task["X"], classes)
    assert np.allclose(proba, model.predict_proba(task["X"]))
    reversed_order = proba_in_class_order(model, task["X"], ["yes", "no"])
    assert np.allclose(reversed_order, proba[:, ::-1])


def test_encoded_rows_are_shared_and_train_the_same_tree_student(monkeypatch):
    # Text columns are encoded once per training frame and kind of preprocessing, then
    # duplicated for the soft targets; a tree student learns exactly what it learned
    # from encoding the duplicated rows itself (same categories, same codes). (Two-class
    # LightGBM students skip the duplication, see the cross_entropy tests below; the
    # duplicating path is forced here, as multi-class students and the other families
    # take it.)
    from sklearn.base import clone

    from hpmkd import students
    from hpmkd.students import encode_rows

    monkeypatch.setattr(students, "_soft_binary", lambda targets: False)

    rng = np.random.default_rng(3)
    n = 500
    X = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "city": rng.choice(["a", "b", "c", None], size=n),
            "code": rng.choice([f"k{i}" for i in range(40)], size=n),
        }
    )
    y = (X["x"] + (X["city"] == "a") > 0.3).astype(int).to_numpy()
    p = np.clip(0.2 + 0.6 * y + rng.normal(0, 0.05, n), 0.01, 0.99)
    targets = soft_targets(np.column_stack([1 - p, p]), y, temperature=2.0, alpha=0.7)
    params = trial_params("lgbm", "small", 0, n, 0)
    shared = build_student("lgbm", params, ["x"], ["city", "code"], 0)
    first = encode_rows(shared.steps[0][1], X)[1]
    fit_on_soft_targets(shared, X, targets, [0, 1])
    assert encode_rows(clone(shared.steps[0][1]), X)[1] is first  # served, not re-encoded
    # The old way: the whole pipeline fitted on the duplicated raw rows.
    direct = build_student("lgbm", params, ["x"], ["city", "code"], 0)
    rows = np.tile(np.arange(n), 2)
    labels = np.repeat([0, 1], n)
    direct.fit(X.iloc[rows], labels, model__sample_weight=targets.T.ravel())
    raw = X.assign(city=X["city"].where(X.index % 7 != 0, "never seen"))
    np.testing.assert_allclose(shared.predict_proba(raw), direct.predict_proba(raw))
    # Nothing is held once the training frame is gone.
    import gc

    del X, raw
    gc.collect()
    assert all(entry[0]() is not None for entry in students._ENCODED)
    assert not any(entry[3] is first for entry in students._ENCODED)


# ----------------------------------------------------------------------------- seed averages
def test_seed_average_is_the_mean_of_seeded_copies_in_a_plain_pipeline(task):
    import pickle

    from sklearn.ensemble import VotingClassifier
    from sklearn.pipeline import Pipeline

    from hpmkd.students import N_MEMBERS, StudentSpec, fit_seed_average

    params = trial_params("mlp", "small", 0, len(task["y"]), 0)
    targets = soft_targets(task["teacher_proba"], task["y"], 2.0, 0.5)
    model = fit_seed_average("mlp", {**params, N_MEMBERS: 3}, FEATURES, [], 7, task["X"],
                             targets, [0, 1])
    assert isinstance(model, Pipeline) and isinstance(model[-1], VotingClassifier)
    members = model[-1].estimators_
    assert [m.random_state for m in members] == [7, 8, 9]
    # Each copy is the single student its seed gives, on the same soft targets.
    for seed, member in zip((7, 8, 9), members, strict=True):
        single = build_student("mlp", params, FEATURES, [], seed)
        fit_on_soft_targets(single, task["X"], targets, [0, 1])
        np.testing.assert_allclose(member.coefs_[0], single[-1].coefs_[0])
        assert not hasattr(member, "_optimizer")  # training state only, not shipped
    encoded = model[0].transform(task["X_held"])
    mean = np.mean([m.predict_proba(encoded) for m in members], axis=0)
    np.testing.assert_allclose(model.predict_proba(task["X_held"]), mean)
    assert not np.allclose(members[0].predict_proba(encoded), members[1].predict_proba(encoded))
    # A first copy fitted beforehand (the climb's start) is reused as it is, untouched.
    start = build_student("mlp", params, FEATURES, [], 7)
    fit_on_soft_targets(start, task["X"], targets, [0, 1])
    reused = fit_seed_average("mlp", {**params, N_MEMBERS: 3}, FEATURES, [], 7, task["X"],
                              targets, [0, 1], first=start)
    assert reused[-1].estimators_[0] is not start[-1] and hasattr(start[-1], "_optimizer")
    np.testing.assert_array_equal(reused.predict_proba(task["X_held"]),
                                  model.predict_proba(task["X_held"]))
    # So are the copies of a smaller average (the climb compares averages of fewer copies).
    two = fit_seed_average("mlp", {**params, N_MEMBERS: 2}, FEATURES, [], 7, task["X"],
                           targets, [0, 1], first=start)
    extended = fit_seed_average("mlp", {**params, N_MEMBERS: 3}, FEATURES, [], 7, task["X"],
                                targets, [0, 1], first=two)
    assert extended[-1].estimators_[1] is not two[-1].estimators_[1]
    np.testing.assert_array_equal(extended.predict_proba(task["X_held"]),
                                  model.predict_proba(task["X_held"]))
    with pytest.raises(ValueError, match="more than"):
        fit_seed_average("mlp", {**params, N_MEMBERS: 2}, FEATURES, [], 7, task["X"],
                         targets, [0, 1], first=model)
    # Plain scikit-learn: the saved student needs no hpmkd class to load.
    assert b"hpmkd" not in pickle.dumps(model)
    with pytest.raises(ValueError, match="fit_seed_average"):
        build_student("mlp", {**params, N_MEMBERS: 3}, FEATURES, [], 0)
    with pytest.raises(ValueError, match="at least 2"):
        fit_seed_average("mlp", {**params, N_MEMBERS: 1}, FEATURES, [], 0, task["X"],
                         targets, [0, 1])
    spec = StudentSpec("mlp", "small", 2.0, 0.5, 0, {**params, N_MEMBERS: 3})
    assert spec.label() == "mlp-small x3 seeds T=2 a=0.5 #0"


def test_lgbm_bin_sample_leaves_tables_below_it_unchanged(task):
    """LightGBM students find their bins on LGBM_BIN_SAMPLE rows; on fewer (duplicated
    soft-target) rows every row is used, so such students are those LightGBM's default
    sample made: the same trees and probabilities."""
    from lightgbm import LGBMClassifier

    from hpmkd.students import LGBM_BIN_SAMPLE

    targets = soft_targets(task["teacher_proba"], task["y"], 2.0, 0.7)
    assert 2 * len(task["y"]) < LGBM_BIN_SAMPLE < LGBMClassifier().subsample_for_bin
    params = trial_params("lgbm", "small", 0, len(task["y"]), 0)
    fitted = []
    for sample in (LGBM_BIN_SAMPLE, LGBMClassifier().subsample_for_bin):
        model = build_student("lgbm", params, FEATURES, [], 0)
        assert model.named_steps["model"].subsample_for_bin == LGBM_BIN_SAMPLE
        model.named_steps["model"].set_params(subsample_for_bin=sample)
        fitted.append(fit_on_soft_targets(model, task["X"], targets, [0, 1]))
    ours, default = (m.named_steps["model"].booster_ for m in fitted)
    assert ours.dump_model()["tree_info"] == default.dump_model()["tree_info"]
    np.testing.assert_array_equal(
        fitted[0].predict_proba(task["X_held"]), fitted[1].predict_proba(task["X_held"])
    )


# ----------------------------------------------------------------------------- MLP soft targets
def _soft_frame(n: int, n_classes: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with a text column (so the students train in float64) and soft targets."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    X["kind"] = rng.choice(["u", "v", "w"], size=n)
    logits = X[["a", "b", "c"]].to_numpy()[:, :n_classes] * 1.5
    targets = soften(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 1.0)
    if n_classes == 2:
        targets = np.column_stack([targets[:, 0], 1 - targets[:, 0]])
    return X, targets


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_classes", [2, 3])
def test_mlp_soft_targets_equal_the_fit_on_weighted_copies(n_classes):
    """Full-batch (lbfgs) training on one row per row with its class distribution as
    target is the fit on the rows duplicated once per class with the probabilities as
    sample weights (the former way), to rounding: logistic output for two classes,
    softmax for three."""
    from sklearn.neural_network import MLPClassifier

    from hpmkd.students import encode_rows

    X, targets = _soft_frame(500, n_classes, seed=4)
    # Target columns in another order than the fitted classes_ (sorted).
    classes = ["yes", "no"] if n_classes == 2 else ["z", "x", "y"]
    params = {"hidden_layer_sizes": (8,), "solver": "lbfgs", "max_iter": 30, "alpha": 1e-3}
    model = build_student("mlp", params, ["a", "b", "c", "d"], ["kind"], seed=3)
    fit_on_soft_targets(model, X, targets, classes)
    final = model[-1]
    assert type(final) is MLPClassifier and "_validate_input" not in vars(final)
    assert list(final.classes_) == sorted(classes)
    assert final.out_activation_ == ("logistic" if n_classes == 2 else "softmax")
    # The reference: the weighted copies, fitted by plain scikit-learn.
    reference = build_student("mlp", params, ["a", "b", "c", "d"], ["kind"], seed=3)
    encoded = encode_rows(reference[0], X)[1]
    n = len(X)
    copies = MLPClassifier(random_state=3, shuffle=False, **params).fit(
        np.tile(encoded, (n_classes, 1)),
        np.repeat(classes, n),
        sample_weight=targets.T.ravel(),
    )
    held, _ = _soft_frame(200, n_classes, seed=5)
    ours = model.predict_proba(held)
    theirs = copies.predict_proba(model[0].transform(held))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)
    # ... and the soft targets matter: the hard labels give another model.
    hard = np.eye(n_classes)[targets.argmax(axis=1)]
    labelled = build_student("mlp", params, ["a", "b", "c", "d"], ["kind"], seed=3)
    fit_on_soft_targets(labelled, X, hard, classes)
    assert np.abs(labelled.predict_proba(held) - ours).max() > 0.01


def test_mlp_soft_student_sees_each_row_once_and_loads_restricted(tmp_path):
    """Minibatch training passes each row once per epoch (not once per class), and the
    student is a plain MLPClassifier that the restricted loader admits."""
    import joblib
    from sklearn.neural_network import MLPClassifier

    from hpmkd.safe_load import load_model_file

    X, targets = _soft_frame(700, 2, seed=6)
    X = X.drop(columns="kind")  # numeric only: trained in float32
    params = trial_params("mlp", "small", 0, len(X), 0)
    model = build_student("mlp", params, ["a", "b", "c", "d"], [], seed=0)
    fit_on_soft_targets(model, X, targets, [0, 1])
    final = model[-1]
    assert type(final) is MLPClassifier
    assert not {"_validate_input", "_update_no_improvement_count"} & set(vars(final))
    assert final.t_ == len(X) * final.n_iter_
    assert final.coefs_[0].dtype == np.float32
    path = tmp_path / "student.joblib"
    joblib.dump(model, path)
    loaded = load_model_file(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_mlp_hard_labels_train_as_before():
    """Hard labels keep the former path: the rows in one seeded order, unit weights."""
    from sklearn.neural_network import MLPClassifier

    X, targets = _soft_frame(600, 3, seed=8)
    X = X.drop(columns="kind")
    hard = np.eye(3)[targets.argmax(axis=1)]
    classes = ["x", "y", "z"]
    params = trial_params("mlp", "small", 1, len(X), 0)
    model = build_student("mlp", params, ["a", "b", "c", "d"], [], seed=2)
    fit_on_soft_targets(model, X, hard, classes)
    # The former code: each row's copy of its class, in class-major order, then one
    # seeded shuffle.
    rows = np.concatenate([np.flatnonzero(hard[:, c]) for c in range(3)])
    labels = np.repeat(classes, hard.sum(axis=0).astype(int))
    order = np.random.default_rng(2).permutation(len(X))
    encoded = model[0].transform(X).astype(np.float32)[rows[order]]
    before = MLPClassifier(random_state=2, shuffle=False, **params)
    with pytest.warns(Warning):  # the epoch budget ends before convergence
        before.fit(encoded, labels[order], sample_weight=np.ones(len(X)))
    np.testing.assert_array_equal(model[-1].coefs_[0], before.coefs_[0])
    np.testing.assert_array_equal(model.predict_proba(X), before.predict_proba(
        model[0].transform(X)))


def test_one_hot_fit_without_counting_is_scikit_learns_capped_fit():
    """encode_rows fits a OneHotEncoder whose columns have at most ``max_categories``
    levels without the cap (no counting of every value) and puts the cap back: the
    fitted preprocessing is the one scikit-learn's own fit gives, attribute by attribute,
    and encodes the same; a column over the cap takes scikit-learn's own fit."""
    import pickle

    from sklearn.base import clone

    from hpmkd.safe_load import load_model_bytes
    from hpmkd.students import _fit_prep

    rng = np.random.default_rng(9)
    n = 3000
    X = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "city": rng.choice(["a", "b", None], size=n),
            "flag": rng.choice(["yes", "no"], size=n),
            "many": rng.choice([f"k{i}" for i in range(45)], size=n),
        }
    )
    for categorical in (["city", "flag"], ["city", "flag", "many"]):
        prep = build_student("mlp", {"hidden_layer_sizes": (4,)}, ["x"], categorical, 0)[0]
        ours, encoded = _fit_prep(prep, X)
        theirs = clone(prep).fit(X)
        np.testing.assert_array_equal(encoded, theirs.transform(X))
        a, b = ours.named_transformers_["cat"], theirs.named_transformers_["cat"]
        assert {k: repr(v) for k, v in vars(a).items()} == {
            k: repr(v) for k, v in vars(b).items()
        }
        assert ours.get_params()["cat"].max_categories == 30
        assert (a.infrequent_categories_[-1] is not None) == ("many" in categorical)
        loaded = load_model_bytes(pickle.dumps(ours), "prep.pkl")
        np.testing.assert_array_equal(loaded.transform(X), encoded)


def _lgbm_pair(task, targets, classes, monkeypatch, extra=None):
    """The same LightGBM student fitted on ``targets`` twice: through cross_entropy on
    the rows (today's path) and through the rows duplicated per class (forced)."""
    from hpmkd import students

    params = {**trial_params("lgbm", "small", 0, len(task["y"]), 0), **(extra or {})}
    # Small tables keep the duplicated rows (LGBM_CROSS_ENTROPY_MIN_ROWS); lifted here.
    monkeypatch.setattr(students, "LGBM_CROSS_ENTROPY_MIN_ROWS", 0)
    through_entropy = fit_on_soft_targets(
        build_student("lgbm", params, FEATURES, [], 0), task["X"], targets, classes
    )
    with monkeypatch.context() as patch:
        patch.setattr(students, "_soft_binary", lambda targets: False)
        duplicated = fit_on_soft_targets(
            build_student("lgbm", params, FEATURES, [], 0), task["X"], targets, classes
        )
    return through_entropy, duplicated


@pytest.mark.parametrize("classes", [[0, 1], ["yes", "no"]])
def test_lgbm_soft_targets_through_cross_entropy_learn_the_duplicated_rows_model(
    task, classes, monkeypatch
):
    """Two-class soft targets train a LightGBM student on the rows themselves (objective
    cross_entropy): per row its gradient and hessian are those of the two weighted copies,
    so with nothing counted in rows (one row per leaf and bin allowed) it is the model the
    duplicated rows make, to rounding, for the classes in any order. Eight trees: later
    ones can part at a near-tie between two splits, as the histogram sums of the rows and
    of their copies round differently (on these 400 rows the 20th tree did)."""
    from lightgbm import LGBMClassifier

    targets = soft_targets(task["teacher_proba"], task["y"], 2.0, 0.7)
    if classes[0] == "yes":
        targets = targets[:, ::-1]
    exact = {"min_child_samples": 1, "min_data_in_bin": 1, "n_estimators": 8}
    ours, duplicated = _lgbm_pair(task, targets, classes, monkeypatch, exact)
    final = ours.named_steps["model"]
    assert type(final) is LGBMClassifier
    assert final.objective == "cross_entropy"
    assert duplicated.named_steps["model"].objective is None
    assert final.booster_.num_trees() == duplicated.named_steps["model"].booster_.num_trees()
    assert list(ours.classes_) == sorted(classes) == list(duplicated.classes_)
    held = task["X_held"]
    np.testing.assert_allclose(ours.predict_proba(held), duplicated.predict_proba(held),
                               atol=1e-6)
    np.testing.assert_array_equal(ours.predict(held), duplicated.predict(held))
    # The soft targets, not the labels, were learned: the hard-label student differs.
    hard = fit_on_soft_targets(
        build_student("lgbm", {**trial_params("lgbm", "small", 0, 400, 0), **exact},
                      FEATURES, [], 0),
        task["X"], np.eye(2)[task["y"]], [0, 1],
    )
    assert hard.named_steps["model"].objective is None
    assert np.abs(hard.predict_proba(held)[:, 1] - ours.predict_proba(held)[:, 1]).max() > 0.05
    # With the default min_child_samples (halved: counted in rows, not in copies) and bins,
    # LightGBM's counts estimated from hessians round differently, and the trees part
    # sooner: the same quality, not the same model. Held-out cross-entropy to the held
    # rows' soft targets (measured: 0.4558 through cross_entropy, 0.4550 duplicated).
    ours, duplicated = _lgbm_pair(task, targets, classes, monkeypatch)
    assert ours.named_steps["model"].min_child_samples == 10
    assert duplicated.named_steps["model"].min_child_samples == 20
    held_targets = soft_targets(task["teacher"].predict_proba(held), task["y_held"], 2.0, 0.7)
    if classes[0] == "yes":
        held_targets = held_targets[:, ::-1]
    losses = [
        -np.mean(np.sum(held_targets * np.log(proba_in_class_order(m, held, classes)), axis=1))
        for m in (ours, duplicated)
    ]
    assert abs(losses[0] - losses[1]) < 0.005


def test_lgbm_cross_entropy_student_is_a_plain_classifier_for_the_restricted_loader(
    task, monkeypatch
):
    """The exported student passes the restricted loader and predicts the same after it;
    it holds the attributes a plain LGBMClassifier fit leaves, and no others."""
    import io

    import joblib
    from sklearn.base import clone

    from hpmkd import students
    from hpmkd.safe_load import load_model_bytes

    monkeypatch.setattr(students, "LGBM_CROSS_ENTROPY_MIN_ROWS", 0)

    targets = soft_targets(task["teacher_proba"], task["y"], 2.0, 0.7)
    params = trial_params("lgbm", "small", 0, len(task["y"]), 0)
    model = fit_on_soft_targets(
        build_student("lgbm", params, FEATURES, [], 0), task["X"], targets, [0, 1]
    )
    plain = build_student("lgbm", params, FEATURES, [], 0).fit(task["X"], task["y"])
    assert set(vars(model[-1])) == set(vars(plain[-1]))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    loaded = load_model_bytes(buffer.getvalue(), "student.joblib")
    held = task["X_held"]
    np.testing.assert_array_equal(loaded.predict_proba(held), model.predict_proba(held))
    np.testing.assert_array_equal(loaded.predict(held), model.predict(held))
    # A clone refits as a plain classifier on hard labels (cross_entropy takes 0/1 too).
    refit = clone(model).fit(task["X"], task["y"])
    assert np.mean(refit.predict(held) == plain.predict(held)) > 0.9


def test_lgbm_soft_targets_on_small_tables_keep_duplicated_rows(task, monkeypatch):
    """Below LGBM_CROSS_ENTROPY_MIN_ROWS training rows the two-class soft student is the
    duplicated rows' fit (binary objective), the same model as with cross_entropy off."""
    from hpmkd import students

    assert len(task["y"]) < students.LGBM_CROSS_ENTROPY_MIN_ROWS
    targets = soft_targets(task["teacher_proba"], task["y"], 2.0, 0.7)
    params = trial_params("lgbm", "small", 0, len(task["y"]), 0)
    small = fit_on_soft_targets(
        build_student("lgbm", params, FEATURES, [], 0), task["X"], targets, [0, 1]
    )
    assert small.named_steps["model"].objective is None
    assert small.named_steps["model"].min_child_samples == 20
    monkeypatch.setattr(students, "_soft_binary", lambda targets: False)
    forced = fit_on_soft_targets(
        build_student("lgbm", params, FEATURES, [], 0), task["X"], targets, [0, 1]
    )
    held = task["X_held"]
    np.testing.assert_array_equal(small.predict_proba(held), forced.predict_proba(held))


def test_lgbm_multiclass_soft_targets_keep_duplicated_rows(make_frame, fit_teacher):
    """Three classes: cross_entropy is two-class only, so the rows are duplicated."""
    frame = make_frame(n_rows=300, n_classes=3, seed=5)
    X, y = frame[FEATURES], frame["target"].to_numpy()
    proba = fit_teacher(X, y, n_estimators=20).predict_proba(X)
    targets = soft_targets(proba, y, 2.0, 0.7)
    model = fit_on_soft_targets(
        build_student("lgbm", trial_params("lgbm", "small", 0, 300, 0), FEATURES, [], 0),
        X, targets, [0, 1, 2],
    )
    final = model.named_steps["model"]
    assert final.objective is None and final.min_child_samples == 20
    assert final.booster_.num_model_per_iteration() == 3
