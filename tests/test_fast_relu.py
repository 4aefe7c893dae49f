"""``hpmkd.fast_relu``: the ReLU derivative hpmkd's MLP fits use gives scikit-learn's values
and the same fitted students, and is installed only while hpmkd fits."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier
from sklearn.neural_network._base import DERIVATIVES, inplace_relu_derivative

from hpmkd import fast_relu
from hpmkd.fast_relu import fast_relu_derivative, relu_derivative


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_derivative_is_scikit_learns_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    Z = np.maximum(rng.normal(size=(257, 64)), 0).astype(dtype)  # about half the units off
    Z[:, 3] = 0  # a unit off for every row
    delta = rng.normal(size=Z.shape).astype(dtype)
    delta[5, :] = 0.0
    expected, got = delta.copy(), delta.copy()
    inplace_relu_derivative(Z, expected)
    relu_derivative(Z, got)
    assert (Z == 0).any() and (delta[Z == 0] < 0).any()
    assert got.dtype == dtype
    assert np.array_equal(expected.view(np.uint8), got.view(np.uint8))  # zeros' signs too


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fitted_mlps_are_identical_with_either(dtype):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 12)).astype(dtype)
    y = (X[:, :3].sum(axis=1) + rng.normal(size=600) > 0).astype(int)

    def fit() -> MLPClassifier:
        model = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=15, batch_size=50,
                              random_state=3, shuffle=False)
        with pytest.warns(Warning):  # the fixed epoch budget does not converge
            return model.fit(X, y)

    stock = fit()
    with fast_relu_derivative():
        assert DERIVATIVES["relu"] is relu_derivative
        fast = fit()
    assert DERIVATIVES["relu"] is inplace_relu_derivative
    for a, b in zip(stock.coefs_ + stock.intercepts_, fast.coefs_ + fast.intercepts_,
                    strict=True):
        assert np.array_equal(a, b)
    assert stock.loss_curve_ == fast.loss_curve_


def test_installed_until_the_last_fit_in_the_process_ends():
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def first():
        with fast_relu_derivative():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with fast_relu_derivative():
            second_in.set()
            first_out.wait(5)
            seen["after the first left"] = DERIVATIVES["relu"]

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["after the first left"] is relu_derivative
    assert DERIVATIVES["relu"] is inplace_relu_derivative


def test_another_derivative_in_place_is_left_alone(monkeypatch):
    def other(Z, delta):  # e.g. what another scikit-learn version might hold
        delta[Z == 0] = 0

    monkeypatch.setitem(DERIVATIVES, "relu", other)
    with fast_relu_derivative():
        assert DERIVATIVES["relu"] is other
    assert DERIVATIVES["relu"] is other


def test_hpmkd_mlp_students_fit_with_it(monkeypatch):
    from hpmkd.students import build_student, fit_on_soft_targets, trial_params

    calls = []

    def counting(Z, delta):
        calls.append(Z.shape)
        relu_derivative(Z, delta)

    monkeypatch.setattr(fast_relu, "relu_derivative", counting)
    import pandas as pd

    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
    p1 = 1 / (1 + np.exp(-X["a"].to_numpy()))
    targets = np.column_stack([1 - p1, p1])
    params = trial_params("mlp", "small", 0, len(X), 0)
    model = build_student("mlp", params, list("abcd"), [], 0)
    fit_on_soft_targets(model, X, targets, [0, 1])
    assert calls, "the student's fit did not use the fast derivative"
    assert DERIVATIVES["relu"] is inplace_relu_derivative
