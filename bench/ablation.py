"""Benchmark 4: hpm with each component switched off in turn, on several datasets.

Every dataset follows the issue's protocol (20% test, 25% of the rest for validation,
a 500-tree LightGBM teacher on the 60% train part; the distiller gets train+validation
and the student is scored on the test rows). Variants: the default run, each of
``use_memory``, ``use_cache``, ``use_progressive``, ``use_adaptive_temperature`` off,
``use_multi_teacher`` on (it is off by default), and the legacy grid (no adaptive part).
Each (dataset, variant) runs ``--repeats`` times with distiller seeds 0, 1, ...; the table
shows medians. The memory is shared over the whole benchmark (warm starts come from the
other datasets' runs); the cache is fresh for every run, so every run is cold.

    python bench/ablation.py --data ../shared/data --repeats 3 --out docs/ablation.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    fmt,
    load_real,
    median,
    protocol_split,
    synthetic_case,
    timed_distill,
)
from hpmkd import HPMConfig

REAL = {
    "german_credit": "german_credit.csv.gz",
    "taiwan_default": "taiwan_default_sample.csv.gz",
    "caravan_insurance": "caravan_insurance.csv.gz",
    "mortgage_loanapp": "mortgage_loanapp.csv.gz",
}
VARIANTS: dict[str, tuple[str, dict]] = {
    "hpm default": ("hpm", {}),
    "no memory": ("hpm", {"use_memory": False}),
    "no cache": ("hpm", {"use_cache": False}),
    "no chain": ("hpm", {"use_progressive": False}),
    "fixed temperature": ("hpm", {"use_adaptive_temperature": False}),
    "+ multi-teacher": ("hpm", {"use_multi_teacher": True}),
    "legacy grid": ("legacy", {}),
}


def run_variant(parts: dict, name: str, method: str, settings: dict, seed: int, memory_dir: str):
    """One cold run; returns test metrics of the best student and wall seconds."""
    with tempfile.TemporaryDirectory() as cache_dir:
        config = HPMConfig.from_dict({"memory_dir": memory_dir, "cache_dir": cache_dir, **settings})
        d, seconds = timed_distill(parts, config, method, seed, name)
        s = d.summary()
    return {
        "seconds": seconds,
        **s["student"],
        "baseline_ks": s["baseline"]["ks"],
        "teacher_ks": s["teacher"]["ks"],
        "best": s["best_model"],
    }


def main() -> None:
    """Run every (dataset, variant) and print a Markdown table of medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument(
        "--datasets",
        default="case_b,german_credit,taiwan_default,caravan_insurance,mortgage_loanapp",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    lines = [
        "| dataset | variant | test KS | test AUC | fidelity | rank fidelity | wall s | "
        "baseline KS | teacher KS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as home:
        os.environ["HPMKD_HOME"] = home
        memory_dir = str(Path(home) / "memory")
        for name in args.datasets.split(","):
            if name == "case_b":
                X, y = synthetic_case("b")
            else:
                X, y = load_real(args.data / REAL[name])
            parts = protocol_split(X, y)
            for variant in args.variants.split(","):
                method, settings = VARIANTS[variant]
                runs = [
                    run_variant(parts, name, method, settings, seed, memory_dir)
                    for seed in range(args.repeats)
                ]
                m = {
                    k: median([r[k] for r in runs if r[k] is not None])
                    for k in (
                        "ks",
                        "auc",
                        "fidelity",
                        "rank_fidelity",
                        "seconds",
                        "baseline_ks",
                        "teacher_ks",
                    )
                }
                line = (
                    f"| {name} | {variant} | {fmt(m['ks'])} | {fmt(m['auc'])} | "
                    f"{fmt(m['fidelity'])} | {fmt(m['rank_fidelity'])} | {m['seconds']:.1f} | "
                    f"{fmt(m['baseline_ks'])} | {fmt(m['teacher_ks'])} |"
                )
                lines.append(line)
                print(line, flush=True)
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
