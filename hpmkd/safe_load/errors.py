"""How the restricted loader reports failure.

:class:`UnsafeModelError` (the file asked for something we refuse to do) and
:class:`ModelFileError` (the file is not a readable model) are the public errors.
Inside the package, guards raise the private :class:`_Refused` through
:func:`_require`; :func:`hpmkd.safe_load.loader._load_path` turns it into an
:class:`UnsafeModelError` naming the file.  :data:`_ADVICE` is what every refusal
ends with (:data:`_FUNCTION_ADVICE` when a ``FunctionTransformer`` holds a function
we refuse).
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


_TRUST_ADVICE: Final = (
    "If this is your own file and you run hpmkd on your own machine, you can load it "
    "unrestricted with 'hpmkd distill --trust-teacher' (trusted=True in Python); that runs "
    "any code in the file."
)

_ADVICE: Final = (
    "Save the model with joblib (or pickle) using only scikit-learn, LightGBM or XGBoost "
    "classes (no custom classes, functions or lambdas), or export it in a code-free "
    "format (LightGBM booster.save_model('model.txt'), XGBoost save_model('model.json'), "
    "or .skops), or give the teacher's probabilities as columns of the data "
    "(--teacher-proba-cols). " + _TRUST_ADVICE
)

#: What to do when a FunctionTransformer holds a function that is not allowed.
_FUNCTION_ADVICE: Final = (
    "A FunctionTransformer in a model file may only hold func=None (a passthrough) or one "
    "of the numpy functions np.log, np.log1p, np.log2, np.log10, np.exp, np.expm1, np.sqrt, "
    "np.square, np.abs, np.sign, np.clip, np.nan_to_num, np.round (and a few more listed in "
    "the README). Refit the pipeline with one of those, or give the teacher's "
    "probabilities as columns of the data (--teacher-proba-cols). "
    + _TRUST_ADVICE
)


class _Refused(Exception):
    """Internal signal: the file is refused (becomes UnsafeModelError naming the file).

    ``crafted`` says the file uses allowed pieces the way only exploits do; otherwise it
    merely uses something we do not admit (a custom function, say), and ``advice`` says
    what to do instead.
    """

    def __init__(self, what: str, *, crafted: bool = True, advice: str | None = None) -> None:
        super().__init__(what)
        self.crafted = crafted
        self.advice = advice or _ADVICE


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise _Refused(what)


def _file_error(display: str, problem: str, advice: str | None = None) -> ModelFileError:
    return ModelFileError(
        f"Could not load '{display}': {problem}. "
        + (advice or "Check that you uploaded the right file, or save the model again.")
    )
