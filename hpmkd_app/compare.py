"""The numbers behind the Compare page, all from the finished run's record.

Every value comes from ``record.*_proba``, ``record.y_test`` and the candidates' stored
metrics: nothing is recomputed on other rows and nothing is random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hpmkd import AutoDistiller, curves
from hpmkd.metrics import ks_binary


@dataclass(frozen=True)
class ModelEntry:
    """One model of the run as the Compare page sees it.

    Attributes
    ----------
    name : str
    role : {"teacher", "student", "baseline"}
    source : str
        ``teacher``, ``grid``, ``config``, ``chain``, ``ensemble``, ``baseline`` ...
    family : str
    test_proba : ndarray of shape (n_test, n_classes)
    metrics : dict
        Test metrics (``accuracy, f1, auc, ks, fidelity, rank_fidelity, kl_to_teacher``).
    size_bytes : int
        ``-1`` when unknown (probability-column teachers).
    latency_ms_1k : float
    selected : bool
        The best student.
    model : object
        The fitted model (``None`` for probability columns).
    teacher_name : str or None
        The teacher's name in the dataset (teachers only).
    """

    name: str
    role: str
    source: str
    family: str
    test_proba: np.ndarray
    metrics: dict[str, Any]
    size_bytes: int
    latency_ms_1k: float
    selected: bool
    model: Any
    teacher_name: str | None = None


def _entry(result: Any, role: str, selected: bool = False) -> ModelEntry:
    spec = getattr(result, "spec", None)
    family = spec.family if spec is not None else str(result.extra.get("family", ""))
    return ModelEntry(
        name=result.name,
        role=role,
        source=result.source,
        family=family,
        test_proba=np.asarray(result.test_proba, dtype=float),
        metrics=dict(result.test),
        size_bytes=int(result.size_bytes),
        latency_ms_1k=float(result.latency_ms_1k),
        selected=selected,
        model=result.model,
        teacher_name=result.teacher_name,
    )


def teachers(distiller: AutoDistiller) -> list[ModelEntry]:
    """The teachers, first the primary one (agreement metrics refer to it).

    Parameters
    ----------
    distiller : AutoDistiller
        Finished.
    """
    return [_entry(t, "teacher") for t in distiller.result_.teachers]


def students(distiller: AutoDistiller) -> list[ModelEntry]:
    """Every candidate, the best first, then the hard-label baseline.

    Parameters
    ----------
    distiller : AutoDistiller
        Finished.
    """
    result = distiller.result_
    best = result.selected
    out = [_entry(best, "student", selected=True)]
    out += [_entry(c, "student") for c in result.candidates if c is not best]
    if result.twin is not None:
        out.append(_entry(result.twin, "baseline"))
    return out


def y_test(distiller: AutoDistiller) -> np.ndarray:
    """Class indices of the test rows (into ``dataset.classes``).

    Parameters
    ----------
    distiller : AutoDistiller
    """
    return np.asarray(distiller.result_.y_test, dtype=int)


def class_labels(distiller: AutoDistiller) -> list[str]:
    """The target's classes as text, in class-index order.

    Parameters
    ----------
    distiller : AutoDistiller
    """
    return [str(c) for c in distiller.dataset.classes]


def default_class(n_classes: int) -> int:
    """The class the one-vs-rest charts show first: the positive class when binary.

    Parameters
    ----------
    n_classes : int
    """
    return 1 if n_classes == 2 else 0


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
    ("ks", "KS", "normal", "Max |TPR - FPR| of the class score on the test rows."),
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


def format_bytes(n: float) -> str:
    """``12.3 KB`` style size; ``n/a`` when unknown.

    Parameters
    ----------
    n : float
    """
    if n is None or n < 0 or math.isnan(float(n)):
        return "n/a"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def metric_cards(teacher: ModelEntry, student: ModelEntry) -> list[MetricCard]:
    """Cards for accuracy, F1, AUC, KS, fidelity, KL, size and latency with deltas.

    Parameters
    ----------
    teacher : ModelEntry
    student : ModelEntry
    """
    cards = []
    undefined = student.metrics.get("undefined") or {}
    for key, label, color, help_text in _CARD_METRICS:
        s, t = _num(student.metrics.get(key)), _num(teacher.metrics.get(key))
        digits = 4 if key == "kl_to_teacher" else 3
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


def class_score(entry: ModelEntry, k: int) -> np.ndarray:
    """The model's score for class ``k`` on the test rows.

    Parameters
    ----------
    entry : ModelEntry
    k : int
    """
    return entry.test_proba[:, k]


def ks_of(y_true: np.ndarray, score: np.ndarray, k: int) -> float:
    """One-vs-rest KS of class ``k`` (the binary positive-class KS when ``k`` = 1 of 2).

    Parameters
    ----------
    y_true : array of int
    score : array of float
    k : int
    """
    return ks_binary(np.asarray(y_true) == k, score)


def candidates_frame(entries: list[ModelEntry], y_true: np.ndarray, k: int) -> pd.DataFrame:
    """Size, latency and test KS (class ``k`` one-vs-rest) of the students, with the
    Pareto-optimal ones flagged (:func:`hpmkd.curves.pareto_front`: no other costs no
    more and is at least as good, being cheaper or better; unknown costs are never on it).

    Parameters
    ----------
    entries : list of ModelEntry
    y_true : array of int
    k : int
    """
    rows = [
        {
            "name": e.name,
            "role": e.role,
            "family": e.family,
            "size_bytes": e.size_bytes,
            "latency_ms_1k": e.latency_ms_1k,
            "test_ks": ks_of(y_true, class_score(e, k), k),
            "selected": e.selected,
        }
        for e in entries
    ]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    positions = np.arange(len(frame))
    for cost, flag in (("size_bytes", "pareto_size"), ("latency_ms_1k", "pareto_latency")):
        front = curves.pareto_front(frame[cost], frame["test_ks"])
        frame[flag] = np.isin(positions, front)
    return frame


def model_inputs(distiller: AutoDistiller, entry: ModelEntry) -> tuple[Any, pd.DataFrame, Any]:
    """The model, its input rows for the test split, and a class-ordered predict function.

    Teachers read the raw table columns they were trained on; students read the
    dataset's normalised feature frame (as during training).

    Parameters
    ----------
    distiller : AutoDistiller
    entry : ModelEntry

    Returns
    -------
    (model, X_test, predict)
        ``predict(X)`` gives probabilities in class-index order.
    """
    from hpmkd.students import proba_in_class_order
    from hpmkd.teacher import teacher_probabilities

    ds = distiller.dataset
    test = distiller.result_.split.test
    if entry.role == "teacher":
        teacher = next((t for t in ds.teachers if t.name == entry.teacher_name), None)
        if teacher is None or teacher.model is None:
            return None, pd.DataFrame(), None
        cols = teacher.feature_columns(ds.frame, ds.features)
        X = ds.frame.iloc[test][cols]

        def predict_teacher(rows: pd.DataFrame) -> np.ndarray:
            return teacher_probabilities(teacher, rows.reset_index(drop=True), cols, ds.classes)

        return teacher.model, X, predict_teacher
    model = entry.model
    X = ds.X.iloc[test]

    def predict_student(rows: pd.DataFrame) -> np.ndarray:
        return proba_in_class_order(model, rows, ds.classes)

    return model, X, predict_student
