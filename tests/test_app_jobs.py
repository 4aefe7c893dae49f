"""The app's job manager and run cache (no Streamlit involved).

Runs are tiny legacy grids on a 400-row table so the whole module takes a few seconds.
"""

from __future__ import annotations

import copy
import stat
import threading
import time
from pathlib import Path

import pytest

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, HPMKDInputError
from hpmkd.errors import StorageError
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
    # The same rows under another table name: a run carries its table's name (the report
    # shows it), so one person's file name never reaches another's identical upload.
    renamed = copy.copy(dataset)
    renamed.name = "other-name"
    assert renamed.fingerprint() == dataset.fingerprint()
    assert base != run_key(renamed, TINY, "legacy", 1)


def test_run_key_misses_after_a_code_change_without_a_new_version(dataset, monkeypatch):
    # A run pickled by older code under the same version number must not be served: its
    # result may lack fields the pages now read.
    import hpmkd_app.run_cache as app_run_cache

    base = run_key(dataset, TINY, "legacy", 1)
    monkeypatch.setattr(app_run_cache, "source_digest", lambda: "other source")
    assert run_key(dataset, TINY, "legacy", 1) != base
    monkeypatch.setattr(app_run_cache, "library_versions", lambda: (("lightgbm", "0"),))
    assert run_key(dataset, TINY, "legacy", 1) != base


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
        (RuntimeError("boom"), "The run failed with an unexpected error (RuntimeError)"),
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


@pytest.mark.parametrize("exc", [
    RuntimeError("disk full at /srv/private-home/cache/x.db"),
    StorageError("Cannot use '/srv/private-home/cache' as a private hpmkd directory: "
                 "Permission denied.", "/srv/private-home/cache"),
])
def test_a_server_side_failure_shows_no_server_path(dataset, tmp_path, monkeypatch, exc,
                                                    caplog):
    # What went wrong on the server's side goes to its log; the page says whose it is.
    def fail(self, callbacks=None, stop=None):
        raise exc

    monkeypatch.setattr(AutoDistiller, "run", fail)
    with caplog.at_level("ERROR", logger="hpmkd_app.runner"):
        job = start_job(dataset, TINY, method="legacy", seed=10, cache_dir=tmp_path,
                        use_run_cache=False)
        view = _wait(job)
    assert view.status == "error" and "/srv/private-home" not in view.error
    assert f"job {job.id}" in view.error
    if isinstance(exc, StorageError):
        assert "storage folders" in view.error and "not your data" in view.error
    assert "/srv/private-home" in caplog.text  # the administrator has it


def test_a_folder_that_cannot_be_made_private_is_a_storage_error(tmp_path):
    from hpmkd.paths import private_dir

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StorageError, match=r"Cannot use .* as a private hpmkd directory") as info:
        private_dir(blocker / "cache")
    assert info.value.path == str(blocker / "cache")
    assert isinstance(info.value, HPMKDInputError)  # the CLI shows it as it is


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


# ------------------------------------------- what the app shows of the server and others
def _server_run(frame, name, fit_teacher, settings, seed, tmp_path):
    teacher = fit_teacher(frame.drop(columns="target"), frame["target"], n_estimators=30)
    data = DistillationDataset(frame, target="target", teacher=teacher, name=name)
    config = settings.config({"families": ["logreg"], "max_configs": 2, "n_trials": 1,
                              "use_progressive": False, "max_capacity_steps": 0})
    return _wait(start_job(data, config, method="hpm", seed=seed, cache_dir=tmp_path / "runs"))


def test_the_app_shows_no_server_folder_address_or_other_peoples_tables(
    make_frame, fit_teacher, tmp_path, monkeypatch
):
    import warnings

    from hpmkd import HPMKDConfigWarning
    from hpmkd.result import HIDDEN
    from hpmkd.settings import ENV_VARS, ServerSettings, server_field_names
    from hpmkd_app import exports, panels

    home = tmp_path / "srv-private-home"
    address = "tcp://10.9.8.7:8786"
    monkeypatch.setenv("HPMKD_HOME", str(home))
    monkeypatch.setenv(ENV_VARS["dask_scheduler"], address)
    for name in ("cache_dir", "memory_dir", "n_jobs", "cache_size_limit_gb"):
        monkeypatch.delenv(ENV_VARS[name], raising=False)
    settings = ServerSettings.from_env()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Someone's run fills the shared memory; a stranger's run on a similar table
        # warm-starts from it.
        first = _server_run(make_frame(n_rows=1200, seed=3), "acme-private-table",
                            fit_teacher, settings, 1, tmp_path)
        second = _server_run(make_frame(n_rows=1200, seed=4), "mine", fit_teacher,
                             settings, 2, tmp_path)
    assert first.status == "done" and second.status == "done", (first.error, second.error)
    # The server sets its fields for every run: a run that does not use one (no parallel
    # training here: the scheduler) does not warn the server's log about it.
    assert not [w for w in caught if issubclass(w.category, HPMKDConfigWarning)]

    job = jobs.get_job(second.id)
    warm = job.result.components.warm_start
    assert warm.used and warm.neighbours, warm.reason
    exported = {"summary": exports.summary_json(job.distiller).decode(),
                "report": exports.report_html(job.distiller).decode()}
    for where, text in exported.items():
        for secret in (str(home), "srv-private-home", "10.9.8.7", "acme-private-table"):
            assert secret not in text, (where, secret)
    summary = job.distiller.summary()
    assert summary["config_set_by_server"] == list(server_field_names())
    assert not set(server_field_names()) & set(summary["config"])
    assert summary["config"]["families"] == ["logreg"]  # the experiment is all there
    assert summary["details"]["cache"]["directory"] == HIDDEN
    assert all("dataset" not in n for n in summary["details"]["warm_start"]["neighbours"])
    assert "set by the server (not shown)" in exported["report"]
    # The page's panel, live or finished, names past runs by id only.
    panel = panels.warm_start_panel(warm, panels.PanelSource.of_result(job.result))
    assert panel.table is not None and "dataset" not in panel.table.columns
    assert "run_id" in panel.table.columns

    # A run stored by an earlier version (details included) is shown the same way.
    raw = AutoDistiller.__new__(AutoDistiller)
    raw.__dict__.update(job.distiller.__dict__)
    from dataclasses import replace

    raw.result_ = replace(job.result, server_details_hidden=False,
                          components=replace(job.result.components, cache=replace(
                              job.result.components.cache, directory=str(home / "cache"))))
    # (Outside a server, e.g. the command line, the summary keeps everything.)
    assert str(home) in raw.result_.summary()["config"]["memory_dir"]
    assert "config_set_by_server" not in raw.result_.summary()
    with RunCache(tmp_path / "old") as cache:
        cache.put("old-entry", raw, 1.0)
        served = cache.get("old-entry").distiller
    assert str(home) not in exports.summary_json(served).decode()


def test_the_parallel_panel_does_not_show_the_scheduler_address():
    from hpmkd.result import ParallelRecord
    from hpmkd_app import panels

    source = panels.PanelSource(method="hpm", config={"use_parallel": True},
                                components=None)  # type: ignore[arg-type]
    panel = panels.parallel_panel(
        ParallelRecord(backend="dask", n_jobs=4, scheduler="tcp://10.9.8.7:8786"), source
    )
    assert "10.9.8.7" not in panel.summary and "Dask scheduler" in panel.summary
