"""Stopping a run early: one request, noticed between fits and inside them.

A :class:`StopRequest` is handed to ``run(stop=...)``; another thread (the app's cancel
button, the CLI's Ctrl-C handler) calls :meth:`StopRequest.request`. The run treats it
like an expired time budget: no new candidate starts, and the run goes on to the compare
phase with every candidate that finished, so the result is a complete run labelled
partial (:attr:`hpmkd.result.RunResult.stop_reason`). With ``discard=True`` the run is
abandoned instead (:class:`~hpmkd.errors.RunCancelled`).

A fit in progress notices the request too, so a stop never waits for a slow fit to end:
while a run is active its request is the context's current one (:meth:`StopRequest.active`),
and the students' training loops call :func:`check_stop` (LightGBM after every boosting
round, MLP students after every epoch), which raises :class:`FitInterrupted`. The
interrupted candidate is dropped; finished ones are kept.

A step with no such hook (a logistic regression's lbfgs, a decision tree, an encoding, a
prediction) is run by :func:`abandonable`: in a daemon thread that the run's thread
watches, so on a stop the run goes on at once and leaves the step behind. The abandoned
step keeps one core busy until it ends on its own (seconds for a logistic regression on
200,000 rows); its result is thrown away, and code that writes shared state from inside
such a step asks :func:`abandoned` first.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from hpmkd.errors import RunCancelled

#: Default reason of a stop asked for by a person.
USER_STOP = "stopped by the user"


class FitInterrupted(Exception):
    """A fit (or the step about to start) was abandoned because a stop was requested.

    The engine catches it, drops the unfinished candidate and finishes the run with the
    candidates it has.
    """


class WaveInterrupted(FitInterrupted):
    """A wave of fits was left by a stop; the fits that had finished are kept.

    Attributes
    ----------
    finished : dict[int, Any]
        The results of the finished jobs, by their position in the wave.
    """

    def __init__(self, reason: str, finished: dict[int, Any]) -> None:
        super().__init__(reason)
        self.finished = finished


class StopRequest:
    """A thread-safe request to stop a run early.

    Attributes
    ----------
    reason : str
        Why the run was asked to stop (recorded in the result).
    discard : bool
        Abandon the run (no result) instead of keeping the best so far.
    requested_at : float or None
        ``time.perf_counter()`` when the stop was requested (for stop latencies).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = USER_STOP
        self.discard = False
        self.requested_at: float | None = None

    def request(self, reason: str = USER_STOP, discard: bool = False) -> None:
        """Ask the run to stop.

        Parameters
        ----------
        reason : str
            Recorded in the result (``stop_reason``) or the cancellation.
        discard : bool
            ``True``: abandon the run; ``False``: finish it with the candidates so far.
            A later request may turn a keep into a discard, never the reverse.
        """
        if self._event.is_set():
            self.discard = self.discard or discard
            return
        self.reason = reason
        self.discard = discard
        self.requested_at = time.perf_counter()
        self._event.set()

    @property
    def requested(self) -> bool:
        """Whether :meth:`request` was called."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise when a stop was requested.

        Raises
        ------
        RunCancelled
            A discarding stop.
        FitInterrupted
            A stop that keeps the best so far.
        """
        if not self._event.is_set():
            return
        if self.discard:
            raise RunCancelled(self.reason)
        raise FitInterrupted(self.reason)

    @contextmanager
    def active(self) -> Iterator[StopRequest]:
        """Make this the request :func:`check_stop` sees in this thread while the block runs."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


# A context variable, not a global: two runs in two threads (two app sessions) each see
# their own request.
_ACTIVE: ContextVar[StopRequest | None] = ContextVar("hpmkd_stop_request", default=None)


def check_stop() -> None:
    """Raise if the active run's stop was requested (a no-op outside a run).

    Called from inside training loops; see :meth:`StopRequest.check`.
    """
    request = _ACTIVE.get()
    if request is not None:
        request.check()


def active_request() -> StopRequest | None:
    """The stop request of the run active in this context (``None`` outside a run)."""
    return _ACTIVE.get()


#: Seconds between two looks at the stop request while an abandonable step runs: the
#: most a stop waits for a step that has no hook of its own.
POLL_S = 0.05

_T = TypeVar("_T")


class _Step:
    """One abandonable step: set ``abandoned`` once the run has left it behind."""

    __slots__ = ("abandoned",)

    def __init__(self) -> None:
        self.abandoned = False


# The step the current thread runs for an abandonable() call (None: the run's own thread).
_STEP: ContextVar[_Step | None] = ContextVar("hpmkd_abandonable_step", default=None)


def abandoned() -> bool:
    """Whether the step running in this thread was left behind by a stop.

    Code inside a step that stores something beyond its own result (a cache shared by
    later steps) checks this first, so an abandoned step can not write after the run
    moved on.
    """
    step = _STEP.get()
    return step is not None and step.abandoned


def abandonable(fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """``fn(*args, **kwargs)``, left behind at once if the active run is asked to stop.

    Outside a run (no active :class:`StopRequest`, e.g. in a worker process) or inside
    another abandonable step, ``fn`` simply runs here. Otherwise it runs in a daemon
    thread, in a copy of this context (so :func:`check_stop` inside it sees the run's
    request), while this thread looks at the request every :data:`POLL_S` seconds. On a
    stop this thread raises at once and the step is marked :func:`abandoned`: its result,
    or its error, is discarded. It keeps its core until it ends on its own, unless it
    calls :func:`check_stop` itself.

    Parameters
    ----------
    fn : callable
        The step; it must not write shared state without asking :func:`abandoned`.
    *args, **kwargs
        Passed to ``fn``.

    Returns
    -------
    Whatever ``fn`` returns.

    Raises
    ------
    FitInterrupted
        A stop that keeps the best so far came before ``fn`` finished.
    RunCancelled
        A discarding stop came before ``fn`` finished.
    """
    request = _ACTIVE.get()
    if request is None or _STEP.get() is not None:
        return fn(*args, **kwargs)
    request.check()
    step = _Step()
    done = threading.Event()
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def inside() -> None:
        _STEP.set(step)
        box["value"] = fn(*args, **kwargs)

    def target() -> None:
        try:
            context.run(inside)
        except BaseException as exc:  # handed to the waiting thread, re-raised there
            box["error"] = exc
        finally:
            done.set()

    name = getattr(fn, "__name__", "step")
    threading.Thread(target=target, name=f"hpmkd-abandonable-{name}", daemon=True).start()
    # Only look at `requested` here (not check()): check() is what the steps call, and a
    # subclass may count its calls (the tests stop at the n-th check).
    while not done.wait(POLL_S):
        if request.requested:
            step.abandoned = True
            request.check()
    if "error" in box:
        raise box["error"]
    return box["value"]
