"""The public entry points: pick the format by extension, load, report errors.

:func:`load_model_file` and :func:`load_model_bytes` check the extension and the
file, dispatch to :mod:`~hpmkd.safe_load.unpickler` or
:mod:`~hpmkd.safe_load.formats`, and turn every failure into
:class:`~hpmkd.safe_load.errors.UnsafeModelError` or
:class:`~hpmkd.safe_load.errors.ModelFileError` with a message naming the file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final

from hpmkd.safe_load.errors import (
    _ADVICE,
    ModelFileError,
    UnsafeModelError,
    _file_error,
    _Refused,
)
from hpmkd.safe_load.formats import _load_lightgbm_text, _load_skops
from hpmkd.safe_load.unpickler import _load_pickle

PICKLE_EXTENSIONS: Final = frozenset({".joblib", ".pkl", ".pickle"})
LIGHTGBM_TEXT_EXTENSIONS: Final = frozenset({".txt", ".lgb"})
SKOPS_EXTENSIONS: Final = frozenset({".skops"})
SUPPORTED_EXTENSIONS: Final = PICKLE_EXTENSIONS | LIGHTGBM_TEXT_EXTENSIONS | SKOPS_EXTENSIONS


def _describe_failure(exc: BaseException) -> str:
    """Turn a low-level read error into a sentence fragment."""
    text = str(exc)
    truncated_markers = ("truncated", "EOF", "ran out of input", "ended before", "end of stream")
    if isinstance(exc, EOFError) or any(marker in text for marker in truncated_markers):
        return "the file ends too early; it looks truncated or was not fully uploaded"
    if isinstance(exc, MemoryError):
        return "it needs more memory than is available; it may be corrupt"
    return f"the file is corrupt or not a saved model ({type(exc).__name__}: {text[:200]})"


def _load_path(path: Path, display: str) -> object:
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
        if suffix in PICKLE_EXTENSIONS:
            return _load_pickle(path, display)
        if suffix in LIGHTGBM_TEXT_EXTENSIONS:
            return _load_lightgbm_text(path, display)
        return _load_skops(path, display)
    except (UnsafeModelError, ModelFileError):
        raise
    except _Refused as exc:
        raise UnsafeModelError(
            f"Refused to load '{display}': {exc}. This is how crafted (malicious) files "
            f"look, so the file was NOT loaded and nothing in it was run. {_ADVICE}"
        ) from exc
    except Exception as exc:  # anything else from the readers means "unreadable file"
        raise _file_error(display, _describe_failure(exc)) from exc


def load_model_file(path: str | os.PathLike[str]) -> object:
    """Load an untrusted teacher model file without running code from it.

    Parameters
    ----------
    path : str or os.PathLike
        Path to the model.  The extension selects the format: ``.joblib``,
        ``.pkl`` or ``.pickle`` (restricted unpickling; joblib compression is
        detected automatically), ``.txt`` or ``.lgb`` (LightGBM text model) and
        ``.skops``.

    Returns
    -------
    object
        The loaded model.  Pickles may legitimately contain non-models (a dict,
        a list); callers must check for ``predict_proba`` themselves.  LightGBM
        text models come back as :class:`lightgbm.Booster`, which has
        ``predict`` but not ``predict_proba``.

    Raises
    ------
    UnsafeModelError
        The file references a class or function that is not on the allow
        list (:data:`ALLOWED_GLOBALS`), or uses allowed pieces in a way only
        crafted files do.  Nothing from the file was executed.
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
    return _load_path(path, str(path))


def load_model_bytes(data: bytes, filename: str) -> object:
    """Load an uploaded model from memory via a private temporary file.

    Parameters
    ----------
    data : bytes
        The uploaded file's contents.
    filename : str
        The name the user gave the file.  Only its extension is used to pick
        the format (never as a path); the name appears in error messages.

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
        return _load_path(path, display)
