"""``AutoDistiller``: the public facade that picks a method, runs it and serves results."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from hpmkd._version import __version__
from hpmkd.base import BaseDistiller, RunRecord
from hpmkd.config import HPMConfig
from hpmkd.data import DistillationDataset
from hpmkd.errors import HPMKDInputError
from hpmkd.events import Callback, EventBus
from hpmkd.results import metrics_dict, to_jsonable
from hpmkd.students import proba_in_class_order

METHODS = ("auto", "hpm", "legacy")


def choose_method(n_rows: int, n_features: int) -> tuple[str, str]:
    """The method ``auto`` picks for a dataset of this size, and why.

    More than 10,000 rows or more than 50 features: ``hpm``; fewer than 1,000 rows:
    ``legacy``; otherwise ``hpm``.
    """
    if n_rows > 10_000 or n_features > 50:
        return "hpm", (
            f"auto: {n_rows:,} rows and {n_features} features (more than 10,000 rows or more "
            "than 50 features) -> hpm"
        )
    if n_rows < 1_000:
        return "legacy", f"auto: {n_rows:,} rows (fewer than 1,000) -> legacy"
    return "hpm", f"auto: {n_rows:,} rows and {n_features} features (mid-sized) -> hpm"


class AutoDistiller:
    """Distill the dataset's teacher(s) into a small student.

    Parameters
    ----------
    dataset : DistillationDataset
        Data, target and at least one teacher.
    method : {"auto", "hpm", "legacy"}, default "auto"
        ``auto`` chooses by dataset size (see :func:`choose_method`).
    config : HPMConfig, optional
        Run options; default ``HPMConfig()``.
    random_state : int, default 42
        Seed of splits, trials and students.

    Attributes
    ----------
    results_df : DataFrame
        After :meth:`run`: one row per candidate, the teacher(s) and the hard-label baseline.
    best_metrics : dict
        Test-split metrics of the selected student.
    method_ : str
        The method that ran; ``method_reason_`` says why.
    record_ : RunRecord
        Everything the run knows (candidates, phases, component details).
    """

    def __init__(
        self,
        dataset: DistillationDataset,
        method: str = "auto",
        config: HPMConfig | None = None,
        random_state: int = 42,
    ) -> None:
        if method not in METHODS:
            raise HPMKDInputError(
                f"method={method!r} is not known; choose one of {', '.join(METHODS)}."
            )
        if not isinstance(dataset, DistillationDataset):
            raise HPMKDInputError("dataset must be a DistillationDataset.")
        self.dataset = dataset
        self.method = method
        self.config = config if config is not None else HPMConfig()
        self.random_state = random_state
        self.record_: RunRecord | None = None
        self.results_df: pd.DataFrame | None = None

    def resolve_method(self) -> tuple[str, str]:
        """The method that :meth:`run` will use and the reason."""
        if self.method == "auto":
            return choose_method(self.dataset.n_rows, self.dataset.n_features)
        return self.method, f"{self.method}: chosen explicitly"

    def _engine(self, bus: EventBus) -> BaseDistiller:
        method, reason = self.resolve_method()
        if method == "legacy":
            from hpmkd.legacy import LegacyDistiller

            cls: type[BaseDistiller] = LegacyDistiller
        else:
            from hpmkd.hpm import HPMDistiller

            cls = HPMDistiller
        return cls(self.dataset, self.config, self.random_state, bus, method_reason=reason)

    def run(self, callbacks: list[Callback] | None = None) -> pd.DataFrame:
        """Run the distillation and return ``results_df``.

        Parameters
        ----------
        callbacks : list of callables, optional
            Each receives every :class:`~hpmkd.events.Event` (phase start/end, finished
            candidates with their metrics, run start/end).
        """
        if not self.dataset.has_teacher:
            raise HPMKDInputError(
                "The dataset has no teacher. Pass teacher=<fitted model or model file> or "
                "teacher_proba_cols=[...] to DistillationDataset."
            )
        bus = EventBus(callbacks)
        engine = self._engine(bus)
        self.record_ = engine.run()
        self.results_df = engine.results_df()
        self.method_ = self.record_.method
        self.method_reason_ = self.record_.method_reason
        return self.results_df

    # ----------------------------------------------------------------- results
    def _check_run(self) -> RunRecord:
        if self.record_ is None or self.record_.best is None:
            raise RuntimeError("Call run() first.")
        return self.record_

    def best_model(self) -> Any:
        """The selected student: a fitted scikit-learn ``Pipeline``."""
        return self._check_run().best.model

    @property
    def best_name(self) -> str:
        """Name of the selected candidate."""
        return self._check_run().best.name

    @property
    def best_metrics(self) -> dict[str, Any]:
        """Test-split metrics, size and latency of the selected student."""
        return metrics_dict(self._check_run().best)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities of the best student, columns in ``dataset.classes`` order."""
        record = self._check_run()
        X = self.dataset.prepare(X)
        return proba_in_class_order(record.best.model, X, self.dataset.classes)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted original class labels of the best student."""
        proba = self.predict_proba(X)
        return np.asarray(self.dataset.classes, dtype=object)[proba.argmax(axis=1)]

    def save_best_model(self, path: str | Path) -> Path:
        """Save the best student with joblib (loads without hpmkd installed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.best_model(), path)
        return path

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly summary: method, best candidate, teacher/student/baseline test
        metrics, distillation gain, phase timings, split sizes, config."""
        record = self._check_run()
        ds = self.dataset
        teacher = record.teachers[0]
        student = metrics_dict(record.best)
        baseline = metrics_dict(record.baseline) if record.baseline else None
        out: dict[str, Any] = {
            "method": record.method,
            "method_reason": record.method_reason,
            "best_model": record.best.name,
            "best_source": record.best.source,
            "selection_metric": self.config.selection_metric,
            "classes": [str(c) for c in ds.classes],
            "n_rows": ds.n_rows,
            "n_features": ds.n_features,
            "split_sizes": record.split_sizes,
            "teacher": metrics_dict(teacher),
            "teachers": {t.name: metrics_dict(t) for t in record.teachers},
            "student": student,
            "baseline": baseline,
            "baseline_model": record.baseline.name if record.baseline else None,
            "distillation_gain": _gain(student, baseline),
            "compression": _compression(teacher, record.best),
            "timings": {k: float(v) for k, v in record.phases.items()},
            "phases": [k for k in record.phases if k != "total"],
            "n_candidates": len(record.candidates),
            "stopped_by_time_budget": record.stopped_by_budget,
            "config": self.config.to_dict(),
            "random_state": self.random_state,
            "dropped_missing_target": ds.n_dropped_missing_target,
            "details": record.details,
            "versions": versions(),
        }
        return to_jsonable(out)

    def save_summary(self, path: str | Path) -> Path:
        """Write :meth:`summary` as JSON."""
        path = Path(path)
        path.write_text(json.dumps(self.summary(), indent=2, sort_keys=False))
        return path

    def generate_report(self, path: str | Path) -> Path:
        """Write the self-contained interactive HTML report of this run."""
        from hpmkd.report import write_report

        self._check_run()
        return write_report(self, Path(path))


def _gain(student: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, Any]:
    if not baseline:
        return {}
    gain = {}
    for m in ("ks", "auc", "accuracy", "f1"):
        s, b = student.get(m), baseline.get(m)
        gain[m] = None if s is None or b is None else s - b
    ks = gain.get("ks")
    if ks is None:
        verdict = "undefined (KS could not be computed)"
    elif ks > 0.005:
        verdict = "distillation helped: the student beats its hard-label twin on test KS"
    elif ks < -0.005:
        verdict = (
            "soft targets did not help: the hard-label twin scores higher on test KS "
            "than the selected student"
        )
    else:
        verdict = "no measurable gain from soft targets on test KS (within 0.005)"
    gain["verdict"] = verdict
    return gain


def _compression(teacher, best) -> dict[str, Any]:
    size = (
        teacher.size_bytes / best.size_bytes
        if teacher.size_bytes > 0 and best.size_bytes > 0
        else None
    )
    lat = (
        teacher.latency_ms_1k / best.latency_ms_1k
        if teacher.latency_ms_1k == teacher.latency_ms_1k and best.latency_ms_1k > 0
        else None
    )
    return {"size_ratio": size, "latency_ratio": lat}


def versions() -> dict[str, str]:
    """Versions of hpmkd, Python and the key libraries."""
    import lightgbm
    import sklearn

    return {
        "hpmkd": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "lightgbm": lightgbm.__version__,
    }
