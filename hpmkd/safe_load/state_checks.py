"""Validation of memory-sensitive object states before they are set.

numpy and scikit-learn trust the state a pickle gives them when BUILD runs
``__setstate__``: a short object list is read past its end, and out-of-range node
indices in a decision tree make prediction read (and feature importances write)
outside the tree's memory.  The unpickler calls these checks on every BUILD of an
ndarray, a ``sklearn.tree._tree.Tree`` or a HistGradientBoosting ``TreePredictor``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from hpmkd.safe_load.errors import _require
from hpmkd.safe_load.numpy_guards import _is_dtype, _is_shape


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
