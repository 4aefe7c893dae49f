"""Benchmark 1 and 2: speed and quality on the issue's cases b and c, cold vs cached.

For each repeat: a cold run (empty cache and memory), then an identical rerun served by
the cache. Prints one line per run and the medians; the student is scored on the 20% test
rows that neither the teacher nor the distiller saw.

    python bench/speed_quality.py --case b --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import fmt, fresh_home, median, protocol_split, synthetic_case, timed_distill
from hpmkd import HPMConfig


def one_run(parts: dict, config: HPMConfig, method: str) -> dict:
    """Build the dataset (teacher probabilities included) and distill; timed together."""
    d, seconds = timed_distill(parts, config, method)
    summary = d.summary()
    return {
        "seconds": seconds,
        "student": summary["student"],
        "teacher": summary["teacher"],
        "baseline": summary["baseline"],
        "best": summary["best_model"],
        "timings": summary["timings"],
        "from_cache": int(d.results_df.query("source != 'baseline'")["from_cache"].sum()),
        "candidates": summary["n_candidates"],
    }


def main() -> None:
    """Run the benchmark and print the medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=["b", "c"], default="b")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--method", default="hpm")
    parser.add_argument("--set", action="append", default=[], dest="settings")
    parser.add_argument("--json", type=Path, default=None, help="write all runs here")
    args = parser.parse_args()
    config = HPMConfig.from_dict(dict(s.split("=", 1) for s in args.settings))
    X, y = synthetic_case(args.case)
    parts = protocol_split(X, y)
    runs = []
    for rep in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            fresh_home(Path(tmp))
            cold = one_run(parts, config, args.method)
            warm = one_run(parts, config, args.method)
        runs.append({"cold": cold, "cached": warm})
        print(
            f"repeat {rep + 1}: cold {cold['seconds']:.1f}s student KS "
            f"{fmt(cold['student']['ks'])} AUC {fmt(cold['student']['auc'])} "
            f"(teacher KS {fmt(cold['teacher']['ks'])}, baseline KS "
            f"{fmt(cold['baseline']['ks'])}) best {cold['best']}; cached rerun "
            f"{warm['seconds']:.2f}s ({warm['from_cache']}/{warm['candidates']} from cache)",
            flush=True,
        )
        print("  phases:", {k: round(v, 2) for k, v in cold["timings"].items()}, flush=True)
    cold_s = median([r["cold"]["seconds"] for r in runs])
    warm_s = median([r["cached"]["seconds"] for r in runs])
    c = runs[0]["cold"]
    ks_student = median([r["cold"]["student"]["ks"] for r in runs])
    auc_student = median([r["cold"]["student"]["auc"] for r in runs])
    ks_baseline = median([r["cold"]["baseline"]["ks"] for r in runs])
    print(
        f"case {args.case} median over {args.repeats}: cold {cold_s:.1f}s, cached {warm_s:.2f}s "
        f"(ratio {warm_s / cold_s:.3f}); student test KS {fmt(ks_student)}, "
        f"AUC {fmt(auc_student)}; teacher KS "
        f"{fmt(c['teacher']['ks'])} AUC {fmt(c['teacher']['auc'])}; baseline KS "
        f"{fmt(ks_baseline)}; size ratio "
        f"{c['teacher']['size_bytes'] / c['student']['size_bytes']:.1f}x, latency ratio "
        f"{c['teacher']['latency_ms_1k'] / c['student']['latency_ms_1k']:.1f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1, default=str))


if __name__ == "__main__":
    main()
