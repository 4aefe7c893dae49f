"""The numbers behind the Compare page, read from the finished run's typed
:class:`~hpmkd.result.RunResult` (``AutoDistiller.result_``).

Every value comes from the run: the models' test probabilities, ``y_test`` and their
stored test metrics; nothing is recomputed on other rows and nothing is random. The charts
are drawn by :mod:`hpmkd.report.figures`, the builders the HTML report uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hpmkd.metrics import ks_binary
from hpmkd.report.figures import ChartInputs
from hpmkd_app.tables import describe_size

if TYPE_CHECKING:
    from hpmkd import DistillationDataset
    from hpmkd.evaluate import CandidateResult
    from hpmkd.result import RunResult


@dataclass(frozen=True)
class ModelEntry:
    """One model of the run as the Compare page sees it.

    Attributes
    ----------
    result : CandidateResult
        The model's record in the run.
    role : {"teacher", "student", "baseline"}
    selected : bool
        The selected (best) student.
    """

    result: CandidateResult
    role: str
    selected: bool = False

    @property
    def name(self) -> str:
        """The model's name in the run."""
        return self.result.name

    @property
    def family(self) -> str:
        """Student family (``logreg``, ``tree``, ``lgbm`` ...); a teacher's class name."""
        spec = self.result.spec
        return spec.family if spec is not None else str(self.result.extra.get("family", ""))

    @property
    def test_proba(self) -> np.ndarray:
        """Class probabilities on the test rows, shape (n_test, n_classes)."""
        return np.asarray(self.result.test_proba, dtype=float)

    @property
    def metrics(self) -> dict[str, Any]:
        """Test metrics (``accuracy, f1, auc, ks, ece, brier, fidelity, rank_fidelity,
        kl_to_teacher``)."""
        return self.result.test

    @property
    def size_bytes(self) -> int:
        """Pickled size; ``-1`` when unknown (a teacher given as probability columns)."""
        return int(self.result.size_bytes)

    @property
    def latency_ms_1k(self) -> float:
        """Median milliseconds of ``predict_proba`` on 1,000 rows."""
        return float(self.result.latency_ms_1k)


def teachers(result: RunResult) -> list[ModelEntry]:
    """The teachers, first the primary one (agreement metrics refer to it).

    Parameters
    ----------
    result : RunResult
    """
    return [ModelEntry(t, "teacher") for t in result.teachers]


def students(result: RunResult) -> list[ModelEntry]:
    """The models with test figures: the selected student, then its hard-label twin.

    The test rows are read once, for these and the teachers; the other candidates are
    compared on validation only (:func:`candidates_frame`).

    Parameters
    ----------
    result : RunResult
    """
    out = [ModelEntry(result.selected, "student", selected=True)]
    if result.twin is not None:
        out.append(ModelEntry(result.twin, "baseline"))
    return out


def candidates(result: RunResult) -> list[ModelEntry]:
    """Every trained candidate (the selected one first), then the twin: what the export
    page offers. Only the selected student and the twin carry test figures.

    Parameters
    ----------
    result : RunResult
    """
    out = [ModelEntry(result.selected, "student", selected=True)]
    out += [ModelEntry(c, "student") for c in result.candidates if c is not result.selected]
    if result.twin is not None:
        out.append(ModelEntry(result.twin, "baseline"))
    return out


def class_labels(result: RunResult) -> list[str]:
    """The target's classes as text, in class-index order.

    Parameters
    ----------
    result : RunResult
    """
    return [str(c) for c in result.dataset.classes]


def chart_inputs(result: RunResult, entries: Sequence[ModelEntry], k: int) -> ChartInputs:
    """The inputs of the shared evaluation charts: the test rows, the models in ``entries``
    (coloured in that order), class ``k`` one-vs-rest.

    Parameters
    ----------
    result : RunResult
    entries : sequence of ModelEntry
        The first is the reference of the agreement scatter (the teacher).
    k : int
        Class index.
    """
    return ChartInputs(
        y=np.asarray(result.y_test, dtype=int),
        models=tuple((e.name, e.test_proba) for e in entries),
        class_names=tuple(class_labels(result)),
        views=(k,),
    )


def pareto_metric(result: RunResult) -> str:
    """The quality column of the Compare page's Pareto charts: ``val_<selection
    metric>``, the figure the run ranked its candidates by (see :func:`candidates_frame`).

    Parameters
    ----------
    result : RunResult
    """
    return f"val_{result.selection_metric}"


def candidates_frame(result: RunResult, k: int) -> pd.DataFrame:
    """One row per model for :func:`hpmkd.report.figures.pareto_chart`: name, source,
    family, size, latency, selected, and :func:`pareto_metric`, the run's selection metric
    on the validation rows (for ``ks``, the KS of class ``k`` one-vs-rest: for a binary
    target the run's KS). Candidates are ranked on validation rows only: the test rows
    are read once, for the selected student, teachers and twin.

    Parameters
    ----------
    result : RunResult
        Teachers and the twin are drawn for reference, never on a front.
    k : int
    """
    metric = result.selection_metric
    is_k = np.asarray(result.y_val) == k

    def quality(entry: ModelEntry) -> float:
        if metric == "ks":
            return ks_binary(is_k, np.asarray(entry.result.val_proba)[:, k])
        return _num(entry.result.val.get(metric))

    entries = teachers(result) + candidates(result)
    return pd.DataFrame(
        [
            {
                "name": e.name,
                "source": e.result.source,
                "family": e.family,
                "size_bytes": e.size_bytes,
                "latency_ms_1k": e.latency_ms_1k,
                pareto_metric(result): quality(e),
                "selected": e.selected,
            }
            for e in entries
        ]
    )


@dataclass(frozen=True)
class MetricCard:
    """One ``st.metric`` card.

    Attributes
    ----------
    label, value : str
    delta : str or None
        Change versus the teacher.
    delta_color : {"normal", "inverse", "off"}
        ``inverse`` where lower is better (KL, size, latency).
    help : str
    """

    label: str
    value: str
    delta: str | None
    delta_color: str
    help: str


_CARD_METRICS = (
    ("accuracy", "Accuracy", "normal", "Share of test rows whose predicted class is right."),
    ("f1", "F1", "normal", "Binary: F1 of the positive class; multiclass: macro F1."),
    ("auc", "AUC", "normal", "ROC AUC on the test rows (macro one-vs-rest if multiclass)."),
    ("ks", "KS", "normal", "Max (TPR - FPR) of the class score on the test rows."),
    (
        "ece",
        "ECE",
        "inverse",
        "Expected calibration error of the predicted class on the test rows (lower is better).",
    ),
    (
        "brier",
        "Brier",
        "inverse",
        "Brier score of the probabilities on the test rows (lower is better).",
    ),
    (
        "fidelity",
        "Fidelity",
        "normal",
        "Share of test rows where the model predicts the teacher's class (the teacher: 1).",
    ),
    (
        "kl_to_teacher",
        "KL to teacher",
        "inverse",
        "Mean KL(teacher || model) on the test rows, in nats (lower is closer).",
    ),
)


def _num(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


def format_bytes(n: float | None) -> str:
    """``12.3 KB`` style size; ``n/a`` when unknown (``-1``: a teacher given as columns).

    Parameters
    ----------
    n : float or None
    """
    if n is None or n < 0 or math.isnan(float(n)):
        return "n/a"
    return describe_size(int(n))


def metric_cards(teacher: ModelEntry, student: ModelEntry) -> list[MetricCard]:
    """Cards for accuracy, F1, AUC, KS, ECE, Brier, fidelity, KL, size and latency with deltas.

    Parameters
    ----------
    teacher : ModelEntry
    student : ModelEntry
    """
    cards = []
    undefined = student.metrics.get("undefined") or {}
    for key, label, color, help_text in _CARD_METRICS:
        s, t = _num(student.metrics.get(key)), _num(teacher.metrics.get(key))
        digits = 4 if key in ("kl_to_teacher", "ece", "brier") else 3
        if math.isnan(s):
            why = undefined.get(key, "undefined")
            cards.append(MetricCard(label, "n/a", None, "off", f"{help_text} ({why})"))
            continue
        delta = None if math.isnan(t) else f"{s - t:+.{digits}f} vs teacher"
        cards.append(MetricCard(label, f"{s:.{digits}f}", delta, color, help_text))
    s_size, t_size = student.size_bytes, teacher.size_bytes
    size_delta = None
    if s_size > 0 and t_size > 0:
        size_delta = f"{100.0 * (s_size / t_size - 1.0):+.0f}% vs teacher"
    cards.append(
        MetricCard(
            "Size", format_bytes(s_size), size_delta, "inverse", "Size of the pickled model."
        )
    )
    s_lat, t_lat = student.latency_ms_1k, teacher.latency_ms_1k
    lat_delta = None
    if s_lat > 0 and t_lat > 0 and not math.isnan(s_lat + t_lat):
        lat_delta = f"{100.0 * (s_lat / t_lat - 1.0):+.0f}% vs teacher"
    cards.append(
        MetricCard(
            "Latency / 1k rows",
            "n/a" if math.isnan(s_lat) else f"{s_lat:.2f} ms",
            lat_delta,
            "inverse",
            "Median time of predict_proba on 1,000 test rows.",
        )
    )
    return cards


def teacher_cards(teacher: ModelEntry) -> list[MetricCard]:
    """The teacher's own values (no deltas), in the same order as :func:`metric_cards`.

    Parameters
    ----------
    teacher : ModelEntry
    """
    return [
        MetricCard(c.label, c.value, None, "off", c.help) for c in metric_cards(teacher, teacher)
    ]


def model_inputs(
    dataset: DistillationDataset, result: RunResult, entry: ModelEntry
) -> tuple[Any, pd.DataFrame, Callable[[pd.DataFrame], np.ndarray] | None]:
    """The model, its input rows for the test split, and a class-ordered predict function.

    Teachers read the raw table columns they were trained on; students read the
    dataset's normalised feature frame (as during training).

    Parameters
    ----------
    dataset : DistillationDataset
        The run's dataset (``AutoDistiller.dataset``): the result holds no rows.
    result : RunResult
    entry : ModelEntry

    Returns
    -------
    (model, X_test, predict)
        ``predict(X)`` gives probabilities in class-index order; ``(None, empty, None)``
        for a teacher given as probability columns.
    """
    from hpmkd.students import proba_in_class_order
    from hpmkd.teacher import teacher_probabilities

    test = result.split.test
    if entry.role == "teacher":
        name = entry.result.teacher_name
        teacher = next((t for t in dataset.teachers if t.name == name), None)
        if teacher is None or teacher.model is None:
            return None, pd.DataFrame(), None
        cols = teacher.feature_columns(dataset.frame, dataset.features)

        def predict_teacher(rows: pd.DataFrame) -> np.ndarray:
            return teacher_probabilities(
                teacher, rows.reset_index(drop=True), cols, dataset.classes
            )

        return teacher.model, dataset.frame.iloc[test][cols], predict_teacher
    model = entry.result.model

    def predict_student(rows: pd.DataFrame) -> np.ndarray:
        return proba_in_class_order(model, rows, dataset.classes)

    return model, dataset.X.iloc[test], predict_student
