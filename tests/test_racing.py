"""Racing stops configurations only when they are clearly worse on paired resamples."""

from __future__ import annotations

import numpy as np

from hpmkd.racing import metric_value, share_worse


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
