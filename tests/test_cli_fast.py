"""The command line starts without the heavy libraries, and an identical rerun is served
from the run cache with the outputs a cold run writes (and trains nothing)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest

from tests.conftest import PROJECT_ROOT

#: Imported only when a run needs them; ``hpmkd --help`` must not pay for them.
HEAVY = ("sklearn", "lightgbm", "pandas", "scipy", "joblib", "diskcache", "plotly")

_LOADED = """
import sys
{action}
heavy = {heavy!r}
print("loaded:" + ",".join(m for m in heavy if m in sys.modules))
"""


def _loaded_after(action: str) -> list[str]:
    code = _LOADED.format(action=action, heavy=HEAVY)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The last line is ours (help text comes before it).
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), done.stdout[-2000:]
    return [m for m in last.removeprefix("loaded:").split(",") if m]


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _loaded_after("import hpmkd.cli") == []


def test_help_loads_no_heavy_library() -> None:
    action = (
        "from hpmkd.cli import main\n"
        "for argv in (['--help'], ['distill', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
    )
    assert _loaded_after(action) == []


def test_the_check_sees_a_heavy_import() -> None:
    # The checks above must be able to fail: touching a lazy public name loads the engine.
    assert {"sklearn", "pandas"} <= set(_loaded_after("import hpmkd\nhpmkd.AutoDistiller"))


def test_lazy_public_names_are_the_real_ones() -> None:
    import hpmkd
    from hpmkd.distiller import AutoDistiller

    assert hpmkd.AutoDistiller is AutoDistiller
    assert set(hpmkd.__all__) <= set(dir(hpmkd))
    for name in hpmkd.__all__:
        assert getattr(hpmkd, name) is not None


# ----------------------------------------------------------------------------- run cache
FEATURES = ["f0", "f1", "f2", "f3", "f4"]
# A small hpm run (memory on, as by default): few, small candidates.
FAST = ["--method", "hpm", "--set", "families=tree,logreg", "--set", "max_configs=2",
        "--set", "n_trials=1", "--set", "temperatures=1,2", "--set", "alphas=0.5"]
OUTPUTS = ("results.csv", "timings.csv", "best_model.joblib", "summary.json")


@pytest.fixture(scope="module")
def files(tmp_path_factory, make_frame, fit_teacher) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("run-cache-inputs")
    frame = make_frame(n_rows=1500, seed=3)
    teacher = fit_teacher(frame[FEATURES], frame["target"])
    frame.to_csv(folder / "data.csv", index=False)
    joblib.dump(teacher, folder / "teacher.joblib")
    return {"data": folder / "data.csv", "teacher": folder / "teacher.joblib"}


@pytest.fixture
def runs(monkeypatch, tmp_path, fit_counter):
    """``distill(out, *extra) -> (exit code, stderr)``, in a private HPMKD_HOME; counts the
    engine runs and the student fits (``runs.engine``, ``runs.fits``)."""
    import hpmkd.engine
    from hpmkd.cli import main

    monkeypatch.setenv("HPMKD_HOME", str(tmp_path / "home"))
    engine_runs: list[int] = []
    original = hpmkd.engine.run

    def counting(*args, **kwargs):
        engine_runs.append(1)
        result = original(*args, **kwargs)
        # As if the time budget had stopped the search (the result is otherwise real).
        if not runs.stopped:
            return result
        return dataclasses.replace(
            result,
            stopped_by_budget=True,
            stop_reason="time budget of 1 s reached in the train phase",
        )

    monkeypatch.setattr(hpmkd.engine, "run", counting)

    class Runs:
        engine, fits = engine_runs, fit_counter
        stopped = False

        def __call__(self, data: Path, teacher: Path, out: Path, *extra: str):
            return main(["distill", str(data), "--target", "target", "--teacher",
                         str(teacher), *FAST, "--out", str(out), *extra])

    runs = Runs()
    return runs


def _outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def _summary_without_rerun(data: bytes) -> dict:
    summary = json.loads(data)
    summary.pop("run_cache", None)
    return summary


def _memory_runs_on(fingerprint: str) -> int:
    from hpmkd import HPMConfig
    from hpmkd.components.memory import SharedOptimizationMemory

    store = SharedOptimizationMemory.from_config(HPMConfig()).store
    return sum(r.fingerprint == fingerprint for r in store.all())


def test_identical_rerun_writes_the_cold_outputs_and_trains_nothing(
    files, runs, tmp_path, capsys
):
    assert runs(files["data"], files["teacher"], tmp_path / "cold") == 0
    assert runs.engine == [1] and len(runs.fits) > 0
    cold = _outputs(tmp_path / "cold")
    assert json.loads(cold["summary.json"])["details"]["cache"]["enabled"] is True
    cold_err = capsys.readouterr().err
    fits_before = len(runs.fits)
    assert runs(files["data"], files["teacher"], tmp_path / "again") == 0
    err = capsys.readouterr().err
    # Nothing ran, nothing was trained; the same files came out.
    assert runs.engine == [1] and len(runs.fits) == fits_before
    assert "identical run found in the run cache" in err
    assert any(line.startswith("best ") for line in err.splitlines())
    # The closing lines are the cold run's: the test figures of student, twin and teacher
    # (KS, AUC, ECE, Brier), then the verdict and every comparison.
    closing = cold_err[cold_err.index("\nbest ") + 1:].splitlines()
    # (the first line names this run's output folder)
    assert err.splitlines()[-len(closing) + 1:] == closing[1:]
    assert closing[1].startswith("test figures on ")
    assert all(" ECE " in line and " Brier " in line for line in closing[2:5])
    assert any(line.startswith("distillation gain (") for line in closing)
    again = _outputs(tmp_path / "again")
    assert again["results.csv"] == cold["results.csv"]
    assert again["timings.csv"] == cold["timings.csv"]  # the first run's clocks, again
    assert again["best_model.joblib"] == cold["best_model.joblib"]
    assert _summary_without_rerun(again["summary.json"]) == json.loads(cold["summary.json"])
    served = json.loads(again["summary.json"])["run_cache"]
    assert served["served"] is True and served["first_run_seconds"] > 0
    model = joblib.load(tmp_path / "again" / "best_model.joblib")
    assert hasattr(model, "predict_proba")


def test_a_served_rerun_records_the_run_in_the_memory(files, runs, tmp_path):
    from hpmkd import DistillationDataset

    runs(files["data"], files["teacher"], tmp_path / "cold")
    fingerprint = DistillationDataset(
        str(files["data"]), target="target", teacher=str(files["teacher"])
    ).fingerprint()
    assert _memory_runs_on(fingerprint) == 1
    runs(files["data"], files["teacher"], tmp_path / "again")
    assert runs.engine == [1]
    assert _memory_runs_on(fingerprint) == 2


def test_the_rerun_is_not_served_when_anything_that_decides_the_run_changed(
    files, runs, tmp_path
):
    from hpmkd import HPMConfig
    from hpmkd.components.memory import SharedOptimizationMemory

    runs(files["data"], files["teacher"], tmp_path / "cold")
    assert runs.engine == [1]
    # Other bytes in the data file (one more row): a new run.
    changed = tmp_path / "data.csv"
    frame = pd.read_csv(files["data"])
    pd.concat([frame, frame.iloc[:1]]).to_csv(changed, index=False)
    runs(changed, files["teacher"], tmp_path / "o2")
    assert runs.engine == [1, 1]
    # Another seed: a new run.
    runs(files["data"], files["teacher"], tmp_path / "o3", "--seed", "7")
    assert len(runs.engine) == 3
    # A run on other data enters the memory: the warm start may differ, a new run.
    SharedOptimizationMemory.from_config(HPMConfig()).record_run(
        "other", {"rows": 10.0}, "ks",
        [{"family": "tree", "capacity": "small", "temperature": 1.0, "alpha": 0.5}],
        fingerprint="other-data",
    )
    runs(files["data"], files["teacher"], tmp_path / "o4")
    assert len(runs.engine) == 4
    # ... and with the memory unchanged since, the next identical run is served.
    runs(files["data"], files["teacher"], tmp_path / "o5")
    assert len(runs.engine) == 4
    # --report needs a file the entry does not hold: a run, then served with it.
    runs(files["data"], files["teacher"], tmp_path / "o6", "--report")
    assert len(runs.engine) == 5
    runs(files["data"], files["teacher"], tmp_path / "o7", "--report")
    assert len(runs.engine) == 5
    assert (tmp_path / "o7" / "report.html").read_bytes() == (
        tmp_path / "o6" / "report.html"
    ).read_bytes()
    # The cache off: every run runs.
    runs(files["data"], files["teacher"], tmp_path / "o8", "--set", "use_cache=false")
    runs(files["data"], files["teacher"], tmp_path / "o9", "--set", "use_cache=false")
    assert len(runs.engine) == 7


def test_a_run_the_time_budget_stopped_is_not_stored(files, runs, tmp_path):
    # Its result depends on the clock: an identical rerun must run again.
    runs.stopped = True
    runs(files["data"], files["teacher"], tmp_path / "o1")
    runs(files["data"], files["teacher"], tmp_path / "o2")
    assert runs.engine == [1, 1]
