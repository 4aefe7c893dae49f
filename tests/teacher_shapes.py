"""Teacher shapes people really ship, built small and seeded for the loader corpus test.

Each shape is a function returning an *unfitted* model and the name of the table it is
fitted on. The tables imitate a churn export: numeric columns with gaps, text columns
with gaps, a bool column, an id column, a binary target (``churn``) and a three-class
target (``plan``). Kept in a helper module (not a test file) so that
``tests/test_teacher_corpus.py`` and ad-hoc scripts build exactly the same models.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    PowerTransformer,
    QuantileTransformer,
    SplineTransformer,
    StandardScaler,
    TargetEncoder,
)
from sklearn.svm import SVC

N_ROWS = 300
NUMERIC = ["tenure", "monthly", "total", "calls"]
TEXT = ["contract", "payment", "region"]
BOOL = ["paperless"]
ID = ["customer_id"]
FEATURES = ID + NUMERIC + TEXT + BOOL


def churn_table(seed: int = 0, n_rows: int = N_ROWS) -> pd.DataFrame:
    """A seeded churn-like table with gaps, text, bool and an id; targets ``churn``, ``plan``."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n_rows).astype(float)
    monthly = np.clip(rng.normal(70, 30, n_rows), 18, None).round(2)
    total = tenure * monthly + rng.normal(0, 60, n_rows)
    total[rng.random(n_rows) < 0.08] = np.nan
    calls = rng.poisson(2, n_rows).astype(float)
    calls[rng.random(n_rows) < 0.05] = np.nan
    contract = rng.choice(["month", "one_year", "two_year"], n_rows, p=[0.5, 0.3, 0.2])
    payment = rng.choice(["card", "bank", "check", "e-check"], n_rows).astype(object)
    payment[rng.random(n_rows) < 0.06] = np.nan
    region = rng.choice(["north", "south", "east", "west", "centre"], n_rows)
    paperless = rng.random(n_rows) < 0.6
    logit = (
        -0.04 * tenure
        + 0.02 * (monthly - 70)
        + 0.5 * np.nan_to_num(calls, nan=2.0)
        + np.where(contract == "month", 1.0, -0.8)
        + np.where(payment == "e-check", 0.7, 0.0)
        + 0.4 * paperless
        + rng.normal(0, 0.7, n_rows)
    )
    plan_score = monthly / 30 + np.where(contract == "two_year", 1.2, 0.0)
    plan_score = plan_score + rng.normal(0, 0.5, n_rows)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n_rows) + 1000,
            "tenure": tenure,
            "monthly": monthly,
            "total": total,
            "calls": calls,
            "contract": contract.astype(object),
            "payment": payment,
            "region": region.astype(object),
            "paperless": paperless,
            "churn": (logit > np.median(logit)).astype(int),
            "plan": np.digitize(plan_score, np.quantile(plan_score, [1 / 3, 2 / 3])),
        }
    )


def _numeric_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Only numeric columns, gaps filled: for shapes fitted on plain numbers."""
    return table[NUMERIC].fillna(0.0)


def _category_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Text columns as pandas ``category`` (the way LightGBM users often pass them)."""
    out = table[NUMERIC + TEXT].copy()
    for col in TEXT:
        out[col] = out[col].astype("category")
    return out


def _student_frame(table: pd.DataFrame) -> pd.DataFrame:
    from hpmkd.data import prepare_features

    return prepare_features(table[NUMERIC + TEXT])


def _positive_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Non-negative numeric columns, for log/sqrt transforms."""
    return table[["tenure", "monthly", "calls"]].fillna(0.0)


# The tables a shape can be fitted on: name -> (features from the churn table, target).
TABLES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str]] = {
    "mixed": (lambda t: t[FEATURES], "churn"),
    "mixed_multiclass": (lambda t: t[FEATURES], "plan"),
    "numeric": (_numeric_frame, "churn"),
    "numeric_multiclass": (_numeric_frame, "plan"),
    "category": (_category_frame, "churn"),
    "category_multiclass": (_category_frame, "plan"),
    "positive": (_positive_frame, "churn"),
    # hpmkd students see the columns as hpmkd prepares them (text as object, bool as text)
    "student": (lambda t: _student_frame(t), "churn"),
    "student_multiclass": (lambda t: _student_frame(t), "plan"),
}


def _lgbm(**extra: Any) -> LGBMClassifier:
    params = {"n_estimators": 30, "num_leaves": 7, "random_state": 0, "n_jobs": 1, "verbose": -1}
    return LGBMClassifier(**{**params, **extra})


def _xgb(**extra: Any) -> Any:
    from xgboost import XGBClassifier

    params = {"n_estimators": 20, "max_depth": 3, "random_state": 0, "n_jobs": 1}
    return XGBClassifier(**{**params, **extra})


def _ordinal() -> OrdinalEncoder:
    return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)


def _onehot() -> OneHotEncoder:
    return OneHotEncoder(handle_unknown="ignore", sparse_output=False)


def _dense_numeric(*steps: Any) -> Pipeline:
    return make_pipeline(SimpleImputer(strategy="median"), *steps)


def _linear_prep() -> ColumnTransformer:
    """Impute and scale numbers, one-hot text, drop the id, pass the bool through."""
    return ColumnTransformer(
        [
            ("num", _dense_numeric(StandardScaler()), NUMERIC),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), _onehot()), TEXT),
            ("id", "drop", ID),
        ],
        remainder="passthrough",
    )


def _tree_prep(numeric: Any = "passthrough") -> ColumnTransformer:
    return ColumnTransformer(
        [("num", numeric, NUMERIC), ("cat", _ordinal(), TEXT), ("id", "drop", ID)],
        remainder="passthrough",
    )


def _issue_pipeline(model: Any) -> Pipeline:
    """The shape of issue 10: ordinal-encode text, pass everything else through."""
    return Pipeline(
        [
            ("enc", ColumnTransformer([("cat", OrdinalEncoder(), TEXT)], remainder="passthrough")),
            ("gbm", model),
        ]
    )


def _student(family: str) -> Any:
    """An hpmkd student exactly as ``save_best_model`` writes it."""
    from hpmkd.students import build_student

    params = {
        "lgbm": {"n_estimators": 20, "num_leaves": 7},
        "logreg": {"C": 0.5},
        "tree": {"max_depth": 4},
        "mlp": {"hidden_layer_sizes": (8,), "max_iter": 30},
    }[family]
    return build_student(family, params, NUMERIC, TEXT, seed=0)


def _pipe(prep: Any, model: Any, prep_name: str = "prep", model_name: str = "model") -> Pipeline:
    return Pipeline([(prep_name, prep), (model_name, model)])


def _logistic() -> LogisticRegression:
    return LogisticRegression(max_iter=500)


def _forest(n: int = 10) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=n, max_depth=6, random_state=0)


def _hgb(**extra: Any) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(**{"max_iter": 15, "random_state": 0, **extra})


def _kbins() -> KBinsDiscretizer:
    return KBinsDiscretizer(
        n_bins=4, encode="onehot-dense", quantile_method="averaged_inverted_cdf"
    )


def _knn_onehot_prep() -> ColumnTransformer:
    missing_text = SimpleImputer(strategy="constant", fill_value="missing")
    return ColumnTransformer(
        [
            ("num", KNNImputer(n_neighbors=3), NUMERIC),
            ("cat", make_pipeline(missing_text, _onehot()), TEXT),
        ]
    )


def _target_encoder_prep() -> ColumnTransformer:
    return ColumnTransformer(
        [("num", SimpleImputer(), NUMERIC), ("te", TargetEncoder(random_state=0), TEXT)]
    )


def _column_selector_prep() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", "passthrough", make_column_selector(dtype_include=np.number)),
            ("txt", _ordinal(), make_column_selector(dtype_include=object)),
        ]
    )


def _log_prep() -> ColumnTransformer:
    log = FunctionTransformer(np.log1p, inverse_func=np.expm1)
    return ColumnTransformer([("log", log, ["tenure", "monthly"])], remainder="passthrough")


def _stacking() -> StackingClassifier:
    return StackingClassifier(
        [("lgbm", _lgbm()), ("rf", _forest())], final_estimator=LogisticRegression(), cv=3
    )


def _voting() -> VotingClassifier:
    return VotingClassifier(
        [
            ("lr", make_pipeline(StandardScaler(), LogisticRegression())),
            ("hgb", _hgb(max_iter=10)),
            ("lgbm", _lgbm()),
        ],
        voting="soft",
    )


def _feature_union() -> Pipeline:
    union = FeatureUnion(
        [("raw", "passthrough"), ("quantiles", QuantileTransformer(n_quantiles=50))]
    )
    return make_pipeline(union, _logistic())


# name -> (make the unfitted model, table it is fitted on)
SHAPES: dict[str, tuple[Callable[[], Any], str]] = {
    # The issue's own shape and its relatives: every "passthrough" becomes a
    # FunctionTransformer(func=None) once fitted.
    "issue_ordinal_remainder_lgbm": (lambda: _issue_pipeline(_lgbm(n_estimators=50)), "mixed"),
    "explicit_passthrough_lgbm": (lambda: _pipe(_tree_prep(), _lgbm()), "mixed"),
    "explicit_passthrough_lgbm_multiclass": (
        lambda: _pipe(_tree_prep(), _lgbm()),
        "mixed_multiclass",
    ),
    "lgbm_pandas_category": (lambda: _lgbm(), "category"),
    "lgbm_pandas_category_multiclass": (lambda: _lgbm(), "category_multiclass"),
    "column_selector_lgbm": (lambda: _pipe(_column_selector_prep(), _lgbm()), "mixed"),
    "feature_union_passthrough_quantiles": (_feature_union, "numeric"),
    # XGBoost
    "xgb_pipeline": (lambda: _pipe(_tree_prep(), _xgb()), "mixed"),
    "xgb_multiclass": (lambda: _xgb(), "numeric_multiclass"),
    "xgb_pandas_category": (lambda: _xgb(enable_categorical=True), "category"),
    # scikit-learn ensembles
    "hist_gradient_boosting_ordinal": (lambda: _pipe(_tree_prep(), _hgb()), "mixed"),
    "hist_gradient_boosting_native_categories_multiclass": (
        lambda: _hgb(categorical_features="from_dtype"),
        "category_multiclass",
    ),
    "random_forest_imputed": (
        lambda: _pipe(_tree_prep(SimpleImputer(strategy="median", add_indicator=True)), _forest()),
        "mixed",
    ),
    "extra_trees_knn_imputer": (
        lambda: _pipe(_knn_onehot_prep(), ExtraTreesClassifier(n_estimators=10, random_state=0)),
        "mixed",
    ),
    "gradient_boosting_target_encoder": (
        lambda: _pipe(
            _target_encoder_prep(),
            GradientBoostingClassifier(n_estimators=15, max_depth=2, random_state=0),
        ),
        "mixed",
    ),
    "gradient_boosting_multiclass": (
        lambda: GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0),
        "numeric_multiclass",
    ),
    # linear, kernel, neural, neighbours
    "logistic_onehot_drop": (lambda: _pipe(_linear_prep(), _logistic()), "mixed"),
    "logistic_multiclass": (lambda: _pipe(_linear_prep(), _logistic()), "mixed_multiclass"),
    "logistic_polynomial": (
        lambda: make_pipeline(StandardScaler(), PolynomialFeatures(degree=2), _logistic()),
        "numeric",
    ),
    "logistic_kbins": (lambda: make_pipeline(_kbins(), _logistic()), "numeric"),
    "logistic_spline": (
        lambda: make_pipeline(SplineTransformer(n_knots=4, degree=3), _logistic()),
        "numeric",
    ),
    "logistic_power_transformer": (
        lambda: make_pipeline(PowerTransformer(), _logistic()),
        "numeric_multiclass",
    ),
    "svc_minmax": (
        lambda: _pipe(
            ColumnTransformer(
                [("num", _dense_numeric(MinMaxScaler()), NUMERIC), ("cat", _onehot(), TEXT)]
            ),
            SVC(probability=True, random_state=0),
        ),
        "mixed",
    ),
    "mlp_scaled": (
        lambda: _pipe(
            _linear_prep(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=60, random_state=0)
        ),
        "mixed",
    ),
    "knn_minmax": (
        lambda: make_pipeline(MinMaxScaler(), KNeighborsClassifier(n_neighbors=7)),
        "numeric",
    ),
    # FunctionTransformer with allow-listed numpy functions
    "log1p_logistic": (lambda: _pipe(_log_prep(), _logistic()), "positive"),
    "sqrt_clip_abs_forest": (
        lambda: make_pipeline(
            FunctionTransformer(np.sqrt),
            FunctionTransformer(np.clip, kw_args={"a_min": 0.0, "a_max": 8.0}),
            FunctionTransformer(np.abs),
            _forest(),
        ),
        "positive",
    ),
    # meta-estimators
    "calibrated_lgbm_isotonic": (
        lambda: CalibratedClassifierCV(_pipe(_tree_prep(), _lgbm()), method="isotonic", cv=3),
        "mixed",
    ),
    "calibrated_forest_sigmoid_multiclass": (
        lambda: CalibratedClassifierCV(_forest(), cv=3),
        "numeric_multiclass",
    ),
    "stacking_mixed": (lambda: _pipe(_linear_prep(), _stacking()), "mixed"),
    "voting_soft": (_voting, "numeric"),
    # hpmkd's own exported students (tree/LightGBM students pass numbers through)
    "hpmkd_student_lgbm": (lambda: _student("lgbm"), "student"),
    "hpmkd_student_tree_multiclass": (lambda: _student("tree"), "student_multiclass"),
    "hpmkd_student_logreg": (lambda: _student("logreg"), "student"),
}


def fit_shape(name: str, table: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """Fit shape ``name`` on ``table``; return the fitted model and its feature frame."""
    make, table_name = SHAPES[name]
    features, target = TABLES[table_name]
    X = features(table)
    y = table[target].to_numpy()
    model = make()
    if name.startswith("hpmkd_student"):
        from hpmkd.students import fit_on_soft_targets

        # Soft targets, as distillation gives them: mostly the label, some spread.
        classes = sorted(set(y.tolist()))
        onehot = (y[:, None] == np.asarray(classes)[None, :]).astype(float)
        targets = 0.8 * onehot + 0.2 / len(classes)
        with warnings.catch_warnings(action="ignore"):
            return fit_on_soft_targets(model, X, targets, classes), X
    with warnings.catch_warnings(action="ignore"):  # tiny fits: convergence warnings
        model.fit(X, y)
    return model, X


def fit_teacher_on(model: Any, X: pd.DataFrame, y: Any) -> Any:
    """``model.fit(X, y)`` with the tiny-fit warnings silenced."""
    with warnings.catch_warnings(action="ignore"):
        return model.fit(X, y)
