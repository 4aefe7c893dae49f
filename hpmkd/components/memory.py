"""``SharedOptimizationMemory``: what past runs learned, to warm-start new ones.

Every finished run records its dataset's meta-features, the selection metric and the
validation scores of the configurations it tried. A new run looks up past runs on
similar datasets (near in normalised meta-feature space, same metric) and tries their
best settings first.

Storage is separated from logic, as in Optuna: :class:`MemoryStore` is a small abstract
interface with an in-memory backend (:class:`InMemoryStore`, nothing persists) and a
SQLite backend (:class:`SQLiteStore`, one file, safe for many processes). Records are
frozen, plain data (JSON inside the store); live estimators never go into the memory.

Distance between datasets
-------------------------
Each meta-feature is mapped to a scale on which 1 is "very different":

=====================  =====================================  ======================
meta-feature           normalised value                       why
=====================  =====================================  ======================
``rows``               ``log10(rows) / 7``                    10 rows .. 10M rows
``features``           ``log10(features + 1) / 4``            1 .. 10k features
``categorical_share``  as is                                  already in [0, 1]
``missing_share``      as is                                  already in [0, 1]
``minority_share``     ``2 * minority_share``                 at most 0.5 -> [0, 1]
``n_classes``          ``log2(n_classes) / 5``                2 .. 32 classes
``teacher_confidence`` as is                                  in [1/k, 1]
=====================  =====================================  ======================

A missing or non-finite value (e.g. ``teacher_confidence`` without a teacher) becomes
0.5, the middle of the scale, so it neither attracts nor repels. The distance is the
Euclidean distance divided by ``sqrt(7)``, so it lies roughly in [0, 1]: two runs on the
same table are at ~0, a 1k-row and a 1M-row table with otherwise equal features at
``(3/7)/sqrt(7) ~ 0.16``.
"""

from __future__ import annotations

import abc
import json
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpmkd._version import __version__
from hpmkd.paths import hpmkd_home, private_dir

__all__ = [
    "META_FEATURE_SCALES",
    "InMemoryStore",
    "MemoryStore",
    "RunMemoryRecord",
    "SQLiteStore",
    "SharedOptimizationMemory",
    "WarmStart",
    "meta_feature_distance",
    "normalise_meta_features",
]

# name -> function mapping the raw value to its normalised scale (see module docstring).
META_FEATURE_SCALES: dict[str, Any] = {
    "rows": lambda v: math.log10(max(v, 1.0)) / 7.0,
    "features": lambda v: math.log10(max(v, 0.0) + 1.0) / 4.0,
    "categorical_share": lambda v: v,
    "missing_share": lambda v: v,
    "minority_share": lambda v: 2.0 * v,
    "n_classes": lambda v: math.log2(max(v, 1.0)) / 5.0,
    "teacher_confidence": lambda v: v,
}
_NEUTRAL = 0.5
_CONFIG_KEYS = ("family", "capacity", "temperature", "alpha", "params", "val_score")
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
        ``capacity``, ``temperature``, ``alpha``, ``params`` (dict) and ``val_score``.
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
    config = dict(data)
    for name in ("temperature", "alpha", "val_score"):
        config[name] = _to_float(config.get(name))
    config["params"] = dict(config.get("params") or {})
    return config


def _json_safe(value: Any, where: str = "value") -> Any:
    """Plain JSON data: numpy scalars unwrapped, tuples as lists, NaN/inf as None.

    Raises ``TypeError`` for anything else (e.g. a fitted estimator in ``params``): the
    memory holds plain data only.
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


# ---------------------------------------------------------------------- distance
def normalise_meta_features(meta_features: Mapping[str, Any]) -> np.ndarray:
    """Meta-features on comparable scales (see the module docstring).

    Parameters
    ----------
    meta_features : mapping
        Raw values; unknown keys are ignored, missing or non-finite ones become 0.5.

    Returns
    -------
    ndarray of shape (7,)
        In the order of :data:`META_FEATURE_SCALES`.
    """
    out = np.full(len(META_FEATURE_SCALES), _NEUTRAL)
    for i, (name, scale) in enumerate(META_FEATURE_SCALES.items()):
        raw = meta_features.get(name)
        try:
            value = float(raw) if raw is not None else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if math.isfinite(value):
            out[i] = scale(value)
    return out


def meta_feature_distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Distance between two datasets' meta-features, roughly in [0, 1].

    Euclidean distance of :func:`normalise_meta_features` divided by ``sqrt(7)``.
    """
    va, vb = normalise_meta_features(a), normalise_meta_features(b)
    return float(np.linalg.norm(va - vb) / math.sqrt(len(va)))


# ---------------------------------------------------------------------- warm start
@dataclass(frozen=True)
class WarmStart:
    """What the memory suggests for a new run, and why.

    Parameters
    ----------
    used : bool
        Whether any past run was similar enough to warm-start from.
    reason : str
        One sentence for the run log and the report.
    configs : tuple of dict
        Settings to try first, best first, de-duplicated by
        ``(family, capacity, temperature, alpha)``; same keys as
        :attr:`RunMemoryRecord.configs` (``val_score`` is the score on the *past*
        dataset).
    neighbours : tuple of dict
        The similar runs used, nearest first: ``run_id``, ``dataset``, ``distance``,
        ``best_config``, ``best_val_metric``.
    """

    used: bool
    reason: str
    configs: tuple[dict, ...] = field(default_factory=tuple)
    neighbours: tuple[dict, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain data (NaN becomes ``None``)."""
        return {
            "used": self.used,
            "reason": self.reason,
            "configs": _json_safe([dict(c) for c in self.configs]),
            "neighbours": _json_safe([dict(n) for n in self.neighbours]),
        }


class SharedOptimizationMemory:
    """Persistent record of past runs that warm-starts configuration selection.

    Parameters
    ----------
    store : MemoryStore
        Where records live: :class:`SQLiteStore` to share across runs and processes,
        :class:`InMemoryStore` for a single run.

    Examples
    --------
    >>> memory = SharedOptimizationMemory(InMemoryStore())
    >>> _ = memory.record_run("credit", {"rows": 1000.0, "features": 20.0}, "ks",
    ...     [{"family": "lgbm", "capacity": "small", "temperature": 2.0, "alpha": 0.5,
    ...       "params": {}, "val_score": 0.41}])
    >>> memory.warm_start({"rows": 1100.0, "features": 20.0}, "ks").used
    True
    """

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    @classmethod
    def from_config(cls, config: Any) -> SharedOptimizationMemory:
        """Open the memory a configuration asks for.

        Parameters
        ----------
        config : HPMConfig
            ``use_memory`` True: a :class:`SQLiteStore` at
            ``<memory_dir or hpmkd_home()/"memory">/memory.sqlite`` (directory made
            private); False: an empty :class:`InMemoryStore`.

        Returns
        -------
        SharedOptimizationMemory
        """
        if not config.use_memory:
            return cls(InMemoryStore())
        directory = private_dir(config.memory_dir or hpmkd_home() / "memory")
        return cls(SQLiteStore(directory / "memory.sqlite"))

    # ------------------------------------------------------------------ writing
    def record_run(
        self,
        dataset: str,
        meta_features: Mapping[str, Any],
        metric: str,
        configs: Sequence[Mapping[str, Any]],
        fingerprint: str = "",
    ) -> RunMemoryRecord:
        """Record a finished run.

        Parameters
        ----------
        dataset : str
            Dataset name.
        meta_features : mapping of str to float
            ``DistillationDataset.meta_features()``; NaN allowed.
        metric : str
            Selection metric of the scores.
        configs : sequence of dict
            Configurations tried, **best first** (the order is kept), each with
            ``family``, ``capacity``, ``temperature``, ``alpha`` and optionally
            ``params`` (dict of plain values, default ``{}``) and ``val_score``
            (default NaN; NaN allowed, stored as null). Other keys are not stored.
        fingerprint : str, optional
            Data fingerprint, so a rerun on the same data can leave this run out.

        Returns
        -------
        RunMemoryRecord
            As stored; ``best_val_score`` is the first finite ``val_score`` (NaN if none).

        Raises
        ------
        ValueError
            A config lacks a required key or the metric is empty.
        TypeError
            A value is not plain data (e.g. an estimator in ``params``).
        """
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric must be a non-empty string, not {metric!r}.")
        clean = tuple(_clean_config(c, i) for i, c in enumerate(configs))
        finite = [c["val_score"] for c in clean if math.isfinite(c["val_score"])]
        meta = {
            str(k): _to_float(_json_safe(v, f"meta_features[{k!r}]"))
            for k, v in meta_features.items()
        }
        record = RunMemoryRecord(
            run_id=uuid.uuid4().hex,
            dataset=str(dataset),
            meta_features=meta,
            metric=metric,
            best_val_score=finite[0] if finite else math.nan,
            configs=clean,
            hpmkd_version=_version(),
            created_at=time.time(),
            fingerprint=str(fingerprint),
        )
        self.store.add(record)
        return record

    # ------------------------------------------------------------------ reading
    def neighbours(
        self,
        meta_features: Mapping[str, Any],
        k: int = 3,
        max_distance: float = 1.0,
        metric: str | None = None,
    ) -> list[tuple[RunMemoryRecord, float]]:
        """Past runs on the most similar datasets.

        Parameters
        ----------
        meta_features : mapping
            Of the new dataset.
        k : int, default 3
            At most this many runs.
        max_distance : float, default 1.0
            Only runs at most this far (see the module docstring for the scale).
        metric : str, optional
            Only runs that used this selection metric.

        Returns
        -------
        list of (RunMemoryRecord, float)
            Nearest first; ties go to the more recent run.
        """
        ranked = self._ranked(meta_features, metric)
        return [(r, d) for r, d in ranked if d <= max_distance][: max(int(k), 0)]

    def warm_start(
        self,
        meta_features: Mapping[str, Any],
        metric: str,
        k: int = 3,
        max_distance: float = 1.0,
        top_per_run: int = 3,
        exclude_fingerprint: str | None = None,
    ) -> WarmStart:
        """Settings to try first on a new dataset, from runs on similar ones.

        Parameters
        ----------
        meta_features : mapping
            Of the new dataset.
        metric : str
            Selection metric of the new run; only runs with the same metric count.
        k : int, default 3
            Similar runs to draw from.
        max_distance : float, default 1.0
            Farther runs are not similar enough.
        top_per_run : int, default 3
            Best configurations taken from each similar run.

        Returns
        -------
        WarmStart
            ``configs`` interleave the runs by rank, nearest run first within a rank
            (the best of every similar run, then the second best, ...): scores of
            different datasets are not comparable, but ranks within a run are.
            Configurations with an undefined (NaN) score are skipped.
        exclude_fingerprint : str, optional
            Leave out runs on exactly this data: a rerun on the same data then makes the
            same decisions as the first run (and is served by the cache), instead of
            warm-starting from itself.
        """
        records = self.store.all()
        if exclude_fingerprint:
            records = [r for r in records if r.fingerprint != exclude_fingerprint]
        if not records:
            return WarmStart(
                used=False,
                reason="memory is empty"
                if not exclude_fingerprint
                else "memory holds no run on other data",
            )
        ranked = self._ranked(meta_features, metric, records)
        if not ranked:
            metrics = sorted({r.metric for r in records})
            return WarmStart(
                used=False,
                reason=(
                    f"no past run selected by {metric!r} (memory holds {len(records)} "
                    f"run(s) selected by {', '.join(metrics)})"
                ),
            )
        nearest, nearest_distance = ranked[0]
        if nearest_distance > max_distance:
            return WarmStart(
                used=False,
                reason=(
                    f"no similar run: nearest is {nearest.dataset} at distance "
                    f"{nearest_distance:.2f}, above max_distance {max_distance:.2f}"
                ),
            )
        chosen = [(r, d) for r, d in ranked if d <= max_distance][: max(int(k), 1)]
        configs = _interleave_configs(chosen, top_per_run)
        neighbours = tuple(
            {
                "run_id": r.run_id,
                "dataset": r.dataset,
                "distance": d,
                "best_config": dict(r.configs[0]) if r.configs else None,
                "best_val_metric": r.best_val_score,
            }
            for r, d in chosen
        )
        reason = (
            f"warm start from {len(chosen)} similar run{'s' if len(chosen) != 1 else ''} "
            f"(nearest: {nearest.dataset}, distance {nearest_distance:.2f})"
        )
        other_major = [r for r, _ in chosen if _major(r.hpmkd_version) != _major(_version())]
        if other_major:
            versions = ", ".join(sorted({r.hpmkd_version for r in other_major}))
            reason += (
                f"; {len(other_major)} of them recorded by hpmkd {versions} "
                "(another major version), still used"
            )
        if not configs:
            return WarmStart(
                used=False,
                reason=(
                    f"no warm start: the {len(chosen)} similar run(s) (nearest: "
                    f"{nearest.dataset}, distance {nearest_distance:.2f}) have no "
                    "configuration with a defined validation score"
                ),
                neighbours=neighbours,
            )
        return WarmStart(used=True, reason=reason, configs=configs, neighbours=neighbours)

    def __len__(self) -> int:
        return len(self.store)

    def __repr__(self) -> str:
        return f"SharedOptimizationMemory({self.store!r})"

    def _ranked(
        self,
        meta_features: Mapping[str, Any],
        metric: str | None,
        records: Iterable[RunMemoryRecord] | None = None,
    ) -> list[tuple[RunMemoryRecord, float]]:
        if records is None:
            records = self.store.all()
        query = normalise_meta_features(meta_features)
        scored = []
        for record in records:
            if metric is not None and record.metric != metric:
                continue
            diff = normalise_meta_features(record.meta_features) - query
            scored.append((record, float(np.linalg.norm(diff) / math.sqrt(len(query)))))
        # Nearest first; on a tie prefer the newer run, then a fixed order.
        scored.sort(key=lambda rd: (rd[1], -rd[0].created_at, rd[0].run_id))
        return scored


def _clean_config(config: Mapping[str, Any], index: int) -> dict[str, Any]:
    missing = [k for k in ("family", "capacity", "temperature", "alpha") if k not in config]
    if missing:
        raise ValueError(
            f"configs[{index}] lacks {', '.join(missing)}; each config needs family, "
            "capacity, temperature and alpha (params and val_score are optional)."
        )
    where = f"configs[{index}]"
    params = config.get("params") or {}
    if not isinstance(params, Mapping):
        raise TypeError(f"{where}['params'] must be a dict, not {type(params).__name__}.")
    score = config.get("val_score")
    return {
        "family": _json_safe(config["family"], f"{where}['family']"),
        "capacity": _json_safe(config["capacity"], f"{where}['capacity']"),
        "temperature": float(config["temperature"]),
        "alpha": float(config["alpha"]),
        "params": _json_safe(dict(params), f"{where}['params']"),
        "val_score": math.nan if score is None else float(score),
    }


def _interleave_configs(
    chosen: list[tuple[RunMemoryRecord, float]], top_per_run: int
) -> tuple[dict, ...]:
    per_run = [
        [c for c in record.configs if math.isfinite(c["val_score"])][: max(int(top_per_run), 0)]
        for record, _ in chosen
    ]
    seen: set[tuple] = set()
    out = []
    for rank in range(max((len(p) for p in per_run), default=0)):
        for configs in per_run:
            if rank >= len(configs):
                continue
            config = configs[rank]
            identity = (
                json.dumps(config["family"]),
                json.dumps(config["capacity"]),
                config["temperature"],
                config["alpha"],
            )
            if identity not in seen:
                seen.add(identity)
                out.append(dict(config))
    return tuple(out)


def _version() -> str:
    return __version__


def _major(version: str) -> str:
    return str(version).split(".", 1)[0]
