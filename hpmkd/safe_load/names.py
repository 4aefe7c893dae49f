"""Look up classes and functions by the ``(module, name)`` pair pickle writes.

Shared by :mod:`~hpmkd.safe_load.allowlist` and :mod:`~hpmkd.safe_load.numpy_guards`;
private internals of numpy and scikit-learn move between versions, so a missing
name is ``None`` rather than an error.  :class:`_Unresolved` stands for a name that
is *not* admitted, so that a refusal can say where in the model it was used.
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


class _Unresolved:
    """An inert stand-in for a global the allow list does not admit.

    The unpickler hands one out instead of refusing on the spot, so that a refusal can
    name where the file uses it (``step "prep" calls "mymodule.clean"``).  It is never
    imported, called, built or trusted: every opcode that would call or build it refuses,
    and a file that still holds one when loading ends is refused.
    """

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    @property
    def dotted(self) -> str:
        """``module.name`` as the file spells it."""
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return f"<refused {self.dotted}>"

    def __reduce__(self) -> Any:  # never let a refused name be pickled onwards
        raise TypeError(f"{self.dotted} was refused and cannot be pickled")


class _UnresolvedObject:
    """An inert stand-in for an *instance* of a class the allow list does not admit.

    Pickles create objects of a class with NEWOBJ (``cls.__new__(cls)``) and then set
    their state with BUILD.  For a refused class the unpickler makes this instead and
    throws the state away, so that the refusal can name the pipeline step holding it
    (``step "prep" is a "mymodule.MyScaler" object``).  Nothing of the class is run.
    """

    __slots__ = ("cls",)

    def __init__(self, cls: _Unresolved) -> None:
        self.cls = cls

    def __repr__(self) -> str:
        return f"<refused {self.cls.dotted} object>"

    def __reduce__(self) -> Any:
        raise TypeError(f"a {self.cls.dotted} object was refused and cannot be pickled")
