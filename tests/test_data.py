"""DistillationDataset: sources, targets, features, splits, meta-features, fingerprint, CSV
detection."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from hpmkd import AutoDistiller, DistillationDataset
from hpmkd.errors import HPMKDInputError

FEATURES = ["f0", "f1", "f2", "f3", "f4"]


# ----------------------------------------------------------------------------- sources
def test_from_dataframe(binary_frame, fit_teacher):
    teacher = fit_teacher(binary_frame[FEATURES], binary_frame["target"])
    ds = DistillationDataset(binary_frame, target="target", teacher=teacher)
    assert ds.n_rows == 400 and ds.n_features == 5 and ds.features == FEATURES
    assert ds.classes == [0, 1]
    assert np.array_equal(ds.y, binary_frame["target"].to_numpy())
    proba = ds.teacher_proba()
    assert proba.shape == (400, 2)
    assert np.allclose(proba, teacher.predict_proba(binary_frame[FEATURES]))
    assert ds.name == "dataframe"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_from_csv_and_parquet_paths(tmp_path, binary_frame, fit_teacher, suffix):
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        binary_frame.to_csv(path, index=False)
    else:
        binary_frame.to_parquet(path, index=False)
    teacher = fit_teacher(binary_frame[FEATURES], binary_frame["target"])
    ds = DistillationDataset(path, target="target", teacher=teacher)
    assert ds.name == path.name
    assert ds.features == FEATURES and ds.n_rows == 400
    assert np.allclose(ds.X.to_numpy(), binary_frame[FEATURES].to_numpy())
    assert np.allclose(ds.teacher_proba(), teacher.predict_proba(binary_frame[FEATURES]))
    # Path given as str works as well.
    assert DistillationDataset(str(path), target="target").n_rows == 400


def test_string_target_round_trips_to_original_labels(binary_frame, fit_teacher, fast_config):
    frame = binary_frame.copy()
    frame["target"] = np.where(frame["target"] == 1, "churn", "stay")
    teacher = fit_teacher(frame[FEATURES], frame["target"])
    ds = DistillationDataset(frame, target="target", teacher=teacher)
    assert ds.classes == ["churn", "stay"]
    assert set(np.unique(ds.y)) == {0, 1}
    # The teacher's columns are aligned to the dataset's class order by label.
    assert np.allclose(ds.teacher_proba(), teacher.predict_proba(frame[FEATURES]))
    distiller = AutoDistiller(ds, method="legacy", config=fast_config)
    distiller.run()
    pred = distiller.predict(frame)
    assert set(pred) <= {"churn", "stay"} and len(set(pred)) == 2
    assert np.mean(pred == frame["target"].to_numpy()) > 0.75
    assert list(distiller.best_model().classes_) == ["churn", "stay"]


def test_multiclass_three_classes(make_frame, fit_teacher, fast_config):
    frame = make_frame(n_rows=450, n_classes=3, seed=3)
    teacher = fit_teacher(frame[FEATURES], frame["target"])
    ds = DistillationDataset(frame, target="target", teacher=teacher)
    assert ds.n_classes == 3 and ds.classes == [0, 1, 2]
    assert ds.teacher_proba().shape == (450, 3)
    distiller = AutoDistiller(ds, method="legacy", config=fast_config)
    distiller.run()
    proba = distiller.predict_proba(frame)
    assert proba.shape == (450, 3)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert set(distiller.predict(frame)) == {0, 1, 2}


def test_missing_target_rows_are_dropped_and_counted(binary_frame):
    frame = binary_frame.copy()
    frame["target"] = frame["target"].astype(float)
    frame.loc[[3, 10, 77], "target"] = np.nan
    ds = DistillationDataset(frame, target="target")
    assert ds.n_dropped_missing_target == 3
    assert ds.n_rows == 397
    kept = frame.drop(index=[3, 10, 77]).reset_index(drop=True)
    assert np.allclose(ds.X["f0"].to_numpy(), kept["f0"].to_numpy())
    assert ds.classes == [0.0, 1.0]
    assert ds.profile()["dropped_missing_target"] == 3


def test_features_and_drop(binary_frame):
    frame = binary_frame.assign(customer_id=np.arange(400), leak=binary_frame["target"])
    ds = DistillationDataset(frame, target="target", drop=["customer_id", "leak"])
    assert ds.features == FEATURES
    ds = DistillationDataset(frame, target="target", features=["f2", "f0"])
    assert ds.features == ["f2", "f0"] and list(ds.X.columns) == ["f2", "f0"]
    ds = DistillationDataset(frame, target="target", features=["f0", "f1", "leak"], drop=["leak"])
    assert ds.features == ["f0", "f1"]


def _mixed_frame(n: int = 300, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    city = rng.choice(["Berlin", "Köln", "Paris"], size=n)
    vip = rng.random(n) < 0.3
    y = ((x + (city == "Paris") * 1.0 + vip * 0.8 + rng.normal(0, 0.5, n)) > 0.5).astype(int)
    frame = pd.DataFrame({"x": x, "city": city, "vip": vip, "target": y})
    frame.loc[rng.choice(n, 25, replace=False), "x"] = np.nan
    frame["city"] = frame["city"].astype(object)
    frame.loc[rng.choice(n, 20, replace=False), "city"] = np.nan
    return frame


def _categorical_teacher(frame: pd.DataFrame):
    pre = ColumnTransformer(
        [
            (
                "cat",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
                ),
                ["city", "vip"],
            )
        ],
        remainder="passthrough",
    )
    model = Pipeline([("prep", pre), ("clf", HistGradientBoostingClassifier(max_iter=30))])
    return model.fit(frame[["x", "city", "vip"]], frame["target"])


def test_categorical_bool_and_missing_values_run_end_to_end(fast_config):
    frame = _mixed_frame()
    ds = DistillationDataset(frame, target="target", teacher=_categorical_teacher(frame))
    assert ds.numeric == ["x"]
    assert ds.categorical == ["city", "vip"]
    assert ds.X["x"].isna().sum() == 25 and ds.X["city"].isna().sum() == 20
    # Raw values, not text: the saved student takes the raw bools too (tests/test_raw_rows.py).
    assert set(ds.X["vip"].dropna()) == {True, False}
    config = fast_config.with_updates(families=("logreg", "tree", "lgbm"))
    distiller = AutoDistiller(ds, method="legacy", config=config)
    results = distiller.run()
    assert set(results["family"]) >= {"logreg", "tree", "lgbm"}
    assert results["val_ks"].notna().all()
    proba = distiller.predict_proba(frame.drop(columns="target"))
    assert proba.shape == (300, 2) and np.isfinite(proba).all()


# ----------------------------------------------------------------------------- splits
def test_split_is_stratified_seeded_and_disjoint(make_frame):
    frame = make_frame(n_rows=500, seed=11)
    frame.loc[frame.index[:350], "target"] = 0  # imbalanced: about 15% positives
    ds = DistillationDataset(frame, target="target")
    a = ds.split(validation_split=0.25, random_state=7)
    b = ds.split(validation_split=0.25, random_state=7)
    c = ds.split(validation_split=0.25, random_state=8)
    for part in ("train", "validation", "test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.test, c.test)
    all_positions = np.concatenate([a.train, a.validation, a.test])
    assert sorted(all_positions.tolist()) == list(range(500))
    assert len(a.test) == 100 and len(a.validation) == 100 and len(a.train) == 300
    overall = ds.y.mean()
    for part in (a.train, a.validation, a.test):
        assert abs(ds.y[part].mean() - overall) < 0.05


def test_split_stratifies_a_rare_class_exactly(make_frame):
    frame = make_frame(n_rows=500, seed=12)
    frame["target"] = 0
    frame.loc[frame.index[::20], "target"] = 1  # 25 positives: 5%
    ds = DistillationDataset(frame, target="target")
    for seed in range(5):
        split = ds.split(validation_split=0.2, random_state=seed)
        # 100 test rows hold 5 positives, 80 validation rows hold 4 (+-1 for rounding).
        assert abs(int(ds.y[split.test].sum()) - 5) <= 1
        assert abs(int(ds.y[split.validation].sum()) - 4) <= 1


def test_separate_test_data_is_the_test_part(make_frame):
    train = make_frame(n_rows=300, seed=1)
    test = make_frame(n_rows=80, seed=2)
    test["target"] = test["target"].astype(float)
    test.loc[5, "target"] = np.nan  # dropped, and counted
    ds = DistillationDataset(train, target="target", test_data=test)
    assert ds.n_rows == 379 and ds.n_dropped_missing_target == 1
    split = ds.split(validation_split=0.2, random_state=0)
    assert np.array_equal(split.test, np.arange(300, 379))
    expected = test.drop(index=5)["f0"].to_numpy()
    assert np.allclose(ds.X["f0"].to_numpy()[split.test], expected)
    assert set(split.train) | set(split.validation) == set(range(300))
    assert len(split.validation) == 60


# ----------------------------------------------------------------------------- meta-features
def test_meta_features_keys_and_values(fit_teacher):
    frame = _mixed_frame(n=200, seed=9)
    teacher = _categorical_teacher(frame)
    ds = DistillationDataset(frame, target="target", teacher=teacher)
    meta = ds.meta_features()
    assert set(meta) == {
        "rows",
        "features",
        "categorical_share",
        "missing_share",
        "minority_share",
        "n_classes",
        "teacher_confidence",
    }
    assert meta["rows"] == 200.0 and meta["features"] == 3.0 and meta["n_classes"] == 2.0
    assert meta["categorical_share"] == pytest.approx(2 / 3)
    n_missing = frame[["x", "city", "vip"]].isna().to_numpy().sum()
    assert meta["missing_share"] == pytest.approx(n_missing / (200 * 3))
    counts = frame["target"].value_counts()
    assert meta["minority_share"] == pytest.approx(counts.min() / 200)
    proba = teacher.predict_proba(frame[["x", "city", "vip"]])
    assert meta["teacher_confidence"] == pytest.approx(proba.max(axis=1).mean())


def test_meta_features_without_teacher_has_nan_confidence(binary_frame):
    meta = DistillationDataset(binary_frame, target="target").meta_features()
    assert np.isnan(meta["teacher_confidence"])
    assert meta["missing_share"] == 0.0 and meta["categorical_share"] == 0.0


# ----------------------------------------------------------------------------- fingerprint
def test_fingerprint_stable_for_equal_content(binary_frame):
    a = DistillationDataset(binary_frame, target="target").fingerprint()
    b = DistillationDataset(binary_frame.copy(), target="target").fingerprint()
    assert a == b and len(a) == 64


def test_fingerprint_changes_with_a_value_a_name_or_a_dtype(binary_frame):
    base = DistillationDataset(binary_frame, target="target").fingerprint()

    one_value = binary_frame.copy()
    one_value.loc[17, "f3"] += 1e-6
    renamed = binary_frame.rename(columns={"f4": "g4"})
    frame = binary_frame.copy()
    frame["code"] = np.arange(400) % 3
    with_int = DistillationDataset(frame, target="target").fingerprint()
    frame["code"] = frame["code"].astype(str)  # same digits, now a text category
    with_text = DistillationDataset(frame, target="target").fingerprint()
    flipped = binary_frame.copy()
    flipped.loc[0, "target"] = 1 - flipped.loc[0, "target"]

    others = [
        DistillationDataset(one_value, target="target").fingerprint(),
        DistillationDataset(renamed, target="target").fingerprint(),
        DistillationDataset(flipped, target="target").fingerprint(),
        with_int,
        with_text,
    ]
    assert base not in others
    assert len(set(others)) == len(others)


def test_fingerprint_includes_the_teacher(binary_frame, fit_teacher):
    X, y = binary_frame[FEATURES], binary_frame["target"]
    a = DistillationDataset(binary_frame, target="target", teacher=fit_teacher(X, y, 20))
    b = DistillationDataset(binary_frame, target="target", teacher=fit_teacher(X, y, 60))
    assert a.fingerprint() != b.fingerprint()


# ----------------------------------------------------------------------------- CSV detection
_CITIES = ["Köln", "Berlin", "München", "Zürich", "Genève", "Köln"]
# 12 rows, 6 per class: enough for the train/validation/test split.
_ROWS = [
    (str(20 + 3 * i), str(0.25 * (i + 1)), _CITIES[i % 6], str(i % 2)) for i in range(12)
]


def _table_text(sep: str, header=("age", "income", "city", "target")) -> str:
    return "\n".join(sep.join(r) for r in [header, *_ROWS]) + "\n"


def _check_loaded(frame: pd.DataFrame, header=("age", "income", "city", "target")) -> None:
    assert list(frame.columns) == list(header)
    assert len(frame) == len(_ROWS)
    assert frame[header[0]].tolist() == [20 + 3 * i for i in range(12)]
    assert frame[header[1]].tolist() == [0.25 * (i + 1) for i in range(12)]
    assert frame[header[2]].tolist() == [_CITIES[i % 6] for i in range(12)]
    assert frame[header[3]].tolist() == [i % 2 for i in range(12)]


def test_semicolon_delimited_csv(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text(_table_text(";"), encoding="utf-8")
    ds = DistillationDataset(path, target="target", test_size=0.3)
    _check_loaded(ds.frame)
    assert ds.features == ["age", "income", "city"]


def test_tab_delimited_csv(tmp_path):
    path = tmp_path / "tabs.csv"
    path.write_text(_table_text("\t"), encoding="utf-8")
    _check_loaded(DistillationDataset(path, target="target").frame)


def test_latin1_csv_with_accents_in_header_and_values(tmp_path):
    header = ("âge", "größe", "ville", "target")
    path = tmp_path / "latin1.csv"
    path.write_bytes(_table_text(";", header).encode("latin-1"))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # really not UTF-8
    ds = DistillationDataset(path, target="target")
    _check_loaded(ds.frame, header)
    assert ds.features == ["âge", "größe", "ville"]


def test_utf8_bom_gives_clean_first_column_name(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _table_text(",").encode("utf-8"))
    ds = DistillationDataset(path, target="target")
    _check_loaded(ds.frame)
    assert ds.features[0] == "age"
    assert not any("\ufeff" in c for c in ds.frame.columns)


# ----------------------------------------------------------------------------- memory
def test_teacher_predicts_large_tables_in_chunks_with_the_same_numbers(
    make_frame, fit_teacher, monkeypatch
):
    # Rows are predicted a chunk at a time (the teacher's input never exists for every
    # row at once); the probabilities are those of one call on every row.
    from hpmkd import teacher as teacher_module

    frame = make_frame(n_rows=500, seed=4)
    teacher = fit_teacher(frame[FEATURES], frame["target"], n_estimators=20)
    calls: list[int] = []
    original = teacher.predict_proba

    def counting(X):
        calls.append(len(X))
        return original(X)

    monkeypatch.setattr(teacher, "predict_proba", counting)
    monkeypatch.setattr(teacher_module, "TEACHER_CHUNK_ROWS", 120)
    ds = DistillationDataset(frame, target="target", teacher=teacher)
    assert calls == [120, 120, 120, 120, 20]
    np.testing.assert_array_equal(ds.teacher_proba(), original(frame[FEATURES]))


def _text_pipeline_teacher(frame):
    """An OrdinalEncoder on a text column, the numbers passed through, then LightGBM."""
    from lightgbm import LGBMClassifier

    encode = ColumnTransformer(
        [("text", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["c"])],
        remainder="passthrough",
    )
    model = Pipeline([
        ("encode", encode),
        ("lgbm", LGBMClassifier(n_estimators=15, random_state=0, verbose=-1)),
    ])
    return model.fit(frame[[*FEATURES, "c"]], frame["target"])


def test_pipeline_teacher_transforms_chunks_beside_its_predictions_with_the_same_numbers(
    make_frame, monkeypatch
):
    # A Pipeline teacher on more than PIPELINE_CHUNK_ROWS rows: its steps transform one
    # chunk in a second thread while its final estimator predicts the chunk before;
    # the probabilities are those of one predict_proba call on every row.
    from hpmkd import teacher as teacher_module

    frame = make_frame(n_rows=500, seed=5)
    frame["c"] = np.where(frame["f0"] > 0, "up", "down")
    model = _text_pipeline_teacher(frame)
    expected = model.predict_proba(frame[[*FEATURES, "c"]])
    encoder = model.named_steps["encode"]
    transformed: list[tuple[int, str]] = []
    original = encoder.transform

    def counting(X):
        transformed.append((len(X), threading.current_thread().name))
        return original(X)

    monkeypatch.setattr(encoder, "transform", counting)
    monkeypatch.setattr(teacher_module, "PIPELINE_CHUNK_ROWS", 120)
    ds = DistillationDataset(frame, target="target", teacher=model)
    assert [n for n, _ in transformed] == [120, 120, 120, 120, 20]
    assert all(name.startswith("hpmkd-teacher-transform") for _, name in transformed)
    np.testing.assert_array_equal(ds.teacher_proba(), expected)
    # The isolated process of a teacher file predicts as before, in the calling thread.
    transformed.clear()
    teacher = ds.teachers[0]
    proba = teacher_module.teacher_probabilities(
        teacher, ds.frame, ds.features, ds.classes, pipelined=False
    )
    np.testing.assert_array_equal(proba, expected)
    assert [n for n, _ in transformed] == [500]
    assert transformed[0][1] == threading.current_thread().name


def test_pipeline_teacher_failing_in_a_chunk_is_a_clear_error(make_frame, monkeypatch):
    from hpmkd import teacher as teacher_module

    frame = make_frame(n_rows=300, seed=6)
    frame["c"] = np.where(frame["f1"] > 0, "a", "b")
    model = _text_pipeline_teacher(frame)
    encoder = model.named_steps["encode"]
    original = encoder.transform
    calls = []

    def failing(X):
        calls.append(len(X))
        if len(calls) == 2:
            raise ValueError("unreadable chunk")
        return original(X)

    monkeypatch.setattr(encoder, "transform", failing)
    monkeypatch.setattr(teacher_module, "PIPELINE_CHUNK_ROWS", 100)
    with pytest.raises(HPMKDInputError, match="failed to predict on the data: ValueError: "
                       "unreadable chunk"):
        DistillationDataset(frame, target="target", teacher=model)


def test_row_hashes_are_the_rows_own_and_feed_the_fingerprint(binary_frame):
    ds = DistillationDataset(binary_frame, target="target")
    hashes = ds.row_hashes()
    assert hashes is ds.row_hashes() and hashes.shape == (ds.n_rows,)
    rows = np.array([3, 7, 250])
    # A row's hash depends on that row only: indexing the table's hashes is hashing
    # the rows (what the leakage check did on a copy of them).
    np.testing.assert_array_equal(
        hashes[rows], pd.util.hash_pandas_object(ds.X.iloc[rows], index=False).to_numpy()
    )
    changed = binary_frame.copy()
    changed.loc[7, "f0"] += 1.0
    other = DistillationDataset(changed, target="target")
    assert (other.row_hashes() != hashes).sum() == 1
    assert other.fingerprint() != ds.fingerprint()


def test_the_callers_frames_are_never_changed(make_frame):
    # Without copies of their own before the concatenation, the caller's frames are
    # still untouched (column names, values), with a test table and without.
    train = make_frame(n_rows=200, seed=5).rename(columns={"f4": 4})
    test = make_frame(n_rows=60, seed=6).rename(columns={"f4": 4})
    before = (train.copy(), test.copy())
    for kwargs in ({"test_data": test}, {}):
        ds = DistillationDataset(train, target="target", **kwargs)
        assert "4" in ds.features
        ds.frame.iloc[0, 0] = 99.0
        pd.testing.assert_frame_equal(train, before[0])
        pd.testing.assert_frame_equal(test, before[1])
