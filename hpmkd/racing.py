"""Racing: stop spending trials on configurations that are clearly worse.

After each round of trials, a configuration keeps racing only if its best candidate is
not clearly worse than the incumbent (the best candidate so far). "Clearly worse" is
measured on the validation rows by a paired bootstrap: both models are scored on the same
resampled rows, ``n_boot`` times; if the configuration scores below the incumbent in at
least ``threshold`` of the resamples (default 90%), it stops. Pairing matters: two models
on the same rows differ by much less noise than either score varies on its own.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from hpmkd.metrics import compute_metrics, ks_score


def metric_value(
    metric: str, y: np.ndarray, proba: np.ndarray, reference: np.ndarray | None = None
) -> float:
    """One metric of ``proba`` against labels ``y`` (fast paths for ks, auc, accuracy)."""
    if metric == "ks":
        return ks_score(y, proba)
    if metric == "accuracy":
        return float(np.mean(proba.argmax(axis=1) == y))
    if metric == "auc" and proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1])) if len(np.unique(y)) == 2 else math.nan
    return float(compute_metrics(y, proba, reference)[metric])


def _ks_many(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """KS of ``proba`` under each row-weight vector in ``weights`` (n_boot, n_rows).

    A bootstrap resample is a vector of row multiplicities, and resampling does not
    change the order of the scores: each class column is sorted once and every resample
    is a weighted cumulative sum over that order.
    """
    columns = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    values = []
    for k in columns:
        score = proba[:, k]
        order = np.argsort(-score, kind="mergesort")
        s_sorted = score[order]
        pos = (y[order] == k).astype(float)
        w = weights[:, order]
        tp = np.cumsum(w * pos, axis=1)
        fp = np.cumsum(w * (1.0 - pos), axis=1)
        n_pos, n_neg = tp[:, -1:], fp[:, -1:]
        last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.abs(tp[:, last_of_tie] / n_pos - fp[:, last_of_tie] / n_neg)
        ks = gap.max(axis=1)
        ks[(n_pos[:, 0] == 0) | (n_neg[:, 0] == 0)] = np.nan
        values.append(ks)
    return np.nanmean(np.vstack(values), axis=0) if len(values) > 1 else values[0]


def share_worse(
    y: np.ndarray,
    incumbent: np.ndarray,
    candidate: np.ndarray,
    metric: str = "ks",
    reference: np.ndarray | None = None,
    n_boot: int = 100,
    seed: int = 0,
) -> float:
    """Share of paired bootstrap resamples of the rows where ``candidate`` scores below
    ``incumbent`` (ties count half).

    Parameters
    ----------
    y : array of int
        Class indices of the validation rows.
    incumbent, candidate : arrays (n_rows, n_classes)
        The two models' probabilities on those rows.
    metric : str
        A selection metric name (higher is better).
    reference : array, optional
        Teacher probabilities, for the agreement metrics.
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    if metric == "ks":
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
        a, b = _ks_many(y, incumbent, weights), _ks_many(y, candidate, weights)
        valid = ~(np.isnan(a) | np.isnan(b))
        return float((np.sum(b[valid] < a[valid]) + 0.5 * np.sum(b[valid] == a[valid])) / n_boot)
    worse = 0.0
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        ref = None if reference is None else reference[idx]
        a = metric_value(metric, y[idx], incumbent[idx], ref)
        b = metric_value(metric, y[idx], candidate[idx], ref)
        if math.isnan(a) or math.isnan(b):
            continue
        worse += 1.0 if b < a else 0.5 if b == a else 0.0
    return worse / n_boot
