"""The run cache of ``hpmkd distill``: an identical rerun writes the finished outputs again.

A cold run stores the bytes of the files it wrote (``results.csv``, ``timings.csv``,
``best_model.joblib``, ``summary.json``, ``report.html`` when asked) and its closing lines in the
:class:`~hpmkd.components.cache.IntelligentCache` (same folder, size limit and LRU
eviction; ``use_cache=False`` turns it off). An identical rerun reads only what decides the
run, not the tables: the SHA-256 of every input file's bytes, the command-line arguments
that reach the run, the whole configuration, the seed, the versions of Python and of every
installed distribution, and a digest of hpmkd's own source files. It then
writes the stored files without loading scikit-learn, pandas or LightGBM, training or
scoring anything.

The optimization memory decides a run too (warm start), so with ``use_memory`` on the
entry also holds the memory's state as the run saw it: the ids of the stored runs on
*other* data (runs on the same data are left out of a warm start). A rerun is served only
when that state is still the same, and it records the run in the memory again, as a
rerun that trains would. Runs that the time budget stopped depend on the clock and are
never stored; nor is a run during which another run on other data was added to the
memory (which of the two states it saw cannot be told).
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from hpmkd._version import __version__
from hpmkd.components.cache import IntelligentCache

__all__ = ["RunCache", "RunCacheEntry", "file_digest", "source_digest"]

#: Version of the entry layout; a new layout misses instead of misreading old entries.
ENTRY_FORMAT = 1
#: Output files an entry can hold, in the order a cold run writes them.
OUTPUT_FILES = ("results.csv", "timings.csv", "best_model.joblib", "summary.json",
                "report.html")


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks (the file is never parsed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 over hpmkd's own source files (names and bytes).

    The version number is not enough: a change of code without a new version must miss
    rather than serve what the old code computed.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def library_versions() -> tuple[tuple[str, str], ...]:
    """Python's version and every installed distribution with its version.

    Read from the names of the ``*.dist-info`` / ``*.egg-info`` entries on ``sys.path``
    (``importlib.metadata`` alone takes longer to import than a served rerun): any
    install or upgrade in the environment then misses, which covers whatever library a
    teacher file loads with.
    """
    found = {("hpmkd", __version__), ("python", platform.python_version())}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            match = _DIST_INFO.match(name)
            if match:
                found.add((match["name"].lower().replace("-", "_"), match["version"]))
    return tuple(sorted(found))


_DIST_INFO = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+?)(?:-py[^-]*)?\.(?:dist|egg)-info$")


@dataclass(frozen=True)
class MemoryState:
    """The optimization memory as a run on data ``fingerprint`` sees it.

    Attributes
    ----------
    other_runs : str
        SHA-256 over the sorted ids of the stored runs on other data (what a warm start
        may draw on).
    own_runs : frozenset of str
        Ids of the stored runs on this very data (left out of a warm start).
    """

    other_runs: str
    own_runs: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class RunCacheEntry:
    """A finished CLI run, as stored.

    Attributes
    ----------
    files : mapping of str to bytes
        Output file name -> bytes, as the cold run wrote them.
    lines : tuple of str
        The closing lines the cold run printed on stderr (selected student, reason,
        verdict).
    method : str
        The method that ran (for the settings warnings a rerun prints again).
    fingerprint : str
        The data fingerprint of the run (``DistillationDataset.fingerprint()``).
    memory : str or None
        :attr:`MemoryState.other_runs` when the run started; None with the memory off.
    memory_record : dict or None
        What the run recorded in the memory (``RunMemoryRecord.to_dict()`` without its
        id and time), recorded again by a served rerun.
    created_at : float
        When the cold run finished (``time.time()``).
    seconds : float
        Wall time of the cold run.
    """

    files: Mapping[str, bytes]
    lines: tuple[str, ...]
    method: str
    fingerprint: str
    memory: str | None
    memory_record: Mapping[str, Any] | None
    created_at: float
    seconds: float


class RunCache:
    """Store and serve finished ``hpmkd distill`` runs (see the module notes).

    Parameters
    ----------
    config : HPMConfig
        ``use_cache``, ``cache_dir``, ``cache_size_limit_gb`` (where entries live) and
        ``use_memory``, ``memory_dir`` (whose state is part of an entry); the whole
        configuration is part of the key.
    arguments : mapping
        The command-line arguments that reach the run (not ``--out``, ``--quiet``,
        ``--report``): plain values.
    inputs : sequence of str
        The input files (data, test data, teachers), in argument order; their bytes'
        digests are part of the key.
    """

    def __init__(
        self, config: Any, arguments: Mapping[str, Any], inputs: Sequence[str | Path]
    ) -> None:
        self.config = config
        self.enabled = bool(config.use_cache)
        self.key = IntelligentCache.make_key(
            "cli_run",
            ENTRY_FORMAT,
            dict(arguments),
            [file_digest(p) for p in inputs],
            config.to_dict(),
            library_versions(),
            source_digest(),
        )
        self._cache: IntelligentCache | None = None

    @property
    def cache(self) -> IntelligentCache:
        """The :class:`IntelligentCache` the entries live in (opened on first use)."""
        if self._cache is None:
            self._cache = IntelligentCache.from_config(self.config)
        return self._cache

    def lookup(self, need: Iterable[str] = ()) -> RunCacheEntry | None:
        """The stored run for this key if it may be served now, else None.

        Parameters
        ----------
        need : iterable of str
            Output files the rerun must write (e.g. ``report.html`` for ``--report``); an
            entry without one of them is not served.
        """
        if not self.enabled:
            return None
        entry = self.cache.get(self.key)
        if not isinstance(entry, RunCacheEntry):
            return None
        if any(name not in entry.files for name in need):
            return None
        # No memory state in the entry: the run did not depend on the memory (memory off,
        # or a method without it, which the key decides).
        if entry.memory is not None:
            state = self.memory_state(entry.fingerprint)
            if state is None or state.other_runs != entry.memory:
                return None  # the memory changed: a warm start may decide otherwise now
        return entry

    def memory_state(self, fingerprint: str) -> MemoryState | None:
        """The memory as a run on ``fingerprint`` sees it (None with the memory off)."""
        if not self.config.use_memory:
            return None
        from hpmkd.components.memory import SharedOptimizationMemory

        records = SharedOptimizationMemory.from_config(self.config).store.all()
        others = sorted(r.run_id for r in records if r.fingerprint != fingerprint)
        own = frozenset(r.run_id for r in records if r.fingerprint == fingerprint)
        return MemoryState(hashlib.sha256("\n".join(others).encode()).hexdigest(), own)

    def new_memory_record(
        self, fingerprint: str, before: MemoryState | None
    ) -> dict[str, Any] | None:
        """What this run recorded in the memory: the one record on ``fingerprint`` not
        there ``before``; None when there is none or more than one."""
        if before is None:
            return None
        from hpmkd.components.memory import SharedOptimizationMemory

        records = SharedOptimizationMemory.from_config(self.config).store.all()
        new = [
            r for r in records if r.fingerprint == fingerprint and r.run_id not in before.own_runs
        ]
        if len(new) != 1:
            return None
        data = new[0].to_dict()
        data.pop("run_id", None)
        data.pop("created_at", None)
        return data

    def store(
        self,
        files: Mapping[str, bytes],
        lines: Sequence[str],
        method: str,
        fingerprint: str,
        before: MemoryState | None,
        seconds: float,
    ) -> bool:
        """Store a finished cold run; returns whether it was stored.

        ``before`` is :meth:`memory_state` when the run started, None when the run did
        not use the memory. Not stored when the cache is off, or when another run on
        other data was added to the memory while this one ran, or when this run's own
        memory record cannot be told apart.
        """
        if not self.enabled:
            return False
        record = None
        if before is not None:
            after = self.memory_state(fingerprint)
            if after is None or after.other_runs != before.other_runs:
                return False
            record = self.new_memory_record(fingerprint, before)
            if record is None:
                return False
        self.cache.put(
            self.key,
            RunCacheEntry(
                files=dict(files),
                lines=tuple(lines),
                method=method,
                fingerprint=fingerprint,
                memory=before.other_runs if before is not None else None,
                memory_record=record,
                created_at=time.time(),
                seconds=float(seconds),
            ),
        )
        return True

    def remember_again(self, entry: RunCacheEntry) -> None:
        """Record a served rerun in the memory, as a rerun that trains would."""
        if entry.memory_record is None or not self.config.use_memory:
            return
        from hpmkd.components.memory import SharedOptimizationMemory
        from hpmkd.components.memory_store import RunMemoryRecord

        data = {**entry.memory_record, "run_id": uuid.uuid4().hex, "created_at": time.time()}
        store = SharedOptimizationMemory.from_config(self.config).store
        store.add(RunMemoryRecord.from_dict(data))

    def close(self) -> None:
        """Close the cache connection (if opened)."""
        if self._cache is not None:
            self._cache.close()
