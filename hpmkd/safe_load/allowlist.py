"""The allow list: exactly which classes and functions a model pickle may reference.

This is the single place that decides what is admitted.  Every global a pickle
names must be a key of :data:`_ALLOW_TABLE` (exact ``(module, name)`` match; the
public view is :data:`ALLOWED_GLOBALS`), and the value is what the unpickler hands
out - for low-level reconstructors, a strict stand-in from
:mod:`~hpmkd.safe_load.numpy_guards`, never the real function.  The same module
also says which admitted objects may have their state set (:data:`_BUILDABLE`),
which must never be called (:data:`_NEVER_CALL`, :data:`_NEVER_NEW`), and which
type names ``.skops`` files may additionally trust (:data:`_SKOPS_TRUSTABLE`).

To admit a new class, add it to the right tuple below (estimators, internal
helper classes, or Cython pickling helpers) and check :data:`_BUILDABLE`,
:data:`_NEVER_CALL` and :data:`_SKOPS_TRUSTABLE`, which are derived from them.

Functions a model may *hold* (never call while loading) are listed separately:
:data:`FUNCTION_TRANSFORMER_FUNCTIONS` - the numpy functions a ``FunctionTransformer``
may apply, with the keyword arguments each may be given - and the few helpers
scikit-learn and SciPy store inside fitted objects (:data:`_REFERENCED_FUNCTION_PATHS`).
Which object may hold which function is checked after loading, by
:mod:`~hpmkd.safe_load.graph_checks`.
"""

from __future__ import annotations

import collections
import functools
import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import lightgbm
import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper
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
from sklearn.frozen import FrozenEstimator
from sklearn.impute import KNNImputer, MissingIndicator, SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    LabelBinarizer,
    LabelEncoder,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    PowerTransformer,
    QuantileTransformer,
    RobustScaler,
    SplineTransformer,
    StandardScaler,
    TargetEncoder,
)
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier

from hpmkd.safe_load.errors import _require
from hpmkd.safe_load.names import _key, _optional
from hpmkd.safe_load.numpy_guards import (
    _pending_dtype,
    _safe_frombuffer,
    _safe_latin1_encode,
    _safe_reconstruct,
    _safe_reconstructor,
    _safe_scalar,
)

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
    FeatureUnion,
    ColumnTransformer,
    make_column_selector,
    FunctionTransformer,
    StandardScaler,
    MinMaxScaler,
    MaxAbsScaler,
    RobustScaler,
    PowerTransformer,
    QuantileTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    TargetEncoder,
    KBinsDiscretizer,
    PolynomialFeatures,
    SplineTransformer,
    SimpleImputer,
    KNNImputer,
    MissingIndicator,
    LabelEncoder,
    LabelBinarizer,
    lightgbm.LGBMClassifier,
    lightgbm.Booster,
    # hpmkd's own students are calibrated on validation rows by temperature scaling:
    # CalibratedClassifierCV(FrozenEstimator(student), method="temperature").
    FrozenEstimator,
)

# Private helper classes that fitted estimators keep as attributes.  Found by
# pickling every teacher above and recording what the unpickler asks for.
_INTERNAL_CLASS_PATHS: Final[tuple[tuple[str, str], ...]] = (
    ("sklearn.tree._tree", "Tree"),
    ("sklearn.calibration", "_CalibratedClassifier"),
    ("sklearn.calibration", "_SigmoidCalibration"),
    ("sklearn.calibration", "_TemperatureScaling"),
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
    # SplineTransformer keeps one B-spline per feature (state checked at BUILD).
    ("scipy.interpolate._bsplines", "BSpline"),
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

# Functions fitted objects hold as values and that genuine pickles never call while
# loading (so they are also in _NEVER_CALL); where each may sit is checked after
# loading.  HistGradientBoosting with categorical columns keeps
# FunctionTransformer(functools.partial(check_array, ...)); a SciPy BSpline keeps
# its array namespace's asarray.
_REFERENCED_FUNCTION_PATHS: Final[tuple[tuple[str, str], ...]] = (
    ("sklearn.utils.validation", "check_array"),
    ("scipy._lib.array_api_compat.numpy._aliases", "asarray"),
)

#: Numpy functions a ``FunctionTransformer`` may hold as ``func``/``inverse_func``,
#: by name, with the keyword arguments (``kw_args``/``inv_kw_args``) each accepts.
#: Ufuncs take none: ``out=``/``where=`` would let a file write into arrays.
FUNCTION_TRANSFORMER_FUNCTIONS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "log", "log1p", "log2", "log10", "exp", "expm1", "exp2", "sqrt", "cbrt",
                "square", "absolute", "fabs", "sign", "negative", "reciprocal", "tanh",
                "arctan", "arcsinh", "floor", "ceil", "rint", "trunc",
            ),
            frozenset(),
        ),
        "clip": frozenset({"a_min", "a_max", "min", "max"}),
        "nan_to_num": frozenset({"nan", "posinf", "neginf", "copy"}),
        "round": frozenset({"decimals"}),
    }
)

#: The same functions as objects (identity is what counts), with their keywords.
_FUNCTION_TRANSFORMER_OBJECTS: Final[dict[int, tuple[Any, str, frozenset[str]]]] = {
    id(func): (func, name, kwargs)
    for name, kwargs in FUNCTION_TRANSFORMER_FUNCTIONS.items()
    if (func := getattr(np, name, None)) is not None
}

# Abstract numpy types, e.g. make_column_selector(dtype_include=np.number).
_NUMPY_ABSTRACT_TYPES: Final[tuple[type, ...]] = (
    np.generic,
    np.number,
    np.integer,
    np.signedinteger,
    np.unsignedinteger,
    np.inexact,
    np.floating,
    np.complexfloating,
    np.object_,
    np.str_,
    np.bytes_,
    np.datetime64,
    np.timedelta64,
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
_BSPLINE_CLASS: Final = _optional("scipy.interpolate._bsplines", "BSpline")
_CHECK_ARRAY: Final = _optional("sklearn.utils.validation", "check_array")
_SCIPY_NUMPY_ASARRAY: Final = _optional("scipy._lib.array_api_compat.numpy._aliases", "asarray")
_REFERENCED_FUNCTIONS: Final[tuple[Any, ...]] = tuple(
    func
    for func in (_optional(m, n) for m, n in _REFERENCED_FUNCTION_PATHS)
    if func is not None
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


# -- Stand-ins for the two function-making reconstructors --------------------


def _safe_partial(func: object, *args: object) -> functools.partial:
    """``functools.partial`` as genuine model pickles use it: of ``check_array`` only.

    The keywords arrive later with BUILD and are checked there
    (:func:`~hpmkd.safe_load.state_checks._check_partial_state`).
    """
    _require(
        _CHECK_ARRAY is not None and func is _CHECK_ARRAY and not args,
        "it wraps a function other than scikit-learn's check_array in functools.partial",
    )
    return functools.partial(func)  # type: ignore[arg-type]


def _safe_ufunc_reconstruct(module: object, name: object) -> Any:
    """``numpy.core._ufunc_reconstruct`` (how numpy < 1.20 pickled ufuncs), allowed ufuncs only.

    The real function imports any module and returns any attribute.
    """
    named = type(module) is str and type(name) is str
    entry = _ALLOW_TABLE.get((module, name)) if named else None  # type: ignore[arg-type]
    _require(
        module == "numpy" and isinstance(entry, np.ufunc),
        f"it rebuilds the function {module}.{name} with _ufunc_reconstruct, which is not allowed"
        if named
        else "it calls numpy's _ufunc_reconstruct with unusual arguments",
    )
    return entry


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
        *_NUMPY_ABSTRACT_TYPES,
        NumpyArrayWrapper,  # joblib's placeholder for arrays stored after the pickle
        np.ndarray,  # only ever an argument (see _NEVER_CALL), never called
        collections.OrderedDict,
        collections.defaultdict,
    ):
        table[_key(cls)] = cls
    for module, name in (*_INTERNAL_FUNCTION_PATHS, *_REFERENCED_FUNCTION_PATHS):
        func = _optional(module, name)
        if func is not None:
            table[(module, name)] = func
    # Numpy functions a FunctionTransformer may hold, as pickle names them
    # ("numpy", "log1p"); numpy < 1.20 wrote ufuncs as _ufunc_reconstruct(module, name).
    for func, name, _kwargs in _FUNCTION_TRANSFORMER_OBJECTS.values():
        table[("numpy", name)] = func
    table[("functools", "partial")] = _safe_partial
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
    for core in ("numpy._core", "numpy.core"):
        table[(core, "_ufunc_reconstruct")] = _safe_ufunc_reconstruct
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
        functools.partial,  # only partial(check_array, ...), see _check_partial_state
    }
)

# Allowed classes a pickle may reference but must never call: ndarray(shape,
# dtype, buffer) builds object arrays from raw bytes, and the Boosters'
# constructors read arbitrary paths (e.g. /dev/zero).  Genuine pickles create
# Boosters with NEWOBJ (no __init__) and never construct ndarray directly.
# TreePredictor and BSpline are rebuilt with NEWOBJ + BUILD so that their state
# is validated; calling them would skip the check.  Functions that models only
# hold (FunctionTransformer functions, check_array, asarray) and abstract numpy
# types are never called while loading: np.clip(a, lo, hi, out) would write
# into an array that was already checked.
_NEVER_CALL: Final[tuple[Any, ...]] = tuple(
    obj
    for obj in (
        np.ndarray,
        lightgbm.Booster,
        _TREE_PREDICTOR_CLASS,
        _BSPLINE_CLASS,
        *(cls for cls in _XGBOOST_CLASSES if cls.__name__ == "Booster"),
        *(func for func, _name, _kwargs in _FUNCTION_TRANSFORMER_OBJECTS.values()),
        *_REFERENCED_FUNCTIONS,
        *_NUMPY_ABSTRACT_TYPES,
    )
    if obj is not None
)
_NEVER_NEW: Final[tuple[Any, ...]] = (np.ndarray,)

# Names scikit-learn's skops format may additionally trust: our classes only,
# not the pickle helpers or builtins above.
# "numpy.dtype" is added because skops (which does not trust it by default) stores a
# dtype as an empty .npy array read with allow_pickle=False, i.e. via numpy's
# validating constructor - unlike pickle's dtype.__setstate__ (see _PendingDType).
# The functions and types models hold are named as skops names them; where they
# sit is checked after loading, as for pickles.
_SKOPS_TRUSTABLE: Final[frozenset[str]] = frozenset(
    f"{obj.__module__}.{obj.__qualname__}"
    for obj in (
        *(_BUILDABLE - {np.ndarray, NumpyArrayWrapper}),
        collections.OrderedDict,
        collections.defaultdict,
        *_NUMPY_ABSTRACT_TYPES,
        *_REFERENCED_FUNCTIONS,
    )
) | {"numpy.dtype", "builtins.object"} | {
    f"numpy.{name}" for name in FUNCTION_TRANSFORMER_FUNCTIONS
}
