"""A stop does not wait for work that can not notice it: a fit without a stop check runs
abandonably (hpmkd.stop.abandonable), and a loky wave returns its finished candidates
and kills its busy workers (hpmkd.parallel).

Event-driven, no timing: a fit blocks on an Event (in this process) or on a file (in a
loky worker) that the test releases only after the run returned, so a run that waited
for it could not return at all (the blocks give up after a minute, failing the test).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pytest

import hpmkd.evaluate
import hpmkd.parallel
from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, StopRequest
from hpmkd.parallel import Executor, Job
from hpmkd.stop import FitInterrupted, WaveInterrupted, abandonable, abandoned
from hpmkd.students import StudentSpec, trial_params
from tests.conftest import fit_lgbm_teacher, make_classification_frame

# Long enough for any machine; a block that gives up fails the test.
BLOCK_S = 60.0

CONFIG = dict(families=("tree", "logreg"), max_configs=2, n_trials=2, use_cache=False,
              use_memory=False)


@pytest.fixture(scope="module")
def dataset() -> DistillationDataset:
    frame = make_classification_frame(n_rows=1200, n_features=6, seed=5)
    teacher = fit_lgbm_teacher(frame.drop(columns="target"), frame["target"], 40)
    return DistillationDataset(frame, target="target", teacher=teacher, name="abandon")


def _candidate_events(events):
    return [e for e in events if e.kind == "candidate"]


# ------------------------------------------------------------------ in this process
def test_abandonable_runs_inline_outside_a_run():
    assert abandonable(threading.current_thread) is threading.current_thread()


def test_an_abandoned_step_is_told_so_and_its_result_dropped():
    entered, release = threading.Event(), threading.Event()
    seen: list[bool] = []

    def step():
        entered.set()
        assert release.wait(BLOCK_S)
        seen.append(abandoned())
        return "late result"

    stop = StopRequest()
    threading.Thread(target=lambda: entered.wait(BLOCK_S) and stop.request()).start()
    with stop.active(), pytest.raises(FitInterrupted):
        abandonable(step)
    worker = next(t for t in threading.enumerate() if t.name == "hpmkd-abandonable-step")
    assert worker.is_alive() and not seen  # left behind, still blocked
    release.set()
    worker.join(BLOCK_S)
    assert seen == [True]


def test_an_abandoned_encoding_is_not_kept(binary_frame):
    """encode_rows shares encodings between fits; an abandoned one must not add its own."""
    from hpmkd import students

    X = binary_frame.drop(columns="target")
    prep = students.build_student("logreg", {"C": 1.0}, list(X.columns), [], seed=0).steps[0][1]
    entered, release, stop = threading.Event(), threading.Event(), StopRequest()
    kept_before = [entry[0]() for entry in students._ENCODED]

    def step():
        entered.set()
        assert release.wait(BLOCK_S)
        students.encode_rows(prep, X)

    threading.Thread(target=lambda: entered.wait(BLOCK_S) and stop.request()).start()
    with stop.active(), pytest.raises(FitInterrupted):
        abandonable(step)
    worker = next(t for t in threading.enumerate() if t.name == "hpmkd-abandonable-step")
    release.set()
    worker.join(BLOCK_S)
    assert not worker.is_alive()
    assert [entry[0]() for entry in students._ENCODED] == kept_before
    # The same encoding outside an abandoned step is kept.
    students.encode_rows(prep, X)
    assert students._ENCODED[-1][0]() is X


def test_a_stop_during_a_fit_without_a_hook_returns_without_it(dataset, monkeypatch):
    """The second fit of the train phase (a logistic regression: no stop check inside)
    blocks; the run returns while it is still blocked, with the candidates that finished
    before it."""
    fit = hpmkd.evaluate.fit_on_soft_targets
    release, entered = threading.Event(), threading.Event()
    blocked: list[threading.Thread] = []
    families: list[str] = []
    stop = StopRequest()

    def slow_fit(model, *args, **kwargs):
        if phase["now"] == "train":
            families.append(type(model.steps[-1][1]).__name__)
            if len(families) == 2:
                blocked.append(threading.current_thread())
                entered.set()
                assert release.wait(BLOCK_S), "the test never released the fit"
        return fit(model, *args, **kwargs)

    phase = {"now": None}

    def on_event(event):
        if event.kind == "phase_start":
            phase["now"] = event.phase

    monkeypatch.setattr(hpmkd.evaluate, "fit_on_soft_targets", slow_fit)
    # The stop comes from another thread once the fit is inside its block, as a button.
    threading.Thread(target=lambda: entered.wait(BLOCK_S) and stop.request()).start()
    events: list = []
    distiller = AutoDistiller(dataset, method="hpm", config=HPMConfig(**CONFIG), random_state=3)
    try:
        distiller.run(callbacks=[events.append, on_event], stop=stop)
        still_blocked = blocked and blocked[0].is_alive() and not release.is_set()
    finally:
        release.set()
    assert still_blocked, "run() waited for the blocked fit"
    blocked[0].join(BLOCK_S)
    result = distiller.result_
    assert result.partial and "during the train phase" in result.stop_reason
    # Every finished candidate is kept (one event each), the blocked one is not.
    assert len(result.candidates) == len(_candidate_events(events))
    assert families == ["LogisticRegression"] * 2
    assert sum(c.source == "config" for c in result.candidates) == 1
    assert "ks" in result.selected.test


# ------------------------------------------------------------------ loky workers
def _train_or_block(job: Job, path: str):
    """In a loky worker: the real job, except the one named in ``<flags>/block``, which
    records its pid and waits for ``<flags>/release`` (shipped by value: this test
    module is not importable in the worker)."""
    flags = Path(os.environ["HPMKD_TEST_FLAGS"])
    if (flags / "block").exists() and (flags / "block").read_text() == job.spec.label():
        (flags / "pid").write_text(str(os.getpid()))
        give_up = time.monotonic() + BLOCK_S
        while not (flags / "release").exists() and time.monotonic() < give_up:
            time.sleep(0.02)
    return hpmkd.parallel._train_jobs([job], hpmkd.parallel._worker_context(path))[0], os.getpid()


@pytest.fixture
def blocking_workers(tmp_path, monkeypatch):
    """Loky jobs that block on a file; a stop requested once all others have finished.
    (Each run starts its own workers, so they see the flag directory's variable.)"""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setenv("HPMKD_TEST_FLAGS", str(tmp_path))
    monkeypatch.setattr(hpmkd.parallel, "_train_in_worker", _train_or_block)
    state: dict = {"stop": None, "jobs": None, "back": 0}
    real_wait = hpmkd.parallel.wait

    def wait(pending, **kwargs):
        done, still = real_wait(pending, **kwargs)
        state["back"] += len(done)
        # Only the blocked job left, and every other job of the wave back (when the
        # test says how many there are: jobs are handed to the workers one by one, so
        # a single job running may still have others waiting behind it).
        others_back = state["jobs"] is None or state["back"] == state["jobs"] - 1
        if (state["stop"] is not None and len(still) == 1 and others_back
                and (tmp_path / "pid").exists()):
            state["stop"].request()
        return done, still

    monkeypatch.setattr(hpmkd.parallel, "wait", wait)
    yield state
    (tmp_path / "release").write_text("")
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_stopped_loky_wave_keeps_the_finished_jobs_and_kills_the_busy_worker(
    dataset, blocking_workers, tmp_path
):
    split = dataset.split(0.2, 42)
    proba = dataset.teacher_proba()
    ctx = hpmkd.evaluate.TrainingContext(
        X_train=dataset.X.iloc[split.train], y_train=dataset.y[split.train],
        X_val=dataset.X.iloc[split.validation], y_val=dataset.y[split.validation],
        teacher_train=proba[split.train], reference_val=proba[split.validation],
        classes=dataset.classes, numeric=dataset.numeric, categorical=dataset.categorical,
    )
    tr = split.train
    jobs = [Job(StudentSpec("lgbm", "small", 1.0, 0.5, t,
                            trial_params("lgbm", "small", t, len(tr), 0))) for t in range(4)]
    (tmp_path / "block").write_text(jobs[1].spec.label())
    stop = StopRequest()
    blocking_workers["stop"] = stop
    blocking_workers["jobs"] = len(jobs)
    executor = Executor("loky", n_jobs=2)
    with stop.active(), pytest.raises(WaveInterrupted) as caught:
        executor.run(jobs, ctx)
    assert sorted(caught.value.finished) == [0, 2, 3]
    assert [r.spec for _, r in sorted(caught.value.finished.items())] == [
        jobs[0].spec, jobs[2].spec, jobs[3].spec
    ]
    assert not (tmp_path / "release").exists()  # returned while the job was blocked
    assert _gone(int((tmp_path / "pid").read_text()))
    assert all(_gone(pid) for pid in executor.worker_pids)
    executor.close()


@pytest.mark.parametrize("phase", ["select", "train"])
def test_a_stop_during_a_loky_wave_keeps_its_finished_candidates(
    dataset, blocking_workers, tmp_path, monkeypatch, phase
):
    """Screening fits and trials go to the workers in waves: the last job of the phase's
    first wave of two or more blocks, the stop comes once the others are back."""
    stop = StopRequest()
    blocking_workers["stop"] = stop
    waves: list[list[str]] = []
    now = {"phase": None}
    real_run = Executor.run

    def run(self, jobs, ctx):
        if len(jobs) >= 2 and not waves and now["phase"] == phase:
            waves.append([job.spec.label() for job in jobs])
            (tmp_path / "block").write_text(waves[0][-1])
        return real_run(self, jobs, ctx)

    def on_event(event):
        if event.kind == "phase_start":
            now["phase"] = event.phase

    monkeypatch.setattr(Executor, "run", run)
    config = HPMConfig(**{**CONFIG, "families": ("lgbm", "tree", "logreg"), "max_configs": 3},
                       use_parallel=True, n_jobs=2)
    events: list = []
    distiller = AutoDistiller(dataset, method="hpm", config=config, random_state=3)
    distiller.run(callbacks=[events.append, on_event], stop=stop)
    assert waves, f"no loky wave of two or more jobs in the {phase} phase"
    assert not (tmp_path / "release").exists()  # returned while the job was blocked
    assert _gone(int((tmp_path / "pid").read_text()))
    result = distiller.result_
    assert result.partial and f"during the {phase} phase" in result.stop_reason
    assert len(result.candidates) == len(_candidate_events(events))
    assert "ks" in result.selected.test
    finished, blocked = waves[0][:-1], waves[0][-1]
    if phase == "select":
        # The best finished screening fit is kept: one of the wave's finished fits or
        # of the waves before it, never the blocked one.
        assert [c.source for c in result.candidates] == ["screen"]
        assert result.selected.name != f"screening {blocked}"
    else:
        labels = [c.spec.label() for c in result.candidates if c.source == "config"]
        assert all(label in labels for label in finished) and blocked not in labels
        assert any("trial(s) in progress abandoned" in str(e.message) for e in events)


def test_a_stopped_run_selects_the_top_validation_candidate(dataset):
    """The selection rule's bootstrap (seconds on large tables) is skipped after a stop:
    the partial run keeps the best candidate by validation and says so."""
    stop = StopRequest()
    config = HPMConfig(**CONFIG, selection_rule="smaller_if_noninferior")
    distiller = AutoDistiller(dataset, method="hpm", config=config, random_state=3)
    distiller.run(
        callbacks=[lambda e: stop.request()
                   if e.kind == "phase_start" and e.phase == "compare" else None],
        stop=stop,
    )
    result = distiller.result_
    decision = result.components.selection_rule
    assert result.partial and decision.rule == "smaller_if_noninferior"
    assert decision.selected == decision.top_by_validation == result.selected.name
    assert "non-inferior candidate was skipped" in decision.reason
    assert decision.checked == ()
