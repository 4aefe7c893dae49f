"""``AutoDistiller(method="hpm")`` end to end: phases and events, ``results_df``, the
component switches, the cache, the optimization memory, the time budget and ``auto``.

Component unit tests live in test_temperature / test_multi_teacher /
test_chain_and_selection / test_cache / test_memory; these tests check that the
components are wired into a real run and that what the run records matches what it did.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig
from hpmkd.cli import main as cli_main
from hpmkd.metrics import compute_metrics
from tests.conftest import expected_selection, fit_lgbm_teacher, make_classification_frame

PHASES = ["select", "chain", "train", "ensemble", "compare"]
CANDIDATE_SOURCES = {"chain", "config", "climb", "ensemble"}
N_ROWS, N_FEATURES, TEACHER_TREES = 1200, 6, 60
SMALL = {"max_configs": 3, "n_trials": 2, "families": ("logreg", "tree", "lgbm")}
# Nothing on disk: runs with these settings cannot influence each other.
ISOLATED = {**SMALL, "use_cache": False, "use_memory": False}


# ----------------------------------------------------------------------------- helpers
def make_dataset(seed: int = 1, name: str = "synthetic-A", n_rows: int = N_ROWS):
    """A seeded table and its own small LightGBM teacher (rebuilding gives equal data)."""
    frame = make_classification_frame(n_rows=n_rows, n_features=N_FEATURES, seed=seed)
    teacher = fit_lgbm_teacher(frame.drop(columns="target"), frame["target"], TEACHER_TREES)
    return DistillationDataset(frame, target="target", teacher=teacher, name=name)


def run_hpm(dataset, events: list | None = None, method: str = "hpm", **config):
    distiller = AutoDistiller(dataset, method=method, config=HPMConfig(**config), random_state=42)
    distiller.run(callbacks=[events.append] if events is not None else None)
    return distiller


def candidate_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["source"].isin(CANDIDATE_SOURCES)]


def assert_same_frames(a: pd.DataFrame, b: pd.DataFrame, columns: list[str]) -> None:
    pd.testing.assert_frame_equal(
        a[columns].reset_index(drop=True), b[columns].reset_index(drop=True)
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HPMKD_HOME for one test (cache and memory start empty)."""
    path = tmp_path / "home"
    monkeypatch.setenv("HPMKD_HOME", str(path))
    return path


@pytest.fixture(scope="module")
def dataset_a():
    return make_dataset(1, "synthetic-A")


@pytest.fixture(scope="module")
def base_run(dataset_a, tmp_path_factory):
    """One default small hpm run (cache and memory on, fresh home), with its events."""
    events: list = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPMKD_HOME", str(tmp_path_factory.mktemp("hpm-base-home")))
        distiller = run_hpm(dataset_a, events, **SMALL)
    return distiller, events


# ----------------------------------------------------------------------------- 1. phases
def test_events_announce_every_phase_in_order_and_each_candidate(base_run):
    distiller, events = base_run
    df = distiller.results_df
    assert events[0].kind == "run_start" and events[-1].kind == "run_end"
    assert events[0].data["phases"] == PHASES
    assert events[0].data["method"] == "hpm"
    assert events[-1].data["best"] == distiller.best_name
    phase_events = [(e.kind, e.phase) for e in events if e.kind in {"phase_start", "phase_end"}]
    assert phase_events == [(k, p) for p in PHASES for k in ("phase_start", "phase_end")]

    # One candidate event per candidate row, in order, inside the phase that trained it.
    current, seen = None, []
    for event in events:
        if event.kind == "phase_start":
            current = event.phase
        elif event.kind == "phase_end":
            current = None
        elif event.kind == "candidate":
            row = event.data["row"]
            expected_phase = {"chain": "chain", "config": "train", "ensemble": "ensemble"}
            assert current == expected_phase[row["source"]], row["name"]
            seen.append(row)
    rows = candidate_rows(df)
    assert [r["name"] for r in seen] == rows["name"].tolist()
    assert [r["val_ks"] for r in seen] == rows["val_ks"].tolist()
    indices = [e.data["index"] for e in events if e.kind == "candidate"]
    assert indices == list(range(1, len(seen) + 1))


def test_summary_lists_phases_and_timings(base_run):
    distiller, _ = base_run
    summary = distiller.summary()
    assert summary["method"] == "hpm"
    assert summary["phases"] == PHASES
    timings = summary["timings"]
    assert set(timings) == {*PHASES, "total"}
    assert all(timings[p] >= 0 for p in PHASES)
    assert timings["select"] > 0 and timings["train"] > 0  # real fits take time
    assert timings["total"] >= sum(timings[p] for p in PHASES)
    assert summary["stopped_by_time_budget"] is False
    assert summary["n_candidates"] == len(candidate_rows(distiller.results_df))
    json.dumps(summary)  # plain data


def test_cli_distill_method_hpm_writes_summary_with_phases(tmp_path, home, capsys):
    frame = make_classification_frame(n_rows=N_ROWS, n_features=N_FEATURES, seed=3)
    teacher = fit_lgbm_teacher(frame.drop(columns="target"), frame["target"], TEACHER_TREES)
    data, model = tmp_path / "data.csv", tmp_path / "teacher.joblib"
    frame.to_csv(data, index=False)
    joblib.dump(teacher, model)
    out = tmp_path / "out"
    code = cli_main(
        [
            "distill",
            str(data),
            "--target",
            "target",
            "--teacher",
            str(model),
            "--method",
            "hpm",
            "--set",
            "max_configs=3",
            "--set",
            "n_trials=2",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "hpm"
    assert summary["method_reason"] == "hpm: chosen explicitly"
    assert summary["phases"] == PHASES
    assert set(summary["timings"]) == {*PHASES, "total"}
    assert summary["config"]["max_configs"] == 3 and summary["config"]["n_trials"] == 2
    for phase in PHASES:
        assert f"[{phase}]" in err
    results = pd.read_csv(out / "results.csv")
    assert set(results["source"]) >= {"chain", "config", "teacher", "baseline"}
    assert results.loc[results["selected"], "name"].tolist() == [summary["best_model"]]


# ----------------------------------------------------------------------------- 2. results_df
RESULT_COLUMNS = (
    ["name", "source", "family", "params", "temperature", "alpha", "trial"]
    + [f"{split}_{m}" for split in ("val", "test") for m in ("ks", "auc", "accuracy", "f1")]
    + ["val_fidelity", "test_fidelity", "fit_seconds", "size_bytes", "latency_ms_1k"]
    + ["from_cache", "selected"]
)


def racing_stopped(distiller):
    """What racing stopped (nothing when racing never ran)."""
    racing = distiller.result_.components.racing
    return racing.stopped if racing is not None else ()


def test_results_df_has_one_row_per_candidate_teacher_and_baseline(base_run):
    distiller, _ = base_run
    df, record = distiller.results_df, distiller.result_
    assert set(RESULT_COLUMNS) <= set(df.columns)
    assert set(df["source"]) <= CANDIDATE_SOURCES | {"teacher", "baseline"}
    rows = candidate_rows(df)
    assert len(rows) == len(record.candidates) and len(rows) > 0
    assert rows["name"].is_unique
    assert (df["source"] == "teacher").sum() == 1
    assert (df["source"] == "baseline").sum() == 1
    assert len(df) == len(rows) + 2
    baseline = df[df["source"] == "baseline"].iloc[0]
    assert baseline["alpha"] == 0.0
    for col in ("val_ks", "val_auc", "val_ece", "val_brier", "size_bytes", "latency_ms_1k"):
        assert rows[col].notna().all(), col
    # The test rows are read once: only the selected student has test figures.
    assert rows.loc[rows["selected"], ["test_ks", "test_ece"]].notna().all().all()
    assert rows.loc[~rows["selected"], ["test_ks", "test_auc"]].isna().all().all()
    assert ((rows["val_ks"] >= 0) & (rows["val_ks"] <= 1)).all()
    assert (rows["size_bytes"] > 0).all() and (rows["fit_seconds"] > 0).all()
    # Candidates are distinct models, not copies of one row.
    assert rows["val_auc"].nunique() > 1 and rows["params"].nunique() > 1


def test_exactly_one_selected_row_follows_the_selection_rule(base_run):
    distiller, _ = base_run
    df = distiller.results_df
    assert df["selected"].sum() == 1
    selected = df[df["selected"]].iloc[0]
    rows = candidate_rows(df)
    assert selected["source"] in CANDIDATE_SOURCES
    ties = rows[rows["val_ks"] == rows["val_ks"].max()]
    top = ties.loc[ties["size_bytes"].idxmin()]
    rule = distiller.result_.components.selection_rule
    assert rule.top_by_validation == top["name"]
    assert selected["size_bytes"] <= top["size_bytes"]
    assert selected["name"] == expected_selection(distiller)
    assert selected["name"] == distiller.best_name == distiller.summary()["best_model"]
    # The reported test metrics come from the best model's real predictions on the test rows.
    record = distiller.result_
    X_test = distiller.dataset.X.iloc[record.split.test]
    proba = distiller.predict_proba(X_test)
    metrics = compute_metrics(
        record.y_test, proba, distiller.dataset.teacher_proba()[record.split.test]
    )
    assert selected["test_ks"] == pytest.approx(metrics["ks"], abs=1e-12)
    assert selected["test_auc"] == pytest.approx(metrics["auc"], abs=1e-12)
    assert distiller.best_metrics["ks"] == pytest.approx(metrics["ks"], abs=1e-12)


def test_temperatures_are_recorded_with_a_reasoned_decision_each(base_run):
    distiller, _ = base_run
    df, details = distiller.results_df, distiller.result_.components
    trained = df[df["source"].isin({"chain", "config"})]
    assert trained["temperature"].notna().all() and (trained["temperature"] > 0).all()
    temperature = details.temperature
    assert temperature.adaptive is True
    decisions = temperature.decisions
    assert sorted(d["candidate"] for d in decisions) == sorted(trained["name"])
    by_name = trained.set_index("name")["temperature"]
    for decision in decisions:
        assert isinstance(decision["reason"], str) and decision["reason"].strip()
        assert decision["temperature"] == by_name[decision["candidate"]]
    # Adaptive: at least one temperature was chosen from measured feedback.
    assert any(d.get("feedback") for d in decisions)


def test_chain_rows_carry_the_stage_metrics(base_run):
    distiller, _ = base_run
    df, chain = distiller.results_df, distiller.result_.components.chain
    assert chain.enabled is True
    stages = chain.stages
    chain_rows = df[df["source"] == "chain"]
    assert len(stages) >= 1 and len(chain_rows) == len(stages)
    assert chain_rows["name"].tolist() == [s["name"] for s in stages]
    assert chain_rows["val_ks"].tolist() == [s["val_metric"] for s in stages]
    assert all("test_metric" not in s for s in stages)
    assert chain_rows["temperature"].tolist() == [s["temperature"] for s in stages]
    assert chain_rows["capacity"].tolist() == [s["capacity"] for s in stages]
    assert chain.stop_reason
    if len(stages) < HPMConfig().max_chain_stages:
        assert stages[-1]["kept"] is False


def test_selected_configs_have_reasons_and_n_trials_each(base_run):
    distiller, _ = base_run
    df, selection = distiller.results_df, distiller.result_.components.selection
    configs = selection.configs
    assert 1 <= len(configs) <= SMALL["max_configs"]
    assert all(isinstance(c["reason"], str) and c["reason"].strip() for c in configs)
    assert all(c["temperature"] is None for c in configs)  # adaptive: set per trial
    config_rows = df[df["source"] == "config"]
    # Racing may stop a clearly worse config after a trial; the record says so.
    stopped = {
        s["config"]: s["after_trial"]
        for s in racing_stopped(distiller)
    }
    for s in racing_stopped(distiller):
        assert s["share_worse"] >= 0.9 and "paired bootstrap" in s["reason"]
    expected_rows = 0
    for c in configs:
        mine = config_rows[
            (config_rows["family"] == c["family"])
            & (config_rows["capacity"] == c["capacity"])
            & (config_rows["alpha"] == c["alpha"])
        ]
        last = stopped.get(c["label"], SMALL["n_trials"] - 1)
        assert sorted(mine["trial"]) == list(range(last + 1)), c["label"]
        expected_rows += last + 1
    assert len(config_rows) == expected_rows
    assert set(selection.screen_scores) == {
        f"{f}-{cap}" for f in SMALL["families"] for cap in ("small", "medium")
    }


# ----------------------------------------------------------------------------- 3. switches
def test_progressive_off_trains_no_chain(dataset_a):
    distiller = run_hpm(dataset_a, use_progressive=False, **ISOLATED)
    df, details = distiller.results_df, distiller.result_.components
    assert not (df["source"] == "chain").any()
    assert (df["source"] == "config").any()
    assert details.chain.enabled is False
    assert details.chain.stages == ()
    assert all("stage" not in d for d in details.temperature.decisions)


def test_multi_teacher_adds_an_attention_ensemble_candidate(dataset_a):
    distiller = run_hpm(dataset_a, use_multi_teacher=True, **ISOLATED)
    df, attention = distiller.results_df, distiller.result_.components.attention
    ensemble = df[df["source"] == "ensemble"]
    assert len(ensemble) == 1
    assert attention.enabled is True
    assert attention.student == ensemble["name"].iloc[0]
    weights = attention.mean_weights
    assert tuple(weights) == attention.members
    assert "teacher LGBMClassifier" in weights and len(weights) >= 2
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-6)
    assert all(0 <= w <= 1 for w in weights.values())
    # One teacher: nothing to fuse before training.
    assert distiller.result_.components.teacher_attention is None


def test_multi_teacher_off_records_why(dataset_a):
    distiller = run_hpm(dataset_a, **ISOLATED)
    assert not (distiller.results_df["source"] == "ensemble").any()
    assert distiller.result_.components.attention.to_dict() == {
        "enabled": False,
        "reason": "use_multi_teacher=False",
    }


def test_attention_prefers_the_good_teacher_over_a_shuffled_one():
    frame = make_classification_frame(n_rows=N_ROWS, n_features=N_FEATURES, seed=1)
    X, y = frame.drop(columns="target"), frame["target"].to_numpy()
    good = fit_lgbm_teacher(X, y, TEACHER_TREES)
    shuffled = fit_lgbm_teacher(X, np.random.default_rng(0).permutation(y), TEACHER_TREES)
    ds = DistillationDataset(frame, target="target", teacher=[good, shuffled], name="two")
    good_name, bad_name = list(ds.teacher_probas)
    distiller = run_hpm(ds, use_multi_teacher=True, **ISOLATED)
    details = distiller.result_.components
    fused = details.teacher_attention
    assert fused.members == (good_name, bad_name)
    assert fused.mean_weights[good_name] > fused.mean_weights[bad_name]
    assert sum(fused.mean_weights.values()) == pytest.approx(1.0, abs=1e-6)
    # Fusing by attention beats the plain mean of a good and a useless teacher.
    assert fused.val_metric_fused > fused.val_metric_mean
    ensemble = details.attention.mean_weights
    assert ensemble[f"teacher {good_name}"] > ensemble[f"teacher {bad_name}"]
    assert sum(ensemble.values()) == pytest.approx(1.0, abs=1e-6)
    assert (distiller.results_df["source"] == "ensemble").sum() == 1
    assert (distiller.results_df["source"] == "teacher").sum() == 2


def test_fixed_temperatures_come_from_the_config(dataset_a):
    temps = (1.5, 3.0)
    distiller = run_hpm(dataset_a, use_adaptive_temperature=False, temperatures=temps, **ISOLATED)
    df, details = distiller.results_df, distiller.result_.components
    trained = df[df["source"].isin({"chain", "config"})]
    assert set(trained["temperature"]) <= set(temps)
    assert details.temperature.adaptive is False
    decisions = details.temperature.decisions
    assert sorted(d["candidate"] for d in decisions) == sorted(trained["name"])
    assert all("fixed" in d["reason"] for d in decisions)
    assert all(c["temperature"] in temps for c in details.selection.configs)


def test_memory_off_neither_warm_starts_nor_writes(dataset_a, home, tmp_path):
    memory_dir = tmp_path / "memory"
    distiller = run_hpm(dataset_a, use_memory=False, memory_dir=str(memory_dir), **SMALL)
    warm = distiller.result_.components.warm_start
    assert warm.enabled is False and warm.used is False
    assert not memory_dir.exists()
    assert not (home / "memory").exists()
    # The same run with memory on does write (so the check above can fail).
    run_hpm(dataset_a, memory_dir=str(memory_dir), **SMALL)
    assert (memory_dir / "memory.sqlite").is_file()


# ----------------------------------------------------------------------------- 4. cache
def test_identical_rerun_is_served_from_the_cache(home, fit_counter):
    first = run_hpm(make_dataset(1, "synthetic-A"), **SMALL)
    trained_first = len(fit_counter)
    assert trained_first > 0
    assert not candidate_rows(first.results_df)["from_cache"].all()

    fit_counter.clear()
    second = run_hpm(make_dataset(1, "synthetic-A"), **SMALL)  # rebuilt, identical
    assert len(fit_counter) == 0
    rows = candidate_rows(second.results_df)
    assert rows["from_cache"].all()
    assert second.results_df.loc[second.results_df["source"] == "baseline", "from_cache"].all()
    assert second.result_.components.cache.misses == 0
    assert second.result_.components.cache.hits > 0
    assert second.best_name == first.best_name
    assert second.best_metrics == first.best_metrics
    metric_cols = ["name", "source", "temperature", "val_ks", "val_auc", "test_ks", "test_auc"]
    assert_same_frames(candidate_rows(first.results_df), rows, metric_cols)


def test_cache_off_retrains_every_time(home, fit_counter, dataset_a):
    config = {**SMALL, "use_cache": False}
    first = run_hpm(dataset_a, **config)
    counts = [len(fit_counter)]
    second = run_hpm(dataset_a, **config)
    counts.append(len(fit_counter) - counts[0])
    assert counts[0] > 0 and counts[1] > 0
    for run in (first, second):
        assert not run.results_df["from_cache"].any()
        assert run.result_.components.cache.enabled is False
        assert run.result_.components.cache.hits == 0
    assert not (home / "cache").exists()
    assert second.best_name == first.best_name


def test_tiny_cache_limit_still_runs_correctly(home, fit_counter, dataset_a, monkeypatch):
    reference = run_hpm(dataset_a, **ISOLATED)
    fit_counter.clear()
    # HPMConfig refuses limits below 0.01 GB (a cache that holds nothing is a mistake);
    # this test wants eviction on every write, so it opens the run's cache at 1 KiB.
    from hpmkd.components.cache import IntelligentCache

    tiny = 1024

    def tiny_cache(config):
        return IntelligentCache(config.cache_dir, size_limit_bytes=tiny,
                                enabled=config.use_cache)

    monkeypatch.setattr(IntelligentCache, "from_config", staticmethod(tiny_cache))
    config = {**SMALL, "use_memory": False}
    runs = []
    for _ in range(2):
        runs.append(run_hpm(dataset_a, **config))
        assert len(fit_counter) > 0  # entries were evicted: the rerun trains again
        fit_counter.clear()
    cols = ["name", "source", "temperature", "alpha", "trial", "val_ks", "val_auc", "test_ks"]
    for run in runs:
        assert run.best_name == reference.best_name
        assert run.results_df["selected"].sum() == 1
        assert_same_frames(
            candidate_rows(reference.results_df), candidate_rows(run.results_df), cols
        )
        stats = run.result_.components.cache
        assert stats.size_limit_bytes == tiny
    assert not candidate_rows(runs[1].results_df)["from_cache"].all()


# ----------------------------------------------------------------------------- 5. memory
def test_similar_dataset_warm_starts_from_past_run_but_not_from_itself(home):
    ds_a = make_dataset(1, "synthetic-A")
    first = run_hpm(ds_a, **SMALL)
    warm_first = first.result_.components.warm_start
    assert warm_first.enabled is True and warm_first.used is False
    assert not first.result_.components.selection.warm_started
    assert (home / "memory" / "memory.sqlite").is_file()

    # A rerun on A itself finds only its own fingerprint: no warm start.
    rerun = run_hpm(ds_a, **SMALL)
    warm_rerun = rerun.result_.components.warm_start
    assert warm_rerun.used is False and warm_rerun.neighbours == ()
    assert not any(c["warm_started"] for c in rerun.result_.components.selection.configs)

    # B: same generator, other seed -> similar meta-features, different data.
    ds_b = make_dataset(2, "synthetic-B")
    assert ds_b.fingerprint() != ds_a.fingerprint()
    second = run_hpm(ds_b, **SMALL)
    details = second.result_.components
    warm = details.warm_start
    assert warm.enabled is True and warm.used is True
    assert warm.neighbours and {n["dataset"] for n in warm.neighbours} == {"synthetic-A"}
    # The reasons name the past run by id (a shared memory holds other people's runs).
    past = f"run {warm.neighbours[0]['run_id'][:8]}"
    assert past in warm.reason and "synthetic-A" not in warm.reason
    configs = details.selection.configs
    warm_configs = [c for c in configs if c["warm_started"]]
    assert warm_configs and details.selection.warm_started is True
    assert configs[0]["warm_started"]  # past winners go first
    assert all(past in c["reason"] for c in warm_configs)
    # Provenance: summary.json names the past runs whose settings were kept; they are
    # A's records in the memory, and none of the runs on A itself was warm-started.
    a_runs = {r.run_id for r in memory_records(home) if r.dataset == "synthetic-A"}
    runs = second.summary()["warm_start_runs"]
    assert runs and set(runs) <= a_runs and len(a_runs) == 2
    assert runs == list(dict.fromkeys(c["source_run"] for c in warm_configs))
    assert set(runs) <= {n["run_id"] for n in warm.neighbours}
    assert first.summary()["warm_start_runs"] == [] == rerun.summary()["warm_start_runs"]
    # The first warm-started config is A's best setting.
    best_a = first.result_.selected.spec
    assert (configs[0]["family"], configs[0]["capacity"], configs[0]["alpha"]) == (
        best_a.family,
        best_a.capacity,
        best_a.alpha,
    )


def test_a_warm_start_trains_its_stored_temperatures_and_says_what_it_merged(home):
    # The memory offers two settings that differ only in temperature, and one of a family
    # this run does not search: one configuration whose first two trials take the two
    # stored temperatures, and a record of what became of each stored setting.
    from hpmkd.components.memory import SharedOptimizationMemory

    ds = make_dataset(2, "synthetic-B")
    past = SharedOptimizationMemory.from_config(HPMConfig()).record_run(
        "past", ds.meta_features(), "ks",
        [{"family": "logreg", "capacity": "small", "temperature": 4.0, "alpha": 0.9,
          "val_score": 0.6},
         {"family": "logreg", "capacity": "small", "temperature": 1.5, "alpha": 0.9,
          "val_score": 0.59},
         {"family": "mlp", "capacity": "small", "temperature": 2.0, "alpha": 0.5,
          "val_score": 0.58}],
        fingerprint="other data",
    )
    distiller = run_hpm(ds, **{**SMALL, "use_cache": False})
    details = distiller.result_.components
    first = details.selection.configs[0]
    assert first["label"] == "logreg-small a=0.9 T=4,1.5,auto" and first["warm_started"]
    assert first["start_temperatures"] == [4.0, 1.5]
    warm = distiller.summary()["details"]["warm_start"]
    assert [c["use"] for c in warm["configs"]] == [
        "trained as logreg-small a=0.9 T=4,1.5,auto; its temperature 4 is trial 0's",
        "merged into logreg-small a=0.9 T=4,1.5,auto (the same family, capacity and alpha, "
        "whose temperatures the scheduler sets: one configuration); its temperature 1.5 is "
        "trial 1's",
        "not used: family 'mlp' is not searched (families=logreg,tree,lgbm)",
    ]
    assert warm["runs"] == [past.run_id]
    # The trials trained at the stored temperatures (trial 1 unless racing stopped the
    # configuration after trial 0), and the temperature record says why.
    decisions = {d["candidate"]: d for d in details.temperature.decisions}
    assert decisions["logreg-small T=4 a=0.9 #0"]["reason"].startswith("warm start: ")
    stopped = {r["config"] for r in details.racing.stopped} if details.racing else set()
    if first["label"] not in stopped:
        assert decisions["logreg-small T=1.5 a=0.9 #1"]["reason"].startswith("warm start: ")
    names = distiller.results_df["name"].tolist()
    assert "logreg-small T=4 a=0.9 #0" in names


def memory_records(home: Path) -> list:
    from hpmkd.components.memory import SQLiteStore

    return SQLiteStore(home / "memory" / "memory.sqlite").all()


def results_csv(distiller) -> bytes:
    """results.csv as the CLI writes it (the clocks are in timings.csv)."""
    from hpmkd.results_table import results_csv as to_csv

    return to_csv(distiller.results_df)


def test_memory_off_and_the_same_seed_reproduce_results_csv_exactly(tmp_path, monkeypatch):
    runs = []
    for i in range(2):  # separate homes: nothing carries over, every candidate retrains
        monkeypatch.setenv("HPMKD_HOME", str(tmp_path / f"home{i}"))
        runs.append(run_hpm(make_dataset(1, "synthetic-A"), use_memory=False, **SMALL))
    first, second = runs
    assert not candidate_rows(second.results_df)["from_cache"].any()
    assert results_csv(first) == results_csv(second)
    assert first.summary()["warm_start_runs"] == []
    # The clocks do differ: they are left out for a reason, not by accident.
    assert not first.results_df["fit_seconds"].equals(second.results_df["fit_seconds"])


# The reproduce procedure of README ("Reproducing a run") through the command line:
# results.csv compared byte for byte, every column.
CLI_SMALL = ["--set", "max_configs=3", "--set", "n_trials=2", "--set",
             "families=logreg,tree,lgbm"]


def write_cli_data(folder: Path, seed: int) -> Path:
    """A seeded table with the probabilities of a teacher fitted on other rows of the same
    kind as columns p0, p1 (similar tables for similar seeds: warm starts)."""
    frame = make_classification_frame(n_rows=N_ROWS, n_features=N_FEATURES, seed=seed)
    other = make_classification_frame(n_rows=N_ROWS, n_features=N_FEATURES, seed=seed + 50)
    teacher = fit_lgbm_teacher(other.drop(columns="target"), other["target"], TEACHER_TREES)
    proba = teacher.predict_proba(frame.drop(columns="target"))
    path = folder / f"data{seed}.csv"
    frame.assign(p0=proba[:, 0], p1=proba[:, 1]).to_csv(path, index=False)
    return path


def distill_cli(data: Path, out: Path, *settings: str, seed: int = 7) -> Path:
    """``hpmkd distill`` with the small hpm settings and ``--set`` ``settings``."""
    code = cli_main([
        "distill", str(data), "--target", "target", "--teacher-proba-cols", "p0,p1",
        "--method", "hpm", "--seed", str(seed), "--quiet", *CLI_SMALL,
        *(part for setting in settings for part in ("--set", setting)), "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    return out


def test_the_cli_with_memory_off_writes_results_csv_byte_for_byte_again(home, tmp_path):
    data = write_cli_data(tmp_path, 1)
    off = ("use_memory=false", "use_cache=false")
    first = distill_cli(data, tmp_path / "first", *off)
    second = distill_cli(data, tmp_path / "second", *off)
    results = (first / "results.csv").read_bytes()
    assert results == (second / "results.csv").read_bytes()  # every column, every byte
    assert b"fit_seconds" not in results and b"latency_ms_1k" not in results
    # The clocks are in timings.csv, by name and row for row, and they did change.
    one, two = (pd.read_csv(out / "timings.csv") for out in (first, second))
    assert list(one.columns) == ["name", "fit_seconds", "latency_ms_1k", "from_cache"]
    assert one["name"].tolist() == pd.read_csv(first / "results.csv")["name"].tolist()
    assert one["name"].tolist() == two["name"].tolist()
    assert not one["fit_seconds"].equals(two["fit_seconds"])
    # The disk cache changes no byte of results.csv either: a cold run with the cache on,
    # then the identical rerun the run cache serves (the same files again, timings too).
    cold = distill_cli(data, tmp_path / "cold", "use_memory=false")
    served = distill_cli(data, tmp_path / "served", "use_memory=false")
    assert json.loads((served / "summary.json").read_text())["run_cache"]["served"] is True
    for name in ("results.csv", "timings.csv", "best_model.joblib"):
        assert (served / name).read_bytes() == (cold / name).read_bytes(), name
    assert (cold / "results.csv").read_bytes() == results


def test_the_cli_reproduces_a_warm_started_run_from_a_copy_of_its_memory(home, tmp_path):
    import shutil

    memory, snapshot = tmp_path / "memory", tmp_path / "memory-copy"
    distill_cli(write_cli_data(tmp_path, 1), tmp_path / "a", f"memory_dir={memory}")
    shutil.copytree(memory, snapshot)  # no run uses it now: the memory as B will find it
    data_b = write_cli_data(tmp_path, 2)
    original = distill_cli(data_b, tmp_path / "b", f"memory_dir={memory}")
    runs = json.loads((original / "summary.json").read_text())["warm_start_runs"]
    assert runs  # B warm-started from A
    # Another run on similar data changes the memory: B would now decide otherwise.
    distill_cli(write_cli_data(tmp_path, 3), tmp_path / "c", f"memory_dir={memory}")
    drifted = distill_cli(data_b, tmp_path / "b-drifted", f"memory_dir={memory}")
    assert json.loads((drifted / "summary.json").read_text())["warm_start_runs"] != runs
    # The rerun pointed at the copy is the original run, byte for byte.
    again = distill_cli(data_b, tmp_path / "b-again", f"memory_dir={snapshot}")
    assert json.loads((again / "summary.json").read_text())["warm_start_runs"] == runs
    assert (again / "results.csv").read_bytes() == (original / "results.csv").read_bytes()


def test_a_warm_started_run_reproduces_from_its_memory_snapshot(home):
    import shutil

    nocache = {**SMALL, "use_cache": False}
    run_hpm(make_dataset(1, "synthetic-A"), **nocache)
    snapshot = home.parent / "memory-snapshot"
    shutil.copytree(home / "memory", snapshot)  # the memory as the next run finds it

    def offered(distiller) -> list[tuple]:
        """The stored settings the warm start offered, with the runs that offered them."""
        return [(c["run_id"], c["family"], c["capacity"], c["temperature"], c["alpha"])
                for c in distiller.result_.components.warm_start.configs]

    ds_b = make_dataset(2, "synthetic-B")
    original = run_hpm(ds_b, **nocache)
    assert original.summary()["warm_start_runs"]
    # Another similar run changes the memory: B's warm start now also draws on C.
    run_hpm(make_dataset(3, "synthetic-C"), **nocache)
    drifted = run_hpm(ds_b, **nocache)
    warm = drifted.result_.components.warm_start
    assert "synthetic-C" in {n["dataset"] for n in warm.neighbours}
    assert offered(drifted) != offered(original)

    shutil.rmtree(home / "memory")
    shutil.copytree(snapshot, home / "memory")  # restore the snapshot
    again = run_hpm(ds_b, **nocache)
    assert offered(again) == offered(original)
    assert again.summary()["warm_start_runs"] == original.summary()["warm_start_runs"]
    assert again.best_name == original.best_name
    assert results_csv(again) == results_csv(original)


# ----------------------------------------------------------------------------- 6. budget
def test_tiny_time_budget_keeps_a_best_model(base_run, dataset_a):
    distiller = run_hpm(dataset_a, time_budget_s=0.001, **ISOLATED)
    summary = distiller.summary()
    assert summary["stopped_by_time_budget"] is True
    assert 1 <= summary["n_candidates"] < base_run[0].summary()["n_candidates"]
    assert distiller.best_name in candidate_rows(distiller.results_df)["name"].tolist()
    proba = distiller.predict_proba(dataset_a.X.head(20))
    assert proba.shape == (20, 2) and np.allclose(proba.sum(axis=1), 1)
    assert summary["phases"] == PHASES


# ----------------------------------------------------------------------------- 8. auto
def test_auto_on_1500_rows_runs_hpm_and_says_why():
    ds = make_dataset(4, "mid", n_rows=1500)
    events: list = []
    distiller = run_hpm(ds, events, method="auto", **ISOLATED)
    summary = distiller.summary()
    assert summary["method"] == "hpm" and distiller.method_ == "hpm"
    assert "hpm" in summary["method_reason"] and "1,500" in summary["method_reason"]
    assert events[0].data["method"] == "hpm"
    assert summary["phases"] == PHASES
    assert math.isfinite(summary["student"]["ks"])


def test_halving_chain_and_promotions_share_one_subsample(dataset_a, monkeypatch):
    # Above HALVING_MIN_ROWS training rows (lowered here so a small table crosses it) the
    # chain trains on the rung-0 subsample of phase 3, rung 1 retrains at most one trial
    # per configuration, and the twin of a subsample candidate learns from those rows.
    import hpmkd.engine.session as session_module
    import hpmkd.engine.train as train_module

    monkeypatch.setattr(session_module, "HALVING_MIN_ROWS", 300)
    monkeypatch.setattr(train_module, "HALVING_MIN_ROWS", 300)
    d = run_hpm(dataset_a, **ISOLATED)
    result = d._check_run()
    n_train = result.split_sizes["train"]
    rung0 = max(300, n_train // 4)
    halving = result.components.halving
    assert halving.enabled and halving.rung0_rows == rung0 < n_train
    chain = [c for c in result.candidates if c.source == "chain"]
    assert chain and all(c.train_rows == rung0 for c in chain)
    assert all(c.name.endswith(f"[{rung0:,} rows]") for c in chain)
    full = [c for c in result.candidates if c.source == "config" and c.train_rows == n_train]
    assert len(full) == halving.rung1_trials >= 1
    configs = [(c.spec.family, c.spec.capacity, c.spec.alpha) for c in full]
    assert len(configs) == len(set(configs))
    assert result.twin is not None and result.twin.train_rows == result.selected.train_rows


def test_twin_reuses_the_alpha0_candidates_of_the_search(dataset_a, fit_counter):
    # With alpha 0 only, every trial of the selected configuration was trained on the same
    # rows as its twin trial would be: the twin takes those fits instead of refitting.
    d = run_hpm(dataset_a, **{**ISOLATED, "alphas": (0.0,)})
    result = d._check_run()
    selected, twin = result.selected, result.twin
    assert selected.spec.alpha == 0 and twin is not None
    same = [
        c for c in result.candidates
        if c.spec is not None and c.spec.alpha == 0
        and (c.spec.family, c.spec.capacity) == (selected.spec.family, selected.spec.capacity)
        and c.train_rows == twin.train_rows
    ]
    assert any(twin.model is c.model for c in same)
    # The reused fit is the one a fresh fit would make (alpha 0: labels only, whatever
    # the temperature).
    from hpmkd.engine.session import PLANS, RunSession
    from hpmkd.events import EventBus

    fits = len(fit_counter)
    session = RunSession(dataset_a, HPMConfig(**ISOLATED), PLANS["hpm"], 42, EventBus())
    fresh = session.fit(twin.spec)
    assert len(fit_counter) == fits + 1
    np.testing.assert_array_equal(fresh.val_proba, twin.val_proba)


def test_parallel_screening_and_twin_equal_the_sequential_ones(dataset_a):
    # In parallel, each screening step's fits and the twin's trials train together on
    # the executor: the same fits, the same scores as one at a time.
    seq = run_hpm(dataset_a, **ISOLATED)._check_run()
    par = run_hpm(dataset_a, **ISOLATED, use_parallel=True, n_jobs=2)._check_run()
    a, b = seq.components.selection, par.components.selection
    assert (a.screen_scores, a.alpha_scores, a.temperature_scores) == (
        b.screen_scores, b.alpha_scores, b.temperature_scores
    )
    assert par.selected.name == seq.selected.name
    assert par.twin.name == seq.twin.name
    np.testing.assert_allclose(par.twin.val_proba, seq.twin.val_proba)


def test_selected_and_twin_scored_on_test_side_by_side_give_the_sequential_numbers(
    binary_frame,
):
    # Phase 5 predicts the test rows of the selected student and of its twin in two
    # threads: the figures are those of one prediction after the other; a twin that is
    # the selected student's own model is predicted once, into a record of its own.
    from lightgbm import LGBMClassifier
    from sklearn.linear_model import LogisticRegression

    from hpmkd.engine.compare import _score_pair
    from hpmkd.evaluate import CandidateResult, TestRows, score_on_test

    X, y = binary_frame[[f"f{i}" for i in range(5)]], binary_frame["target"].to_numpy()
    train, test = slice(0, 300), slice(300, None)
    reference = np.column_stack([1 - y[test] * 0.8, y[test] * 0.8])
    rows = TestRows(X=X.iloc[test], y=y[test], reference=reference, classes=[0, 1])

    def result(name, model):
        model.fit(X.iloc[train], y[train])
        return CandidateResult(name, "train", None, {}, 0.0, 1, 0.0, np.zeros((0, 2)), model)

    student = result("student", LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1))
    twin = result("twin", LogisticRegression())
    scored, scored_twin = _score_pair(student, twin, rows)
    for got, alone in ((scored, score_on_test(student, rows)), (scored_twin,
                                                                score_on_test(twin, rows))):
        np.testing.assert_array_equal(got.test_proba, alone.test_proba)
        assert got.test == alone.test and got.name == alone.name
    shared = CandidateResult("baseline", "baseline", None, {}, 0.0, 1, 0.0, np.zeros((0, 2)),
                             student.model)
    scored, scored_twin = _score_pair(student, shared, rows)
    assert scored_twin.name == "baseline" and scored_twin.test == scored.test
    np.testing.assert_array_equal(scored_twin.test_proba, scored.test_proba)
    assert scored_twin.test_proba is not scored.test_proba
    assert _score_pair(student, None, rows)[1] is None


def test_a_teacher_that_ranks_backwards_is_not_followed():
    # A teacher fitted on inverted labels: learning from it hurts. The run must not ship
    # a student that ranks backwards (under the two-sided max |TPR - FPR|, which KS once
    # was, such a student scored like a good one and could be selected); it keeps to the
    # labels: alpha 0, or at most a small pull towards the teacher, and a student that
    # ranks the rows the right way round.
    from tests.conftest import fit_lgbm_teacher, make_classification_frame

    for seed in (0, 3):
        frame = make_classification_frame(n_rows=3000, n_features=6, seed=seed)
        teacher_rows, rows = frame.iloc[:1000], frame.iloc[1000:].reset_index(drop=True)
        inverted = 1 - teacher_rows["target"].to_numpy()
        teacher = fit_lgbm_teacher(teacher_rows.drop(columns="target"), inverted, 60)
        ds = DistillationDataset(rows, target="target", teacher=teacher, name="inverted")
        config = HPMConfig(max_configs=4, use_cache=False, use_memory=False)
        distiller = AutoDistiller(ds, method="hpm", config=config, random_state=seed)
        distiller.run()
        result = distiller.result_
        assert result.selected.spec is not None and result.selected.spec.alpha <= 0.1, seed
        assert result.selected.test["auc"] > 0.8, seed
        teacher_test = result.teachers[0].test
        assert teacher_test["auc"] < 0.2 and teacher_test["ks"] < 0.05, seed  # it is reversed
        assert result.verdict.outcome != "helped", seed
