"""The chart numbers shared by the HTML report and the app (:mod:`hpmkd.curves`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpmkd import curves
from hpmkd.metrics import ks_binary


# --------------------------------------------------------------------------- KS
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_curve_equals_ks_binary_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500).astype(bool)
    score = np.round(rng.random(500) * 0.6 + y * 0.3, 1)  # few distinct values: many ties
    c = curves.ks_curve(y, score)
    assert c.ks == pytest.approx(ks_binary(y, score), abs=1e-12)
    assert list(c.x) == sorted(set(score))
    # The marked point is where the gap is, and the CDFs there are shares of rows <= at.
    assert c.at == c.x[c.index]
    assert c.cdf_pos[c.index] == pytest.approx(np.mean(score[y] <= c.at))
    assert c.cdf_neg[c.index] == pytest.approx(np.mean(score[~y] <= c.at))
    assert c.cdf_neg[c.index] - c.cdf_pos[c.index] == pytest.approx(c.ks)


def test_ks_curve_hand_example() -> None:
    # A positive and a negative row tie at 0.5: both CDFs step there together.
    y = np.array([False, False, False, True, True, True, True])
    score = np.array([0.1, 0.2, 0.5, 0.5, 0.7, 0.9, 0.9])
    c = curves.ks_curve(y, score)
    assert list(c.x) == [0.1, 0.2, 0.5, 0.7, 0.9]
    assert list(c.cdf_neg) == pytest.approx([1 / 3, 2 / 3, 1, 1, 1])
    assert list(c.cdf_pos) == pytest.approx([0, 0, 1 / 4, 1 / 2, 1])
    assert (c.ks, c.at, c.index) == (pytest.approx(0.75), 0.5, 2)
    assert c.ks == pytest.approx(ks_binary(y, score))


def test_ks_curve_one_group_empty_is_nan_like_the_metric() -> None:
    score = np.array([0.2, 0.5, 0.7])
    for y in (np.ones(3, dtype=bool), np.zeros(3, dtype=bool)):
        c = curves.ks_curve(y, score)
        assert math.isnan(c.ks) and math.isnan(c.at) and c.index == 0
        assert math.isnan(ks_binary(y, score))
        assert not c.cdf_pos.any() and not c.cdf_neg.any()


# --------------------------------------------------------------------------- calibration
def test_calibration_bins_counts_and_means() -> None:
    score = np.array([0.05, 0.15, 0.12, 0.55, 0.95, 1.0, 1.2, -0.1])
    y = np.array([0, 1, 0, 1, 1, 1, 0, 0], dtype=bool)
    table = curves.calibration_bins(y, score)
    assert list(table.columns) == list(curves.CALIBRATION_COLUMNS)
    assert list(table["bin"]) == [0, 1, 5, 9]  # empty bins left out
    assert list(table["rows"]) == [2, 2, 1, 3]
    # Scores are clipped to [0, 1]: -0.1 joins bin 0, 1.2 and 1.0 the last bin.
    assert list(table["mean_score"]) == pytest.approx([0.025, 0.135, 0.55, (0.95 + 2) / 3])
    assert list(table["observed"]) == pytest.approx([0.0, 0.5, 1.0, 2 / 3])
    assert list(table["lower"]) == pytest.approx([0.0, 0.1, 0.5, 0.9])
    assert list(table["upper"]) == pytest.approx([0.1, 0.2, 0.6, 1.0])
    assert table["rows"].sum() == len(score)


def test_calibration_bin_of_a_score_on_an_edge_is_the_bin_it_starts() -> None:
    score = np.arange(10) / 10  # a 10-tree forest's vote shares: 0.0, 0.1, ..., 0.9
    table = curves.calibration_bins(np.ones(10, dtype=bool), score)
    assert list(table["bin"]) == list(range(10))
    assert list(table["rows"]) == [1] * 10
    table = curves.calibration_bins(np.ones(4, dtype=bool), [0.2, 0.4, 0.6, 0.8], n_bins=5)
    assert list(table["bin"]) == [1, 2, 3, 4]


# --------------------------------------------------------------------------- Pareto
def test_pareto_front_hand_example() -> None:
    cost = [10, 5, 20, 5, 30, 8, 8, -1, 0, float("nan"), 40]
    quality = [0.5, 0.4, 0.9, 0.45, 0.9, 0.5, 0.5, 1.0, 1.0, 1.0, float("nan")]
    front = curves.pareto_front(cost, quality)
    # 1 loses to 3 (same cost, worse); 0 to the duplicates 5 and 6 (cheaper, as good);
    # 4 to 2 (dearer, as good); unknown costs (-1, 0, NaN) and NaN quality never count.
    assert list(front) == [3, 5, 6, 2]
    for i in front:
        assert not any(
            cost[j] > 0 and cost[j] < cost[i] and quality[j] >= quality[i] for j in range(len(cost))
        )


def test_pareto_front_edge_cases() -> None:
    assert list(curves.pareto_front([], [])) == []
    assert list(curves.pareto_front([3.0], [0.2])) == [0]
    assert list(curves.pareto_front([1.0, 2.0, 3.0, 2.0, np.nan], [0.5, 0.7, 0.6, 0.4, 0.9])) == [
        0,
        1,
    ]
    with pytest.raises(ValueError):
        curves.pareto_front([1.0, 2.0], [0.5])


# --------------------------------------------------------------------------- thinning
def test_thin_indices_every_kth_keeps_ends_and_marked_points() -> None:
    assert list(curves.thin_indices(5, 10)) == [0, 1, 2, 3, 4]
    idx = curves.thin_indices(10, 4, keep=[5, 99])
    assert list(idx) == [0, 3, 5, 6, 9]  # k = ceil(10 / 4) = 3, plus the last and 5
    big = curves.thin_indices(100_001, 1000)
    assert big[0] == 0 and big[-1] == 100_000 and len(big) <= 1001
    assert set(np.diff(big[:-1])) == {101}
    assert np.array_equal(big, curves.thin_indices(100_001, 1000))


# --------------------------------------------------------------------------- others
def test_score_histogram_and_confusion_counts() -> None:
    y = np.array([True, True, False, False, False])
    h = curves.score_histogram(y, [0.1, 0.9, 0.1, 0.2, 1.0], n_bins=4)
    assert list(h.centers) == pytest.approx([0.125, 0.375, 0.625, 0.875])
    assert list(h.counts_pos) == [1, 0, 0, 1] and list(h.counts_neg) == [2, 0, 0, 1]
    assert list(h.share_neg) == pytest.approx([2 / 3, 0, 0, 1 / 3])
    proba = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    matrix = curves.confusion_counts(np.array([0, 1, 1, 2]), proba)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]


def test_default_class_is_the_rarest_of_several() -> None:
    assert curves.score_classes(2) == [1] and curves.score_classes(3) == [0, 1, 2]
    assert curves.default_class(np.array([0, 0, 0, 1]), 2) == 1
    assert curves.default_class(np.array([0, 1, 1, 2, 2, 0, 2]), 4) == 3
    assert curves.default_class(np.array([0, 1, 1, 2, 2, 0]), 3) == 0
