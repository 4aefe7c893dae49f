"""``HPMKDClassifier``: a scikit-learn estimator facade over :class:`AutoDistiller`.

A thin layer: it turns ``X, y`` into a :class:`DistillationDataset`, runs an
:class:`AutoDistiller` and serves the selected student through the scikit-learn contract,
so a distillation can sit inside ``Pipeline``, ``GridSearchCV`` or ``cross_val_score``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted, column_or_1d

from hpmkd.config import HPMConfig
from hpmkd.data import DistillationDataset
from hpmkd.distiller import AutoDistiller
from hpmkd.errors import HPMKDInputError
from hpmkd.metrics import single_thread_predictor
from hpmkd.teacher import expected_feature_names


class HPMKDClassifier(ClassifierMixin, BaseEstimator):
    """Distill a fitted teacher into a small student, as a scikit-learn classifier.

    ``fit`` runs the whole HPM-KD (or legacy) process of :class:`~hpmkd.AutoDistiller` on
    the rows it is given and keeps the selected student; ``predict`` and ``predict_proba``
    use that student. The engine splits the rows passed to ``fit`` itself: ``test_size``
    of them are held out as a test part (read once, for the metrics in ``results_``), then
    ``config.validation_split`` of the rest select the student, which is trained on the
    remaining rows only (about 64% of them with the defaults).

    Parameters
    ----------
    teacher : object, path, list of them, or None, default None
        The fitted teacher: a classifier with ``predict_proba`` (or a model file; see
        :class:`~hpmkd.DistillationDataset`). ``None`` means it must be passed to
        :meth:`fit`. The teacher is an input, not a hyper-parameter: it is never refitted,
        :func:`~sklearn.base.clone` keeps the same fitted object, and its own parameters
        are not exposed as ``teacher__*``.
    method : {"auto", "hpm", "legacy"}, default "auto"
        ``auto`` picks by the size of the rows passed to ``fit`` (see
        :func:`~hpmkd.choose_method`); ``legacy`` runs the grid of ``config.families`` x
        ``config.temperatures`` x ``config.alphas``.
    config : HPMConfig, dict or None, default None
        Run options; a dict holds :class:`~hpmkd.HPMConfig` fields; ``None`` means
        ``HPMConfig()``.
    test_size : float, default 0.2
        Share of the ``fit`` rows held out as the engine's test part.
    random_state : int, default 42
        Seed of the splits, trials and students.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The sorted class labels seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names; only set when ``X`` was a DataFrame with string column names.
    distiller_ : AutoDistiller
        The finished run (dataset, ``result_``, ``summary()``, ``generate_report()``).
    best_model_ : Pipeline
        The selected student, a plain scikit-learn ``Pipeline`` over the feature columns.
    results_ : DataFrame
        One row per candidate, the teacher(s) and the hard-label baseline.

    Notes
    -----
    Without feature names (``X`` an array, as after a ``StandardScaler`` in a
    ``Pipeline``) the teacher is scored on arrays too, so it must have been fitted on
    arrays of the same columns. A teacher fitted on named columns needs ``X`` as a
    DataFrame with those columns.

    sklearn's ``check_estimator`` suite is not passed as a whole: its checks build
    estimators from default parameters and fit them on arbitrary data, which a
    distillation cannot do without a teacher trained on that data.

    Examples
    --------
    >>> kd = HPMKDClassifier(teacher=teacher, config={"max_configs": 4})  # doctest: +SKIP
    >>> kd.fit(X_train, y_train).score(X_test, y_test)                    # doctest: +SKIP
    """

    def __init__(
        self,
        teacher: Any = None,
        method: str = "auto",
        config: HPMConfig | dict[str, Any] | None = None,
        test_size: float = 0.2,
        random_state: int = 42,
    ) -> None:
        self.teacher = teacher
        self.method = method
        self.config = config
        self.test_size = test_size
        self.random_state = random_state

    def fit(self, X: Any, y: Any, teacher: Any = None) -> HPMKDClassifier:
        """Run the distillation on ``X, y`` and keep the selected student.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Features; DataFrames keep their column types (text columns are categories).
        y : array-like of shape (n_samples,)
            True labels. Rows with a missing label are dropped.
        teacher : object, path or list of them, optional
            Overrides the ``teacher`` parameter for this fit.

        Returns
        -------
        self : HPMKDClassifier

        Raises
        ------
        HPMKDInputError
            No teacher, mismatched lengths, or any input the engine rejects.
        """
        teacher = teacher if teacher is not None else self.teacher
        if teacher is None:
            raise HPMKDInputError(
                "HPMKDClassifier needs a fitted teacher: pass HPMKDClassifier(teacher=...) "
                "or fit(X, y, teacher=...)."
            )
        named = _has_feature_names(X)
        frame = _as_frame(X)
        labels = column_or_1d(np.asarray(y), warn=True)
        if len(labels) != len(frame):
            raise HPMKDInputError(
                f"X has {len(frame)} rows but y has {len(labels)} labels; give one label per row."
            )
        n_features = frame.shape[1]
        if not named:
            teacher = _fed_arrays(teacher, list(frame.columns))
        target = _free_name("target", frame.columns)
        frame[target] = labels
        dataset = DistillationDataset(
            frame, target=target, teacher=teacher, test_size=self.test_size
        )
        distiller = AutoDistiller(
            dataset, method=self.method, config=_as_config(self.config),
            random_state=self.random_state,
        )
        distiller.run()
        self.distiller_ = distiller
        self.best_model_ = distiller.best_model()
        self.results_ = distiller.results_df
        self.classes_ = np.asarray(dataset.classes)
        self.n_features_in_ = n_features
        if named:
            self.feature_names_in_ = np.asarray(dataset.features, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the selected student.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Rows in the layout seen by ``fit``: named columns if it saw a DataFrame
            (arrays are then read by position), else by position.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in ``classes_`` order.
        """
        check_is_fitted(self)
        return self.distiller_.predict_proba(self._prediction_frame(X))

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (from ``classes_``) of the selected student; ``X`` as in
        :meth:`predict_proba`. Returns an ndarray of shape (n_samples,)."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments by name. ``deep`` is ignored: the only nested
        estimator is the fitted teacher, whose parameters are not tuned."""
        return super().get_params(deep=False)

    def set_params(self, **params: Any) -> HPMKDClassifier:
        """Set constructor arguments by name and return ``self``; nested keys such as
        ``teacher__n_estimators`` are refused."""
        nested = [key for key in params if "__" in key]
        if nested:
            raise ValueError(
                f"Invalid parameter {nested[0]!r} for estimator HPMKDClassifier: the teacher is "
                "a fitted input and is not tuned (set_params would change the user's fitted "
                f"teacher in place). Valid parameters are: {sorted(self.get_params())}."
            )
        return super().set_params(**params)

    def __sklearn_clone__(self) -> HPMKDClassifier:
        # sklearn's clone would return an unfitted copy of the teacher; a teacher is a
        # fitted input like the data, so clones share it (it is only ever read).
        params = self.get_params()
        teacher = params.pop("teacher")
        return type(self)(teacher=teacher, **{k: clone(v, safe=False) for k, v in params.items()})

    def _prediction_frame(self, X: Any) -> pd.DataFrame:
        features = self.distiller_.dataset.features
        if hasattr(self, "feature_names_in_") and _has_feature_names(X):
            return X
        frame = _as_frame(X)
        if frame.shape[1] != self.n_features_in_:
            raise HPMKDInputError(
                f"X has {frame.shape[1]} features, but HPMKDClassifier was fitted with "
                f"{self.n_features_in_}."
            )
        return frame.set_axis(features, axis=1)


class ArrayFedTeacher:
    """A teacher fitted on arrays, scored on arrays.

    The engine hands teachers DataFrames; this passes their values instead (on one
    thread, as the engine times every model).

    Parameters
    ----------
    model : object
        A fitted classifier with ``predict_proba``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def classes_(self) -> Any:
        """The wrapped model's classes (``AttributeError`` if it records none)."""
        return self.model.classes_

    @property
    def n_features_in_(self) -> int:
        """The wrapped model's feature count (``AttributeError`` if it records none)."""
        return self.model.n_features_in_

    def predict_proba(self, X: Any) -> np.ndarray:
        """The wrapped model's probabilities on ``X`` as an array."""
        return single_thread_predictor(self.model)(np.asarray(X))


def _has_feature_names(X: Any) -> bool:
    return isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns)


def _as_frame(X: Any) -> pd.DataFrame:
    """A fresh DataFrame of ``X``: named columns kept, otherwise ``x0 .. x{n-1}``."""
    if _has_feature_names(X):
        return X.reset_index(drop=True)
    if isinstance(X, pd.DataFrame):
        return X.reset_index(drop=True).set_axis([f"x{i}" for i in range(X.shape[1])], axis=1)
    values = np.asarray(X)
    if values.ndim != 2:
        raise HPMKDInputError(
            f"X must be 2-D (rows x features), got an array of shape {values.shape}; "
            "sparse matrices are not supported, convert them with .toarray()."
        )
    frame = pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])
    return frame.infer_objects() if values.dtype == object else frame


def _fed_arrays(teacher: Any, columns: list[str]) -> Any:
    """Wrap teachers fitted on arrays so they are scored on arrays."""
    if isinstance(teacher, (list, tuple)):
        return [_fed_arrays(t, columns) for t in teacher]
    if isinstance(teacher, (str, os.PathLike)):
        return teacher
    names = expected_feature_names(teacher)
    if names is not None and names != columns:
        shown = ", ".join(map(repr, names[:5])) + (" ..." if len(names) > 5 else "")
        raise HPMKDInputError(
            f"The teacher ({type(teacher).__name__}) was fitted on named columns ({shown}) "
            "but X has no column names. Pass X as a DataFrame with those columns (in a "
            "Pipeline: set_output(transform='pandas')), or use a teacher fitted on arrays."
        )
    if names is not None or not callable(getattr(teacher, "predict_proba", None)):
        return teacher
    return ArrayFedTeacher(teacher)


def _free_name(base: str, taken: Any) -> str:
    taken = {str(c) for c in taken}
    name, i = f"__{base}__", 0
    while name in taken:
        i += 1
        name = f"__{base}_{i}__"
    return name


def _as_config(config: HPMConfig | dict[str, Any] | None) -> HPMConfig:
    if config is None:
        return HPMConfig()
    if isinstance(config, HPMConfig):
        return config
    if isinstance(config, dict):
        return HPMConfig.from_dict(config)
    raise HPMKDInputError(
        f"config must be an HPMConfig, a dict of its fields or None, not {type(config).__name__}."
    )


__all__ = ["ArrayFedTeacher", "HPMKDClassifier"]
