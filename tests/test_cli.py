"""``hpmkd distill``: outputs, summary, settings, methods, the probability-column route,
progress on stderr, and a real subprocess run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from hpmkd.cli import main

FEATURES = ["f0", "f1", "f2", "f3", "f4"]
SUMMARY_KEYS = {
    "method",
    "method_reason",
    "best_model",
    "classes",
    "n_rows",
    "n_features",
    "teacher",
    "student",
    "baseline",
    "timings",
}
METRIC_KEYS = {
    "accuracy",
    "f1",
    "auc",
    "ks",
    "fidelity",
    "kl_to_teacher",
    "size_bytes",
    "latency_ms_1k",
}
# A small legacy grid: 2 families x 2 temperatures x 1 alpha = 4 candidates.
SMALL = ["--set", "families=tree,logreg", "--set", "temperatures=1,3", "--set", "alphas=0.5"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, make_frame, fit_teacher):
    """data.csv (400 rows, binary target), teacher.joblib, and data_proba.csv with the
    teacher's probabilities as columns p0, p1."""
    folder = tmp_path_factory.mktemp("cli-inputs")
    frame = make_frame(n_rows=400, seed=5)
    frame.insert(0, "customer_id", np.arange(1000, 1400))
    # Fitted on other rows of the same kind: a teacher fitted on these rows would (rightly)
    # draw the leakage warning into every run's stderr.
    other = make_frame(n_rows=400, seed=6)
    teacher = fit_teacher(other[FEATURES], other["target"])
    data = folder / "data.csv"
    frame.to_csv(data, index=False)
    teacher_path = folder / "teacher.joblib"
    joblib.dump(teacher, teacher_path)
    proba = teacher.predict_proba(frame[FEATURES])
    with_proba = frame.assign(p0=proba[:, 0], p1=proba[:, 1])
    proba_path = folder / "data_proba.csv"
    with_proba.to_csv(proba_path, index=False)
    return {"data": data, "teacher": teacher_path, "proba": proba_path, "frame": frame}


def run_cli(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert captured.out == ""  # everything human-readable goes to stderr
    return code, captured.err


def _check_outputs(out: Path) -> dict:
    assert sorted(p.name for p in out.iterdir()) == [
        "best_model.joblib",
        "results.csv",
        "summary.json",
        "timings.csv",
    ]
    assert not list(out.parent.glob(".hpmkd-tmp-*"))  # scratch folder cleaned up
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    for part in ("teacher", "student", "baseline"):
        assert set(summary[part]) >= METRIC_KEYS, part
    assert "total" in summary["timings"] and summary["timings"]["total"] > 0
    return summary


# ----------------------------------------------------------------------------- in-process
def test_distill_with_teacher_file_writes_outputs(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(
        capsys,
        ["distill", str(inputs["data"]), "--target", "target", "--teacher", str(inputs["teacher"]),
         "--drop", "customer_id", "--set", "n_trials=2", *SMALL, "--out", str(out)],
    )
    assert code == 0, err
    summary = _check_outputs(out)
    assert summary["method"] == "legacy"  # auto on 400 rows
    assert "fewer than 1,000" in summary["method_reason"]
    assert summary["config"]["n_trials"] == 2
    assert summary["config"]["families"] == ["tree", "logreg"]
    assert summary["classes"] == ["0", "1"]
    assert summary["n_rows"] == 400 and summary["n_features"] == 5
    assert summary["teacher"]["fidelity"] == 1.0
    assert summary["teacher"]["size_bytes"] > 0
    assert 0 <= summary["student"]["ks"] <= 1

    results = pd.read_csv(out / "results.csv")
    assert len(results) == 4 + 2
    assert results["selected"].sum() == 1
    selected = results[results["selected"]].iloc[0]
    assert selected["name"] == summary["best_model"]
    assert selected["test_ks"] == pytest.approx(summary["student"]["ks"])
    baseline = results[results["source"] == "baseline"].iloc[0]
    assert baseline["alpha"] == 0 and baseline["family"] == selected["family"]
    assert summary["baseline"]["ks"] == pytest.approx(baseline["test_ks"])

    model = joblib.load(out / "best_model.joblib")
    proba = model.predict_proba(inputs["frame"][FEATURES])
    assert proba.shape == (400, 2) and np.allclose(proba.sum(axis=1), 1)

    # Progress on stderr: run start, each phase, each candidate, and the final line.
    assert "[grid]" in err and "[compare]" in err
    # One indented line per candidate, with its validation KS.
    assert sum(line.startswith("  ") and "val ks" in line for line in err.splitlines()) == 4
    lines = err.strip().splitlines()
    best = next(line for line in lines if line.startswith("best "))
    assert str(out) in best and summary["best_model"] in best
    # The test figures of student, twin and teacher, labelled as test figures.
    start = next(i for i, line in enumerate(lines) if line.startswith("test figures on "))
    assert lines[start].startswith(f"test figures on {summary['split_sizes']['test']:,} test")
    assert "ECE and Brier: lower is better" in lines[start]
    shown = lines[start + 1:start + 4]
    names = (f"student {summary['best_model']}", f"twin {summary['baseline_model']}",
             next(iter(results[results["source"] == "teacher"]["name"])))
    for line, name, role in zip(shown, names, ("student", "baseline", "teacher"), strict=True):
        assert line.startswith(f"  {name}: ")
        for metric, label in (("ks", "KS"), ("auc", "AUC"), ("ece", "ECE"), ("brier", "Brier")):
            assert f"{label} {summary[role][metric]:.4f}" in line
    # Every comparison, with its interval and a three-way outcome in words.
    comparisons = [line for line in lines if line.startswith("  student - ")]
    assert len(comparisons) == len(summary["distillation_gain"]["comparisons"]) == 2
    outcomes = {"helped", "hurt", "no measurable difference", "better than the teacher",
                "worse than the teacher"}
    assert all("95% interval [" in line and line.rsplit(" -> ", 1)[1] in outcomes
               for line in comparisons)
    assert lines[-1].startswith("  student - teacher: ")
    assert "error" not in err.lower()


def test_quiet_writes_nothing_on_stderr(inputs, tmp_path, capsys):
    out = tmp_path / "quiet"
    code, err = run_cli(
        capsys,
        ["distill", str(inputs["data"]), "--target", "target", "--teacher", str(inputs["teacher"]),
         "--set", "families=tree", "--set", "temperatures=2", "--set", "alphas=0.5",
         "--quiet", "--out", str(out)],
    )
    assert code == 0
    assert err == ""
    summary = _check_outputs(out)
    # customer_id was not dropped this time: it is a feature.
    assert summary["n_features"] == 6


def test_teacher_proba_cols_route(inputs, tmp_path, capsys):
    out = tmp_path / "proba"
    code, err = run_cli(
        capsys,
        ["distill", str(inputs["proba"]), "--target", "target", "--teacher-proba-cols", "p0,p1",
         "--drop", "customer_id", "--method", "legacy", *SMALL, "--out", str(out)],
    )
    assert code == 0, err
    summary = _check_outputs(out)
    assert summary["n_features"] == 5  # p0, p1 are the teacher, not features
    assert summary["method"] == "legacy"
    assert summary["method_reason"] == "legacy: chosen explicitly"
    assert summary["teacher"]["fidelity"] == 1.0
    assert summary["teacher"]["size_bytes"] is None  # no model behind probability columns
    model = joblib.load(out / "best_model.joblib")
    assert "p0" not in list(model.feature_names_in_)


def test_missing_required_option_is_one_error_line(inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["distill", str(inputs["data"]), "--out", str(tmp_path / "x")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "--target" in err
    assert not (tmp_path / "x").exists()


def test_bad_setting_value_exits_2(inputs, tmp_path, capsys):
    code, err = run_cli(
        capsys,
        ["distill", str(inputs["data"]), "--target", "target", "--teacher", str(inputs["teacher"]),
         "--set", "selection_metric=gini", "--out", str(tmp_path / "x")],
    )
    assert code == 2
    assert err.startswith("error: HPMConfig.selection_metric='gini' is invalid")
    assert err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_settings_without_effect_are_warning_lines_before_the_work(inputs, tmp_path, capsys):
    out = tmp_path / "warned"
    code, err = run_cli(
        capsys,
        ["distill", str(inputs["data"]), "--target", "target", "--teacher", str(inputs["teacher"]),
         "--method", "legacy", *SMALL, "--set", "max_configs=8", "--set", "use_cache=false",
         "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "selection_rule=best",
         "--set", "min_saving=3", "--out", str(out)],
    )
    assert code == 0, err
    _check_outputs(out)
    lines = err.splitlines()
    warned = [line for line in lines if line.startswith("warning: ")]
    assert warned == [
        "warning: HPMConfig.max_configs=8 has no effect: the legacy method does not use it; "
        "use method 'hpm', or leave max_configs at its default (16).",
        # The CLI caches the teachers' probabilities with use_cache and cache_dir whatever
        # the method, so only the switch that is off makes cache_dir pointless.
        f"warning: HPMConfig.cache_dir={str(tmp_path / 'cache')!r} has no effect: use_cache "
        "is False; set use_cache=True, or leave cache_dir unset.",
        # A setting of the other selection rule: legacy uses it, the rule chosen does not.
        "warning: HPMConfig.min_saving=3.0 has no effect: selection_rule is 'best'; set "
        "selection_rule='smaller_if_noninferior', or leave min_saving at its default (2.0).",
    ]
    assert lines.index(warned[-1]) < min(i for i, line in enumerate(lines) if "[grid]" in line)
    assert "error" not in err.lower() and "HPMKDConfigWarning" not in err  # said once, plainly
    assert not (tmp_path / "cache").exists()

    # --quiet silences progress, not warnings; a config whose settings all apply says nothing.
    code, err = run_cli(
        capsys,
        ["distill", str(inputs["data"]), "--target", "target", "--teacher", str(inputs["teacher"]),
         "--method", "legacy", *SMALL, "--set", "n_trials=2", "--quiet", "--out", str(out)],
    )
    assert code == 0 and err == (
        "warning: HPMConfig.n_trials=2 has no effect: the legacy method does not use it; use "
        "method 'hpm', or leave n_trials at its default (3).\n"
    )


# ----------------------------------------------------------------------------- subprocess
def test_real_subprocess_run(inputs, tmp_path, project_root, venv_python):
    out = tmp_path / "sub"
    env = {**os.environ, "PYTHONPATH": str(project_root), "HPMKD_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [str(venv_python), "-m", "hpmkd", "distill", str(inputs["data"]), "--target", "target",
         "--teacher", str(inputs["teacher"]), "--drop", "customer_id", "--method", "legacy",
         "--set", "n_trials=2", *SMALL, "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert "[grid]" in done.stderr and any(line.startswith("best ") for line in lines)
    # The verdict with its intervals, against the twin and the teacher.
    assert any(line.startswith("distillation gain (") for line in lines)
    assert sum("95% interval" in line for line in lines) >= 3
    assert any(line.startswith("why this student: ") for line in lines)
    summary = _check_outputs(out)
    assert summary["method"] == "legacy"
    assert summary["config"]["n_trials"] == 2
    assert len(pd.read_csv(out / "results.csv")) == 6


# ----------------------------------------------------------------------------- interrupted writes
_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from hpmkd.cli import write_outputs

class Distiller:  # writes like AutoDistiller, then the process is killed mid-way
    def save_results(self, folder):
        (Path(folder) / "results.csv").write_text("name,val_ks\\n")
        (Path(folder) / "timings.csv").write_text("name,fit_seconds\\n")
    def save_best_model(self, path):
        Path(path).write_bytes(b"partial model")
        os.kill(os.getpid(), signal.SIGKILL)

write_outputs(Distiller(), Path(sys.argv[1]), report=False)
"""


def test_a_run_killed_while_writing_is_cleaned_by_the_next_run(
    inputs, tmp_path, capsys, project_root, venv_python
):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(project_root)}
    killed = subprocess.run([str(venv_python), "-c", _KILLED_WRITER, str(out)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr  # really killed by SIGKILL
    left = list(tmp_path.glob(".hpmkd-tmp-*"))
    assert len(left) == 1 and left[0].name.startswith(".hpmkd-tmp-")
    assert (left[0] / "best_model.joblib").read_bytes() == b"partial model"
    assert not out.exists()  # the killed run published nothing

    code, err = run_cli(
        capsys,
        ["distill", str(inputs["data"]), "--target", "target", "--teacher", str(inputs["teacher"]),
         "--method", "legacy", "--set", "families=tree", "--set", "temperatures=2",
         "--set", "alphas=0.5", "--quiet", "--out", str(out)],
    )
    assert code == 0, err
    _check_outputs(out)  # complete, and no scratch folder left next to it


def test_only_stale_scratch_folders_of_this_user_are_removed(tmp_path):
    import time

    from hpmkd.cli import STALE_SCRATCH_S, remove_stale_scratch

    dead_pid = 2**22 + 12345  # above Linux's pid_max: no process has it
    live = tmp_path / f".hpmkd-tmp-{os.getpid()}-abc123"          # this process: in use
    dead = tmp_path / f".hpmkd-tmp-{dead_pid}-abc123"             # its process is gone
    old_style = tmp_path / ".hpmkd-tmp-k2j4_x9a"                  # no pid: age decides
    old_live = tmp_path / f".hpmkd-tmp-{os.getpid()}-old999"      # pid reused, but old
    unrelated = tmp_path / ".hpmkd-tmp-notes"                     # a file, not a folder
    other = tmp_path / "hpmkd-tmp-1-x"                            # not hidden: not ours
    for folder in (live, dead, old_style, old_live, other):
        folder.mkdir()
        (folder / "results.csv").write_text("x")
    unrelated.write_text("keep")
    now = time.time()
    old = now - STALE_SCRATCH_S - 60
    os.utime(old_live, (old, old))
    assert set(remove_stale_scratch(tmp_path, now=now)) == {dead, old_live}
    assert not dead.exists() and not old_live.exists()
    assert live.exists() and old_style.exists() and unrelated.exists() and other.exists()
    os.utime(old_style, (old, old))
    assert remove_stale_scratch(tmp_path, now=now) == [old_style]
    assert live.exists()


def test_out_that_already_exists_receives_the_files(inputs, tmp_path, capsys):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = run_cli(
        capsys,
        ["distill", str(inputs["data"]), "--target", "target", "--teacher", str(inputs["teacher"]),
         "--method", "legacy", "--set", "families=tree", "--set", "temperatures=2",
         "--set", "alphas=0.5", "--quiet", "--out", str(out)],
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "best_model.joblib", "notes.txt", "results.csv", "summary.json", "timings.csv"]
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".hpmkd-tmp-*"))


# ----------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_keeps_the_best_so_far_and_writes_a_partial_run(
    inputs, tmp_path, project_root, venv_python
):
    """The first Ctrl-C stops the run, keeps every finished candidate and writes them
    (exit 130); the interrupt is sent when the first candidate is printed."""
    import signal

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(project_root)}
    grid = ["--set", "families=tree,logreg,lgbm", "--set", "temperatures=1,2,4",
            "--set", "alphas=0.9,0.5,0.1"]
    proc = subprocess.Popen(
        [str(venv_python), "-m", "hpmkd", "distill", str(inputs["data"]), "--target", "target",
         "--teacher", str(inputs["teacher"]), "--method", "legacy", *grid, "--out", str(out)],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("  "):  # a finished candidate
            proc.send_signal(signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=120)
    err = "".join(lines) + rest
    assert proc.returncode == 130, err
    assert "keeping the best so far" in err and "a partial run; outputs in" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] and "interrupted with Ctrl-C" in summary["stop_reason"]
    assert 1 <= summary["n_candidates"] < 25
    assert (out / "best_model.joblib").stat().st_size > 0
