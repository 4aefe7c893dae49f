"""Student families and training on the teacher's soft targets.

A student is a plain scikit-learn ``Pipeline`` (preprocessing + classifier) built only from
scikit-learn and LightGBM classes, so a saved student loads and predicts where hpmkd is not
installed. It is trained on soft targets by duplicating each training row once per class
with ``sample_weight`` equal to that class's target probability; minimising the weighted
log-loss of these rows is minimising the cross-entropy to the soft targets, for every
family alike. MLP students minimise the same cross-entropy on the rows themselves, each
with its class distribution as target (scikit-learn's MLP loss and gradient take a
probability target; see :func:`_fit_mlp_soft`): half the rows to pass over (binary).
Two-class LightGBM students learn the same from the rows themselves too, through
LightGBM's ``cross_entropy`` objective (:func:`_fit_lgbm_cross_entropy`).

Soft target of a row: ``alpha * softmax(log(p_teacher) / T) + (1 - alpha) * onehot(y)``.
``alpha = 1`` learns only from the teacher, ``alpha = 0`` only from the labels (the
hard-label baseline); ``T > 1`` flattens the teacher's probabilities.
"""

from __future__ import annotations

import copy
import itertools
import warnings
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from hpmkd.fast_relu import fast_relu_derivative
from hpmkd.native_threads import lightgbm_threads, one_thread
from hpmkd.stop import abandoned, check_stop

CAPACITIES = ("small", "medium", "large")

# Capacity levels per family: the "size" of a student. Trials vary the other knobs.
_CAPACITY_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "logreg": {
        "small": {"C": 0.05},
        "medium": {"C": 0.5},
        "large": {"C": 5.0},
    },
    "tree": {
        "small": {"max_depth": 3},
        "medium": {"max_depth": 5},
        "large": {"max_depth": 8},
    },
    # Students must stay small: the large LightGBM (45 trees x 31 leaves) is about a
    # tenth of a default 500-tree teacher.
    "lgbm": {
        "small": {"n_estimators": 20, "num_leaves": 7},
        "medium": {"n_estimators": 40, "num_leaves": 15},
        "large": {"n_estimators": 45, "num_leaves": 31},
    },
    # One hidden layer: a few thousand weights, far below a tree ensemble's size.
    "mlp": {
        "small": {"hidden_layer_sizes": (16,)},
        "medium": {"hidden_layer_sizes": (32,)},
        "large": {"hidden_layer_sizes": (64,)},
    },
}

# Capacities beyond "large", climbed one at a time only while the best student is still
# clearly below the teacher on validation (hpmkd.engine.climb): "xl1", "xl2" ... Each rung
# is about 1.5 times the size of the one below (trees x leaves, hidden units), so the
# climb can stop close under a size cap relative to the teacher: with 2x rungs, the first
# rung above large on nyc_flights_delay was already 2.5% over the default 5x cap.
CLIMB_PREFIX = "xl"
MAX_CLIMB_STEPS = 8
CLIMB_GROWTH = 1.5


def climb_capacity(step: int) -> str:
    """Name of climbed rung ``step`` (1 = the first rung above ``large``)."""
    if not 1 <= step <= MAX_CLIMB_STEPS:
        raise ValueError(f"climb step {step} is outside 1..{MAX_CLIMB_STEPS}")
    return f"{CLIMB_PREFIX}{step}"


def climb_step(capacity: str) -> int:
    """Rung of ``capacity`` above ``large``: 0 for the screened capacities, else its step."""
    if capacity in CAPACITIES:
        return 0
    text = capacity.removeprefix(CLIMB_PREFIX)
    if capacity.startswith(CLIMB_PREFIX) and text.isdigit():
        step = int(text)
        if 1 <= step <= MAX_CLIMB_STEPS:
            return step
    raise ValueError(
        f"unknown capacity {capacity!r}: use one of {', '.join(CAPACITIES)} or a climbed "
        f"rung {CLIMB_PREFIX}1..{CLIMB_PREFIX}{MAX_CLIMB_STEPS}"
    )


def capacity_params(family: str, capacity: str) -> dict[str, Any]:
    """The classifier parameters that make ``capacity`` of ``family``.

    Climbed rungs grow from ``large`` by about :data:`CLIMB_GROWTH` each: LightGBM grows
    its leaves per tree on odd steps and its trees on even steps (45 x 47, 68 x 47,
    68 x 71 ...), the MLP its hidden units (96, 144 ...), the tree one level deeper per
    step, logistic regression is regularised ten times less per step.
    """
    if family not in _CAPACITY_PARAMS:
        raise ValueError(f"unknown student family {family!r}")
    step = climb_step(capacity)
    params = dict(_CAPACITY_PARAMS[family][capacity if step == 0 else "large"])
    if step == 0:
        return params
    if family == "lgbm":
        # Alternate: more leaves per tree first, then more trees; both multiply the
        # number of leaves, hence about the size. Leaves first: at the same size, fewer
        # and deeper trees scored higher on validation (nyc_flights_delay, hard labels:
        # 45 x 47 0.4247 vs 68 x 31 0.4226; at about 2,650 leaves 21 x 127 0.4358,
        # 42 x 63 0.4288, 85 x 31 0.4252; docs/HPM.md, "The capacity climb").
        leaves, trees = CLIMB_GROWTH ** ((step + 1) // 2), CLIMB_GROWTH ** (step // 2)
        params["num_leaves"] = round((params["num_leaves"] + 1) * leaves) - 1
        params["n_estimators"] = round(params["n_estimators"] * trees)
    elif family == "mlp":
        params["hidden_layer_sizes"] = (
            round(params["hidden_layer_sizes"][0] * CLIMB_GROWTH**step),
        )
    elif family == "tree":
        params["max_depth"] = params["max_depth"] + step
    else:
        params["C"] = params["C"] * 10.0**step
    return params


#: Parameter of a student that is the mean of several copies of one configuration which
#: differ only in their random seed (:func:`fit_seed_average`); absent means one copy.
N_MEMBERS = "n_members"


# Values trials draw from (trial 0 always takes the first, the family's default).
_TRIAL_SPACE: dict[str, dict[str, list[Any]]] = {
    # Scales stay within a capacity's band (capacities are 10x apart), so a trial of one
    # capacity never repeats another capacity's model.
    "logreg": {"C_scale": [1.0, 0.5, 2.0, 0.7, 1.4]},
    "tree": {"min_samples_leaf_share": [0.002, 0.01, 0.0005, 0.005]},
    "lgbm": {
        "learning_rate": [0.2, 0.3, 0.15],
        "min_child_samples": [20, 10, 40],
        "colsample_bytree": [1.0, 0.8, 0.6],
    },
    "mlp": {"learning_rate_init": [0.005, 0.01, 0.002], "alpha": [1e-4, 1e-3]},
}

# MLP epochs shrink with the training rows so a fit costs about the same number of
# sample passes whatever the data size. The budget is compared with half and double on
# validation rows only (bench/defaults.py; docs/HPM.md, "Why these defaults"). It was set
# when soft targets duplicated every row (two weighted copies per row, binary), and it
# still counts those copies: a row with its class distribution stands for its copies, so
# the epochs are the same and a batch of _MLP_BATCH_ROWS rows is the former batch of
# 1,024 copies. The fits take as many gradient steps as before on half the rows' work;
# on validation (out-of-fold) that kept or raised the KS where half the steps (batches
# of 1,024 rows) lost on case b (docs/BENCHMARKS.md section 8, "MLP soft targets").
_MLP_SAMPLE_PASSES = 500_000
_MLP_EPOCHS = (10, 40)
_MLP_BATCH_ROWS = 512


@dataclass(frozen=True)
class StudentSpec:
    """What to train: family, capacity, hyper-parameters, temperature and alpha.

    ``params`` holds the classifier's hyper-parameters (already resolved for the trial).
    """

    family: str
    capacity: str
    temperature: float
    alpha: float
    trial: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple:
        """A hashable identity used for de-duplication and cache keys."""
        return (
            self.family,
            self.capacity,
            round(self.temperature, 6),
            round(self.alpha, 6),
            tuple(sorted(self.params.items())),
        )

    def label(self) -> str:
        """A short human-readable name."""
        t, a = f"{self.temperature:g}", f"{self.alpha:g}"
        members = self.params.get(N_MEMBERS, 1)
        average = f" x{members} seeds" if members > 1 else ""
        return f"{self.family}-{self.capacity}{average} T={t} a={a} #{self.trial}"


def trial_params(family: str, capacity: str, trial: int, n_rows: int, seed: int) -> dict:
    """Resolve the classifier hyper-parameters of ``trial`` (0 = the family default).

    Later trials walk a seeded shuffle of the other combinations of the family's trial
    space, so trials of one configuration are distinct until the space is exhausted.
    """
    params = capacity_params(family, capacity)
    space = _TRIAL_SPACE[family]
    names = list(space)
    combos = list(itertools.product(*(space[n] for n in names)))
    default, rest = combos[0], combos[1:]
    order = np.random.default_rng([seed, len(family), len(capacity)]).permutation(len(rest))
    walk = [default] + [rest[i] for i in order]
    chosen = dict(zip(names, walk[trial % len(walk)], strict=True))
    if family == "logreg":
        params["C"] = float(params["C"] * chosen["C_scale"])
    elif family == "tree":
        params["min_samples_leaf"] = max(1, round(chosen["min_samples_leaf_share"] * n_rows))
    elif family == "mlp":
        params.update(chosen)
        epochs = _MLP_SAMPLE_PASSES // max(2 * n_rows, 1)
        params["max_iter"] = int(min(max(epochs, _MLP_EPOCHS[0]), _MLP_EPOCHS[1]))
        # Two steps per epoch below 1,024 rows, as the former 1,024-copy batches gave.
        params["batch_size"] = int(min(_MLP_BATCH_ROWS, max((n_rows + 1) // 2, 1)))
    else:
        params.update(chosen)
    return params


#: Classifier parameters that make a student's size (its shape), per family: a sibling
#: trial of a student keeps them (:func:`sibling_trial_params`). Logistic regression has
#: none: its trials scale ``C``, which is also its capacity.
SHAPE_KEYS: dict[str, tuple[str, ...]] = {
    "lgbm": ("n_estimators", "num_leaves"),
    # A seed average's twin is a seed average of as many members (same size).
    "mlp": ("hidden_layer_sizes", N_MEMBERS),
    "tree": ("max_depth",),
    "logreg": (),
}


def sibling_trial_params(spec: StudentSpec, trial: int, n_rows: int, seed: int) -> dict:
    """The parameters of ``trial`` for a student shaped like ``spec``.

    :func:`trial_params` of the spec's family and capacity, with the spec's own shape
    (:data:`SHAPE_KEYS`): a student trained at the size cap has a shape of its own
    (:mod:`hpmkd.engine.climb`), and its other trials (the hard-label twin's tuning
    budget) must be the same size, not the named rung's.
    """
    if trial == spec.trial:
        return dict(spec.params)
    params = trial_params(spec.family, spec.capacity, trial, n_rows, seed)
    params.update({k: spec.params[k] for k in SHAPE_KEYS[spec.family] if k in spec.params})
    return params


def soften(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-softened probabilities: ``softmax(log(p) / T)``."""
    logits = np.log(np.clip(proba, 1e-12, 1.0)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def soft_targets(
    teacher_proba: np.ndarray, y: np.ndarray, temperature: float, alpha: float
) -> np.ndarray:
    """Mix of the softened teacher probabilities (weight ``alpha``) and the one-hot labels."""
    n_classes = teacher_proba.shape[1]
    onehot = np.eye(n_classes)[y]
    if alpha == 0:
        return onehot
    return alpha * soften(teacher_proba, temperature) + (1.0 - alpha) * onehot


#: Rows LightGBM students sample to find their feature bins (LightGBM's default: 200,000).
#: Binning was about 0.4 CPU s per student on nyc_flights_delay's 209,000 duplicated
#: soft-target rows; 50,000 rows still give each of the 255 bins about 200 samples, and
#: saved 0.16 of 1.55 CPU s per 45 x 31 fit there (docs/BENCHMARKS.md section 8,
#: "Binning on fewer rows", for the validation figures that justify it).
LGBM_BIN_SAMPLE = 50_000


def build_student(
    family: str,
    params: dict[str, Any],
    numeric: list[str],
    categorical: list[str],
    seed: int,
    n_threads: int = 1,
) -> Pipeline:
    """An unfitted student pipeline for the given columns.

    ``n_threads`` applies to LightGBM; it must be 1 inside any outer parallelism.
    """
    if family in ("logreg", "mlp"):
        if family == "logreg":
            clf: Any = LogisticRegression(C=params["C"], max_iter=500, random_state=seed)
        else:
            if N_MEMBERS in params:
                raise ValueError(
                    "a seed-averaged student is fitted by fit_seed_average, not built here"
                )
            clf = MLPClassifier(
                random_state=seed,
                # Rows are shuffled once before fitting (fit_on_soft_targets): sklearn's
                # per-batch fancy indexing took a third of the fit time.
                shuffle=False,
                **{**params, "hidden_layer_sizes": tuple(params["hidden_layer_sizes"])},
            )
        numeric_steps: list[tuple[str, Any]] = [
            # The mean, not the median: the median cost 0.2 s per fit on 25k x 60 rows.
            ("impute", SimpleImputer(strategy="mean")),
            ("scale", StandardScaler()),
        ]
        categorical_step: Any = OneHotEncoder(
            handle_unknown="ignore", max_categories=30, sparse_output=False
        )
    elif family in ("tree", "lgbm"):
        # Both split on missing values natively; categories become integer codes.
        numeric_steps = []
        categorical_step = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
        )
        if family == "tree":
            clf = DecisionTreeClassifier(random_state=seed, **params)
        else:
            clf = LGBMClassifier(
                random_state=seed,
                n_jobs=n_threads,
                verbose=-1,
                deterministic=True,
                subsample_for_bin=LGBM_BIN_SAMPLE,
                **params,
            )
    else:
        raise ValueError(f"unknown student family {family!r}")
    numeric_part: Any = Pipeline(numeric_steps) if numeric_steps else "passthrough"
    parts: list[tuple[str, Any, list[str]]] = [("num", numeric_part, list(numeric))]
    if categorical:
        parts.append(("cat", categorical_step, list(categorical)))
    # The first step selects the training columns by name, so the student takes the raw
    # table the teacher took: other columns are ignored (remainder="drop"), a missing one
    # is scikit-learn's "columns are missing: {...}" error naming it. Categorical columns
    # arrive with their raw values (bool, pandas category, int or text categories; see
    # hpmkd.data.prepare_features) and the encoders learn those values, so raw rows map to
    # the categories learned in training; unseen values and NaN take the encoder's
    # unknown/missing code. Rows must come as a DataFrame with column names (a NumPy array
    # is refused). Numeric-only students pay about 1 ms per 1,000 rows for this routing
    # (measured on 60 columns: 1.3 -> 2.3 ms for a small LightGBM), the price of ignoring
    # extra columns.
    pre = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("prep", pre), ("model", clf)])


def is_numeric_only(model: Pipeline) -> bool:
    """Whether the student built by :func:`build_student` has no categorical columns."""
    prep = model.named_steps.get("prep")
    return prep is not None and all(name != "cat" for name, *_ in prep.transformers)


class RecentByFrames:
    """The last few results computed from some frames, found again by the frames'
    identity and a key.

    An entry is ``(*weak references to the frames, key, *values)``, newest last; it dies
    with any of its frames (``weakref.finalize``), so nothing is held after a run. A step
    left behind by a stop (:func:`hpmkd.stop.abandoned`) stores nothing.

    Parameters
    ----------
    n_frames : int
        How many frames an entry is keyed by.
    keep : int
        How many entries are kept.
    """

    def __init__(self, n_frames: int, keep: int) -> None:
        self.n_frames = n_frames
        self.keep = keep
        self.entries: list[tuple] = []

    def get(self, frames: tuple[Any, ...], key: Any) -> tuple | None:
        """The values stored for these very frames and ``key``, else ``None``."""
        n = self.n_frames
        for entry in self.entries:
            if entry[n] == key and all(
                ref() is frame for ref, frame in zip(entry[:n], frames, strict=True)
            ):
                return entry[n + 1 :]
        return None

    def put(self, frames: tuple[Any, ...], key: Any, *values: Any) -> None:
        """Store ``values`` for ``frames`` and ``key`` (the oldest entry goes beyond
        ``keep``)."""
        if abandoned():
            return
        self.entries.append((*(weakref.ref(frame) for frame in frames), key, *values))
        del self.entries[: -self.keep]
        for frame in frames:
            weakref.finalize(frame, self._forget_dead)

    def _forget_dead(self) -> None:
        self.entries[:] = [
            entry for entry in self.entries
            if all(ref() is not None for ref in entry[: self.n_frames])
        ]


# The last preprocessings fitted by fit_on_soft_targets: (training frame, what the
# preprocessing is, the fitted preprocessing, the encoded rows). A run alternates two
# kinds (ordinal codes for tree-like students, one-hot and scaling for linear and MLP
# ones), so two are kept: every candidate on the same rows with the same kind reuses its
# encoding instead of encoding the text columns again.
_ENCODINGS = RecentByFrames(n_frames=1, keep=2)
_ENCODED = _ENCODINGS.entries


def _prep_key(prep: ColumnTransformer) -> tuple:
    """What a student's preprocessing is: its steps, their parameters and columns."""
    parts = []
    for name, step, columns in prep.transformers:
        if isinstance(step, str):
            what: Any = step
        else:
            params = step.get_params(deep=True)
            what = (type(step).__name__, tuple(sorted((k, repr(v)) for k, v in params.items())))
        parts.append((name, what, tuple(columns)))
    return tuple(parts), repr(prep.remainder), prep.verbose_feature_names_out


def _fit_prep(prep: ColumnTransformer, X: pd.DataFrame) -> tuple[ColumnTransformer, Any]:
    """A clone of ``prep`` fitted on ``X``, and ``X`` transformed.

    A ``OneHotEncoder`` with ``max_categories`` counts every category's rows to find the
    infrequent ones, in a Python loop over the values of text columns (about 0.35 of
    0.5 CPU s per fit on us_census_fertility's 163,000 rows). With no more categories
    than ``max_categories`` in any of its columns it groups none, so it is first fitted
    without the cap, and when scikit-learn's own categories confirm that no column
    exceeds it, the cap and the "nothing infrequent" state that scikit-learn's capped fit
    sets are put back: the same fitted encoder (``tests/test_students.py`` compares it
    with scikit-learn's fit attribute by attribute). Otherwise it is fitted as given.
    """
    fitted = clone(prep)
    capped = {
        name: step.max_categories
        for name, step, columns in fitted.transformers
        if isinstance(step, OneHotEncoder)
        and step.max_categories is not None
        and step.min_frequency is None
        # pandas counts distinct values in C; a column over the cap is grouped.
        and all(X[c].nunique(dropna=True) <= step.max_categories for c in columns)
    }
    for name, step, _ in fitted.transformers:
        if name in capped:
            step.set_params(max_categories=None)
    encoded = fitted.fit_transform(X)
    grouped = False
    for name, step, _ in fitted.transformers:
        if name in capped:
            step.set_params(max_categories=capped[name])
    for name, step in fitted.named_transformers_.items():
        if name not in capped:
            continue
        n_categories = [
            len(cats) - int(any(_is_missing(c) for c in cats)) for cats in step.categories_
        ]
        grouped = grouped or max(n_categories, default=0) > capped[name]
        step.set_params(max_categories=capped[name])
        # The state scikit-learn's capped fit leaves when no category is infrequent
        # (OneHotEncoder._fit_infrequent_category_mapping).
        step._infrequent_enabled = True
        step._infrequent_indices = [None] * len(step.categories_)
        step._default_to_infrequent_mappings = [None] * len(step.categories_)
    if grouped:
        fitted = clone(prep)
        encoded = fitted.fit_transform(X)
    return fitted, encoded


def _is_missing(value: Any) -> bool:
    """Whether a category is a missing value (``None`` or NaN), as scikit-learn's
    encoders treat it: not counted against ``max_categories``."""
    return value is None or (isinstance(value, float) and value != value)


def encode_rows(prep: ColumnTransformer, X: pd.DataFrame) -> tuple[ColumnTransformer, np.ndarray]:
    """``prep`` fitted on ``X`` (a copy of it) and ``X`` transformed.

    The preprocessing is unsupervised (imputation, scaling, category encoding), so it
    depends only on the rows: recent results are kept and served again, as a fresh copy
    of the fitted preprocessing, for the same frame and the same kind of preprocessing.
    On nyc_flights_delay (196,000 rows, 8 text columns) one-hot encoding cost about 2.5
    CPU seconds per candidate when fitted on the duplicated soft-target rows.
    """
    key = _prep_key(prep)
    kept = _ENCODINGS.get((X,), key)
    if kept is not None:
        return copy.deepcopy(kept[0]), kept[1]
    fitted, encoded = _fit_prep(prep, X)
    if isinstance(encoded, np.ndarray):
        _ENCODINGS.put((X,), key, fitted, encoded)
    return copy.deepcopy(fitted), encoded


def _splits_preprocessing(model: Pipeline) -> bool:
    """Whether ``model`` is a :func:`build_student` pipeline (a ``ColumnTransformer``,
    then the classifier), whose preprocessing is fitted once on the rows themselves."""
    return len(model.steps) == 2 and isinstance(model.steps[0][1], ColumnTransformer)


def _encode_for(model: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """``X`` encoded by ``model``'s preprocessing, fitted on ``X`` (:func:`encode_rows`)
    and put in place in the pipeline, so the classifier can be fitted on its own."""
    prep_name, prep = model.steps[0]
    fitted, encoded = encode_rows(prep, X)
    model.steps[0] = (prep_name, fitted)
    return encoded


def fit_on_soft_targets(
    model: Pipeline,
    X: pd.DataFrame,
    targets: np.ndarray,
    classes: list[Any],
) -> Pipeline:
    """Fit ``model`` so that it reproduces the row-wise class distribution ``targets``.

    Rows are duplicated once per class with that class's probability as sample weight;
    zero-weight copies are dropped (hard labels give back exactly the original rows).
    MLP students with soft targets are not duplicated: they learn each row's class
    distribution directly (:func:`_fit_mlp_soft`; the same loss and gradients).
    The preprocessing step of a :func:`build_student` pipeline is fitted on the rows
    themselves, once (see :func:`encode_rows`), and the encoded rows are duplicated:
    every row keeps at least one copy, so the categories learned are the same, and the
    means and scales are those of the rows rather than of their copies. A two-class
    LightGBM student with fractional targets is fitted on the encoded rows themselves
    instead (:func:`_fit_lgbm_cross_entropy`); hard targets keep the plain fit on the
    rows, which the duplication leaves as they are.
    """
    final = model.steps[-1][1]
    if isinstance(final, MLPClassifier):
        present = _mlp_soft_classes(final, targets)
        if present is not None:
            return _fit_mlp_soft(model, X, targets, classes, present)
    split = _splits_preprocessing(model)
    if (split and isinstance(final, LGBMClassifier) and _soft_binary(targets)
            and len(X) >= LGBM_CROSS_ENTROPY_MIN_ROWS):
        _fit_lgbm_cross_entropy(final, _encode_for(model, X), targets, classes)
        return model
    n_rows, n_classes = targets.shape
    row_index = np.tile(np.arange(n_rows), n_classes)
    class_index = np.repeat(np.arange(n_classes), n_rows)
    weights = targets.T.ravel()
    keep = weights > 1e-6
    labels = np.asarray(classes)[class_index[keep]]
    rows = row_index[keep]
    weights = weights[keep]
    X_rep: Any = _encode_for(model, X) if split else X
    if isinstance(final, MLPClassifier):
        # One seeded shuffle instead of sklearn's per-epoch one (see build_student); the
        # copies of a row must not sit in class-sorted blocks for minibatch training.
        order = np.random.default_rng(final.random_state).permutation(len(labels))
        rows, labels, weights = rows[order], labels[order], weights[order]
    if isinstance(final, MLPClassifier) and is_numeric_only(model):
        # Numeric-only: float32 training is about 1.6x faster, and predicting on
        # float64 rows later is unaffected (the weights are simply upcast). Cast before
        # the rows are duplicated (the same values): on 640,000 x 50 rows the float64
        # copies were 512 MB more at the peak of the fit.
        X_rep = X_rep.astype(np.float32)
    X_rep = X_rep[rows] if split else X_rep.iloc[rows]
    with warnings.catch_warnings(), one_thread():
        # Small students gain nothing from BLAS threads (measured: one thread was faster),
        # and one thread keeps them from fighting over the two cores.
        # MLP students train for a fixed epoch budget by design; not converging to the
        # optimiser's tolerance within it is expected, not a fault.
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_stop()
        callbacks = [_lgbm_check_stop] if isinstance(final, LGBMClassifier) else None
        with _mlp_fit_hooks(final), _lightgbm_guard(final):
            if split:
                extra = {"callbacks": callbacks} if callbacks else {}
                final.fit(X_rep, labels, sample_weight=weights, **extra)
            else:
                step = model.steps[-1][0]
                fit_params: dict[str, Any] = {f"{step}__sample_weight": weights}
                if callbacks:
                    fit_params[f"{step}__callbacks"] = callbacks
                model.fit(X_rep, labels, **fit_params)
    if isinstance(final, LGBMClassifier) and final.n_jobs != 1:
        # Trained on several threads while the cores were free; the student itself
        # predicts on one thread, like every student (the attribute, not set_params,
        # which would also record it among LightGBM's "other" parameters).
        final.n_jobs = 1
        final.booster_.params["num_threads"] = 1
    return model


# Soft targets of MLP students, without duplicating rows. For sklearn's MLP the loss of a
# row with target distribution t equals that of its weighted copies ((x, class c, w=t_c)
# for every c): binary_log_loss and log_loss take xlogy of the target, which may be a
# probability, and the output delta is ``proba - target`` (sigmoid + binary cross-entropy,
# softmax + cross-entropy). Only the target validation (``_validate_input``: a
# LabelBinarizer and a cast to bool) needs the labels to be hard, so the fit sees the
# soft targets through an instance attribute that stands in for it during the fit.
_MLP_INPUT_HOOK = "_validate_input"
#: Classes with no target above this are left out, as the duplicated copies were.
_MIN_TARGET = 1e-6


def _mlp_soft_classes(final: MLPClassifier, targets: np.ndarray) -> np.ndarray | None:
    """The target columns an MLP learns from soft targets (the classes some row has
    weight on), or ``None`` when the row-duplicating path is used: hard labels (one
    copy per row there already), fewer than two such classes, fewer rows than classes,
    or options whose code reads the targets as labels (early stopping's validation
    split, warm start's class check)."""
    if np.all((targets == 0.0) | (targets == 1.0)):
        # Hard labels: the duplicating path keeps one copy per row (nothing to save),
        # and hard-label students stay exactly as before.
        return None
    present = np.flatnonzero(targets.max(axis=0) > _MIN_TARGET)
    if len(present) < 2 or targets.shape[0] < len(present):
        return None
    if final.early_stopping or final.warm_start:
        return None
    return present


@contextmanager
def _mlp_soft_input(final: MLPClassifier, soft: np.ndarray, values: np.ndarray) -> Iterator[None]:
    """During the fit, let ``final`` learn the class distribution ``soft`` (rows x the
    classes ``values``, in that order) in place of the labels it is given.

    sklearn's own ``_validate_input`` checks the rows and fits the label binarizer (so
    ``classes_``, ``out_activation_`` and ``n_outputs_`` are what hard labels of these
    classes give: logistic output for two classes, softmax for more); the instance
    attribute then returns the soft targets as a float matrix in ``classes_`` order (one
    column, the second class, for two classes), of the rows' dtype (float32 rows stay
    float32). The attribute is removed after the fit: the student is a plain
    ``MLPClassifier``.
    """
    method = getattr(final, _MLP_INPUT_HOOK)

    def soft_input(X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, np.ndarray]:
        X, _ = method(X, y, incremental, reset)
        fitted = final._label_binarizer.classes_
        order = [int(np.flatnonzero(values == c)[0]) for c in fitted]
        target = soft[:, order[1:]] if len(order) == 2 else soft[:, order]
        return X, np.ascontiguousarray(target, dtype=X.dtype)

    with _instance_hook(final, _MLP_INPUT_HOOK, soft_input):
        yield


def _fit_mlp_soft(
    model: Pipeline,
    X: pd.DataFrame,
    targets: np.ndarray,
    classes: list[Any],
    present: np.ndarray,
) -> Pipeline:
    """:func:`fit_on_soft_targets` for an MLP student: one row per row, its target the
    class distribution (see :func:`_mlp_soft_input`), no sample weights.

    The same preprocessing as the duplicating path (fitted once on the rows,
    :func:`encode_rows`), one seeded shuffle of the rows (the MLP is built with
    ``shuffle=False``) and float32 rows for numeric-only students. With ``lbfgs`` (full
    batch) the fit equals the duplicated-copies fit to rounding; with minibatches an
    epoch passes over half as many rows (binary) and :func:`trial_params` halves the
    batch, so the fit takes as many gradient steps as the duplicated one did.
    """
    final = model.steps[-1][1]
    values = np.asarray(classes)[present]
    soft = targets[:, present]
    n_rows = soft.shape[0]
    # Labels for sklearn's own input check: every class at least once, so its label
    # binarizer learns them all; the fit itself learns from ``soft``.
    labels = np.resize(values, n_rows)
    split = _splits_preprocessing(model)
    X_rows: Any = _encode_for(model, X) if split else X
    order = np.random.default_rng(final.random_state).permutation(n_rows)
    soft = soft[order]
    if is_numeric_only(model):
        X_rows = X_rows.astype(np.float32)
    X_rows = X_rows[order] if split else X_rows.iloc[order]
    with warnings.catch_warnings(), one_thread():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_stop()
        with _mlp_fit_hooks(final), _mlp_soft_input(final, soft, values):
            if split:
                final.fit(X_rows, labels)
            else:
                model.fit(X_rows, labels)
    return model


#: Training rows from which a two-class LightGBM student learns fractional targets through
#: ``cross_entropy`` (:func:`_fit_lgbm_cross_entropy`); smaller tables keep the duplicated
#: rows. Where the copies cost, on large tables, it halves a fit and learns the same on
#: validation (nyc_flights_delay, 196,000 training rows: 12 soft students, validation KS
#: -0.0025 to +0.0060, mean +0.0009). On small tables LightGBM's row counts
#: (``min_data_in_bin``, ``min_child_samples``, counts estimated from hessians) part the
#: two ways more: on mortgage_loanapp (about 640 training rows, clean protocol, seeds 0-4)
#: the best soft LightGBM student's validation KS fell by 0.020 on the mean of the seeds
#: (0.8571 -> 0.8371) and the selected student's by 0.007 (docs/BENCHMARKS.md section 0,
#: "Five seeds on every table, this session's engine (commit `ffbcfbd`)"; the nyc figures
#: are in section 8, "LightGBM soft targets without duplicated rows"). The bound is the
#: one below which the bins are found on all the copies anyway (``LGBM_BIN_SAMPLE``);
#: tables between 640 and 25,000 training rows were not measured either way.
LGBM_CROSS_ENTROPY_MIN_ROWS = LGBM_BIN_SAMPLE // 2


def _soft_binary(targets: np.ndarray) -> bool:
    """Whether ``targets`` are two-class targets with at least one fractional row."""
    return targets.shape[1] == 2 and bool(np.any((targets[:, 1] > 0) & (targets[:, 1] < 1)))


def _fit_lgbm_cross_entropy(
    final: LGBMClassifier, encoded: np.ndarray, targets: np.ndarray, classes: list[Any]
) -> None:
    """Fit a LightGBM student on two-class soft targets without duplicating its rows.

    LightGBM's ``cross_entropy`` objective takes labels in [0, 1]: per row, its gradient
    ``sigmoid(score) - p`` and hessian ``s (1 - s)`` are those of the two weighted copies
    the other families get (weights ``1 - p`` and ``p``), so the same model is learned
    from half the rows, and the raw score maps to a probability by the same sigmoid as
    the ``binary`` objective. ``LGBMClassifier.fit`` would take soft labels for classes,
    so the classifier's own label bookkeeping is set here as its ``fit`` sets it (for
    the student's two classes) and the booster is trained by ``LGBMModel.fit``: the
    result is a plain ``LGBMClassifier`` (objective ``cross_entropy``) whose
    ``predict_proba`` and ``predict`` behave as usual. Min-child counts are of rows:
    a leaf holding ``k`` rows held ``2 k`` copies, so ``min_child_samples`` is halved to
    keep the duplicated fit's model (rounded up).
    """
    from lightgbm.compat import _LGBMLabelEncoder
    from lightgbm.sklearn import LGBMModel

    encoder = _LGBMLabelEncoder().fit(np.asarray(classes))
    positive = list(classes).index(encoder.classes_[1])
    final.set_params(
        objective="cross_entropy",
        min_child_samples=-(-final.get_params()["min_child_samples"] // 2),
    )
    final._le = encoder
    final._class_map = dict(
        zip(encoder.classes_, encoder.transform(encoder.classes_), strict=True)
    )
    final._classes = encoder.classes_
    final._n_classes = len(encoder.classes_)
    final._objective = "cross_entropy"
    label = np.ascontiguousarray(targets[:, positive], dtype=np.float64)
    with one_thread(), lightgbm_threads(final.n_jobs):
        check_stop()
        LGBMModel.fit(final, encoded, label, callbacks=[_lgbm_check_stop])
    if final.n_jobs != 1:
        final.n_jobs = 1
        final.booster_.params["num_threads"] = 1


def _lightgbm_guard(final: Any) -> AbstractContextManager[Any]:
    """:func:`~hpmkd.native_threads.lightgbm_threads` for a LightGBM student's fit (its
    ``n_jobs``); nothing for other families."""
    if isinstance(final, LGBMClassifier):
        return lightgbm_threads(final.n_jobs)
    return nullcontext()


def _lgbm_check_stop(env: Any) -> None:
    """LightGBM callback: a requested stop ends the fit after the current round."""
    check_stop()


_MLP_EPOCH_HOOK = "_update_no_improvement_count"


@contextmanager
def _mlp_fit_hooks(final: Any) -> Iterator[None]:
    """Let an MLP fit notice a requested stop after every epoch, and back-propagate
    through its ReLU units with :func:`hpmkd.fast_relu.relu_derivative`.

    scikit-learn's MLP has no callback; its stochastic solver calls
    ``_update_no_improvement_count`` once per epoch, so an instance attribute wrapping it
    checks for a stop there (the fitted weights are the same: the wrapper only adds the
    check). The attribute is removed after the fit, so the saved student is a plain
    ``MLPClassifier``. (The epoch loop swallows ``KeyboardInterrupt``, not this.)
    """
    if not isinstance(final, MLPClassifier):
        yield
        return
    method = getattr(final, _MLP_EPOCH_HOOK)

    def checked(*args: Any, **kwargs: Any) -> Any:
        out = method(*args, **kwargs)
        check_stop()
        return out

    with _instance_hook(final, _MLP_EPOCH_HOOK, checked), fast_relu_derivative():
        yield


@contextmanager
def _instance_hook(obj: Any, name: str, function: Any) -> Iterator[None]:
    """``function`` in place of ``obj``'s method ``name`` while the block runs, as an
    instance attribute removed afterwards (the object is then exactly as before: a
    saved student keeps no trace of the hook)."""
    setattr(obj, name, function)
    try:
        yield
    finally:
        obj.__dict__.pop(name, None)


def fit_seed_average(
    family: str,
    params: dict[str, Any],
    numeric: list[str],
    categorical: list[str],
    seed: int,
    X: pd.DataFrame,
    targets: np.ndarray,
    classes: list[Any],
    n_threads: int = 1,
    first: Pipeline | None = None,
) -> Pipeline:
    """A student that is the mean of ``params["n_members"]`` copies of one configuration
    trained on the same soft targets with seeds ``seed``, ``seed + 1`` ...

    Each copy is a :func:`build_student` pipeline fitted by :func:`fit_on_soft_targets`
    (its own seeded initialisation and row order). They share one preprocessing (fitted
    on the same rows, the copies' are equal), so the result is a plain scikit-learn
    ``Pipeline`` of that preprocessing and a soft-voting ``VotingClassifier`` of the
    copies' classifiers: it loads and predicts where hpmkd is not installed. The
    optimiser's state (``_optimizer``: the moment estimates of Adam, about half an MLP's
    pickled bytes) is dropped from the copies: it only serves further training.

    ``first``: the copy with seed ``seed``, already fitted by :func:`build_student` and
    :func:`fit_on_soft_targets` on these rows and targets (the capacity climb's start),
    or a seed average of fewer copies made by this function on them; its copies are
    used instead of fitting them again (each fit is deterministic, so the result is the
    same).

    Returns
    -------
    Pipeline
        Fitted; ``predict_proba`` is the mean of the copies' probabilities.
    """
    from sklearn.ensemble import VotingClassifier
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils import Bunch

    n_members = int(params[N_MEMBERS])
    if n_members < 2:
        raise ValueError(f"a seed average needs at least 2 members, got {n_members}")
    base = {k: v for k, v in params.items() if k != N_MEMBERS}
    prep, done = None, []
    if first is not None:
        given = copy.deepcopy(first)
        prep, last = given.steps[0][1], given.steps[-1][1]
        done = list(last.estimators_) if isinstance(last, VotingClassifier) else [last]
        if len(done) > n_members:
            raise ValueError(f"first has {len(done)} copies, more than the {n_members} asked")
    members = []
    for i in range(n_members):
        if i < len(done):
            final = done[i]
        else:
            model = build_student(family, base, numeric, categorical, seed + i, n_threads)
            fit_on_soft_targets(model, X, targets, classes)
            prep = prep or model.steps[0][1]
            final = model.steps[-1][1]
        final.__dict__.pop("_optimizer", None)
        members.append((f"seed{seed + i}", final))
    vote = VotingClassifier(members, voting="soft")
    # Fitted by hand from the fitted copies (VotingClassifier.fit would refit clones of
    # them, without fit_on_soft_targets' soft targets).
    vote.estimators_ = [final for _, final in members]
    vote.named_estimators_ = Bunch(**dict(members))
    vote.le_ = LabelEncoder().fit(members[0][1].classes_)
    vote.classes_ = vote.le_.classes_
    return Pipeline([("prep", prep), ("model", vote)])


def proba_in_class_order(model: Any, X: pd.DataFrame, classes: list[Any]) -> np.ndarray:
    """``model.predict_proba(X)`` with columns in ``classes`` order (absent classes get 0)."""
    raw = np.asarray(model.predict_proba(X), dtype=float)
    fitted = [str(c) for c in model.classes_]
    if fitted == [str(c) for c in classes]:
        return raw
    out = np.zeros((raw.shape[0], len(classes)))
    for j, c in enumerate(classes):
        if str(c) in fitted:
            out[:, j] = raw[:, fitted.index(str(c))]
    return out
