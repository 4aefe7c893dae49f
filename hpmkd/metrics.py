"""The metric definitions, in one place.

Names carry their meaning (see DESIGN.md):

- ``accuracy``: share of rows whose arg-max class is the true class.
- ``f1``: binary, F1 of the positive (second) class; multiclass, macro F1.
- ``auc``: ROC AUC; macro one-vs-rest for multiclass.
- ``ks``: max (TPR - FPR) over thresholds of the class score (directional: a score
  that ranks the class's rows lower scores near 0); macro one-vs-rest for
  multiclass.
- ``fidelity``: share of rows where student and teacher predict the same class.
- ``rank_fidelity``: Spearman correlation of student and teacher scores (binary: the
  positive-class score; multiclass: mean over classes).
- ``kl_to_teacher``: mean KL(teacher || student) in nats.
- ``ece``: expected calibration error of the predicted class: rows binned by the
  probability of their arg-max class into ``ECE_BINS`` equal-width bins; the mean over
  bins, weighted by rows, of |share correct - mean probability|. Lower is better.
- ``brier``: binary, mean (p_positive - y)^2; multiclass, mean over rows of the summed
  squared error over classes. Lower is better.
- ``size_bytes``: size of the pickled model.
- ``latency_ms_1k``: median wall time, in milliseconds, of three ``predict_proba`` calls
  on 1,000 rows, on one thread (OpenMP/BLAS pools limited to 1, so teacher and student are
  timed alike and a busy machine does not turn a multi-threaded model's timing into noise).

A metric that is undefined on the given data (one class present, constant scores) is
``NaN`` and the reason is recorded in ``undefined``.
"""

from __future__ import annotations

import math
import pickle
import time
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

QUALITY_METRICS = ("accuracy", "f1", "auc", "ks")
CALIBRATION_METRICS = ("ece", "brier")
AGREEMENT_METRICS = ("fidelity", "rank_fidelity", "kl_to_teacher")
COST_METRICS = ("size_bytes", "latency_ms_1k")
ALL_METRICS = QUALITY_METRICS + CALIBRATION_METRICS + AGREEMENT_METRICS + COST_METRICS
#: Timed ``predict_proba`` calls behind ``latency_ms_1k`` (their median), without an untimed
#: warm-up call. Every candidate is timed: on us_census_fertility the former warm-up and
#: five timed calls took about 9% of the workers' CPU. Measured on five census students
#: (15 repeats each, a freshly unpickled model for every median of three): the median of
#: three landed within 1-4% of warm-up + median of five, its spread between repeats
#: (interquartile range 8-12% of the median) near the former's (4-10%), and both well
#: inside what load does to a latency (docs/BENCHMARKS.md section 8, "Less CPU outside
#: the fits").
LATENCY_CALLS = 3
#: Equal-width probability bins of ``ece``.
ECE_BINS = 10

_EPS = 1e-12


def ks_binary(y_true: np.ndarray, score: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic of a score: max (TPR - FPR) over its thresholds.

    Directional, as a scorecard's KS is read: the score must rank the positives higher.
    A score that ranks them lower scores near 0, not near 1 (the two-sample statistic's
    max |TPR - FPR| would give a reversed model, useless as it is, the KS of a perfect
    one, and a selection by KS could then ship it).

    Parameters
    ----------
    y_true : array of {0, 1}
        1 marks the positive class.
    score : array of float
        Higher means more likely positive.

    Returns
    -------
    float
        In [0, 1]; NaN when only one class is present.
    """
    y_true = np.asarray(y_true).astype(bool)
    score = np.asarray(score, dtype=float)
    n_pos = int(y_true.sum())
    n_neg = int(y_true.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(-score, kind="mergesort")
    s_sorted = score[order]
    y_sorted = y_true[order]
    tpr = np.cumsum(y_sorted) / n_pos
    fpr = np.cumsum(~y_sorted) / n_neg
    # Only thresholds between distinct scores are real cut points.
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    # The last cut (every row above it) has TPR = FPR = 1, so the maximum is >= 0.
    return float(np.max(tpr[last_of_tie] - fpr[last_of_tie]))


def ks_score(y_true: np.ndarray, proba: np.ndarray) -> float:
    """KS of class scores: binary on the positive column, else macro one-vs-rest.

    Parameters
    ----------
    y_true : array of int
        Class indices in ``0 .. n_classes - 1``.
    proba : array of shape (n_samples, n_classes)
    """
    proba = _as_2d(proba)
    y_true = np.asarray(y_true)
    if proba.shape[1] == 2:
        return ks_binary(y_true == 1, proba[:, 1])
    values = [ks_binary(y_true == k, proba[:, k]) for k in range(proba.shape[1])]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def expected_calibration_error(
    y_true: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """ECE of the predicted class (see the module docstring).

    Parameters
    ----------
    y_true : array of int
        Class indices.
    proba : array of shape (n_samples, n_classes)
    n_bins : int
        Equal-width bins over [0, 1] of the predicted class's probability.
    """
    proba = _as_2d(proba)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(y_true)).astype(float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    rows = np.bincount(bins, minlength=n_bins)
    used = rows > 0
    gap = np.abs(
        np.bincount(bins, weights=correct, minlength=n_bins)[used]
        - np.bincount(bins, weights=confidence, minlength=n_bins)[used]
    )
    return float(gap.sum() / len(confidence))


def brier_score(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Brier score (see the module docstring)."""
    proba = _as_2d(proba)
    y_true = np.asarray(y_true).astype(int)
    if proba.shape[1] == 2:
        return float(np.mean((proba[:, 1] - (y_true == 1)) ** 2))
    onehot = np.eye(proba.shape[1])[y_true]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def kl_to_teacher(teacher_proba: np.ndarray, student_proba: np.ndarray) -> float:
    """Mean KL(teacher || student) over rows, in nats, with probabilities clipped at 1e-12."""
    p = np.clip(_as_2d(teacher_proba), _EPS, 1.0)
    q = np.clip(_as_2d(student_proba), _EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def rank_fidelity(teacher_proba: np.ndarray, student_proba: np.ndarray) -> float:
    """Spearman correlation of teacher and student scores (mean over classes if > 2)."""
    p = _as_2d(teacher_proba)
    q = _as_2d(student_proba)
    columns = [1] if p.shape[1] == 2 else range(p.shape[1])
    values = []
    for k in columns:
        if np.ptp(p[:, k]) == 0 or np.ptp(q[:, k]) == 0:
            continue
        values.append(float(spearmanr(p[:, k], q[:, k]).statistic))
    return float(np.mean(values)) if values else math.nan


def compute_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    teacher_proba: np.ndarray | None = None,
) -> dict[str, Any]:
    """Quality metrics against the labels and agreement metrics against the teacher.

    Parameters
    ----------
    y_true : array of int
        Class indices in ``0 .. n_classes - 1``.
    proba : array of shape (n_samples, n_classes)
        The model's class probabilities, columns in class-index order.
    teacher_proba : array of shape (n_samples, n_classes), optional
        The teacher's probabilities on the same rows; without it the agreement metrics
        are NaN.

    Returns
    -------
    dict
        ``accuracy, f1, auc, ks, ece, brier, fidelity, rank_fidelity, kl_to_teacher`` and
        ``undefined``, a dict from metric name to the reason it is NaN.
    """
    y_true = np.asarray(y_true).astype(int)
    proba = _as_2d(proba)
    n_classes = proba.shape[1]
    pred = proba.argmax(axis=1)
    undefined: dict[str, str] = {}
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, pred))}
    if n_classes == 2:
        out["f1"] = float(f1_score(y_true, pred, pos_label=1, zero_division=0))
    else:
        out["f1"] = float(
            f1_score(y_true, pred, average="macro", labels=range(n_classes), zero_division=0)
        )
    present = np.unique(y_true)
    if present.size < 2:
        out["auc"] = out["ks"] = math.nan
        undefined["auc"] = undefined["ks"] = "only one class present in the labels"
    else:
        if n_classes == 2:
            out["auc"] = float(roc_auc_score(y_true, proba[:, 1]))
        elif present.size == n_classes:
            out["auc"] = float(
                roc_auc_score(y_true, _renormalise(proba), multi_class="ovr", average="macro")
            )
        else:
            out["auc"] = math.nan
            undefined["auc"] = "not every class is present in the labels"
        out["ks"] = ks_score(y_true, proba)
    out["ece"] = expected_calibration_error(y_true, proba)
    out["brier"] = brier_score(y_true, proba)
    if teacher_proba is None:
        for name in AGREEMENT_METRICS:
            out[name] = math.nan
            undefined[name] = "no teacher probabilities"
    else:
        teacher_proba = _as_2d(teacher_proba)
        if teacher_proba.shape != proba.shape:
            raise ValueError(
                f"teacher probabilities have shape {teacher_proba.shape}, the model's {proba.shape}"
            )
        out["fidelity"] = float(np.mean(teacher_proba.argmax(axis=1) == pred))
        out["rank_fidelity"] = rank_fidelity(teacher_proba, proba)
        if math.isnan(out["rank_fidelity"]):
            undefined["rank_fidelity"] = "constant scores"
        out["kl_to_teacher"] = kl_to_teacher(teacher_proba, proba)
    out["undefined"] = undefined
    return out


def size_bytes(model: Any) -> int:
    """Size in bytes of the model pickled with the highest protocol."""
    return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


def single_thread_predictor(model: Any) -> Any:
    """``predict_proba`` of ``model`` forced onto one thread, for fair latency timing.

    LightGBM takes its thread count from the model (``n_jobs=-1`` means every core) and
    ignores thread-pool limits, so it is asked for ``num_threads=1`` explicitly, also
    at the end of a scikit-learn ``Pipeline`` (which passes the keyword to its last
    step). Other models are limited by :func:`latency_ms_1k`'s thread-pool limit.
    """
    try:
        import lightgbm
    except ImportError:  # pragma: no cover - lightgbm is a dependency
        return model.predict_proba
    if isinstance(model, lightgbm.Booster):
        return lambda X: model.predict(X, num_threads=1)
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    if isinstance(last, lightgbm.LGBMModel):
        return lambda X: model.predict_proba(X, num_threads=1)
    return model.predict_proba


def latency_ms_1k(
    predict_proba: Any, X: pd.DataFrame, repeats: int = LATENCY_CALLS, rows: int = 1000
) -> float:
    """Median milliseconds of ``predict_proba`` on ``rows`` rows (rows repeat if fewer),
    with thread pools limited to one thread.

    Parameters
    ----------
    predict_proba : callable
        The model's ``predict_proba``.
    X : DataFrame
        Rows in the model's input format; cycled to reach ``rows`` rows.
    repeats : int
        Timed calls; the median is reported (see :data:`LATENCY_CALLS`).
    """
    if len(X) == 0:
        return math.nan
    from hpmkd.native_threads import one_thread

    index = np.arange(rows) % len(X)
    batch = X.iloc[index]
    times = []
    with one_thread():
        for _ in range(repeats):
            start = time.perf_counter()
            predict_proba(batch)
            times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def _as_2d(proba: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    return proba


def _renormalise(proba: np.ndarray) -> np.ndarray:
    # roc_auc_score(multi_class="ovr") insists rows sum to 1 within a tight tolerance.
    total = proba.sum(axis=1, keepdims=True)
    return proba / np.where(total > 0, total, 1.0)
