"""Validation of memory-sensitive object states before they are set.

numpy and scikit-learn trust the state a pickle gives them when BUILD runs
``__setstate__``: a short object list is read past its end, and out-of-range node
indices in a decision tree make prediction read (and feature importances write)
outside the tree's memory.  The unpickler calls these checks on every BUILD of an
ndarray, a ``sklearn.tree._tree.Tree``, a HistGradientBoosting ``TreePredictor``, a
SciPy ``BSpline`` (whose evaluation is C code trusting its knots) and a
``functools.partial`` (which scikit-learn only ever makes of ``check_array``).
:mod:`~hpmkd.safe_load.graph_checks` runs the same checks again on the loaded
objects, which is what covers ``.skops`` files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from hpmkd.safe_load.allowlist import (
    _CHECK_ARRAY,
    _NUMPY_ABSTRACT_TYPES,
    _NUMPY_SCALAR_TYPES,
    _SCIPY_NUMPY_ASARRAY,
)
from hpmkd.safe_load.errors import _require
from hpmkd.safe_load.numpy_guards import _is_dtype, _is_shape

# Keyword arguments of check_array that scikit-learn fixes with functools.partial
# (HistGradientBoosting: dtype and ensure_all_finite).  Not "estimator": an object.
_CHECK_ARRAY_KWARGS: Final = frozenset(
    {
        "accept_sparse",
        "accept_large_sparse",
        "dtype",
        "order",
        "copy",
        "force_writeable",
        "force_all_finite",
        "ensure_all_finite",
        "ensure_non_negative",
        "ensure_2d",
        "allow_nd",
        "ensure_min_samples",
        "ensure_min_features",
        "input_name",
    }
)
_SCALAR_VALUE_TYPES: Final = (bool, int, float, str, type(None))
_TYPE_VALUES: Final = frozenset({*_NUMPY_SCALAR_TYPES, *_NUMPY_ABSTRACT_TYPES, object})


def _is_plain_value(value: object, arrays: bool = False, depth: int = 0) -> bool:
    """Whether ``value`` is plain data a model may pass as a keyword argument.

    Scalars, numpy scalars, numpy scalar *types* (``dtype=np.float64``), short lists
    or tuples of those, and - with ``arrays`` - numeric arrays (clip bounds per column).
    Never an object, a function or an object array.
    """
    if type(value) in _SCALAR_VALUE_TYPES:
        return True
    if isinstance(value, np.generic):
        return not isinstance(value, np.object_)
    if isinstance(value, type):
        return value in _TYPE_VALUES
    if type(value) is np.ndarray:
        return arrays and not value.dtype.hasobject and value.ndim <= 2
    if type(value) in (list, tuple) and depth == 0:
        return len(value) <= 64 and all(_is_plain_value(v, arrays, depth + 1) for v in value)
    return False


def _check_kwargs(kwargs: object, allowed: frozenset[str], where: str, arrays: bool) -> None:
    """Keyword arguments: ``None`` or a dict of allowed names to plain values."""
    if kwargs is None:
        return
    _require(type(kwargs) is dict, f"{where} has keyword arguments that are not a dict")
    unknown = sorted(str(key) for key in kwargs if key not in allowed)  # type: ignore[union-attr]
    _require(
        not unknown,
        f"{where} passes the keyword argument(s) {', '.join(unknown)[:200]}, "
        "which are not allowed there",
    )
    _require(
        all(_is_plain_value(v, arrays) for v in kwargs.values()),  # type: ignore[union-attr]
        f"{where} passes a keyword argument that is not a plain number, string or array",
    )


def _check_partial_state(state: object) -> None:
    """A ``functools.partial`` state: ``(check_array, (), {plain keywords}, None)``.

    scikit-learn makes exactly this (HistGradientBoosting with categorical columns);
    any other function, positional arguments or object-valued keywords are refused.
    """
    _require(
        type(state) is tuple and len(state) == 4,  # type: ignore[arg-type]
        "a functools.partial has a malformed state",
    )
    func, args, kwargs, namespace = state  # type: ignore[misc]
    _require(
        _CHECK_ARRAY is not None and func is _CHECK_ARRAY and args == () and type(args) is tuple,
        "it wraps a function other than scikit-learn's check_array in functools.partial",
    )
    _require(namespace is None or namespace == {}, "a functools.partial carries extra attributes")
    _check_kwargs(kwargs, _CHECK_ARRAY_KWARGS, "a functools.partial of check_array", arrays=False)


def _check_bspline_state(state: object) -> None:
    """Validate a SciPy ``BSpline`` state as its constructor would (BUILD skips it).

    The spline is evaluated by C code that trusts the knots, the coefficients and
    the degree to be consistent.
    """
    _require(type(state) is dict, "a B-spline has a malformed state")
    state_dict: dict[str, Any] = state  # type: ignore[assignment]
    known = {"_t", "_c", "k", "extrapolate", "axis", "_asarray"}
    _require(set(state_dict) <= known, "a B-spline has unexpected attributes")
    t, c, k = state_dict.get("_t"), state_dict.get("_c"), state_dict.get("k")
    axis, extrapolate = state_dict.get("axis", 0), state_dict.get("extrapolate", True)
    _require(
        "_asarray" not in state_dict or state_dict["_asarray"] is _SCIPY_NUMPY_ASARRAY,
        "a B-spline holds an unexpected array function",
    )
    _require(
        type(t) is np.ndarray
        and t.dtype == np.float64
        and t.ndim == 1
        and type(c) is np.ndarray
        and c.dtype in (np.float64, np.complex128)
        and c.ndim >= 1
        and type(k) in (int, np.int64)
        and type(axis) in (int, np.int64)
        and (type(extrapolate) is bool or (type(extrapolate) is str and extrapolate == "periodic")),
        "a B-spline has a malformed state",
    )
    k, axis = int(k), int(axis)  # type: ignore[arg-type]
    n = t.shape[0] - k - 1  # type: ignore[union-attr]
    _require(
        k >= 0
        and 0 <= axis < c.ndim  # type: ignore[union-attr]
        and n >= k + 1
        and bool(np.all(np.isfinite(t)))
        and bool(np.all(np.diff(t) >= 0))
        and np.unique(t[k : n + 1]).shape[0] >= 2  # type: ignore[index]
        and c.shape[0] >= n,  # type: ignore[union-attr]
        "a B-spline has knots, coefficients and degree that do not fit together",
    )


def _check_array_state(array: np.ndarray, state: object) -> None:
    """Validate an ndarray BUILD before numpy's ``__setstate__`` sees it.

    numpy trusts this state: a list shorter than the array is read past its end
    (object pointers from the heap), and re-setting an array whose memory is
    already shared frees memory still in use.
    """
    _require(array.size == 0, "a numpy array is overwritten after it was filled")
    _require(type(state) is tuple and len(state) == 5, "a numpy array has a malformed state")
    version, shape, dtype, fortran, data = state  # type: ignore[misc]
    _require(
        version == 1 and _is_shape(shape) and _is_dtype(dtype) and type(fortran) is bool,
        "a numpy array has a malformed state",
    )
    size = math.prod(shape)
    if dtype.hasobject:
        _require(
            dtype == np.dtype(object) and type(data) is list and len(data) == size,
            "a numpy object array has data that does not match its shape",
        )
    else:
        _require(
            type(data) in (bytes, bytearray) and len(data) == size * dtype.itemsize,
            "a numpy array has data that does not match its shape",
        )


def _node_fields(nodes: object, names: Iterable[str]) -> list[np.ndarray]:
    _require(
        isinstance(nodes, np.ndarray)
        and nodes.ndim == 1
        and nodes.shape[0] >= 1
        and nodes.dtype.names is not None
        and all(name in nodes.dtype.names for name in names),
        "a decision tree has a malformed node table",
    )
    return [np.asarray(nodes[name]).astype(np.int64) for name in names]  # type: ignore[index]


def _children_ok(left: np.ndarray, right: np.ndarray, internal: np.ndarray) -> bool:
    """Internal nodes point forward to existing nodes (so no cycles, no out-of-range reads)."""
    n = left.shape[0]
    idx = np.arange(n)
    forward = (left > idx) & (left < n) & (right > idx) & (right < n)
    return bool(np.all(forward | ~internal))


def _check_tree_state(tree: Any, state: object) -> None:
    """Validate a ``sklearn.tree._tree.Tree`` state (sklearn checks dtypes, not indices).

    Out-of-range child or feature indices make prediction read, and feature
    importances write, outside the tree's memory.
    """
    _require(type(state) is dict, "a decision tree has a malformed state")
    nodes = state.get("nodes")  # type: ignore[union-attr]
    left, right, feature = _node_fields(nodes, ("left_child", "right_child", "feature"))
    node_count = state.get("node_count")  # type: ignore[union-attr]
    _require(
        isinstance(node_count, (int, np.integer)) and int(node_count) == left.shape[0],
        "a decision tree's node count does not match its node table",
    )
    leaf = (left == -1) & (right == -1)
    features_ok = np.all(leaf | ((feature >= 0) & (feature < int(tree.n_features))))
    _require(
        bool(features_ok) and _children_ok(left, right, ~leaf),
        "a decision tree has out-of-range node indices",
    )


def _check_tree_predictor_state(state: object) -> None:
    """Validate a HistGradientBoosting ``TreePredictor`` node table (same reasons as Tree)."""
    _require(type(state) is dict, "a gradient-boosting tree has a malformed state")
    nodes = state.get("nodes")  # type: ignore[union-attr]
    left, right, feature, is_leaf, is_cat, bitset = _node_fields(
        nodes, ("left", "right", "feature_idx", "is_leaf", "is_categorical", "bitset_idx")
    )
    internal = is_leaf == 0
    categorical = internal & (is_cat != 0)
    ok = _children_ok(left, right, internal) and bool(np.all(~internal | (feature >= 0)))
    for name in ("binned_left_cat_bitsets", "raw_left_cat_bitsets"):
        bitsets = state.get(name)  # type: ignore[union-attr]
        _require(isinstance(bitsets, np.ndarray), "a gradient-boosting tree is malformed")
        ok = ok and bool(np.all(~categorical | (bitset < bitsets.shape[0])))  # type: ignore[union-attr]
    _require(ok, "a gradient-boosting tree has out-of-range node indices")
