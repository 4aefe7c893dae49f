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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from hpmkd.errors import RunCancelled

#: Default reason of a stop asked for by a person.
USER_STOP = "stopped by the user"


class FitInterrupted(Exception):
    """A fit (or the step about to start) was abandoned because a stop was requested.

    The engine catches it, drops the unfinished candidate and finishes the run with the
    candidates it has.
    """


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
