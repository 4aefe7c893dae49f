"""How far the size cap holds the student back, on validation only (no test row read).

For each seed the clean protocol of ``bench/quality.py`` splits the table (A fits the
teacher, B goes to the distiller, C is never used here); default runs with each
``min_compression`` in ``--caps`` print the selected student, its validation score, the
teacher's validation score on the same rows, the student's size and the capacity climb's
stop reason. The selected student's validation score is the maximum over the candidates
(biased upwards), so a gap to the teacher that remains here is not noise in its favour.

    python bench/size_cap.py --table nyc_flights_delay --seeds 0,1 --caps 5,3,2
    python bench/size_cap.py --seeds 0,1 --caps 5 --fill-shapes 2,3,4,6,8

``--fill-shapes`` replaces ``hpmkd.engine.climb.FILL_SHAPES`` for the run (the leaves per
tree of the LightGBM students trained at the cap, as multiples of the climb's best): every
student trained at the cap is printed with its validation score (``at_cap``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hpmkd.engine.climb as climb  # noqa: E402
from bench.common import clean_split, fresh_home, load_table, subsample, timed_distill  # noqa: E402
from hpmkd import HPMConfig  # noqa: E402


def main() -> None:
    """One JSON line per (seed, cap)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", default="nyc_flights_delay")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--caps", default="5,3,2", help="min_compression values")
    parser.add_argument("--rows", type=int, default=None, help="subsample (default: all)")
    parser.add_argument("--fill-shapes", default=None, help="e.g. 2,3,4,6,8")
    args = parser.parse_args()
    if args.fill_shapes:
        climb.FILL_SHAPES = tuple(int(v) for v in args.fill_shapes.split(","))
    X, y = load_table(args.table, args.data)
    for seed in (int(s) for s in args.seeds.split(",")):
        Xs, ys = subsample(X, y, args.rows, seed)
        parts = clean_split(Xs, ys, seed)
        for cap in (float(c) for c in args.caps.split(",")):
            with tempfile.TemporaryDirectory() as home:
                fresh_home(Path(home))
                config = HPMConfig(min_compression=cap)
                distiller, seconds = timed_distill(parts, config, "auto", seed, args.table)
            result = distiller._check_run()
            capacity = result.summary()["details"].get("capacity") or {}
            metric = result.selection_metric
            print(json.dumps({
                "table": args.table,
                "seed": seed,
                "min_compression": cap,
                "selected": result.selected.name,
                f"val_{metric}": round(result.selected.val[metric], 4),
                f"teacher_val_{metric}": round(result.teachers[0].val[metric], 4),
                "size_kB": round(result.selected.size_bytes / 1000, 1),
                "run_seconds": round(seconds, 1),
                "climb_stop": capacity.get("stop_reason"),
                "at_cap": {
                    step["name"]: round(step["val_metric"], 4)
                    for step in capacity.get("steps", ()) if step.get("kind") == "at_cap"
                },
            }), flush=True)


if __name__ == "__main__":
    main()
