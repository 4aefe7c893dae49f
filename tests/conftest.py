"""Shared, generic test fixtures: small synthetic tables, small teachers, a fast config.

Keep these small and seeded; the machine has two cores shared with other jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"


def make_classification_frame(
    n_rows: int = 400,
    n_features: int = 5,
    n_classes: int = 2,
    seed: int = 0,
    target: str = "target",
) -> pd.DataFrame:
    """A seeded numeric table ``f0 .. f{n-1}`` plus an integer target ``0 .. n_classes-1``.

    The target depends on the first features plus noise, so a teacher is good but not
    perfect and every class has plenty of rows.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    if n_classes == 2:
        score = X[:, 0] + 0.7 * X[:, 1 % n_features] + 0.6 * rng.normal(size=n_rows)
        y = (score > 0).astype(int)
    else:
        weights = rng.normal(size=(n_features, n_classes))
        scores = X @ weights + 0.6 * rng.normal(size=(n_rows, n_classes))
        y = scores.argmax(axis=1)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(n_features)])
    frame[target] = y
    return frame


def fit_lgbm_teacher(
    X: pd.DataFrame | np.ndarray, y: np.ndarray | pd.Series, n_estimators: int = 50, seed: int = 0
) -> LGBMClassifier:
    """A small, single-threaded, silent LightGBM classifier fitted on ``X, y``."""
    model = LGBMClassifier(
        n_estimators=n_estimators, num_leaves=15, random_state=seed, n_jobs=1, verbose=-1
    )
    return model.fit(X, y)


@pytest.fixture(scope="session")
def make_frame() -> Callable[..., pd.DataFrame]:
    """Factory: ``make_frame(n_rows=400, n_features=5, n_classes=2, seed=0, target=...)``."""
    return make_classification_frame


@pytest.fixture(scope="session")
def fit_teacher() -> Callable[..., LGBMClassifier]:
    """Factory: ``fit_teacher(X, y, n_estimators=50, seed=0)`` -> fitted LGBMClassifier."""
    return fit_lgbm_teacher


@pytest.fixture
def binary_frame() -> pd.DataFrame:
    """400 rows, numeric features f0..f4, binary integer ``target``."""
    return make_classification_frame()


@pytest.fixture
def fast_config():
    """An HPMConfig that trains very few, small candidates and touches no disk state."""
    from hpmkd import HPMConfig

    return HPMConfig(
        families=("tree",),
        temperatures=(2.0,),
        alphas=(0.5,),
        use_cache=False,
        use_memory=False,
    )


@pytest.fixture
def project_root() -> Path:
    """The project directory (holds ``hpmkd/`` and ``.venv``)."""
    return PROJECT_ROOT


@pytest.fixture
def venv_python() -> Path:
    """The project's virtualenv interpreter, for subprocess tests."""
    return VENV_PYTHON


#: Python lines that make ``hpmkd`` unimportable in a child interpreter started with
#: ``-I`` from the project's venv, and check it: the editable install's finders and the
#: project folder leave the import path, the venv's site-packages stay. Paste into a
#: child script after it sets ``project`` (the repository root, resolved).
HIDE_HPMKD = """
def editable(finder):
    names = (type(finder).__name__, getattr(finder, "__name__", ""))
    return any("editable" in n.lower() for n in names)

sys.meta_path[:] = [f for f in sys.meta_path if not editable(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not editable(h)]
sys.path_importer_cache.clear()

venv = Path(sys.prefix).resolve()  # the project's .venv: its site-packages stay

def under_project(entry):
    try:
        path = Path(entry or ".").resolve()
    except OSError:
        return False
    if path == venv or venv in path.parents:
        return False
    return path == project or project in path.parents

sys.path[:] = [p for p in sys.path if not under_project(p)]
try:
    import hpmkd  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit(f"hpmkd is importable in the child: {hpmkd.__file__}")
"""


@pytest.fixture(autouse=True, scope="session")
def _private_hpmkd_home(tmp_path_factory: pytest.TempPathFactory):
    """Point ``HPMKD_HOME`` (cache, optimization memory) at a private temporary folder so
    tests never read or write the user's real state (session-wide, so module-scoped
    fixtures are covered too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPMKD_HOME", str(tmp_path_factory.mktemp("hpmkd-home")))
        yield


def expected_selection(distiller) -> str:
    """Check the run's selection against its rule and return the selected name.

    ``best``: highest validation score, ties to the smaller model.
    ``smaller_if_noninferior``: that top candidate, unless a candidate at least
    ``min_saving`` times smaller was shown non-inferior (its recorded one-sided bound is
    below the margin); then the one with the largest saving.
    """
    result, config = distiller.result_, distiller.config
    metric = config.selection_metric

    def key(c):
        # The rule saw the train-only fits' sizes (the shipped final fit's may differ by
        # a few bytes: hpmkd.engine.final_fit).
        size = c.extra.get("final_fit", {}).get("train_only_size_bytes", c.size_bytes)
        return (c.val[metric], -size)

    top = max(result.candidates, key=key)
    decision = result.components.selection_rule
    assert decision.top_by_validation == top.name
    if config.selection_rule == "best":
        return top.name
    passed = [e for e in decision.checked if e["noninferior"]]
    for entry in decision.checked:
        candidate = next(c for c in result.candidates if c.name == entry["name"])
        assert top.size_bytes / candidate.size_bytes >= config.min_saving
        assert entry["difference"] == top.val[metric] - candidate.val[metric]
        if entry["noninferior"]:
            assert entry["difference"] < config.noninferiority_margin
            assert entry["upper_bound"] < config.noninferiority_margin
    if not passed:
        return top.name
    return max(passed, key=lambda e: e["saving"])["name"]


@pytest.fixture
def fit_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts student fits in *this* process (every candidate trains through
    ``fit_on_soft_targets``; loky/Dask workers import their own, unpatched copy)."""
    import hpmkd.evaluate
    import hpmkd.students

    original = hpmkd.students.fit_on_soft_targets
    calls: list[int] = []

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(hpmkd.students, "fit_on_soft_targets", counting)
    monkeypatch.setattr(hpmkd.evaluate, "fit_on_soft_targets", counting)
    return calls
