"""Where the app keeps its files: a private directory under the engine's hpmkd home
(:func:`hpmkd.paths.hpmkd_home`, the one place that decides it)."""

from __future__ import annotations

from pathlib import Path

from hpmkd.paths import hpmkd_home, private_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = REPO_ROOT / "assets" / "german_credit.csv"


def app_dir(name: str) -> Path:
    """A private sub-directory of ``<hpmkd home>/app`` (created, mode 0700).

    Parameters
    ----------
    name : str
        Sub-directory name, e.g. ``"runs"``.
    """
    root = private_dir(hpmkd_home() / "app")
    return private_dir(root / name)
