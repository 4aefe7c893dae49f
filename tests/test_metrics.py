"""hpmkd.metrics against independent computations (scipy, scikit-learn, hand counts)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy, ks_2samp, spearmanr
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score, roc_curve
from sklearn.tree import DecisionTreeClassifier

from hpmkd import metrics


def _binary_case(seed: int = 0, n: int = 300):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    # Overlapping score distributions, rounded so ties between classes occur.
    score = np.round(np.clip(0.5 + 0.25 * (y - 0.5) + rng.normal(0, 0.2, size=n), 0, 1), 2)
    proba = np.column_stack([1 - score, score])
    return y, score, proba


def _multiclass_case(seed: int = 1, n: int = 300, k: int = 3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def _dirichlet(seed: int, n: int, k: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), size=n)


# ----------------------------------------------------------------------------- KS
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_binary_equals_scipy_one_sided_two_sample_ks(seed):
    y, score, _ = _binary_case(seed)
    # max (CDF of the negatives' scores - CDF of the positives'): scipy's "greater" of
    # (negatives, positives), which is max (TPR - FPR).
    expected = ks_2samp(score[y == 0], score[y == 1], alternative="greater").statistic
    assert metrics.ks_binary(y, score) == pytest.approx(expected, abs=1e-12)
    # On a score that ranks the positives higher, it is the two-sided statistic too.
    assert metrics.ks_binary(y, score) == pytest.approx(
        ks_2samp(score[y == 1], score[y == 0]).statistic, abs=1e-12
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_ks_binary_equals_max_tpr_minus_fpr_from_roc_curve(seed):
    y, score, _ = _binary_case(seed)
    fpr, tpr, _ = roc_curve(y, score)
    assert metrics.ks_binary(y, score) == pytest.approx(np.max(tpr - fpr), abs=1e-12)


def test_ks_score_binary_uses_positive_column():
    y, score, proba = _binary_case(4)
    assert metrics.ks_score(y, proba) == pytest.approx(
        ks_2samp(score[y == 1], score[y == 0]).statistic, abs=1e-12
    )
    # A 1-d score array is read as the positive-class probability.
    assert metrics.ks_score(y, score) == pytest.approx(metrics.ks_score(y, proba), abs=1e-12)


def test_ks_score_multiclass_is_macro_one_vs_rest():
    y, proba = _multiclass_case()
    per_class = [
        ks_2samp(proba[y == k, k], proba[y != k, k]).statistic for k in range(proba.shape[1])
    ]
    via_roc = []
    for k in range(proba.shape[1]):
        fpr, tpr, _ = roc_curve(y == k, proba[:, k])
        via_roc.append(np.max(tpr - fpr))
    assert metrics.ks_score(y, proba) == pytest.approx(np.mean(per_class), abs=1e-12)
    assert metrics.ks_score(y, proba) == pytest.approx(np.mean(via_roc), abs=1e-12)


def test_ks_of_constant_scores_is_zero():
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    assert metrics.ks_binary(y, np.full(8, 0.3)) == 0.0


def test_ks_ties_across_classes_are_not_split():
    # All positives share a score with half the negatives: only cuts between distinct
    # scores count, so KS is 0.5 (not 1.0, which splitting the tie would give).
    y = np.array([1, 1, 0, 0, 0, 0])
    score = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.1])
    assert metrics.ks_binary(y, score) == pytest.approx(0.5)
    assert metrics.ks_binary(y, score) == pytest.approx(
        ks_2samp(score[y == 1], score[y == 0]).statistic
    )


def test_ks_perfect_separation_is_one_and_is_direction_sensitive():
    y = np.array([0, 0, 0, 1, 1, 1])
    score = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert metrics.ks_binary(y, score) == pytest.approx(1.0)
    # Directional: a reversed score ranks every positive below every negative, useless
    # as it is, and scores 0 (the two-sided |TPR - FPR| would give it 1.0).
    assert metrics.ks_binary(y, -score) == pytest.approx(0.0)
    assert metrics.ks_score(y, np.c_[score, 1 - score]) == pytest.approx(0.0)


def test_ks_binary_one_class_is_nan():
    assert math.isnan(metrics.ks_binary(np.ones(5), np.linspace(0, 1, 5)))
    assert math.isnan(metrics.ks_binary(np.zeros(5), np.linspace(0, 1, 5)))


# ----------------------------------------------------------------------------- compute_metrics
def test_compute_metrics_binary_matches_sklearn():
    y, _, proba = _binary_case(5)
    teacher = _dirichlet(6, len(y), 2)
    out = metrics.compute_metrics(y, proba, teacher)
    pred = proba.argmax(axis=1)
    assert out["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert out["f1"] == pytest.approx(f1_score(y, pred, pos_label=1))
    assert out["auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]))
    assert out["ks"] == pytest.approx(ks_2samp(proba[y == 1, 1], proba[y == 0, 1]).statistic)
    assert out["undefined"] == {}


def test_f1_binary_is_the_positive_class_not_the_average():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred_pos = np.array([0.2, 0.2, 0.2, 0.8, 0.8, 0.8, 0.2, 0.2])  # 2 TP, 1 FP, 2 FN
    proba = np.column_stack([1 - pred_pos, pred_pos])
    out = metrics.compute_metrics(y, proba)
    assert out["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))  # 4/7
    assert out["f1"] != pytest.approx(f1_score(y, proba.argmax(1), average="macro"))


def test_compute_metrics_multiclass_matches_sklearn():
    y, proba = _multiclass_case(7)
    teacher = _dirichlet(8, len(y), 3)
    out = metrics.compute_metrics(y, proba, teacher)
    pred = proba.argmax(axis=1)
    assert out["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert out["f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert out["auc"] == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro")
    )
    assert out["ks"] == pytest.approx(metrics.ks_score(y, proba))


def test_fidelity_is_the_share_of_equal_predicted_classes():
    student = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2], [0.45, 0.55]])
    teacher = np.array([[0.7, 0.3], [0.6, 0.4], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    # argmax student: 0 1 1 0 1 ; teacher: 0 0 1 1 1 -> 3 of 5 agree
    out = metrics.compute_metrics(np.array([0, 1, 1, 0, 1]), student, teacher)
    assert out["fidelity"] == pytest.approx(3 / 5)


def test_fidelity_multiclass_hand_count():
    rng = np.random.default_rng(9)
    student, teacher = _dirichlet(10, 50, 3), _dirichlet(11, 50, 3)
    y = rng.integers(0, 3, 50)
    agree = sum(int(np.argmax(s) == np.argmax(t)) for s, t in zip(student, teacher, strict=True))
    assert metrics.compute_metrics(y, student, teacher)["fidelity"] == pytest.approx(agree / 50)


def test_rank_fidelity_binary_is_spearman_of_positive_scores():
    _, _, student = _binary_case(12)
    teacher = _dirichlet(13, len(student), 2)
    expected = spearmanr(teacher[:, 1], student[:, 1]).statistic
    assert metrics.rank_fidelity(teacher, student) == pytest.approx(expected)


def test_rank_fidelity_multiclass_is_mean_over_classes():
    student, teacher = _dirichlet(14, 80, 3), _dirichlet(15, 80, 3)
    expected = np.mean([spearmanr(teacher[:, k], student[:, k]).statistic for k in range(3)])
    assert metrics.rank_fidelity(teacher, student) == pytest.approx(expected)


def test_rank_fidelity_distinguishes_what_label_agreement_cannot():
    # Imbalanced case: both models always predict class 0 (fidelity 1.0), but the student
    # ranks rows in the reverse order of the teacher.
    teacher_pos = np.linspace(0.01, 0.3, 40)
    student_pos = teacher_pos[::-1].copy()
    teacher = np.column_stack([1 - teacher_pos, teacher_pos])
    student = np.column_stack([1 - student_pos, student_pos])
    y = np.r_[np.zeros(35, int), np.ones(5, int)]
    out = metrics.compute_metrics(y, student, teacher)
    assert out["fidelity"] == 1.0
    assert out["rank_fidelity"] == pytest.approx(-1.0)


def test_rank_fidelity_constant_scores_is_nan_with_reason():
    teacher = _dirichlet(16, 20, 2)
    student = np.tile([0.5, 0.5], (20, 1))
    out = metrics.compute_metrics(np.r_[np.zeros(10, int), np.ones(10, int)], student, teacher)
    assert math.isnan(out["rank_fidelity"])
    assert "constant" in out["undefined"]["rank_fidelity"]
    # Constant scores give KS 0 (defined), not NaN.
    assert out["ks"] == 0.0


@pytest.mark.parametrize("k", [2, 3])
def test_kl_to_teacher_equals_scipy_entropy_row_mean(k):
    teacher, student = _dirichlet(17 + k, 60, k), _dirichlet(30 + k, 60, k)
    expected = np.mean([entropy(p, q) for p, q in zip(teacher, student, strict=True)])
    assert metrics.kl_to_teacher(teacher, student) == pytest.approx(expected, rel=1e-9)
    y = np.arange(60) % k
    assert metrics.compute_metrics(y, student, teacher)["kl_to_teacher"] == pytest.approx(
        expected, rel=1e-9
    )


def test_kl_to_teacher_is_zero_for_identical_and_direction_matters():
    p, q = _dirichlet(40, 30, 3), _dirichlet(41, 30, 3)
    assert metrics.kl_to_teacher(p, p) == pytest.approx(0.0, abs=1e-12)
    assert metrics.kl_to_teacher(p, q) != pytest.approx(metrics.kl_to_teacher(q, p))


def test_kl_with_zero_student_probability_is_finite():
    teacher = np.array([[0.5, 0.5]])
    student = np.array([[1.0, 0.0]])
    value = metrics.kl_to_teacher(teacher, student)
    assert math.isfinite(value) and value > 5  # clipped at 1e-12, large but finite


# ----------------------------------------------------------------------------- undefined
def test_one_class_present_gives_nan_auc_and_ks_with_reason():
    proba = _dirichlet(42, 10, 2)
    out = metrics.compute_metrics(np.zeros(10, int), proba, proba)
    assert math.isnan(out["auc"]) and math.isnan(out["ks"])
    assert "one class" in out["undefined"]["auc"]
    assert "one class" in out["undefined"]["ks"]
    # Accuracy and agreement are still defined.
    assert out["accuracy"] == pytest.approx(np.mean(proba.argmax(1) == 0))
    assert out["fidelity"] == 1.0


def test_multiclass_with_a_missing_class_gives_nan_auc_with_reason():
    proba = _dirichlet(43, 30, 3)
    y = np.arange(30) % 2  # class 2 never occurs
    out = metrics.compute_metrics(y, proba)
    assert math.isnan(out["auc"])
    assert "not every class" in out["undefined"]["auc"]
    assert math.isfinite(out["ks"])


def test_without_teacher_agreement_metrics_are_nan_with_reason():
    y, _, proba = _binary_case(44)
    out = metrics.compute_metrics(y, proba)
    for name in ("fidelity", "rank_fidelity", "kl_to_teacher"):
        assert math.isnan(out[name])
        assert "teacher" in out["undefined"][name]


def test_teacher_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shape"):
        metrics.compute_metrics(np.array([0, 1]), _dirichlet(1, 2, 2), _dirichlet(1, 2, 3))


# ----------------------------------------------------------------------------- cost
def test_size_bytes_is_the_highest_protocol_pickle_length():
    X = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) % 7})
    model = DecisionTreeClassifier(random_state=0, max_depth=4).fit(X, np.arange(50) % 2)
    assert metrics.size_bytes(model) == len(pickle.dumps(model, pickle.HIGHEST_PROTOCOL))
    bigger = DecisionTreeClassifier(random_state=0).fit(X, np.arange(50) % 3)
    assert metrics.size_bytes(bigger) > metrics.size_bytes({"x": 1})


def test_latency_ms_1k_times_one_thousand_rows():
    X = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) % 4})
    model = DecisionTreeClassifier(random_state=0).fit(X, np.arange(30) % 2)
    seen_rows = []

    def predict_proba(batch):
        seen_rows.append(len(batch))
        return model.predict_proba(batch)

    value = metrics.latency_ms_1k(predict_proba, X, repeats=4)
    assert math.isfinite(value) and value > 0
    assert seen_rows == [1000] * 4  # 4 timed calls, no warm-up, rows cycled to 1,000
    seen_rows.clear()
    metrics.latency_ms_1k(predict_proba, X)
    assert seen_rows == [1000] * metrics.LATENCY_CALLS


def test_latency_of_empty_input_is_nan():
    assert math.isnan(metrics.latency_ms_1k(lambda X: X, pd.DataFrame({"a": []})))
