"""Loaders for the non-pickle model formats, and the explicit trusted load.

``.txt`` / ``.lgb`` files are LightGBM native text models, returned as a
:class:`lightgbm.Booster`.  ``.json`` / ``.ubj`` files are XGBoost native models (JSON
or Universal Binary JSON: data, no code), returned as an ``xgboost.XGBClassifier``.
LightGBM text is checked by :func:`~hpmkd.safe_load.lightgbm_text.check_lightgbm_text`
and handed to LightGBM as a string (normalised), never as a path it would read itself.
``.skops`` files are loaded with :func:`skops.io.load`, extending skops' default trust
only with type names from :data:`~hpmkd.safe_load.allowlist._SKOPS_TRUSTABLE` (never
``trusted=True``), after their archive is bounded (what it unpacks to) and its schema
refuses the loaders that call trusted classes with arguments; LightGBM model strings are
checked before LightGBM parses them; what they hold is then checked like a pickle's
(:func:`~hpmkd.safe_load.graph_checks.check_loaded`).

:func:`_load_trusted` is the escape hatch for a user's own file on their own machine:
plain :func:`joblib.load` (which runs any code in the file), skops with every type trusted.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import lightgbm

from hpmkd.safe_load.allowlist import _SKOPS_TRUSTABLE
from hpmkd.safe_load.errors import _ADVICE, UnsafeModelError, _file_error, _Refused
from hpmkd.safe_load.graph_checks import check_loaded
from hpmkd.safe_load.lightgbm_text import (
    _check_booster_state,
    _NotAClassifierModel,
    _TruncatedModel,
    check_lightgbm_text,
)
from hpmkd.safe_load.state_checks import family_checks_enabled

#: skops loaders genuine model files never need: they call a trusted class with
#: arguments from the file, or hand out bound methods and operator functions.
_SKOPS_REFUSED_LOADERS: Final = frozenset(
    {"ConstructorFromReduceNode", "MethodNode", "OperatorFuncNode"}
)
#: skops loaders tied to one kind of class: (loader, what the class name must start with).
_SKOPS_LOADER_CLASSES: Final = {"TreeNode": "sklearn.tree._tree.", "LossNode": "sklearn._loss."}
#: More entries than any genuine .skops model holds.
_SKOPS_MAX_ENTRIES: Final = 1_000_000
#: How often one object may appear in a skops schema (genuine files: at most 4 for an
#: estimator or array; strings, types and random states are shared freely). skops walks a
#: shared object again at every appearance, so 100,000 appearances take minutes.
_SKOPS_MAX_APPEARANCES: Final = 64
_SKOPS_SHARED_FREELY: Final = frozenset({"JsonNode", "TypeNode", "RandomStateNode",
                                         "FunctionNode", "DTypeNode"})


def _load_lightgbm_text(path: Path, display: str) -> object:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _file_error(
            display,
            "it is not a LightGBM text model (it is not text)",
            "Export the model with booster.save_model('model.txt') and upload that file.",
        ) from exc
    if family_checks_enabled():
        try:
            text = check_lightgbm_text(text)
        except _TruncatedModel as exc:
            raise _file_error(
                display,
                f"the file ends too early; it looks truncated or was not fully uploaded ({exc})",
                "Upload the complete file again, or export the model again with "
                "booster.save_model('model.txt').",
            ) from exc
        except _NotAClassifierModel as exc:
            raise _file_error(
                display,
                f"it is not a LightGBM classifier text model ({exc})",
                "Export a fitted LightGBM classifier with booster.save_model('model.txt').",
            ) from exc
    try:
        return lightgbm.Booster(model_str=text)
    except lightgbm.basic.LightGBMError as exc:
        reason = str(exc).replace(str(path), display)
        raise _file_error(
            display,
            f"it is not a valid LightGBM text model (LightGBM says: {reason})",
            "Export the model with booster.save_model('model.txt') and upload that file.",
        ) from exc


_PATCH_LOCK = threading.Lock()
_PATCH_USERS = [0]


@contextlib.contextmanager
def _checked_boosters() -> Iterator[None]:
    """While active, every ``lightgbm.Booster`` whose state is set has its model string
    checked first (skops sets it with ``__setstate__``, outside our unpickler)."""
    with _PATCH_LOCK:
        if _PATCH_USERS[0] == 0:
            original = lightgbm.Booster.__setstate__

            def __setstate__(self: Any, state: Any) -> None:
                if family_checks_enabled():
                    _check_booster_state(state)
                original(self, state)

            __setstate__.__wrapped__ = original  # type: ignore[attr-defined]
            lightgbm.Booster.__setstate__ = __setstate__  # type: ignore[method-assign]
        _PATCH_USERS[0] += 1
    try:
        yield
    finally:
        with _PATCH_LOCK:
            _PATCH_USERS[0] -= 1
            if _PATCH_USERS[0] == 0:
                lightgbm.Booster.__setstate__ = (  # type: ignore[method-assign]
                    lightgbm.Booster.__setstate__.__wrapped__  # type: ignore[attr-defined]
                )


def _check_skops_archive(path: Path, max_bytes: int) -> None:
    """Bound what a .skops archive unpacks to and refuse the loaders models never use."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if len(entries) > _SKOPS_MAX_ENTRIES:
                raise _Refused(f"it is an archive of more than {_SKOPS_MAX_ENTRIES:,} entries")
            size = path.stat().st_size
            for entry in entries:
                # zipfile reads a stored entry's claimed size in one piece.
                if entry.compress_size > size or (
                    entry.compress_type == zipfile.ZIP_STORED
                    and entry.compress_size != entry.file_size
                ):
                    raise _Refused(f"its entry {entry.filename[:40]!r} claims "
                                   f"{entry.compress_size:,} bytes in a file of {size:,}")
            total = sum(entry.file_size for entry in entries)
            if total > max_bytes:
                raise _Refused(
                    f"it unpacks to {total / 1024**2:,.0f} MB, more than the "
                    f"{max_bytes / 1024**2:,.0f} MB allowed (four times the largest teacher "
                    "file this installation accepts, HPMKD_UPLOAD_LIMIT_MB)",
                    crafted=False,
                    advice="If it is a genuine model, ask the administrator to raise "
                    "HPMKD_UPLOAD_LIMIT_MB.",
                )
            for entry in entries:
                if entry.filename.endswith(".npy"):
                    _check_npy_header(archive, entry)
            schema = json.loads(archive.read("schema.json"))
    except (KeyError, zipfile.BadZipFile, ValueError, RecursionError, EOFError):
        return  # skops reports an unreadable archive itself
    stack: list[Any] = [schema]
    appearances: dict[Any, int] = {}
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        loader = node.get("__loader__")
        ident = node.get("__id__")
        if isinstance(ident, (int, str)) and loader not in _SKOPS_SHARED_FREELY:
            appearances[ident] = appearances.get(ident, 0) + 1
            if appearances[ident] > _SKOPS_MAX_APPEARANCES:
                raise _Refused(f"it uses one object more than {_SKOPS_MAX_APPEARANCES} times "
                               "(a repeated object makes loading and prediction arbitrarily "
                               "slow)")
        if isinstance(loader, str):
            name = f"{node.get('__module__')}.{node.get('__class__')}"
            if loader in _SKOPS_REFUSED_LOADERS:
                raise _Refused(f"it rebuilds {name[:80]} with skops' {loader}, which genuine "
                               "model files never need")
            prefix = _SKOPS_LOADER_CLASSES.get(loader)
            if prefix is not None and not name.startswith(prefix):
                raise _Refused(f"it rebuilds {name[:80]} with skops' {loader}")
        stack.extend(node.values())


def _check_npy_header(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> None:
    """An array in the archive holds the bytes its header announces (numpy allocates the
    announced size before reading)."""
    import numpy as np

    with archive.open(entry) as handle:
        version = np.lib.format.read_magic(handle)
        reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                  else np.lib.format.read_array_header_2_0)
        shape, _fortran, dtype = reader(handle, max_header_size=10000)
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size > entry.file_size:
        raise _Refused(f"its array {entry.filename[:40]} announces {size:,} bytes but holds "
                       f"{entry.file_size:,}")


def _load_skops(path: Path, display: str, max_bytes: int) -> object:
    import skops.io  # only needed for this format
    from skops.io.exceptions import UntrustedTypesFoundException

    _check_skops_archive(path, max_bytes)
    untrusted = skops.io.get_untrusted_types(file=path)
    refused = sorted(name for name in untrusted if name not in _SKOPS_TRUSTABLE)
    if refused:
        raise UnsafeModelError(
            f"Refused to load '{display}': it contains the type(s) {', '.join(refused)}, "
            "which are not on the list of classes allowed in model files, so the file was "
            f"NOT loaded. {_ADVICE}"
        )
    try:
        with _checked_boosters():
            loaded = skops.io.load(path, trusted=sorted(untrusted))
    except UntrustedTypesFoundException as exc:
        raise UnsafeModelError(
            f"Refused to load '{display}': skops found types that are not trusted ({exc}), "
            f"so the file was NOT loaded. {_ADVICE}"
        ) from exc
    check_loaded(loaded)
    return loaded


_XGBOOST_CLASSIFIER_OBJECTIVES = ("binary:", "multi:")


def _load_xgboost_native(path: Path, display: str) -> object:
    """An XGBoost ``.json`` / ``.ubj`` model as a fitted ``XGBClassifier``."""
    try:
        import xgboost
    except (ImportError, OSError) as exc:  # not installed, or its native library is missing
        raise _file_error(
            display,
            "XGBoost model files need the xgboost package, which is not installed here",
            "Install it with pip install 'hpmkd[xgboost]', or export the model with joblib.",
        ) from exc
    model = xgboost.XGBClassifier()
    try:
        model.load_model(str(path))
        objective = _xgboost_objective(model)
    except TypeError as exc:  # XGBoost: "Loading an estimator with different type"
        raise _file_error(
            display,
            f"it is an XGBoost model that is not a classifier ({exc})",
            "Use a model trained with XGBClassifier (a binary: or multi: objective).",
        ) from exc
    except xgboost.core.XGBoostError as exc:
        reason = _xgboost_reason(exc, path, display)
        raise _file_error(
            display,
            f"it is not a valid XGBoost model (XGBoost says: {reason})",
            "Save the fitted model with model.save_model('model.json') (or '.ubj') and "
            "upload that file.",
        ) from exc
    if not objective.startswith(_XGBOOST_CLASSIFIER_OBJECTIVES):
        raise _file_error(
            display,
            f"it is an XGBoost model with objective '{objective or 'unknown'}', not a classifier",
            "Use a model trained with a binary: or multi: objective (XGBClassifier).",
        )
    return model


def _xgboost_reason(exc: BaseException, path: Path, display: str) -> str:
    """XGBoost's message without its log prefix, native stack trace and our temp path."""
    text = str(exc).split("Stack trace:")[0].replace(str(path), display)
    text = re.sub(r"^\[[\d:]+\] \S+: ", "", text.strip())
    return " ".join(text.split())[:300]


def _xgboost_objective(model: object) -> str:
    """The learner's objective as recorded in the model's own configuration."""
    import json

    config = json.loads(model.get_booster().save_config())  # type: ignore[attr-defined]
    return str(config.get("learner", {}).get("objective", {}).get("name", ""))


def _load_trusted(path: Path, display: str, suffix: str) -> object:
    """Load a pickle/joblib or skops file unrestricted: it may run code from the file."""
    try:
        if suffix == ".skops":
            import skops.io

            return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
        import joblib

        return joblib.load(path)
    except Exception as exc:  # the file's own code, or a module it needs, failed
        raise _file_error(
            display,
            f"even an unrestricted (trusted) load failed: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}",
            "Every module and class the model was saved with must be importable here: "
            "install the package, or add the folder of your own module to PYTHONPATH.",
        ) from exc
