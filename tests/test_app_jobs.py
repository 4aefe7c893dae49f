"""The app's job manager and run cache (no Streamlit involved).

Runs are tiny legacy grids on a 400-row table so the whole module takes a few seconds.
"""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, HPMKDInputError
from hpmkd_app import jobs
from hpmkd_app.jobs import RunCache, get_job, run_key, start_job

TINY = HPMConfig(families=("tree",), temperatures=(2.0,), alphas=(0.5,), use_cache=False,
                 use_memory=False)
GRID = HPMConfig(families=("tree", "logreg"), temperatures=(1.0, 2.0, 4.0),
                 alphas=(0.9, 0.5, 0.1), use_cache=False, use_memory=False)


@pytest.fixture(scope="module")
def dataset(make_frame, fit_teacher) -> DistillationDataset:
    frame = make_frame(n_rows=400, n_features=5, seed=3)
    teacher = fit_teacher(frame.drop(columns="target"), frame["target"], n_estimators=30)
    return DistillationDataset(frame, target="target", teacher=teacher, name="tiny")


def _wait(job: jobs.Job, timeout: float = 60.0) -> jobs.JobView:
    assert job.wait(timeout), f"job {job.id} did not finish in {timeout} s"
    return job.view()


def test_job_runs_in_background_and_records_events(dataset, tmp_path):
    job = start_job(dataset, TINY, method="legacy", seed=1, cache_dir=tmp_path)
    assert job.id and get_job(job.id) is job
    view = _wait(job)
    assert view.status == "done", view.error
    kinds = [e.kind for e in view.events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert "candidate" in kinds and "phase_start" in kinds and "phase_end" in kinds
    assert not view.from_cache
    assert job.distiller is not None and job.distiller.best_model() is not None
    assert job.dataset is None  # the thread drops its input reference when done


def test_identical_rerun_is_served_from_cache(dataset, tmp_path):
    first = start_job(dataset, TINY, method="legacy", seed=2, cache_dir=tmp_path)
    first_view = _wait(first)
    second = start_job(dataset, TINY, method="legacy", seed=2, cache_dir=tmp_path)
    view = _wait(second)
    assert view.status == "done"
    assert view.from_cache and not first_view.from_cache
    assert view.cached_finished_at is not None
    assert view.cached_finished_at <= view.started_at + 1.0
    assert view.events == ()  # nothing was trained
    assert second.distiller is not first.distiller  # a fresh, unpickled copy per job
    assert second.distiller.best_name == first.distiller.best_name
    assert second.distiller.results_df.equals(first.distiller.results_df)


def test_changed_seed_or_config_is_not_a_cache_hit(dataset, tmp_path):
    _wait(start_job(dataset, TINY, method="legacy", seed=3, cache_dir=tmp_path))
    other_seed = _wait(start_job(dataset, TINY, method="legacy", seed=4, cache_dir=tmp_path))
    other_cfg = _wait(start_job(dataset, TINY.with_updates(alphas=(0.9,)), method="legacy",
                                seed=3, cache_dir=tmp_path))
    assert not other_seed.from_cache and not other_cfg.from_cache


def test_fresh_run_skips_the_cache(dataset, tmp_path):
    _wait(start_job(dataset, TINY, method="legacy", seed=5, cache_dir=tmp_path))
    fresh = _wait(start_job(dataset, TINY, method="legacy", seed=5, cache_dir=tmp_path,
                            use_run_cache=False))
    assert fresh.status == "done" and not fresh.from_cache
    assert any(e.kind == "candidate" for e in fresh.events)


def test_a_fresh_run_is_stored_and_comes_back_after_a_restart(dataset, tmp_path):
    fresh = start_job(dataset, TINY, method="legacy", seed=12, cache_dir=tmp_path,
                      use_run_cache=False)
    assert _wait(fresh).status == "done"
    with jobs._JOBS_LOCK:
        jobs._JOBS.pop(fresh.id)  # as after a server restart
    again = get_job(fresh.id, cache_dir=tmp_path)
    assert again is not None and again.status == "done"
    assert again.distiller.best_name == fresh.distiller.best_name


def test_run_key_covers_inputs(dataset):
    base = run_key(dataset, TINY, "legacy", 1)
    assert base == run_key(dataset, TINY, "legacy", 1)
    assert base != run_key(dataset, TINY, "legacy", 2)
    assert base != run_key(dataset, TINY, "hpm", 1)
    assert base != run_key(dataset, TINY.with_updates(families=("logreg",)), "legacy", 1)


def test_cancel_stops_at_the_next_event(dataset, tmp_path):
    job = start_job(dataset, GRID, method="legacy", seed=6, cache_dir=tmp_path,
                    use_run_cache=False)
    deadline = time.time() + 60
    while not any(e.kind == "candidate" for e in job.view().events):
        assert time.time() < deadline and not job.finished
        time.sleep(0.02)
    assert jobs.cancel_job(job.id)
    view = _wait(job)
    assert view.status == "cancelled" and view.error is None
    trained = sum(1 for e in view.events if e.kind == "candidate")
    assert 1 <= trained < 18
    assert job.distiller is None
    assert not jobs.cancel_job(job.id)  # already finished


def test_cancel_before_start_never_trains(dataset, tmp_path):
    job = jobs.Job(dataset=dataset, config=TINY, method="legacy", seed=7, cache_dir=tmp_path,
                   use_run_cache=False)
    job.cancel()
    view = _wait(job.start())
    assert view.status == "cancelled"
    assert [e.kind for e in view.events] == ["run_start"]


def test_two_concurrent_jobs_are_independent(dataset, tmp_path):
    a_cfg = TINY.with_updates(families=("tree",))
    b_cfg = TINY.with_updates(families=("logreg",))
    a = start_job(dataset, a_cfg, method="legacy", seed=8, cache_dir=tmp_path)
    b = start_job(dataset, b_cfg, method="legacy", seed=8, cache_dir=tmp_path)
    va, vb = _wait(a), _wait(b)
    assert va.status == vb.status == "done"
    names_a = {e.data["row"]["family"] for e in va.events if e.kind == "candidate"}
    names_b = {e.data["row"]["family"] for e in vb.events if e.kind == "candidate"}
    assert names_a == {"tree"} and names_b == {"logreg"}
    assert a.distiller is not b.distiller
    assert a.distiller.best_model() is not b.distiller.best_model()


def test_identical_concurrent_jobs_train_once(dataset, tmp_path):
    cfg = TINY.with_updates(temperatures=(1.0, 2.0), alphas=(0.9, 0.5))
    started = threading.Barrier(2)
    made: list[jobs.Job] = []

    def launch() -> None:
        started.wait()
        made.append(start_job(dataset, cfg, method="legacy", seed=9, cache_dir=tmp_path))

    threads = [threading.Thread(target=launch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    views = [_wait(j) for j in made]
    assert all(v.status == "done" for v in views)
    assert sorted(v.from_cache for v in views) == [False, True]
    trained = next(v for v in views if not v.from_cache)
    served = next(v for v in views if v.from_cache)
    assert any(e.kind == "candidate" for e in trained.events)
    assert served.events == ()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (HPMKDInputError("Teacher 'x' needs column(s) 'age'."), "Teacher 'x' needs column(s)"),
        (RuntimeError("boom"), "The run failed: RuntimeError: boom"),
        (ImportError("No module named 'hpmkd.engine'"), "not available in this installation"),
    ],
)
def test_failed_run_reports_its_error(dataset, tmp_path, monkeypatch, exc, expected):
    def fail(self, callbacks=None, stop=None):
        raise exc

    monkeypatch.setattr(AutoDistiller, "run", fail)
    view = _wait(start_job(dataset, TINY, method="legacy", seed=10, cache_dir=tmp_path,
                           use_run_cache=False))
    assert view.status == "error"
    assert expected in view.error
    assert "Traceback" not in view.error


def test_reload_reattaches_from_the_run_cache(dataset, tmp_path):
    job = start_job(dataset, TINY, method="legacy", seed=11, cache_dir=tmp_path)
    _wait(job)
    with jobs._JOBS_LOCK:
        jobs._JOBS.pop(job.id)  # as after a server restart
    again = get_job(job.id, cache_dir=tmp_path)
    assert again is not None and again.status == "done"
    assert again.distiller.best_name == job.distiller.best_name
    assert get_job("0123456789ab", cache_dir=tmp_path) is None
    assert get_job("../../etc", cache_dir=tmp_path) is None


def test_run_cache_directory_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("HPMKD_HOME", str(tmp_path / "home"))
    with RunCache() as cache:
        directory = Path(cache.directory)
    for path in (directory, directory.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert directory.is_relative_to(tmp_path / "home")


def test_expected_candidates():
    assert jobs.expected_candidates("legacy", GRID) == 18
    assert jobs.expected_candidates("hpm", GRID) is None


HPM_SMALL = HPMConfig(families=("tree", "lgbm"), max_configs=3, n_trials=2, use_cache=False,
                      use_memory=False)


def test_stop_keeps_the_best_so_far_as_a_partial_run(dataset, tmp_path):
    job = jobs.Job(dataset=dataset, config=HPM_SMALL, method="hpm", seed=8, cache_dir=tmp_path)
    original = job.on_event

    def stop_after_the_first_candidate(event):
        original(event)
        if event.kind == "candidate":
            job.stop()

    job.on_event = stop_after_the_first_candidate
    view = _wait(job.start())
    assert view.status == "done" and view.error is None
    result = job.result
    assert result.partial and "stopped by the user" in result.stop_reason
    assert len(result.candidates) == sum(1 for e in view.events if e.kind == "candidate")
    # Stored under its own key: a reload (the job is not in the registry, as after a
    # server restart) finds it; an identical full run is not served it.
    again = jobs.get_job(job.id, tmp_path)
    assert again is not job and again.result.stop_reason == result.stop_reason
    with RunCache(tmp_path) as cache:
        assert cache.key_of_job(job.id).endswith(f":partial:{job.id}")
        assert cache.get(job.key) is None
    full = _wait(start_job(dataset, HPM_SMALL, method="hpm", seed=8, cache_dir=tmp_path))
    assert full.status == "done" and not full.from_cache


def test_a_job_keeps_lightgbm_on_one_thread_in_the_server(dataset, tmp_path, monkeypatch):
    # Jobs share the server process, and LightGBM's thread count is process-wide: a
    # parallel run started by the app must not give its in-process fits two threads.
    from hpmkd.parallel import Executor

    outside = Executor("loky", n_jobs=2).in_process_threads  # 2 on a machine with 2 cores
    seen: list[int] = []

    def body(self, start):
        seen.append(Executor("loky", n_jobs=2).in_process_threads)
        self._set(status="done")

    monkeypatch.setattr(jobs.Job, "_run_fresh", body)
    job = start_job(dataset, TINY.with_updates(use_parallel=True), method="legacy", seed=13,
                    cache_dir=tmp_path, use_run_cache=False)
    _wait(job)
    assert seen == [1]
    assert Executor("loky", n_jobs=2).in_process_threads == outside
