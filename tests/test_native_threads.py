"""The cached thread limiter (``hpmkd.native_threads``): same limits as threadpoolctl's,
one controller per process until new modules are imported."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy  # noqa: F401  (its BLAS must be loaded for the limits to be seen)
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from hpmkd import native_threads
from hpmkd.native_threads import controller, one_thread


def _threads() -> dict[str, int]:
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()}


def test_one_thread_limits_every_pool_and_restores():
    # Two threads first, so the limit is seen whatever the environment's defaults.
    with threadpool_limits(limits=2):
        before = _threads()
        assert before, "no native thread pool loaded"
        assert set(before.values()) == {2}
        with one_thread():
            inside = _threads()
        assert set(inside) == set(before)
        assert set(inside.values()) == {1}
        assert _threads() == before


def test_one_thread_holds_until_the_last_thread_inside_leaves():
    # Two threads overlap (the leakage check beside training, two app jobs): the first to
    # leave must not give the process-wide BLAS pool its threads back while the second
    # still runs, and the last must restore it, not leave it at one.
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, dict[str, int]] = {}

    def first():
        with one_thread():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second():
        a_in.wait(5)
        with one_thread():
            b_in.set()
            a_out.wait(5)
            seen["after the first left"] = _threads()

    with threadpool_limits(limits=2):
        before = _threads()
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert set(seen["after the first left"].values()) == {1}
        assert _threads() == before


def test_controller_is_kept_until_new_modules_are_imported(monkeypatch):
    first = controller()
    assert controller() is first
    monkeypatch.setitem(sys.modules, "hpmkd_test_fake_native", types.ModuleType("fake"))
    rebuilt = controller()
    assert rebuilt is not first
    assert controller() is rebuilt
    # The cache is the module's; a fresh process starts without one.
    assert native_threads._controller is rebuilt


# ---------------------------------------------------------------- LightGBM thread counts
def _hold_in_thread(key, entered, release, log, name):
    def work():
        with native_threads.lightgbm_threads(key):
            log.append(f"{name} in")
            entered.set()
            release.wait(5)
            log.append(f"{name} out")

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_same_thread_count_calls_run_side_by_side():
    both_in = threading.Barrier(3, timeout=5)

    def work():
        with native_threads.lightgbm_threads(1):
            both_in.wait()  # broken (BrokenBarrierError) unless both hold it at once
            both_in.wait()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    both_in.wait()
    assert native_threads.lightgbm_key() == 1
    both_in.wait()
    for t in threads:
        t.join(5)
    assert native_threads.lightgbm_key() is None


def test_another_thread_count_waits_and_newcomers_queue_behind_it():
    log: list[str] = []
    a_in, a_go = threading.Event(), threading.Event()
    a = _hold_in_thread(2, a_in, a_go, log, "a")
    assert a_in.wait(5)
    b_in, b_go = threading.Event(), threading.Event()
    b = _hold_in_thread(1, b_in, b_go, log, "b")
    # b waits for a's count to end; c has a's count but arrives behind b, so waits too.
    assert not b_in.wait(0.3)
    c_in, c_go = threading.Event(), threading.Event()
    c = _hold_in_thread(2, c_in, c_go, log, "c")
    assert not c_in.wait(0.3)
    a_go.set()
    assert b_in.wait(5)
    assert native_threads.lightgbm_key() == 1
    assert not c_in.wait(0.3)
    b_go.set()
    c_go.set()
    assert c_in.wait(5)
    for t in (a, b, c):
        t.join(5)
    assert log == ["a in", "a out", "b in", "b out", "c in", "c out"]


def test_a_holder_that_comes_back_at_once_queues_behind_the_waiting():
    log: list[str] = []
    a_in, a_go, b_in, b_go = (threading.Event() for _ in range(4))

    def again():
        with native_threads.lightgbm_threads(1):
            log.append("a in")
            a_in.set()
            a_go.wait(5)
        with native_threads.lightgbm_threads(1):  # straight back: a loop of fits
            log.append("a again")

    a = threading.Thread(target=again)
    a.start()
    assert a_in.wait(5)
    b = _hold_in_thread(2, b_in, b_go, log, "b")
    time.sleep(0.2)  # b is queued
    a_go.set()
    assert b_in.wait(5)
    time.sleep(0.2)
    assert log == ["a in", "b in"]
    b_go.set()
    for t in (a, b):
        t.join(5)
    assert log == ["a in", "b in", "b out", "a again"]


def test_nested_calls_keep_their_count():
    with native_threads.lightgbm_threads(2):
        with native_threads.lightgbm_threads(2):
            assert native_threads.lightgbm_key() == 2
        with pytest.raises(RuntimeError, match="1 thread"), native_threads.lightgbm_threads(1):
            pass
        assert native_threads.lightgbm_key() == 2
    assert native_threads.lightgbm_key() is None


def test_a_shared_process_keeps_lightgbm_on_one_thread():
    from hpmkd.parallel import Executor

    assert native_threads.lightgbm_threads_for(2) == 2
    with native_threads.shared_process():
        assert native_threads.lightgbm_threads_for(2) == 1
        assert Executor("loky", n_jobs=2).in_process_threads == 1
    assert native_threads.lightgbm_threads_for(2) == 2


@pytest.mark.parametrize("cross_entropy", [False, True])
def test_lightgbm_students_fit_under_their_thread_count(monkeypatch, cross_entropy):
    import numpy as np
    import pandas as pd

    from hpmkd import students

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    p = 1 / (1 + np.exp(-X["a"].to_numpy()))
    targets = np.column_stack([1 - p, p])
    seen: list[int | None] = []

    def spy(env):
        seen.append(native_threads.lightgbm_key())

    monkeypatch.setattr(students, "_lgbm_check_stop", spy)
    monkeypatch.setattr(students, "LGBM_CROSS_ENTROPY_MIN_ROWS", 0 if cross_entropy else 10**9)
    params = students.trial_params("lgbm", "small", 0, len(X), 0)
    model = students.build_student("lgbm", params, ["a", "b"], [], 0, n_threads=2)
    students.fit_on_soft_targets(model, X, targets, [0, 1])
    assert seen and set(seen) == {2}
    assert native_threads.lightgbm_key() is None


def test_the_leakage_reference_fits_under_one_thread(monkeypatch):
    import numpy as np
    import pandas as pd
    from lightgbm import LGBMClassifier

    from hpmkd.leakage import reference_oof_proba

    seen: list[int | None] = []
    fit = LGBMClassifier.fit

    def spy(self, *args, **kwargs):
        seen.append(native_threads.lightgbm_key())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LGBMClassifier, "fit", spy)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300)})
    y = (X["a"].to_numpy() + rng.normal(size=300) > 0).astype(int)
    reference_oof_proba(X, y, [], 2, 0, folds=3, n_estimators=5, num_leaves=4)
    assert seen == [1, 1, 1]
