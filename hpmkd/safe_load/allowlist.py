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
"""

from __future__ import annotations

import collections
import importlib
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
