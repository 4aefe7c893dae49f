"""AutoDistiller end to end with the legacy grid, the auto method choice, callbacks, the
time budget, and a saved student that loads without hpmkd."""

from __future__ import annotations

import json
import math
import subprocess
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.datasets import load_breast_cancer

import hpmkd
from hpmkd import AutoDistiller, DistillationDataset, Event, HPMConfig, choose_method
from hpmkd.metrics import size_bytes
from tests.conftest import HIDE_HPMKD, expected_selection

METRIC_KEYS = {
    "accuracy",
    "f1",
    "auc",
    "ks",
    "ece",
    "brier",
    "fidelity",
    "rank_fidelity",
    "kl_to_teacher",
    "size_bytes",
    "latency_ms_1k",
}
GRID = {"families": ("logreg", "tree", "lgbm"), "temperatures": (1.0, 3.0), "alphas": (0.9, 0.2)}


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "malignant"})
    return frame


@pytest.fixture(scope="module")
def legacy_run(cancer, fit_teacher):
    """One legacy run on breast cancer (569 rows x 30 features), shared by several tests."""
    features = [c for c in cancer.columns if c != "malignant"]
    teacher = fit_teacher(cancer[features], cancer["malignant"], n_estimators=100)
    ds = DistillationDataset(cancer, target="malignant", teacher=teacher, name="cancer")
    config = HPMConfig(**GRID, use_cache=False, use_memory=False)
    distiller = AutoDistiller(ds, method="legacy", config=config, random_state=42)
    events: list[Event] = []
    results = distiller.run(callbacks=[events.append])
    return {
        "distiller": distiller,
        "results": results,
        "events": events,
        "dataset": ds,
        "teacher": teacher,
        "features": features,
        "config": config,
    }


# ----------------------------------------------------------------------------- results_df
def test_results_have_one_row_per_grid_candidate_plus_teacher_and_baseline(legacy_run):
    results = legacy_run["results"]
    n_grid = len(GRID["families"]) * len(GRID["temperatures"]) * len(GRID["alphas"])
    assert len(results) == n_grid + 2
    counts = results["source"].value_counts().to_dict()
    assert counts == {"grid": n_grid, "teacher": 1, "baseline": 1}
    grid = results[results["source"] == "grid"]
    combos = set(zip(grid["family"], grid["temperature"], grid["alpha"], strict=True))
    assert combos == {
        (f, t, a) for f in GRID["families"] for t in GRID["temperatures"] for a in GRID["alphas"]
    }
    assert set(grid["capacity"]) == {"medium"}
    val_cols = [c for c in results.columns if c.startswith("val_")]
    assert grid[val_cols].notna().all().all()
    # The test rows are read once: only the selected student has test figures.
    test_cols = [c for c in results.columns if c.startswith("test_")]
    assert grid.loc[grid["selected"], test_cols].notna().all().all()
    assert grid.loc[~grid["selected"], test_cols].isna().all().all()
    # Different candidates really are different models.
    assert grid["val_kl_to_teacher"].nunique() == n_grid


def test_selected_follows_the_selection_rule(legacy_run):
    results, distiller = legacy_run["results"], legacy_run["distiller"]
    assert results["selected"].sum() == 1
    selected = results[results["selected"]].iloc[0]
    grid = results[results["source"] == "grid"]
    best_val = grid["val_ks"].max()
    # The rule saw the train-only fits' sizes; the selected row shows the shipped final
    # fit's (hpmkd.engine.final_fit).
    shipped = distiller.result_.selected
    grid = grid.assign(size_bytes=grid["size_bytes"].where(
        ~grid["selected"], shipped.extra["final_fit"]["train_only_size_bytes"]))
    tied = grid[grid["val_ks"] == best_val]
    top = tied.loc[tied["size_bytes"].idxmin()]
    rule = distiller.result_.components.selection_rule
    assert rule.rule == "smaller_if_noninferior" and rule.top_by_validation == top["name"]
    assert selected["source"] == "grid"
    assert shipped.extra["final_fit"]["train_only_size_bytes"] <= top["size_bytes"]
    assert selected["name"] == expected_selection(distiller) == distiller.best_name
    assert rule.selected == selected["name"] and rule.reason


def test_selection_rule_best_takes_the_validation_argmax(cancer, fit_teacher):
    features = [c for c in cancer.columns if c != "malignant"]
    teacher = fit_teacher(cancer[features], cancer["malignant"], n_estimators=60)
    ds = DistillationDataset(cancer, target="malignant", teacher=teacher)
    config = HPMConfig(**GRID, use_cache=False, use_memory=False, selection_rule="best")
    distiller = AutoDistiller(ds, method="legacy", config=config, random_state=0)
    results = distiller.run()
    grid = results[results["source"] == "grid"]
    tied = grid[grid["val_ks"] == grid["val_ks"].max()]
    assert distiller.best_name == tied.loc[tied["size_bytes"].idxmin(), "name"]
    assert distiller.best_name == expected_selection(distiller)


def test_teacher_row_agrees_with_itself(legacy_run):
    teacher = legacy_run["results"].query("source == 'teacher'").iloc[0]
    assert teacher["family"] == "LGBMClassifier"
    assert teacher["test_fidelity"] == 1.0
    assert teacher["test_kl_to_teacher"] == pytest.approx(0.0, abs=1e-9)
    assert teacher["size_bytes"] == size_bytes(legacy_run["teacher"])
    assert not teacher["selected"]


def test_baseline_is_the_hard_label_twin_of_the_selected(legacy_run):
    results = legacy_run["results"]
    selected = results[results["selected"]].iloc[0]
    baseline = results.query("source == 'baseline'").iloc[0]
    assert baseline["alpha"] == 0.0
    for column in ("family", "capacity", "params"):
        assert baseline[column] == selected[column]
    assert not baseline["selected"]
    summary = legacy_run["distiller"].summary()
    assert summary["baseline_model"] == baseline["name"]
    assert summary["baseline"]["ks"] == pytest.approx(baseline["test_ks"])


def test_best_metrics_are_the_selected_rows_test_metrics(legacy_run):
    distiller, results = legacy_run["distiller"], legacy_run["results"]
    metrics = distiller.best_metrics
    assert METRIC_KEYS <= set(metrics) <= METRIC_KEYS | {"undefined"}
    selected = results[results["selected"]].iloc[0]
    for name in ("accuracy", "f1", "auc", "ks", "fidelity", "rank_fidelity", "kl_to_teacher"):
        assert metrics[name] == pytest.approx(selected[f"test_{name}"])
    assert metrics["size_bytes"] == size_bytes(distiller.best_model())
    assert math.isfinite(metrics["latency_ms_1k"]) and metrics["latency_ms_1k"] > 0


def test_reported_test_ks_is_recomputable_from_predictions(legacy_run, cancer):
    distiller, ds = legacy_run["distiller"], legacy_run["dataset"]
    split = ds.split(legacy_run["config"].validation_split, 42)
    rows = cancer.iloc[split.test]
    score = distiller.predict_proba(rows)[:, 1]
    y = rows["malignant"].to_numpy()
    expected = ks_2samp(score[y == 1], score[y == 0]).statistic
    assert distiller.best_metrics["ks"] == pytest.approx(expected)
    assert distiller.best_metrics["accuracy"] == pytest.approx(
        np.mean(distiller.predict(rows) == y)
    )


def test_predict_and_predict_proba_on_raw_dataframe(legacy_run, cancer):
    distiller = legacy_run["distiller"]
    raw = cancer.drop(columns="malignant").iloc[::7]
    proba = distiller.predict_proba(raw)
    assert proba.shape == (len(raw), 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    pred = distiller.predict(raw)
    assert np.array_equal(pred, np.array([0, 1])[proba.argmax(axis=1)])
    assert np.mean(pred == cancer["malignant"].iloc[::7].to_numpy()) > 0.9
    # Column order of the raw rows does not matter; a missing feature is a clear error.
    shuffled = raw[raw.columns[::-1]]
    assert np.allclose(distiller.predict_proba(shuffled), proba)
    with pytest.raises(hpmkd.HPMKDInputError, match="mean radius"):
        distiller.predict_proba(raw.drop(columns="mean radius"))


def test_summary_is_json_and_names_the_method(legacy_run):
    summary = legacy_run["distiller"].summary()
    json.dumps(summary)  # plain data
    assert summary["method"] == "legacy"
    assert summary["method_reason"] == "legacy: chosen explicitly"
    assert summary["n_rows"] == 569 and summary["n_features"] == 30
    assert summary["n_candidates"] == 12
    assert summary["stopped_by_time_budget"] is False
    assert set(summary["timings"]) >= {"grid", "compare", "total"}


# ----------------------------------------------------------------------------- auto method
@pytest.mark.parametrize(
    ("rows", "features", "method", "words"),
    [
        (500, 10, "legacy", "fewer than 1,000"),
        (5_000, 10, "hpm", "mid-sized"),
        (20_000, 10, "hpm", "more than 10,000 rows"),
        (2_000, 60, "hpm", "more than 50 features"),
        (999, 10, "legacy", "fewer than 1,000"),
        (1_000, 10, "hpm", "mid-sized"),
        (10_000, 50, "hpm", "mid-sized"),
        (10_001, 5, "hpm", "more than 10,000 rows"),
        (300, 51, "hpm", "more than 50 features"),
    ],
)
def test_choose_method(rows, features, method, words):
    chosen, reason = choose_method(rows, features)
    assert chosen == method
    assert words in reason
    assert reason.startswith("auto:") and f"{rows:,}" in reason


def _frame(rows: int, features: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.normal(size=(rows, features)).astype(np.float32),
        columns=[f"x{i}" for i in range(features)],
    )
    frame["y"] = np.arange(rows) % 2
    return frame


@pytest.mark.parametrize(
    ("rows", "features", "method", "words"),
    [
        (500, 10, "legacy", "fewer than 1,000"),
        (5_000, 10, "hpm", "mid-sized"),
        (20_000, 10, "hpm", "more than 10,000 rows"),
        (2_000, 60, "hpm", "more than 50 features"),
    ],
)
def test_resolve_method_from_dataset_size(rows, features, method, words):
    ds = DistillationDataset(_frame(rows, features), target="y")
    assert ds.n_rows == rows and ds.n_features == features
    chosen, reason = AutoDistiller(ds, method="auto").resolve_method()
    assert chosen == method and words in reason
    assert AutoDistiller(ds, method="legacy").resolve_method() == (
        "legacy",
        "legacy: chosen explicitly",
    )


def test_auto_run_on_small_data_uses_legacy_and_reports_why(binary_frame, fit_teacher, fast_config):
    features = ["f0", "f1", "f2", "f3", "f4"]
    teacher = fit_teacher(binary_frame[features], binary_frame["target"])
    ds = DistillationDataset(binary_frame, target="target", teacher=teacher)
    distiller = AutoDistiller(ds, config=fast_config)
    distiller.run()
    assert distiller.method_ == "legacy"
    assert "fewer than 1,000" in distiller.method_reason_
    assert distiller.summary()["method_reason"] == distiller.method_reason_


def test_unknown_method_is_refused(binary_frame):
    ds = DistillationDataset(binary_frame, target="target")
    with pytest.raises(hpmkd.HPMKDInputError, match="method='fast' is not known"):
        AutoDistiller(ds, method="fast")


# ----------------------------------------------------------------------------- callbacks
def test_callbacks_receive_every_phase_and_candidate(legacy_run):
    events = legacy_run["events"]
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert events[0].data["method"] == "legacy"
    phases = [(e.kind, e.phase) for e in events if e.kind in {"phase_start", "phase_end"}]
    assert phases == [
        ("phase_start", "grid"),
        ("phase_end", "grid"),
        ("phase_start", "compare"),
        ("phase_end", "compare"),
    ]
    grid_start = kinds.index("phase_start")
    grid_end = kinds.index("phase_end")
    candidates = [e for e in events if e.kind == "candidate"]
    assert len(candidates) == 12
    assert all(grid_start < kinds.index("candidate") and events.index(e) < grid_end
               for e in candidates)
    results = legacy_run["results"].set_index("name")
    for event in candidates:
        row = event.data["row"]
        assert row["val_ks"] == pytest.approx(results.loc[row["name"], "val_ks"])
        # Candidates are announced before the compare phase: no test figures yet.
        assert math.isnan(row["test_auc"])
    assert events[-1].data["best"] == legacy_run["distiller"].best_name


def test_a_failing_callback_does_not_stop_the_run(binary_frame, fit_teacher, fast_config):
    features = ["f0", "f1", "f2", "f3", "f4"]
    teacher = fit_teacher(binary_frame[features], binary_frame["target"])
    ds = DistillationDataset(binary_frame, target="target", teacher=teacher)
    config = fast_config.with_updates(alphas=(0.9, 0.1))
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("the UI went away")

    distiller = AutoDistiller(ds, method="legacy", config=config)
    results = distiller.run(callbacks=[broken, lambda e: seen.append(e.kind)])
    assert len(results) == 2 + 2
    assert seen[0] == "run_start" and seen[-1] == "run_end"
    assert seen.count("candidate") == 2
    assert distiller.best_model() is not None


# ----------------------------------------------------------------------------- time budget
def test_tiny_time_budget_trains_fewer_candidates_but_keeps_a_best(binary_frame, fit_teacher):
    features = ["f0", "f1", "f2", "f3", "f4"]
    teacher = fit_teacher(binary_frame[features], binary_frame["target"])
    ds = DistillationDataset(binary_frame, target="target", teacher=teacher)
    config = HPMConfig(**GRID, time_budget_s=0.001, use_cache=False, use_memory=False)
    distiller = AutoDistiller(ds, method="legacy", config=config)
    results = distiller.run()
    grid = results[results["source"] == "grid"]
    assert 1 <= len(grid) < 12
    assert results["selected"].sum() == 1
    assert distiller.summary()["stopped_by_time_budget"] is True
    assert distiller.predict_proba(binary_frame).shape == (400, 2)


def test_results_before_run_are_refused(binary_frame):
    distiller = AutoDistiller(DistillationDataset(binary_frame, target="target"))
    with pytest.raises(RuntimeError, match="run"):
        distiller.best_model()


def test_run_without_teacher_is_a_clear_error(binary_frame):
    distiller = AutoDistiller(DistillationDataset(binary_frame, target="target"), method="legacy")
    with pytest.raises(hpmkd.HPMKDInputError, match="no teacher"):
        distiller.run()


# ----------------------------------------------------------------------------- saved model
_CHILD = (
    textwrap.dedent(
        """
    import sys
    from pathlib import Path

    project = Path(sys.argv[1]).resolve()
    model_path, csv_path, out_path = sys.argv[2:5]

    """
    )
    + HIDE_HPMKD
    + textwrap.dedent(
        """

    import joblib
    import numpy as np
    import pandas as pd

    model = joblib.load(model_path)
    assert "hpmkd" not in sys.modules, "loading the model imported hpmkd"
    raw = pd.read_csv(csv_path)
    np.savez(out_path, proba=model.predict_proba(raw), pred=model.predict(raw))
    print("child ok", type(model).__name__)
        """
    )
)


def test_saved_best_model_predicts_without_hpmkd(legacy_run, cancer, tmp_path, venv_python):
    distiller = legacy_run["distiller"]
    model_path = distiller.save_best_model(tmp_path / "nested" / "best.joblib")
    assert model_path.exists()
    raw = cancer.drop(columns="malignant").iloc[:120]
    csv_path = tmp_path / "rows.csv"
    raw.to_csv(csv_path, index=False)
    parent_proba = distiller.predict_proba(pd.read_csv(csv_path))

    project = Path(hpmkd.__file__).resolve().parents[1]
    out_path = tmp_path / "child.npz"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(venv_python), "-I", "-c", _CHILD, str(project), str(model_path), str(csv_path),
         str(out_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "child ok CalibratedClassifierCV" in done.stdout
    child = np.load(out_path, allow_pickle=True)
    assert np.allclose(child["proba"], parent_proba, atol=1e-12)
    assert np.array_equal(child["pred"], distiller.predict(raw))
    # The file is the selected student itself.
    assert np.allclose(
        joblib.load(model_path).predict_proba(raw), distiller.best_model().predict_proba(raw)
    )


# ----------------------------------------------------------------------------- config warnings
def _stop_before_the_run(monkeypatch):
    """Make ``engine.run`` stop at once: the warnings come before it."""

    class Stopped(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stopped

    monkeypatch.setattr(hpmkd.distiller.engine, "run", stop)
    return Stopped


def test_settings_without_effect_warn_once_each_for_the_resolved_method(
    binary_frame, fit_teacher, fast_config, monkeypatch
):
    assert issubclass(hpmkd.HPMKDConfigWarning, UserWarning)
    features = ["f0", "f1", "f2", "f3", "f4"]
    ds = DistillationDataset(binary_frame, target="target",
                             teacher=fit_teacher(binary_frame[features], binary_frame["target"]))
    config = fast_config.with_updates(max_configs=8, n_jobs=4)
    distiller = AutoDistiller(ds, config=config)  # auto: 400 rows -> legacy
    with pytest.warns(hpmkd.HPMKDConfigWarning) as caught:
        distiller.run()
    messages = [str(w.message) for w in caught if w.category is hpmkd.HPMKDConfigWarning]
    legacy = "has no effect: the legacy method does not use it; use method 'hpm', or leave"
    assert messages == [
        f"HPMConfig.max_configs=8 {legacy} max_configs at its default (16).",
        f"HPMConfig.use_cache=False {legacy} use_cache at its default (True).",
        f"HPMConfig.n_jobs=4 {legacy} n_jobs at its default (2).",
        f"HPMConfig.use_memory=False {legacy} use_memory at its default (True).",
    ]
    assert distiller.method_ == "legacy" and distiller.results_df is not None  # it still ran

    # Under hpm the same settings are used, except n_jobs without parallel training.
    stopped = _stop_before_the_run(monkeypatch)
    hpm = AutoDistiller(ds, method="hpm", config=config)
    with pytest.warns(hpmkd.HPMKDConfigWarning) as caught, pytest.raises(stopped):
        hpm.run()
    assert [str(w.message) for w in caught] == [
        "HPMConfig.n_jobs=4 has no effect: use_parallel is False; set use_parallel=True, or "
        "leave n_jobs at its default (2)."
    ]


def test_a_config_whose_settings_all_apply_warns_nothing(binary_frame, monkeypatch):
    import warnings

    stopped = _stop_before_the_run(monkeypatch)
    ds_teacher = DistillationDataset(binary_frame.assign(p0=0.5, p1=0.5), target="target",
                                     teacher_proba_cols=["p0", "p1"])
    for method, config in (("legacy", HPMConfig(**GRID, selection_rule="best")),
                           ("hpm", HPMConfig(use_parallel=True, n_jobs=2, max_configs=4,
                                             use_progressive=False))):
        with warnings.catch_warnings():
            warnings.simplefilter("error", hpmkd.HPMKDConfigWarning)
            with pytest.raises(stopped):
                AutoDistiller(ds_teacher, method=method, config=config).run()
