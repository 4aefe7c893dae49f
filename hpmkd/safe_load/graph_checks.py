"""Checks of the loaded objects: which functions a model holds, and where.

The unpickler admits a few functions as *values* that it never calls: the numpy
functions a ``FunctionTransformer`` may apply, ``check_array`` inside the
``functools.partial`` HistGradientBoosting keeps, and SciPy's ``asarray`` inside a
``BSpline``.  Which object holds which function is only known once the objects exist,
so after loading, :func:`check_loaded` visits every object reachable from the model:

- every ``FunctionTransformer``: ``func``/``inverse_func`` is ``None``, one of
  :data:`~hpmkd.safe_load.allowlist.FUNCTION_TRANSFORMER_FUNCTIONS` (the very numpy
  object, compared by identity) or, for ``func``, ``partial(check_array, ...)``;
  ``kw_args``/``inv_kw_args`` only name that function's allowed keywords, with plain
  values; ``feature_names_out`` is ``None`` or ``"one-to-one"``;
- any other place holding a function the file named is refused (functions that
  scikit-learn or SciPy create while restoring an object, such as the bound methods
  of an ``interp1d``, are theirs, not the file's);
- decision trees, boosting-tree predictors and B-splines are validated again (for
  ``.skops`` files this is the only check), and so is the fitted state of every
  estimator family with native code (:mod:`~hpmkd.safe_load.state_checks`: tree
  ensembles, gradient boosting, k-NN search trees, SVC, one-hot encoding, stacking,
  LightGBM);
- a native tree (or search tree, or LightGBM booster) is held once, and an estimator
  at most twice in lists and never twice in the same list: a file of a few bytes can
  otherwise make one tree predict 100,000 times;
- objects nest at most :data:`_MAX_DEPTH` levels deep;
- a name the unpickler did not admit (:class:`~hpmkd.safe_load.names._Unresolved`), or
  an object of such a class (``_UnresolvedObject``), is refused, naming where the model
  uses it.

Refusals name the place as a step path, e.g. ``step "prep" -> "num"``: the names of
Pipeline steps, ColumnTransformer transformers, and the estimators inside
Stacking, Voting and calibrated classifiers.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import lightgbm
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    StackingClassifier,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier

from hpmkd.safe_load.allowlist import (
    _ALLOW_TABLE,
    _BSPLINE_CLASS,
    _FUNCTION_TRANSFORMER_OBJECTS,
    _TREE_CLASS,
    _TREE_PREDICTOR_CLASS,
)
from hpmkd.safe_load.errors import _FUNCTION_ADVICE, _Refused
from hpmkd.safe_load.names import _optional, _Unresolved, _UnresolvedObject
from hpmkd.safe_load.state_checks import (
    _check_bspline_state,
    _check_kwargs,
    _check_partial_state,
    _check_tree_predictor_state,
    _check_tree_state,
    check_binary_tree,
    check_booster,
    check_decision_tree,
    check_forest,
    check_gradient_boosting,
    check_hist_gradient_boosting,
    check_k_neighbors,
    check_lgbm_classifier,
    check_one_hot_encoder,
    check_stacking,
    check_svc,
    family_checks_enabled,
)

#: More objects than any genuine model has (a 5,000-tree forest has about 10^5).
_MAX_OBJECTS: Final = 2_000_000
#: Deeper nesting than any genuine model has (a pipeline in a column transformer in a
#: stacking classifier is about 15 levels); deeper graphs overflow recursive code.
_MAX_DEPTH: Final = 200
#: How many lists may hold the same estimator (FeatureUnion may list one twice).
_MAX_SEQUENCE_REFERENCES: Final = 2

_KD_TREE: Final = _optional("sklearn.neighbors._kd_tree", "KDTree")
_BALL_TREE: Final = _optional("sklearn.neighbors._ball_tree", "BallTree")
#: Native objects a model holds exactly once.
_HELD_ONCE: Final = frozenset(
    cls for cls in (_TREE_CLASS, _TREE_PREDICTOR_CLASS, _KD_TREE, _BALL_TREE, lightgbm.Booster)
    if cls is not None
)
#: The fitted-state check of each estimator family with native code.
_FAMILY_CHECKS: Final[dict[type, Callable[[Any, str], None]]] = {
    DecisionTreeClassifier: check_decision_tree,
    DecisionTreeRegressor: check_decision_tree,
    ExtraTreeClassifier: check_decision_tree,
    RandomForestClassifier: check_forest,
    ExtraTreesClassifier: check_forest,
    GradientBoostingClassifier: check_gradient_boosting,
    HistGradientBoostingClassifier: check_hist_gradient_boosting,
    KNeighborsClassifier: check_k_neighbors,
    SVC: check_svc,
    StackingClassifier: check_stacking,
    OneHotEncoder: check_one_hot_encoder,
    lightgbm.LGBMClassifier: check_lgbm_classifier,
    lightgbm.Booster: check_booster,
    **{cls: check_binary_tree for cls in (_KD_TREE, _BALL_TREE) if cls is not None},
}
_SEQUENCES: Final = (list, tuple, np.ndarray)

_LEAF_TYPES: Final = (str, bytes, bytearray, int, float, complex, bool, type(None), range, slice)
# Every function the unpickler can hand out (ids of the allow table's non-class values).
# Classes are not functions here: a class as a value is a parameter (dtype=np.float64).
_ADMITTED_FUNCTION_IDS: Final = frozenset(
    id(obj) for obj in _ALLOW_TABLE.values() if not isinstance(obj, type)
)
_FUNCTION_TRANSFORMER_SLOTS: Final = ("func", "inverse_func", "kw_args", "inv_kw_args")

Path = tuple[str, ...]


def describe_path(path: Path) -> str:
    """``step "prep" -> "num"``, or ``the top-level object`` for the model itself."""
    if not path:
        return "the top-level object"
    return "step " + " -> ".join(f'"{name}"' for name in path)


def _is_file_function(obj: object) -> bool:
    """A function the file itself named (or a partial of one)."""
    return id(obj) in _ADMITTED_FUNCTION_IDS or isinstance(obj, functools.partial)


def _callable_name(obj: object) -> str:
    """``module.name`` of a function, refused name or class, as the file spells it."""
    if isinstance(obj, _Unresolved):
        return obj.dotted
    if isinstance(obj, functools.partial):
        return f"functools.partial({_callable_name(obj.func)}, ...)"
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(name, str):
        name = f"{type(obj).__qualname__} object"
    return f"{module}.{name}"


def _is_component(obj: object) -> bool:
    """Objects whose name belongs in a step path (estimators and transformers)."""
    return isinstance(obj, (BaseEstimator, _UnresolvedObject))


def _has_names(value: object) -> bool:
    """Containers that name what they hold: dicts and lists of ``(name, obj, ...)``."""
    if isinstance(value, dict):
        return True
    if type(value) in (list, tuple):
        return any(type(e) is tuple and e and type(e[0]) is str for e in value[:50])  # type: ignore[index]
    return False


def _ordered_attributes(state: dict[str, Any]) -> list[tuple[str, Any]]:
    """Attributes, named containers first, so objects get their most readable path."""

    def rank(item: tuple[str, Any]) -> int:
        value = item[1]
        return 0 if _has_names(value) else 1 if _is_component(value) else 2

    return sorted(state.items(), key=rank)  # stable: same rank keeps attribute order


def _children(obj: Any, path: Path) -> Iterator[tuple[Any, Path, str | None]]:
    """``(child, path, attribute)`` for everything ``obj`` holds."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key, path, None
            named = isinstance(key, str) and _is_component(value)
            yield value, (*path, key) if named else path, key if isinstance(key, str) else None
        factory = getattr(obj, "default_factory", None)
        if factory is not None:
            yield factory, path, "default_factory"
    elif type(obj) is tuple and len(obj) >= 2 and type(obj[0]) is str:
        # ("prep", estimator, columns): Pipeline steps, ColumnTransformer transformers.
        for item in obj[1:]:
            yield item, (*path, obj[0]), None
        return
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            yield item, path, None
        return
    elif type(obj) is np.ndarray:
        if obj.dtype.hasobject:
            for item in obj.ravel(order="K"):
                yield item, path, None
        return
    state = getattr(obj, "__dict__", None)
    if type(state) is dict:
        for attr, value in _ordered_attributes(state):
            yield value, (*path, attr) if _is_component(value) else path, attr


def _refuse_name(obj: _Unresolved, path: Path, attribute: str | None) -> _Refused:
    where = describe_path(path) + (f" (attribute {attribute!r})" if attribute else "")
    return _Refused(
        f"{where} holds '{obj.dotted}', which is not on the list of classes allowed in model "
        "files (nor of the functions they may hold)",
        crafted=False,
    )


def _check_function(ft: Any, slot: str, kwargs_slot: str, path: Path) -> None:
    """One function slot of a FunctionTransformer and its keyword arguments."""
    state = vars(ft)
    func, kwargs = state.get(slot), state.get(kwargs_slot)
    where = describe_path(path)
    entry = _FUNCTION_TRANSFORMER_OBJECTS.get(id(func))
    if func is None:
        allowed: frozenset[str] = frozenset()
    elif entry is not None and entry[0] is func:
        allowed = entry[2]
    elif slot == "func" and type(func) is functools.partial:
        # HistGradientBoosting's own FunctionTransformer(partial(check_array, ...)).
        try:
            _check_partial_state(func.__reduce__()[2])
        except _Refused as exc:
            raise _Refused(
                f"{where} is a FunctionTransformer calling a functools.partial that is not "
                f"allowed: {exc}"
            ) from exc
        allowed = frozenset()
    else:
        raise _Refused(
            f'{where} is a FunctionTransformer that calls "{_callable_name(func)}"'
            + ("" if slot == "func" else f" as its {slot}")
            + ", which is not one of the functions a FunctionTransformer may use in a model file",
            crafted=False,
            advice=_FUNCTION_ADVICE,
        )
    try:
        _check_kwargs(kwargs, allowed, f"its {kwargs_slot}", arrays=True)
    except _Refused as exc:
        shown = "None" if func is None else _callable_name(func)
        raise _Refused(
            f'{where} is a FunctionTransformer calling "{shown}" whose {exc}',
            crafted=False,
            advice=_FUNCTION_ADVICE,
        ) from exc


def _check_function_transformer(ft: Any, path: Path) -> None:
    state = vars(ft)
    _check_function(ft, "func", "kw_args", path)
    _check_function(ft, "inverse_func", "inv_kw_args", path)
    names_out = state.get("feature_names_out")
    if not (names_out is None or (type(names_out) is str and names_out == "one-to-one")):
        raise _Refused(
            f"{describe_path(path)} is a FunctionTransformer whose feature_names_out is "
            f'"{_callable_name(names_out)}"; only None or "one-to-one" are allowed in model files',
            crafted=False,
            advice=_FUNCTION_ADVICE,
        )


def _check_object(obj: Any, path: Path, attribute: str | None) -> bool:
    """Check one object; return whether its children still need visiting."""
    if isinstance(obj, _Unresolved):
        raise _refuse_name(obj, path, attribute)
    if isinstance(obj, _UnresolvedObject):
        where = describe_path(path) + (f" (attribute {attribute!r})" if attribute else "")
        raise _Refused(
            f'{where} is a "{obj.cls.dotted}" object, and that class is not on the list of '
            "classes allowed in model files",
            crafted=False,
        )
    kind = type(obj)
    if kind is FunctionTransformer:
        _check_function_transformer(obj, path)
    elif _is_file_function(obj):
        where = describe_path(path) + (f" (attribute {attribute!r})" if attribute else "")
        raise _Refused(
            f'{where} holds the function "{_callable_name(obj)}" outside a '
            "FunctionTransformer, which genuine model files never do"
        )
    elif _TREE_CLASS is not None and kind is _TREE_CLASS:
        _check_tree_state(obj, obj.__getstate__())
        return False
    elif _TREE_PREDICTOR_CLASS is not None and kind is _TREE_PREDICTOR_CLASS:
        _check_tree_predictor_state(vars(obj))
    elif _BSPLINE_CLASS is not None and kind is _BSPLINE_CLASS:
        _check_bspline_state(vars(obj))
        return False  # its _asarray is checked; nothing else inside
    if isinstance(obj, BaseEstimator) and vars(obj).get("_skl_callbacks"):
        raise _Refused(f"{_where(path, attribute)} carries fit callbacks, which model files "
                       "never do")
    check = _FAMILY_CHECKS.get(kind)
    if check is not None and family_checks_enabled():
        check(obj, f"{_where(path, attribute)} (a {kind.__name__})")
    return kind not in _HELD_ONCE or kind is lightgbm.Booster


def _where(path: Path, attribute: str | None) -> str:
    where = describe_path(path)
    return where + (f" (attribute {attribute!r})" if attribute and not path else "")


def _count_references(
    obj: Any, children: list[tuple[Any, Path, str | None]], held: Counter[int],
    listed: Counter[int],
) -> None:
    """Refuse native objects held twice and estimators repeated in lists."""
    in_sequence = isinstance(obj, _SEQUENCES)
    here: set[int] = set()
    for child, path, attribute in children:
        kind = type(child)
        if kind in _HELD_ONCE:
            held[id(child)] += 1
            if held[id(child)] > 1:
                raise _Refused(
                    f"{_where(path, attribute)} uses the same {kind.__name__} more than once "
                    "(genuine models hold each of their trees once; a repeated tree makes "
                    "prediction arbitrarily slow)"
                )
        elif in_sequence and isinstance(child, BaseEstimator):
            listed[id(child)] += 1
            if id(child) in here or listed[id(child)] > _MAX_SEQUENCE_REFERENCES:
                raise _Refused(
                    f"{_where(path, attribute)} lists the same {kind.__name__} several times "
                    "(a repeated estimator makes prediction arbitrarily slow)"
                )
            here.add(id(child))


def check_loaded(root: object, unresolved: Iterable[_Unresolved] = ()) -> None:
    """Visit everything reachable from ``root``; raise ``_Refused`` on the first problem.

    Parameters
    ----------
    root : object
        What the loader produced.
    unresolved : iterable of _Unresolved
        Every refused name the unpickler handed out; one the walk does not meet is
        refused all the same (the file used it somewhere and threw it away).
    """
    stack: list[tuple[Any, Path, str | None, int]] = [(root, (), None, 0)]
    seen: set[int] = set()
    held: Counter[int] = Counter()
    listed: Counter[int] = Counter()
    while stack:
        obj, path, attribute, depth = stack.pop()
        if type(obj) in _LEAF_TYPES or isinstance(obj, (np.generic, np.dtype)):
            continue
        if isinstance(obj, type):  # classes as values (dtype=np.float64): allowed ones only
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if len(seen) > _MAX_OBJECTS:
            raise _Refused(f"it holds more than {_MAX_OBJECTS:,} objects")
        if depth > _MAX_DEPTH:
            raise _Refused(f"its objects are nested more than {_MAX_DEPTH} levels deep")
        skip_ft_slots = type(obj) is FunctionTransformer
        if not _check_object(obj, path, attribute):
            continue
        children = [
            child
            for child in _children(obj, path)
            if not (skip_ft_slots and child[2] in _FUNCTION_TRANSFORMER_SLOTS)
        ]
        _count_references(obj, children, held, listed)
        stack.extend((*child, depth + 1) for child in reversed(children))
    first = next(iter(unresolved), None)
    if first is not None:
        raise _refuse_name(first, (), None)


def single_thread(root: object) -> None:
    """Set ``n_jobs`` of every estimator reachable from ``root`` to 1, in place.

    A loaded ``n_jobs=400`` would start 400 threads at prediction; LightGBM boosters and
    XGBoost models get one thread too (``num_threads`` / ``nthread``).
    """
    stack: list[Any] = [root]
    seen: set[int] = set()
    while stack:
        obj = stack.pop()
        if type(obj) in _LEAF_TYPES or isinstance(obj, (type, np.generic, np.dtype)):
            continue
        if id(obj) in seen or len(seen) > _MAX_OBJECTS:
            continue
        seen.add(id(obj))
        state = getattr(obj, "__dict__", None)
        if type(state) is dict:
            if "n_jobs" in state and isinstance(obj, BaseEstimator):
                state["n_jobs"] = 1
            if type(obj) is lightgbm.Booster and type(state.get("params")) is dict:
                for alias in ("num_threads", "num_thread", "nthread", "nthreads", "n_jobs"):
                    if alias in state["params"]:
                        state["params"][alias] = 1
            other = state.get("_other_params")
            if type(other) is dict:
                for alias in ("num_threads", "num_thread", "nthread", "nthreads"):
                    if alias in other:
                        other[alias] = 1
                        state[alias] = 1
            if type(obj).__name__ == "XGBClassifier" and hasattr(obj, "set_params"):
                obj.set_params(n_jobs=1)
        stack.extend(child for child, _path, _attr in _children(obj, ()))
