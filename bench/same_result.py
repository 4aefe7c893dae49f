"""A behaviour fingerprint of one default run: proves a refactor changed no result.

Runs the default configuration once on case b (or c) in an empty hpmkd home (no cache, no
memory, so nothing carries over between runs) and prints the selected student, its test
metrics and a SHA-256 over every candidate's name and validation/test metrics (timing,
latency and cache columns left out: they vary between runs of the same code). Two commits
with the same digest selected the same student with the same numbers.

    python bench/same_result.py --case b
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    fresh_home,
    parse_settings,
    protocol_split,
    synthetic_case,
    timed_distill,
)
from hpmkd import HPMConfig
from hpmkd.results_table import RUN_COLUMNS


def fingerprint(results, digits: int = 10) -> str:
    """SHA-256 of the results table without its volatile columns, floats rounded."""
    # The columns that differ between two runs of the same inputs (the clocks, the cache):
    # the engine's own list, which results.csv leaves out too.
    stable = results.drop(columns=[c for c in RUN_COLUMNS if c in results.columns])
    text = stable.round(digits).to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()


def main() -> None:
    """Run once and print the fingerprint."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=["b", "c"], default="b")
    parser.add_argument("--method", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="an HPMConfig field, e.g. final_fit=\"off\"")
    args = parser.parse_args()
    settings = parse_settings(args.set)
    parts = protocol_split(*synthetic_case(args.case))
    with tempfile.TemporaryDirectory() as tmp:
        fresh_home(Path(tmp))
        d, seconds = timed_distill(parts, HPMConfig(**settings), args.method)
    out = {
        "case": args.case,
        "best": d.best_name,
        "test": {k: d.best_metrics[k] for k in ("ks", "auc", "accuracy", "f1", "fidelity")},
        "candidates": len(d.results_df),
        "digest": fingerprint(d.results_df),
        # The capacity climb's decision (None for legacy): where a refactor may differ.
        "climb": (d.summary()["details"].get("capacity") or {}).get("stop_reason"),
        "final_fit": (d.summary()["details"].get("refit") or {}).get("fit_seconds"),
        "seconds": round(seconds, 1),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
