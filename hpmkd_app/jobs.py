"""Distillation runs outside the Streamlit script thread, and the app's run cache.

A :class:`Job` owns one run: a ``threading.Thread`` calls
``AutoDistiller.run(callbacks=[job.on_event])``; every event is appended to the job's own
list, which the Distill page polls. A click or a page switch reruns the script but never
touches the thread, and a browser reload re-attaches through the job id kept in the URL.

The registry (:data:`_JOBS`, guarded by :data:`_JOBS_LOCK`) is the only module-level
mutable state; everything a run touches is per job, so two sessions running different
jobs cannot interfere.

:class:`RunCache` keeps finished runs on disk (``diskcache``, private directory under
``$HPMKD_HOME/app``), keyed by the dataset fingerprint, the config, the method and the
seed. Values are pickles of our own :class:`~hpmkd.AutoDistiller` objects, written by this
module only, never bytes a user uploaded. An identical run is served from it, and a
``diskcache.Lock`` per key makes two sessions that start the same run train it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diskcache

import hpmkd
from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, HPMKDInputError, RunCancelled
from hpmkd.events import Event
from hpmkd_app.paths import app_dir

log = logging.getLogger(__name__)

#: Job states. ``starting``: fingerprinting / looking up the cache; ``waiting``: another
#: session is training the identical run; ``running``; then one of the final states.
FINAL_STATES = ("done", "cancelled", "error")
#: Most finished jobs kept in memory; older ones are re-loaded from the run cache.
MAX_FINISHED_JOBS = 8
#: Seconds after which a run lock is considered abandoned (the holder crashed).
LOCK_EXPIRE_S = 6 * 3600
#: Default size limit of the run cache.
RUN_CACHE_GB = 2.0


# --------------------------------------------------------------------------- run cache
def run_key(dataset: DistillationDataset, config: HPMConfig, method: str, seed: int) -> str:
    """The run cache key: equal keys mean the same inputs and the same settings.

    Parameters
    ----------
    dataset : DistillationDataset
        Its :meth:`~hpmkd.DistillationDataset.fingerprint` covers features, target,
        classes and teacher probabilities.
    config : HPMConfig
    method : str
        As requested (``auto`` resolves deterministically from the dataset size).
    seed : int

    Returns
    -------
    str
        SHA-256 hex digest.
    """
    payload = {
        "fingerprint": dataset.fingerprint(),
        "config": config.to_dict(),
        "method": method,
        "seed": int(seed),
        "hpmkd": hpmkd.__version__,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class _RunLock(diskcache.Lock):
    """``diskcache.Lock`` with a non-blocking attempt, so a waiting job stays cancellable."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never spin."""
        return bool(
            self._cache.add(self._key, None, expire=self._expire, tag=self._tag, retry=True)
        )


@dataclass(frozen=True)
class CachedRun:
    """A finished run loaded from the cache.

    Attributes
    ----------
    distiller : AutoDistiller
        A fresh, unpickled copy (never shared with another job).
    finished_at : float
        ``time.time()`` when the original run finished.
    seconds : float
        How long the original run took.
    """

    distiller: AutoDistiller
    finished_at: float
    seconds: float


class RunCache:
    """Finished runs on disk, in a private (0700) directory.

    Parameters
    ----------
    directory : Path, optional
        Default ``$HPMKD_HOME/app/runs``.
    size_limit_gb : float
        Oldest runs are evicted beyond this size (before a new one is written, so the new
        entry is never the one culled).
    """

    def __init__(self, directory: Path | None = None, size_limit_gb: float = RUN_CACHE_GB):
        self.directory = Path(directory) if directory else app_dir("runs")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        self.runs = diskcache.Cache(
            str(self.directory / "results"),
            size_limit=int(size_limit_gb * 1024**3),
            cull_limit=0,
            eviction_policy="least-recently-used",
        )
        # Locks and job-id records never get evicted.
        self.meta = diskcache.Cache(str(self.directory / "meta"), eviction_policy="none")

    def close(self) -> None:
        """Close both cache handles."""
        self.runs.close()
        self.meta.close()

    def __enter__(self) -> RunCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, key: str) -> CachedRun | None:
        """The cached run of ``key``, or ``None`` (unreadable entries are dropped)."""
        try:
            value = self.runs.get(key, default=None, retry=True)
        except Exception as exc:
            log.warning("dropping unreadable run cache entry %s: %s", key[:12], exc)
            with contextlib.suppress(Exception):
                self.runs.delete(key, retry=True)
            return None
        if not isinstance(value, dict) or not isinstance(value.get("distiller"), AutoDistiller):
            return None
        return CachedRun(value["distiller"], float(value["finished_at"]), float(value["seconds"]))

    def put(self, key: str, distiller: AutoDistiller, seconds: float) -> None:
        """Store a finished run (evicting old runs first if over the size limit)."""
        self.runs.cull(retry=True)
        self.runs.set(
            key,
            {"distiller": distiller, "finished_at": time.time(), "seconds": float(seconds)},
            retry=True,
        )

    def __contains__(self, key: str) -> bool:
        return key in self.runs

    def lock(self, key: str) -> _RunLock:
        """The cross-process lock of ``key``."""
        return _RunLock(self.meta, f"lock:{key}", expire=LOCK_EXPIRE_S)

    def remember_job(self, job_id: str, key: str) -> None:
        """Record which run a job id produced (so a reload after a restart re-attaches)."""
        self.meta.set(f"job:{job_id}", key, expire=7 * 24 * 3600, retry=True)

    def key_of_job(self, job_id: str) -> str | None:
        """The run key a job id produced, if recorded."""
        value = self.meta.get(f"job:{job_id}", default=None, retry=True)
        return value if isinstance(value, str) else None


# --------------------------------------------------------------------------- jobs
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
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- callbacks
    def on_event(self, event: Event) -> None:
        """The run's callback: record the event; stop the run if cancel was asked.

        Raises
        ------
        RunCancelled
            After :meth:`cancel`, at the next event.
        """
        with self._lock:
            self.events.append(event)
            if self.status == "starting" or self.status == "waiting":
                self.status = "running"
        if self._cancel.is_set():
            raise RunCancelled("cancelled by the user")

    def cancel(self) -> None:
        """Ask the run to stop at its next event (or while waiting for a lock)."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

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
            if self.use_run_cache:
                self._run_cached(start)
            else:
                self._train(start, None)
        except RunCancelled:
            self._set(status="cancelled", error=None)
        except HPMKDInputError as exc:
            self._set(status="error", error=str(exc))
        except ImportError as exc:
            self._set(status="error", error=_import_message(self.method, exc))
        except ValueError as exc:
            self._set(status="error", error=str(exc))
        except Exception as exc:
            log.exception("job %s failed", self.id)
            self._set(status="error", error=f"The run failed: {type(exc).__name__}: {exc}")
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
                if self._cancel.is_set():
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
        distiller.run(callbacks=[self.on_event])
        seconds = time.perf_counter() - start
        note = None
        if cache is not None and self.key:
            try:
                cache.put(self.key, distiller, seconds)
                cache.remember_job(self.id, self.key)
            except Exception as exc:
                log.warning("could not store run %s: %s", self.id, exc)
                note = f"The result could not be stored in the run cache: {exc}"
        self._set(distiller=distiller, status="done", cache_note=note)


def _import_message(method: str, exc: ImportError) -> str:
    return (
        f"The {method!r} method is not available in this installation ({exc}). "
        "Choose the legacy method on the Configure page."
    )


# --------------------------------------------------------------------------- registry
_JOBS: dict[str, Job] = {}
_JOBS_LOCK = threading.Lock()


def start_job(
    dataset: DistillationDataset,
    config: HPMConfig,
    method: str = "auto",
    seed: int = 42,
    use_run_cache: bool = True,
    cache_dir: Path | None = None,
) -> Job:
    """Create, register and start a job.

    Parameters
    ----------
    dataset : DistillationDataset
    config : HPMConfig
    method : {"auto", "hpm", "legacy"}
    seed : int
    use_run_cache : bool
        Serve an identical finished run from the run cache (and store this one).
    cache_dir : Path, optional
        Run cache directory (tests pass a temporary one).

    Returns
    -------
    Job
        Already running; keep its ``id``.
    """
    job = Job(dataset=dataset, config=config, method=method, seed=int(seed),
              use_run_cache=use_run_cache, cache_dir=cache_dir)
    with _JOBS_LOCK:
        _JOBS[job.id] = job
        _forget_old_jobs()
    return job.start()


def _forget_old_jobs() -> None:
    finished = sorted(
        (j for j in _JOBS.values() if j.finished), key=lambda j: j.finished_at or 0.0
    )
    for job in finished[: max(0, len(finished) - MAX_FINISHED_JOBS)]:
        _JOBS.pop(job.id, None)


def get_job(job_id: str | None, cache_dir: Path | None = None) -> Job | None:
    """The job with this id: from the registry, else a finished run from the run cache.

    Parameters
    ----------
    job_id : str or None
    cache_dir : Path, optional

    Returns
    -------
    Job or None
        ``None`` when the id is unknown (e.g. a link from another server).
    """
    if not job_id:
        return None
    with _JOBS_LOCK:
        job = _JOBS.get(job_id)
    if job is not None:
        return job
    if not _valid_id(job_id):
        return None
    try:
        with RunCache(cache_dir) as cache:
            key = cache.key_of_job(job_id)
            hit = cache.get(key) if key else None
    except Exception as exc:
        log.warning("could not re-attach job %s: %s", job_id, exc)
        return None
    if hit is None:
        return None
    distiller = hit.distiller
    job = Job(dataset=None, config=distiller.config, method=distiller.method,
              seed=distiller.random_state, id=job_id, status="done", distiller=distiller,
              key=key, started_at=hit.finished_at - hit.seconds, finished_at=hit.finished_at)
    with _JOBS_LOCK:
        _JOBS.setdefault(job_id, job)
        return _JOBS[job_id]


def _valid_id(job_id: str) -> bool:
    return 4 <= len(job_id) <= 64 and all(c in "0123456789abcdef" for c in job_id)


def cancel_job(job_id: str) -> bool:
    """Ask a job to stop; ``True`` when the job exists and was still running.

    Parameters
    ----------
    job_id : str
    """
    job = get_job(job_id)
    if job is None or job.finished:
        return False
    job.cancel()
    return True


def expected_candidates(method: str, config: HPMConfig) -> int | None:
    """How many candidates a run will train, when known in advance (legacy: the grid).

    Parameters
    ----------
    method : str
        The resolved method.
    config : HPMConfig
    """
    if method == "legacy":
        return len(config.families) * len(config.temperatures) * len(config.alphas)
    return None
