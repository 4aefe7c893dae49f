"""Leakage (issue 10, section 2): the check fires for a teacher fitted on the distiller's
rows and stays quiet for one fitted on other rows; ``teacher_refit="oof"`` gives
out-of-fold soft targets (no row's target from a clone that trained on it), in process
and for teacher files in the isolated child; the CLI warns and takes ``--teacher-refit``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from hpmkd import AutoDistiller, DistillationDataset
from hpmkd.cli import main
from hpmkd.errors import HPMKDInputError
from hpmkd.leakage import (
    LeakageCheck,
    _below_noise_floor,
    calibration_slope,
    check_dataset,
    check_run,
)
from hpmkd.refit import oof_probabilities
from hpmkd.report import render_report
from tests.conftest import PROJECT_ROOT

DEV_DATA = Path(os.environ.get("HPMKD_DEV_DATA", PROJECT_ROOT.parent / "shared" / "data"))
# fast_config switches off cache and memory, which the legacy method does not use.
pytestmark = pytest.mark.filterwarnings("ignore::hpmkd.errors.HPMKDConfigWarning")
SMALL = ["--method", "legacy", "--set", "families=logreg", "--set", "temperatures=1",
         "--set", "alphas=0.5"]


def noisy_table(n_rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A table with label noise (so a model that learned the rows stands out), a text
    column and a numeric id-free feature set."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 6))
    score = X[:, 0] + 0.8 * X[:, 1] - 0.5 * X[:, 2] + rng.normal(scale=1.2, size=n_rows)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    frame["region"] = rng.choice(["north", "south", "east", "west"], size=n_rows)
    frame["target"] = (score > 0).astype(int)
    return frame


def issue_teacher(text_cols: list[str], n_estimators: int = 500) -> Pipeline:
    """The teacher shape of issue 10."""
    encoder = ColumnTransformer(
        [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                encoded_missing_value=-1), text_cols)],
        remainder="passthrough",
    )
    return Pipeline([
        ("enc", encoder),
        ("gbm", LGBMClassifier(n_estimators=n_estimators, n_jobs=1, verbose=-1,
                               random_state=0)),
    ])


def leaky_and_clean(frame: pd.DataFrame, n_estimators: int = 500):
    """(leaky teacher fitted on every row, clean teacher fitted on half A, half B)."""
    X, y = frame.drop(columns="target"), frame["target"]
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    a, b = train_test_split(np.arange(len(frame)), test_size=0.5, stratify=y, random_state=0)
    leaky = issue_teacher(text, n_estimators).fit(X, y)
    clean = issue_teacher(text, n_estimators).fit(X.iloc[a], y.iloc[a])
    return leaky, clean, frame.iloc[np.sort(b)].reset_index(drop=True)


@pytest.fixture(scope="module")
def synthetic():
    return leaky_and_clean(noisy_table())


# --------------------------------------------------------------------------- the check
def test_check_fires_for_a_teacher_fitted_on_the_rows_and_not_for_one_fitted_elsewhere(
    synthetic,
):
    leaky, clean, part = synthetic
    fired = check_dataset(DistillationDataset(part, "target", teacher=leaky))
    quiet = check_dataset(DistillationDataset(part, "target", teacher=clean))
    assert fired.suspected and not quiet.suspected
    (signal,) = fired.signals
    assert signal.name == "in_sample_fit" and signal.fired
    assert signal.values["teacher_log_loss"] < signal.values["reference_log_loss"]
    assert not quiet.signals[0].fired
    # The text says what was seen, why it matters and what to do.
    what, why, remedies = fired.text.split("\n\n")
    assert "Leakage suspected" in what and "log-loss" in what
    assert "optimistic" in why and "soft targets" in why
    assert "--test-data" in remedies and "teacher_refit=\"oof\"" in remedies
    assert "No sign" in quiet.text
    # Only non-test rows are looked at: 1,500 rows, 20% test -> 1,200.
    assert fired.n_rows == 1200


def test_check_round_trips_through_json(synthetic):
    leaky, _clean, part = synthetic
    check = check_dataset(DistillationDataset(part, "target", teacher=leaky))
    again = LeakageCheck.from_dict(json.loads(json.dumps(check.to_dict())))
    assert again.suspected == check.suspected and again.text == check.text
    assert again.signals[0].values["gain"] == pytest.approx(check.signals[0].values["gain"])
    assert again.fired == again.signals


def test_no_teacher_means_nothing_to_check(synthetic):
    part = synthetic[2]
    check = check_dataset(DistillationDataset(part, "target"))
    assert not check.suspected and check.signals == () and "No teacher" in check.text


def test_validation_above_test_fires_with_a_separate_test_table():
    frame = noisy_table(2400, seed=3)
    main_rows, test_rows = frame.iloc[:1600], frame.iloc[1600:].reset_index(drop=True)
    X, y = main_rows.drop(columns="target"), main_rows["target"]
    teacher = issue_teacher(["region"], 300).fit(X, y)  # saw the table, not the test table
    ds = DistillationDataset(main_rows, "target", teacher=teacher, test_data=test_rows)
    split = ds.split(0.2, 42)
    check = check_run(ds, split.train, split.validation, split.test, 42,
                      test_is_separate=ds.has_separate_test)
    signal = next(s for s in check.signals if s.name == "validation_above_test")
    assert signal.fired and check.suspected
    assert signal.values["validation_log_loss"] < signal.values["test_log_loss"]


def test_calibration_slope_reads_over_and_under_confidence():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, size=20000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    logit = np.log(p / (1 - p))

    def proba(scale: float) -> np.ndarray:
        q = 1 / (1 + np.exp(-scale * logit))
        return np.column_stack([1 - q, q])

    assert calibration_slope(proba(1.0), y)[0] == pytest.approx(1.0, abs=0.05)
    assert calibration_slope(proba(2.0), y)[0] == pytest.approx(0.5, abs=0.05)  # over
    assert calibration_slope(proba(0.5), y)[0] == pytest.approx(2.0, abs=0.1)  # under


def repeated_table(n_rows: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Few distinct rows, many repeats (like ``us_census_fertility``: 7 coarse features,
    9,276 distinct rows in 254,654): a 300-tree model fitted on them memorises too little
    for ``in_sample_fit``, but its cell estimates include the rows' own labels."""
    rng = np.random.default_rng(seed)
    age, work = rng.integers(0, 12, n_rows), rng.integers(0, 20, n_rows)
    region = rng.choice(["north", "south"], size=n_rows)
    logit = (0.15 * (age - 6) + 0.08 * (work - 10) + 0.3 * (region == "north")
             + 0.5 * np.sin(age * work))
    y = (rng.uniform(size=n_rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"age": age, "work": work, "region": region, "target": y})


def test_noise_floor_catches_the_leak_on_repeated_rows_that_in_sample_fit_misses():
    leaky, clean, part = leaky_and_clean(repeated_table(), n_estimators=300)
    fired = check_dataset(DistillationDataset(part, "target", teacher=leaky))
    quiet = check_dataset(DistillationDataset(part, "target", teacher=clean))
    by_name = {s.name: s for s in fired.signals}
    floor = by_name["below_noise_floor"]
    assert floor.fired and fired.suspected and not by_name["in_sample_fit"].fired
    assert floor.values["brier"] < floor.values["noise_floor"]
    assert floor.values["excess_high"] < 0 < floor.values["cells"]
    assert "noise" in fired.text.split("\n\n")[0]
    assert not quiet.suspected
    calm = next(s for s in quiet.signals if s.name == "below_noise_floor")
    assert not calm.fired and calm.values["excess"] > 0


def test_noise_floor_holds_for_a_teacher_that_knows_a_column_hpmkd_lacks():
    # The best possible unseen teacher: the true probability, which depends on a hidden
    # column z. Cells are keyed by features *and* the teacher's probabilities, so the
    # label noise left within a cell is what this teacher cannot predict either.
    rng = np.random.default_rng(5)
    n = 20000
    x = rng.integers(0, 40, n)
    z = rng.integers(0, 3, n)  # not in the table
    p = 1 / (1 + np.exp(-(0.05 * (x - 20) + 1.5 * (z - 1))))
    y = (rng.uniform(size=n) < p).astype(int)
    features = x.astype(np.uint64)
    oracle = _below_noise_floor("oracle", np.column_stack([1 - p, p]), y, features, 0)
    assert oracle is not None and not oracle.fired
    # The same rows scored by each x-cell's own label mean (a teacher that saw them).
    means = np.bincount(x, weights=y) / np.bincount(x)
    seen = _below_noise_floor("seen", np.column_stack([1 - means[x], means[x]]), y,
                              features, 0)
    assert seen is not None and seen.fired
    # Without repeats nothing is measured (no signal rather than a guess).
    unique = np.arange(n, dtype=np.uint64)
    assert _below_noise_floor("t", np.column_stack([1 - p, p]), y, unique, 0) is None


@pytest.mark.skipif(not DEV_DATA.is_dir(), reason="development tables not present")
@pytest.mark.parametrize("table", ["german_credit", "taiwan_default_sample"])
def test_check_on_development_tables(table):
    frame = pd.read_csv(DEV_DATA / f"{table}.csv.gz")
    if len(frame) > 3000:  # subsampled: the test stays fast
        frame = frame.sample(3000, random_state=0).reset_index(drop=True)
    leaky, clean, part = leaky_and_clean(frame, n_estimators=300)
    assert check_dataset(DistillationDataset(part, "target", teacher=leaky)).suspected
    assert not check_dataset(DistillationDataset(part, "target", teacher=clean)).suspected


# --------------------------------------------------------------------------- oof
class RowSpy(ClassifierMixin, BaseEstimator):
    """Predicts 0.9 for class 1 on a row whose ``row_id`` it was fitted on, else 0.1:
    the probabilities say whether the model that produced them saw the row."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> RowSpy:
        self.seen_ = set(X["row_id"].astype(int))
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        seen = X["row_id"].astype(int).isin(self.seen_).to_numpy()
        p1 = np.where(seen, 0.9, 0.1)
        return np.column_stack([1 - p1, p1])


def spy_table(n_rows: int = 300) -> pd.DataFrame:
    frame = noisy_table(n_rows, seed=1).drop(columns="region")
    frame.insert(0, "row_id", np.arange(n_rows))
    return frame


def test_oof_targets_never_come_from_a_clone_that_trained_on_the_row():
    frame = spy_table()
    X, y = frame.drop(columns="target"), frame["target"]
    spy = RowSpy().fit(X, y)  # saw every row
    train = np.arange(0, 300, 3)
    proba = oof_probabilities(spy, frame, list(X.columns), [0, 1], y.to_numpy()[train], train,
                              4, 0)
    assert np.allclose(spy.predict_proba(X)[:, 1], 0.9)
    # Training rows out-of-fold, every other row from a clone fitted on training rows only.
    assert np.allclose(proba[:, 1], 0.1)


def test_a_run_with_oof_scores_the_teacher_on_rows_it_did_not_train_on(fast_config):
    frame = spy_table(400)
    X, y = frame.drop(columns="target"), frame["target"]
    ds = DistillationDataset(frame, "target", teacher=RowSpy().fit(X, y))
    config = fast_config.with_updates(teacher_refit="oof", teacher_refit_folds=3)
    distiller = AutoDistiller(ds, method="legacy", config=config, random_state=0)
    distiller.run()
    result = distiller.result_
    teacher = result.primary_teacher
    assert np.allclose(teacher.val_proba[:, 1], 0.1) and np.allclose(teacher.test_proba[:, 1], 0.1)
    summary = distiller.summary()
    assert summary["teacher_refit"] == "oof" and summary["config"]["teacher_refit_folds"] == 3
    # The check is made (on the teacher as given) and records the remedy applied.
    assert result.leakage is not None and result.leakage.teacher_refit == "oof"
    assert LeakageCheck.from_dict(summary["leakage"]).teacher_refit == "oof"


def test_oof_refuses_what_cannot_be_refitted(fast_config, synthetic):
    leaky, _clean, part = synthetic
    proba = leaky.predict_proba(part.drop(columns="target"))
    with_cols = part.assign(p0=proba[:, 0], p1=proba[:, 1])
    ds = DistillationDataset(with_cols, "target", teacher_proba_cols=["p0", "p1"])
    config = fast_config.with_updates(teacher_refit="oof")
    with pytest.raises(HPMKDInputError, match="probability columns, which cannot be refitted"):
        AutoDistiller(ds, method="legacy", config=config).run()
    booster = leaky.named_steps["gbm"].booster_
    with pytest.raises(HPMKDInputError, match="Booster, which cannot be cloned"):
        oof_probabilities(booster, part, ["f0"], [0, 1], part["target"].to_numpy()[:100],
                          np.arange(100), 3, 0)


def test_report_shows_the_banner_and_the_section(synthetic, fast_config):
    leaky, _clean, part = synthetic
    distiller = AutoDistiller(DistillationDataset(part, "target", teacher=leaky),
                              method="legacy", config=fast_config)
    distiller.run()
    html = render_report(distiller.result_)
    assert "id='leakage-banner'" in html and "id='sec-leakage'" in html
    assert "data-leakage-fired='true'" in html


# --------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, synthetic):
    leaky, clean, part = synthetic
    folder = tmp_path_factory.mktemp("leakage-cli")
    part.to_csv(folder / "B.csv", index=False)
    joblib.dump(leaky, folder / "leaky.joblib")
    joblib.dump(clean, folder / "clean.joblib")
    return folder


def test_cli_warns_for_the_leaky_teacher_file_only(cli_files, capsys):
    assert main(["distill", str(cli_files / "B.csv"), "--target", "target", "--teacher",
                 str(cli_files / "leaky.joblib"), "--out", str(cli_files / "o1"),
                 "--quiet", *SMALL]) == 0
    err = capsys.readouterr().err
    assert "WARNING: LEAKAGE SUSPECTED" in err and "--teacher-refit oof" in err
    summary = json.loads((cli_files / "o1" / "summary.json").read_text())
    assert summary["leakage"]["suspected"] is True and summary["teacher_refit"] == "none"
    assert main(["distill", str(cli_files / "B.csv"), "--target", "target", "--teacher",
                 str(cli_files / "clean.joblib"), "--out", str(cli_files / "o2"), *SMALL]) == 0
    err = capsys.readouterr().err
    assert "LEAKAGE SUSPECTED" not in err and "leakage check: no sign" in err
    summary = json.loads((cli_files / "o2" / "summary.json").read_text())
    assert summary["leakage"]["suspected"] is False


def test_cli_teacher_refit_oof_refits_the_file_in_its_isolated_process(cli_files, capsys):
    out = cli_files / "o3"
    assert main(["distill", str(cli_files / "B.csv"), "--target", "target", "--teacher",
                 str(cli_files / "leaky.joblib"), "--out", str(out), "--quiet",
                 "--teacher-refit", "oof", "--set", "teacher_refit_folds=3", *SMALL]) == 0
    err = capsys.readouterr().err
    assert "This run used teacher_refit=\"oof\"" in err
    summary = json.loads(out.joinpath("summary.json").read_text())
    plain = json.loads((cli_files / "o1" / "summary.json").read_text())
    assert summary["teacher_refit"] == "oof"
    # As given the teacher separates its own rows perfectly; its clones score the
    # validation and test rows they never trained on.
    assert plain["teacher"]["ks"] == pytest.approx(1.0)
    assert summary["teacher"]["ks"] < 0.9


def test_cli_refit_flag_and_setting_must_agree(cli_files, capsys):
    code = main(["distill", str(cli_files / "B.csv"), "--target", "target", "--teacher",
                 str(cli_files / "leaky.joblib"), "--out", str(cli_files / "o4"),
                 "--teacher-refit", "oof", "--set", "teacher_refit=none"])
    assert code == 2 and "disagree" in capsys.readouterr().err


def test_oof_keeps_the_teachers_own_text_labels_and_class_order(make_frame):
    frame = make_frame(n_rows=600, n_classes=3, seed=4)
    names = np.array(["low", "mid", "high"])
    frame["target"] = names[frame["target"].to_numpy()]
    X = frame.drop(columns="target")
    teacher = LGBMClassifier(n_estimators=30, n_jobs=1, verbose=-1).fit(X, frame["target"])
    ds = DistillationDataset(frame, "target", teacher=teacher)
    train = np.arange(0, 600, 2)
    proba = oof_probabilities(teacher, ds.frame, ds.features, ds.classes, ds.y[train], train,
                              3, 0)
    assert proba.shape == (600, 3) and np.allclose(proba.sum(axis=1), 1.0)
    # Columns in the dataset's class order: the clones beat chance on rows they never saw.
    assert np.mean(proba.argmax(axis=1) == ds.y) > 0.5


@pytest.mark.parametrize("n", [7, 1_001, 25_003])
def test_bootstrap_means_in_chunks_are_the_resamples_of_one_draw(n, monkeypatch):
    # The validation-against-test signal draws its resamples chunk after chunk (400 x
    # 200,000 test rows at once were 1.3 GB); the numbers are those of one draw.
    from hpmkd import leakage

    values = np.random.default_rng(1).gamma(2.0, size=n)
    whole = values[np.random.default_rng(9).integers(0, n, size=(400, n))].mean(axis=1)
    monkeypatch.setattr(leakage, "BOOT_CHUNK_CELLS", 3 * n + 1)  # chunks of 3 resamples
    chunked = leakage._bootstrap_means(values, 400, np.random.default_rng(9))
    np.testing.assert_array_equal(chunked, whole)
