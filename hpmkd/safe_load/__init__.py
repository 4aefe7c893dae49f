"""Restricted loading of untrusted teacher model files.

Teacher models are uploaded by users, so the files must be treated as hostile.
Loading a pickle or joblib file normally runs whatever code the file asks for;
this module never does.  It supports five formats, chosen by file extension:

``.joblib``, ``.pkl``, ``.pickle``
    Read with a restricted unpickler built on joblib's own reader (so joblib
    compression and joblib's out-of-band numpy arrays work, and plain
    ``pickle.dump`` files load too).  Every global the file names must be on an
    explicit allow list of ``(module, name)`` pairs (:data:`ALLOWED_GLOBALS`).
    On top of that, the unpickler checks the handful of opcodes that can touch
    memory directly (numpy dtypes and arrays, tree node tables), because some
    numpy and scikit-learn reconstructors can be abused for memory corruption
    even when only allow-listed names are used.
    A ``FunctionTransformer`` (every fitted ``"passthrough"`` is one) is admitted
    when its functions are ``None`` or one of
    :data:`FUNCTION_TRANSFORMER_FUNCTIONS`; this is checked on the loaded objects,
    and a refusal names the pipeline step (``step "prep" -> "num"``).
``.txt``, ``.lgb``
    LightGBM native text model, returned as a :class:`lightgbm.Booster`.
``.json``, ``.ubj``
    XGBoost native model (needs ``hpmkd[xgboost]``), returned as an ``XGBClassifier``.
``.skops``
    Loaded with :func:`skops.io.load`, extending skops' default trust only with
    types from our own allow list (never ``trusted=True``).

``trusted=True`` (``hpmkd distill --trust-teacher``) loads pickle/joblib and skops
files without any restriction - running any code in them - for a user's own file on
their own machine.

Everything that goes wrong is reported as :class:`UnsafeModelError` (the file
asked for something we refuse to do) or :class:`ModelFileError` (the file is
not a readable model), each with a one-paragraph message naming the file.

Modules, each named for its job (imports only point down the list):

- :mod:`~hpmkd.safe_load.errors` - the two public errors and the internal refusal.
- :mod:`~hpmkd.safe_load.names` - look up objects by ``(module, name)``.
- :mod:`~hpmkd.safe_load.numpy_guards` - strict stand-ins for numpy/stdlib reconstructors.
- :mod:`~hpmkd.safe_load.allowlist` - exactly which classes and functions are admitted.
- :mod:`~hpmkd.safe_load.state_checks` - validation of array, tree, spline and partial
  states, and of the fitted state of every estimator family with native code.
- :mod:`~hpmkd.safe_load.lightgbm_text` - validation of LightGBM model strings.
- :mod:`~hpmkd.safe_load.graph_checks` - which functions the loaded objects hold, and where;
  the family checks, nesting depth and repeated trees; ``n_jobs`` forced to 1.
- :mod:`~hpmkd.safe_load.unpickler` - the restricted unpickler; reading pickle/joblib files.
- :mod:`~hpmkd.safe_load.formats` - LightGBM text, XGBoost native and skops files; trusted loads.
- :mod:`~hpmkd.safe_load.loader` - :func:`load_model_file` and :func:`load_model_bytes`.
"""

from __future__ import annotations

from hpmkd.safe_load.allowlist import ALLOWED_GLOBALS, FUNCTION_TRANSFORMER_FUNCTIONS
from hpmkd.safe_load.errors import ModelFileError, UnsafeModelError
from hpmkd.safe_load.loader import (
    DEFAULT_MAX_UNPACKED_BYTES,
    LIGHTGBM_TEXT_EXTENSIONS,
    PICKLE_EXTENSIONS,
    SKOPS_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    XGBOOST_EXTENSIONS,
    check_lightgbm_model,
    check_model,
    load_model_bytes,
    load_model_file,
)

__all__ = [
    "ALLOWED_GLOBALS",
    "DEFAULT_MAX_UNPACKED_BYTES",
    "FUNCTION_TRANSFORMER_FUNCTIONS",
    "LIGHTGBM_TEXT_EXTENSIONS",
    "PICKLE_EXTENSIONS",
    "SKOPS_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "XGBOOST_EXTENSIONS",
    "ModelFileError",
    "UnsafeModelError",
    "check_lightgbm_model",
    "check_model",
    "load_model_bytes",
    "load_model_file",
]
