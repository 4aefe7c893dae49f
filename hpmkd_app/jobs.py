"""The app's job registry: start a run in the background, find it again, cancel it.

:func:`start_job` makes a :class:`~hpmkd_app.runner.Job` (the run's own thread) and keeps
it in :data:`_JOBS`, guarded by :data:`_JOBS_LOCK`, the only module-level mutable state.
:func:`get_job` finds a job by id, also after a browser reload (the id is kept in the URL)
or a server restart (a finished run is re-loaded from
:class:`~hpmkd_app.run_cache.RunCache`).

Where the pieces live: :mod:`hpmkd_app.runner` (the job thread and its
:class:`~hpmkd_app.runner.JobView` snapshots), :mod:`hpmkd_app.run_cache` (finished runs
on disk); their public names are re-exported here.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from hpmkd import DistillationDataset, HPMConfig
from hpmkd_app.run_cache import CachedRun, RunCache, run_key
from hpmkd_app.runner import FINAL_STATES, Job, JobView

__all__ = [
    "FINAL_STATES",
    "MAX_FINISHED_JOBS",
    "CachedRun",
    "Job",
    "JobView",
    "RunCache",
    "cancel_job",
    "expected_candidates",
    "get_job",
    "run_key",
    "start_job",
    "stop_job",
    "valid_job_id",
]

log = logging.getLogger(__name__)

#: Most finished jobs kept in memory; older ones are re-loaded from the run cache.
MAX_FINISHED_JOBS = 8

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


def valid_job_id(job_id: object) -> bool:
    """Whether ``job_id`` has the form of a job id (hex digits, 4 to 64 of them).

    Parameters
    ----------
    job_id : object
    """
    return (isinstance(job_id, str) and 4 <= len(job_id) <= 64
            and all(c in "0123456789abcdef" for c in job_id))


_valid_id = valid_job_id


def _running(job_id: str) -> Job | None:
    """The job ``job_id`` if it exists and has not finished."""
    job = get_job(job_id)
    return None if job is None or job.finished else job


def cancel_job(job_id: str) -> bool:
    """Abandon a job (nothing kept); ``True`` when the job exists and was still running.

    Parameters
    ----------
    job_id : str
    """
    job = _running(job_id)
    if job is not None:
        job.cancel()
    return job is not None


def stop_job(job_id: str) -> bool:
    """Stop a job and keep the best so far (a partial run); ``True`` when the job exists
    and was still running.

    Parameters
    ----------
    job_id : str
    """
    job = _running(job_id)
    if job is not None:
        job.stop()
    return job is not None


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
