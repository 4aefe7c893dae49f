"""Structured progress events passed to ``run(callbacks=...)``.

The engine never prints; the CLI and the app render these events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hpmkd.errors import RunCancelled

EVENT_KINDS = (
    "run_start",
    "phase_start",
    "phase_end",
    "candidate",
    "info",
    "run_end",
)


@dataclass(frozen=True)
class Event:
    """One progress event.

    Attributes
    ----------
    kind : str
        One of ``run_start, phase_start, phase_end, candidate, info, run_end``.
    phase : str or None
        The phase it belongs to (``select``, ``chain``, ``train``, ``ensemble``,
        ``compare`` for hpm; ``grid`` and ``compare`` for legacy).
    message : str
        A one-line human-readable description.
    data : dict
        Plain data: metrics of a finished candidate, phase seconds, and so on.
    time : float
        ``time.time()`` when the event was made.
    """

    kind: str
    phase: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


Callback = Callable[[Event], Any]


class EventBus:
    """Sends each event to every callback; a failing callback never stops the run."""

    def __init__(self, callbacks: Iterable[Callback] | None = None) -> None:
        self.callbacks = list(callbacks or [])
        self.errors: list[str] = []

    def emit(self, kind: str, phase: str | None = None, message: str = "", **data: Any) -> None:
        """Build an :class:`Event` and pass it to every callback."""
        event = Event(kind=kind, phase=phase, message=message, data=data)
        for callback in self.callbacks:
            try:
                callback(event)
            except RunCancelled:
                raise
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
