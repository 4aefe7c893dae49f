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

One concept, one module (over 500 lines on purpose): the rules for the fitted state of
every native family hpmkd admits, side by side, so a reviewer can compare them and a new
family's rule lands next to the others.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterable
from typing import Any, Final

import lightgbm
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.preprocessing import OrdinalEncoder
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier

from hpmkd.safe_load.allowlist import (
    _CHECK_ARRAY,
    _NUMPY_ABSTRACT_TYPES,
    _NUMPY_SCALAR_TYPES,
    _SCIPY_NUMPY_ASARRAY,
    _TREE_CLASS,
    _TREE_PREDICTOR_CLASS,
)
from hpmkd.safe_load.errors import _Refused, _require
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


# -- Fitted state of the estimator families with native code -------------------------
#
# scikit-learn's Cython code, libsvm and LightGBM index into fitted arrays without
# bounds checks. The checks below run on the loaded objects (pickle and .skops alike)
# before anything predicts, one per family, and refuse states that genuine fitting never
# produces: shapes that disagree, indices out of range, methods named by data.

#: Switched off only inside an isolated scoring process started by a test that proves
#: the process contains what these checks would refuse (``hpmkd.isolation``).
_CHECKS: Final[dict[str, bool]] = {"families": True}


def family_checks_enabled() -> bool:
    """Whether the fitted-state checks below run (always, outside that test)."""
    return _CHECKS["families"]


#: Methods a fitted StackingClassifier may call on its estimators (``stack_method_``).
STACK_METHODS: Final = frozenset({"predict_proba", "decision_function", "predict"})
_SVM_KERNELS: Final = frozenset({"linear", "poly", "rbf", "sigmoid", "precomputed"})
_SVM_IMPLEMENTATIONS: Final = frozenset({"c_svc", "nu_svc"})
_NEIGHBOR_METHODS: Final = frozenset({"brute", "kd_tree", "ball_tree"})


def _attr(obj: Any, name: str, where: str) -> Any:
    """A fitted attribute of ``obj``; its absence is refused (the file is incomplete)."""
    try:
        return vars(obj)[name] if name in vars(obj) else getattr(obj, name)
    except AttributeError:
        raise _Refused(f"{where} lacks its fitted attribute {name}") from None


def _array(value: object, where: str, ndim: int, kinds: str = "fiu") -> np.ndarray:
    _require(
        type(value) is np.ndarray and value.ndim == ndim and value.dtype.kind in kinds,
        f"{where} is not a {ndim}-dimensional numeric array",
    )
    return value  # type: ignore[return-value]


def _count_of(value: object, where: str) -> int:
    _require(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0,
        f"{where} is not a count",
    )
    return int(value)  # type: ignore[arg-type]


def check_decision_tree(estimator: Any, where: str) -> None:
    """A fitted decision tree estimator: its ``tree_`` reads exactly its input's columns.

    ``tree_`` node features are checked against ``tree_.n_features`` when the tree is
    built; prediction reads the columns of ``X`` validated against ``n_features_in_``.
    """
    if "tree_" not in vars(estimator):
        return  # not fitted: predicting raises a plain NotFittedError
    tree = vars(estimator)["tree_"]
    _require(_TREE_CLASS is not None and type(tree) is _TREE_CLASS,
             f"{where} holds a tree_ that is not a decision tree")
    n_features = _count_of(_attr(estimator, "n_features_in_", where), f"{where} n_features_in_")
    _require(int(tree.n_features) == n_features,
             f"{where} has a tree over {int(tree.n_features)} features but reads "
             f"{n_features} columns")


def _check_members(ensemble: Any, members: Iterable[Any], kinds: tuple[type, ...],
                   where: str) -> None:
    """Members of a tree ensemble: trees of the expected kind over the same columns
    (the ensemble validates ``X`` once and its members skip the check)."""
    n_features = _count_of(_attr(ensemble, "n_features_in_", where), f"{where} n_features_in_")
    for member in members:
        _require(type(member) in kinds,
                 f"{where} holds a {type(member).__name__} among its trees")
        _require(vars(member).get("n_features_in_") == n_features,
                 f"{where} holds a tree fitted on another number of columns")
        check_decision_tree(member, where)


def check_forest(forest: Any, where: str) -> None:
    """RandomForest / ExtraTrees: every tree reads the forest's columns."""
    if "estimators_" not in vars(forest):
        return
    members = vars(forest)["estimators_"]
    _require(type(members) is list, f"{where} has estimators_ that are not a list")
    _check_members(forest, members, (DecisionTreeClassifier, ExtraTreeClassifier), where)


def check_gradient_boosting(gbm: Any, where: str) -> None:
    """GradientBoostingClassifier: ``estimators_`` of shape (stages, K) with K the columns
    of the raw predictions (Cython writes ``out[:, k]`` for every column of it)."""
    if "estimators_" not in vars(gbm):
        return
    stages = vars(gbm)["estimators_"]
    _require(
        type(stages) is np.ndarray and stages.dtype == object and stages.ndim == 2,
        f"{where} has estimators_ that are not a 2-dimensional array of trees",
    )
    n_classes = _count_of(_attr(gbm, "n_classes_", where), f"{where} n_classes_")
    classes = _attr(gbm, "classes_", where)
    per_stage = 1 if n_classes == 2 else n_classes
    _require(n_classes >= 2 and len(classes) == n_classes,
             f"{where} has {n_classes} classes but lists {len(classes)}")
    _require(
        stages.shape[1] == per_stage
        and _attr(gbm, "n_trees_per_iteration_", where) == per_stage,
        f"{where} has {stages.shape[1]} trees per stage for {n_classes} classes "
        f"(expected {per_stage}): prediction would write outside its output",
    )
    loss = _attr(gbm, "_loss", where)
    loss_name = type(loss).__name__
    expected = ("HalfBinomialLoss", "ExponentialLoss") if per_stage == 1 else (
        "HalfMultinomialLoss",)
    _require(loss_name in expected and int(getattr(loss, "n_classes", per_stage) or per_stage)
             in (per_stage, n_classes),
             f"{where} has a {loss_name} loss that does not fit its {n_classes} classes")
    init = _attr(gbm, "init_", where)
    if not (type(init) is str and init == "zero"):
        _require(type(init) is DummyClassifier, f"{where} has an unexpected init_ estimator")
        prior = vars(init).get("class_prior_")
        _require(
            vars(init).get("n_classes_") == n_classes
            and type(prior) is np.ndarray and prior.shape == (n_classes,)
            and vars(init).get("n_outputs_") == 1,
            f"{where} has an init_ estimator that does not predict its {n_classes} classes",
        )
    _check_members(gbm, stages.ravel(), (DecisionTreeRegressor,), where)
    for member in stages.ravel():
        tree = vars(member).get("tree_")
        _require(tree is not None and int(tree.n_outputs) == 1,
                 f"{where} holds a stage tree with several outputs")


def check_hist_gradient_boosting(hgb: Any, where: str) -> None:
    """HistGradientBoostingClassifier: predictor nodes read existing columns, categorical
    splits only categorical ones, and the input preprocessing keeps the column count."""
    state = vars(hgb)
    if "_predictors" not in state:
        return
    _require(not state.get("_in_fit"), f"{where} claims to be in the middle of fitting")
    n_features = _count_of(_attr(hgb, "n_features_in_", where), f"{where} n_features_in_")
    per_iteration = _count_of(_attr(hgb, "n_trees_per_iteration_", where),
                              f"{where} n_trees_per_iteration_")
    mapper = _attr(hgb, "_bin_mapper", where)
    is_categorical = vars(mapper).get("is_categorical_")
    _require(
        type(is_categorical) is np.ndarray and is_categorical.shape == (n_features,),
        f"{where} has a bin mapper for another number of columns",
    )
    categorical = is_categorical.astype(bool)
    _check_hgb_preprocessor(state.get("_preprocessor"), categorical, where)
    predictors = state["_predictors"]
    _require(type(predictors) is list, f"{where} has _predictors that are not a list")
    for iteration in predictors:
        _require(type(iteration) is list and len(iteration) == per_iteration,
                 f"{where} has an iteration without {per_iteration} trees")
        for predictor in iteration:
            _require(_TREE_PREDICTOR_CLASS is not None
                     and type(predictor) is _TREE_PREDICTOR_CLASS,
                     f"{where} holds something other than a boosting tree")
            nodes = vars(predictor)["nodes"]
            internal = nodes["is_leaf"] == 0
            feature = nodes["feature_idx"].astype(np.int64)
            _require(bool(np.all(~internal | (feature < n_features))),
                     f"{where} has a tree splitting on a column beyond its {n_features}")
            cat_nodes = internal & (nodes["is_categorical"] != 0)
            _require(bool(np.all(categorical[feature[cat_nodes]])),
                     f"{where} has a categorical split on a numeric column")


def _check_hgb_preprocessor(pre: Any, categorical: np.ndarray, where: str) -> None:
    """HistGradientBoosting's own ColumnTransformer: disjoint column masks that cover
    every column once, categorical ones ordinal-encoded."""
    if pre is None:
        return
    _require(type(pre) is ColumnTransformer, f"{where} has an unexpected preprocessor")
    covered = np.zeros(categorical.shape[0], dtype=int)
    for entry in vars(pre).get("transformers_", []):
        _require(type(entry) is tuple and len(entry) == 3,
                 f"{where} has a malformed preprocessor")
        _name, transformer, columns = entry
        if isinstance(transformer, str) and transformer == "drop":
            continue
        mask = np.asarray(columns)
        _require(mask.dtype == bool and mask.shape == categorical.shape,
                 f"{where} has a preprocessor selecting columns in an unexpected way")
        if type(transformer) is OrdinalEncoder:
            _require(len(vars(transformer).get("categories_", ())) == int(mask.sum()),
                     f"{where} has an encoder for another number of columns")
        covered += mask
    _require(bool(np.all(covered == 1)),
             f"{where} has a preprocessor that does not keep every column exactly once")


def check_binary_tree(tree: Any, where: str) -> None:
    """KDTree / BallTree: indices within the data, nodes within the node table."""
    state = tree.__getstate__()
    _require(type(state) is tuple and len(state) == 13, f"{where} has a malformed search tree")
    data, idx, node_data, bounds = state[:4]
    leaf_size, n_levels, n_nodes = state[4], state[5], state[6]
    metric, weights = state[11], state[12]
    data = _array(data, f"{where} search-tree data", 2, "f")
    n, d = data.shape
    idx = _array(idx, f"{where} search-tree index", 1, "iu")
    _require(idx.shape == (n,) and bool(np.all((idx >= 0) & (idx < n))),
             f"{where} has a search tree whose index points outside its {n} rows")
    _require(
        type(node_data) is np.ndarray and node_data.ndim == 1
        and node_data.dtype.names is not None
        and {"idx_start", "idx_end", "is_leaf"} <= set(node_data.dtype.names),
        f"{where} has a malformed search-tree node table",
    )
    levels = _count_of(n_levels, f"{where} n_levels")
    _require(levels <= 64 and _count_of(n_nodes, f"{where} n_nodes") == 2**levels - 1
             == node_data.shape[0] and _count_of(leaf_size, f"{where} leaf_size") >= 1,
             f"{where} has a search tree whose node count does not fit its levels")
    start = node_data["idx_start"].astype(np.int64)
    end = node_data["idx_end"].astype(np.int64)
    _require(bool(np.all((start >= 0) & (start <= end) & (end <= n))),
             f"{where} has search-tree nodes pointing outside its index")
    internal = np.flatnonzero(node_data["is_leaf"] == 0)
    _require(bool(np.all(2 * internal + 2 < node_data.shape[0])),
             f"{where} has search-tree nodes whose children do not exist")
    bounds = _array(bounds, f"{where} search-tree bounds", 3, "f")
    _require(bounds.shape[0] in (1, 2) and bounds.shape[1:] == (node_data.shape[0], d),
             f"{where} has search-tree bounds of the wrong shape")
    _require(weights is None or (type(weights) is np.ndarray and weights.shape == (n,)),
             f"{where} has search-tree weights of the wrong shape")
    metric_state = metric.__getstate__() if hasattr(metric, "__getstate__") else None
    _require(type(metric_state) is tuple and len(metric_state) >= 2,
             f"{where} has a malformed distance metric")
    p, vec = metric_state[0], metric_state[1]
    _require(type(vec) is np.ndarray and vec.ndim == 1,
             f"{where} has a malformed distance metric")
    name = type(metric).__name__
    # Weighted metrics read one weight per column for as many weights as they hold.
    if name == "SEuclideanDistance64":
        _require(vec.shape[0] == d, f"{where} has distance weights for another number of "
                 "columns")
    elif name == "MinkowskiDistance64":
        _require(vec.shape[0] in (0, d) and isinstance(p, float) and math.isfinite(p)
                 and p >= 1, f"{where} has an invalid Minkowski distance")


def check_k_neighbors(knn: Any, where: str) -> None:
    """KNeighborsClassifier: the stored rows, labels and search tree agree."""
    state = vars(knn)
    if "_fit_X" not in state:
        return
    method = state.get("_fit_method")
    _require(type(method) is str and method in _NEIGHBOR_METHODS,
             f"{where} has an unknown search method")
    fit_x = _array(state["_fit_X"], f"{where} stored rows", 2, "f")
    n = fit_x.shape[0]
    _require(state.get("n_samples_fit_") == n, f"{where} miscounts its stored rows")
    _require(fit_x.shape[1] == state.get("n_features_in_"),
             f"{where} stores rows of another number of columns")
    labels = _array(state.get("_y"), f"{where} stored labels", np.ndim(state.get("_y")), "iu")
    _require(labels.ndim in (1, 2) and labels.shape[0] == n,
             f"{where} has labels for another number of rows")
    k = state.get("n_neighbors")
    _require(isinstance(k, (int, np.integer)) and 1 <= int(k) <= n,
             f"{where} asks for more neighbours than it stores rows")
    tree = state.get("_tree")
    if method == "brute":
        _require(tree is None, f"{where} is a brute-force search with a search tree")
    else:
        _require(type(tree).__name__ == {"kd_tree": "KDTree", "ball_tree": "BallTree"}[method],
                 f"{where} has the wrong kind of search tree")
        check_binary_tree(tree, where)
        _require(tree.__getstate__()[0].shape == fit_x.shape,
                 f"{where} has a search tree over other rows")


def check_svc(svc: Any, where: str) -> None:
    """SVC: the support-vector arrays libsvm reads through raw pointers agree in size."""
    state = vars(svc)
    if "_n_support" not in state:
        return
    _require(getattr(svc, "_impl", None) in _SVM_IMPLEMENTATIONS,
             f"{where} is not a support-vector classifier")
    kernel = getattr(svc, "kernel", None)
    _require(type(kernel) is str and kernel in _SVM_KERNELS, f"{where} has an unknown kernel")
    _require(state.get("_sparse") is False, f"{where} claims sparse support vectors")
    n_support = _array(state["_n_support"], f"{where} support counts", 1, "i")
    n_class = n_support.shape[0]
    _require(n_class >= 2 and bool(np.all(n_support >= 0)),
             f"{where} has invalid support-vector counts")
    n_sv = int(n_support.sum())
    support = _array(state.get("support_"), f"{where} support indices", 1, "i")
    vectors = _array(state.get("support_vectors_"), f"{where} support vectors", 2, "f")
    coef = _array(state.get("_dual_coef_"), f"{where} dual coefficients", 2, "f")
    intercept = _array(state.get("_intercept_"), f"{where} intercepts", 1, "f")
    pairs = n_class * (n_class - 1) // 2
    _require(support.shape == (n_sv,) and coef.shape == (n_class - 1, n_sv)
             and intercept.shape == (pairs,),
             f"{where} has support-vector arrays whose sizes disagree ({n_sv} support "
             f"vectors counted, {support.shape[0]} indexed)")
    for name in ("_probA", "_probB"):
        prob = _array(state.get(name), f"{where} {name}", 1, "f")
        _require(prob.shape[0] in (0, pairs), f"{where} has {name} of the wrong size")
    classes = state.get("classes_")
    _require(classes is not None and len(classes) == n_class,
             f"{where} counts support vectors for {n_class} classes but has "
             f"{0 if classes is None else len(classes)}")
    shape_fit = state.get("shape_fit_")
    _require(type(shape_fit) is tuple and len(shape_fit) == 2,
             f"{where} has a malformed shape_fit_")
    if kernel == "precomputed":
        _require(bool(np.all((support >= 0) & (support < int(shape_fit[0])))),
                 f"{where} has support indices outside its training rows")
    else:
        _require(vectors.shape == (n_sv, state.get("n_features_in_")),
                 f"{where} has {vectors.shape[0]} support vectors of {vectors.shape[1]} "
                 f"columns where {n_sv} of {state.get('n_features_in_')} are expected")
    gamma = state.get("_gamma")
    _require(isinstance(gamma, (float, int, np.floating, np.integer))
             and math.isfinite(float(gamma)), f"{where} has an invalid gamma")


def check_stacking(stack: Any, where: str) -> None:
    """StackingClassifier calls ``getattr(estimator, method)`` for each ``stack_method_``:
    only the prediction methods are allowed, each on an estimator."""
    state = vars(stack)
    if "stack_method_" not in state:
        return
    methods = state["stack_method_"]
    estimators = state.get("estimators_")
    _require(type(methods) is list and type(estimators) is list
             and len(methods) == len(estimators),
             f"{where} has stack methods that do not match its estimators")
    for method, estimator in zip(methods, estimators, strict=True):
        if type(estimator) is str and estimator == "drop":
            continue
        _require(
            type(method) is str and method in STACK_METHODS,
            f"{where} would call the method {str(method)[:40]!r} of its estimators; only "
            f"{', '.join(sorted(STACK_METHODS))} are allowed",
        )
        _require(isinstance(estimator, BaseEstimator),
                 f"{where} stacks something that is not an estimator")


def check_one_hot_encoder(encoder: Any, where: str) -> None:
    """OneHotEncoder builds its output from column offsets it stores
    (``_n_features_outs``): every encoded value must land inside its own block."""
    state = vars(encoder)
    if "categories_" not in state:
        return
    categories = state["categories_"]
    _require(type(categories) is list and all(
        type(c) is np.ndarray and c.ndim == 1 for c in categories),
        f"{where} has malformed categories")
    outs = state.get("_n_features_outs")
    _require(type(outs) is list and len(outs) == len(categories),
             f"{where} has output widths for another number of columns")
    infrequent = state.get("_infrequent_enabled", False)
    indices = state.get("_infrequent_indices") if infrequent else None
    mappings = state.get("_default_to_infrequent_mappings") if infrequent else None
    drops = state.get("_drop_idx_after_grouping")
    for i, cats in enumerate(categories):
        groups = cats.shape[0]
        index = indices[i] if indices is not None else None
        if index is not None:
            _require(type(index) is np.ndarray and index.ndim == 1 and index.size >= 1
                     and bool(np.all((index >= 0) & (index < cats.shape[0]))),
                     f"{where} has infrequent categories outside its categories")
            groups = cats.shape[0] - index.size + 1
            mapping = mappings[i] if mappings is not None else None
            _require(type(mapping) is np.ndarray and mapping.shape == cats.shape
                     and bool(np.all((mapping >= 0) & (mapping < groups))),
                     f"{where} maps categories outside its output columns")
        drop = None if drops is None else drops[i]
        if drop is not None:
            _require(isinstance(drop, (int, np.integer)) and 0 <= int(drop) < groups,
                     f"{where} drops a category it does not have")
        _require(outs[i] == groups - (drop is not None),
                 f"{where} has output widths that do not match its categories (the one-hot "
                 "output would be written out of bounds)")


def check_lgbm_classifier(model: Any, where: str) -> None:
    """LGBMClassifier: its Booster has a model and agrees on classes and features."""
    state = vars(model)
    booster = state.get("_Booster")
    if booster is None:
        return
    _require(type(booster) is lightgbm.Booster, f"{where} holds an unexpected booster")
    check_booster(booster, where)
    n_classes = state.get("_n_classes")
    per_iteration = booster.num_model_per_iteration()
    _require(n_classes is not None and int(n_classes) >= 2
             and per_iteration == (1 if int(n_classes) == 2 else int(n_classes)),
             f"{where} has {n_classes} classes but its booster predicts {per_iteration} "
             "score(s) per row")
    _require(state.get("_n_features") == booster.num_feature(),
             f"{where} reads another number of columns than its booster")


def check_booster(booster: Any, where: str) -> None:
    """A LightGBM Booster that was really loaded (a missing handle crashes on use)."""
    handle = vars(booster).get("_handle")
    _require(isinstance(handle, ctypes.c_void_p) and bool(handle.value),
             f"{where} has a LightGBM booster without a loaded model (it would crash when "
             "used)")
