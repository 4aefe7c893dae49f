"""The public entry points: pick the format by extension, load, report errors.

:func:`load_model_file` and :func:`load_model_bytes` check the extension and the
file, dispatch to :mod:`~hpmkd.safe_load.unpickler` or
:mod:`~hpmkd.safe_load.formats`, and turn every failure into
:class:`~hpmkd.safe_load.errors.UnsafeModelError` or
:class:`~hpmkd.safe_load.errors.ModelFileError` with a message naming the file.
``trusted=True`` skips the restrictions for pickle/joblib and skops files (plain
``joblib.load``): only for a user's own file on their own machine.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final

from hpmkd.safe_load.errors import (
    ModelFileError,
    UnsafeModelError,
    _file_error,
    _Refused,
)
from hpmkd.safe_load.formats import (
    _load_lightgbm_text,
    _load_skops,
    _load_trusted,
    _load_xgboost_native,
)
from hpmkd.safe_load.unpickler import _load_pickle

PICKLE_EXTENSIONS: Final = frozenset({".joblib", ".pkl", ".pickle"})
LIGHTGBM_TEXT_EXTENSIONS: Final = frozenset({".txt", ".lgb"})
XGBOOST_EXTENSIONS: Final = frozenset({".json", ".ubj"})
SKOPS_EXTENSIONS: Final = frozenset({".skops"})
SUPPORTED_EXTENSIONS: Final = (
    PICKLE_EXTENSIONS | LIGHTGBM_TEXT_EXTENSIONS | XGBOOST_EXTENSIONS | SKOPS_EXTENSIONS
)


def _describe_failure(exc: BaseException) -> str:
    """Turn a low-level read error into a sentence fragment."""
    text = str(exc)
    truncated_markers = ("truncated", "EOF", "ran out of input", "ended before", "end of stream")
    if isinstance(exc, EOFError) or any(marker in text for marker in truncated_markers):
        return "the file ends too early; it looks truncated or was not fully uploaded"
    if isinstance(exc, MemoryError):
        return "it needs more memory than is available; it may be corrupt"
    return f"the file is corrupt or not a saved model ({type(exc).__name__}: {text[:200]})"


def _load_path(path: Path, display: str, trusted: bool = False) -> object:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise _file_error(
            display,
            f"the extension '{suffix or '(none)'}' is not a supported model format",
            "Accepted extensions: " + ", ".join(sorted(SUPPORTED_EXTENSIONS)) + ".",
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise _file_error(display, "the file does not exist") from exc
    except OSError as exc:
        raise _file_error(display, f"the file cannot be read ({exc.strerror})") from exc
    if not path.is_file():
        raise _file_error(display, "it is not a regular file")
    if size == 0:
        raise _file_error(display, "the file is empty", "Upload the saved model file again.")
    try:
        if trusted and suffix in PICKLE_EXTENSIONS | SKOPS_EXTENSIONS:
            return _load_trusted(path, display, suffix)
        if suffix in PICKLE_EXTENSIONS:
            return _load_pickle(path, display)
        if suffix in LIGHTGBM_TEXT_EXTENSIONS:
            return _load_lightgbm_text(path, display)
        if suffix in XGBOOST_EXTENSIONS:
            return _load_xgboost_native(path, display)
        return _load_skops(path, display)
    except (UnsafeModelError, ModelFileError):
        raise
    except _Refused as exc:
        if exc.crafted:
            problem = f"{exc}. This is how crafted (malicious) files look, so"
        else:
            problem = f"{exc}, so"
        raise UnsafeModelError(
            f"Refused to load '{display}': {problem} the file was NOT loaded and nothing in "
            f"it was run. {exc.advice}"
        ) from exc
    except Exception as exc:  # anything else from the readers means "unreadable file"
        raise _file_error(display, _describe_failure(exc)) from exc


def load_model_file(path: str | os.PathLike[str], *, trusted: bool = False) -> object:
    """Load an untrusted teacher model file without running code from it.

    Parameters
    ----------
    path : str or os.PathLike
        Path to the model.  The extension selects the format: ``.joblib``,
        ``.pkl`` or ``.pickle`` (restricted unpickling; joblib compression is
        detected automatically), ``.txt`` or ``.lgb`` (LightGBM text model),
        ``.json`` or ``.ubj`` (XGBoost native model, needs ``hpmkd[xgboost]``)
        and ``.skops``.
    trusted : bool, default False
        Load pickle/joblib files with plain :func:`joblib.load` and ``.skops``
        files trusting every type, without any restriction.  **This runs any
        code in the file.**  Only for your own file on your own machine; never
        for a file someone else gave you or uploaded.

    Returns
    -------
    object
        The loaded model.  Pickles may legitimately contain non-models (a dict,
        a list); callers must check for ``predict_proba`` themselves.  LightGBM
        text models come back as :class:`lightgbm.Booster`, which has
        ``predict`` but not ``predict_proba``; XGBoost native models as a fitted
        ``xgboost.XGBClassifier``.

    Raises
    ------
    UnsafeModelError
        The file references a class or function that is not on the allow
        list (:data:`ALLOWED_GLOBALS`), a ``FunctionTransformer`` in it holds a
        function other than ``None`` or an allowed numpy function
        (:data:`FUNCTION_TRANSFORMER_FUNCTIONS`), or it uses allowed pieces in a
        way only crafted files do.  Nothing from the file was executed.
    ModelFileError
        The file is missing, empty, truncated, corrupt, in an unsupported
        format, or has an unsupported extension.

    Notes
    -----
    This blocks code execution during loading.  It cannot prove that every
    value inside an allowed estimator is sane: scikit-learn, numpy and
    LightGBM index into the arrays they are given, so a crafted file may still
    crash the process or leak memory contents at prediction time.  Run
    untrusted teachers in a separate, resource-limited process.
    """
    path = Path(path)
    return _load_path(path, str(path), trusted=trusted)


def load_model_bytes(data: bytes, filename: str, *, trusted: bool = False) -> object:
    """Load an uploaded model from memory via a private temporary file.

    Parameters
    ----------
    data : bytes
        The uploaded file's contents.
    filename : str
        The name the user gave the file.  Only its extension is used to pick
        the format (never as a path); the name appears in error messages.
    trusted : bool, default False
        As for :func:`load_model_file`: runs any code in the file.  A server
        must never set it for uploads from people it does not trust.

    Returns
    -------
    object
        The loaded model, as for :func:`load_model_file`.

    Raises
    ------
    UnsafeModelError, ModelFileError
        As for :func:`load_model_file`.
    """
    display = os.path.basename(filename) or filename or "upload"
    suffix = Path(display).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        # Checked before writing anything to disk.
        return _load_path(Path(display), display)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    # A fresh 0700 directory: no other user can swap the file between write and read,
    # and the user's filename never becomes part of a path.
    with tempfile.TemporaryDirectory(prefix="hpmkd-model-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        with open(path, "wb") as handle:
            handle.write(data)
        return _load_path(path, display, trusted=trusted)
