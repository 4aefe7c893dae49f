"""``AutoDistiller``: the public facade that picks a method, runs it and serves results."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from hpmkd import engine
from hpmkd.checks import check_random_state
from hpmkd.config import HPMConfig
from hpmkd.data import DistillationDataset
from hpmkd.errors import HPMKDConfigWarning, HPMKDInputError
from hpmkd.events import Callback, EventBus
from hpmkd.extras import require
from hpmkd.result import RunResult
from hpmkd.results_table import metrics_dict, results_csv, timings_csv
from hpmkd.stop import StopRequest
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
        After :meth:`run`: one row per candidate, the teacher(s) and the hard-label
        baseline, with every column, the clocks included (:meth:`save_results` writes
        them apart, so that ``results.csv`` reproduces byte for byte).
    best_metrics : dict
        Test-split metrics of the selected student.
    method_ : str
        The method that ran; ``method_reason_`` says why.
    result_ : RunResult
        Everything the run knows (candidates, teachers, twin, phases, component records).
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
        self.random_state = check_random_state(random_state)
        # Before any work: every class must fit in the train, validation and test parts.
        dataset.check_split(self.config.validation_split)
        self.result_: RunResult | None = None
        self.results_df: pd.DataFrame | None = None

    def resolve_method(self) -> tuple[str, str]:
        """The method that :meth:`run` will use and the reason."""
        if self.method == "auto":
            return choose_method(self.dataset.n_rows, self.dataset.n_features)
        return self.method, f"{self.method}: chosen explicitly"

    def run(
        self, callbacks: list[Callback] | None = None, stop: StopRequest | None = None
    ) -> pd.DataFrame:
        """Run the distillation and return ``results_df``.

        Parameters
        ----------
        callbacks : list of callables, optional
            Each receives every :class:`~hpmkd.events.Event` (phase start/end, finished
            candidates with their metrics, run start/end).
        stop : StopRequest, optional
            Lets another thread stop the run early: ``stop.request()`` keeps every
            finished candidate and returns a partial run (``result_.partial``,
            ``result_.stop_reason``); ``stop.request(discard=True)`` raises
            :class:`~hpmkd.errors.RunCancelled`.

        Warns
        -----
        HPMKDConfigWarning
            Once per config field that is set but has no effect on the method that runs
            (:meth:`HPMConfig.ineffective_messages`); the run goes on.
        """
        if not self.dataset.has_teacher:
            raise HPMKDInputError(
                "The dataset has no teacher. Pass teacher=<fitted model or model file> or "
                "teacher_proba_cols=[...] to DistillationDataset."
            )
        method, reason = self.resolve_method()
        for message in self.config.ineffective_messages(method):
            warnings.warn(message, HPMKDConfigWarning, stacklevel=2)
        self.result_ = engine.run(
            self.dataset, self.config, method, reason, self.random_state, EventBus(callbacks),
            stop=stop,
        )
        self.results_df = self.result_.results_df()
        self.method_ = self.result_.method
        self.method_reason_ = self.result_.method_reason
        return self.results_df

    # ----------------------------------------------------------------- results
    def _check_run(self) -> RunResult:
        if self.result_ is None:
            raise RuntimeError("Call run() first.")
        return self.result_

    def best_model(self) -> Any:
        """The selected student: a fitted scikit-learn ``Pipeline``."""
        return self._check_run().selected.model

    @property
    def best_name(self) -> str:
        """Name of the selected candidate."""
        return self._check_run().selected.name

    @property
    def best_metrics(self) -> dict[str, Any]:
        """Test-split metrics, size and latency of the selected student."""
        return metrics_dict(self._check_run().selected)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities of the best student, columns in ``dataset.classes`` order."""
        result = self._check_run()
        X = self.dataset.prepare(X)
        return proba_in_class_order(result.selected.model, X, self.dataset.classes)

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

    def save_results(self, folder: str | Path) -> tuple[Path, Path]:
        """Write ``results.csv`` and ``timings.csv`` into ``folder`` (as ``hpmkd distill``
        does).

        ``results.csv`` is :attr:`results_df` without the columns that differ between two
        runs of the same inputs (``fit_seconds``, ``latency_ms_1k``, ``from_cache``:
        :data:`hpmkd.results_table.RUN_COLUMNS`), so the same data, configuration, seed
        and memory write the same bytes; ``timings.csv`` holds those columns by ``name``.

        Parameters
        ----------
        folder : str or Path
            Made if missing.

        Returns
        -------
        (Path, Path)
            ``results.csv`` and ``timings.csv``.
        """
        self._check_run()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        results, timings = folder / "results.csv", folder / "timings.csv"
        results.write_bytes(results_csv(self.results_df))
        timings.write_bytes(timings_csv(self.results_df))
        return results, timings

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly summary of the run (see :meth:`hpmkd.result.RunResult.summary`)."""
        return self._check_run().summary()

    def save_summary(self, path: str | Path) -> Path:
        """Write :meth:`summary` as JSON."""
        path = Path(path)
        path.write_text(json.dumps(self.summary(), indent=2, sort_keys=False))
        return path

    def generate_report(self, path: str | Path) -> Path:
        """Write the self-contained interactive HTML report of this run (needs plotly:
        ``pip install 'hpmkd[report]'``)."""
        result = self._check_run()
        require("plotly", "The HTML report")
        from hpmkd.report import write_report

        return write_report(result, Path(path))

