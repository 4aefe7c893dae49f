"""IntelligentCache: memoization, keys, LRU size limit, disabled mode, concurrency."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpmkd.components.cache import IntelligentCache
from hpmkd.config import HPMConfig
from hpmkd.paths import hpmkd_home, private_dir

key = IntelligentCache.make_key


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the real ~/.cache/hpmkd.
    monkeypatch.setenv("HPMKD_HOME", str(tmp_path / "home"))


class Counter:
    """A compute function that counts its calls."""

    def __init__(self, value: object = "value") -> None:
        self.calls = 0
        self.value = value

    def __call__(self) -> object:
        self.calls += 1
        return self.value


# ---------------------------------------------------------------------- basic use
def test_second_call_is_a_hit_and_does_not_compute(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c")
    compute = Counter(np.arange(5.0))
    value, hit = cache.get_or_compute(key("x", 1), compute)
    again, hit_again = cache.get_or_compute(key("x", 1), compute)
    assert (hit, hit_again) == (False, True)
    assert compute.calls == 1
    np.testing.assert_array_equal(again, value)
    assert (cache.hits, cache.misses) == (1, 1)
    cache.get_or_compute(key("x", 2), compute)
    stats = cache.stats()
    assert stats["hits"] == 1 and stats["misses"] == 2 and stats["enabled"] is True
    assert stats["directory"] == str(tmp_path / "c")
    assert 0 < stats["size_bytes"] <= stats["size_limit_bytes"]


def test_none_is_a_cacheable_value(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c")
    compute = Counter(None)
    assert cache.get_or_compute("k", compute) == (None, False)
    assert cache.get_or_compute("k", compute) == (None, True)
    assert compute.calls == 1


def test_another_instance_on_the_same_directory_hits(tmp_path: Path) -> None:
    first = IntelligentCache(tmp_path / "c")
    first.get_or_compute(key("teacher_proba", "fp"), Counter([1, 2]))
    first.close()
    second = IntelligentCache(tmp_path / "c")
    compute = Counter()
    assert second.get_or_compute(key("teacher_proba", "fp"), compute) == ([1, 2], True)
    assert compute.calls == 0 and (second.hits, second.misses) == (1, 0)


def test_clear_empties_the_cache(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c")
    cache.get_or_compute("k", Counter())
    cache.clear()
    assert "k" not in cache
    compute = Counter()
    assert cache.get_or_compute("k", compute)[1] is False and compute.calls == 1


def test_compute_error_propagates_and_releases_the_lock(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c")

    def boom() -> None:
        raise RuntimeError("fit failed")

    with pytest.raises(RuntimeError, match="fit failed"):
        cache.get_or_compute("k", boom)
    # The lock was released: the next call computes at once instead of waiting.
    start = time.perf_counter()
    assert cache.get_or_compute("k", Counter(3)) == (3, False)
    assert time.perf_counter() - start < 1


def test_unreadable_entry_is_recomputed(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c")
    # An entry that cannot be unpickled, like one written before a class was renamed.
    cache._cache.set("k", _Unloadable())
    compute = Counter(7)
    assert cache.get_or_compute("k", compute) == (7, False)
    assert compute.calls == 1
    assert cache.get_or_compute("k", compute) == (7, True)


class _Unloadable:
    def __reduce__(self) -> tuple:
        # Unpickling calls _raise_on_load.
        return (_raise_on_load, ())


def _raise_on_load() -> None:
    raise AttributeError("module 'hpmkd.students' has no attribute 'OldStudent'")


def test_unpicklable_value_is_returned_with_a_warning(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c")
    with pytest.warns(RuntimeWarning, match="could not store"):
        value, hit = cache.get_or_compute("k", lambda: threading.Lock())
    assert hit is False and value is not None
    assert "k" not in cache


def test_cache_object_is_not_picklable(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="open IntelligentCache"):
        pickle.dumps(IntelligentCache(tmp_path / "c"))


# ---------------------------------------------------------------------- keys
def test_key_is_a_sha256_hex_string() -> None:
    k = key("teacher_proba", "abc", 1)
    assert len(k) == 64 and int(k, 16) >= 0


def test_key_is_stable_across_dict_order_and_equal_values() -> None:
    a = {"alpha": 0.5, "family": "lgbm", "params": {"num_leaves": 15, "lr": 0.1}}
    b = {"params": {"lr": 0.1, "num_leaves": 15}, "family": "lgbm", "alpha": 0.5}
    assert key("candidate", a) == key("candidate", b)
    arr = np.linspace(0, 1, 11)
    assert key("p", arr) == key("p", arr.copy()) == key("p", np.linspace(0, 1, 11))
    # A non-contiguous view with the same values gives the same key.
    assert key("p", np.arange(10.0)[::2]) == key("p", np.array([0.0, 2.0, 4.0, 6.0, 8.0]))
    assert key("p", 0.1 + 0.2) == key("p", 0.30000000000000004)
    assert key("p", np.float64(0.25)) == key("p", 0.25)
    assert key("p", np.int64(3)) == key("p", 3)
    assert key("p", (1, 2)) == key("p", [1, 2])  # config tuples vs their to_dict lists
    assert key("p", {3, 1, 2}) == key("p", {2, 3, 1})
    assert key("p", None, b"raw") == key("p", None, b"raw")
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    assert key("p", frame) == key("p", frame.copy())
    assert key("p", HPMConfig()) == key("p", HPMConfig())


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"alpha": 0.5, "t": 2.0}, {"alpha": 0.5, "t": 4.0}),  # one value changes
        ({"alpha": 0.5}, {"beta": 0.5}),  # a key changes
        (0.1, 0.1 + 1e-16 * 2),  # floats are exact
        (1, 1.0),  # int vs float
        (True, 1),  # bool vs int
        ("1", 1),
        (b"ab", "ab"),
        (None, "None"),
        (np.arange(4.0), np.arange(4.0) + np.array([0, 0, 0, 1e-12])),  # one element
        (np.arange(4.0), np.arange(4.0).astype(np.float32)),  # dtype
        (np.arange(4.0), np.arange(4.0).reshape(2, 2)),  # shape
        (("a", "b"), ("ab",)),  # no ambiguity from concatenation
        ([["a"], "b"], ["a", ["b"]]),
        (pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"a": [1.0, 2.5]})),
        (HPMConfig(), HPMConfig(max_configs=8)),
    ],
)
def test_key_changes_when_any_input_changes(left: object, right: object) -> None:
    assert key("k", left) != key("k", right)


def test_key_depends_on_kind_and_part_positions() -> None:
    assert key("a", 1) != key("b", 1)
    assert key("k", 1, 2) != key("k", 2, 1)
    assert key("k", (1, 2)) != key("k", 1, 2)


def test_object_arrays_hash_their_values_not_pointers() -> None:
    left = np.array(["x", None, 1.5], dtype=object)
    right = np.array(["x", None, 1.5], dtype=object)
    assert key("k", left) == key("k", right)
    assert key("k", left) != key("k", np.array(["y", None, 1.5], dtype=object))


def test_key_refuses_types_without_a_stable_encoding() -> None:
    with pytest.raises(TypeError, match="cannot hash a object"):
        key("k", object())


# ---------------------------------------------------------------------- size limit
def test_size_limit_evicts_least_recently_used_and_keeps_the_new_entry(tmp_path: Path) -> None:
    limit = 200_000
    cache = IntelligentCache(tmp_path / "c", size_limit_bytes=limit)
    keys = [key("blob", i) for i in range(6)]

    def blob(i: int) -> bytes:
        return bytes([i]) * 50_000

    for i in range(3):
        cache.get_or_compute(keys[i], lambda i=i: blob(i))
        time.sleep(0.01)  # distinct access times
    assert all(k in cache for k in keys[:3])
    # Reading entry 0 makes it recently used; entry 1 is now the oldest.
    assert cache.get_or_compute(keys[0], Counter())[1] is True
    time.sleep(0.01)
    expected = {
        3: [True, False, True, True],  # 1 is the least recently used (0 was read)
        4: [True, False, False, True, True],
        5: [False, False, False, True, True, True],
    }
    for i in range(3, 6):
        _, hit = cache.get_or_compute(keys[i], lambda i=i: blob(i))
        assert hit is False
        assert [k in cache for k in keys[: i + 1]] == expected[i]  # keeps the new entry
        assert cache.stats()["size_bytes"] <= limit
        time.sleep(0.01)
    compute = Counter(b"")
    assert cache.get_or_compute(keys[5], compute) == (blob(5), True) and compute.calls == 0


def test_recently_read_entry_survives_eviction(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c", size_limit_bytes=200_000)
    keys = [key("blob", i) for i in range(4)]
    for i in range(3):
        cache.get_or_compute(keys[i], lambda: b"x" * 50_000)
        time.sleep(0.01)
    cache.get_or_compute(keys[0], Counter())  # touch the oldest
    time.sleep(0.01)
    cache.get_or_compute(keys[3], lambda: b"y" * 50_000)
    assert [k in cache for k in keys] == [True, False, True, True]


def test_entry_larger_than_the_limit_is_kept_alone(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c", size_limit_bytes=100_000)
    cache.get_or_compute("small", lambda: b"s" * 10_000)
    cache.get_or_compute("huge", lambda: b"h" * 150_000)
    assert "huge" in cache and "small" not in cache


def test_reopening_with_a_lower_limit_evicts(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c")
    for i in range(4):
        cache.get_or_compute(f"k{i}", lambda: b"z" * 50_000)
        time.sleep(0.01)
    cache.close()
    smaller = IntelligentCache(tmp_path / "c", size_limit_bytes=150_000)
    assert smaller.stats()["size_bytes"] <= 150_000
    assert "k3" in smaller and "k0" not in smaller


# ---------------------------------------------------------------------- disabled
def test_disabled_cache_computes_every_time_and_creates_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "never"
    cache = IntelligentCache(directory, enabled=False)
    compute = Counter(1)
    assert cache.get_or_compute("k", compute) == (1, False)
    assert cache.get_or_compute("k", compute) == (1, False)
    assert compute.calls == 2 and (cache.hits, cache.misses) == (0, 2)
    assert not directory.exists() and not hpmkd_home().exists()
    assert cache.stats() == {
        "enabled": False,
        "hits": 0,
        "misses": 2,
        "directory": None,
        "size_bytes": 0,
        "size_limit_bytes": 2 * 1024**3,
    }
    cache.clear()
    cache.close()
    assert "k" not in cache


def test_from_config(tmp_path: Path) -> None:
    config = HPMConfig(cache_dir=str(tmp_path / "cc"), cache_size_limit_gb=0.5)
    cache = IntelligentCache.from_config(config)
    assert cache.directory == tmp_path / "cc" and cache.size_limit_bytes == 512 * 1024**2
    off = IntelligentCache.from_config(HPMConfig(use_cache=False))
    assert off.enabled is False and not hpmkd_home().exists()
    default = IntelligentCache.from_config(HPMConfig())
    assert default.directory == hpmkd_home() / "cache"


# ---------------------------------------------------------------------- privacy
def test_directory_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "nested" / "cache"
    IntelligentCache(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    IntelligentCache(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


def test_hpmkd_home_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HPMKD_HOME", str(tmp_path / "h"))
    assert hpmkd_home() == tmp_path / "h"
    monkeypatch.delenv("HPMKD_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hpmkd_home() == tmp_path / "xdg" / "hpmkd"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert hpmkd_home() == tmp_path / "user" / ".cache" / "hpmkd"
    assert stat.S_IMODE(private_dir(hpmkd_home()).stat().st_mode) == 0o700


# ---------------------------------------------------------------------- concurrency
def _slow_append(log: str, tag: str) -> str:
    time.sleep(0.5)
    with open(log, "a") as handle:
        handle.write(f"{tag}\n")
    return "computed"


def _process_worker(directory: str, log: str, barrier: object, results: object) -> None:
    cache = IntelligentCache(directory)
    barrier.wait()  # type: ignore[attr-defined]
    value, hit = cache.get_or_compute("same-key", lambda: _slow_append(log, str(os.getpid())))
    results.put((value, hit))  # type: ignore[attr-defined]


def test_concurrent_identical_work_runs_once_across_threads(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c")
    log = tmp_path / "log.txt"
    barrier = threading.Barrier(2)
    results: list[tuple[object, bool]] = []

    def work() -> None:
        barrier.wait()
        results.append(cache.get_or_compute("same-key", lambda: _slow_append(str(log), "t")))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert log.read_text().splitlines() == ["t"]
    assert sorted(hit for _, hit in results) == [False, True]
    assert all(value == "computed" for value, _ in results)
    assert (cache.hits, cache.misses) == (1, 1)


@pytest.mark.slow  # spawned workers each import hpmkd (sklearn): seconds
def test_concurrent_identical_work_runs_once_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    log = tmp_path / "log.txt"
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    IntelligentCache(tmp_path / "c").close()  # create the directory once, up front
    procs = [
        ctx.Process(target=_process_worker, args=(str(tmp_path / "c"), str(log), barrier, results))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert len(log.read_text().splitlines()) == 1
    assert sorted(hit for _, hit in outcomes) == [False, True]
    assert all(value == "computed" for value, _ in outcomes)


def test_lock_of_a_dead_process_is_broken(tmp_path: Path) -> None:
    cache = IntelligentCache(tmp_path / "c")
    ctx = multiprocessing.get_context("spawn")
    # A pid that existed and is gone: a finished child process.
    proc = ctx.Process(target=time.sleep, args=(0,))
    proc.start()
    proc.join()
    import socket

    cache._cache.add("lock:k", f"{socket.gethostname()}:{proc.pid}:stale")
    start = time.perf_counter()
    assert cache.get_or_compute("k", Counter(5)) == (5, False)
    assert time.perf_counter() - start < 2
