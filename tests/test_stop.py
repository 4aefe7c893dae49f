"""Stopping a run early (``run(stop=StopRequest())``): in every phase, inside fits, keeping
every finished candidate as a complete, labelled partial run.

Stops are triggered deterministically: from the run's own events (a phase starting, a
candidate finishing) or after a fixed number of stop checks (the engine checks before
every fit and inside LightGBM/MLP fits), never by a timer.
"""

from __future__ import annotations

import math

import pytest

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, RunCancelled, StopRequest
from hpmkd.stop import FitInterrupted
from hpmkd.students import build_student, fit_on_soft_targets, soft_targets

# Small but complete hpm runs: screening, a chain, trials, the ensemble, the twin.
CONFIG = HPMConfig(families=("tree", "lgbm"), max_configs=3, n_trials=2, use_cache=False,
                   use_memory=False, use_multi_teacher=True)


@pytest.fixture(scope="module")
def dataset(make_frame, fit_teacher) -> DistillationDataset:
    frame = make_frame(n_rows=1200, n_features=6, seed=11)
    teacher = fit_teacher(frame.drop(columns="target"), frame["target"], n_estimators=40)
    return DistillationDataset(frame, target="target", teacher=teacher, name="stop")


class StopAfterChecks(StopRequest):
    """Requests itself at its ``n``-th check: a deterministic point inside the run."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.checks == self.n:
            self.request()
        super().check()


def _run(dataset, stop, on_event=None, config=CONFIG):
    events = []

    def record(event):
        events.append(event)
        if on_event is not None:
            on_event(event)

    distiller = AutoDistiller(dataset, method="hpm", config=config, random_state=3)
    distiller.run(callbacks=[record], stop=stop)
    return distiller.result_, events


def _candidate_events(events):
    return [e for e in events if e.kind == "candidate"]


def _assert_complete_partial(result, events, phase):
    assert result.partial and f"during the {phase} phase" in result.stop_reason
    assert result.stop_reason.startswith("stopped by the user")
    # Every finished candidate is kept, and only those: one event per candidate.
    assert len(result.candidates) == len(_candidate_events(events))
    assert result.selected in result.candidates
    # Complete: the selected student, the teachers are scored on the test rows.
    assert "ks" in result.selected.test
    assert all("ks" in t.test for t in result.teachers)
    summary = result.summary()
    assert summary["partial"] and summary["stop_reason"] == result.stop_reason
    assert result.results_df().shape[0] >= len(result.candidates)
    assert events[-1].kind == "run_end"


def _assert_teacher_comparisons_only(result):
    """No twin after a stop on request: the verdict keeps the student against the teacher,
    as point values (a stop skips the bootstrap), and says there is no twin."""
    verdict = result.verdict
    assert result.twin is None and verdict is not None
    assert verdict.outcome == "not measured" and verdict.gains == {}
    assert "no twin to judge distillation by" in verdict.text
    assert "stopped by the user" in verdict.text
    assert {d.against for d in verdict.differences} == {"teacher"}
    for d in verdict.differences:
        assert d.outcome == "not measured" and math.isnan(d.low) and math.isnan(d.high)
        assert d.difference == pytest.approx(d.student - d.other)
        assert d.n_rows == result.split_sizes["test"]
    assert result.summary()["distillation_gain"]["outcome"] == "not measured"


def test_a_full_run_is_not_partial(dataset):
    result, _ = _run(dataset, StopRequest())
    assert not result.partial and result.stop_reason is None
    assert result.twin is not None and result.verdict is not None


def test_stop_during_screening_keeps_the_best_screening_fit(dataset):
    stop = StopAfterChecks(4)  # a few screening fits finished, then a stop
    result, events = _run(dataset, stop)
    _assert_complete_partial(result, events, "select")
    assert [c.source for c in result.candidates] == ["screen"]
    assert result.selected.name.startswith("screening ")
    assert result.selected.size_bytes > 0  # calibrated and measured like a candidate
    assert not result.components.selection.enabled
    assert "screening ended" in result.components.selection.reason
    assert not result.components.chain.enabled
    _assert_teacher_comparisons_only(result)


def test_stop_before_anything_finished_is_a_clear_cancellation(dataset):
    stop = StopRequest()
    stop.request()
    with pytest.raises(RunCancelled, match="nothing to keep"):
        _run(dataset, stop)


@pytest.mark.parametrize("phase", ["chain", "train"])
def test_stop_after_the_first_candidate_of_a_phase(dataset, phase):
    stop = StopRequest()

    def on_event(event):
        if event.kind == "candidate" and event.phase == ("config" if phase == "train" else phase):
            stop.request()

    result, events = _run(dataset, stop, on_event)
    _assert_complete_partial(result, events, phase)
    sources = [c.source for c in result.candidates]
    if phase == "chain":
        assert sources == ["chain"]
        assert "stopped before stage 2" in result.components.chain.stop_reason
    else:
        assert sources.count("config") == 1
    assert not result.components.attention.enabled
    assert "stopped by the user" in result.components.attention.reason
    _assert_teacher_comparisons_only(result)


def test_stop_when_the_ensemble_starts(dataset):
    stop = StopRequest()
    result, events = _run(
        dataset, stop,
        lambda e: stop.request() if e.kind == "phase_start" and e.phase == "ensemble" else None,
    )
    _assert_complete_partial(result, events, "ensemble")
    assert "ensemble" not in {c.source for c in result.candidates}
    assert not result.components.attention.enabled


def test_stop_during_compare_abandons_the_twin(dataset):
    stop = StopRequest()
    result, events = _run(
        dataset, stop,
        lambda e: stop.request() if e.kind == "phase_start" and e.phase == "compare" else None,
    )
    _assert_complete_partial(result, events, "compare")
    full, _ = _run(dataset, StopRequest())
    # Every search candidate finished before the stop: the same selection as a full run.
    assert result.selected.name == full.selected.name
    _assert_teacher_comparisons_only(result)
    assert any("twin was not trained" in e.message for e in events)


def test_a_discarding_stop_raises(dataset):
    stop = StopRequest()

    def on_event(event):
        if event.kind == "candidate":
            stop.request("cancelled", discard=True)

    with pytest.raises(RunCancelled, match="cancelled"):
        _run(dataset, stop, on_event)


@pytest.mark.parametrize("family", ["lgbm", "mlp"])
def test_a_fit_in_progress_notices_the_stop(binary_frame, family):
    """The stop is checked inside LightGBM's boosting rounds and MLP's epochs."""
    X, y = binary_frame.drop(columns="target"), binary_frame["target"].to_numpy()
    params = ({"n_estimators": 40, "num_leaves": 7} if family == "lgbm"
              else {"hidden_layer_sizes": (8,), "max_iter": 30, "batch_size": 64})
    model = build_student(family, params, list(X.columns), [], seed=0)
    targets = soft_targets(
        __import__("numpy").full((len(y), 2), 0.5), y, temperature=1.0, alpha=0.5
    )
    stop = StopAfterChecks(6)  # one check before the fit, then one per round/epoch
    with stop.active(), pytest.raises(FitInterrupted):
        fit_on_soft_targets(model, X, targets, [0, 1])
    assert stop.checks == 6
    final = model.steps[-1][1]
    if family == "mlp":
        assert final.n_iter_ == 5  # stopped after its fifth epoch, not at max_iter
        # The saved student stays a plain MLPClassifier (no hook left on it).
        assert "_update_no_improvement_count" not in vars(final)
    # Outside a run, nothing checks: the same fit runs to the end.
    model = build_student(family, params, list(X.columns), [], seed=0)
    fit_on_soft_targets(model, X, targets, [0, 1])


def test_the_report_labels_a_partial_run(dataset, tmp_path):
    stop = StopRequest()
    distiller = AutoDistiller(dataset, method="hpm", config=CONFIG, random_state=3)
    distiller.run(
        callbacks=[lambda e: stop.request() if e.kind == "candidate" else None], stop=stop
    )
    page = distiller.generate_report(tmp_path / "report.html").read_text()
    assert "<b>Partial run</b>: stopped by the user during the chain phase" in page


def test_a_stop_does_not_wait_for_an_unfinished_leakage_check(dataset, monkeypatch):
    # The check runs beside the phases; one that is still going when a stopped run ends
    # is left out (waited for at most STOP_WAIT_S), not waited for.
    import importlib
    import threading

    run_module = importlib.import_module("hpmkd.engine.run")  # the module, not run()

    release = threading.Event()

    def slow_check(*args, **kwargs):
        release.wait(timeout=30)
        raise AssertionError("not reached in time")

    monkeypatch.setattr(run_module, "check_run", slow_check)
    monkeypatch.setattr(run_module, "STOP_WAIT_S", 0.05)
    stop = StopRequest()

    def on_event(event):
        if event.kind == "phase_start" and event.phase == "train":
            stop.request()

    try:
        result, events = _run(dataset, stop, on_event)
    finally:
        release.set()
    _assert_complete_partial(result, events, "train")
    assert result.leakage is None
    assert any("leakage check not finished" in str(e.message) for e in events)


def test_a_full_run_waits_for_its_leakage_check(dataset):
    result, events = _run(dataset, StopRequest())
    assert result.leakage is not None
    assert [e for e in events if e.data.get("leakage") == result.leakage.to_dict()]
