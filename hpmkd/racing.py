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
