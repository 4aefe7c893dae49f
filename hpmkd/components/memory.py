"""``SharedOptimizationMemory``: what past runs learned, to warm-start new ones.

Every finished run records its dataset's meta-features, the selection metric and the
validation scores of the configurations it tried. A new run looks up past runs on
similar datasets (near in normalised meta-feature space, same metric) and tries their
best settings first.

Storage is separated from logic, as in Optuna, and lives in
:mod:`hpmkd.components.memory_store` (re-exported here): :class:`MemoryStore` is a small
abstract interface with an in-memory backend (:class:`InMemoryStore`, nothing persists)
and a SQLite backend (:class:`SQLiteStore`, one file, safe for many processes). Records
are frozen, plain data (JSON inside the store); live estimators never go into the memory.

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
Euclidean distance divided by ``sqrt(7)``: two runs on the same table are at ~0, a 1k-row
and a 1M-row table with otherwise equal features at ``(3/7)/sqrt(7) ~ 0.16``, and no two
real tables are farther apart than about 0.94 (10 vs 10M rows, 1 vs 10k features, no vs
only categorical and missing values, balanced vs without a minority, 2 vs 32 classes).

Similar enough to warm-start from
---------------------------------
A past run counts as similar when its distance is at most :data:`SIMILARITY_THRESHOLD`
(0.08). The figure comes from the development tables (``bench/memory_distances.py``,
tabled in ``docs/HPM.md``): a bootstrap resample, a random half or a random tenth of a
table lies at most 0.055 from it (a tenth of the rows alone is ``1/(7 sqrt 7) = 0.054``),
while different tables lie 0.109 to 0.406 apart, except the two wide, imbalanced
tables with a confident teacher (caravan insurance and mortgage applications, 0.057).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpmkd._version import __version__
from hpmkd.components.memory_store import (
    InMemoryStore,
    MemoryStore,
    RunMemoryRecord,
    SQLiteStore,
    _json_safe,
    _to_float,
)
from hpmkd.paths import hpmkd_home, private_dir

__all__ = [
    "META_FEATURE_SCALES",
    "SIMILARITY_THRESHOLD",
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

#: Largest meta-feature distance at which a past run is similar enough to warm-start from.
#: Measured with bench/memory_distances.py on the seven development tables (docs/HPM.md):
#: resamples of one table (bootstrap, half, tenth of the rows) lie at most 0.055 from it;
#: different tables lie 0.109-0.406 apart (median 0.196), except caravan insurance vs
#: mortgage applications (0.057: both wide, imbalanced, with a confident teacher). 0.08
#: accepts every resample with room to spare and rejects every pair of unlike tables; by
#: rows alone it is a factor of 30 (log10(30) / 7 / sqrt(7) = 0.080).
SIMILARITY_THRESHOLD = 0.08


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


def _short(run_id: str) -> str:
    """A past run as a reason names it: the start of its id, never its table's name
    (a shared memory holds other people's runs; the neighbours' records carry the name,
    where a server can leave it out: ``RunResult.without_server_details``)."""
    return run_id[:8]


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
        ``(family, capacity, temperature, alpha)``; the keys of
        :attr:`RunMemoryRecord.configs` (``val_score`` is the score on the *past*
        dataset) and ``run_id``, the past run that offered the setting.
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
    ...       "val_score": 0.41}])
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
            ``val_score`` (default NaN; NaN allowed, stored as null). Other keys (such
            as a trial's ``params``) are not stored: a warm start takes a setting, and
            phase 3 draws the hyper-parameter trials of that setting afresh.
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
            A value is not plain data (e.g. an estimator as ``family``).
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
        max_distance: float = SIMILARITY_THRESHOLD,
        metric: str | None = None,
    ) -> list[tuple[RunMemoryRecord, float]]:
        """Past runs on the most similar datasets.

        Parameters
        ----------
        meta_features : mapping
            Of the new dataset.
        k : int, default 3
            At most this many runs.
        max_distance : float, default SIMILARITY_THRESHOLD
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
        max_distance: float = SIMILARITY_THRESHOLD,
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
        max_distance : float, default SIMILARITY_THRESHOLD
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
                    f"no similar run: nearest is run {_short(nearest.run_id)} at distance "
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
            f"(nearest: run {_short(nearest.run_id)}, distance {nearest_distance:.2f})"
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
                    f"no warm start: the {len(chosen)} similar run(s) (nearest: run "
                    f"{_short(nearest.run_id)}, distance {nearest_distance:.2f}) have no "
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
            "capacity, temperature and alpha (val_score is optional)."
        )
    where = f"configs[{index}]"
    score = config.get("val_score")
    return {
        "family": _json_safe(config["family"], f"{where}['family']"),
        "capacity": _json_safe(config["capacity"], f"{where}['capacity']"),
        "temperature": float(config["temperature"]),
        "alpha": float(config["alpha"]),
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
        for index, configs in enumerate(per_run):
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
                out.append({**config, "run_id": chosen[index][0].run_id})
    return tuple(out)


def _version() -> str:
    return __version__


def _major(version: str) -> str:
    return str(version).split(".", 1)[0]
