"""SharedOptimizationMemory: store contract (both backends), persistence, process safety,
neighbours and warm-start decisions."""

from __future__ import annotations

import json
import math
import multiprocessing
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from hpmkd.components.memory import (
    SIMILARITY_THRESHOLD,
    InMemoryStore,
    MemoryStore,
    RunMemoryRecord,
    SharedOptimizationMemory,
    SQLiteStore,
    WarmStart,
    meta_feature_distance,
    normalise_meta_features,
)
from hpmkd.config import HPMConfig
from hpmkd.paths import hpmkd_home

NAN = float("nan")

CREDIT = {
    "rows": 1000.0,
    "features": 20.0,
    "categorical_share": 0.65,
    "missing_share": 0.0,
    "minority_share": 0.3,
    "n_classes": 2.0,
    "teacher_confidence": 0.82,
}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPMKD_HOME", str(tmp_path / "home"))


def like(base: dict[str, float], **changes: float) -> dict[str, float]:
    return {**base, **changes}


def config(family: str, score: float, capacity: object = "small", t: float = 2.0, a: float = 0.5):
    return {"family": family, "capacity": capacity, "temperature": t, "alpha": a,
            "val_score": score}


def make_record(run_id: str = "r1", **changes: object) -> RunMemoryRecord:
    values: dict[str, object] = {
        "run_id": run_id,
        "dataset": "german_credit",
        "meta_features": dict(CREDIT, teacher_confidence=NAN),
        "metric": "ks",
        "best_val_score": 0.41,
        "configs": (config("lgbm", 0.41), config("tree", NAN, capacity=3)),
        "hpmkd_version": "0.1.0",
        "created_at": 1_700_000_000.25,
    }
    values.update(changes)
    return RunMemoryRecord(**values)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- store contract
STORES: dict[str, Callable[[Path], MemoryStore]] = {
    "in_memory": lambda tmp: InMemoryStore(),
    "sqlite": lambda tmp: SQLiteStore(tmp / "db" / "memory.sqlite"),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryStore]:
    yield STORES[request.param](tmp_path)


def assert_same_record(got: RunMemoryRecord, want: RunMemoryRecord) -> None:
    # NaN != NaN, so compare the JSON forms (NaN -> null) and check NaN where expected.
    assert json.dumps(got.to_dict(), sort_keys=True) == json.dumps(want.to_dict(), sort_keys=True)


def test_store_starts_empty(store: MemoryStore) -> None:
    assert len(store) == 0 and store.all() == []


def test_store_add_all_len_clear(store: MemoryStore) -> None:
    store.add(make_record("a"))
    store.add(make_record("b"))
    assert len(store) == 2
    assert [r.run_id for r in store.all()] == ["a", "b"]
    store.clear()
    assert len(store) == 0 and store.all() == []
    store.add(make_record("c"))
    assert [r.run_id for r in store.all()] == ["c"]


def test_store_round_trips_every_field_including_nan(store: MemoryStore) -> None:
    record = make_record("x", best_val_score=NAN)
    store.add(record)
    (got,) = store.all()
    assert isinstance(got, RunMemoryRecord)
    assert got.run_id == "x" and got.dataset == "german_credit" and got.metric == "ks"
    assert got.hpmkd_version == "0.1.0" and got.created_at == 1_700_000_000.25
    assert math.isnan(got.best_val_score)
    assert math.isnan(got.meta_features["teacher_confidence"])
    assert {k: v for k, v in got.meta_features.items() if k != "teacher_confidence"} == {
        k: v for k, v in CREDIT.items() if k != "teacher_confidence"
    }
    assert isinstance(got.configs, tuple) and len(got.configs) == 2
    first, second = got.configs
    assert first == config("lgbm", 0.41)
    assert second["capacity"] == 3 and math.isnan(second["val_score"])
    assert_same_record(got, record)


def test_store_reads_records_that_still_hold_params(store: MemoryStore) -> None:
    # Records written before the memory stopped storing trial hyper-parameters hold
    # "params" (never used by a warm start); they read back without it.
    old = {**config("lgbm", 0.41), "params": {"num_leaves": 15, "max_depth": None}}
    store.add(make_record("old", configs=(old,)))
    (got,) = store.all()
    assert got.configs == (config("lgbm", 0.41),)
    start = SharedOptimizationMemory(store).warm_start(
        dict(CREDIT, teacher_confidence=NAN), "ks")
    assert start.used and "params" not in start.configs[0]


def test_store_keeps_insertion_order(store: MemoryStore) -> None:
    ids = [f"run{i:02d}" for i in range(12)]
    # created_at deliberately not increasing: order is insertion order.
    for i, run_id in enumerate(ids):
        store.add(make_record(run_id, created_at=1000.0 - i))
    assert [r.run_id for r in store.all()] == ids


def test_store_refuses_a_duplicate_run_id(store: MemoryStore) -> None:
    store.add(make_record("dup"))
    with pytest.raises(ValueError, match="already in the memory"):
        store.add(make_record("dup", dataset="other"))
    assert len(store) == 1 and store.all()[0].dataset == "german_credit"


def test_store_hands_out_copies(store: MemoryStore) -> None:
    store.add(make_record("a"))
    got = store.all()[0]
    got.meta_features["rows"] = -1.0
    got.configs[0]["family"] = "changed"
    again = store.all()[0]
    assert again.meta_features["rows"] == 1000.0 and again.configs[0]["family"] == "lgbm"


# ---------------------------------------------------------------------- SQLite specifics
def test_sqlite_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    memory = SharedOptimizationMemory(SQLiteStore(path))
    recorded = memory.record_run("german_credit", CREDIT, "ks", [config("lgbm", 0.4)])
    reopened = SharedOptimizationMemory(SQLiteStore(path))
    assert len(reopened) == 1
    assert_same_record(reopened.store.all()[0], recorded)
    assert reopened.warm_start(CREDIT, "ks").used


def test_sqlite_uses_wal_and_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    SQLiteStore(path)
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        con.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    SQLiteStore(path)
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(RuntimeError, match="newer hpmkd"):
        SQLiteStore(path)


def _add_ten(path: str, worker: int, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]  # all four start writing together
    store = SQLiteStore(path)
    memory = SharedOptimizationMemory(store)
    for i in range(10):
        memory.record_run(f"w{worker}-{i}", CREDIT, "ks", [config("lgbm", i / 10)])


@pytest.mark.slow  # spawned workers each import hpmkd (sklearn): seconds
def test_sqlite_is_process_safe(tmp_path: Path) -> None:
    path = str(tmp_path / "shared" / "memory.sqlite")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_add_ten, args=(path, w, barrier)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)  # generous: imports are slow on a busy 2-core box
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    records = SQLiteStore(path).all()
    assert len(records) == 40
    assert len({r.run_id for r in records}) == 40
    assert sorted(r.dataset for r in records) == sorted(
        f"w{w}-{i}" for w in range(4) for i in range(10)
    )
    # Each worker's records keep their order.
    for w in range(4):
        mine = [r.dataset for r in records if r.dataset.startswith(f"w{w}-")]
        assert mine == [f"w{w}-{i}" for i in range(10)]


# ---------------------------------------------------------------------- from_config
def test_from_config_disk_and_in_memory(tmp_path: Path) -> None:
    on_disk = SharedOptimizationMemory.from_config(HPMConfig(memory_dir=str(tmp_path / "mem")))
    assert isinstance(on_disk.store, SQLiteStore)
    assert on_disk.store.path == tmp_path / "mem" / "memory.sqlite"
    assert stat.S_IMODE((tmp_path / "mem").stat().st_mode) == 0o700
    default = SharedOptimizationMemory.from_config(HPMConfig())
    assert default.store.path == hpmkd_home() / "memory" / "memory.sqlite"  # type: ignore[attr-defined]
    assert stat.S_IMODE((hpmkd_home() / "memory").stat().st_mode) == 0o700
    off = SharedOptimizationMemory.from_config(HPMConfig(use_memory=False, memory_dir="/nope"))
    assert isinstance(off.store, InMemoryStore) and not Path("/nope").exists()


# ---------------------------------------------------------------------- record_run
def test_record_run_cleans_and_validates() -> None:
    import numpy as np

    memory = SharedOptimizationMemory(InMemoryStore())
    record = memory.record_run(
        "d",
        {"rows": np.int64(500), "teacher_confidence": NAN},
        "auc",
        [
            {"family": "tree", "capacity": 4, "temperature": 1, "alpha": np.float32(0.5),
             "val_score": None, "trial": 3},
            {"family": "lgbm", "capacity": "small", "temperature": 2.0, "alpha": 0.1,
             "params": {"n": np.int64(5), "grid": (1, 2)}, "val_score": np.float64(0.7)},
        ],
    )  # fmt: skip
    assert record.metric == "auc" and record.hpmkd_version
    assert record.meta_features["rows"] == 500.0
    assert math.isnan(record.meta_features["teacher_confidence"])
    first, second = record.configs
    # Only the setting and its score: trial and params are not stored (warm starts take
    # the setting; phase 3 draws its trials afresh).
    assert set(first) == {"family", "capacity", "temperature", "alpha", "val_score"}
    assert set(second) == set(first) and math.isnan(first["val_score"])
    assert (second["alpha"], second["val_score"]) == (0.1, 0.7)
    assert record.best_val_score == 0.7  # first defined score in the given (best-first) order
    assert len(memory) == 1
    assert time.time() - record.created_at < 60
    with pytest.raises(ValueError, match="lacks alpha"):
        memory.record_run("d", CREDIT, "ks", [{"family": "x", "capacity": 1, "temperature": 1}])
    with pytest.raises(TypeError, match=r"configs\[0\]\['family'\] is a object"):
        memory.record_run("d", CREDIT, "ks", [dict(config("lgbm", 0.1), family=object())])
    with pytest.raises(ValueError, match="metric"):
        memory.record_run("d", CREDIT, "", [])
    assert len(memory) == 1


def test_record_run_without_configs() -> None:
    memory = SharedOptimizationMemory(InMemoryStore())
    record = memory.record_run("d", CREDIT, "ks", [])
    assert record.configs == () and math.isnan(record.best_val_score)


# ---------------------------------------------------------------------- distance
def test_normalisation_and_distance_scale() -> None:
    vector = normalise_meta_features(CREDIT)
    assert vector.shape == (7,)
    assert vector[0] == pytest.approx(3 / 7)  # log10(1000) / 7
    assert vector[4] == pytest.approx(0.6)  # 2 * minority share
    assert vector[5] == pytest.approx(0.2)  # log2(2) / 5
    assert normalise_meta_features(like(CREDIT, teacher_confidence=NAN))[6] == 0.5
    assert meta_feature_distance(CREDIT, CREDIT) == 0.0
    # 1k vs 1M rows, everything else equal: (3/7) / sqrt(7).
    far = meta_feature_distance(CREDIT, like(CREDIT, rows=1e6))
    assert far == pytest.approx((3 / 7) / math.sqrt(7))
    opposite = {
        "rows": 1e7,
        "features": 9999,
        "categorical_share": 1,
        "missing_share": 1,
        "minority_share": 0.5,
        "n_classes": 32,
        "teacher_confidence": 1,
    }
    zero = dict.fromkeys(opposite, 0.0)
    assert 0.9 < meta_feature_distance(zero, opposite) <= 1.0


# ---------------------------------------------------------------------- neighbours
@pytest.fixture
def memory() -> SharedOptimizationMemory:
    memory = SharedOptimizationMemory(InMemoryStore())
    memory.record_run("german_credit", CREDIT, "ks", [config("lgbm", 0.41)])
    memory.record_run(
        "taiwan_credit", like(CREDIT, rows=30000, categorical_share=0.3), "ks",
        [config("tree", 0.45)],
    )  # fmt: skip
    memory.record_run(
        "huge_images", like(CREDIT, rows=5e6, features=3000, n_classes=10, categorical_share=0),
        "ks", [config("logreg", 0.9)],
    )  # fmt: skip
    memory.record_run("german_credit_auc", CREDIT, "auc", [config("logreg", 0.8)])
    return memory


def test_neighbours_nearest_first_with_k_and_max_distance(memory: SharedOptimizationMemory) -> None:
    query = like(CREDIT, rows=1100)
    found = memory.neighbours(query, k=10, max_distance=1.0, metric="ks")
    assert [r.dataset for r, _ in found] == ["german_credit", "taiwan_credit", "huge_images"]
    distances = [d for _, d in found]
    assert distances == sorted(distances) and distances[0] < 0.01
    # By default only similar runs count (SIMILARITY_THRESHOLD).
    default = memory.neighbours(query, k=10, metric="ks")
    assert [r.dataset for r, _ in default] == ["german_credit"]
    assert distances[1] > SIMILARITY_THRESHOLD
    assert [r.dataset for r, _ in memory.neighbours(query, k=1, metric="ks")] == ["german_credit"]
    near_only = memory.neighbours(query, k=10, max_distance=distances[1] - 1e-9, metric="ks")
    assert [r.dataset for r, _ in near_only] == ["german_credit"]
    assert memory.neighbours(query, k=3, max_distance=distances[0] / 2, metric="ks") == []
    # Without a metric every run counts; the auc run is as near as german_credit.
    assert {r.dataset for r, _ in memory.neighbours(query, k=2)} == {
        "german_credit",
        "german_credit_auc",
    }


# ---------------------------------------------------------------------- warm start
def test_warm_start_on_empty_memory() -> None:
    start = SharedOptimizationMemory(InMemoryStore()).warm_start(CREDIT, "ks")
    assert start == WarmStart(used=False, reason="memory is empty", configs=(), neighbours=())
    assert start.to_dict() == {
        "used": False,
        "reason": "memory is empty",
        "configs": [],
        "neighbours": [],
    }


def test_warm_start_when_no_run_is_near(memory: SharedOptimizationMemory) -> None:
    far_query = like(CREDIT, rows=1e7, features=5000, categorical_share=0, missing_share=0.9)
    start = memory.warm_start(far_query, "ks", max_distance=0.05)
    assert start.used is False and start.configs == () and start.neighbours == ()
    record, nearest = memory.neighbours(far_query, 10, max_distance=1, metric="ks")[0]
    assert f"distance {nearest:.2f}" in start.reason and "above max_distance 0.05" in start.reason
    # Past runs are named by id, never by their table (a shared memory holds other
    # people's runs).
    assert record.dataset == "huge_images" and "huge_images" not in start.reason
    assert start.reason.startswith(f"no similar run: nearest is run {record.run_id[:8]} ")


def test_warm_start_only_counts_runs_with_the_same_metric(
    memory: SharedOptimizationMemory,
) -> None:
    start = memory.warm_start(CREDIT, "f1")
    assert start.used is False and "'f1'" in start.reason and "auc, ks" in start.reason


def test_warm_start_from_near_runs(memory: SharedOptimizationMemory) -> None:
    start = memory.warm_start(like(CREDIT, rows=1100), "ks", k=2, max_distance=0.3)
    assert start.used is True
    assert [n["dataset"] for n in start.neighbours] == ["german_credit", "taiwan_credit"]
    nearest = start.neighbours[0]["run_id"][:8]
    assert start.reason.startswith(f"warm start from 2 similar runs (nearest: run {nearest}, ")
    first = start.neighbours[0]
    assert set(first) == {"run_id", "dataset", "distance", "best_config", "best_val_metric"}
    assert first["best_config"]["family"] == "lgbm" and first["best_val_metric"] == 0.41
    assert [c["family"] for c in start.configs] == ["lgbm", "tree"]
    json.dumps(start.to_dict(), allow_nan=False)  # plain, JSON-ready data


def test_warm_start_configs_are_deduplicated_and_best_first() -> None:
    memory = SharedOptimizationMemory(InMemoryStore())
    memory.record_run(
        "near", CREDIT, "ks",
        [config("lgbm", 0.50), config("tree", 0.48), config("logreg", NAN),
         config("lgbm", 0.40, t=4.0), config("tree", 0.30, capacity="large")],
    )  # fmt: skip
    memory.record_run(
        "second", like(CREDIT, rows=1500), "ks",
        [config("tree", 0.60), config("lgbm", 0.55, t=1.0), config("lgbm", 0.5, a=0.9)],
    )  # fmt: skip
    start = memory.warm_start(CREDIT, "ks", k=3, top_per_run=3)
    got = [(c["family"], c["capacity"], c["temperature"], c["alpha"]) for c in start.configs]
    # Rank-major: each run's best, then each run's second best, ...; the NaN-scored
    # logreg is skipped; the duplicate (tree, small, 2.0, 0.5) from "second" appears once.
    assert got == [
        ("lgbm", "small", 2.0, 0.5),
        ("tree", "small", 2.0, 0.5),
        ("lgbm", "small", 1.0, 0.5),
        ("lgbm", "small", 4.0, 0.5),
        ("lgbm", "small", 2.0, 0.9),
    ]
    assert len(set(got)) == len(got)
    nearest = start.neighbours[0]["run_id"][:8]
    assert start.neighbours[0]["dataset"] == "near"
    assert start.reason.startswith(
        f"warm start from 2 similar runs (nearest: run {nearest}, distance 0.00)"
    )


def test_warm_start_with_only_undefined_scores_is_not_used() -> None:
    memory = SharedOptimizationMemory(InMemoryStore())
    memory.record_run("near", CREDIT, "ks", [config("lgbm", NAN)])
    start = memory.warm_start(CREDIT, "ks")
    assert start.used is False and start.configs == ()
    assert "no configuration with a defined validation score" in start.reason
    assert [n["dataset"] for n in start.neighbours] == ["near"]


def test_warm_start_uses_and_names_other_major_versions() -> None:
    store = InMemoryStore()
    store.add(make_record("old", hpmkd_version="99.0.0", meta_features=CREDIT))
    start = SharedOptimizationMemory(store).warm_start(CREDIT, "ks")
    assert start.used is True
    assert "hpmkd 99.0.0 (another major version), still used" in start.reason
    assert [c["family"] for c in start.configs] == ["lgbm"]


def test_warm_start_works_on_sqlite(tmp_path: Path) -> None:
    memory = SharedOptimizationMemory(SQLiteStore(tmp_path / "m.sqlite"))
    memory.record_run("german_credit", like(CREDIT, teacher_confidence=NAN), "ks",
                      [config("lgbm", 0.41), config("tree", NAN)])  # fmt: skip
    start = memory.warm_start(like(CREDIT, teacher_confidence=NAN), "ks")
    nearest = start.neighbours[0]["run_id"][:8]
    assert start.used and start.reason == (
        f"warm start from 1 similar run (nearest: run {nearest}, distance 0.00)"
    )
    assert [c["family"] for c in start.configs] == ["lgbm"]


# ---------------------------------------------------------------------- the threshold
def _table(n_rows: int, n_features: int, positive_rate: float, seed: int):
    """A table with a teacher's probabilities as columns (``p0``, ``p1``)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n_rows, n_features)),
                         columns=[f"x{i}" for i in range(n_features)])
    y = (rng.random(n_rows) < positive_rate).astype(int)
    p1 = np.clip(0.6 * y + 0.2 + rng.normal(0, 0.1, n_rows), 0.01, 0.99)
    frame["p0"], frame["p1"], frame["target"] = 1 - p1, p1, y
    return frame


def _meta(frame, name: str) -> dict[str, float]:
    from hpmkd import DistillationDataset

    return DistillationDataset(frame.reset_index(drop=True), target="target",
                               teacher_proba_cols=["p0", "p1"], name=name).meta_features()


def test_the_threshold_rejects_unlike_tables_and_accepts_resamples() -> None:
    small = _table(1_000, 20, 0.5, seed=0)  # 1k rows, 20 features, balanced
    memory = SharedOptimizationMemory(InMemoryStore())
    memory.record_run("small_balanced", _meta(small, "small_balanced"), "ks",
                      [config("lgbm", 0.41)])  # fmt: skip

    big = _meta(_table(300_000, 7, 0.05, seed=1), "big_imbalanced")  # 300k x 7, 5% positive
    start = memory.warm_start(big, "ks")
    assert start.used is False and start.configs == ()
    nearest = memory.neighbours(big, max_distance=1.0)[0][0]
    assert nearest.dataset == "small_balanced"
    assert start.reason.startswith(
        f"no similar run: nearest is run {nearest.run_id[:8]} at distance 0."
    )
    assert "above max_distance 0.08" in start.reason
    # Far above the threshold, not a near miss: rows, features and balance all differ.
    assert memory.neighbours(big, max_distance=1.0)[0][1] > 3 * SIMILARITY_THRESHOLD

    # The same table resampled: a bootstrap (same size, with replacement) and a random
    # half are the same kind of data and warm-start from the original run.
    rng = np.random.default_rng(2)
    for name, rows in (("bootstrap", rng.integers(0, len(small), len(small))),
                       ("half", rng.permutation(len(small))[: len(small) // 2])):
        start = memory.warm_start(_meta(small.iloc[rows], name), "ks")
        assert start.used is True, name
        assert [n["dataset"] for n in start.neighbours] == ["small_balanced"]
        assert start.neighbours[0]["distance"] < SIMILARITY_THRESHOLD / 2, name


def test_warm_start_configs_name_the_run_that_offered_them() -> None:
    memory = SharedOptimizationMemory(InMemoryStore())
    near = memory.record_run("near", CREDIT, "ks", [config("lgbm", 0.5), config("tree", 0.4)])
    second = memory.record_run("second", like(CREDIT, rows=1500), "ks",
                               [config("lgbm", 0.6), config("logreg", 0.3)])  # fmt: skip
    start = memory.warm_start(CREDIT, "ks")
    got = [(c["family"], c["run_id"]) for c in start.configs]
    # The duplicate (lgbm, small, 2.0, 0.5) keeps the nearer run as its source.
    assert got == [("lgbm", near.run_id), ("tree", near.run_id), ("logreg", second.run_id)]
    assert {n["run_id"] for n in start.neighbours} == {near.run_id, second.run_id}
