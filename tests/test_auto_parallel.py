"""Parallel training chosen by data size (issue 12): a pure decision the CLI and the app
apply, while ``HPMConfig.use_parallel`` itself stays off by default."""

from __future__ import annotations

from hpmkd import HPMConfig
from hpmkd.parallel import AUTO_PARALLEL_MAX_VALUES, AUTO_PARALLEL_MIN_ROWS, auto_parallel
from hpmkd_app.configform import with_auto_parallel

BIG, SMALL = AUTO_PARALLEL_MIN_ROWS, AUTO_PARALLEL_MIN_ROWS - 1
WIDE = 20  # features: BIG and 10 x BIG rows stay within AUTO_PARALLEL_MAX_VALUES


def test_auto_parallel_turns_on_from_the_threshold_with_two_workers():
    assert HPMConfig().use_parallel is False  # the specification's default is kept
    on, why = auto_parallel(BIG, WIDE, n_jobs=2, cores=2)
    assert on and "parallel training on (auto)" in why and f"{BIG:,} rows" in why
    on, why = auto_parallel(SMALL, WIDE, n_jobs=2, cores=2)
    assert not on and f"below {AUTO_PARALLEL_MIN_ROWS:,}" in why
    # One worker or one core: nothing to gain, whatever the size.
    assert auto_parallel(10 * BIG, WIDE, n_jobs=1, cores=2) == (
        False, "parallel training off (auto): 1 usable worker(s) (n_jobs=1, 2 core(s))")
    assert not auto_parallel(10 * BIG, WIDE, n_jobs=4, cores=1)[0]
    assert auto_parallel(10 * BIG, WIDE, n_jobs=4, cores=8)[0]
    # Without a core count the machine's own is used.
    assert isinstance(auto_parallel(BIG, WIDE, n_jobs=2)[0], bool)


def test_auto_parallel_stays_sequential_when_the_workers_copies_would_not_fit():
    rows = 1_000_000
    at_most = AUTO_PARALLEL_MAX_VALUES // rows
    assert auto_parallel(rows, at_most, n_jobs=2, cores=2)[0]
    on, why = auto_parallel(rows, at_most + 1, n_jobs=2, cores=2)
    assert not on
    assert f"{rows * (at_most + 1):,} values, above {AUTO_PARALLEL_MAX_VALUES:,}" in why
    assert "beyond 3 GB" in why
    # 1,000,000 x 50 (bench/scale.py --table million) is above it; the development
    # tables are within it (nyc_flights_delay 327,346 x 24, us_census_fertility 254,654 x 7).
    assert not auto_parallel(rows, 50, n_jobs=2, cores=2)[0]
    assert auto_parallel(327_346, 24, n_jobs=2, cores=2)[0]
    assert auto_parallel(254_654, 7, n_jobs=2, cores=2)[0]
    # Asked for explicitly, the app keeps it.
    asked = HPMConfig(use_parallel=True)
    assert with_auto_parallel(asked, rows, 50, "hpm") == (asked, "")
    chosen, note = with_auto_parallel(HPMConfig(), rows, 50, "hpm")
    assert chosen.use_parallel is False and "above" in note


def test_the_app_applies_it_only_to_hpm_runs_that_left_it_off():
    config = HPMConfig()
    chosen, note = with_auto_parallel(config, BIG, WIDE, "hpm")
    assert chosen.use_parallel is (auto_parallel(BIG, WIDE, config.n_jobs)[0])
    assert note == auto_parallel(BIG, WIDE, config.n_jobs)[1]
    assert with_auto_parallel(config, SMALL, WIDE, "hpm")[0].use_parallel is False
    assert with_auto_parallel(config, BIG, WIDE, "legacy") == (config, "")
    assert with_auto_parallel(config, BIG, WIDE, "hpm", auto=False) == (config, "")
    asked = HPMConfig(use_parallel=True)
    assert with_auto_parallel(asked, SMALL, WIDE, "hpm") == (asked, "")


def test_the_cli_says_when_it_picked_parallel_training(
    tmp_path, monkeypatch, capsys, make_frame, fit_teacher
):
    import json

    import joblib

    from hpmkd import parallel
    from hpmkd.cli import main

    frame = make_frame(n_rows=1200, seed=2)
    features = [c for c in frame.columns if c != "target"]
    joblib.dump(fit_teacher(frame[features], frame["target"]), tmp_path / "teacher.joblib")
    frame.to_csv(tmp_path / "data.csv", index=False)
    monkeypatch.setattr(parallel, "AUTO_PARALLEL_MIN_ROWS", 1000)
    monkeypatch.setenv("HPMKD_HOME", str(tmp_path / "home"))
    small = ["--set", "families=logreg", "--set", "max_configs=1", "--set", "n_trials=1",
             "--set", "use_progressive=false", "--set", "use_memory=false"]
    base = ["distill", str(tmp_path / "data.csv"), "--target", "target", "--method", "hpm",
            "--teacher", str(tmp_path / "teacher.joblib"), *small]
    expected, why = auto_parallel(1200, len(features), HPMConfig().n_jobs)

    assert main([*base, "--out", str(tmp_path / "auto")]) == 0
    err = capsys.readouterr().err
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["config"]["use_parallel"] is expected
    assert (why in err) is expected  # said only when it changed the run
    assert "capacity climb: " in err  # the climb's decision, in words
    assert summary["details"]["capacity"]["stop_reason"] in err

    assert main([*base, "--set", "use_parallel=false", "--out", str(tmp_path / "off")]) == 0
    err = capsys.readouterr().err
    summary = json.loads((tmp_path / "off" / "summary.json").read_text())
    assert summary["config"]["use_parallel"] is False and "(auto)" not in err
