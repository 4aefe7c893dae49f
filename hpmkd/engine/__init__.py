"""The engine: one run of the HPM-KD process (or the legacy grid) in five phases.

:func:`~hpmkd.engine.run.run` calls the phases in order; each phase is a module
(``select``, ``chain``, ``train``, ``ensemble``, ``compare``) that works on the
:class:`~hpmkd.engine.session.RunSession` and returns the records of what it decided. The
result is a frozen :class:`~hpmkd.result.RunResult`.
"""

from hpmkd.engine.run import run
from hpmkd.engine.session import PLANS, MethodPlan, RunSession

__all__ = ["PLANS", "MethodPlan", "RunSession", "run"]
