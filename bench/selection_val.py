"""One clean-protocol default run (the split of ``bench/quality.py``), validation side only:
the selected student's validation KS against the teacher's, sizes and the capacity
climb's steps (docs/HPM.md, "The capacity climb ..."). Test figures are printed only with
``--test``, for reporting a default already chosen.

    python bench/selection_val.py nyc_flights_delay 0 0     # table, seed, rows (0: all)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import clean_split, fresh_home, load_table, subsample, timed_distill


def main() -> None:
    """Run once and print one JSON line."""
    from hpmkd import HPMConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table")
    parser.add_argument("seed", type=int)
    parser.add_argument("rows", type=int, help="rows subsampled (0: all)")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2]
                        / "shared" / "data")
    parser.add_argument("--test", action="store_true", help="also print the test figures")
    args = parser.parse_args()
    X, y = load_table(args.table, args.data)
    X, y = subsample(X, y, args.rows or None, args.seed)
    parts = clean_split(X, y, args.seed)
    with tempfile.TemporaryDirectory() as home:
        fresh_home(Path(home))
        distiller, seconds = timed_distill(parts, HPMConfig(), "auto", args.seed, args.table)
    result = distiller._check_run()
    summary = result.summary()
    capacity = summary["details"].get("capacity") or {}
    out = {
        "table": args.table,
        "seed": args.seed,
        "selected": result.selected.name,
        "val_ks": result.selected.val["ks"],
        "teacher_val_ks": result.teachers[0].val["ks"],
        "size_bytes": result.selected.size_bytes,
        "teacher_size_bytes": summary["teacher"]["size_bytes"],
        "seconds": round(seconds, 1),
        "climb_stop": capacity.get("stop"),
        "climb_steps": [
            (s.get("kind", "rung"), s["name"], round(s["val_metric"], 4), s["size_bytes"],
             s["kept"])
            for s in capacity.get("steps", [])
        ],
        "leakage_suspected": (summary.get("leakage") or {}).get("suspected"),
    }
    if args.test:
        out.update(test_ks=summary["student"]["ks"], teacher_test_ks=summary["teacher"]["ks"],
                   twin_test_ks=(summary["baseline"] or {}).get("ks"))
    print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
