"""One thread for the native thread pools (BLAS, OpenMP) around a fit or a prediction.

``threadpoolctl.threadpool_limits(limits=1)`` finds the process's native libraries anew
on every call (2.4 ms each here, by walking every loaded shared object); a default case b
run made 88 such calls, 0.29 s of its 10.4 s. :func:`one_thread` keeps one
``ThreadpoolController`` per process and limits through it (0.02 ms). The controller
knows the libraries loaded when it was built, so it is built again whenever the number of
imported modules has changed: a native library arrives with the import of the package that
uses it (numpy's BLAS, scikit-learn's and LightGBM's OpenMP, XGBoost's own).

LightGBM's thread count is one process-wide variable: every fit and prediction sets it
to its own ``num_threads`` (``LGBM_DEFAULT_NUM_THREADS``; LightGBM's documentation: do not
change ``num_threads`` while other jobs train in the same process), and a call that sized
its buffers for one thread while another call set two crashes the process. Measured here
(LightGBM 4.7.0, three threads fitting 30-tree models on 5,000 rows in a loop,
``bench/lightgbm_threads.py``): with one thread for all, or two for all, no crash in
minutes; with one and two mixed, a segmentation fault within a minute in 7 of 12 runs.
Two guards keep hpmkd's own calls from mixing counts:

- :func:`lightgbm_threads`: held around every LightGBM fit hpmkd makes (students, the
  leakage check's reference model); calls with the same count run side by side, a call
  with another count waits until they end (and newcomers wait behind it). In a run, the
  fits with two threads in the run's process (parallel runs, the chain and the climb while
  the workers wait) and the leakage check's one-thread fits in its thread take turns.
- :func:`shared_process`: a thread that shares its process with other runs (the app's
  jobs, one thread each in the server) marks itself, and the run it starts keeps every
  LightGBM call in the process at one thread (:func:`lightgbm_threads_for`), predictions
  included, which no guard sees.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any

from threadpoolctl import OpenBLASController, ThreadpoolController

_lock = threading.Lock()
_controller: ThreadpoolController | None = None
_modules_seen = -1


def controller() -> ThreadpoolController:
    """The process's ``ThreadpoolController``, built again after new imports.

    Returns
    -------
    threadpoolctl.ThreadpoolController
    """
    global _controller, _modules_seen
    with _lock:
        modules = len(sys.modules)
        if _controller is None or modules != _modules_seen:
            _controller = ThreadpoolController()
            _modules_seen = modules
        return _controller


class _ProcessPools:
    """The process-wide native pools (a BLAS without OpenMP threading: its one pool serves
    every thread), held at one thread from the first :func:`one_thread` entry to the
    last exit, whatever the threads.

    threadpoolctl restores a pool on every exit, and lets only one "controlling" thread
    set an OpenBLAS pool: with two threads inside, the first to leave gave the pool back
    its threads while the second still ran, and the second's exit then left it at one for
    good (threadpoolctl 3.8). Here the first entry records each pool's count and the last
    exit restores it; the sets are serialized by the lock, and each takes threadpoolctl's
    control for its own call only.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._original: dict[str, tuple[Any, int]] = {}

    @staticmethod
    def _set(lib: Any, n_threads: int) -> None:
        OpenBLASController.clear_controlling_thread(force=True)
        try:
            lib.set_num_threads(n_threads)
        finally:
            OpenBLASController.clear_controlling_thread(force=True)

    def enter(self, libs: list[Any]) -> None:
        with self._lock:
            # A library loaded since the first entry is limited by the next one.
            for lib in libs:
                if lib.filepath not in self._original:
                    count = lib.get_num_threads()
                    if count is not None:
                        self._original[lib.filepath] = (lib, count)
                        self._set(lib, 1)
            self._holders += 1

    def leave(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                for lib, count in self._original.values():
                    self._set(lib, count)
                self._original.clear()


_PROCESS_POOLS = _ProcessPools()


def _per_thread(lib: Any) -> bool:
    # OpenMP's limits are per calling thread (so is a BLAS that threads with OpenMP).
    return lib.user_api == "openmp" or getattr(lib, "threading_layer", None) == "openmp"


@contextmanager
def one_thread() -> Iterator[None]:
    """Limit every native thread pool of the process to one thread inside a ``with``.

    The same limits as ``threadpoolctl.threadpool_limits(limits=1)``, through the cached
    :func:`controller`. Per-thread pools (OpenMP) are limited for the calling thread and
    restored on its exit; process-wide pools (a BLAS without OpenMP) stay at one thread
    until the last thread inside leaves, and are then restored.
    """
    ctl = controller()
    _PROCESS_POOLS.enter([lib for lib in ctl.lib_controllers if not _per_thread(lib)])
    try:
        with ctl.select(user_api="openmp", threading_layer="openmp").limit(limits=1):
            yield
    finally:
        _PROCESS_POOLS.leave()


class _SameCount:
    """A lock that admits any number of holders with the same key and none with another.

    Holders-to-be queue in arrival order; the first in the queue enters when nobody holds
    the lock or the holders have its key, and then lets the next try, so a run of arrivals
    with one key enters together and neither key starves the other (a thread that leaves
    and comes back at once queues behind those waiting). A thread that holds the lock may
    enter again with the same key (its own calls are sequential); with another key that
    would be the mix the lock exists to prevent, and it raises ``RuntimeError``.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._key: int | None = None
        self._holders = 0
        self._queue: deque[tuple[object, int]] = deque()
        self._mine = threading.local()

    @property
    def key(self) -> int | None:
        """The holders' key; ``None`` when nobody holds the lock."""
        return self._key

    def _admits(self, ticket: object, key: int) -> bool:
        first = self._queue[0][0] is ticket
        return first and (self._holders == 0 or self._key == key)

    @contextmanager
    def hold(self, key: int) -> Iterator[None]:
        """Hold the lock under ``key`` inside a ``with``."""
        depth = getattr(self._mine, "depth", 0)
        if depth and self._key != key:
            raise RuntimeError(
                f"a LightGBM call with {key} thread(s) inside one with {self._key}"
            )
        with self._cond:
            if depth == 0:
                ticket = object()
                self._queue.append((ticket, key))
                try:
                    self._cond.wait_for(lambda: self._admits(ticket, key))
                finally:
                    self._queue.remove((ticket, key))
                    self._cond.notify_all()  # the next in the queue may share the key
                self._key = key
            self._holders += 1
        self._mine.depth = depth + 1
        try:
            yield
        finally:
            self._mine.depth = depth
            with self._cond:
                self._holders -= 1
                if self._holders == 0:
                    self._key = None
                    self._cond.notify_all()


_LIGHTGBM = _SameCount()
_SHARED: ContextVar[bool] = ContextVar("hpmkd_shared_process", default=False)


def lightgbm_threads(n_threads: int) -> AbstractContextManager[None]:
    """Hold around a LightGBM fit (or prediction) that runs with ``n_threads`` threads:
    no LightGBM call of hpmkd with another thread count runs in the process meanwhile.

    Parameters
    ----------
    n_threads : int
        The call's ``num_threads`` (``n_jobs``).

    Returns
    -------
    context manager
    """
    return _LIGHTGBM.hold(int(n_threads))


def lightgbm_key() -> int | None:
    """The thread count the LightGBM calls running now were admitted with (``None``:
    none is running)."""
    return _LIGHTGBM.key


@contextmanager
def shared_process() -> Iterator[None]:
    """Mark the current thread (and what it starts in it) as sharing its process with
    other runs: :func:`lightgbm_threads_for` gives one thread inside the ``with``."""
    token = _SHARED.set(True)
    try:
        yield
    finally:
        _SHARED.reset(token)


def lightgbm_threads_for(wanted: int) -> int:
    """The LightGBM threads a fit in the run's own process may use: ``wanted``, or one in
    a :func:`shared_process` thread (other runs' calls in the process are not guarded,
    their predictions included, so every call there keeps one thread).

    Parameters
    ----------
    wanted : int

    Returns
    -------
    int
    """
    return 1 if _SHARED.get() else wanted
