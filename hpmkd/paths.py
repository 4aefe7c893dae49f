"""Where hpmkd keeps its files on disk (cache, optimization memory).

One function decides the home directory so the cache, the memory and the tests agree,
and one creates directories private to the user: the cache stores pickles, and reading
a pickle runs code, so no other local user may write (or read) there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from hpmkd.errors import StorageError

__all__ = ["hpmkd_home", "private_dir"]


def hpmkd_home(environ: Mapping[str, str] | None = None) -> Path:
    """The directory under which hpmkd keeps its cache and optimization memory.

    Parameters
    ----------
    environ : mapping, optional
        The environment to read; default ``os.environ``.

    Returns
    -------
    Path
        ``$HPMKD_HOME`` when set; otherwise ``$XDG_CACHE_HOME/hpmkd`` when that is an
        absolute path (the XDG spec says to ignore relative ones); otherwise
        ``~/.cache/hpmkd``. The directory is not created here; see :func:`private_dir`.
    """
    env = os.environ if environ is None else environ
    explicit = env.get("HPMKD_HOME", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "hpmkd"
    return Path.home() / ".cache" / "hpmkd"


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and its parents) and make it readable only by its owner (0700).

    Parameters
    ----------
    path : str or Path
        The directory; ``~`` is expanded.

    Returns
    -------
    Path
        The directory, absolute.

    Raises
    ------
    StorageError
        (an ``HPMKDInputError``) When the directory cannot be created or made private
        (for instance a shared directory such as ``/tmp`` that belongs to someone else).
    """
    directory = Path(path).expanduser().absolute()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask and leaves an existing directory as it
        # was, so set the mode explicitly every time.
        directory.chmod(0o700)
    except OSError as exc:
        raise StorageError(
            f"Cannot use {str(directory)!r} as a private hpmkd directory: {exc.strerror or exc}. "
            "Choose a directory you own (for example set HPMKD_HOME, cache_dir or memory_dir).",
            str(directory),
        ) from exc
    return directory
