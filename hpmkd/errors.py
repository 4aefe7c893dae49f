"""Errors a user can act on.

Every error raised for bad input is an :class:`HPMKDInputError` (a ``ValueError``)
whose message says what was wrong, where, and what to do. The CLI and the app show the
message as is, never a traceback.
"""

from __future__ import annotations


class HPMKDInputError(ValueError):
    """Bad input from the user: data, teacher, or configuration.

    The message is complete on its own: what was wrong, where, and what to do.
    """


class MethodNotAvailableError(HPMKDInputError):
    """What was asked for needs an optional package this installation lacks (for example
    Dask for ``dask_scheduler``); the message names the package and the extra to install."""


class TeacherProcessError(HPMKDInputError):
    """A teacher model file crashed, hung or went over a limit in the separate process that
    loads and scores it (:mod:`hpmkd.isolation`). Nothing else was affected; the message
    says what happened, which limit (and its setting) applied and what to do.

    Attributes
    ----------
    reason : str
        ``"crash"``, ``"memory"``, ``"cpu"``, ``"time"``, ``"threads"`` or ``"failed"``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class StorageError(HPMKDInputError):
    """A folder where hpmkd keeps its files (disk cache, optimization memory, the app's
    run cache and sessions) cannot be created or made private to its owner. The message
    names the folder and what to set; a server shows its web users a message without the
    folder (it is the server's setup, not theirs) and logs this one.

    Attributes
    ----------
    path : str
        The folder.
    """

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class HPMKDConfigWarning(UserWarning):
    """A configuration field is set but has no effect on the run (the method does not use
    it, or a switch it needs is off). The message names the field, its value, why it has
    no effect and what to change; the run goes on."""


class RunCancelled(Exception):
    """Raised by a callback to stop a run between candidates."""
