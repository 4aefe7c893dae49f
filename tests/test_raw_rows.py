"""The saved student scores raw rows the way the teacher took them (issue 10, section 3).

A table with numeric (int, float with NaN), bool, int-coded, pandas ``category`` (int and
text categories) and text columns is distilled once per student family; each saved
student is loaded with joblib in a subprocess where hpmkd cannot be imported and scores
the raw rows, rows with an extra column, with unseen categories, with NaN in categorical
columns, and rows lacking a column (an error naming it).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import hpmkd
from hpmkd import AutoDistiller, DistillationDataset, HPMConfig
from hpmkd.data import prepare_features
from hpmkd.errors import HPMKDInputError
from hpmkd.safe_load import load_model_file
from tests.conftest import HIDE_HPMKD

FAMILIES = ("tree", "lgbm", "logreg", "mlp")
CATEGORICAL = ["flag", "grade", "kind", "city"]
NUMERIC = ["age", "code", "income"]


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = rng.normal(50, 15, n)
    income[rng.random(n) < 0.1] = np.nan
    code = rng.integers(1, 5, n)  # int-coded categorical, int64 like the teacher took it
    flag = rng.random(n) < 0.4
    grade = pd.Categorical(rng.choice([1, 2, 10], n))  # int categories: 10 sorts after 2
    kind = pd.Categorical(rng.choice(["basic", "plus", "pro"], n))
    city = rng.choice(["Lisbon", "Porto", "Braga"], n).astype(object)
    city[rng.random(n) < 0.1] = None
    score = (
        0.04 * (age - 50)
        + 0.05 * np.nan_to_num(income - 50)
        + 1.2 * flag
        - 0.6 * (code == 3)
        + 0.9 * (np.asarray(grade) == 10)
        + 0.8 * (np.asarray(kind) == "pro")
        - 0.7 * (city == "Porto")
    )
    target = (score + rng.normal(0, 0.8, n) > 0.3).astype(int)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "code": code,
            "flag": flag,
            "grade": grade,
            "kind": kind,
            "city": pd.Series(city, dtype="str"),
            "target": target,
        }
    )


def _teacher(frame: pd.DataFrame) -> Pipeline:
    """A teacher that takes the raw table (its own encoding of every raw dtype)."""
    pre = ColumnTransformer(
        [
            ("num", SimpleImputer(), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    model = Pipeline([("prep", pre), ("model", LGBMClassifier(n_estimators=40, verbose=-1))])
    return model.fit(frame[NUMERIC + CATEGORICAL], frame["target"])


def _variants(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The raw rows and the changed tables a deployed student meets."""
    extra = rows.copy()
    extra["customer_id"] = [f"c{i}" for i in range(len(rows))]
    extra["noise"] = 1.5
    extra = extra[list(extra.columns[::-1])]  # other column order too
    unseen = rows.copy()
    unseen["city"] = unseen["city"].astype(object)
    unseen.loc[unseen.index[:5], "city"] = "Atlantis"
    unseen["kind"] = unseen["kind"].cat.add_categories(["enterprise"])
    unseen.loc[unseen.index[3:8], "kind"] = "enterprise"
    unseen["grade"] = unseen["grade"].cat.add_categories([99])
    unseen.loc[unseen.index[6:9], "grade"] = 99
    unseen.loc[unseen.index[10:12], "code"] = 42
    missing = rows.copy()
    missing["flag"] = missing["flag"].astype(object)
    for col in CATEGORICAL:
        missing.loc[missing.index[::4], col] = np.nan
    missing["age"] = missing["age"].astype(float)
    missing.loc[missing.index[1::5], ["age", "income"]] = np.nan
    plain = rows.copy()  # categories arriving as plain values (no category dtype)
    plain["grade"] = plain["grade"].astype(int)
    plain["kind"] = plain["kind"].astype(str)
    return {"raw": rows, "extra": extra, "unseen": unseen, "missing": missing, "plain": plain}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    train = _table(700, seed=1)
    teacher = _teacher(_table(700, seed=2))
    rows = _table(60, seed=3).drop(columns="target")
    folder = tmp_path_factory.mktemp("raw-rows")
    out: dict = {"rows": rows, "folder": folder, "distillers": {}, "paths": {}}
    for family in FAMILIES:
        config = HPMConfig(families=(family,), temperatures=(2.0,), alphas=(0.5,))
        ds = DistillationDataset(train, target="target", teacher=teacher)
        distiller = AutoDistiller(ds, method="legacy", config=config)
        distiller.run()
        out["distillers"][family] = distiller
        out["paths"][family] = distiller.save_best_model(folder / f"{family}.joblib")
    return out


def test_dataset_keeps_raw_categorical_values() -> None:
    frame = _table(50, seed=0)
    prepared = prepare_features(frame[NUMERIC + CATEGORICAL])
    assert [str(prepared[c].dtype) for c in NUMERIC] == ["float64"] * 3
    assert prepared["flag"].dtype == bool
    assert isinstance(prepared["grade"].dtype, pd.CategoricalDtype)
    pd.testing.assert_series_equal(prepared["city"], frame["city"])


def test_students_route_columns_by_name_and_learn_raw_categories(runs) -> None:
    for family, distiller in runs["distillers"].items():
        ds = distiller.dataset
        assert ds.categorical == CATEGORICAL and ds.numeric == ["age", "income", "code"]
        student = distiller.best_model()
        assert type(student).__name__ == "CalibratedClassifierCV", family
        pipeline = student.estimator.estimator
        prep = pipeline.named_steps["prep"]
        assert prep.remainder == "drop"
        encoder = prep.named_transformers_["cat"]
        learned = dict(zip(CATEGORICAL, encoder.categories_, strict=True))
        assert list(learned["flag"]) == [False, True], family
        assert list(learned["grade"]) == [1, 2, 10], family  # the ints, not "1", "10", "2"
        assert list(learned["kind"]) == ["basic", "plus", "pro"], family


def test_mixed_type_categorical_column_is_refused() -> None:
    frame = _table(60, seed=0)
    frame["city"] = frame["city"].astype(object)
    frame.loc[:5, "city"] = 7
    teacher = _teacher(_table(200, seed=2))
    with pytest.raises(HPMKDInputError, match=r"'city' mixes value types \(number, text\)"):
        DistillationDataset(frame, target="target", teacher=teacher)


def test_engine_predictions_on_changed_rows_and_a_missing_column(runs) -> None:
    rows = runs["rows"]
    distiller = runs["distillers"]["lgbm"]
    base = distiller.predict_proba(rows)
    variants = _variants(rows)
    assert np.allclose(distiller.predict_proba(variants["extra"]), base, atol=1e-12)
    assert np.allclose(distiller.predict_proba(variants["plain"]), base, atol=1e-12)
    for name in ("unseen", "missing"):
        proba = distiller.predict_proba(variants[name])
        assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(HPMKDInputError, match="'kind'"):
        distiller.predict_proba(rows.drop(columns="kind"))


def test_saved_students_load_through_the_restricted_loader(runs) -> None:
    rows = runs["rows"]
    for family, path in runs["paths"].items():
        loaded = load_model_file(path)
        expected = runs["distillers"][family].predict_proba(rows)
        assert np.allclose(loaded.predict_proba(rows), expected, atol=1e-12), family


_CHILD = (
    textwrap.dedent(
        """
    import json
    import sys
    from pathlib import Path

    project = Path(sys.argv[1]).resolve()
    folder = Path(sys.argv[2])
    families = sys.argv[3].split(",")

    """
    )
    + HIDE_HPMKD
    + textwrap.dedent(
        """

    import joblib
    import numpy as np
    import pandas as pd

    variants = pd.read_pickle(folder / "variants.pkl")
    errors = {}
    probas = {}
    for family in families:
        model = joblib.load(folder / f"{family}.joblib")
        assert "hpmkd" not in sys.modules, "loading the model imported hpmkd"
        for name, rows in variants.items():
            key = f"{family}/{name}"
            try:
                probas[key] = model.predict_proba(rows)
            except Exception as exc:
                errors[key] = f"{type(exc).__name__}: {exc}"
    assert "hpmkd" not in sys.modules, "predicting imported hpmkd"
    np.savez(folder / "child.npz", **probas)
    (folder / "errors.json").write_text(json.dumps(errors))
    print("child ok", len(probas))
        """
    )
)


def test_saved_students_score_raw_rows_without_hpmkd(runs, venv_python, tmp_path) -> None:
    rows, folder = runs["rows"], runs["folder"]
    variants = _variants(rows)
    variants["no_kind"] = rows.drop(columns=["kind", "age"])
    pd.to_pickle(variants, folder / "variants.pkl")
    project = Path(hpmkd.__file__).resolve().parents[1]
    done = subprocess.run(
        [str(venv_python), "-I", "-c", _CHILD, str(project), str(folder), ",".join(FAMILIES)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    child = np.load(folder / "child.npz")
    errors = json.loads((folder / "errors.json").read_text())
    for family in FAMILIES:
        distiller = runs["distillers"][family]
        base = distiller.predict_proba(rows)
        for name, frame in variants.items():
            key = f"{family}/{name}"
            if name == "no_kind":
                # scikit-learn's own message names every missing column.
                assert key in errors, key
                assert errors[key].startswith("ValueError: columns are missing"), errors[key]
                assert "'kind'" in errors[key] and "'age'" in errors[key], errors[key]
                continue
            assert key not in errors, errors.get(key)
            proba = child[key]
            assert np.allclose(proba, distiller.predict_proba(frame), atol=1e-12), key
            if name in ("extra", "plain"):
                assert np.allclose(proba, base, atol=1e-12), key
            else:
                assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0), key
    # Unseen categories and NaN reach the models (some scores move; a shallow tree may
    # not split on the changed columns).
    for name in ("unseen", "missing"):
        assert any(
            not np.allclose(child[f"{f}/{name}"], runs["distillers"][f].predict_proba(rows))
            for f in FAMILIES
        ), name
