"""How the restricted loader reports failure.

:class:`UnsafeModelError` (the file asked for something we refuse to do) and
:class:`ModelFileError` (the file is not a readable model) are the public errors.
Inside the package, guards raise the private :class:`_Refused` through
:func:`_require`; :func:`hpmkd.safe_load.loader._load_path` turns it into an
:class:`UnsafeModelError` naming the file.  :data:`_ADVICE` is the sentence every
refusal ends with.
"""

from __future__ import annotations

from typing import Final


class UnsafeModelError(ValueError):
    """A model file asked for something the restricted loader refuses to do.

    Raised when a pickle/joblib file references a global (class or function)
    that is not on the allow list, or uses allowed pieces in a way that genuine
    model files never do (the typical sign of a crafted exploit).  Nothing from
    the file has been executed when this is raised.
    """


class ModelFileError(ValueError):
    """A model file could not be read: empty, truncated, corrupt or wrong format."""


_ADVICE: Final = (
    "Save the model with joblib (or pickle) using only scikit-learn, LightGBM or XGBoost "
    "classes - no custom classes, lambdas or FunctionTransformer - or export a LightGBM "
    "model as a text model with booster.save_model('model.txt')."
)


class _Refused(Exception):
    """Internal signal: crafted/unsafe use of an allowed piece (becomes UnsafeModelError)."""


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise _Refused(what)


def _file_error(display: str, problem: str, advice: str | None = None) -> ModelFileError:
    return ModelFileError(
        f"Could not load '{display}': {problem}. "
        + (advice or "Check that you uploaded the right file, or save the model again.")
    )
