"""One distillation run outside the Streamlit script thread.

A :class:`Job` owns one run: a ``threading.Thread`` calls
``AutoDistiller.run(callbacks=[job.on_event])``; every event is appended to the job's own
list (in process, never pickled), which the Distill page polls through :meth:`Job.view`.
A click or a page switch reruns the script but never touches the thread. Everything a run
touches is per job, so two sessions running different jobs cannot interfere.

With the run cache on, the thread first looks the run up in
:class:`~hpmkd_app.run_cache.RunCache` and, under the run's lock, trains it only when no
identical run is stored (then stores it). A fresh run (cache off) skips the look-up but
is stored all the same, so that it survives a server restart.

Two ways to end a run early, both through the engine's
:class:`~hpmkd.stop.StopRequest` (a fit in progress notices it within a boosting round or
an epoch): :meth:`Job.stop` keeps every finished candidate and the job ends ``done`` with a
partial result (``RunResult.stop_reason``); :meth:`Job.cancel` discards the run. A partial
run is stored in the run cache under its own key, so it never serves an identical full run.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpmkd import (
    AutoDistiller,
    DistillationDataset,
    HPMConfig,
    RunCancelled,
    StopRequest,
)
from hpmkd.events import Event
from hpmkd.native_threads import shared_process
from hpmkd.result import RunResult
from hpmkd.settings import idle_server_fields_reset
from hpmkd_app.run_cache import CachedRun, RunCache, for_web_users, run_key
from hpmkd_app.server_errors import web_message

log = logging.getLogger(__name__)

#: Job states. ``starting``: fingerprinting / looking up the cache; ``waiting``: another
#: session is training the identical run; ``running``; then one of the final states.
FINAL_STATES = ("done", "cancelled", "error")


@dataclass(frozen=True)
class JobView:
    """A consistent snapshot of a job for rendering (plain data, no live objects).

    Attributes
    ----------
    id, status, method, seed, config
    events : tuple of Event
    error : str or None
    from_cache : bool
        Served from the run cache (no training happened).
    cached_finished_at : float or None
        When the identical run that served it finished.
    started_at, finished_at : float or None
    cache_note : str or None
        Why the result could not be stored in the run cache, if so.
    """

    id: str
    status: str
    method: str
    seed: int
    config: dict[str, Any]
    events: tuple[Event, ...]
    error: str | None
    from_cache: bool
    cached_finished_at: float | None
    started_at: float
    finished_at: float | None
    cache_note: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the job reached a final state."""
        return self.status in FINAL_STATES


@dataclass(eq=False)
class Job:
    """One distillation run in its own thread.

    Parameters
    ----------
    dataset : DistillationDataset
    config : HPMConfig
    method : str
    seed : int
    use_run_cache : bool
        Serve an identical finished run from :class:`RunCache` and store this one.
    cache_dir : Path, optional
        Directory of the run cache (default under ``$HPMKD_HOME``).
    """

    dataset: DistillationDataset | None
    config: HPMConfig
    method: str
    seed: int
    use_run_cache: bool = True
    cache_dir: Path | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: str = "starting"
    events: list[Event] = field(default_factory=list)
    error: str | None = None
    distiller: AutoDistiller | None = None
    key: str | None = None
    from_cache: bool = False
    cached_finished_at: float | None = None
    cache_note: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = StopRequest()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- callbacks
    def on_event(self, event: Event) -> None:
        """The run's callback: record the event; abandon the run if cancel was asked.

        Raises
        ------
        RunCancelled
            After :meth:`cancel`, at the next event (the engine also notices it inside
            a fit).
        """
        with self._lock:
            self.events.append(event)
            if self.status == "starting" or self.status == "waiting":
                self.status = "running"
        if self._stop.requested and self._stop.discard:
            raise RunCancelled(self._stop.reason)

    def cancel(self) -> None:
        """Abandon the run (nothing is kept), also while it waits for another session."""
        self._stop.request("cancelled by the user", discard=True)

    def stop(self) -> None:
        """Stop the run and keep the best so far: the job ends ``done`` with a partial
        result holding every finished candidate (before any candidate finished, it ends
        ``cancelled`` with a message)."""
        self._stop.request("stopped by the user")

    @property
    def cancel_requested(self) -> bool:
        """Whether :meth:`cancel` or :meth:`stop` was called."""
        return self._stop.requested

    @property
    def stop_requested_at(self) -> float | None:
        """``time.perf_counter()`` of the stop or cancel request, if any."""
        return self._stop.requested_at

    def _set(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def view(self) -> JobView:
        """A snapshot of the job's state and events."""
        with self._lock:
            return JobView(
                id=self.id,
                status=self.status,
                method=self.method,
                seed=self.seed,
                config=self.config.to_dict(),
                events=tuple(self.events),
                error=self.error,
                from_cache=self.from_cache,
                cached_finished_at=self.cached_finished_at,
                started_at=self.started_at,
                finished_at=self.finished_at,
                cache_note=self.cache_note,
            )

    @property
    def finished(self) -> bool:
        """Whether the job reached a final state."""
        return self.status in FINAL_STATES

    @property
    def result(self) -> RunResult | None:
        """The finished run's typed result (``None`` unless the job is ``done``)."""
        with self._lock:
            distiller = self.distiller if self.status == "done" else None
        return distiller.result_ if distiller is not None else None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread ends; ``True`` when it did within ``timeout``."""
        if self._thread is None:
            return self.finished
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------- the thread
    def start(self) -> Job:
        """Start the run in a daemon thread."""
        self._thread = threading.Thread(target=self._main, name=f"hpmkd-job-{self.id}",
                                        daemon=True)
        self._thread.start()
        return self

    def _main(self) -> None:
        start = time.perf_counter()
        try:
            # Other jobs run in this server process too: LightGBM keeps one thread.
            with shared_process():
                if self.use_run_cache:
                    self._run_cached(start)
                else:
                    self._run_fresh(start)
        except RunCancelled as exc:
            # A keep-the-best stop before any model finished has nothing to keep: say so.
            note = None if self._stop.discard else str(exc)
            self._set(status="cancelled", error=note)
        except ImportError as exc:
            self._set(status="error", error=_import_message(self.method, exc))
        except ValueError as exc:
            # Input errors as they are; the server's folders and settings are its
            # administrator's business: they go to the server log, not to the page.
            self._set(status="error", error=web_message(exc, "the run stopped", log,
                                                        f"job {self.id}"))
        except Exception as exc:
            # An unexpected error's text may hold the server's paths or internals: the
            # traceback goes to the server log, the page gets its kind and the job id.
            log.exception("job %s failed", self.id)
            self._set(status="error", error=(
                f"The run failed with an unexpected error ({type(exc).__name__}). The "
                f"server log has the details (job {self.id})."
            ))
        finally:
            with self._lock:
                self.finished_at = time.time()
                # Drop the input reference: the distiller keeps what results need.
                self.dataset = None

    def _run_cached(self, start: float) -> None:
        assert self.dataset is not None
        key = run_key(self.dataset, self.config, self.method, self.seed)
        self._set(key=key)
        with RunCache(self.cache_dir) as cache:
            lock = cache.lock(key)
            while True:
                hit = cache.get(key)
                if hit is not None:
                    self._serve(hit, cache)
                    return
                if self._stop.requested:
                    raise RunCancelled("cancelled while waiting")
                if lock.try_acquire():
                    break
                self._set(status="waiting")
                time.sleep(0.2)
            try:
                # Another session may have finished it between the lookup and the lock.
                hit = cache.get(key)
                if hit is not None:
                    self._serve(hit, cache)
                    return
                self._train(start, cache)
            finally:
                lock.release()

    def _run_fresh(self, start: float) -> None:
        """Train without looking the run up, and still store it: a finished run must
        come back after a server restart (a session keeps only its job id)."""
        assert self.dataset is not None
        self._set(key=run_key(self.dataset, self.config, self.method, self.seed))
        with RunCache(self.cache_dir) as cache:
            self._train(start, cache)

    def _serve(self, hit: CachedRun, cache: RunCache) -> None:
        cache.remember_job(self.id, self.key or "")
        self._set(
            distiller=hit.distiller,
            from_cache=True,
            cached_finished_at=hit.finished_at,
            status="done",
        )

    def _train(self, start: float, cache: RunCache | None) -> None:
        assert self.dataset is not None
        self._set(status="running")
        distiller = AutoDistiller(self.dataset, method=self.method, config=self.config,
                                  random_state=self.seed)
        distiller.config = idle_server_fields_reset(self.config, distiller.resolve_method()[0])
        distiller.run(callbacks=[self.on_event], stop=self._stop)
        for_web_users(distiller)
        seconds = time.perf_counter() - start
        note = None
        if cache is not None and self.key:
            # A run stopped on request is kept under its own key: a reload finds it, an
            # identical full run is never served from it.
            key = f"{self.key}:partial:{self.id}" if self._stop.requested else self.key
            try:
                cache.put(key, distiller, seconds)
                cache.remember_job(self.id, key)
            except Exception as exc:
                log.warning("could not store run %s: %s", self.id, exc)
                note = f"The result could not be stored in the run cache: {exc}"
        self._set(distiller=distiller, status="done", cache_note=note)


def _import_message(method: str, exc: ImportError) -> str:
    return (
        f"The {method!r} method is not available in this installation ({exc}). "
        "Choose the legacy method on the Configure page."
    )
