"""Parallel training: joblib/loky and Dask give the same run as sequential training, and
workers pin LightGBM to one thread.

The cache is off in every run here, so a parallel run really trains (it cannot be served
the sequential run's results).
"""

from __future__ import annotations

import math
import os
import re

import pytest

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig
from hpmkd.evaluate import TrainingContext, uncalibrated
from hpmkd.parallel import Executor, Job
from hpmkd.students import StudentSpec, trial_params
from tests.conftest import fit_lgbm_teacher, make_classification_frame

SMALL = {
    "max_configs": 3,
    "n_trials": 2,
    "families": ("logreg", "tree", "lgbm"),
    "use_cache": False,
    "use_memory": False,
}
CANDIDATE_SOURCES = {"chain", "config", "climb", "ensemble"}
VAL_COLUMNS = ["val_ks", "val_auc", "val_accuracy", "val_f1", "val_fidelity"]


@pytest.fixture(scope="module")
def dataset():
    frame = make_classification_frame(n_rows=1200, n_features=6, seed=1)
    teacher = fit_lgbm_teacher(frame.drop(columns="target"), frame["target"], 60)
    return DistillationDataset(frame, target="target", teacher=teacher, name="parallel")


def run(dataset, **config) -> AutoDistiller:
    distiller = AutoDistiller(
        dataset, method="hpm", config=HPMConfig(**SMALL, **config), random_state=42
    )
    distiller.run()
    return distiller


def candidates(distiller: AutoDistiller):
    df = distiller.results_df
    return df[df["source"].isin(CANDIDATE_SOURCES)].set_index("name")


@pytest.fixture(scope="module")
def sequential(dataset):
    return run(dataset)


def assert_same_best(parallel: AutoDistiller, sequential: AutoDistiller) -> None:
    assert parallel.best_name == sequential.best_name
    best_p, best_s = parallel.result_.selected, sequential.result_.selected
    for metric, value in best_s.val.items():
        if isinstance(value, float) and math.isfinite(value):
            assert best_p.val[metric] == pytest.approx(value, abs=1e-9), metric
    assert parallel.best_metrics["ks"] == pytest.approx(sequential.best_metrics["ks"], abs=1e-9)


def context(dataset, n_threads: int) -> TrainingContext:
    split = dataset.split(0.2, 42)
    proba = dataset.teacher_proba()
    return TrainingContext(
        X_train=dataset.X.iloc[split.train],
        y_train=dataset.y[split.train],
        X_val=dataset.X.iloc[split.validation],
        y_val=dataset.y[split.validation],
        teacher_train=proba[split.train],
        reference_val=proba[split.validation],
        classes=dataset.classes,
        numeric=dataset.numeric,
        categorical=dataset.categorical,
        seed=42,
        n_threads=n_threads,
    )


def lgbm_jobs(n_rows: int) -> list[Job]:
    return [
        Job(
            StudentSpec(
                "lgbm", "small", 2.0, 0.5, trial, trial_params("lgbm", "small", trial, n_rows, 42)
            )
        )
        for trial in range(2)
    ]


def lgbm_threads(result) -> int:
    """Threads the LightGBM student trained on (LightGBM records them in the model's
    text); the student itself always predicts on one."""
    model = uncalibrated(result.model).named_steps["model"]
    assert model.get_params()["n_jobs"] == 1 and model.booster_.params["num_threads"] == 1
    found = re.search(r"\[num_threads: (\d+)\]", model.booster_.model_to_string())
    assert found is not None
    return int(found.group(1))


# ----------------------------------------------------------------------------- loky
def test_loky_gives_the_same_best_as_sequential(dataset, sequential):
    parallel = run(dataset, use_parallel=True, n_jobs=2)
    assert parallel.result_.components.parallel.to_dict() == {"backend": "loky", "n_jobs": 2}
    assert sequential.result_.components.parallel.to_dict() == {
        "backend": "sequential",
        "n_jobs": 1,
    }
    assert_same_best(parallel, sequential)
    assert not parallel.results_df["from_cache"].any()
    # Every candidate trained with the same spec in both runs scored exactly the same.
    cand_p, cand_s = candidates(parallel), candidates(sequential)
    common = cand_p.index.intersection(cand_s.index)
    chain = cand_s.index[cand_s["source"] == "chain"]
    assert set(chain) <= set(common) and len(common) >= len(cand_s) // 2
    for column in VAL_COLUMNS:
        assert cand_p.loc[common, column].to_numpy() == pytest.approx(
            cand_s.loc[common, column].to_numpy(), abs=1e-9
        ), column


def test_loky_with_fixed_temperatures_reproduces_every_candidate(dataset, fit_counter):
    fixed = {"use_adaptive_temperature": False}
    seq = run(dataset, **fixed)
    seq_fits = len(fit_counter)
    fit_counter.clear()
    par = run(dataset, use_parallel=True, n_jobs=2, **fixed)
    assert par.result_.components.parallel.backend == "loky"
    cand_p, cand_s = candidates(par), candidates(seq)
    assert cand_p.index.tolist() == cand_s.index.tolist()
    for column in VAL_COLUMNS:
        assert cand_p[column].to_numpy() == pytest.approx(cand_s[column].to_numpy(), abs=1e-9)
    assert_same_best(par, seq)
    # Config trials, each screening step's fits and the twin's trials ran in loky
    # workers (a batch of one runs here), so this process trained at most all but the
    # configs; the chain's stages, one after another, still train here.
    n_configs = len(cand_s.query("source == 'config'"))
    n_chain = len(cand_s.query("source == 'chain'"))
    assert n_configs >= 2 and n_chain >= 1
    assert n_chain <= len(fit_counter) <= seq_fits - n_configs


def test_loky_workers_pin_lightgbm_to_one_thread(dataset):
    ctx = context(dataset, n_threads=4)
    jobs = lgbm_jobs(len(ctx.y_train))
    in_process = Executor("sequential").run(jobs, ctx)
    assert [lgbm_threads(r) for r in in_process] == [4, 4]  # the context's setting
    pooled = Executor("loky", n_jobs=2).run(jobs, ctx)
    assert [lgbm_threads(r) for r in pooled] == [1, 1]
    for a, b in zip(in_process, pooled, strict=True):
        assert a.name == b.name
        assert a.val["auc"] == pytest.approx(b.val["auc"], abs=1e-9)


# ----------------------------------------------------------------------------- dask
def test_dask_cluster_gives_the_same_best_with_single_threaded_workers(dataset, sequential):
    distributed = pytest.importorskip("distributed")
    cluster = None
    try:
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        address = cluster.scheduler_address
        parallel = run(dataset, use_parallel=True, dask_scheduler=address)
        info = parallel.result_.components.parallel
        assert info.backend == "dask"
        assert info.workers == 2
        assert info.scheduler == address
        assert not parallel.results_df["from_cache"].any()
        assert_same_best(parallel, sequential)

        # Inside a Dask worker LightGBM runs on one thread, whatever the context asks.
        executor = Executor("dask", scheduler=address)
        try:
            ctx = context(dataset, n_threads=4)
            results = executor.run(lgbm_jobs(len(ctx.y_train)), ctx)
        finally:
            executor.close()
        assert [lgbm_threads(r) for r in results] == [1, 1]
        assert results[0].val["auc"] == pytest.approx(
            Executor("sequential").run(lgbm_jobs(len(ctx.y_train))[:1], ctx)[0].val["auc"],
            abs=1e-9,
        )
    finally:
        if cluster is not None:
            cluster.close()


def test_dask_scheduler_without_dask_installed_says_which_extra(monkeypatch):
    import sys

    from hpmkd.errors import MethodNotAvailableError

    monkeypatch.setitem(sys.modules, "distributed", None)  # import now raises ImportError
    config = HPMConfig(use_parallel=True, dask_scheduler="tcp://127.0.0.1:1")
    with pytest.raises(MethodNotAvailableError, match=r"hpmkd\[dask\]"):
        Executor.from_config(config)


def test_fits_in_the_run_process_use_the_workers_cores_only_with_loky(monkeypatch):
    # With loky workers, the fits the run trains itself (chain, climb) run while the
    # workers wait: they get the workers' cores. Sequential runs and Dask keep one thread.
    import hpmkd.parallel as parallel

    monkeypatch.setattr(parallel, "_usable_cores", lambda: 2)
    assert Executor("sequential").in_process_threads == 1
    assert Executor("loky", n_jobs=2).in_process_threads == 2
    assert Executor("loky", n_jobs=4).in_process_threads == 2
    assert Executor("dask", n_jobs=4, scheduler="tcp://127.0.0.1:1").in_process_threads == 1
    monkeypatch.setattr(parallel, "_usable_cores", lambda: 1)
    assert Executor("loky", n_jobs=2).in_process_threads == 1


def test_a_student_with_text_columns_is_the_same_size_from_a_worker():
    # Text columns are object arrays (hpmkd.data.text_as_objects); read back from the
    # worker's context file they must give students that pickle to the same size as in
    # this process (a second numpy dtype object in the encoder added 34 bytes).
    import numpy as np
    import pandas as pd

    frame = make_classification_frame(n_rows=1500, n_features=4, seed=8)
    rng = np.random.default_rng(8)
    frame["city"] = pd.Series(rng.choice(["north", "south", "east", None], size=1500),
                              dtype="str")
    p1 = 1 / (1 + np.exp(-frame["f0"].to_numpy()))
    frame["p0"], frame["p1"] = 1 - p1, p1
    ds = DistillationDataset(frame, target="target", teacher_proba_cols=["p0", "p1"])
    ctx = context(ds, n_threads=1)
    jobs = lgbm_jobs(len(ctx.y_train))
    here = Executor("sequential").run(jobs, ctx)
    pooled = Executor("loky", n_jobs=2).run(jobs, ctx)
    assert [r.size_bytes for r in pooled] == [r.size_bytes for r in here]
    for a, b in zip(here, pooled, strict=True):
        np.testing.assert_array_equal(a.val_proba, b.val_proba)


_HELD: list[bytes] = []


def _grow_and_pid(n_bytes: int) -> int:
    # Written bytes (not a zeroed buffer the kernel maps lazily), kept alive after the job:
    # what loky's leak check would take for a leak. Longer than its 1 s check delay.
    import os
    import time

    _HELD.append(b"\x01" * n_bytes)
    time.sleep(1.2)
    return os.getpid()


def test_a_worker_that_grows_between_jobs_is_not_restarted():
    # loky ends a worker whose memory grew by more than 300 MB after its first job (its
    # leak check); a larger training context in a later wave did that on large tables,
    # and every new worker re-imported the libraries and re-read the context.
    from joblib.externals.loky import ProcessPoolExecutor

    from hpmkd.parallel import _init_worker

    pool = ProcessPoolExecutor(max_workers=1, initializer=_init_worker)
    try:
        pids = [pool.submit(_grow_and_pid, n).result() for n in (0, 400_000_000, 0)]
    finally:
        pool.shutdown(wait=True, kill_workers=True)
    assert len(set(pids)) == 1


class _Cycle:
    """An object in a reference cycle: freed only by the garbage collector."""

    def __init__(self) -> None:
        self.me = self


def test_a_worker_context_is_frozen_and_still_freed_when_replaced(dataset, tmp_path):
    # A worker's context is out of the collector's sight while it is the newest (loky's
    # collection once a second visited every text value of it), and given back to the
    # collector when the next context is read: a cycle inside the old one is freed.
    import gc
    import pickle
    import weakref

    import hpmkd.parallel as parallel

    ctx = context(dataset, n_threads=1)
    ctx.X_train.attrs["cycle"] = _Cycle()
    first, second = tmp_path / "first.pkl", tmp_path / "second.pkl"
    first.write_bytes(pickle.dumps(ctx))
    ctx.X_train.attrs.clear()
    second.write_bytes(pickle.dumps(ctx))
    saved = list(parallel._WORKER_CONTEXTS)
    try:
        parallel._WORKER_CONTEXTS.clear()
        loaded = parallel._worker_context(str(first))
        assert gc.get_freeze_count() > 0
        # Frozen: not among the objects the collector visits.
        assert all(o is not loaded for o in gc.get_objects())
        cycle = weakref.ref(loaded.X_train.attrs["cycle"])
        del loaded
        gc.collect()
        assert cycle() is not None  # kept: its context is still the worker's
        parallel._worker_context(str(second))
        assert cycle() is None
    finally:
        gc.unfreeze()
        parallel._WORKER_CONTEXTS[:] = saved


def test_loky_trains_the_full_rows_rung_in_one_wave(dataset, monkeypatch):
    # Nothing is decided between the rung-1 fits of successive halving and loky keeps the
    # finished fits of a stopped wave: they go to the workers together, so none is left
    # to train alone after an executor-sized wave (here one job per wave otherwise).
    import hpmkd.engine.session as session_module
    import hpmkd.engine.train as train_module

    monkeypatch.setattr(session_module, "HALVING_MIN_ROWS", 300)
    monkeypatch.setattr(train_module, "HALVING_MIN_ROWS", 300)
    monkeypatch.setattr(Executor, "batch_size", property(lambda self: 1))
    waves: list[tuple[int, int, set]] = []
    original = Executor.run

    def recording(self, jobs, ctx):
        waves.append((len(jobs), len(ctx.y_train), {j.kwargs.get("source") for j in jobs}))
        return original(self, jobs, ctx)

    monkeypatch.setattr(Executor, "run", recording)
    config = HPMConfig(**{**SMALL, "max_configs": 6}, use_parallel=True, n_jobs=2)
    d = AutoDistiller(dataset, method="hpm", config=config, random_state=42)
    d.run()
    halving = d.result_.components.halving
    n_train = d.result_.split_sizes["train"]
    assert halving.enabled and halving.rung1_trials >= 2
    rung1 = [n for n, rows, sources in waves if rows == n_train and sources == {"config"}]
    assert rung1 == [halving.rung1_trials]


# ----------------------------------------------------------------------------- ahead
def session_of(dataset, **config):
    from hpmkd.engine.session import PLANS, RunSession
    from hpmkd.events import EventBus

    cfg = HPMConfig(**{**SMALL, **config})
    return RunSession(dataset, cfg, PLANS["hpm"], 42, EventBus())


def wave_sizes(monkeypatch) -> list[int]:
    """The number of jobs of every executor wave from now on."""
    waves: list[int] = []
    original = Executor.run

    def recording(self, jobs, ctx):
        waves.append(len(jobs))
        return original(self, jobs, ctx)

    monkeypatch.setattr(Executor, "run", recording)
    return waves


def same_fit(a, b) -> None:
    assert a.name == b.name and a.spec == b.spec and a.size_bytes == b.size_bytes
    for metric, value in b.val.items():
        if isinstance(value, float):
            assert a.val[metric] == pytest.approx(value, abs=1e-12, nan_ok=True), metric
    assert not a.from_cache and not b.from_cache


def test_a_fit_trained_ahead_is_taken_only_for_its_spec_and_is_the_fresh_fit(
    dataset, monkeypatch
):
    # A wave of one fit leaves a loky worker waiting: a fit asked for next trains there
    # beside it, is not a candidate, and a later fit of that very spec takes it.
    import hpmkd.engine.session as session_module

    here = session_of(dataset)
    first, second = lgbm_jobs(len(here.ctx.y_train))
    expected = here.fit(second.spec, source="config")
    here.close()
    session = session_of(dataset, use_parallel=True, n_jobs=2)
    waves = wave_sizes(monkeypatch)
    try:
        [trained] = session.train_jobs([first], session.ctx, [second])
        assert waves == [2] and [c.name for c in session.candidates] == [trained.name]
        other = StudentSpec("lgbm", "small", 4.0, 0.5, 1, second.spec.params)
        assert session.fit(other, source="config").spec == other  # not the fit ahead
        assert waves == [2]  # fit() trains in this process, not through the executor

        def no_training(*args, **kwargs):
            raise AssertionError("trained again")

        monkeypatch.setattr(session_module, "train_candidate", no_training)
        same_fit(session.fit(second.spec, source="config"), expected)
    finally:
        session.close()


def test_nothing_trains_ahead_without_workers(dataset, monkeypatch):
    session = session_of(dataset)
    first, second = lgbm_jobs(len(session.ctx.y_train))
    waves = wave_sizes(monkeypatch)
    session.train_jobs([first], session.ctx, [second])
    session.ahead_in_background([second], session.ctx)
    assert waves == [1] and session.free_slots(1) == 0
    assert session.executor.background_slots() == 0
    session.close()


def test_a_fit_started_in_the_background_is_waited_for_and_taken(dataset, monkeypatch):
    import hpmkd.engine.session as session_module

    here = session_of(dataset)
    _, second = lgbm_jobs(len(here.ctx.y_train))
    expected = here.fit(second.spec, source="config")
    here.close()
    session = session_of(dataset, use_parallel=True, n_jobs=2)
    try:
        # The workers start with the session (Executor.start), each with a task that
        # imports the libraries; counted as background work until it ends.
        started = list(session.executor._background)
        assert len(started) == 2
        assert all(future.result() != os.getpid() for future in started)
        assert session.executor.background_slots() == 1
        session.ahead_in_background([second], session.ctx, training=second.spec)
        assert session.executor.background_slots() == 1  # the spec being trained here
        session.ahead_in_background([second], session.ctx)
        assert session.executor.background_slots() == 0  # until it finishes

        def no_training(*args, **kwargs):
            raise AssertionError("trained again")

        monkeypatch.setattr(session_module, "train_candidate", no_training)
        same_fit(session.fit(second.spec, source="config"), expected)
        assert session.executor.background_slots() == 1
    finally:
        session.close()


def test_the_climbs_first_fits_are_the_hard_label_starts_it_would_train(dataset):
    from hpmkd.engine.climb import first_fits

    session = session_of(dataset)
    params = trial_params("lgbm", "large", 1, 1000, 42)
    soft = StudentSpec("lgbm", "large", 2.0, 0.9, 1, params)
    others = [
        StudentSpec("lgbm", "medium", 2.0, 0.9, 1, trial_params("lgbm", "medium", 1, 1000, 42)),
        StudentSpec("lgbm", "large", 1.0, 0.0, 1, params),
        StudentSpec("mlp", "large", 2.0, 0.9, 0, trial_params("mlp", "large", 0, 1000, 42)),
    ]
    assert first_fits(session, [soft, *others]) == [
        StudentSpec("lgbm", "large", 1.0, 0.0, 1, params)
    ]
    session.close()
    assert first_fits(session_of(dataset, max_capacity_steps=0), [soft]) == []
