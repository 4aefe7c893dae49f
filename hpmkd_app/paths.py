"""Where the app keeps its files: a private directory under ``$HPMKD_HOME``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = REPO_ROOT / "assets" / "german_credit.csv"


def hpmkd_home() -> Path:
    """The hpmkd home directory: ``$HPMKD_HOME``, else ``~/.cache/hpmkd``.

    Returns
    -------
    Path
        The directory (not created).
    """
    env = os.environ.get("HPMKD_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hpmkd"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable only by the current user (mode 0700).

    Parameters
    ----------
    path : Path
        Directory to create or tighten.

    Returns
    -------
    Path
        ``path``.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def app_dir(name: str) -> Path:
    """A private sub-directory of ``<hpmkd home>/app`` (created, mode 0700).

    Parameters
    ----------
    name : str
        Sub-directory name, e.g. ``"runs"``.
    """
    root = private_dir(hpmkd_home() / "app")
    return private_dir(root / name)
