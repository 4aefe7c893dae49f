"""The numbers behind the evaluation charts, shared by the HTML report and the app.

The figure builders of :mod:`hpmkd.report.figures`, used by the HTML report and by the
Streamlit Compare page, take their numbers from here, so a chart of the same run shows the
same values in either place. Plain numpy/pandas: no plotting here.

Conventions
-----------
- A class score is one-vs-rest: ``y_pos`` marks the rows of the class, ``score`` is the
  model's probability of it (for a binary target the second class, as in
  :mod:`hpmkd.metrics`).
- Statistics (KS, calibration bins, histograms) are always computed on every row; only the
  number of *drawn* points is reduced, by :func:`thin_indices`.
- Costs (size in bytes, latency) are lower-is-better; a cost that is not positive (the
  ``-1`` "unknown" sentinel) or not finite is unknown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Equal-width bins of the reliability curve.
N_CALIBRATION_BINS = 10

#: Columns of :func:`calibration_bins`.
CALIBRATION_COLUMNS = ("bin", "lower", "upper", "mean_score", "observed", "rows")


# --------------------------------------------------------------------------- thinning
def thin_indices(n: int, max_points: int, keep: Sequence[int] = ()) -> np.ndarray:
    """Every k-th index of ``range(n)`` so that about ``max_points`` remain.

    Parameters
    ----------
    n : int
        Number of points.
    max_points : int
        Target number of points; ``k = ceil(n / max_points)``.
    keep : sequence of int, optional
        Indices always kept (besides the first and the last); out-of-range ones are ignored.

    Returns
    -------
    ndarray of int
        Sorted indices; ``arange(n)`` when ``n <= max_points``. At most
        ``max_points + 1 + len(keep)`` of them. Deterministic.
    """
    if n <= max_points:
        return np.arange(n)
    step = math.ceil(n / max_points)
    idx = set(range(0, n, step)) | {0, n - 1} | {int(k) for k in keep if 0 <= k < n}
    return np.array(sorted(idx), dtype=int)


# --------------------------------------------------------------------------- classes
def score_classes(n_classes: int) -> list[int]:
    """Class indices whose one-vs-rest score is charted.

    Parameters
    ----------
    n_classes : int

    Returns
    -------
    list of int
        ``[1]`` (the positive class) for binary targets, else every class index.
    """
    return [1] if n_classes == 2 else list(range(n_classes))


def default_class(y: np.ndarray, n_classes: int) -> int:
    """The class whose one-vs-rest view is shown first.

    Parameters
    ----------
    y : ndarray of int
        Class indices of the test rows.
    n_classes : int

    Returns
    -------
    int
        ``1`` for binary targets; otherwise the class with the fewest rows in ``y``
        (ties: the lowest index).
    """
    if n_classes == 2:
        return 1
    counts = np.bincount(np.asarray(y, dtype=int), minlength=n_classes)
    return int(np.argmin(counts))


# --------------------------------------------------------------------------- KS
@dataclass(frozen=True)
class KSCurve:
    """Empirical CDFs of a class score for the class's rows and the others.

    Attributes
    ----------
    x : ndarray of float
        Distinct scores, ascending.
    cdf_pos, cdf_neg : ndarray of float
        Share of the class's rows (``pos``) and of the other rows (``neg``) with a score
        ``<= x``; zeros when the group is empty.
    ks : float
        Largest ``cdf_neg - cdf_pos`` (equal to max ``TPR - FPR`` and to
        :func:`hpmkd.metrics.ks_binary`: directional); NaN when one of the groups is
        empty.
    at : float
        The score where the largest gap occurs (NaN with ``ks``).
    index : int
        Position of ``at`` in ``x`` (0 when ``ks`` is NaN).
    """

    x: np.ndarray
    cdf_pos: np.ndarray
    cdf_neg: np.ndarray
    ks: float
    at: float
    index: int


def ks_curve(y_pos: np.ndarray, score: np.ndarray) -> KSCurve:
    """The KS curves of a class score and their largest gap.

    Parameters
    ----------
    y_pos : array of bool
        True for rows of the class.
    score : array of float
        The model's score of the class.

    Returns
    -------
    KSCurve
    """
    y_pos = np.asarray(y_pos, dtype=bool)
    score = np.asarray(score, dtype=float)
    x = np.unique(score)
    pos, neg = np.sort(score[y_pos]), np.sort(score[~y_pos])
    if pos.size == 0 or neg.size == 0:
        zeros = np.zeros_like(x)
        return KSCurve(x, zeros, zeros.copy(), math.nan, math.nan, 0)
    cdf_pos = np.searchsorted(pos, x, side="right") / pos.size
    cdf_neg = np.searchsorted(neg, x, side="right") / neg.size
    gap = cdf_neg - cdf_pos
    i = int(np.argmax(gap))
    return KSCurve(x, cdf_pos, cdf_neg, float(gap[i]), float(x[i]), i)


# --------------------------------------------------------------------------- histograms
@dataclass(frozen=True)
class ScoreHistogram:
    """Counts of a class score on equal-width bins of [0, 1], split by true class.

    Attributes
    ----------
    edges : ndarray of float
        ``n_bins + 1`` bin edges.
    centers : ndarray of float
        Bin centres.
    counts_pos, counts_neg : ndarray of int
        Rows of the class (``pos``) and of the other classes (``neg``) per bin.
    share_pos, share_neg : ndarray of float
        The counts divided by the group's rows (zeros for an empty group).
    """

    edges: np.ndarray
    centers: np.ndarray
    counts_pos: np.ndarray
    counts_neg: np.ndarray
    share_pos: np.ndarray
    share_neg: np.ndarray


def score_histogram(y_pos: np.ndarray, score: np.ndarray, n_bins: int) -> ScoreHistogram:
    """Histograms of a class score for the class's rows and the other rows.

    Parameters
    ----------
    y_pos : array of bool
        True for rows of the class.
    score : array of float
        The model's score of the class; clipped to [0, 1].
    n_bins : int
        Equal-width bins over [0, 1] (the last bin includes 1).

    Returns
    -------
    ScoreHistogram
    """
    y_pos = np.asarray(y_pos, dtype=bool)
    score = np.clip(np.asarray(score, dtype=float), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts_pos, _ = np.histogram(score[y_pos], bins=edges)
    counts_neg, _ = np.histogram(score[~y_pos], bins=edges)
    return ScoreHistogram(
        edges=edges,
        centers=(edges[:-1] + edges[1:]) / 2,
        counts_pos=counts_pos,
        counts_neg=counts_neg,
        share_pos=counts_pos / max(int(y_pos.sum()), 1),
        share_neg=counts_neg / max(int((~y_pos).sum()), 1),
    )


# --------------------------------------------------------------------------- calibration
def calibration_bins(
    y_pos: np.ndarray, score: np.ndarray, n_bins: int = N_CALIBRATION_BINS
) -> pd.DataFrame:
    """Reliability curve on ``n_bins`` equal-width bins of [0, 1] (empty bins left out).

    Bin ``b`` holds the scores in ``[b / n_bins, (b + 1) / n_bins)``, the last bin also
    1.0; the bin is ``floor(score * n_bins)``, so a score such as ``0.3`` or ``0.7`` (a
    10-tree forest's vote share) lands in the bin it starts.

    Parameters
    ----------
    y_pos : array of bool
        True for rows of the class.
    score : array of float
        Predicted probability of the class; clipped to [0, 1], NaN rows left out.
    n_bins : int, default 10

    Returns
    -------
    DataFrame
        One row per non-empty bin, in bin order, with the columns ``bin`` (its index),
        ``lower`` and ``upper`` (its edges), ``mean_score`` (mean predicted score),
        ``observed`` (share of the class's rows) and ``rows``.
    """
    y_pos = np.asarray(y_pos, dtype=bool)
    score = np.clip(np.asarray(score, dtype=float), 0.0, 1.0)
    valid = ~np.isnan(score)
    score, y_pos = score[valid], y_pos[valid]
    which = np.minimum(np.floor(score * n_bins).astype(int), n_bins - 1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    rows: list[dict[str, Any]] = []
    for b in range(n_bins):
        mask = which == b
        n = int(mask.sum())
        if n == 0:
            continue
        rows.append(
            {
                "bin": b,
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "mean_score": float(score[mask].mean()),
                "observed": float(y_pos[mask].mean()),
                "rows": n,
            }
        )
    return pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))


# --------------------------------------------------------------------------- confusion
def confusion_counts(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Confusion matrix of the arg-max predictions (rows: true class, columns: predicted).

    Parameters
    ----------
    y_true : array of int
        Class indices in ``0 .. n_classes - 1``.
    proba : array of shape (n_rows, n_classes)

    Returns
    -------
    ndarray of int, shape (n_classes, n_classes)
    """
    proba = np.asarray(proba, dtype=float)
    n = proba.shape[1]
    matrix = np.zeros((n, n), dtype=int)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), proba.argmax(axis=1)), 1)
    return matrix


# --------------------------------------------------------------------------- Pareto
def known_cost(cost: Any) -> np.ndarray:
    """Costs as floats, the unknown ones as NaN.

    A cost is unknown when it is not positive (the ``-1`` "unknown" sentinel of size and
    latency) or not finite.

    Parameters
    ----------
    cost : array-like of float

    Returns
    -------
    ndarray of float
    """
    cost = np.asarray(cost, dtype=float)
    return np.where(np.isfinite(cost) & (cost > 0), cost, np.nan)


def pareto_front(cost: Any, quality: Any) -> np.ndarray:
    """Positions of the candidates that no other candidate dominates.

    ``j`` dominates ``i`` when it costs no more and is at least as good, and is cheaper
    or better (strict Pareto dominance). So of two candidates with the same cost only the
    better is on the front, and exact duplicates (same cost and quality) are all on it.

    Parameters
    ----------
    cost : array-like of float
        Lower is better (size, latency). Unknown costs (see :func:`known_cost`) are never
        on the front.
    quality : array-like of float
        Higher is better (a test metric). NaN is never on the front.

    Returns
    -------
    ndarray of int
        Positions on the front, by increasing cost (ties: by position).
    """
    c = known_cost(cost)
    q = np.asarray(quality, dtype=float)
    if c.shape != q.shape:
        raise ValueError(f"cost and quality differ in length: {c.shape} vs {q.shape}")
    valid = np.flatnonzero(~np.isnan(c) & np.isfinite(q))
    order = valid[np.lexsort((valid, -q[valid], c[valid]))]
    front: list[int] = []
    best_cheaper = -math.inf  # best quality among strictly cheaper candidates
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and c[order[stop]] == c[order[start]]:
            stop += 1
        top = q[order[start]]  # the group is sorted by quality, best first
        if top > best_cheaper:
            front += [int(i) for i in order[start:stop] if q[i] == top]
            best_cheaper = top
        start = stop
    return np.array(front, dtype=int)
