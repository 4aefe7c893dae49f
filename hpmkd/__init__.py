"""hpmkd: Hierarchical Progressive Multi-teacher Knowledge Distillation for tabular
classifiers.

Public API::

    from hpmkd import AutoDistiller, HPMConfig, DistillationDataset, HPMKDClassifier

Map of the package, bottom floor first (imports only point down): ``_version``, ``errors``,
``paths``, ``stop`` and ``metrics`` are leaves; ``io``, ``data``, ``teacher`` and ``safe_load`` turn
tables and teacher files into a validated :class:`DistillationDataset` (``isolation`` loads
and scores each teacher file in a separate, resource-limited process); ``students`` holds
the student families and soft-target training, ``evaluate`` trains and scores one
candidate; ``components/`` holds the six HPM-KD components (plus racing), each knowing
nothing of a run; ``engine/`` runs the five phases; ``result`` is the frozen record of a
finished run that the CLI, the report and the app read; ``report/`` writes the HTML
report, and ``report/figures`` holds the plotly figure builders the app shares;
``distiller`` (:class:`AutoDistiller`) and ``estimator`` (:class:`HPMKDClassifier`) are the
faces; ``cli`` is the command line; ``settings`` reads the settings a server (the app)
takes from its own environment, never from its users.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from hpmkd._version import __version__
from hpmkd.errors import (
    HPMKDConfigWarning,
    HPMKDInputError,
    MethodNotAvailableError,
    RunCancelled,
    TeacherProcessError,
)

if TYPE_CHECKING:  # the names below are served lazily by __getattr__ at run time
    from hpmkd.config import HPMConfig
    from hpmkd.data import DistillationDataset
    from hpmkd.distiller import AutoDistiller, choose_method
    from hpmkd.estimator import HPMKDClassifier
    from hpmkd.events import Event
    from hpmkd.stop import StopRequest

#: Public name -> module that defines it. Imported on first access (PEP 562), so
#: ``import hpmkd.cli`` and ``hpmkd --help`` do not pay for scikit-learn, pandas and
#: LightGBM (about 1.3 s) before any of them is needed.
_LAZY = {
    "AutoDistiller": "hpmkd.distiller",
    "choose_method": "hpmkd.distiller",
    "DistillationDataset": "hpmkd.data",
    "Event": "hpmkd.events",
    "HPMConfig": "hpmkd.config",
    "HPMKDClassifier": "hpmkd.estimator",
    "StopRequest": "hpmkd.stop",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access and keep the name here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hpmkd' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AutoDistiller",
    "DistillationDataset",
    "Event",
    "HPMConfig",
    "HPMKDClassifier",
    "HPMKDConfigWarning",
    "HPMKDInputError",
    "MethodNotAvailableError",
    "RunCancelled",
    "StopRequest",
    "TeacherProcessError",
    "__version__",
    "choose_method",
]
