"""Benchmark: the capacity climb alone on a large table, from a given start.

Fits the Pipeline teacher of ``bench/scale.py`` on the protocol's train part, builds the
run's session (same split and soft targets as a default run with seed 42), trains the
start configuration on all training rows, runs the engine's own climb
(``hpmkd.engine.climb.climb_capacity_ladder``) from it and prints the climb record, then,
for the benchmark only, each rung's test KS beside the teacher's (a run reads the test
rows once, for the selected student; here they are read to measure the ladder).

    python bench/climb_ladder.py --table nyc --start lgbm,large,2,0.9,1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scale import DEFAULT_DATA, load_table, pipeline_teacher, split  # noqa: E402


def main() -> None:
    """Teacher, start, climb; one JSON line per rung and the record."""
    from hpmkd import DistillationDataset, HPMConfig
    from hpmkd.engine.climb import climb_capacity_ladder
    from hpmkd.engine.session import PLANS, RunSession
    from hpmkd.evaluate import score_on_test
    from hpmkd.events import EventBus
    from hpmkd.students import StudentSpec, trial_params

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=["nyc", "census"], default="nyc")
    parser.add_argument("--start", default="lgbm,large,2,0.9,1",
                        help="family,capacity,temperature,alpha,trial")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--set", action="append", default=[], dest="settings")
    args = parser.parse_args()
    family, capacity, t, a, trial = args.start.split(",")
    X, y = load_table(args.table, args.data)
    parts = split(X, y)
    start = time.perf_counter()
    teacher = pipeline_teacher(parts["X_train"]).fit(parts["X_train"], parts["y_train"])
    print(f"teacher fit {time.perf_counter() - start:.1f}s", flush=True)
    ds = DistillationDataset(parts["distill"], target="target", teacher=teacher,
                             test_data=parts["test"], name=args.table)
    config = HPMConfig.from_dict({"use_cache": "false", "use_memory": "false",
                                  **dict(s.split("=", 1) for s in args.settings)})
    session = RunSession(ds, config, PLANS["hpm"], 42, EventBus())
    n_train = len(session.split.train)
    spec = StudentSpec(family, capacity, float(t), float(a), int(trial),
                       trial_params(family, capacity, int(trial), n_train, 42))
    first = session.train(spec, source="config")
    record = climb_capacity_ladder(session)
    rows = session.test_rows()
    from hpmkd.metrics import compute_metrics

    teacher_ks = compute_metrics(rows.y, rows.reference)["ks"]
    for c in session.candidates:
        tested = score_on_test(c, rows)
        print(json.dumps({"name": c.name, "val_ks": c.val["ks"], "test_ks": tested.test["ks"],
                          "size_bytes": c.size_bytes, "fit_s": round(c.fit_seconds, 1),
                          "teacher_test_ks": teacher_ks}), flush=True)
    print(json.dumps({"start": first.name, **record.to_dict()}, default=str), flush=True)
    session.close()


if __name__ == "__main__":
    main()
