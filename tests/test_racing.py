"""Racing stops configurations only when they are clearly worse on paired resamples."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hpmkd.components.racing import metric_value, share_worse


def _probas(seed: int, n: int = 2000):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    signal = np.where(y == 1, 1.0, -1.0)

    def model(noise: float) -> np.ndarray:
        p = 1 / (1 + np.exp(-(signal + noise * rng.normal(size=n))))
        return np.column_stack([1 - p, p])

    return y, model


def test_clearly_worse_model_loses_almost_every_resample():
    y, model = _probas(0)
    good, bad = model(0.8), model(3.0)
    assert metric_value("ks", y, good) > metric_value("ks", y, bad)
    assert share_worse(y, good, bad, "ks", n_boot=100, seed=1) >= 0.95
    assert share_worse(y, bad, good, "ks", n_boot=100, seed=1) <= 0.05


def test_same_model_is_never_clearly_worse():
    y, model = _probas(1)
    p = model(1.0)
    assert share_worse(y, p, p.copy(), "ks", n_boot=50) == 0.5


def test_near_equal_models_are_not_stopped():
    y, model = _probas(2)
    a, b = model(1.0), model(1.02)
    share = share_worse(y, a, b, "auc", n_boot=100, seed=3)
    assert 0.05 < share < 0.9


def test_vectorised_bootstrap_ks_equals_resampled_ks():
    from hpmkd.components.racing import _ks_many

    y, model = _probas(4, n=300)
    p = model(1.0)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 300, size=(5, 300))
    weights = np.stack([np.bincount(i, minlength=300) for i in idx]).astype(float)
    expected = [metric_value("ks", y[i], p[i]) for i in idx]
    np.testing.assert_allclose(_ks_many(y, p, weights), expected, atol=1e-12)
    y3 = rng.integers(0, 3, size=300)
    p3 = rng.dirichlet(np.ones(3), size=300)
    expected3 = [metric_value("ks", y3[i], p3[i]) for i in idx]
    np.testing.assert_allclose(_ks_many(y3, p3, weights), expected3, atol=1e-12)


def test_scores_many_shares_the_resamples_of_paired_bootstrap():
    # The verdict draws each resample once for three models; it must see exactly the
    # resamples (and so the differences) of one PairedBootstrap per pair.
    from hpmkd.components.racing import PairedBootstrap

    y, model = _probas(4, n=3000)
    student, twin, teacher = model(1.0), model(1.3), model(0.7)
    for metric in ("ks", "auc"):
        mine, *theirs = PairedBootstrap(y, None, metric, n_boot=60, seed=5).scores_many(
            [student, twin, teacher]
        )
        for other, scores in zip((twin, teacher), theirs, strict=True):
            pair = -PairedBootstrap(y, other, metric, n_boot=60, seed=5).differences(student)
            np.testing.assert_array_equal(mine - scores, pair)
        assert not np.allclose(mine, theirs[0])


def _ks_many_whole_chunk(y, proba, weights):
    """The verdict's KS on resamples as it was computed before ``_ks_one`` (all
    resamples of a chunk as one matrix): the per-resample code must give the very same
    numbers, bit for bit, not merely close ones."""
    from hpmkd.components.racing import _ks_order

    values = []
    for order, pos, last_of_tie in _ks_order(y, proba):
        w = weights[:, order]
        tp = np.cumsum(np.where(pos, w, 0), axis=1, dtype=w.dtype)
        fp = np.cumsum(w, axis=1, dtype=w.dtype)
        fp -= tp
        n_pos, n_neg = tp[:, -1:], fp[:, -1:]
        if last_of_tie is not None:
            tp, fp = tp[:, last_of_tie], fp[:, last_of_tie]
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = tp / n_pos - fp / n_neg  # directional, as the metric
        ks = gap.max(axis=1)
        ks[(n_pos[:, 0] == 0) | (n_neg[:, 0] == 0)] = np.nan
        values.append(ks)
    return np.nanmean(np.vstack(values), axis=0) if len(values) > 1 else values[0]


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("kind", ["int32", "float"])
def test_per_resample_ks_is_bit_identical_to_the_whole_chunk(n_classes, kind):
    from hpmkd.components.racing import _ks_many

    rng = np.random.default_rng(n_classes)
    n = 400
    y = rng.integers(0, n_classes, n)
    proba = rng.dirichlet(np.ones(n_classes), size=n)
    proba[::3] = np.round(proba[::3], 1)  # ties
    proba /= proba.sum(axis=1, keepdims=True)
    idx = rng.integers(0, n, size=(40, n))
    weights = np.stack([np.bincount(i, minlength=n) for i in idx]).astype(kind)
    # Resamples with no positive (or no negative) rows of a class: KS undefined there.
    weights[0] = np.where(y == 0, weights[0], 0)
    weights[1] = np.where(y == 1, weights[1], 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN resamples
        expected = _ks_many_whole_chunk(y, proba, weights)
        got = _ks_many(y, proba, weights)
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[:2]).all() and not np.isnan(got[2:]).any()
