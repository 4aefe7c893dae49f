"""Feature importance of a teacher and a student on a fixed sample of test rows.

The method is always named with the result, because the numbers differ in meaning:

- ``SHAP (TreeExplainer)``: exact tree SHAP for tree models (LightGBM, scikit-learn
  trees and forests), mean |SHAP value| per feature;
- ``SHAP (LinearExplainer)``: linear models (e.g. a logistic-regression student);
- ``SHAP (permutation explainer)``: other models with numeric inputs, on at most
  :data:`GENERIC_ROWS` rows against a small background of :data:`BACKGROUND_ROWS` rows;
- ``permutation importance``: the fallback (scikit-learn ``permutation_importance``,
  fixed ``random_state``), the drop in one-vs-rest ROC AUC when a feature is shuffled.

One-hot columns made by a model's preprocessing are summed back to their source column.
The sample is evenly spaced over the test rows (no random draw).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hpmkd.evaluate import uncalibrated

#: Most test rows explained.
MAX_ROWS = 500
#: Rows explained by the (slow) generic permutation explainer.
GENERIC_ROWS = 100
#: Background rows of the generic explainer's masker.
BACKGROUND_ROWS = 30

_TREE_MODULES = ("sklearn.tree", "sklearn.ensemble", "lightgbm", "xgboost", "catboost")


@dataclass(frozen=True)
class Importance:
    """Importance by feature and how it was computed.

    Attributes
    ----------
    values : Series
        Importance per original feature (higher = more important).
    method : str
        Honest name of the method (see the module docstring).
    rows : int
        Test rows used.
    """

    values: pd.Series
    method: str
    rows: int


def sample_positions(n: int, limit: int = MAX_ROWS) -> np.ndarray:
    """Evenly spaced row positions, at most ``limit`` of ``n`` (deterministic).

    Parameters
    ----------
    n : int
    limit : int
    """
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def _split_model(model: Any) -> tuple[Any, Any]:
    """(preprocessing or None, final estimator) of a pipeline or a bare model.

    A calibrated student is explained through the student it wraps: temperature scaling
    divides every row's log-odds by the same number, so it changes no ranking of features.
    """
    from sklearn.pipeline import Pipeline

    model = uncalibrated(model)
    if isinstance(model, Pipeline):
        return (model[:-1] if len(model.steps) > 1 else None), model[-1]
    return None, model


def _is_tree(est: Any) -> bool:
    module = type(est).__module__
    return any(module.startswith(m) for m in _TREE_MODULES) and not hasattr(est, "coef_")


def _dense(values: Any) -> np.ndarray:
    if hasattr(values, "toarray"):
        values = values.toarray()
    return np.asarray(values, dtype=float)


def _source_map(names_out: list[str], features: list[str]) -> list[str] | None:
    """Original feature of each transformed column (one-hot names map by prefix)."""
    known = set(features)
    by_length = sorted(features, key=len, reverse=True)
    out = []
    for name in names_out:
        if name in known:
            out.append(name)
            continue
        match = next((f for f in by_length if name.startswith(f"{f}_")), None)
        if match is None:
            return None
        out.append(match)
    return out


def _pick_class(values: Any, k: int) -> np.ndarray:
    """The (n_rows, n_features) SHAP matrix of class ``k`` from any output layout."""
    if isinstance(values, list):
        return np.asarray(values[k] if len(values) > k else values[-1])
    arr = np.asarray(values)
    if arr.ndim == 3:
        return arr[:, :, k] if arr.shape[2] > k else arr[:, :, -1]
    return arr  # binary models with one output (the positive class): same magnitudes


def _aggregate(matrix: np.ndarray, sources: list[str], features: list[str]) -> pd.Series:
    mean_abs = np.abs(matrix).mean(axis=0)
    series = pd.Series(mean_abs, index=sources).groupby(level=0).sum()
    return series.reindex(features).fillna(0.0)


def _transformed(model: Any, X: pd.DataFrame) -> tuple[Any, np.ndarray, list[str]] | None:
    pre, est = _split_model(model)
    if pre is None:
        if not all(pd.api.types.is_numeric_dtype(X[c]) for c in X.columns):
            return None
        return est, X.to_numpy(dtype=float), list(X.columns)
    try:
        Xt = _dense(pre.transform(X))
        names = [str(n) for n in pre.get_feature_names_out()]
    except Exception:
        return None
    if Xt.shape[1] != len(names):
        return None
    sources = _source_map(names, list(X.columns))
    if sources is None:
        return None
    return est, Xt, sources


def _tree_shap(model: Any, X: pd.DataFrame, k: int) -> Importance | None:
    import shap

    parts = _transformed(model, X)
    if parts is None or not _is_tree(parts[0]):
        return None
    est, Xt, sources = parts
    explainer = shap.TreeExplainer(est)
    with warnings.catch_warnings():
        # shap notes that LightGBM binary output became a list; _pick_class handles both.
        warnings.simplefilter("ignore", UserWarning)
        values = explainer.shap_values(Xt, check_additivity=False)
    matrix = _pick_class(values, k)
    return Importance(_aggregate(matrix, sources, list(X.columns)),
                      "SHAP (TreeExplainer), mean |value|", len(X))


def _linear_shap(model: Any, X: pd.DataFrame, k: int) -> Importance | None:
    import shap

    parts = _transformed(model, X)
    if parts is None or not hasattr(parts[0], "coef_"):
        return None
    est, Xt, sources = parts
    explainer = shap.LinearExplainer(est, shap.maskers.Independent(Xt, max_samples=len(Xt)))
    matrix = _pick_class(explainer.shap_values(Xt), k)
    if matrix.ndim != 2 or matrix.shape[1] != len(sources):
        return None
    return Importance(_aggregate(matrix, sources, list(X.columns)),
                      "SHAP (LinearExplainer), mean |value|", len(X))


def _generic_shap(
    predict: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame, k: int
) -> Importance | None:
    import shap

    if not all(pd.api.types.is_numeric_dtype(X[c]) for c in X.columns) or X.shape[1] > 60:
        return None
    rows = X.iloc[sample_positions(len(X), GENERIC_ROWS)]
    background = X.iloc[sample_positions(len(X), BACKGROUND_ROWS)].to_numpy(dtype=float)
    columns = list(X.columns)

    def f(values: np.ndarray) -> np.ndarray:
        return predict(pd.DataFrame(values, columns=columns))[:, k]

    explainer = shap.Explainer(f, shap.maskers.Independent(background),
                               algorithm="permutation", seed=0)
    result = explainer(rows.to_numpy(dtype=float), max_evals=2 * len(columns) + 1)
    matrix = np.asarray(result.values)
    return Importance(_aggregate(matrix, columns, columns),
                      f"SHAP (permutation explainer, {len(rows)} rows), mean |value|",
                      len(rows))


class _Scored:
    """Minimal estimator facade for ``permutation_importance``."""

    def __init__(self, predict: Callable[[pd.DataFrame], np.ndarray]) -> None:
        self.predict_proba = predict

    def fit(self, *args: Any) -> _Scored:  # pragma: no cover - never fitted
        return self


def permutation(
    predict: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame, y: np.ndarray, k: int
) -> Importance | None:
    """scikit-learn permutation importance: drop in class-``k`` ROC AUC (5 repeats, seed 0).

    Parameters
    ----------
    predict : callable
        DataFrame -> probabilities in class-index order.
    X : DataFrame
        The model's input rows.
    y : array of int
        Class indices of the rows.
    k : int

    Returns
    -------
    Importance or None
        ``None`` when the rows hold only one side of class ``k`` (AUC undefined).
    """
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    is_k = np.asarray(y) == k
    if is_k.all() or not is_k.any():
        return None

    def auc(estimator: _Scored, X_: pd.DataFrame, y_: np.ndarray) -> float:
        return float(roc_auc_score(np.asarray(y_) == k, estimator.predict_proba(X_)[:, k]))

    result = permutation_importance(_Scored(predict), X, y, scoring=auc, n_repeats=5,
                                    random_state=0)
    values = pd.Series(np.maximum(result.importances_mean, 0.0), index=list(X.columns))
    return Importance(values, "permutation importance (drop in ROC AUC, 5 repeats)", len(X))


def feature_importance(
    model: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    k: int,
    predict: Callable[[pd.DataFrame], np.ndarray],
) -> tuple[Importance | None, str]:
    """The best available importance for ``model`` on ``X`` (already the sample).

    Tries tree SHAP, linear SHAP, the generic SHAP explainer, then permutation
    importance; the returned :class:`Importance` names the method used.

    Parameters
    ----------
    model : object or None
        The fitted model (``None``: probability columns, only nothing to explain).
    X : DataFrame
        Sample rows in the model's input format.
    y : array of int
        Class indices of the rows.
    k : int
        Class explained (one-vs-rest).
    predict : callable
        DataFrame -> probabilities in class-index order.

    Returns
    -------
    (Importance or None, str)
        The result and a note (why a method was skipped or nothing could be computed).
    """
    if model is None:
        return None, "no model object (the teacher was given as probability columns)"
    notes = []
    for attempt in (_tree_shap, _linear_shap):
        try:
            result = attempt(model, X, k)
        except Exception as exc:
            notes.append(f"{attempt.__name__.strip('_')}: {type(exc).__name__}: {exc}")
            continue
        if result is not None:
            return result, ""
    try:
        result = _generic_shap(predict, X, k)
        if result is not None:
            return result, ""
    except Exception as exc:
        notes.append(f"generic SHAP: {type(exc).__name__}: {exc}")
    try:
        result = permutation(predict, X, y, k)
    except Exception as exc:
        return None, f"importance could not be computed: {type(exc).__name__}: {exc}"
    if result is None:
        return None, "the sample holds only one side of this class; importance is undefined"
    return result, "; ".join(notes)
