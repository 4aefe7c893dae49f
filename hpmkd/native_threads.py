"""One thread for the native thread pools (BLAS, OpenMP) around a fit or a prediction.

``threadpoolctl.threadpool_limits(limits=1)`` finds the process's native libraries anew
on every call (2.4 ms each here, by walking every loaded shared object); a default case b
run made 88 such calls, 0.29 s of its 10.4 s. :func:`one_thread` keeps one
``ThreadpoolController`` per process and limits through it (0.02 ms). The controller
knows the libraries loaded when it was built, so it is built again whenever the number of
imported modules has changed: a native library arrives with the import of the package that
uses it (numpy's BLAS, scikit-learn's and LightGBM's OpenMP, XGBoost's own).
"""

from __future__ import annotations

import sys
import threading
from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_controller: ThreadpoolController | None = None
_modules_seen = -1


def controller() -> ThreadpoolController:
    """The process's ``ThreadpoolController``, built again after new imports.

    Returns
    -------
    threadpoolctl.ThreadpoolController
    """
    global _controller, _modules_seen
    with _lock:
        modules = len(sys.modules)
        if _controller is None or modules != _modules_seen:
            _controller = ThreadpoolController()
            _modules_seen = modules
        return _controller


def one_thread() -> AbstractContextManager[Any]:
    """Limit every native thread pool of the process to one thread inside a ``with``.

    The same limits as ``threadpoolctl.threadpool_limits(limits=1)``, through the cached
    :func:`controller`; the previous limits are restored on exit.

    Returns
    -------
    context manager
    """
    return controller().limit(limits=1)
