"""Loaders for the non-pickle model formats, and the explicit trusted load.

``.txt`` / ``.lgb`` files are LightGBM native text models, returned as a
:class:`lightgbm.Booster`.  ``.json`` / ``.ubj`` files are XGBoost native models (JSON
or Universal Binary JSON: data, no code), returned as an ``xgboost.XGBClassifier``.
``.skops`` files are loaded with :func:`skops.io.load`, extending skops' default trust
only with type names from :data:`~hpmkd.safe_load.allowlist._SKOPS_TRUSTABLE` (never
``trusted=True``); what they hold is then checked like a pickle's
(:func:`~hpmkd.safe_load.graph_checks.check_loaded`).

:func:`_load_trusted` is the escape hatch for a user's own file on their own machine:
plain :func:`joblib.load` (which runs any code in the file), skops with every type trusted.
"""

from __future__ import annotations

import re
from pathlib import Path

import lightgbm

from hpmkd.safe_load.allowlist import _SKOPS_TRUSTABLE
from hpmkd.safe_load.errors import _ADVICE, UnsafeModelError, _file_error
from hpmkd.safe_load.graph_checks import check_loaded


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
