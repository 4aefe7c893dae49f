"""Where :class:`~hpmkd.components.memory.SharedOptimizationMemory` keeps its records.

:class:`RunMemoryRecord` is one past run as frozen, plain data (JSON inside the store).
:class:`MemoryStore` is the small abstract storage interface, as in Optuna, with an
in-memory backend (:class:`InMemoryStore`, nothing persists) and a SQLite backend
(:class:`SQLiteStore`, one file, safe for many threads and processes). Both keep records
as JSON text, so they return the same values. Live estimators never go into the memory:
:func:`_json_safe` refuses anything but plain data.
"""

from __future__ import annotations

import abc
import json
import math
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "InMemoryStore",
    "MemoryStore",
    "RunMemoryRecord",
    "SQLiteStore",
]

#: The keys of a stored configuration. Records written before the memory stopped storing
#: trial hyper-parameters also hold ``params``; it is dropped on reading (warm starts
#: never used it: they take the setting, and phase 3 draws its trials afresh).
_CONFIG_KEYS = ("family", "capacity", "temperature", "alpha", "val_score")
_SCHEMA_VERSION = 1


# ---------------------------------------------------------------------- records
@dataclass(frozen=True)
class RunMemoryRecord:
    """One past run, as stored in the memory.

    Parameters
    ----------
    run_id : str
        Unique id (a UUID4 hex string).
    dataset : str
        Dataset name, for people reading warm-start reasons.
    meta_features : dict of str to float
        As from ``DistillationDataset.meta_features()``; NaN allowed.
    metric : str
        Selection metric the scores are in (higher is better).
    best_val_score : float
        Validation score of the best configuration (NaN when none was defined).
    configs : tuple of dict
        Configurations tried, best first, each with exactly the keys ``family``,
        ``capacity``, ``temperature``, ``alpha`` and ``val_score``.
    hpmkd_version : str
        Version of hpmkd that wrote the record.
    created_at : float
        Unix time of recording.
    fingerprint : str
        ``DistillationDataset.fingerprint()`` of the run's data ("" if unknown).

    Notes
    -----
    Frozen, but the dicts inside are ordinary dicts; stores hand out fresh copies, so
    changing them never changes the memory. Records are not hashable.
    """

    run_id: str
    dataset: str
    meta_features: dict[str, float]
    metric: str
    best_val_score: float
    configs: tuple[dict, ...]
    hpmkd_version: str
    created_at: float
    fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready plain data (non-finite numbers become ``None``)."""
        return {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "meta_features": _json_safe(dict(self.meta_features)),
            "metric": self.metric,
            "best_val_score": _json_safe(self.best_val_score),
            "configs": _json_safe([dict(c) for c in self.configs]),
            "hpmkd_version": self.hpmkd_version,
            "created_at": self.created_at,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunMemoryRecord:
        """Inverse of :meth:`to_dict` (``None`` scores and meta-features read as NaN)."""
        return cls(
            run_id=str(data["run_id"]),
            dataset=str(data["dataset"]),
            meta_features={str(k): _to_float(v) for k, v in data["meta_features"].items()},
            metric=str(data["metric"]),
            best_val_score=_to_float(data["best_val_score"]),
            configs=tuple(_config_from_json(c) for c in data["configs"]),
            hpmkd_version=str(data["hpmkd_version"]),
            created_at=float(data["created_at"]),
            fingerprint=str(data.get("fingerprint", "")),
        )


def _to_float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _config_from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    # Only the known keys: an older record's ``params`` (never used) is left behind.
    config = {k: data.get(k) for k in _CONFIG_KEYS}
    for name in ("temperature", "alpha", "val_score"):
        config[name] = _to_float(config.get(name))
    return config


def _json_safe(value: Any, where: str = "value") -> Any:
    """Plain JSON data: numpy scalars unwrapped, tuples as lists, NaN/inf as None.

    Raises ``TypeError`` for anything else (e.g. a fitted estimator): the memory holds
    plain data only.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"The optimization memory stores plain data only; {where} is a "
        f"{type(value).__name__}. Record numbers, strings, lists and dicts."
    )


# ---------------------------------------------------------------------- stores
class MemoryStore(abc.ABC):
    """Where run records live. Every backend passes the same contract tests.

    Records come back in the order they were added. ``add`` refuses a ``run_id`` that
    is already stored (``ValueError``).
    """

    @abc.abstractmethod
    def add(self, record: RunMemoryRecord) -> None:
        """Store ``record``."""

    @abc.abstractmethod
    def all(self) -> list[RunMemoryRecord]:
        """Every stored record, oldest first."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of stored records."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Delete every record."""


class InMemoryStore(MemoryStore):
    """Records in this process only; gone when the object is.

    Records are kept as their JSON text, exactly like :class:`SQLiteStore`, so both
    backends return the same values (NaN round trips, fresh dicts on every read).
    """

    def __init__(self) -> None:
        self._rows: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, record: RunMemoryRecord) -> None:
        """Store ``record`` (``ValueError`` if its ``run_id`` is already stored)."""
        text = _dumps(record)
        with self._lock:
            if record.run_id in self._rows:
                raise ValueError(f"run_id {record.run_id!r} is already in the memory.")
            self._rows[record.run_id] = text

    def all(self) -> list[RunMemoryRecord]:
        """Every stored record, oldest first."""
        with self._lock:
            texts = list(self._rows.values())
        return [_loads(t) for t in texts]

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        """Delete every record."""
        with self._lock:
            self._rows.clear()

    def __repr__(self) -> str:
        return f"InMemoryStore({len(self)} runs)"


class SQLiteStore(MemoryStore):
    """Records in one SQLite file, shared safely by threads and processes.

    Parameters
    ----------
    path : str or Path
        Database file; created (with its parent directories) if missing.
    timeout_s : float, default 30
        How long a writer waits for another one before failing.

    Notes
    -----
    WAL journal mode lets readers proceed while one process writes; each write is one
    ``BEGIN IMMEDIATE`` transaction and a busy timeout makes concurrent writers queue
    instead of failing. A connection is opened per operation, so the object can be used
    from any thread and after ``fork``. SQLite's locking needs a local file system
    (not NFS).
    """

    def __init__(self, path: str | Path, timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser().absolute()
        self.timeout_s = float(timeout_s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            self._enable_wal(con)
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(
                    "CREATE TABLE IF NOT EXISTS runs ("
                    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                    " run_id TEXT NOT NULL UNIQUE,"
                    " metric TEXT NOT NULL,"
                    " created_at REAL NOT NULL,"
                    " record TEXT NOT NULL)"
                )
                version = con.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    con.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                elif version > _SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{self.path} was written by a newer hpmkd (memory schema "
                        f"{version}); upgrade hpmkd or use another memory_dir."
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _enable_wal(self, con: Any) -> None:
        """Switch the file to WAL (persistent, idempotent).

        Changing the journal mode needs an exclusive lock and SQLite may answer "database
        is locked" without waiting when several processes open a new file at once, so
        the switch is retried until the busy timeout.
        """
        deadline = time.monotonic() + self.timeout_s
        delay = 0.01
        while True:
            try:
                con.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _connect(self) -> _Connection:
        return _Connection(self.path, self.timeout_s)

    def add(self, record: RunMemoryRecord) -> None:
        """Store ``record`` in one transaction (``ValueError`` if ``run_id`` exists)."""
        text = _dumps(record)
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(
                    "INSERT INTO runs (run_id, metric, created_at, record) VALUES (?, ?, ?, ?)",
                    (record.run_id, record.metric, record.created_at, text),
                )
            except sqlite3.IntegrityError as exc:
                con.execute("ROLLBACK")
                raise ValueError(f"run_id {record.run_id!r} is already in the memory.") from exc
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def all(self) -> list[RunMemoryRecord]:
        """Every stored record, oldest first."""
        with self._connect() as con:
            rows = con.execute("SELECT record FROM runs ORDER BY seq").fetchall()
        return [_loads(text) for (text,) in rows]

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def clear(self) -> None:
        """Delete every record."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM runs")
            con.execute("COMMIT")

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"


class _Connection:
    """A short-lived autocommit connection that is closed on exit (sqlite3's own
    context manager only commits, it never closes)."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a write is exactly
        # one transaction; timeout is SQLite's busy timeout.
        self._con = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None)

    def __enter__(self) -> sqlite3.Connection:
        return self._con

    def __exit__(self, *exc_info: object) -> None:
        self._con.close()


def _dumps(record: RunMemoryRecord) -> str:
    return json.dumps(record.to_dict(), allow_nan=False, sort_keys=True)


def _loads(text: str) -> RunMemoryRecord:
    return RunMemoryRecord.from_dict(json.loads(text))
