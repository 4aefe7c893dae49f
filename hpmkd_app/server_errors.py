"""What a web user is told when the server's own setup fails.

An :class:`~hpmkd.errors.ServerSetupError` (a storage folder the server cannot use, an
invalid ``HPMKD_*`` setting) names the server's folders and values: its administrator
needs them, the people using the app must not see them. The full message goes to the
server log; the page says what failed, that it is the server's setup and not theirs, and
gives the reference the administrator finds in the log. Every other input error is the
user's own and is shown as it is.
"""

from __future__ import annotations

import logging

from hpmkd.errors import ServerSetupError

__all__ = ["web_message"]


def web_message(exc: ValueError, consequence: str, log: logging.Logger,
                reference: str | None = None) -> str:
    """The text a web user sees for ``exc``.

    Parameters
    ----------
    exc : ValueError
        An input error (``HPMKDInputError`` or a plain ``ValueError``).
    consequence : str
        What the failure means for the user, e.g. ``"no run can start"``.
    log : logging.Logger
        Where the full message of a server setup error goes.
    reference : str, optional
        Names this failure in the log (e.g. ``"job 3f2a9c1e"``).

    Returns
    -------
    str
        ``str(exc)`` for the user's own input; for a server setup error, a message with
        no folder or value that points the administrator to the log.
    """
    if not isinstance(exc, ServerSetupError):
        return str(exc)
    where = f" ({reference})" if reference else ""
    log.error("server setup%s: %s", where, exc)
    return (
        f"The server's setup is at fault, so {consequence}: {exc.public}. This is not your "
        "data or settings; the server's administrator finds the details in the server "
        f"log{where}."
    )
