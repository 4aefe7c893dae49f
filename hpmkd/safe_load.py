"""Restricted loading of untrusted teacher model files.

Teacher models are uploaded by users, so the files must be treated as hostile.
Loading a pickle or joblib file normally runs whatever code the file asks for;
this module never does.  It supports four formats, chosen by file extension:

``.joblib``, ``.pkl``, ``.pickle``
    Read with a restricted unpickler built on joblib's own reader (so joblib
    compression and joblib's out-of-band numpy arrays work, and plain
    ``pickle.dump`` files load too).  Every global the file names must be on an
    explicit allow list of ``(module, name)`` pairs (:data:`ALLOWED_GLOBALS`).
    On top of that, the unpickler checks the handful of opcodes that can touch
    memory directly (numpy dtypes and arrays, tree node tables), because some
    numpy and scikit-learn reconstructors can be abused for memory corruption
    even when only allow-listed names are used.
``.txt``, ``.lgb``
    LightGBM native text model, returned as a :class:`lightgbm.Booster`.
``.skops``
    Loaded with :func:`skops.io.load`, extending skops' default trust only with
    types from our own allow list (never ``trusted=True``).

Everything that goes wrong is reported as :class:`UnsafeModelError` (the file
asked for something we refuse to do) or :class:`ModelFileError` (the file is
not a readable model), each with a one-paragraph message naming the file.
"""

from __future__ import annotations

import _compat_pickle
import collections
import copyreg
import importlib
import math
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import lightgbm
import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from joblib.numpy_pickle_utils import _detect_compressor, _validate_fileobject_and_memmap
from numpy.random import MT19937, PCG64, PCG64DXSM, SFC64, Philox, RandomState, SeedSequence
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    AdaBoostClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    LabelBinarizer,
    LabelEncoder,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier

__all__ = [
    "ALLOWED_GLOBALS",
    "LIGHTGBM_TEXT_EXTENSIONS",
    "PICKLE_EXTENSIONS",
    "SKOPS_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "ModelFileError",
    "UnsafeModelError",
    "load_model_bytes",
    "load_model_file",
]


class UnsafeModelError(ValueError):
    """A model file asked for something the restricted loader refuses to do.

    Raised when a pickle/joblib file references a global (class or function)
    that is not on the allow list, or uses allowed pieces in a way that genuine
    model files never do (the typical sign of a crafted exploit).  Nothing from
    the file has been executed when this is raised.
    """


class ModelFileError(ValueError):
    """A model file could not be read: empty, truncated, corrupt or wrong format."""


PICKLE_EXTENSIONS: Final = frozenset({".joblib", ".pkl", ".pickle"})
LIGHTGBM_TEXT_EXTENSIONS: Final = frozenset({".txt", ".lgb"})
SKOPS_EXTENSIONS: Final = frozenset({".skops"})
SUPPORTED_EXTENSIONS: Final = PICKLE_EXTENSIONS | LIGHTGBM_TEXT_EXTENSIONS | SKOPS_EXTENSIONS

_ADVICE: Final = (
    "Save the model with joblib (or pickle) using only scikit-learn, LightGBM or XGBoost "
    "classes - no custom classes, lambdas or FunctionTransformer - or export a LightGBM "
    "model as a text model with booster.save_model('model.txt')."
)


# ---------------------------------------------------------------------------
# The allow list
# ---------------------------------------------------------------------------


def _optional(module: str, name: str) -> Any | None:
    """Return ``module.name`` or None: private internals move between versions."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _key(obj: Any) -> tuple[str, str]:
    """The ``(module, name)`` pair pickle writes for a class or function."""
    return (obj.__module__, obj.__qualname__)


# Estimators a teacher can be made of: the teachers themselves and every
# estimator that appears inside them when fitted (e.g. GradientBoosting stores a
# DummyClassifier and DecisionTreeRegressors; MLP stores a LabelBinarizer).
# FunctionTransformer is deliberately absent: it exists to hold a callable.
_ESTIMATOR_CLASSES: Final[tuple[type, ...]] = (
    LogisticRegression,
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    RandomForestClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    AdaBoostClassifier,
    KNeighborsClassifier,
    MLPClassifier,
    SVC,
    GaussianNB,
    CalibratedClassifierCV,
    IsotonicRegression,
    VotingClassifier,
    StackingClassifier,
    DummyClassifier,
    Pipeline,
    ColumnTransformer,
    make_column_selector,
    StandardScaler,
    MinMaxScaler,
    MaxAbsScaler,
    RobustScaler,
    OneHotEncoder,
    OrdinalEncoder,
    SimpleImputer,
    MissingIndicator,
    LabelEncoder,
    LabelBinarizer,
    lightgbm.LGBMClassifier,
    lightgbm.Booster,
)

# Private helper classes that fitted estimators keep as attributes.  Found by
# pickling every teacher above and recording what the unpickler asks for.
_INTERNAL_CLASS_PATHS: Final[tuple[tuple[str, str], ...]] = (
    ("sklearn.tree._tree", "Tree"),
    ("sklearn.calibration", "_CalibratedClassifier"),
    ("sklearn.calibration", "_SigmoidCalibration"),
    ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper"),
    ("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor"),
    ("sklearn.neural_network._stochastic_optimizers", "AdamOptimizer"),
    ("sklearn.neural_network._stochastic_optimizers", "SGDOptimizer"),
    ("sklearn.utils._bunch", "Bunch"),
    ("sklearn._loss.loss", "HalfBinomialLoss"),
    ("sklearn._loss.loss", "HalfMultinomialLoss"),
    ("sklearn._loss.loss", "ExponentialLoss"),
    ("sklearn._loss.link", "Interval"),
    ("sklearn._loss.link", "LogitLink"),
    ("sklearn._loss.link", "HalfLogitLink"),
    ("sklearn._loss.link", "MultinomialLogit"),
    ("sklearn._loss._loss", "CyHalfBinomialLoss"),
    ("sklearn._loss._loss", "CyHalfMultinomialLoss"),
    ("sklearn._loss._loss", "CyExponentialLoss"),
    ("sklearn.neighbors._kd_tree", "KDTree"),
    ("sklearn.neighbors._ball_tree", "BallTree"),
    # Distance metrics used by KNeighbors trees; PyFuncDistance (wraps a
    # Python callable) is deliberately not listed.
    ("sklearn.metrics._dist_metrics", "EuclideanDistance64"),
    ("sklearn.metrics._dist_metrics", "SEuclideanDistance64"),
    ("sklearn.metrics._dist_metrics", "ManhattanDistance64"),
    ("sklearn.metrics._dist_metrics", "ChebyshevDistance64"),
    ("sklearn.metrics._dist_metrics", "MinkowskiDistance64"),
)

# Cython pickling helpers of the classes above.  They only create an instance
# of the (allowed) class they are given and restore typed state.
_INTERNAL_FUNCTION_PATHS: Final[tuple[tuple[str, str], ...]] = (
    ("sklearn._loss._loss", "__pyx_unpickle_CyHalfBinomialLoss"),
    ("sklearn._loss._loss", "__pyx_unpickle_CyHalfMultinomialLoss"),
    ("sklearn._loss._loss", "__pyx_unpickle_CyExponentialLoss"),
    ("sklearn.metrics._dist_metrics", "newObj"),
    ("sklearn.neighbors._kd_tree", "newObj"),
    ("sklearn.neighbors._ball_tree", "newObj"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    # RandomState / Generator reconstructors (sklearn keeps fitted RNGs).  They
    # only instantiate numpy bit generators.
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
)

_XGBOOST_CLASS_PATHS: Final[tuple[tuple[str, str], ...]] = (
    ("xgboost.sklearn", "XGBClassifier"),
    ("xgboost.core", "Booster"),
)


def _xgboost_classes() -> list[type]:
    """XGBoost classes, or nothing when xgboost is not installed."""
    try:
        importlib.import_module("xgboost")
    except (ImportError, OSError):  # not installed, or its native library is missing
        return []
    found = (_optional(module, name) for module, name in _XGBOOST_CLASS_PATHS)
    return [cls for cls in found if isinstance(cls, type)]


_INTERNAL_CLASSES: Final[tuple[type, ...]] = tuple(
    cls for cls in (_optional(m, n) for m, n in _INTERNAL_CLASS_PATHS) if isinstance(cls, type)
)
_XGBOOST_CLASSES: Final[tuple[type, ...]] = tuple(_xgboost_classes())
_TREE_CLASS: Final = _optional("sklearn.tree._tree", "Tree")
_TREE_PREDICTOR_CLASS: Final = _optional(
    "sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor"
)
_NUMPY_RANDOM_CLASSES: Final[tuple[type, ...]] = (
    MT19937,
    PCG64,
    PCG64DXSM,
    Philox,
    SFC64,
    SeedSequence,
)
# Numpy scalar types appear as estimator parameters, e.g. OneHotEncoder(dtype=np.float64).
_NUMPY_SCALAR_TYPES: Final[tuple[type, ...]] = (
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
)


# -- Safe stand-ins for the low-level reconstructors ------------------------
#
# find_class hands out these wrappers instead of the real numpy/stdlib
# functions.  Each accepts exactly the arguments genuine pickles use, because
# the real functions can create arrays from raw memory or leak uninitialised
# memory when fed crafted arguments.


class _Refused(Exception):
    """Internal signal: crafted/unsafe use of an allowed piece (becomes UnsafeModelError)."""


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise _Refused(what)


def _is_dtype(obj: object) -> bool:
    return isinstance(obj, np.dtype)


def _safe_reconstruct(subtype: object, shape: object, typecode: object) -> np.ndarray:
    """``numpy._core.multiarray._reconstruct`` as used by ndarray pickles.

    numpy always pickles ``_reconstruct(ndarray, (0,), b'b')`` followed by a
    BUILD that fills the data; any other shape would hand out uninitialised memory.
    """
    _require(
        subtype is np.ndarray and shape == (0,) and typecode == b"b",
        "a numpy array is reconstructed with unusual arguments",
    )
    return np.ndarray((0,), dtype=np.int8)


_numpy_scalar: Final = _optional("numpy._core.multiarray", "scalar") or _optional(
    "numpy.core.multiarray", "scalar"
)


def _safe_scalar(dtype: object, data: object = None) -> Any:
    """``numpy._core.multiarray.scalar``: a numpy scalar from its raw bytes."""
    _require(
        _is_dtype(dtype)
        and not dtype.hasobject  # type: ignore[union-attr]
        and type(data) is bytes
        and len(data) == dtype.itemsize,  # type: ignore[union-attr]
        "a numpy scalar is rebuilt from data that does not match its type",
    )
    return _numpy_scalar(dtype, data)


def _safe_frombuffer(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """``numpy._core.numeric._frombuffer`` as used by protocol-5 array pickles.

    Only bytes-like data is accepted (never another array, which could later be
    freed under the new view), and never an object dtype.
    """
    _require(
        type(buf) in (bytes, bytearray)
        and _is_dtype(dtype)
        and not dtype.hasobject  # type: ignore[union-attr]
        and _is_shape(shape)
        and order in ("C", "F"),
        "a numpy array is rebuilt from a buffer with unusual arguments",
    )
    array = np.frombuffer(buf, dtype=dtype)  # type: ignore[call-overload]
    return array.reshape(shape, order=order)  # type: ignore[call-overload]


def _safe_reconstructor(cls: object, base: object, state: object) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 objects), limited to plain bases.

    With any other base it would call ``base.__new__`` / ``base.__init__`` on
    attacker-chosen arguments (e.g. an uninitialised ndarray).
    """
    _require(
        base in (object, dict, list) and isinstance(cls, type) and issubclass(cls, base),  # type: ignore[arg-type]
        "copyreg._reconstructor is used with an unusual base class",
    )
    return copyreg._reconstructor(cls, base, state)  # type: ignore[arg-type]


def _safe_latin1_encode(
    text: object, encoding: object = "latin1", errors: object = "strict"
) -> bytes:
    """``_codecs.encode`` as used by protocol-2 pickles for ``bytes`` values.

    Only the latin-1 codec is allowed: the real function looks codecs up by
    name, and third-party codec search functions are not something to expose.
    """
    _require(
        type(text) is str and encoding in ("latin1", "latin-1") and errors == "strict",
        "_codecs.encode is used with an unusual codec",
    )
    return text.encode("latin-1")  # type: ignore[union-attr]


class _PendingDType:
    """Placeholder for a numpy dtype until its state (BUILD) arrives.

    numpy's own ``dtype.__setstate__`` trusts its input: a crafted state can
    declare object fields while clearing the "has objects" flag, after which
    raw bytes are read as object pointers.  So ``numpy.dtype`` in a pickle
    returns this placeholder; at BUILD time the real dtype is *constructed* with
    numpy's validating public constructor and must reproduce the pickled state
    exactly.  Until then the placeholder cannot be used as a dtype.
    """

    __slots__ = ("real", "spec")

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.real: np.dtype | None = None


def _pending_dtype(spec: object, align: object = False, copy: object = True) -> _PendingDType:
    """Stand-in for ``numpy.dtype`` as called by dtype pickles: ``dtype('f8', False, True)``."""
    _require(
        type(spec) is str and type(align) is bool and type(copy) is bool,
        "numpy.dtype is called with unusual arguments",
    )
    return _PendingDType(spec)  # type: ignore[arg-type]


def _is_shape(shape: object) -> bool:
    return type(shape) is tuple and all(type(dim) is int and dim >= 0 for dim in shape)


_MAX_DTYPE_DEPTH: Final = 8  # genuine model dtypes nest at most once or twice


def _dtype_depth(dtype: np.dtype, limit: int = _MAX_DTYPE_DEPTH) -> int:
    """Nesting depth of a structured/subarray dtype, giving up past ``limit``."""
    if limit <= 0:
        return _MAX_DTYPE_DEPTH + 1
    children: list[np.dtype] = []
    if dtype.fields is not None:
        children = [field[0] for field in dtype.fields.values()]
    elif dtype.subdtype is not None:
        children = [dtype.subdtype[0]]
    return 1 + max((_dtype_depth(child, limit - 1) for child in children), default=0)


def _build_dtype(spec: str, state: object) -> np.dtype:
    """Construct the dtype a pickle describes, refusing anything numpy would not produce."""
    _require(type(state) is tuple and len(state) in (8, 9), "a numpy dtype has a malformed state")
    version, endian, subarray, names, fields, elsize, alignment, flags = state[:8]  # type: ignore[index,misc]
    _require(
        version in (3, 4)
        and endian in ("<", ">", "|", "=")
        and type(elsize) is int
        and type(alignment) is int
        and type(flags) is int,
        "a numpy dtype has a malformed state",
    )
    if names is not None:
        _require(
            type(names) is tuple
            and all(type(n) is str for n in names)
            and type(fields) is dict
            and subarray is None,
            "a structured numpy dtype has malformed fields",
        )
        entries = [fields.get(name) for name in names]  # type: ignore[union-attr]
        _require(
            all(
                type(e) is tuple
                and len(e) in (2, 3)
                and _is_dtype(e[0])
                and type(e[1]) is int
                and (len(e) == 2 or e[2] is None or type(e[2]) is str)
                for e in entries
            ),
            "a structured numpy dtype has malformed fields",
        )
        description: dict[str, Any] = {
            "names": list(names),
            "formats": [e[0] for e in entries],  # type: ignore[index]
            "offsets": [e[1] for e in entries],  # type: ignore[index]
            "itemsize": elsize,
        }
        titles = [e[2] if len(e) == 3 else None for e in entries]  # type: ignore[arg-type,index]
        if any(title is not None for title in titles):
            description["titles"] = titles
        # 0x80 is NPY_ALIGNED_STRUCT: the struct was declared with align=True.
        candidate = np.dtype(description, align=bool(flags & 0x80))
    elif subarray is not None:
        _require(
            type(subarray) is tuple
            and len(subarray) == 2
            and _is_dtype(subarray[0])
            and _is_shape(subarray[1]),
            "a numpy sub-array dtype is malformed",
        )
        candidate = np.dtype((subarray[0], subarray[1]))
    else:
        candidate = np.dtype(spec)
        if len(state) == 9 and candidate.kind in "mM":  # type: ignore[arg-type]
            meta = state[8]  # type: ignore[index]
            _require(
                type(meta) is tuple
                and len(meta) == 2
                and type(meta[1]) is tuple
                and len(meta[1]) == 4
                and type(meta[1][0]) is bytes
                and type(meta[1][1]) is int,
                "a numpy datetime dtype is malformed",
            )
            unit, count = meta[1][0].decode("ascii"), meta[1][1]
            if unit != "generic":
                candidate = np.dtype(f"{spec}[{count if count != 1 else ''}{unit}]")
        if endian in ("<", ">") and candidate.byteorder != "|":
            candidate = candidate.newbyteorder(endian)
    _require(
        _dtype_depth(candidate) <= _MAX_DTYPE_DEPTH,
        "a numpy dtype is nested unusually deeply",
    )
    # The decisive check: what numpy would pickle for the dtype we built must be
    # exactly what the file contains (this catches forged flags, sizes, fields).
    _require(candidate.__reduce__()[2] == state, "a numpy dtype has an inconsistent state")
    return candidate


# -- The table --------------------------------------------------------------


def _build_allow_table() -> dict[tuple[str, str], Any]:
    """Map every allowed ``(module, name)`` to the object find_class returns."""
    table: dict[tuple[str, str], Any] = {}
    for cls in (
        *_ESTIMATOR_CLASSES,
        *_INTERNAL_CLASSES,
        *_XGBOOST_CLASSES,
        *_NUMPY_RANDOM_CLASSES,
        *_NUMPY_SCALAR_TYPES,
        NumpyArrayWrapper,  # joblib's placeholder for arrays stored after the pickle
        np.ndarray,  # only ever an argument (see _NEVER_CALL), never called
        collections.OrderedDict,
        collections.defaultdict,
    ):
        table[_key(cls)] = cls
    for module, name in _INTERNAL_FUNCTION_PATHS:
        func = _optional(module, name)
        if func is not None:
            table[(module, name)] = func
    # Builtins genuine pickles reference (protocol 2 spells them "__builtin__",
    # mapped below).  Constructors of plain values only - never getattr, eval,
    # exec, __import__, open, compile, ...
    for builtin in (object, dict, list, set, frozenset, bytes, bytearray, slice, complex):
        table[("builtins", builtin.__name__)] = builtin
    # numpy reconstructors, under their numpy 2 and numpy 1 module names.
    for core in ("numpy._core", "numpy.core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _safe_reconstruct
        table[(f"{core}.multiarray", "scalar")] = _safe_scalar
        table[(f"{core}.numeric", "_frombuffer")] = _safe_frombuffer
    table[("numpy", "dtype")] = _pending_dtype
    table[("copyreg", "_reconstructor")] = _safe_reconstructor
    table[("_codecs", "encode")] = _safe_latin1_encode
    dotted = [pair for pair in table if "." in pair[1]]
    if dotted:  # find_class refuses dotted names, so such entries could never load
        raise RuntimeError(f"allow list contains nested names: {dotted}")
    return table


_ALLOW_TABLE: Final[dict[tuple[str, str], Any]] = _build_allow_table()

#: Every ``(module, name)`` pair a pickle may reference.  Exact matches only.
ALLOWED_GLOBALS: Final[frozenset[tuple[str, str]]] = frozenset(_ALLOW_TABLE)

# Objects whose state a pickle may set with BUILD (exact type match).  Genuine
# pickles only BUILD instances of allowed classes; BUILD on a class, function or
# shared object would monkeypatch it for the whole process.
_BUILDABLE: Final[frozenset[type]] = frozenset(
    {
        *_ESTIMATOR_CLASSES,
        *_INTERNAL_CLASSES,
        *_XGBOOST_CLASSES,
        *_NUMPY_RANDOM_CLASSES,
        RandomState,
        NumpyArrayWrapper,
        np.ndarray,  # state is validated separately, see _check_array_state
    }
)

# Allowed classes a pickle may reference but must never call: ndarray(shape,
# dtype, buffer) builds object arrays from raw bytes, and the Boosters'
# constructors read arbitrary paths (e.g. /dev/zero).  Genuine pickles create
# Boosters with NEWOBJ (no __init__) and never construct ndarray directly.
# TreePredictor is rebuilt with NEWOBJ + BUILD so that its node table is
# validated; calling it would skip the check.
_NEVER_CALL: Final[tuple[Any, ...]] = tuple(
    obj
    for obj in (
        np.ndarray,
        lightgbm.Booster,
        _TREE_PREDICTOR_CLASS,
        *(cls for cls in _XGBOOST_CLASSES if cls.__name__ == "Booster"),
    )
    if obj is not None
)
_NEVER_NEW: Final[tuple[Any, ...]] = (np.ndarray,)

# Names scikit-learn's skops format may additionally trust: our classes only,
# not the pickle helpers or builtins above.
# "numpy.dtype" is added because skops (which does not trust it by default) stores a
# dtype as an empty .npy array read with allow_pickle=False, i.e. via numpy's
# validating constructor - unlike pickle's dtype.__setstate__ (see _PendingDType).
_SKOPS_TRUSTABLE: Final[frozenset[str]] = frozenset(
    f"{cls.__module__}.{cls.__qualname__}"
    for cls in (
        *(_BUILDABLE - {np.ndarray, NumpyArrayWrapper}),
        collections.OrderedDict,
        collections.defaultdict,
    )
) | {"numpy.dtype"}


# ---------------------------------------------------------------------------
# Validation of memory-sensitive states
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# The restricted unpicklers
# ---------------------------------------------------------------------------

_Dispatch = dict[int, Callable[[Any], None]]


class _RestrictedMixin:
    """Opcode handlers shared by the outer (joblib) and nested unpicklers.

    Relies on ``pickle._Unpickler`` (the pure-Python unpickler joblib uses),
    whose opcode handlers live in a per-class ``dispatch`` table we can extend.
    """

    stack: list[Any]
    proto: int
    _display_name: str

    def find_class(self, module: str, name: str) -> Any:
        """Return the allowed object for ``(module, name)``; refuse anything else."""
        sys.audit("pickle.find_class", module, name)  # as the standard unpickler does
        # Python-2 style names ("__builtin__", "copy_reg") that protocol 2 writes,
        # mapped exactly as the standard unpickler maps them.
        if self.proto < 3:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        # A dot in the name would be resolved attribute by attribute
        # ("sklearn" + "os.system"); such names are never on the list.
        if "." not in name:
            obj = _ALLOW_TABLE.get((module, name))
            if obj is not None:
                return obj
        raise UnsafeModelError(
            f"Refused to load '{self._display_name}': it references '{module}.{name}', "
            "which is not on the list of classes allowed in model files, so the file was "
            f"NOT loaded and nothing in it was run. {_ADVICE}"
        )

    def persistent_load(self, pid: Any) -> Any:
        """Model files never use persistent ids; refuse them."""
        raise _Refused("it uses pickle persistent ids")

    def _load_ext(self) -> None:
        # The copyreg extension registry has a process-wide cache that would hand
        # out objects without going through find_class; model files never use it.
        raise _Refused("it uses the copyreg extension registry")

    # -- object creation ----------------------------------------------------

    def _instantiate(self, klass: Any, args: list[Any]) -> None:  # INST and OBJ
        _require(not any(klass is obj for obj in _NEVER_CALL), _call_msg(klass))
        super()._instantiate(klass, args)  # type: ignore[misc]

    def _load_reduce(self) -> None:
        _require(not any(self.stack[-2] is obj for obj in _NEVER_CALL), _call_msg(self.stack[-2]))
        pickle._Unpickler.dispatch[pickle.REDUCE[0]](self)  # type: ignore[attr-defined]

    def _load_newobj(self) -> None:
        self._check_new(self.stack[-2])
        pickle._Unpickler.dispatch[pickle.NEWOBJ[0]](self)  # type: ignore[attr-defined]

    def _load_newobj_ex(self) -> None:
        self._check_new(self.stack[-3])
        pickle._Unpickler.dispatch[pickle.NEWOBJ_EX[0]](self)  # type: ignore[attr-defined]

    @staticmethod
    def _check_new(cls: Any) -> None:
        _require(
            isinstance(cls, type) and not any(cls is obj for obj in _NEVER_NEW),
            _call_msg(cls),
        )

    # -- memo: hand out finished dtypes instead of their placeholders --------

    def _resolve_top(self) -> None:
        top = self.stack[-1]
        if type(top) is _PendingDType and top.real is not None:
            self.stack[-1] = top.real

    def _load_get(self) -> None:
        pickle._Unpickler.dispatch[pickle.GET[0]](self)  # type: ignore[attr-defined]
        self._resolve_top()

    def _load_binget(self) -> None:
        pickle._Unpickler.dispatch[pickle.BINGET[0]](self)  # type: ignore[attr-defined]
        self._resolve_top()

    def _load_long_binget(self) -> None:
        pickle._Unpickler.dispatch[pickle.LONG_BINGET[0]](self)  # type: ignore[attr-defined]
        self._resolve_top()

    # -- container mutation: only plain containers ---------------------------
    # (SETITEM on an ndarray, say, would change a node table after it was checked.)

    def _load_append(self) -> None:
        _require(type(self.stack[-2]) is list, "it appends to something that is not a list")
        pickle._Unpickler.dispatch[pickle.APPEND[0]](self)  # type: ignore[attr-defined]

    def _load_appends(self) -> None:
        items = self.pop_mark()  # type: ignore[attr-defined]
        _require(type(self.stack[-1]) is list, "it appends to something that is not a list")
        self.stack[-1].extend(items)

    def _load_setitem(self) -> None:
        _require(isinstance(self.stack[-3], dict), "it sets items on something that is not a dict")
        pickle._Unpickler.dispatch[pickle.SETITEM[0]](self)  # type: ignore[attr-defined]

    def _load_setitems(self) -> None:
        items = self.pop_mark()  # type: ignore[attr-defined]
        target = self.stack[-1]
        _require(isinstance(target, dict), "it sets items on something that is not a dict")
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _load_additems(self) -> None:
        items = self.pop_mark()  # type: ignore[attr-defined]
        _require(type(self.stack[-1]) is set, "it adds items to something that is not a set")
        self.stack[-1].update(items)

    # -- BUILD ----------------------------------------------------------------

    def _build_common(self) -> bool:
        """Validate a BUILD; return True when it was fully handled here."""
        state, inst = self.stack[-1], self.stack[-2]
        if type(inst) is _PendingDType:
            _require(inst.real is None, "a numpy dtype is rebuilt twice")
            inst.real = _build_dtype(inst.spec, state)
            self.stack.pop()
            self.stack[-1] = inst.real
            return True
        _require(
            type(inst) in _BUILDABLE,
            f"it sets the state of {_describe(inst)}, which genuine model files never do",
        )
        if type(inst) is np.ndarray:
            _check_array_state(inst, state)
        elif _TREE_CLASS is not None and type(inst) is _TREE_CLASS:
            _check_tree_state(inst, state)
        elif _TREE_PREDICTOR_CLASS is not None and type(inst) is _TREE_PREDICTOR_CLASS:
            _check_tree_predictor_state(state)
        return False

    def _load_build(self) -> None:
        if not self._build_common():
            pickle._Unpickler.load_build(self)  # type: ignore[arg-type]


def _describe(obj: object) -> str:
    if isinstance(obj, type):
        return f"the class '{obj.__module__}.{obj.__qualname__}'"
    kind = type(obj)
    return f"a '{kind.__module__}.{kind.__qualname__}' object"


def _call_msg(obj: object) -> str:
    return f"it calls {_describe(obj)} directly, which genuine model files never do"


def _install_handlers(dispatch: _Dispatch) -> None:
    """Point the guarded opcodes of a dispatch table at the mixin's handlers."""
    mixin = _RestrictedMixin
    dispatch[pickle.REDUCE[0]] = mixin._load_reduce
    dispatch[pickle.NEWOBJ[0]] = mixin._load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = mixin._load_newobj_ex
    dispatch[pickle.GET[0]] = mixin._load_get
    dispatch[pickle.BINGET[0]] = mixin._load_binget
    dispatch[pickle.LONG_BINGET[0]] = mixin._load_long_binget
    dispatch[pickle.APPEND[0]] = mixin._load_append
    dispatch[pickle.APPENDS[0]] = mixin._load_appends
    dispatch[pickle.SETITEM[0]] = mixin._load_setitem
    dispatch[pickle.SETITEMS[0]] = mixin._load_setitems
    dispatch[pickle.ADDITEMS[0]] = mixin._load_additems
    for opcode in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[opcode[0]] = mixin._load_ext


class _NestedUnpickler(_RestrictedMixin, pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Reads the plain pickle joblib embeds for each object-dtype array."""

    dispatch: _Dispatch = pickle._Unpickler.dispatch.copy()  # type: ignore[attr-defined]
    _install_handlers(dispatch)
    dispatch[pickle.BUILD[0]] = _RestrictedMixin._load_build

    def __init__(self, file: Any, display_name: str) -> None:
        super().__init__(file)
        self._display_name = display_name


class _RestrictedUnpickler(_RestrictedMixin, NumpyUnpickler):
    """joblib's unpickler with the allow list and the opcode checks above."""

    dispatch: _Dispatch = NumpyUnpickler.dispatch.copy()
    _install_handlers(dispatch)

    def __init__(self, file_handle: Any, display_name: str) -> None:
        super().__init__("", file_handle, ensure_native_byte_order=True, mmap_mode=None)
        self._display_name = display_name

    def _load_joblib_build(self) -> None:
        if self._build_common():
            return
        pickle._Unpickler.load_build(self)  # type: ignore[arg-type]
        # joblib's NumpyUnpickler.load_build swaps an array wrapper for the array
        # read from the stream; we do the same, but read object arrays with our
        # own restricted unpickler (joblib's nested one would skip these checks).
        if isinstance(self.stack[-1], NumpyArrayWrapper):
            wrapper = self.stack.pop()
            _require(_is_dtype(wrapper.dtype), "a joblib array has no valid dtype")
            if wrapper.dtype.hasobject:
                array = _NestedUnpickler(self.file_handle, self._display_name).load()
                _require(
                    type(array) is np.ndarray and array.dtype.hasobject,
                    "a joblib object array is malformed",
                )
            else:
                array = wrapper.read(self, self.ensure_native_byte_order)
            self.stack.append(array)

    dispatch[pickle.BUILD[0]] = _load_joblib_build


# ---------------------------------------------------------------------------
# Format loaders
# ---------------------------------------------------------------------------


def _file_error(display: str, problem: str, advice: str | None = None) -> ModelFileError:
    return ModelFileError(
        f"Could not load '{display}': {problem}. "
        + (advice or "Check that you uploaded the right file, or save the model again.")
    )


def _sniff(head: bytes) -> str:
    """Name what a non-pickle file looks like, to make the error actionable."""
    if head.startswith(b"PK"):
        return "it is a zip archive (a .skops file? then keep the .skops extension)"
    if head.startswith((b"tree\n", b"tree\r\n")):
        return "it is a LightGBM text model (give it a .txt extension)"
    if head[:1] in (b"{", b"["):
        return "it looks like JSON, which is not a supported model format"
    is_text = all(32 <= byte < 127 or byte in b"\r\n\t" for byte in head)
    if is_text and any(sep in head.split(b"\n", 1)[0] for sep in (b",", b";", b"\t")):
        return "it looks like a table (CSV text), not a saved model"
    if head[:1] in (b"(", b"]", b"}", b"c", b"N"):  # how protocol 0 and 1 pickles start
        return "it uses pickle protocol 0 or 1, which is not supported"
    if is_text:
        return "it looks like a text file, not a saved model"
    return "it is not a pickle or joblib file"


def _load_pickle(path: Path, display: str) -> object:
    with open(path, "rb") as raw:
        if _detect_compressor(raw) == "compat":
            raise _file_error(
                display,
                "it was written by joblib older than 0.10, whose format is not supported",
                "Load it in a trusted environment and save it again with a current joblib.",
            )
        # Reuse joblib's detection of zlib/gzip/bz2/lzma/xz compression.
        with _validate_fileobject_and_memmap(raw, str(path), None) as (stream, _mmap_mode):
            head = stream.peek(2)[:2] if hasattr(stream, "peek") else b""
            if len(head) < 2 or head[0] != pickle.PROTO[0] or not 2 <= head[1] <= 5:
                sample = stream.peek(256)[:256] if hasattr(stream, "peek") else b""
                if len(head) == 2 and head[0] == pickle.PROTO[0]:
                    problem = f"it uses unsupported pickle protocol {head[1]}"
                else:
                    problem = _sniff(sample)
                raise _file_error(
                    display,
                    problem,
                    "Save the model with joblib.dump or pickle.dump (protocol 2 or newer).",
                )
            return _RestrictedUnpickler(stream, display).load()


def _load_lightgbm_text(path: Path, display: str) -> object:
    try:
        return lightgbm.Booster(model_file=str(path))
    except lightgbm.basic.LightGBMError as exc:
        reason = str(exc).replace(str(path), display)
        raise _file_error(
            display,
            f"it is not a valid LightGBM text model (LightGBM says: {reason})",
            "Export the model with booster.save_model('model.txt') and upload that file.",
        ) from exc


def _load_skops(path: Path, display: str) -> object:
    import skops.io  # only needed for this format
    from skops.io.exceptions import UntrustedTypesFoundException

    untrusted = skops.io.get_untrusted_types(file=path)
    refused = sorted(name for name in untrusted if name not in _SKOPS_TRUSTABLE)
    if refused:
        raise UnsafeModelError(
            f"Refused to load '{display}': it contains the type(s) {', '.join(refused)}, "
            "which are not on the list of classes allowed in model files, so the file was "
            f"NOT loaded. {_ADVICE}"
        )
    try:
        return skops.io.load(path, trusted=sorted(untrusted))
    except UntrustedTypesFoundException as exc:
        raise UnsafeModelError(
            f"Refused to load '{display}': skops found types that are not trusted ({exc}), "
            f"so the file was NOT loaded. {_ADVICE}"
        ) from exc


def _describe_failure(exc: BaseException) -> str:
    """Turn a low-level read error into a sentence fragment."""
    text = str(exc)
    truncated_markers = ("truncated", "EOF", "ran out of input", "ended before", "end of stream")
    if isinstance(exc, EOFError) or any(marker in text for marker in truncated_markers):
        return "the file ends too early; it looks truncated or was not fully uploaded"
    if isinstance(exc, MemoryError):
        return "it needs more memory than is available; it may be corrupt"
    return f"the file is corrupt or not a saved model ({type(exc).__name__}: {text[:200]})"


def _load_path(path: Path, display: str) -> object:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise _file_error(
            display,
            f"the extension '{suffix or '(none)'}' is not a supported model format",
            "Accepted extensions: " + ", ".join(sorted(SUPPORTED_EXTENSIONS)) + ".",
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise _file_error(display, "the file does not exist") from exc
    except OSError as exc:
        raise _file_error(display, f"the file cannot be read ({exc.strerror})") from exc
    if not path.is_file():
        raise _file_error(display, "it is not a regular file")
    if size == 0:
        raise _file_error(display, "the file is empty", "Upload the saved model file again.")
    try:
        if suffix in PICKLE_EXTENSIONS:
            return _load_pickle(path, display)
        if suffix in LIGHTGBM_TEXT_EXTENSIONS:
            return _load_lightgbm_text(path, display)
        return _load_skops(path, display)
    except (UnsafeModelError, ModelFileError):
        raise
    except _Refused as exc:
        raise UnsafeModelError(
            f"Refused to load '{display}': {exc}. This is how crafted (malicious) files "
            f"look, so the file was NOT loaded and nothing in it was run. {_ADVICE}"
        ) from exc
    except Exception as exc:  # anything else from the readers means "unreadable file"
        raise _file_error(display, _describe_failure(exc)) from exc


def load_model_file(path: str | os.PathLike[str]) -> object:
    """Load an untrusted teacher model file without running code from it.

    Parameters
    ----------
    path : str or os.PathLike
        Path to the model.  The extension selects the format: ``.joblib``,
        ``.pkl`` or ``.pickle`` (restricted unpickling; joblib compression is
        detected automatically), ``.txt`` or ``.lgb`` (LightGBM text model) and
        ``.skops``.

    Returns
    -------
    object
        The loaded model.  Pickles may legitimately contain non-models (a dict,
        a list); callers must check for ``predict_proba`` themselves.  LightGBM
        text models come back as :class:`lightgbm.Booster`, which has
        ``predict`` but not ``predict_proba``.

    Raises
    ------
    UnsafeModelError
        The file references a class or function that is not on the allow
        list (:data:`ALLOWED_GLOBALS`), or uses allowed pieces in a way only
        crafted files do.  Nothing from the file was executed.
    ModelFileError
        The file is missing, empty, truncated, corrupt, in an unsupported
        format, or has an unsupported extension.

    Notes
    -----
    This blocks code execution during loading.  It cannot prove that every
    value inside an allowed estimator is sane: scikit-learn, numpy and
    LightGBM index into the arrays they are given, so a crafted file may still
    crash the process or leak memory contents at prediction time.  Run
    untrusted teachers in a separate, resource-limited process.
    """
    path = Path(path)
    return _load_path(path, str(path))


def load_model_bytes(data: bytes, filename: str) -> object:
    """Load an uploaded model from memory via a private temporary file.

    Parameters
    ----------
    data : bytes
        The uploaded file's contents.
    filename : str
        The name the user gave the file.  Only its extension is used to pick
        the format (never as a path); the name appears in error messages.

    Returns
    -------
    object
        The loaded model, as for :func:`load_model_file`.

    Raises
    ------
    UnsafeModelError, ModelFileError
        As for :func:`load_model_file`.
    """
    display = os.path.basename(filename) or filename or "upload"
    suffix = Path(display).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        # Checked before writing anything to disk.
        return _load_path(Path(display), display)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    # A fresh 0700 directory: no other user can swap the file between write and read,
    # and the user's filename never becomes part of a path.
    with tempfile.TemporaryDirectory(prefix="hpmkd-model-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        with open(path, "wb") as handle:
            handle.write(data)
        return _load_path(path, display)
