"""The distillation verdict (:func:`hpmkd.engine.compare.build_verdict`) on constructed
predictions: the outcome of each comparison follows its paired-bootstrap interval, the
difference is student minus other on the test rows, agreement metrics are judged in KS,
every teacher is compared, and a run without a twin keeps its teacher comparisons.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hpmkd import evaluate
from hpmkd.engine.compare import GAIN_METRICS, build_verdict
from hpmkd.evaluate import CandidateResult
from hpmkd.metrics import compute_metrics
from hpmkd.result import (
    NO_DIFFERENCE,
    NOT_MEASURED,
    OUTCOME_WORDS,
    VERDICT_COLUMNS,
    Difference,
    comparison_outcome,
)

N_ROWS = 600


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 2, N_ROWS)


def scores(y: np.ndarray, signal: float, seed: int) -> np.ndarray:
    """Binary probabilities whose separation of the classes grows with ``signal``."""
    noise = np.random.default_rng(seed).normal(0.0, 1.0, len(y))
    p = 1.0 / (1.0 + np.exp(-(signal * (2 * y - 1) + noise)))
    return np.c_[1.0 - p, p]


def model(name: str, proba: np.ndarray, rows: evaluate.TestRows) -> CandidateResult:
    """A model scored on ``rows`` as the compare phase scores one."""
    return CandidateResult(
        name=name, source="teacher" if name.startswith("teacher") else "config", spec=None,
        val={}, fit_seconds=0.0, size_bytes=1, latency_ms_1k=1.0, val_proba=proba,
        test=compute_metrics(rows.y, proba, rows.reference), test_proba=proba,
    )


def make_rows(y: np.ndarray, reference: np.ndarray) -> evaluate.TestRows:
    """The test rows (no feature columns: the verdict reads predictions only)."""
    return evaluate.TestRows(X=pd.DataFrame(index=range(len(y))), y=y, reference=reference,
                    classes=[0, 1])


@pytest.fixture(scope="module")
def case(labels):
    """A strong teacher, a strong student, a weak twin and a second, weak teacher."""
    rows = make_rows(labels, scores(labels, 3.0, 1))
    return {
        "rows": rows,
        "teacher": model("teacher strong", rows.reference, rows),
        "teacher_weak": model("teacher weak", scores(labels, 0.3, 4), rows),
        "strong": model("student strong", scores(labels, 2.0, 2), rows),
        "weak": model("baseline weak", scores(labels, 0.5, 3), rows),
    }


def verdict_of(case, student, twin, teachers=("teacher",), metric="ks", **kwargs):
    return build_verdict(case[student], None if twin is None else case[twin],
                         [case[t] for t in teachers], case["rows"], metric, seed=7, **kwargs)


# ----------------------------------------------------------------- outcome mapping
@pytest.mark.parametrize(
    ("against", "low", "high", "expected"),
    [
        ("twin", 0.01, 0.05, "helped"),
        ("twin", -0.05, -0.01, "hurt"),
        ("twin", -0.01, 0.02, NO_DIFFERENCE),
        ("twin", 0.0, 0.02, NO_DIFFERENCE),  # an interval touching 0 contains it
        ("teacher", 0.01, 0.05, "better than the teacher"),
        ("teacher", -0.05, -0.01, "worse than the teacher"),
        ("teacher", -0.02, 0.01, NO_DIFFERENCE),
        ("twin", math.nan, math.nan, NOT_MEASURED),
    ],
)
def test_the_outcome_follows_the_interval(against, low, high, expected):
    assert comparison_outcome(against, low, high) == expected


def test_no_comparison_says_higher_or_lower():
    words = {w for pair in OUTCOME_WORDS.values() for w in pair}
    assert not words & {"higher", "lower"}


# ----------------------------------------------------------------- intervals
def test_a_clearly_better_student_helped_with_an_interval_above_zero(case):
    verdict = verdict_of(case, "strong", "weak")
    twin = verdict.against("twin", "ks")
    assert twin.outcome == "helped" and verdict.outcome == "helped"
    assert 0 < twin.low < twin.difference < twin.high
    # Student minus other, on every test row.
    assert twin.difference == pytest.approx(case["strong"].test["ks"] - case["weak"].test["ks"])
    assert (twin.student, twin.other) == (case["strong"].test["ks"], case["weak"].test["ks"])
    assert twin.n_rows == N_ROWS
    assert verdict.text.startswith("distillation helped")
    assert f"{N_ROWS:,} test rows" in verdict.text
    # The student is weaker than the teacher: a measured loss, in the teacher's words.
    teacher = verdict.against("teacher", "ks")
    assert teacher.outcome == "worse than the teacher" and teacher.high < 0


def test_a_clearly_worse_student_hurt_with_an_interval_below_zero(case):
    verdict = verdict_of(case, "weak", "strong")
    twin = verdict.against("twin", "ks")
    assert twin.outcome == "hurt" and verdict.outcome == "hurt"
    assert twin.low < twin.difference < twin.high < 0
    assert verdict.text.startswith("soft targets hurt")


def test_identical_predictions_are_no_measurable_difference(case):
    same = model("baseline same", case["strong"].test_proba.copy(), case["rows"])
    verdict = build_verdict(case["strong"], same, [case["teacher"]], case["rows"], "ks", 7)
    twin = verdict.against("twin", "ks")
    assert twin.difference == 0 and twin.low <= 0 <= twin.high
    assert twin.outcome == NO_DIFFERENCE and verdict.outcome == NO_DIFFERENCE
    assert verdict.text.startswith("no measurable difference")


def test_a_student_above_the_teacher_is_better_than_the_teacher(case):
    verdict = verdict_of(case, "strong", "weak", teachers=("teacher_weak",))
    assert verdict.against("teacher", "ks").outcome == "better than the teacher"


def test_the_selection_metric_and_ks_are_both_compared(case):
    verdict = verdict_of(case, "strong", "weak", metric="auc")
    assert verdict.metric == "auc"
    assert [(d.against, d.metric) for d in verdict.differences] == [
        ("twin", "auc"), ("twin", "ks"), ("teacher", "auc"), ("teacher", "ks")
    ]
    auc = verdict.headline
    assert auc.metric == "auc" and auc.outcome == "helped" and auc.low > 0
    assert auc.difference == pytest.approx(case["strong"].test["auc"] - case["weak"].test["auc"])


def test_gains_include_calibration_lower_is_better(case):
    verdict = verdict_of(case, "strong", "weak")
    assert tuple(verdict.gains) == GAIN_METRICS
    for m in ("ece", "brier", "ks", "auc"):
        assert verdict.gains[m] == pytest.approx(case["strong"].test[m] - case["weak"].test[m])
    # The better student is better calibrated here: its Brier gain is negative.
    assert verdict.gains["brier"] < 0


# ----------------------------------------------------------------- agreement metrics
@pytest.mark.parametrize("metric", ["fidelity", "rank_fidelity"])
def test_an_agreement_metric_is_judged_in_ks(case, metric):
    verdict = verdict_of(case, "strong", "weak", metric=metric)
    # The headline is the twin in KS, and the text says why.
    assert verdict.metric == "ks" and verdict.headline is verdict.against("twin", "ks")
    assert verdict.outcome == verdict.against("twin", "ks").outcome == "helped"
    assert f"the selection metric {metric} measures agreement with the teacher" in verdict.text
    # The teacher agrees with itself: no comparison with it in that metric; the twin's stays.
    assert verdict.against("teacher", metric) is None
    assert verdict.against("teacher", "ks") is not None
    twin = verdict.against("twin", metric)
    assert twin is not None and not math.isnan(twin.low)
    assert case["teacher"].test[metric] == pytest.approx(1.0)


# ----------------------------------------------------------------- several teachers, no twin
def test_every_teacher_is_compared_in_the_selection_metric_and_ks(case):
    verdict = verdict_of(case, "strong", "weak", teachers=("teacher", "teacher_weak"),
                         metric="accuracy")
    for name, outcome in (("teacher strong", "worse than the teacher"),
                          ("teacher weak", "better than the teacher")):
        for metric in ("accuracy", "ks"):
            d = verdict.against("teacher", metric, name=name)
            assert d is not None and d.against_name == name and d.n_rows == N_ROWS
            assert d.difference == pytest.approx(
                case["strong"].test[metric] - (case["teacher"] if "strong" in name
                                               else case["teacher_weak"]).test[metric]
            )
        assert verdict.against("teacher", "ks", name=name).outcome == outcome
    assert len(verdict.differences) == 6  # twin, two teachers; accuracy and KS each
    # Without a name: the first (primary) teacher.
    assert verdict.against("teacher", "ks").against_name == "teacher strong"


def test_without_a_twin_the_teacher_comparisons_stay(case):
    verdict = verdict_of(case, "strong", None, teachers=("teacher", "teacher_weak"),
                         metric="auc", why_no_twin="stopped by the user during the compare phase")
    assert verdict.outcome == NOT_MEASURED and verdict.headline is None
    assert "no twin to judge distillation by" in verdict.text
    assert "stopped by the user" in verdict.text
    assert verdict.gains == {}
    assert {d.against for d in verdict.differences} == {"teacher"}
    assert len(verdict.differences) == 4
    assert all(not math.isnan(d.low) for d in verdict.differences)
    summary = verdict.to_dict()
    assert summary["outcome"] == NOT_MEASURED and len(summary["comparisons"]) == 4


def test_a_stopped_run_keeps_point_differences_without_intervals(case):
    verdict = verdict_of(case, "strong", "weak", intervals=False)
    assert verdict.outcome == NOT_MEASURED
    assert "intervals were not computed" in verdict.text
    for d in verdict.differences:
        assert d.outcome == NOT_MEASURED and math.isnan(d.low) and math.isnan(d.high)
        assert not math.isnan(d.difference)
        assert "not computed" in d.sentence()


def test_nothing_to_compare_with_is_no_verdict(case):
    assert verdict_of(case, "strong", None, teachers=()) is None


# ----------------------------------------------------------------- the shared table
def test_the_table_has_every_comparison_with_its_interval_and_test_rows(case):
    verdict = verdict_of(case, "strong", "weak", teachers=("teacher", "teacher_weak"),
                         metric="auc")
    table = verdict.table()
    assert list(table.columns) == list(VERDICT_COLUMNS)
    assert len(table) == len(verdict.differences) == 6
    for row, d in zip(table.to_dict("records"), verdict.differences, strict=True):
        assert row["model"] == d.against_name and row["metric"] == d.metric
        assert row["95% interval"] == f"[{d.low:+.4f}, {d.high:+.4f}]"
        assert row["difference (student - other)"] == f"{d.difference:+.4f}"
        assert row["outcome"] == d.outcome and row["test rows"] == N_ROWS
    assert set(table["against"]) == {"hard-label twin", "teacher"}


def test_an_undefined_metric_is_undefined_not_a_verdict():
    d = Difference("twin", "baseline x", "auc", math.nan, 0.7, math.nan, math.nan, math.nan,
                   10, "undefined")
    assert d.row()["95% interval"] == "n/a" and d.row()["student"] == "n/a"
