"""Cross-fitted soft targets: ``teacher_refit="oof"``.

A teacher that was trained on the distiller's rows gives near-label probabilities there
(:mod:`hpmkd.leakage`). With ``teacher_refit="oof"`` hpmkd refits *clones* of the
teacher (:func:`sklearn.base.clone`: same class and hyper-parameters, no fitted state):

- the training rows are cut into K stratified folds; each row's probabilities come from
  a clone fitted on the other K - 1 folds, so no row's soft target comes from a model
  that trained on it;
- one more clone is fitted on all training rows and gives the probabilities of every
  other row (validation, test), so the teacher's reported scores come only from rows it
  did not train on.

The clones are fitted on the rows as the teacher reads them (the raw table, the columns
it records) and on the labels in the teacher's own class labels. A teacher *file* is
never loaded in this process: :func:`hpmkd.isolation.refit_teacher_file` runs
:func:`oof_probabilities` in the isolated child that loads it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hpmkd.errors import HPMKDInputError
from hpmkd.teacher import Teacher, _align_classes, _check_proba, _is_lgb_booster, _label_key

__all__ = ["cloneable_or_raise", "oof_probabilities"]


def cloneable_or_raise(model: Any, name: str) -> Any:
    """An unfitted clone of ``model``, or a clear error when it cannot be refitted.

    Raises
    ------
    HPMKDInputError
        ``model`` is a LightGBM ``Booster`` (no scikit-learn API), has no ``fit``, or
        :func:`sklearn.base.clone` refuses it.
    """
    from sklearn.base import clone

    advice = (
        "teacher_refit=\"oof\" refits clones of the teacher, so it needs a scikit-learn "
        "estimator or Pipeline (LGBMClassifier, XGBClassifier, RandomForestClassifier, "
        "...). Save the estimator itself (joblib.dump(model, 'teacher.joblib')), or set "
        "teacher_refit=\"none\" and give a separate test table instead."
    )
    if _is_lgb_booster(model):
        raise HPMKDInputError(
            f"Teacher {name!r} is a LightGBM Booster, which cannot be cloned and refitted. "
            + advice
        )
    if not callable(getattr(model, "fit", None)) or not callable(
        getattr(model, "get_params", None)
    ):
        raise HPMKDInputError(
            f"Teacher {name!r} ({type(model).__name__}) has no scikit-learn fit/get_params, "
            "so it cannot be cloned and refitted. " + advice
        )
    try:
        return clone(model)
    except Exception as exc:
        raise HPMKDInputError(
            f"Teacher {name!r} ({type(model).__name__}) cannot be cloned: "
            f"{type(exc).__name__}: {exc}. " + advice
        ) from exc


def _teacher_labels(model: Any, classes: list[Any], name: str) -> np.ndarray:
    """The teacher's own label for each of the dataset's classes (by class index), so
    clones learn the labels the teacher learned (an XGBoost teacher fitted on 0/1 keeps
    0/1; one fitted on "yes"/"no" keeps those)."""
    own = getattr(model, "classes_", None)
    if own is None:
        return pd.Series(classes).to_numpy()
    own = list(own)
    keys = [_label_key(c) for c in own]
    wanted = [_label_key(c) for c in classes]
    if all(isinstance(c, str) for c in [*own, *classes]):
        keys, wanted = [str(c) for c in own], [str(c) for c in classes]
    if sorted(map(repr, keys)) != sorted(map(repr, wanted)):
        raise HPMKDInputError(
            f"Teacher {name!r} was trained on classes {own} but the target has {classes}; "
            "it cannot be refitted on this target."
        )
    return np.asarray([own[keys.index(k)] for k in wanted], dtype=np.asarray(own).dtype)


def oof_probabilities(
    model: Any,
    frame: pd.DataFrame,
    feature_columns: list[str],
    classes: list[Any],
    y_train: np.ndarray,
    train: np.ndarray,
    folds: int,
    random_state: int,
    name: str = "teacher",
) -> np.ndarray:
    """Cross-fitted probabilities of clones of ``model`` on every row of ``frame``.

    Parameters
    ----------
    model : estimator
        The fitted teacher; only its class and hyper-parameters are used.
    frame : DataFrame
        Every row, raw (as the teacher reads them).
    feature_columns : list of str
        Columns to use when the teacher records no feature names.
    classes : list
        The target's classes; the result's columns are in this order.
    y_train : ndarray of int
        Class index of each training row (in the order of ``train``); no other row's
        label is needed or given.
    train : ndarray of int
        Positions of the training rows: they get out-of-fold probabilities; every other
        row gets the probabilities of a clone fitted on all of them.
    folds : int
        K.
    random_state : int
        Seed of the folds.
    name : str
        The teacher's name in messages.

    Returns
    -------
    ndarray of shape (len(frame), len(classes))

    Raises
    ------
    HPMKDInputError
        Not cloneable, a class with fewer than K training rows, or a clone that failed
        to fit or predict.
    """
    from sklearn.model_selection import StratifiedKFold

    cloneable_or_raise(model, name)
    y_train = np.asarray(y_train, dtype=int)
    train = np.asarray(train, dtype=int)
    if y_train.shape != train.shape:
        raise ValueError(f"{len(y_train)} labels for {len(train)} training rows")
    n_classes = len(classes)
    counts = np.bincount(y_train, minlength=n_classes)
    if counts.min() < folds:
        rare = classes[int(np.argmin(counts))]
        raise HPMKDInputError(
            f"teacher_refit=\"oof\" with {folds} folds needs at least {folds} training rows "
            f"of every class, but class {rare!r} has {int(counts.min())}. Lower "
            "teacher_refit_folds, add rows, or set teacher_refit=\"none\"."
        )
    columns = Teacher(name=name, kind="object", model=model).feature_columns(
        frame, feature_columns
    )
    X = frame[columns]
    # Labels of the training rows, in the teacher's own class labels, by position in X.
    own = _teacher_labels(model, classes, name)
    labels = np.zeros(len(frame), dtype=own.dtype)  # only training positions are read
    labels[train] = own[y_train]
    out = np.full((len(frame), n_classes), np.nan)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=random_state)
    jobs = [(train[fit], train[held]) for fit, held in splitter.split(train, y_train)]
    rest = np.setdiff1d(np.arange(len(frame)), train)
    if len(rest):
        jobs.append((train, rest))
    for k, (fit_rows, score_rows) in enumerate(jobs):
        out[score_rows] = _fit_and_score(model, X, labels, fit_rows, score_rows, classes,
                                         f"{name} (clone {k + 1} of {len(jobs)})")
    _check_proba(out, len(frame), n_classes, f"refitted teacher {name!r}")
    return out


def _fit_and_score(
    model: Any,
    X: pd.DataFrame,
    labels: np.ndarray,
    fit_rows: np.ndarray,
    score_rows: np.ndarray,
    classes: list[Any],
    name: str,
) -> np.ndarray:
    estimator = cloneable_or_raise(model, name)
    try:
        estimator.fit(X.iloc[fit_rows], labels[fit_rows])
        raw = np.asarray(estimator.predict_proba(X.iloc[score_rows]), dtype=float)
    except HPMKDInputError:
        raise
    except Exception as exc:
        raise HPMKDInputError(
            f"Refitting teacher {name} failed: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:400]}. teacher_refit=\"oof\" fits clones of the "
            "teacher on parts of the table; set teacher_refit=\"none\" if it cannot be "
            "fitted on this data."
        ) from exc
    own = getattr(estimator, "classes_", None)
    if own is not None:
        raw = _align_classes(raw, list(own), classes, name)
    return raw
