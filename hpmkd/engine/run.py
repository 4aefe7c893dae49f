"""``run()``: the five phases of HPM-KD as five calls, in order.

1. select   — :func:`~hpmkd.engine.select.select_configurations`
2. chain    — :func:`~hpmkd.engine.chain.progressive_chain`
3. train    — :func:`~hpmkd.engine.train.train_configurations`
4. ensemble — :func:`~hpmkd.engine.ensemble.multi_teacher_ensemble`
5. compare  — :func:`~hpmkd.engine.compare.compare_candidates`

The ``legacy`` method is the same run under another :class:`~hpmkd.engine.session.MethodPlan`:
phase 1 is the fixed grid, phase 3 trains it one candidate after another, and the
adaptive components are not part of it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from hpmkd.components.cache import IntelligentCache
from hpmkd.components.memory import SharedOptimizationMemory
from hpmkd.config import HPMConfig
from hpmkd.data import DistillationDataset
from hpmkd.engine.chain import progressive_chain
from hpmkd.engine.compare import compare_candidates
from hpmkd.engine.ensemble import multi_teacher_ensemble
from hpmkd.engine.select import remember, select_configurations
from hpmkd.engine.session import PLANS, RunSession
from hpmkd.engine.train import train_configurations
from hpmkd.errors import RunCancelled
from hpmkd.events import EventBus
from hpmkd.leakage import LeakageCheck, check_run
from hpmkd.result import (
    CacheRecord,
    Components,
    DatasetFacts,
    ParallelRecord,
    RunResult,
    TemperatureRecord,
    versions,
)
from hpmkd.stop import StopRequest


def run(
    dataset: DistillationDataset,
    config: HPMConfig,
    method: str,
    method_reason: str,
    random_state: int,
    bus: EventBus,
    stop: StopRequest | None = None,
) -> RunResult:
    """Distill ``dataset``'s teachers with ``method`` (``hpm`` or ``legacy``).

    Parameters
    ----------
    dataset : DistillationDataset
    config : HPMConfig
    method : {"hpm", "legacy"}
    method_reason : str
        Why this method (recorded in the result).
    random_state : int
    bus : EventBus
        Receives every progress event.
    stop : StopRequest, optional
        Another thread may request a stop: it works like an expired time budget (no new
        candidate starts, a fit in progress is abandoned), then the compare phase runs on
        the candidates that finished and the result is labelled partial
        (``stop_reason``). A stop before any candidate keeps the best screening fit.

    Returns
    -------
    RunResult

    Raises
    ------
    RunCancelled
        A discarding stop, or a stop before any model finished (nothing to keep).
    """
    stop = stop if stop is not None else StopRequest()
    with stop.active():
        return _run(dataset, config, method, method_reason, random_state, bus, stop)


def _run(
    dataset: DistillationDataset,
    config: HPMConfig,
    method: str,
    method_reason: str,
    random_state: int,
    bus: EventBus,
    stop: StopRequest,
) -> RunResult:
    plan = PLANS[method]
    memory = SharedOptimizationMemory.from_config(config) if plan.components else None
    session = RunSession(dataset, config, plan, random_state, bus, stop)
    bus.emit(
        "run_start",
        message=f"{method}: {dataset.n_rows} rows, {dataset.n_features} features",
        method=method,
        method_reason=method_reason,
        split_sizes={
            "train": len(session.split.train),
            "validation": len(session.split.validation),
            "test": len(session.split.test),
        },
        phases=list(plan.phases),
    )
    leakage_check = BackgroundLeakageCheck(session)
    try:
        configs, selection, warm_start = select_configurations(session, memory)
        chain = progressive_chain(session, configs)
        halving, racing, capacity = train_configurations(session, configs)
        attention = multi_teacher_ensemble(session)
        if stop.requested and stop.discard:
            raise RunCancelled(stop.reason)
        if stop.requested and not session.candidates and not session.keep_best_screened():
            raise RunCancelled(
                f"{stop.reason} before any model finished training: there is nothing to "
                "keep. Start the run again and let it train at least one model."
            )
        # The cache counters of the search phases (phase 5 only re-reads what they stored);
        # the executor is described while its cluster client is still open.
        cache = CacheRecord(**session.cache.stats()) if plan.components else None
        parallel = ParallelRecord(**session.executor.describe()) if plan.components else None
        comparison = compare_candidates(session)
        leakage = leakage_check.result(stopping=stop.requested, since=stop.requested_at)
        if leakage is None:
            bus.emit("info", phase="compare", message="leakage check not finished: the run "
                     "was stopped before it was (a run that ends normally always has it)")
        else:
            bus.emit(
                "info",
                phase="compare",
                message="leakage suspected: the teacher looks trained on these rows"
                if leakage.suspected
                else "leakage check: no sign that the teacher saw these rows",
                leakage=leakage.to_dict(),
            )
    finally:
        session.close()
    session.phases["total"] = session.elapsed()
    bus.emit(
        "run_end",
        message="done",
        best=comparison.selected.name,
        seconds=session.phases["total"],
    )
    # A run stopped on request is not a fair record of what works on this data.
    if memory is not None and config.use_memory and not stop.requested:
        remember(session, memory, comparison.selected)
    components = Components(
        selection=selection,
        warm_start=warm_start,
        chain=chain,
        temperature=_temperature_record(session) if plan.components else None,
        racing=racing,
        halving=halving,
        capacity=capacity,
        attention=attention,
        teacher_attention=session.teacher_attention,
        cache=cache,
        parallel=parallel,
        selection_rule=comparison.decision,
        final_fit=comparison.final_fit,
    )
    return RunResult(
        method=method,
        method_reason=method_reason,
        selection_metric=config.selection_metric,
        candidates=tuple(session.candidates),
        selected=comparison.selected,
        teachers=comparison.teachers,
        twin=comparison.twin,
        components=components,
        phases=dict(session.phases),
        timeline=tuple(session.timeline),
        verdict=comparison.verdict,
        split=session.split,
        y_val=session.ctx.y_val,
        y_test=dataset.y[session.split.test],
        stopped_by_budget=session.stopped_by_budget,
        stop_reason=session.stop_reason,
        config=config,
        random_state=random_state,
        dataset=DatasetFacts(
            name=dataset.name,
            classes=tuple(dataset.classes),
            n_rows=dataset.n_rows,
            n_features=dataset.n_features,
            dropped_missing_target=dataset.n_dropped_missing_target,
            fingerprint=dataset.fingerprint(),
            profile=dataset.profile(),
            teacher_trusted=bool(getattr(dataset, "teacher_trusted", False)),
        ),
        versions=versions(),
        leakage=leakage,
    )


#: How long after a stop request a stopped run may still wait for an unfinished leakage
#: check (the app promises a stop within 2 s; the check takes 1-5 s on its own). Counted
#: from the request: the compare phase of the kept candidates runs meanwhile.
STOP_WAIT_S = 1.0


class BackgroundLeakageCheck:
    """The run's leakage check of the teachers as given, computed in a thread beside the
    phases and memoized in the cache.

    It depends only on the data, the teachers' probabilities, the split and the seed, not
    on any student, so it need not wait for them: a sequential run leaves the second core
    to it, and a stop request does not wait for its 1-5 s (see :data:`STOP_WAIT_S`).
    The cache is read and written from the run's own thread only.

    Parameters
    ----------
    session : RunSession
    """

    def __init__(self, session: RunSession) -> None:
        dataset, split, config = session.dataset, session.split, session.config
        rows = hashlib.sha256(
            split.train.tobytes() + b"|" + split.validation.tobytes() + b"|"
            + split.test.tobytes()
        ).hexdigest()
        self._cache = session.cache
        self._key = IntelligentCache.make_key(
            "leakage", dataset.fingerprint(), rows, session.random_state,
            config.teacher_refit, dataset.has_separate_test,
        )
        self._value: LeakageCheck | None = self._cache.get(self._key)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if self._value is None:
            args = (dataset, split.train, split.validation, split.test, session.random_state,
                    config.teacher_refit, dataset.has_separate_test)
            self._thread = threading.Thread(
                target=self._work, args=args, name="hpmkd-leakage-check", daemon=True
            )
            self._thread.start()

    def _work(self, *args: Any) -> None:
        try:
            self._value = check_run(*args)
        except BaseException as exc:  # raised again in the run's thread by result()
            self._error = exc

    def result(self, stopping: bool = False, since: float | None = None) -> LeakageCheck | None:
        """The check, waiting for it to finish (when the run is stopping, until
        :data:`STOP_WAIT_S` after ``since``, the ``time.perf_counter()`` of the stop
        request, or for :data:`STOP_WAIT_S` without it: then ``None`` if it is not done).

        Raises
        ------
        BaseException
            Whatever the check raised.
        """
        if self._thread is not None:
            timeout = None
            if stopping:
                waited = 0.0 if since is None else time.perf_counter() - since
                timeout = max(0.0, STOP_WAIT_S - waited)
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                return None
            self._thread = None
            if self._error is not None:
                raise self._error
            self._cache.put(self._key, self._value)
        return self._value


def _temperature_record(session: RunSession) -> TemperatureRecord:
    adaptive = session.config.use_adaptive_temperature
    return TemperatureRecord(
        enabled=True,
        adaptive=adaptive,
        reason=""
        if adaptive
        else "use_adaptive_temperature=False: configs take the fixed temperatures of "
        "config.temperatures; chain stages cycle that grid",
        decisions=tuple(session.temperature_log),
    )
