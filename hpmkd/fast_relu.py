"""A faster ReLU derivative for scikit-learn's MLP, in place of its own during hpmkd's fits.

scikit-learn's backpropagation clears the error signal of the ReLU units that were off
with ``delta[Z == 0] = 0`` (``sklearn.neural_network._base.inplace_relu_derivative``,
looked up in ``DERIVATIVES`` for every minibatch and hidden layer): a boolean mask and a
fancy-indexed assignment, about 12 us on a 100 x 64 minibatch here, where multiplying by
the mask takes about 5 us. hpmkd's MLP students train on small minibatches for a fixed
number of epochs, so the call is made some hundred thousand times in a run: on case b the
default run took 10.1-10.3 s with scikit-learn's and 8.8-8.9 s with this one, with the
same digest of every candidate's figures (``bench/same_result.py``).

The values are scikit-learn's: ``Z`` is the output of a ReLU (zero or positive; NaN only
after a diverged step), so ``Z != 0`` is where the unit was on; there the signal is
multiplied by one and kept, elsewhere by zero, and adding ``+0.0`` turns the ``-0.0`` of
a negative signal into the ``+0.0`` scikit-learn assigns. (The two differ only in the
sign of a signal that is exactly ``-0.0`` at a unit that was on, and where a signal is
already NaN or infinite at a unit that was off: a zero of either sign, a fit that has
diverged.) ``tests/test_fast_relu.py`` checks the derivative bit for bit and that
fitted MLPs are identical with either.

:func:`fast_relu_derivative` installs it while any hpmkd MLP fit runs in the process
(threads share the module, so the first fit in installs and the last one out restores),
and only when ``DERIVATIVES["relu"]`` is the scikit-learn function it replaces: another
scikit-learn that changed it is left as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

try:  # scikit-learn's private module: absent in another version, then nothing changes
    from sklearn.neural_network._base import DERIVATIVES, inplace_relu_derivative
except ImportError:  # pragma: no cover - depends on the installed scikit-learn
    DERIVATIVES, inplace_relu_derivative = None, None

__all__ = ["fast_relu_derivative", "relu_derivative"]

_lock = threading.Lock()
_depth = 0


def relu_derivative(Z: np.ndarray, delta: np.ndarray) -> None:
    """Clear, in place, the error signal ``delta`` of the units whose ReLU output ``Z``
    is zero (scikit-learn's ``inplace_relu_derivative``, faster; see the module
    docstring for where the two could differ).

    Parameters
    ----------
    Z : ndarray
        ReLU outputs of the layer, shape (n_samples, n_units).
    delta : ndarray
        Back-propagated error signal of the same shape, modified in place.
    """
    np.multiply(delta, Z != 0, out=delta)
    delta += 0.0


@contextmanager
def fast_relu_derivative() -> Iterator[None]:
    """:func:`relu_derivative` in place of scikit-learn's inside the ``with`` (see the
    module docstring)."""
    global _depth
    with _lock:
        if _depth == 0 and DERIVATIVES is not None and (
            DERIVATIVES.get("relu") is inplace_relu_derivative
        ):
            DERIVATIVES["relu"] = relu_derivative
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and DERIVATIVES is not None and (
                DERIVATIVES.get("relu") is relu_derivative
            ):
                DERIVATIVES["relu"] = inplace_relu_derivative
