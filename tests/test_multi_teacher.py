"""AttentionWeightedMultiTeacher favours the good member and beats the plain average."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from hpmkd.components.multi_teacher import AttentionWeightedMultiTeacher


def _members(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    signal = np.where(y == 1, 1.5, -1.5) + rng.normal(size=n)
    good = 1 / (1 + np.exp(-signal))
    noise = rng.uniform(size=n)
    to2 = lambda p: np.column_stack([1 - p, p])  # noqa: E731
    return y, to2(good), to2(noise)


def test_good_teacher_gets_the_weight_and_fusion_beats_the_mean():
    y_val, good_val, rand_val = _members(3000, 0)
    y_tr, good_tr, rand_tr = _members(3000, 1)
    att = AttentionWeightedMultiTeacher().fit([good_val, rand_val], y_val)
    assert att.mean_weights_[0] > 0.8 > att.mean_weights_[1]
    fused = att.fuse([good_tr, rand_tr])
    mean = (good_tr + rand_tr) / 2
    # Scored on rows the attention never saw.
    assert log_loss(y_tr, fused) < log_loss(y_tr, mean)
    assert roc_auc_score(y_tr, fused[:, 1]) > roc_auc_score(y_tr, mean[:, 1])
    np.testing.assert_allclose(fused.sum(axis=1), 1.0)


def test_weights_are_per_sample_and_sum_to_one():
    y, good, rand = _members(500, 2)
    att = AttentionWeightedMultiTeacher().fit([good, rand], y)
    w = att.weights([good, rand])
    assert w.shape == (2, 500)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    assert np.ptp(w[0]) > 0  # not one global weight


def test_order_of_members_does_not_matter():
    y, good, rand = _members(1000, 3)
    a = AttentionWeightedMultiTeacher().fit([good, rand], y)
    b = AttentionWeightedMultiTeacher().fit([rand, good], y)
    np.testing.assert_allclose(a.fuse([good, rand]), b.fuse([rand, good]), atol=1e-4)
