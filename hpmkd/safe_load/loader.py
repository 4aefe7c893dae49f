"""The public entry points: pick the format by extension, load, report errors.

:func:`load_model_file` and :func:`load_model_bytes` check the extension and the
file, dispatch to :mod:`~hpmkd.safe_load.unpickler` or
:mod:`~hpmkd.safe_load.formats`, and turn every failure into
:class:`~hpmkd.safe_load.errors.UnsafeModelError` or
:class:`~hpmkd.safe_load.errors.ModelFileError` with a message naming the file.
``trusted=True`` skips the restrictions for pickle/joblib and skops files (plain
``joblib.load``): only for a user's own file on their own machine.

Every loaded model has ``n_jobs`` set to 1 (:func:`~hpmkd.safe_load.graph_checks.
single_thread`), and a compressed file may unpack to at most ``max_unpacked_bytes``
(:data:`DEFAULT_MAX_UNPACKED_BYTES` unless the caller, e.g. :mod:`hpmkd.isolation`, passes
four times the server's upload limit).
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
from hpmkd.safe_load.graph_checks import check_loaded, single_thread
from hpmkd.safe_load.lightgbm_text import (
    _NotAClassifierModel,
    _TruncatedModel,
    check_lightgbm_text,
)
from hpmkd.safe_load.unpickler import _load_pickle

PICKLE_EXTENSIONS: Final = frozenset({".joblib", ".pkl", ".pickle"})
LIGHTGBM_TEXT_EXTENSIONS: Final = frozenset({".txt", ".lgb"})
XGBOOST_EXTENSIONS: Final = frozenset({".json", ".ubj"})
SKOPS_EXTENSIONS: Final = frozenset({".skops"})
SUPPORTED_EXTENSIONS: Final = (
    PICKLE_EXTENSIONS | LIGHTGBM_TEXT_EXTENSIONS | XGBOOST_EXTENSIONS | SKOPS_EXTENSIONS
)
#: What a model file may unpack to by default: four times the default upload limit
#: (``HPMKD_UPLOAD_LIMIT_MB``, 200 MB).
DEFAULT_MAX_UNPACKED_BYTES: Final = 4 * 200 * 1024**2


def _describe_failure(exc: BaseException) -> str:
    """Turn a low-level read error into a sentence fragment."""
    text = str(exc)
    truncated_markers = ("truncated", "EOF", "ran out of input", "ended before", "end of stream")
    if isinstance(exc, EOFError) or any(marker in text for marker in truncated_markers):
        return "the file ends too early; it looks truncated or was not fully uploaded"
    if isinstance(exc, MemoryError):
        return "it needs more memory than is available; it may be corrupt"
    if isinstance(exc, RecursionError):
        return "its objects are nested too deeply to read; it may be corrupt or crafted"
    return f"the file is corrupt or not a saved model ({type(exc).__name__}: {text[:200]})"


def _load_path(
    path: Path, display: str, trusted: bool = False,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
) -> object:
    model = _read(path, display, trusted, max_unpacked_bytes)
    try:
        single_thread(model)
    except Exception:  # a trusted file's own objects may resist; they run single-threaded
        if not trusted:  # by the environment of the isolated process anyway
            raise
    return model


def _read(path: Path, display: str, trusted: bool, max_unpacked_bytes: int) -> object:
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
            return _load_pickle(path, display, max_unpacked_bytes)
        if suffix in LIGHTGBM_TEXT_EXTENSIONS:
            return _load_lightgbm_text(path, display)
        if suffix in XGBOOST_EXTENSIONS:
            return _load_xgboost_native(path, display)
        return _load_skops(path, display, max_unpacked_bytes)
    except (UnsafeModelError, ModelFileError):
        raise
    except _Refused as exc:
        raise _unsafe(display, exc) from exc
    except Exception as exc:  # anything else from the readers means "unreadable file"
        raise _file_error(display, _describe_failure(exc)) from exc


def load_model_file(
    path: str | os.PathLike[str], *, trusted: bool = False,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
) -> object:
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
    max_unpacked_bytes : int, optional
        Most bytes a compressed pickle/joblib or ``.skops`` file may unpack to
        (:data:`DEFAULT_MAX_UNPACKED_BYTES`); more is refused while it unpacks.

    Returns
    -------
    object
        The loaded model, ``n_jobs`` set to 1.  Pickles may legitimately contain non-models (a dict,
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
    This blocks code execution during loading, and checks the fitted state of every
    estimator family with native code (tree node tables and feature indices, gradient
    boosting shapes, k-NN search trees, SVC support arrays, one-hot offsets, stacking
    methods, LightGBM model strings) before anything predicts.  That cannot prove every
    value sane: scikit-learn, numpy, libsvm and LightGBM index into the arrays they are
    given, so teachers from others are loaded and scored in a separate,
    resource-limited process (:mod:`hpmkd.isolation`), which is what hpmkd itself does.
    """
    path = Path(path)
    return _load_path(path, str(path), trusted=trusted,
                      max_unpacked_bytes=max_unpacked_bytes)


def load_model_bytes(
    data: bytes, filename: str, *, trusted: bool = False,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
) -> object:
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
    max_unpacked_bytes : int, optional
        As for :func:`load_model_file`.

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
        return _load_path(path, display, trusted=trusted,
                          max_unpacked_bytes=max_unpacked_bytes)


def _unsafe(display: str, exc: _Refused) -> UnsafeModelError:
    problem = f"{exc}. This is how crafted (malicious) files look, so" if exc.crafted else (
        f"{exc}, so")
    return UnsafeModelError(
        f"Refused to load '{display}': {problem} the file was NOT loaded and nothing in "
        f"it was run. {exc.advice}"
    )


def check_model(model: object, name: str = "model") -> None:
    """Check a loaded model the way every restricted load does, without loading anything.

    The same checks :func:`load_model_file` runs on what it loaded: the functions the
    objects hold, nesting depth, trees held more than once, and the fitted state of
    every estimator family with native code (see :mod:`hpmkd.safe_load.state_checks`).

    Parameters
    ----------
    model : object
        A loaded model.
    name : str, default "model"
        Named in the message.

    Raises
    ------
    UnsafeModelError
        What is wrong and where (``step "prep" -> "num" ...``).
    """
    try:
        check_loaded(model)
    except _Refused as exc:
        raise _unsafe(name, exc) from exc


def check_lightgbm_model(text: str, name: str = "model") -> str:
    """Check a LightGBM text model before handing it to LightGBM.

    Parameters
    ----------
    text : str
        ``booster.model_to_string()`` / the content of ``booster.save_model`` output.
    name : str, default "model"
        Named in the message.

    Returns
    -------
    str
        The model to give ``lightgbm.Booster(model_str=...)``: ``\\n`` line endings and
        no ``tree_sizes`` line, so LightGBM reads the trees exactly as they were checked.

    Raises
    ------
    ModelFileError
        It is cut short, or not a LightGBM classifier model.
    UnsafeModelError
        It is malformed in a way LightGBM would not survive (out-of-range features or
        children, cycles, wrong array lengths, ...).
    """
    try:
        return check_lightgbm_text(text)
    except _TruncatedModel as exc:
        raise _file_error(name, f"the model ends too early; it looks truncated ({exc})") from exc
    except _NotAClassifierModel as exc:
        raise _file_error(name, f"it is not a LightGBM classifier model ({exc})") from exc
    except _Refused as exc:
        raise _unsafe(name, exc) from exc
