"""hpmkd: Hierarchical Progressive Multi-teacher Knowledge Distillation for tabular
classifiers.

Public API::

    from hpmkd import AutoDistiller, HPMConfig, DistillationDataset
"""

from __future__ import annotations

__version__ = "0.1.0"

from hpmkd.config import HPMConfig
from hpmkd.data import DistillationDataset
from hpmkd.distiller import AutoDistiller, choose_method
from hpmkd.errors import HPMKDInputError, MethodNotAvailableError, RunCancelled
from hpmkd.events import Event

__all__ = [
    "AutoDistiller",
    "DistillationDataset",
    "Event",
    "HPMConfig",
    "HPMKDInputError",
    "MethodNotAvailableError",
    "RunCancelled",
    "__version__",
    "choose_method",
]
