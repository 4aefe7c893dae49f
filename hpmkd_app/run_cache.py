"""The app's run cache: finished runs on disk, keyed by everything that decides them.

:class:`RunCache` keeps finished runs in ``diskcache`` (a private directory under
``$HPMKD_HOME/app``), keyed by :func:`run_key`: the dataset fingerprint, the config, the
method, the seed, hpmkd's own source and the installed libraries' versions. Values are
pickles of our own :class:`~hpmkd.AutoDistiller` objects, written by this module only,
never bytes a user uploaded. An identical run is served from
it, and a ``diskcache.Lock`` per key makes two sessions that start the same run train it
once (:mod:`hpmkd_app.runner` takes the lock).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import diskcache
import numpy as np

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig
from hpmkd.run_cache import library_versions, source_digest
from hpmkd_app.paths import app_dir

log = logging.getLogger(__name__)

#: Seconds after which a run lock is considered abandoned (the holder crashed).
LOCK_EXPIRE_S = 6 * 3600
#: Default size limit of the run cache.
RUN_CACHE_GB = 2.0
#: How long a job id stays attached to its run (a reload after a restart re-attaches).
JOB_ID_TTL_S = 7 * 24 * 3600


def run_key(dataset: DistillationDataset, config: HPMConfig, method: str, seed: int) -> str:
    """The run cache key: equal keys mean the same inputs and the same settings.

    Parameters
    ----------
    dataset : DistillationDataset
        Its :meth:`~hpmkd.DistillationDataset.fingerprint` covers features, target,
        classes and teacher probabilities; its test rows (a separate test table or the
        seeded held-out part) and its name are added here.
    config : HPMConfig
    method : str
        As requested (``auto`` resolves deterministically from the dataset size).
    seed : int

    Returns
    -------
    str
        SHA-256 hex digest.
    """
    # The fingerprint covers the rows' values, not which of them are test rows: the same
    # rows as one table or as a table plus a test table are different runs.
    test_rows = dataset.split(config.validation_split, seed).test
    payload = {
        "fingerprint": dataset.fingerprint(),
        # A served run shows its table's name: another person's identical upload under
        # another name is another run (their file name is theirs).
        "name": dataset.name,
        "test_rows": hashlib.sha256(np.ascontiguousarray(test_rows).tobytes()).hexdigest(),
        "config": config.to_dict(),
        "method": method,
        "seed": int(seed),
        # hpmkd's own source and every installed version, as the CLI's run cache keys
        # them: a code change without a new version number must miss, not serve a result
        # the old code computed (and pickled in the old shape).
        "hpmkd": source_digest(),
        "libraries": library_versions(),
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


def for_web_users(distiller: AutoDistiller) -> AutoDistiller:
    """``distiller`` with its result as the app shows and exports it: without the
    server's folders and scheduler address, or other people's table names from the
    shared memory (:meth:`hpmkd.result.RunResult.without_server_details`). Every run the
    app holds, fresh or from this cache, passes here.

    Parameters
    ----------
    distiller : AutoDistiller
        A finished run (changed in place and returned).
    """
    if distiller.result_ is not None and not distiller.result_.server_details_hidden:
        distiller.result_ = distiller.result_.without_server_details()
    return distiller


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
        # Also an entry stored before runs were kept this way.
        distiller = for_web_users(value["distiller"])
        return CachedRun(distiller, float(value["finished_at"]), float(value["seconds"]))

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
        self.meta.set(f"job:{job_id}", key, expire=JOB_ID_TTL_S, retry=True)

    def key_of_job(self, job_id: str) -> str | None:
        """The run key a job id produced, if recorded."""
        value = self.meta.get(f"job:{job_id}", default=None, retry=True)
        return value if isinstance(value, str) else None
