"""Optional packages: the engine's core installs without them; a feature that needs one
says which extra brings it (``pip install 'hpmkd[EXTRA]'``) instead of failing on import."""

from __future__ import annotations

import importlib

from hpmkd.errors import MethodNotAvailableError

#: Extra of each optional package the engine can use.
EXTRAS = {"plotly": "report", "distributed": "dask"}


def require(module: str, purpose: str) -> None:
    """Import ``module`` or raise an error that names the extra to install.

    Parameters
    ----------
    module : str
        Top-level module, a key of :data:`EXTRAS`.
    purpose : str
        What needs it, for the message (e.g. ``"the HTML report"``).

    Raises
    ------
    MethodNotAvailableError
        When ``module`` cannot be imported.
    """
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MethodNotAvailableError(
            f"{purpose} needs the package {module!r}, which is not installed here. Install "
            f"it with pip install 'hpmkd[{EXTRAS[module]}]'."
        ) from exc
