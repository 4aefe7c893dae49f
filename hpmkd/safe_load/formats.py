"""Loaders for the non-pickle model formats: LightGBM text and skops.

``.txt`` / ``.lgb`` files are LightGBM native text models, returned as a
:class:`lightgbm.Booster`.  ``.skops`` files are loaded with :func:`skops.io.load`,
extending skops' default trust only with type names from
:data:`~hpmkd.safe_load.allowlist._SKOPS_TRUSTABLE` (never ``trusted=True``).
"""

from __future__ import annotations

from pathlib import Path

import lightgbm

from hpmkd.safe_load.allowlist import _SKOPS_TRUSTABLE
from hpmkd.safe_load.errors import _ADVICE, UnsafeModelError, _file_error


def _load_lightgbm_text(path: Path, display: str) -> object:
    try:
        return lightgbm.Booster(model_file=str(path))
    except lightgbm.basic.LightGBMError as exc:
        reason = str(exc).replace(str(path), display)
        raise _file_error(
            display,
            f"it is not a valid LightGBM text model (LightGBM says: {reason})",
            "Export the model with booster.save_model('model.txt') and upload that file.",
        ) from exc


def _load_skops(path: Path, display: str) -> object:
    import skops.io  # only needed for this format
    from skops.io.exceptions import UntrustedTypesFoundException

    untrusted = skops.io.get_untrusted_types(file=path)
    refused = sorted(name for name in untrusted if name not in _SKOPS_TRUSTABLE)
    if refused:
        raise UnsafeModelError(
            f"Refused to load '{display}': it contains the type(s) {', '.join(refused)}, "
            "which are not on the list of classes allowed in model files, so the file was "
            f"NOT loaded. {_ADVICE}"
        )
    try:
        return skops.io.load(path, trusted=sorted(untrusted))
    except UntrustedTypesFoundException as exc:
        raise UnsafeModelError(
            f"Refused to load '{display}': skops found types that are not trusted ({exc}), "
            f"so the file was NOT loaded. {_ADVICE}"
        ) from exc
