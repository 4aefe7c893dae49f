"""Train one candidate and score it: the single place where a student meets the data.

``TrainingContext`` holds the training and validation rows and the soft-target source;
``train_candidate`` is a pure function of it and a :class:`~hpmkd.students.StudentSpec`,
so the same code runs sequentially, in joblib workers and on Dask workers.

The test rows are not in the context: a candidate is fitted on the training rows,
calibrated and scored on the validation rows, and only the compare phase reads the test
rows, once, for the selected student, the teachers and the twin (:func:`score_on_test`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from hpmkd.metrics import compute_metrics, latency_ms_1k, single_thread_predictor, size_bytes
from hpmkd.native_threads import one_thread
from hpmkd.stop import abandonable
from hpmkd.students import (
    N_MEMBERS,
    RecentByFrames,
    StudentSpec,
    _prep_key,
    build_student,
    fit_on_soft_targets,
    fit_seed_average,
    proba_in_class_order,
    soft_targets,
)


@dataclass
class TrainingContext:
    """Everything a candidate needs: training and validation rows (never test rows).

    ``teacher_train`` are the probabilities students learn from (one teacher, a mean, or
    the attention-fused target); ``reference_val`` are the probabilities agreement
    metrics (fidelity, KL) are measured against: the primary teacher.
    """

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray
    teacher_train: np.ndarray
    reference_val: np.ndarray
    classes: list[Any]
    numeric: list[str]
    categorical: list[str]
    seed: int = 42
    n_threads: int = 1


@dataclass(frozen=True)
class TestRows:
    """The test rows, read once by the compare phase.

    ``reference`` are the primary teacher's probabilities on them (agreement metrics).
    """

    X: pd.DataFrame
    y: np.ndarray
    reference: np.ndarray
    classes: list[Any]


#: ``test`` of a candidate that was not scored on the test rows.
NOT_ON_TEST = (
    "not scored on the test rows: they are read once, for the selected student, the "
    "teacher(s) and the twin; rank candidates by their validation figures"
)


@dataclass
class CandidateResult:
    """A trained, scored model. ``model`` is the fitted student (not plain data).

    Teachers are scored into the same record; ``teacher_name`` is then the teacher's name
    in the dataset (``None`` for students).
    """

    name: str
    source: str
    spec: StudentSpec | None
    val: dict[str, Any]
    fit_seconds: float
    size_bytes: int
    latency_ms_1k: float
    val_proba: np.ndarray
    model: Any = None
    test: dict[str, Any] = field(default_factory=lambda: {"undefined": {"all": NOT_ON_TEST}})
    test_proba: np.ndarray | None = None
    from_cache: bool = False
    train_rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    teacher_name: str | None = None


def train_candidate(
    spec: StudentSpec,
    ctx: TrainingContext,
    source: str = "config",
    name: str | None = None,
    teacher_train: np.ndarray | None = None,
    full: bool = True,
    first_member: Any = None,
    refit_of: Any = None,
) -> CandidateResult:
    """Fit ``spec`` on the soft targets of the training rows, calibrate it on the
    validation rows and score it there.

    Parameters
    ----------
    spec : StudentSpec
    ctx : TrainingContext
    source : str
        ``config``, ``grid``, ``chain``, ``baseline`` ... (recorded in the results).
    name : str, optional
        Candidate name; default ``spec.label()``.
    teacher_train : ndarray, optional
        Probabilities to learn from instead of ``ctx.teacher_train`` (the chain passes
        a mix of the teacher and the previous stage).
    full : bool
        ``False`` (screening) skips calibration, size and latency: a screening fit is
        only ranked by a validation metric that calibration does not change.
    first_member : Pipeline, optional
        For a seed average (``spec.params["n_members"]``): its first copy, already
        fitted (see :func:`~hpmkd.students.fit_seed_average`).
    refit_of : estimator, optional
        The final fit on training + validation rows (:mod:`hpmkd.engine.final_fit`):
        ``ctx``'s training rows include its validation rows, so the new fit is not
        calibrated there (they are not held out any more) but takes the temperature
        that :func:`calibrate` fitted for ``refit_of``, the same configuration fitted on
        the training rows alone (see :func:`with_calibration_of`). Its validation
        figures are in-sample; the engine keeps ``refit_of``'s.

    Notes
    -----
    During a run the fit is :func:`~hpmkd.stop.abandonable`: a stop returns at once even
    from a fit that has no stop check of its own (logistic regression, decision tree,
    the encoding and calibration steps); the abandoned fit's result is discarded.
    """
    return abandonable(
        _train_candidate, spec, ctx, source, name, teacher_train, full, first_member, refit_of
    )


def _train_candidate(
    spec: StudentSpec,
    ctx: TrainingContext,
    source: str,
    name: str | None,
    teacher_train: np.ndarray | None,
    full: bool,
    first_member: Any = None,
    refit_of: Any = None,
) -> CandidateResult:
    source_proba = ctx.teacher_train if teacher_train is None else teacher_train
    targets = soft_targets(source_proba, ctx.y_train, spec.temperature, spec.alpha)
    start = time.perf_counter()
    if spec.params.get(N_MEMBERS, 1) > 1:
        model = fit_seed_average(
            spec.family, spec.params, ctx.numeric, ctx.categorical, ctx.seed, ctx.X_train,
            targets, ctx.classes, ctx.n_threads, first=first_member,
        )
    else:
        model = build_student(
            spec.family, spec.params, ctx.numeric, ctx.categorical, ctx.seed, ctx.n_threads
        )
        fit_on_soft_targets(model, ctx.X_train, targets, ctx.classes)
    shared = _shared_val_rows(model, ctx)
    if refit_of is not None:
        model, val_proba = with_calibration_of(model, refit_of), None
    elif full:
        model, val_proba = calibrate_and_predict(model, ctx, shared)
    elif shared is not None:
        final, encoded = shared
        val_proba = proba_in_class_order(final, encoded, ctx.classes)
    else:
        val_proba = None
    fit_seconds = time.perf_counter() - start
    return score_model(
        model, ctx, name or spec.label(), source, spec, fit_seconds, full=full,
        val_proba=val_proba,
    )


# The validation rows as the students' shared preprocessing encodes them: (training
# frame, validation frame, what the preprocessing is, the encoded rows). Every student
# pipeline fitted on the same training rows has an equal copy of the same fitted
# preprocessing (hpmkd.students.encode_rows), so its validation rows are encoded once per
# kind, not once per candidate (on nyc_flights_delay the text columns' encoding took a
# tenth of the run, a third of it on the validation rows). Two kinds alternate (ordinal
# codes; one-hot and scaling), hence two entries.
_VAL_ENCODINGS = RecentByFrames(n_frames=2, keep=2)
_VAL_ENCODED = _VAL_ENCODINGS.entries


def _shared_val_rows(model: Any, ctx: TrainingContext) -> tuple[Any, np.ndarray] | None:
    """The final step of ``model``, a student pipeline just fitted on ``ctx.X_train`` by
    :func:`~hpmkd.students.fit_on_soft_targets`, and ``ctx.X_val`` encoded by its
    preprocessing: ``final.predict_proba(encoded)`` is ``model.predict_proba(ctx.X_val)``.
    ``None`` for any other shape of model."""
    from sklearn.compose import ColumnTransformer

    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2 or not isinstance(steps[0][1], ColumnTransformer):
        return None
    prep, final = steps[0][1], steps[1][1]
    frames, key = (ctx.X_train, ctx.X_val), _prep_key(prep)
    kept = _VAL_ENCODINGS.get(frames, key)
    if kept is not None:
        return final, kept[0]
    encoded = prep.transform(ctx.X_val)
    if not isinstance(encoded, np.ndarray):
        return None
    _VAL_ENCODINGS.put(frames, key, encoded)
    return final, encoded


def calibrate(model: Any, ctx: TrainingContext) -> Any:
    """``model`` with its probabilities calibrated on the validation rows.

    A student fitted at temperature T > 1 (or to a mix of soft targets and labels) learned
    flattened probabilities; temperature scaling, one scalar on the log-probabilities
    fitted by log-loss on rows no candidate trained on, undoes that. It keeps the
    arg-max class and the order of the rows' scores, so accuracy, F1 and binary KS/AUC
    are unchanged, while ECE, Brier and KL improve. The result is a plain scikit-learn
    ``CalibratedClassifierCV`` around the frozen student (it loads without hpmkd).

    A model that did not see every class (a class with no weight in its targets) is
    returned as it is: the calibrator needs the same classes as the labels.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    if [str(c) for c in model.classes_] != [str(c) for c in ctx.classes]:
        return model
    present = np.unique(ctx.y_val)
    if len(present) != len(ctx.classes):
        return model
    # The student's classes are ctx.classes in the same order (checked above).
    labels = np.asarray(model.classes_)[ctx.y_val]
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method="temperature")
    with one_thread():
        calibrated.fit(ctx.X_val, labels)
    return calibrated


def calibrate_and_predict(
    model: Any, ctx: TrainingContext, shared: tuple[Any, np.ndarray] | None = None
) -> tuple[Any, np.ndarray]:
    """:func:`calibrate` and the calibrated model's validation probabilities (class
    order), from a single prediction of the validation rows.

    ``CalibratedClassifierCV.fit`` predicts the validation rows (in five folds) to fit the
    temperature, and scoring the calibrated model predicted them once more. Here the
    student's response on those rows is computed once and both the temperature and the
    calibrated probabilities come from it, through the same scikit-learn steps that
    ``fit`` and ``predict_proba`` take; the returned model is the same plain
    ``CalibratedClassifierCV`` (``tests/test_same_numbers.py`` checks both against
    scikit-learn's own ``fit``/``predict_proba``). Falls back to :func:`calibrate` and a
    prediction wherever those steps do not apply as assumed. ``shared``: the model's
    final step and the validation rows already encoded by its preprocessing
    (:func:`_shared_val_rows`), so they are not encoded again.
    """
    from sklearn.calibration import CalibratedClassifierCV, _fit_calibrator
    from sklearn.frozen import FrozenEstimator
    from sklearn.utils._array_api import get_namespace_and_device
    from sklearn.utils._response import _get_response_values

    def fallback() -> tuple[Any, np.ndarray]:
        fitted = calibrate(model, ctx)
        return fitted, proba_in_class_order(fitted, ctx.X_val, ctx.classes)

    if [str(c) for c in model.classes_] != [str(c) for c in ctx.classes]:
        return fallback()
    classes = np.asarray(model.classes_)
    # fit() label-encodes (sorted classes) and reads a binary model's positive column
    # as its classes_[1]: the shortcut needs the model's classes in that order already.
    if len(np.unique(ctx.y_val)) != len(classes) or not np.array_equal(
        np.sort(classes), classes
    ) or classes.dtype.kind not in "biuf":
        return fallback()
    labels = classes[ctx.y_val]
    frozen = FrozenEstimator(model)
    calibrated = CalibratedClassifierCV(frozen, method="temperature")
    xp, _, _ = get_namespace_and_device(ctx.X_val)
    # With ``shared`` (see _shared_val_rows), the final step's response on the encoded
    # validation rows: the pipeline's own response, without encoding them again.
    responder, rows = (frozen, ctx.X_val) if shared is None else shared
    with one_thread():
        raw, _, used = _get_response_values(
            responder,
            rows,
            response_method=["decision_function", "predict_proba"],
            return_response_method_used=True,
        )
    raw = np.asarray(raw)
    if raw.ndim == 1:
        raw = raw.reshape(-1, 1)  # binary: one column, as fit() and predict_proba() shape it
    pipeline = _fit_calibrator(frozen, raw, labels, classes, "temperature", xp=xp)
    _set_fitted(calibrated, frozen, classes, pipeline)
    # _CalibratedClassifier.predict_proba, temperature branch, on the same response.
    predictions = raw
    if len(classes) == 2 and raw.shape[-1] == 1 and used == "predict_proba":
        predictions = np.concatenate([1 - raw, raw], axis=1)
    proba = np.asarray(pipeline.calibrators[0].predict(predictions), dtype=float)
    proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
    return calibrated, proba


def with_calibration_of(model: Any, calibrated: Any) -> Any:
    """``model`` wrapped in the calibration :func:`calibrate` fitted for ``calibrated``
    (``model`` as it is when ``calibrated`` is not a calibrated model).

    The final fit on training + validation rows cannot be calibrated on the validation
    rows (it trained on them). What calibration undoes is how the training target
    flattened the probabilities (temperature T, the mix with the labels): the same for
    the same configuration fitted on more rows of the same table, so the temperature
    fitted on held-out rows for the train-only fit is kept. The result is the same plain
    scikit-learn ``CalibratedClassifierCV`` as :func:`calibrate` returns.
    """
    from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier
    from sklearn.frozen import FrozenEstimator

    if type(calibrated).__name__ != "CalibratedClassifierCV":
        return model
    (fitted,) = calibrated.calibrated_classifiers_
    if [str(c) for c in model.classes_] != [str(c) for c in calibrated.classes_]:
        return model
    frozen = FrozenEstimator(model)
    out = CalibratedClassifierCV(frozen, method=calibrated.method)
    pipeline = _CalibratedClassifier(
        frozen, fitted.calibrators, classes=fitted.classes, method=fitted.method
    )
    return _set_fitted(out, frozen, calibrated.classes_, pipeline)


def _set_fitted(calibrated: Any, frozen: Any, classes: np.ndarray, pipeline: Any) -> Any:
    """``calibrated`` (an unfitted ``CalibratedClassifierCV`` around ``frozen``) given the
    fitted state ``fit`` would leave: its classes, the one calibrated classifier
    ``pipeline`` and the frozen student's input facts."""
    calibrated.classes_ = classes
    calibrated.calibrated_classifiers_ = [pipeline]
    for attribute in ("n_features_in_", "feature_names_in_"):
        if hasattr(frozen, attribute):
            setattr(calibrated, attribute, getattr(frozen, attribute))
    return calibrated


def uncalibrated(model: Any) -> Any:
    """The fitted student inside a model :func:`calibrate` wrapped (else ``model``)."""
    frozen = getattr(model, "estimator", None)
    if type(model).__name__ == "CalibratedClassifierCV" and frozen is not None:
        return getattr(frozen, "estimator", frozen)
    return model


def score_model(
    model: Any,
    ctx: TrainingContext,
    name: str,
    source: str,
    spec: StudentSpec | None,
    fit_seconds: float,
    full: bool = True,
    val_proba: np.ndarray | None = None,
) -> CandidateResult:
    """Validation metrics, size and latency (timed on validation rows) of a fitted model.

    With ``full=False`` only validation metrics are computed. ``val_proba``: the model's
    validation probabilities when already known (else predicted here).
    """
    if val_proba is None:
        val_proba = proba_in_class_order(model, ctx.X_val, ctx.classes)
    if full:
        size, latency = size_bytes(model), latency_ms_1k(single_thread_predictor(model), ctx.X_val)
    else:
        size, latency = -1, float("nan")
    return CandidateResult(
        name=name,
        source=source,
        spec=spec,
        val=compute_metrics(ctx.y_val, val_proba, ctx.reference_val),
        fit_seconds=fit_seconds,
        size_bytes=size,
        latency_ms_1k=latency,
        val_proba=val_proba,
        model=model,
        train_rows=len(ctx.y_train),
    )


def score_on_test(result: CandidateResult, rows: TestRows) -> CandidateResult:
    """``result`` with its test metrics, from its model's predictions on the test rows.

    Parameters
    ----------
    result : CandidateResult
        A trained student (with ``model``).
    rows : TestRows
    """
    proba = proba_in_class_order(result.model, rows.X, rows.classes)
    return replace(
        result, test=compute_metrics(rows.y, proba, rows.reference), test_proba=proba
    )


def subsample_context(
    ctx: TrainingContext, rows: int, seed: int, validation: bool = True
) -> TrainingContext:
    """A context with a stratified, seeded subsample of at most ``rows`` training rows
    (and validation rows too when ``validation``)."""

    def pick(y: np.ndarray) -> np.ndarray:
        if len(y) <= rows:
            return np.arange(len(y))
        rng = np.random.default_rng(seed)
        parts = []
        for k in np.unique(y):
            idx = np.flatnonzero(y == k)
            take = max(2, round(rows * len(idx) / len(y)))
            parts.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
        return np.sort(np.concatenate(parts))

    tr = pick(ctx.y_train)
    out = replace(
        ctx,
        X_train=ctx.X_train.iloc[tr],
        y_train=ctx.y_train[tr],
        teacher_train=ctx.teacher_train[tr],
    )
    if validation:
        va = pick(ctx.y_val)
        out = replace(
            out,
            X_val=ctx.X_val.iloc[va],
            y_val=ctx.y_val[va],
            reference_val=ctx.reference_val[va],
        )
    return out
