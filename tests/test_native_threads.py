"""The cached thread limiter (``hpmkd.native_threads``): same limits as threadpoolctl's,
one controller per process until new modules are imported."""

from __future__ import annotations

import sys
import types

import numpy  # noqa: F401  (its BLAS must be loaded for the limits to be seen)
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


def test_controller_is_kept_until_new_modules_are_imported(monkeypatch):
    first = controller()
    assert controller() is first
    monkeypatch.setitem(sys.modules, "hpmkd_test_fake_native", types.ModuleType("fake"))
    rebuilt = controller()
    assert rebuilt is not first
    assert controller() is rebuilt
    # The cache is the module's; a fresh process starts without one.
    assert native_threads._controller is rebuilt
