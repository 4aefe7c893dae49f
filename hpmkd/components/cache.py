"""``IntelligentCache``: on-disk memoization of expensive steps.

Teacher probabilities and fitted candidates are slow to compute and identical for
identical inputs, so they are stored in a :mod:`diskcache` directory under a key made
from everything that determines them (data fingerprint, configuration, code and library
versions; see :meth:`IntelligentCache.make_key`). A hit skips the work.

Design notes
------------
* **Size limit and LRU eviction.** diskcache evicts only inside ``set`` and at most
  ``cull_limit`` rows at a time (default 10, oldest first), so with few large entries it
  can evict the entry it has just written, and a single large write can leave the cache
  over its limit. We therefore switch diskcache's own culling off (``cull_limit=0``) and
  evict ourselves after every write: least recently *used* first (a ``get`` refreshes an
  entry), one entry at a time until the cache is under its limit, never the entry just
  written and never a lock.
* **Accurate size.** Every value is written to its own file (``disk_min_file_size=0``):
  values kept inside SQLite would leave the database file at its high-water mark after
  eviction (SQLite does not shrink it), so the measured size would never drop and
  eviction would empty the cache.
* **Duplicate work.** Concurrent identical work (threads or processes) runs once:
  check, take a lock stored in the cache itself (``diskcache.Cache.add`` is atomic
  across processes), check again, compute, store, release. A lock left by a process that
  died is broken as soon as a waiter notices its owner is gone (same host), and expires
  after ``lock_expire_s`` in any case.
* **Trust.** Values are pickles and reading a pickle runs code, so the directory is made
  private (0700) and only values this library computed are ever stored; never route
  user-uploaded bytes through the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
import pickle
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Any, TypeVar

import diskcache

from hpmkd._version import __version__
from hpmkd.paths import hpmkd_home, private_dir

__all__ = ["IntelligentCache"]

T = TypeVar("T")

_MISSING = object()
_LOCK_PREFIX = "lock:"
# Libraries whose version changes what a cached value means (pickled estimators,
# numerical results): a new version must miss rather than unpickle stale objects.
_VERSIONED_LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm")
# Errors that unpickling an entry written by other code versions can raise; such an
# entry is dropped and recomputed rather than failing the run.
_STALE_ENTRY_ERRORS = (
    pickle.UnpicklingError,
    AttributeError,
    ImportError,
    EOFError,
    IndexError,
    TypeError,
    ValueError,
)


class IntelligentCache:
    """Memoize expensive steps on disk, with a size limit and LRU eviction.

    Parameters
    ----------
    directory : str or Path, optional
        Cache directory; default ``hpmkd_home() / "cache"``. It is created and made
        private (0700) because values are pickles.
    size_limit_bytes : int, default 2 GiB
        Once the cache is larger, the least recently used entries are evicted (never
        the one just written, even if it alone exceeds the limit).
    enabled : bool, default True
        When False no directory is created, nothing is stored and every call computes.
    lock_expire_s : float, default 3600
        A lock for work in progress expires after this long, so a stuck or vanished
        worker on another host cannot block others for ever (they then repeat the work).

    Attributes
    ----------
    hits : int
        Calls of :meth:`get_or_compute` on this instance answered from the cache.
    misses : int
        Calls of :meth:`get_or_compute` on this instance that computed the value.
    directory : Path or None
        The cache directory (None when disabled).

    Notes
    -----
    Instances are not picklable: in a worker process open a new ``IntelligentCache`` on
    the same directory; the cache is shared safely between processes.

    Examples
    --------
    >>> cache = IntelligentCache(tmp_dir)  # doctest: +SKIP
    >>> key = IntelligentCache.make_key("teacher_proba", dataset.fingerprint())  # doctest: +SKIP
    >>> proba, hit = cache.get_or_compute(key, lambda: teacher.predict_proba(X))  # doctest: +SKIP
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        size_limit_bytes: int = 2 * 1024**3,
        enabled: bool = True,
        lock_expire_s: float = 3600.0,
    ) -> None:
        if int(size_limit_bytes) <= 0:
            raise ValueError(f"size_limit_bytes={size_limit_bytes!r} must be positive.")
        self.enabled = bool(enabled)
        self.size_limit_bytes = int(size_limit_bytes)
        self.lock_expire_s = float(lock_expire_s)
        self.hits = 0
        self.misses = 0
        self._counter_lock = threading.Lock()
        self._cache: diskcache.Cache | None = None
        self.directory: Path | None = None
        if not self.enabled:
            return
        self.directory = private_dir(directory if directory is not None else hpmkd_home() / "cache")
        self._cache = diskcache.Cache(
            str(self.directory),
            size_limit=self.size_limit_bytes,
            eviction_policy="least-recently-used",
            cull_limit=0,  # we evict ourselves; see the module notes
            disk_min_file_size=0,  # every value in a file, so eviction frees space
        )
        # The limit may have been lowered since the cache was last used.
        self._evict(keep=None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: Any) -> IntelligentCache:
        """Open the cache a configuration asks for.

        Parameters
        ----------
        config : HPMConfig
            Uses ``use_cache``, ``cache_dir`` and ``cache_size_limit_gb``.

        Returns
        -------
        IntelligentCache
        """
        return cls(
            directory=config.cache_dir,
            size_limit_bytes=int(float(config.cache_size_limit_gb) * 1024**3),
            enabled=bool(config.use_cache),
        )

    # ------------------------------------------------------------------ keys
    @staticmethod
    def make_key(kind: str, *parts: Any) -> str:
        """A stable key for a step: SHA-256 over its kind, inputs and code versions.

        Parameters
        ----------
        kind : str
            What is cached, e.g. ``"teacher_proba"`` or ``"candidate"``.
        *parts
            Everything the value depends on: ``str``, ``int``, ``float``, ``bool``,
            ``None``, ``bytes``, ``tuple``/``list`` (treated alike), ``set``, ``dict``
            (key order does not matter), ``numpy`` arrays and scalars (dtype, shape and
            bytes), ``pandas`` Series/DataFrames, paths and dataclass instances, nested
            freely. Floats are encoded exactly (``repr``), so ``0.1`` and ``0.1000001``
            differ, and ``1`` (int) differs from ``1.0`` (float).

        Returns
        -------
        str
            64 hexadecimal characters. It also covers the hpmkd, numpy, pandas,
            scikit-learn and lightgbm versions, so upgrading any of them misses instead
            of unpickling objects written by another version.

        Raises
        ------
        TypeError
            For a part of another type (its ``repr`` may not be stable): pass a
            fingerprint or plain values instead.
        """
        digest = hashlib.sha256()
        digest.update(_encode(str(kind)))
        digest.update(_encode(_code_versions()))
        digest.update(_encode(list(parts)))
        return digest.hexdigest()

    # ------------------------------------------------------------------ main entry
    def get_or_compute(self, key: str, compute: Callable[[], T]) -> tuple[T, bool]:
        """Return the cached value of ``key``, computing and storing it on a miss.

        Parameters
        ----------
        key : str
            From :meth:`make_key`.
        compute : callable
            Called without arguments on a miss. Concurrent calls with the same key (from
            threads or processes sharing the directory) compute it once; the others wait
            and read the stored value.

        Returns
        -------
        value : object
            The cached or freshly computed value.
        from_cache : bool
            Whether the value came from the cache.

        Notes
        -----
        An entry that cannot be read back (written by incompatible code) is dropped and
        recomputed. A value that cannot be stored (not picklable, disk full) is returned
        anyway with a ``RuntimeWarning``.
        """
        if self._cache is None:
            self._count(hit=False)
            return compute(), False
        value = self._read(key)
        if value is not _MISSING:
            self._count(hit=True)
            return value, True
        token = self._acquire(key)
        try:
            # Someone else may have computed it while we waited for the lock.
            value = self._read(key)
            if value is not _MISSING:
                self._count(hit=True)
                return value, True
            value = compute()
            self._store(key, value)
        finally:
            self._release(key, token)
        self._count(hit=False)
        return value, False

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value of ``key``, or ``default``; never computes.

        A read refreshes the entry for LRU eviction; the hit and miss counters of
        :meth:`get_or_compute` are not touched. An entry that cannot be read back is
        dropped and ``default`` returned.
        """
        if self._cache is None:
            return default
        value = self._read(key)
        return default if value is _MISSING else value

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` (replacing it), then evict beyond the size limit.

        Does nothing when the cache is disabled; a value that cannot be stored gives a
        ``RuntimeWarning`` and is dropped.
        """
        if self._cache is not None:
            self._store(key, value)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is stored (does not count as a use for LRU eviction)."""
        return self._cache is not None and key in self._cache

    # ------------------------------------------------------------------ housekeeping
    def stats(self) -> dict[str, Any]:
        """Counters and size, as plain data for progress displays and reports.

        Returns
        -------
        dict
            ``enabled``, ``hits``, ``misses`` (this instance), ``directory`` (str or
            None), ``size_bytes`` (on disk, 0 when disabled), ``size_limit_bytes``.
        """
        return {
            "enabled": self.enabled,
            "hits": self.hits,
            "misses": self.misses,
            "directory": str(self.directory) if self.directory is not None else None,
            "size_bytes": int(self._cache.volume()) if self._cache is not None else 0,
            "size_limit_bytes": self.size_limit_bytes,
        }

    def clear(self) -> None:
        """Delete every stored entry (the counters are kept)."""
        if self._cache is not None:
            self._cache.clear(retry=True)

    def close(self) -> None:
        """Close this thread's database connection; the cache reopens on next use."""
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> IntelligentCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # A pickled copy would carry open SQLite connections and per-instance counters.
        raise TypeError(
            "IntelligentCache cannot be pickled: in a worker process open "
            "IntelligentCache(directory) on the same directory instead (it is process-safe)."
        )

    def __repr__(self) -> str:
        where = str(self.directory) if self.directory is not None else "disabled"
        return f"IntelligentCache({where!r}, size_limit_bytes={self.size_limit_bytes})"

    # ------------------------------------------------------------------ internals
    def _count(self, hit: bool) -> None:
        with self._counter_lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def _read(self, key: str) -> Any:
        assert self._cache is not None
        try:
            return self._cache.get(key, default=_MISSING, retry=True)
        except _STALE_ENTRY_ERRORS:
            self._cache.delete(key, retry=True)
            return _MISSING

    def _store(self, key: str, value: Any) -> None:
        assert self._cache is not None
        try:
            self._cache.set(key, value, retry=True)
        except (pickle.PicklingError, TypeError, AttributeError, OSError) as exc:
            warnings.warn(
                f"hpmkd cache: could not store a {type(value).__name__} ({exc}); "
                "it will be computed again next time.",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        self._evict(keep=key)

    def _evict(self, keep: str | None) -> None:
        """Evict least recently used entries until the cache fits its limit."""
        assert self._cache is not None
        cache = self._cache
        cache.expire(retry=True)  # drop expired locks left by vanished workers
        # Bounded so a concurrent writer cannot keep us here for ever.
        for _ in range(len(cache) + 1):
            if cache.volume() <= self.size_limit_bytes:
                return
            # diskcache has no public "least recently used key" query; this is the
            # same ordering its own culling uses (access_time is refreshed by get).
            row = cache._sql(
                "SELECT key FROM Cache WHERE raw = 1 AND key != ?"
                " AND substr(key, 1, ?) != ? ORDER BY access_time LIMIT 1",
                (keep or "", len(_LOCK_PREFIX), _LOCK_PREFIX),
            ).fetchone()
            if row is None:
                return
            cache.delete(row[0], retry=True)

    def _acquire(self, key: str) -> str:
        """Take the lock of ``key``; return the token that proves ownership."""
        assert self._cache is not None
        lock_key = _LOCK_PREFIX + key
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        delay = 0.002
        while not self._cache.add(lock_key, token, expire=self.lock_expire_s, retry=True):
            self._break_if_orphaned(lock_key)
            # Back off: the holder may train a model for minutes.
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return token

    def _release(self, key: str, token: str) -> None:
        assert self._cache is not None
        lock_key = _LOCK_PREFIX + key
        # Only delete our own lock: it may have expired and been taken by another worker.
        with self._cache.transact(retry=True):
            if self._cache.get(lock_key, retry=True) == token:
                self._cache.delete(lock_key, retry=True)

    def _break_if_orphaned(self, lock_key: str) -> None:
        """Delete a lock whose owner process on this host no longer exists."""
        assert self._cache is not None
        holder = self._cache.get(lock_key, retry=True)
        if not isinstance(holder, str) or not _owner_is_gone(holder):
            return
        with self._cache.transact(retry=True):
            if self._cache.get(lock_key, retry=True) == holder:
                self._cache.delete(lock_key, retry=True)


def _owner_is_gone(token: str) -> bool:
    host, _, rest = token.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or os.name != "posix":
        return False  # cannot tell for another host; the lock's expiry covers it
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by another user
    return False


@lru_cache(maxsize=1)
def _code_versions() -> tuple[tuple[str, str], ...]:
    versions = [("hpmkd", __version__)]
    for name in _VERSIONED_LIBRARIES:
        try:
            versions.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((name, "absent"))
    return tuple(versions)


def _frame(tag: bytes, payload: bytes) -> bytes:
    # Tag plus length prefix: no two different values can concatenate to the same bytes.
    return tag + len(payload).to_bytes(8, "big") + payload


def _encode(obj: Any) -> bytes:
    """Stable, unambiguous bytes for a key part (see :meth:`IntelligentCache.make_key`)."""
    # NumPy and pandas are looked up, not imported: an object of theirs cannot exist
    # unless they are loaded, and the command line makes keys before (or without) them.
    np = sys.modules.get("numpy")
    if obj is None:
        return _frame(b"N", b"")
    if np is not None:
        if isinstance(obj, np.bool_):
            obj = bool(obj)
        elif isinstance(obj, (np.integer, np.floating)) and not isinstance(obj, float):
            obj = obj.item()  # np.int64(3) and 3 mean the same thing
    if isinstance(obj, bool):
        return _frame(b"B", b"1" if obj else b"0")
    if isinstance(obj, int):
        return _frame(b"I", str(obj).encode())
    if isinstance(obj, float):
        return _frame(b"F", repr(float(obj)).encode())  # repr round-trips exactly
    if isinstance(obj, str):
        return _frame(b"S", obj.encode("utf-8", "surrogatepass"))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _frame(b"Y", bytes(obj))
    if isinstance(obj, (list, tuple)):
        return _frame(b"L", b"".join(_encode(item) for item in obj))
    if isinstance(obj, (set, frozenset)):
        return _frame(b"E", b"".join(sorted(_encode(item) for item in obj)))
    if isinstance(obj, dict):
        pairs = sorted((_encode(k), _encode(v)) for k, v in obj.items())
        return _frame(b"D", b"".join(k + v for k, v in pairs))
    if np is not None and isinstance(obj, (np.ndarray, np.generic)):
        return _encode_array(np.asarray(obj))
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(obj, pd.DataFrame):
        columns = [(str(c), str(obj[c].dtype)) for c in obj.columns]
        hashed = pd.util.hash_pandas_object(obj, index=True).to_numpy()
        return _frame(b"P", _encode(columns) + _encode(hashed))
    if pd is not None and isinstance(obj, pd.Series):
        hashed = pd.util.hash_pandas_object(obj, index=True).to_numpy()
        return _frame(b"R", _encode([str(obj.name), str(obj.dtype)]) + _encode(hashed))
    if isinstance(obj, PurePath):
        return _frame(b"H", str(obj).encode("utf-8", "surrogatepass"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        return _frame(b"C", _encode(name) + _encode(fields))
    raise TypeError(
        f"IntelligentCache.make_key cannot hash a {type(obj).__name__}: its repr is not "
        "stable. Pass a fingerprint (e.g. DistillationDataset.fingerprint()) or plain "
        "values (str, numbers, tuples, dicts, numpy arrays)."
    )


def _encode_array(array: Any) -> bytes:
    import numpy as np  # loaded already: the array is one of its objects

    header = _encode([array.dtype.str, list(array.shape)])
    if array.dtype.hasobject:
        # Object arrays hold pointers: hash the elements, not the raw buffer.
        return _frame(b"O", header + _encode(array.ravel().tolist()))
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).digest()
    return _frame(b"A", header + digest)
