"""Look up classes and functions by the ``(module, name)`` pair pickle writes.

Shared by :mod:`~hpmkd.safe_load.allowlist` and :mod:`~hpmkd.safe_load.numpy_guards`;
private internals of numpy and scikit-learn move between versions, so a missing
name is ``None`` rather than an error.
"""

from __future__ import annotations

import importlib
from typing import Any


def _optional(module: str, name: str) -> Any | None:
    """Return ``module.name`` or None: private internals move between versions."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _key(obj: Any) -> tuple[str, str]:
    """The ``(module, name)`` pair pickle writes for a class or function."""
    return (obj.__module__, obj.__qualname__)
