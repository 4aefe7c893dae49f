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


class ServerSetupError(HPMKDInputError):
    """The setup of the machine that runs hpmkd is at fault (one of its folders, one of its
    settings), not a run's data or configuration. The message names the folder or value
    and what to change, for whoever runs hpmkd; a server shows its web users
    :attr:`public` instead (the server's setup is not theirs to see) and logs the message.

    Attributes
    ----------
    public : str
        What was at fault, without folders or values: safe to show anyone.
    """

    def __init__(self, message: str, public: str) -> None:
        super().__init__(message)
        self.public = public


class StorageError(ServerSetupError):
    """A folder where hpmkd keeps its files (disk cache, optimization memory, the app's
    run cache and sessions) cannot be created or made private to its owner. The message
    names the folder and what to set.

    Attributes
    ----------
    path : str
        The folder.
    """

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message, "one of its storage folders could not be used")
        self.path = path


class ServerSettingError(ServerSetupError):
    """A server setting (an ``HPMKD_*`` environment variable,
    :mod:`hpmkd.settings`) holds an invalid value. The message names the variable, the
    value and what to set instead.

    Attributes
    ----------
    variable : str
        The environment variable.
    """

    def __init__(self, message: str, variable: str) -> None:
        super().__init__(message, f"its setting {variable} is invalid")
        self.variable = variable


class HPMKDConfigWarning(UserWarning):
    """A configuration field is set but has no effect on the run (the method does not use
    it, or a switch it needs is off). The message names the field, its value, why it has
    no effect and what to change; the run goes on."""


class RunCancelled(Exception):
    """Raised by a callback to stop a run between candidates."""
