"""Leakage: does the teacher look fitted on the rows hpmkd distills, validates and tests on?

People distill on the table their teacher was trained on. On rows it was trained on, a
teacher's probabilities sit close to the labels: its soft targets then teach a student
little beyond the labels, and every teacher-vs-student comparison is optimistic for the
teacher. Nothing in the data says which rows a teacher saw, so this module looks for the
traces such rows leave, each measured beyond sampling noise:

``in_sample_fit``
    On a stratified sample of the non-test rows, the teacher's log-loss is compared with
    the out-of-fold log-loss of a quick reference LightGBM cross-fitted on the same rows
    (:func:`reference_oof_proba`): a model that never saw a row. A teacher that did not
    see the rows either is about as good as the reference, often a little better or
    worse; one that learned them is far better (its probabilities are near one-hot on
    them). The signal fires when the lower end of the paired bootstrap interval of the
    teacher's relative log-loss gain over the reference exceeds :data:`FIT_MARGIN`, or
    when the teacher beats the reference while its probabilities are under-confident on
    the rows (:func:`calibration_slope` above :data:`SLOPE_LEVEL`): on a large table a
    500-tree model memorises little, but it still stops short of its own training
    labels, where on unseen rows a model that good is calibrated or over-confident.
``below_noise_floor``
    (Only where the table repeats rows.) Rows with identical features and identical
    teacher probabilities form cells; within a cell the spread of the labels is noise no
    model can predict. On rows it did not see, a teacher's Brier score on those rows is
    at least that noise (the spread of the labels around the cell's mean, estimated
    without bias), whatever it learned and from whatever columns; a teacher that
    learned the rows can go below it. The signal fires when the upper end of the 99%
    cell-bootstrap interval of ``Brier - noise`` is below 0. It needs many repeated rows
    (on ``us_census_fertility`` tens of thousands) and is skipped with fewer than
    :data:`MIN_CELLS` repeated cells. Labels that agree within a cell more than chance
    (copied rows, repeated measurements) only lower the floor, so they cannot make it
    fire. It catches a large, low-dimensional table where a
    500-tree model memorises too little for ``in_sample_fit``.
``validation_above_test``
    (Within a run, only when the teacher's test rows are rows it may not have seen.)
    The teacher's log-loss on the validation rows against its log-loss on the test rows,
    independent bootstrap: a teacher trained on the distiller's table but not on a
    separate test table scores far better on the first.

:func:`check_dataset` runs what needs no student (``in_sample_fit`` and
``below_noise_floor`` on the rows a run with the same seed would not test on);
:func:`check_run` adds ``validation_above_test`` with the split of a run. Both return
a frozen :class:`LeakageCheck` (plain data, ``to_dict``/``from_dict``), which says what
was measured, why it matters and the remedies: a separate test table, and
``teacher_refit="oof"`` (cross-fitted soft targets, :mod:`hpmkd.refit`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd

from hpmkd.errors import HPMKDInputError
from hpmkd.native_threads import lightgbm_threads

if TYPE_CHECKING:  # only for annotations: the check reads a dataset, it builds none
    from hpmkd.data import DistillationDataset

__all__ = [
    "FIT_MARGIN",
    "GAIN_MARGIN",
    "MIN_CELLS",
    "SLOPE_LEVEL",
    "LeakageCheck",
    "LeakageSignal",
    "calibration_slope",
    "check_dataset",
    "check_run",
    "reference_oof_proba",
]

#: ``in_sample_fit`` fires when the lower end of the 95% paired bootstrap interval of the
#: teacher's relative log-loss gain over the cross-fitted reference exceeds
#: ``FIT_MARGIN``, or when the teacher beats the reference (lower end above 0) *and* its
#: probabilities are under-confident on the rows: the lower end of the 95% interval of
#: its calibration slope exceeds ``SLOPE_LEVEL``. On rows it did not see, a model that
#: beats a reference is calibrated or over-confident (slope at or below 1); a boosted
#: model on its own training rows stops short of their labels (slope above 1). Measured
#: on the development tables (docs/BENCHMARKS.md, "Leakage").
FIT_MARGIN = 0.25
SLOPE_LEVEL = 1.05
#: ``validation_above_test`` fires when the lower end of the 95% interval of the
#: teacher's relative log-loss gain on validation over test rows exceeds this.
GAIN_MARGIN = 0.10
#: Most non-test rows the in-sample check looks at (a stratified sample); keeps it cheap.
MAX_CHECK_ROWS = 6000
#: Most non-test rows the reference is cross-fitted on (the checked rows among them): a
#: reference fitted on few rows of a large table is beaten by any teacher fitted on many.
MAX_REFERENCE_ROWS = 12000
#: Folds of the reference's cross-fitting.
REFERENCE_FOLDS = 4
#: Bootstrap resamples behind each interval.
N_BOOT = 400
#: Probabilities are clipped here before taking logs, so one confident miss of a clean
#: teacher cannot dominate a mean (its loss is at most -log(1e-4) = 9.2).
_CLIP = 1e-4
#: ``below_noise_floor`` is measured only with at least this many cells of repeated rows
#: (identical features and teacher probabilities, two rows or more): its interval is a
#: bootstrap over cells.
MIN_CELLS = 30
#: Bootstrap resamples behind the noise-floor interval (a 99% interval: its 0.5%
#: percentile needs more resamples than a 95% one).
N_BOOT_FLOOR = 1000
#: Share of rows whose largest probability is at least this counts as "near one-hot".
ONE_HOT_LEVEL = 0.99

REMEDIES = (
    "Remedies: give a separate test table the teacher never saw (--test-data, or "
    "test_data= in Python, or the test table upload in the app), so the teacher-vs-"
    "student comparison is on rows nobody trained on; and set teacher_refit=\"oof\" "
    "(--teacher-refit oof): hpmkd then refits clones of the teacher on K-1 folds of its "
    "training rows, so students learn from out-of-fold (honest) soft targets and the "
    "teacher's own scores come only from rows its clones did not train on."
)
WHY = (
    "Why it matters: on rows a teacher was trained on, its probabilities sit close to "
    "the labels, so its soft targets teach a student little beyond the labels, and "
    "every teacher-vs-student comparison on those rows is optimistic for the teacher."
)


# =========================================================================== records
@dataclass(frozen=True)
class LeakageSignal:
    """One trace of leakage, measured on one teacher.

    Attributes
    ----------
    name : str
        ``in_sample_fit``, ``below_noise_floor`` or ``validation_above_test``.
    teacher : str
        The teacher's name in the dataset.
    fired : bool
        Whether the trace is there beyond sampling noise.
    measured : str
        What was measured, in words (rows, models, statistic).
    values : mapping of str to float
        The numbers: log-losses, the relative gain and its 95% interval, KS, the share
        of near-one-hot rows, the rows used (NaN where undefined); for
        ``below_noise_floor`` the Brier score, the noise floor, their difference and its
        99% interval, the repeated rows and cells.
    text : str
        The finding in one sentence.
    """

    name: str
    teacher: str
    fired: bool
    measured: str
    values: Mapping[str, float]
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-friendly; NaN stays NaN)."""
        return {
            "name": self.name,
            "teacher": self.teacher,
            "fired": bool(self.fired),
            "measured": self.measured,
            "values": {k: float(v) for k, v in self.values.items()},
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The signal from :meth:`to_dict`'s form."""
        return cls(
            name=str(data["name"]),
            teacher=str(data["teacher"]),
            fired=bool(data["fired"]),
            measured=str(data.get("measured", "")),
            values={str(k): _float(v) for k, v in dict(data.get("values") or {}).items()},
            text=str(data.get("text", "")),
        )


@dataclass(frozen=True)
class LeakageCheck:
    """Whether the teacher(s) look fitted on the distiller's rows, and what to do.

    Attributes
    ----------
    suspected : bool
        At least one signal fired.
    signals : tuple of LeakageSignal
        Every signal measured, fired or not.
    text : str
        When suspected, three paragraphs separated by a blank line: what was seen, why
        it matters, the remedies (or that this run applied one). Otherwise that
        nothing was seen, with the numbers.
    n_rows : int
        Rows the in-sample check looked at (0 when it did not run).
    seconds : float
        Time the check took.
    teacher_refit : str
        The run's ``teacher_refit`` (``"none"`` for :func:`check_dataset`): with
        ``"oof"`` the remedy was applied and the text says so.
    """

    suspected: bool
    signals: tuple[LeakageSignal, ...] = ()
    text: str = ""
    n_rows: int = 0
    seconds: float = math.nan
    teacher_refit: str = "none"

    @property
    def fired(self) -> tuple[LeakageSignal, ...]:
        """The signals that fired."""
        return tuple(s for s in self.signals if s.fired)

    def to_dict(self) -> dict[str, Any]:
        """``summary.json["leakage"]``: plain data."""
        return {
            "suspected": bool(self.suspected),
            "signals": [s.to_dict() for s in self.signals],
            "text": self.text,
            "n_rows": int(self.n_rows),
            "seconds": float(self.seconds),
            "teacher_refit": self.teacher_refit,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The check from :meth:`to_dict`'s form."""
        return cls(
            suspected=bool(data["suspected"]),
            signals=tuple(LeakageSignal.from_dict(s) for s in data.get("signals") or ()),
            text=str(data.get("text", "")),
            n_rows=int(data.get("n_rows", 0)),
            seconds=_float(data.get("seconds", math.nan)),
            teacher_refit=str(data.get("teacher_refit", "none")),
        )


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


# =========================================================================== the checks
def check_dataset(dataset: DistillationDataset, random_state: int = 42) -> LeakageCheck:
    """Check every teacher of ``dataset`` for in-sample fit, before any run.

    Looks only at the rows a run with ``random_state`` would not test on (the separate
    test table, or the test part the dataset's split takes out), so the test rows stay
    unread. Teachers are compared with a reference LightGBM cross-fitted on a stratified
    sample of at most :data:`MAX_CHECK_ROWS` of those rows.

    Parameters
    ----------
    dataset : DistillationDataset
    random_state : int, default 42
        Seed of the split, the sample, the reference and the bootstrap.

    Returns
    -------
    LeakageCheck
    """
    start = time.perf_counter()
    if not dataset.teachers:
        return LeakageCheck(False, (), "No teacher was given, so there is nothing to check.",
                            seconds=time.perf_counter() - start)
    try:
        rows = _non_test_rows(dataset, random_state)
    except HPMKDInputError as exc:  # too few rows to split: the run will say so too
        return LeakageCheck(False, (), f"Not checked: {exc}",
                            seconds=time.perf_counter() - start)
    signals, n_rows = _row_signals(dataset, rows, random_state)
    return _finish(signals, n_rows, start, "none")


def check_run(
    dataset: DistillationDataset,
    train: np.ndarray,
    validation: np.ndarray,
    test: np.ndarray,
    random_state: int,
    teacher_refit: str = "none",
    test_is_separate: bool = False,
) -> LeakageCheck:
    """The check of a run: in-sample fit on its training and validation rows and, when
    the test rows come from a separate table, validation against test.

    Always about the teachers as given (``dataset.teacher_probas``), also when the run
    refits them (``teacher_refit="oof"``): the check says whether the remedy was needed.

    Parameters
    ----------
    dataset : DistillationDataset
    train, validation, test : ndarray of int
        The run's split (row positions).
    random_state : int
    teacher_refit : str, default "none"
        The run's setting, recorded and reflected in the text.
    test_is_separate : bool, default False
        The test rows are a separate table (``test_data``). Only then can the teacher's
        validation and test scores differ by what it saw: a test part split off the
        same table is as seen (or unseen) as the validation part.

    Returns
    -------
    LeakageCheck
    """
    start = time.perf_counter()
    if not dataset.teachers:
        return LeakageCheck(False, (), "No teacher was given, so there is nothing to check.",
                            seconds=time.perf_counter() - start, teacher_refit=teacher_refit)
    rows = np.sort(np.concatenate([train, validation]))
    signals, n_rows = _row_signals(dataset, rows, random_state)
    if test_is_separate:
        signals += [
            _validation_above_test(name, proba, dataset.y, validation, test, random_state)
            for name, proba in dataset.teacher_probas.items()
        ]
    return _finish(signals, n_rows, start, teacher_refit)


def _row_signals(
    dataset: DistillationDataset, rows: np.ndarray, random_state: int
) -> tuple[list[LeakageSignal], int]:
    """The signals read from the rows a run learns from (before a run and in one):
    in-sample fit against the cross-fitted reference, and the label-noise floor."""
    signals, n_rows = _in_sample_signals(dataset, rows, random_state)
    return signals + _noise_floor_signals(dataset, rows, random_state), n_rows


def _finish(
    signals: list[LeakageSignal], n_rows: int, start: float, teacher_refit: str
) -> LeakageCheck:
    fired = [s for s in signals if s.fired]
    if fired:
        names = sorted({s.teacher for s in fired})
        seen = (
            f"Leakage suspected: the teacher{'s' if len(names) > 1 else ''} "
            f"{', '.join(repr(n) for n in names)} look{'' if len(names) > 1 else 's'} fitted "
            "on the rows hpmkd uses. " + " ".join(s.text for s in fired)
        )
        if teacher_refit == "oof":
            after = (
                "This run used teacher_refit=\"oof\": the soft targets and the teacher's "
                "reported scores come from cross-fitted clones, not from the teacher as "
                "given. A separate test table would still make the comparison cleaner."
            )
        else:
            after = REMEDIES
        # Paragraphs: what was seen, why it matters, what to do.
        text = "\n\n".join([seen, WHY, after])
    else:
        text = "No sign that the teacher saw these rows. " + " ".join(s.text for s in signals)
    return LeakageCheck(
        suspected=bool(fired),
        signals=tuple(signals),
        text=text.strip(),
        n_rows=n_rows,
        seconds=time.perf_counter() - start,
        teacher_refit=teacher_refit,
    )


def _non_test_rows(dataset: DistillationDataset, random_state: int) -> np.ndarray:
    """Rows a run seeded ``random_state`` would not test on."""
    split = dataset.split(random_state=random_state)
    return np.sort(np.concatenate([split.train, split.validation]))


def _sample(y: np.ndarray, rows: np.ndarray, n_max: int, seed: int) -> np.ndarray:
    """A stratified sample of at most ``n_max`` of ``rows`` (all of them if fewer)."""
    if len(rows) <= n_max:
        return rows
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(rows, train_size=n_max, stratify=y[rows], random_state=seed)
    return np.sort(kept)


def _in_sample_signals(
    dataset: DistillationDataset, rows: np.ndarray, random_state: int
) -> tuple[list[LeakageSignal], int]:
    y = dataset.y
    pool = _sample(y, rows, MAX_REFERENCE_ROWS, random_state)
    sample = _sample(y, pool, MAX_CHECK_ROWS, random_state + 1)
    counts = np.bincount(y[sample], minlength=dataset.n_classes)
    if counts.min() < REFERENCE_FOLDS:
        # Too few rows of a class to cross-fit a reference: say so, fire nothing.
        return [
            LeakageSignal(
                "in_sample_fit", name, False,
                "teacher log-loss against a cross-fitted reference", {"rows": float(len(sample))},
                f"Teacher {name!r}: not checked, a class has fewer than {REFERENCE_FOLDS} rows.",
            )
            for name in dataset.teacher_probas
        ], 0
    X, cats, k = dataset.X.iloc[pool], dataset.categorical, dataset.n_classes
    at = np.searchsorted(pool, sample)
    reference = reference_oof_proba(X, y[pool], cats, k, random_state)[at]
    signals = [
        _in_sample_fit(name, proba[sample], reference, y[sample], random_state)
        for name, proba in dataset.teacher_probas.items()
    ]
    return signals, len(sample)


def reference_oof_proba(
    X: pd.DataFrame,
    y: np.ndarray,
    categorical: Sequence[str],
    n_classes: int,
    random_state: int,
    folds: int = REFERENCE_FOLDS,
    n_estimators: int = 200,
    num_leaves: int = 15,
) -> np.ndarray:
    """Out-of-fold probabilities of a quick LightGBM cross-fitted on ``X``, ``y``.

    Every row's probabilities come from a model fitted on the other folds: what a model
    that never saw the row predicts. Learning rate 0.05, on one thread; categorical
    columns as pandas categories.

    Parameters
    ----------
    X : DataFrame
        Feature columns (numeric as float, categorical raw).
    y : ndarray of int
        Class indices.
    categorical : sequence of str
        The categorical columns of ``X``.
    n_classes : int
    random_state : int
    folds : int, default :data:`REFERENCE_FOLDS`
    n_estimators, num_leaves : int
        Its capacity.

    Returns
    -------
    ndarray of shape (len(X), n_classes)
    """
    from lightgbm import LGBMClassifier
    from sklearn.model_selection import StratifiedKFold

    cats = set(categorical)
    # Plain positional names: LightGBM refuses some characters in feature names, and the
    # reference never has to match them to anything.
    X = pd.DataFrame(
        {
            f"f{i}": X[col].astype("string").astype("category") if col in cats else X[col]
            for i, col in enumerate(X.columns)
        },
        index=X.index,
    )
    out = np.zeros((len(X), n_classes))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=random_state)
    for fit, held in splitter.split(X, y):
        model = LGBMClassifier(
            n_estimators=n_estimators, num_leaves=num_leaves, learning_rate=0.05,
            min_child_samples=20,
            subsample=0.8, subsample_freq=1, colsample_bytree=0.8, n_jobs=1, verbose=-1,
            random_state=random_state,
        )
        # The run's own fits may use two LightGBM threads in this process meanwhile.
        with lightgbm_threads(1):
            model.fit(X.iloc[fit], y[fit])
            proba = model.predict_proba(X.iloc[held])
        out[np.ix_(held, model.classes_.astype(int))] = proba
    return out


def _row_loss(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row log-loss of the true class, probabilities clipped at :data:`_CLIP`."""
    picked = proba[np.arange(len(y)), y]
    return -np.log(np.clip(picked, _CLIP, 1.0))


def _ks(y: np.ndarray, proba: np.ndarray) -> float:
    from hpmkd.metrics import ks_score

    return float(ks_score(y, proba)) if len(np.unique(y)) > 1 else math.nan


def calibration_slope(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The slope ``s`` that makes ``softmax(s * log(proba))`` fit the labels best, and its
    standard error.

    For two classes this is the slope of a logistic regression of the label on the
    model's logit (no intercept). 1: the probabilities are as sharp as the labels bear
    out; below 1 over-confident; above 1 under-confident.

    Parameters
    ----------
    proba : ndarray of shape (n, n_classes)
    y : ndarray of int

    Returns
    -------
    (float, float)
        Slope and its standard error (from the curvature of the log-likelihood).
    """
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(proba, _CLIP, 1.0))
    rows = np.arange(len(y))

    def nll(slope: float) -> float:
        z = slope * logp
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, y]))

    slope = float(minimize_scalar(nll, bounds=(0.0, 20.0), method="bounded").x)
    z = slope * logp
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    mean = (q * logp).sum(axis=1)
    info = float(((q * logp**2).sum(axis=1) - mean**2).sum())
    return slope, (1.0 / math.sqrt(info) if info > 0 else math.inf)


def _in_sample_fit(
    name: str, teacher: np.ndarray, reference: np.ndarray, y: np.ndarray, seed: int
) -> LeakageSignal:
    """Teacher against the cross-fitted reference on the same rows (paired bootstrap of the
    relative log-loss gain ``1 - loss(teacher) / loss(reference)``) and the teacher's
    calibration slope on them."""
    lt, lr = _row_loss(teacher, y), _row_loss(reference, y)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(N_BOOT, len(y)))
    gains = 1.0 - lt[idx].mean(axis=1) / np.maximum(lr[idx].mean(axis=1), 1e-12)
    gain = 1.0 - lt.mean() / max(lr.mean(), 1e-12)
    low, high = (float(v) for v in np.percentile(gains, [2.5, 97.5]))
    slope, slope_se = calibration_slope(teacher, y)
    # No finite lower end when the probabilities separate the labels perfectly (the
    # likelihood keeps rising with the slope); the gain then says it all.
    slope_low = slope - 1.96 * slope_se if math.isfinite(slope_se) else math.nan
    one_hot_t = float(np.mean(teacher.max(axis=1) >= ONE_HOT_LEVEL))
    one_hot_r = float(np.mean(reference.max(axis=1) >= ONE_HOT_LEVEL))
    by_gain = low > FIT_MARGIN
    by_slope = low > 0 and bool(slope_low > SLOPE_LEVEL)
    fired = by_gain or by_slope
    values = {
        "teacher_log_loss": float(lt.mean()),
        "reference_log_loss": float(lr.mean()),
        "gain": float(gain),
        "gain_low": low,
        "gain_high": high,
        "fit_margin": FIT_MARGIN,
        "calibration_slope": slope,
        "calibration_slope_low": slope_low,
        "slope_level": SLOPE_LEVEL,
        "teacher_ks": _ks(y, teacher),
        "reference_ks": _ks(y, reference),
        "teacher_one_hot_share": one_hot_t,
        "reference_one_hot_share": one_hot_r,
        "rows": float(len(y)),
    }
    measured = (
        f"on {len(y):,} non-test rows: the teacher's log-loss against the out-of-fold "
        f"log-loss of a reference LightGBM cross-fitted on the same rows ({REFERENCE_FOLDS} "
        "folds; relative gain, 95% paired bootstrap interval), and the teacher's "
        "calibration slope there (95% interval)"
    )
    numbers = (
        f"log-loss {lt.mean():.3f} against the reference's {lr.mean():.3f} (gain "
        f"{gain:+.1%}, 95% interval [{low:+.1%}, {high:+.1%}]), calibration slope "
        + (f"{slope:.2f} (95% lower end {slope_low:.2f})" if math.isfinite(slope_low)
           else "unbounded (its probabilities separate the labels perfectly)")
        + f", KS {values['teacher_ks']:.3f} vs "
        f"{values['reference_ks']:.3f}, near one-hot rows {one_hot_t:.0%} vs {one_hot_r:.0%}"
    )
    if by_gain:
        text = (
            f"Teacher {name!r} fits {len(y):,} of these rows far better than a model that "
            f"never saw them ({numbers}; gain above {FIT_MARGIN:.0%})."
        )
    elif by_slope:
        text = (
            f"Teacher {name!r} beats a model that never saw these {len(y):,} rows while its "
            f"probabilities are under-confident on them, as on a model's own training rows "
            f"({numbers}; slope above {SLOPE_LEVEL:g})."
        )
    else:
        text = (
            f"Teacher {name!r} on {len(y):,} of these rows: {numbers}; neither a gain above "
            f"{FIT_MARGIN:.0%} nor a slope above {SLOPE_LEVEL:g} while beating the reference."
        )
    return LeakageSignal("in_sample_fit", name, fired, measured, values, text)


def _noise_floor_signals(
    dataset: DistillationDataset, rows: np.ndarray, random_state: int
) -> list[LeakageSignal]:
    """``below_noise_floor`` for every teacher whose rows repeat enough (see the module
    docstring); nothing for a teacher with fewer than :data:`MIN_CELLS` repeated cells."""
    # One hash per row of the features, computed once for every teacher: cheap (a
    # fraction of a second on 200,000 rows) so every non-test row is used, not a sample.
    # (Rows hash on their own, so the dataset's row hashes, indexed, are the same values
    # without a copy of the rows.)
    features = dataset.row_hashes()[rows]
    # Cells of (features, probabilities) split cells of features, and each repeated cell
    # holds two rows or more: with fewer than 2 * MIN_CELLS rows in repeated feature
    # cells there cannot be MIN_CELLS repeated cells, so skip the per-teacher work.
    _, counts = np.unique(features, return_counts=True)
    if int(counts[counts >= 2].sum()) < 2 * MIN_CELLS:
        return []
    y = dataset.y[rows]
    signals = []
    for name, proba in dataset.teacher_probas.items():
        signal = _below_noise_floor(name, proba[rows], y, features, random_state)
        if signal is not None:
            signals.append(signal)
    return signals


def _below_noise_floor(
    name: str, proba: np.ndarray, y: np.ndarray, features: np.ndarray, seed: int
) -> LeakageSignal | None:
    """The teacher's Brier score against the label noise of repeated rows.

    A cell is the rows with the same feature hash and the same teacher probabilities
    (rounded to 12 decimals). Conditioning on the probabilities too keeps the test
    valid for a teacher that used columns hpmkd does not have: within a cell its
    probabilities are one value ``f``, and on unseen rows ``E[(y - f)^2] >=
    Var(y | cell)``. Per cell of ``m`` rows with label means ``ybar_k``, ``m^2 / (m - 1)
    * sum_k ybar_k (1 - ybar_k)`` is an unbiased estimate of the summed noise.
    """
    n, k = proba.shape
    key = pd.DataFrame({"x": features})
    for j in range(k):
        key[f"p{j}"] = np.round(proba[:, j], 12)
    cell = key.groupby(list(key.columns), sort=False).ngroup().to_numpy()
    sizes = np.bincount(cell)
    keep = sizes[cell] >= 2
    if int(np.sum(sizes >= 2)) < MIN_CELLS:
        return None
    cell, proba, y = cell[keep], proba[keep], y[keep]
    _, cell = np.unique(cell, return_inverse=True)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(y)), y] = 1.0
    brier = ((onehot - proba) ** 2).sum(axis=1)
    m = np.bincount(cell).astype(float)
    means = np.stack([np.bincount(cell, weights=onehot[:, j]) for j in range(k)], axis=1)
    means /= m[:, None]
    noise = m * m / (m - 1.0) * (means * (1.0 - means)).sum(axis=1)  # per cell, summed
    excess = np.bincount(cell, weights=brier) - noise  # per cell, summed over its rows
    rng = np.random.default_rng(seed + 2)
    # Resamples in chunks of at most ~4 million indices: a large table can have hundreds
    # of thousands of cells, and 1,000 x that at once would not fit in memory.
    chunk = max(1, 4_000_000 // len(m))
    boot = np.empty(N_BOOT_FLOOR)
    for at in range(0, N_BOOT_FLOOR, chunk):
        idx = rng.integers(0, len(m), size=(min(chunk, N_BOOT_FLOOR - at), len(m)))
        boot[at:at + len(idx)] = excess[idx].sum(axis=1) / m[idx].sum(axis=1)
    low, high = (float(v) for v in np.percentile(boot, [0.5, 99.5]))
    value = float(excess.sum() / m.sum())
    fired = high < 0.0
    values = {
        "brier": float(brier.mean()),
        "noise_floor": float(noise.sum() / m.sum()),
        "excess": value,
        "excess_low": low,
        "excess_high": high,
        "repeated_rows": float(m.sum()),
        "cells": float(len(m)),
        "rows": float(n),
    }
    measured = (
        f"on {int(m.sum()):,} of {n:,} non-test rows that repeat (same features and same "
        f"teacher probabilities; {len(m):,} cells): the teacher's Brier score against the "
        "label noise within the cells (unbiased estimate), 99% bootstrap interval over cells"
    )
    numbers = (
        f"Brier {values['brier']:.4f} against a noise floor of {values['noise_floor']:.4f} "
        f"(difference {value:+.4f}, 99% interval [{low:+.4f}, {high:+.4f}]) on "
        f"{int(m.sum()):,} repeated rows in {len(m):,} cells"
    )
    if fired:
        text = (
            f"Teacher {name!r} predicts rows that repeat better than the noise among their "
            f"labels allows for rows a model did not see ({numbers})."
        )
    else:
        text = f"Teacher {name!r} stays above the label noise of repeated rows ({numbers})."
    return LeakageSignal("below_noise_floor", name, fired, measured, values, text)


#: Resampled values held at once by :func:`_bootstrap_means` (about 32 MB of indices).
BOOT_CHUNK_CELLS = 4_000_000


def _bootstrap_means(
    values: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``values``, drawn from ``rng``.

    The same numbers as ``values[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)``
    (the generator draws the index rows in the same order, chunk after chunk), without
    holding every resample at once: 400 resamples of 200,000 test rows were 640 MB of
    indices and as much again of values.
    """
    n = len(values)
    out = np.empty(n_boot)
    step = max(1, BOOT_CHUNK_CELLS // max(n, 1))
    for start in range(0, n_boot, step):
        size = min(step, n_boot - start)
        out[start : start + size] = values[rng.integers(0, n, size=(size, n))].mean(axis=1)
    return out


def _validation_above_test(
    name: str,
    proba: np.ndarray,
    y: np.ndarray,
    validation: np.ndarray,
    test: np.ndarray,
    seed: int,
) -> LeakageSignal:
    """The teacher's log-loss on validation against test rows, independent bootstrap of
    ``1 - loss(validation) / loss(test)``."""
    lv, lt = _row_loss(proba[validation], y[validation]), _row_loss(proba[test], y[test])
    rng = np.random.default_rng(seed + 1)
    bv = _bootstrap_means(lv, N_BOOT, rng)
    bt = _bootstrap_means(lt, N_BOOT, rng)
    gains = 1.0 - bv / np.maximum(bt, 1e-12)
    gain = 1.0 - lv.mean() / max(lt.mean(), 1e-12)
    low, high = (float(v) for v in np.percentile(gains, [2.5, 97.5]))
    fired = low > GAIN_MARGIN
    ks_v, ks_t = _ks(y[validation], proba[validation]), _ks(y[test], proba[test])
    values = {
        "validation_log_loss": float(lv.mean()),
        "test_log_loss": float(lt.mean()),
        "gain": float(gain),
        "gain_low": low,
        "gain_high": high,
        "margin": GAIN_MARGIN,
        "validation_ks": ks_v,
        "test_ks": ks_t,
        "validation_rows": float(len(lv)),
        "test_rows": float(len(lt)),
    }
    measured = (
        f"log-loss of the teacher on {len(lv):,} validation rows against {len(lt):,} rows "
        "of the separate test table, relative gain with a 95% independent bootstrap interval"
    )
    numbers = (
        f"validation log-loss {lv.mean():.3f} against test {lt.mean():.3f} (gain {gain:+.0%}, "
        f"95% interval [{low:+.0%}, {high:+.0%}]; KS {ks_v:.3f} vs {ks_t:.3f})"
    )
    if fired:
        text = (
            f"Teacher {name!r} scores far better on the validation rows than on the separate "
            f"test table: {numbers}, as a teacher trained on the distiller's table but not "
            "on the test table would."
        )
    else:
        text = f"Teacher {name!r} scores alike on validation and test rows: {numbers}."
    return LeakageSignal("validation_above_test", name, fired, measured, values, text)

