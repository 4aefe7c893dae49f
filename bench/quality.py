"""Clean-protocol quality benchmark: the default run against the teacher and a tuned
small LightGBM, on the development tables and the synthetic cases b and c.

Per table and seed (the seed chooses the split): three disjoint stratified parts, A (40%)
fits the teacher (``bench.common.lgbm_pipeline``: LightGBM with 500 trees, text columns
ordinal-encoded), B (40%) goes to ``AutoDistiller`` with the default ``HPMConfig()``
(``method="auto"``, random_state = seed) and a fresh ``HPMKD_HOME`` (no cache or memory
carries over, so seeds are independent), C (20%) is the test table, read once. Baselines
on C: the teacher, and a small hard-label LightGBM trained on the engine's own training
rows of B and tuned on its validation rows (grid ``SMALL_GRID``, chosen by validation KS).

Targets checked (issue 13): student test KS >= max(teacher, small LightGBM) - 0.005 on the
mean over seeds, and student ECE <= teacher ECE + 0.01.

    python bench/quality.py --data ../shared/data --seeds 5 --jsonl quality.jsonl
    python bench/quality.py --tables nyc_flights_delay --seeds 1 --rows 0   # full size

Each run is appended to ``--jsonl`` as one JSON line (so a long run can be summarised
while it goes, with ``--summarise``; a rerun skips the (table, seed) pairs already there,
and seeds loop outside the tables); the Markdown table of means and sds is printed at
the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.common import (
    REAL_TABLES,
    Timer,
    clean_split,
    fresh_home,
    lgbm_pipeline,
    load_table,
    subsample,
    timed_distill,
)
from hpmkd import HPMConfig
from hpmkd.metrics import expected_calibration_error, ks_score

TABLES = [*list(REAL_TABLES)[:5], "case_b", "case_c", *list(REAL_TABLES)[5:]]
#: Tables large enough that five seeds run on a subsample (``--large-rows``).
LARGE = ("us_census_fertility", "nyc_flights_delay")
#: The small hard-label LightGBM's grid (n_estimators x num_leaves).
SMALL_GRID = {"n_estimators": (50, 100, 200), "num_leaves": (7, 15, 31)}
KS_SLACK, ECE_SLACK = 0.005, 0.01


def small_lgbm(parts: dict[str, Any], split: Any, seed: int) -> dict[str, Any]:
    """The tuned small hard-label LightGBM: fit on the engine's training rows of B, pick
    by KS on its validation rows, score the pick once on the test rows."""
    distill = parts["distill"]
    X, y = distill.drop(columns=["target"]), distill["target"].to_numpy()
    X_tr, y_tr = X.iloc[split.train], y[split.train]
    X_va, y_va = X.iloc[split.validation], y[split.validation]
    best: tuple[float, dict, Any] | None = None
    for n_est, leaves in itertools.product(*SMALL_GRID.values()):
        params = {"n_estimators": n_est, "num_leaves": leaves}
        model = lgbm_pipeline(X_tr, **params).fit(X_tr, y_tr)
        val_ks = ks_score(y_va, model.predict_proba(X_va))
        if best is None or val_ks > best[0]:
            best = (val_ks, params, model)
    val_ks, params, model = best
    test = parts["test"]
    proba = model.predict_proba(test.drop(columns=["target"]))
    y_te = test["target"].to_numpy()
    return {
        "params": params,
        "val_ks": val_ks,
        "ks": ks_score(y_te, proba),
        "ece": expected_calibration_error(y_te, proba),
    }


def one_run(name: str, data: Path, seed: int, rows: int | None) -> dict[str, Any]:
    """One seed of one table: split, teacher, default run, small LightGBM."""
    X, y = load_table(name, data)
    X, y = subsample(X, y, rows, seed)
    parts = clean_split(X, y, seed)
    with tempfile.TemporaryDirectory() as home:
        fresh_home(Path(home))
        distiller, seconds = timed_distill(parts, HPMConfig(), "auto", seed, name)
    result = distiller._check_run()
    summary = result.summary()
    selected = result.selected
    with Timer() as small_timer:
        small = small_lgbm(parts, result.split, seed)
    return {
        "table": name,
        "seed": seed,
        "rows": parts["rows"],
        "method": result.method,
        "seconds": seconds,
        "teacher_seconds": parts["teacher_seconds"],
        "small_seconds": small_timer.seconds,
        "selected": selected.name,
        "family": selected.spec.family if selected.spec else selected.source,
        "size_bytes": selected.size_bytes,
        "student": {k: summary["student"][k] for k in ("ks", "auc", "ece", "brier")},
        "teacher": {k: summary["teacher"][k] for k in ("ks", "auc", "ece", "brier")},
        "twin_ks": (summary["baseline"] or {}).get("ks"),
        "small": small,
        "verdict": summary["distillation_gain"].get("outcome")
        or summary["distillation_gain"].get("verdict"),
    }


def _mean_sd(values: list[float]) -> str:
    values = [v for v in values if v is not None and not np.isnan(v)]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):.4f}" + ("" if np.isnan(sd) else f" ({sd:.4f})")


def summarise(runs: list[dict[str, Any]]) -> str:
    """Markdown table: per table (and row count), means (sd) over seeds and the targets."""
    lines = [
        "| table | rows used (A/B/C) | seeds | method | student KS | teacher KS | small LGBM KS "
        "| KS target: student - max(teacher, small) >= -0.005 | student ECE | teacher ECE "
        "| ECE target: student <= teacher + 0.01 | selected families (sizes, kB) | run s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        key = (r["table"], r["rows"]["A"] + r["rows"]["B"] + r["rows"]["C"])
        groups.setdefault(key, []).append(r)
    order = {t: i for i, t in enumerate(TABLES)}
    for (table, total), rs in sorted(
        groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])
    ):
        mean = statistics.fmean
        s_ks = mean(r["student"]["ks"] for r in rs)
        t_ks = mean(r["teacher"]["ks"] for r in rs)
        b_ks = mean(r["small"]["ks"] for r in rs)
        gap = s_ks - max(t_ks, b_ks)
        s_ece = mean(r["student"]["ece"] for r in rs)
        t_ece = mean(r["teacher"]["ece"] for r in rs)
        ece_ok = [r["student"]["ece"] <= r["teacher"]["ece"] + ECE_SLACK for r in rs]
        fams: dict[str, list[int]] = {}
        for r in rs:
            fams.setdefault(r["family"], []).append(r["size_bytes"])
        fam_text = ", ".join(
            f"{f} x{len(v)} ({statistics.median(v) / 1000:.1f})" for f, v in sorted(fams.items())
        )
        methods = "/".join(sorted({r["method"] for r in rs}))
        rows = rs[0]["rows"]
        lines.append(
            f"| {table} | {total:,} ({rows['A']:,}/{rows['B']:,}/{rows['C']:,}) | {len(rs)} "
            f"| {methods} | {_mean_sd([r['student']['ks'] for r in rs])} "
            f"| {_mean_sd([r['teacher']['ks'] for r in rs])} "
            f"| {_mean_sd([r['small']['ks'] for r in rs])} "
            f"| {gap:+.4f} {'met' if gap >= -KS_SLACK else 'MISSED'} "
            f"| {_mean_sd([r['student']['ece'] for r in rs])} "
            f"| {_mean_sd([r['teacher']['ece'] for r in rs])} "
            f"| {s_ece - t_ece:+.4f} on the mean; {sum(ece_ok)}/{len(rs)} seeds "
            f"{'met' if s_ece <= t_ece + ECE_SLACK else 'MISSED'} "
            f"| {fam_text} | {statistics.fmean(r['seconds'] for r in rs):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run every (table, seed), append JSON lines, print the summary table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--large-rows",
        type=int,
        default=60_000,
        help="rows subsampled from the large tables (0: all rows)",
    )
    parser.add_argument("--rows", type=int, default=None, help="rows for every table (0: all)")
    parser.add_argument("--jsonl", type=Path, default=Path("quality.jsonl"))
    parser.add_argument("--summarise", action="store_true", help="only summarise --jsonl")
    args = parser.parse_args()
    if not args.summarise:
        done = set()
        if args.jsonl.exists():
            # Resume: a (table, seed) already recorded is not run again.
            for line in args.jsonl.read_text().splitlines():
                if line:
                    record = json.loads(line)
                    done.add((record["table"], record["seed"]))
        # Seeds outside, tables inside: every table gets seed 0 before any gets seed 1,
        # so a run cut short still covers every table.
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for name in args.tables.split(","):
                if (name, seed) in done:
                    continue
                if args.rows is not None:
                    rows = args.rows or None
                else:
                    rows = (args.large_rows or None) if name in LARGE else None
                run = one_run(name, args.data, seed, rows)
                with args.jsonl.open("a") as handle:
                    handle.write(json.dumps(run) + "\n")
                print(
                    f"{name} seed {seed}: {run['method']} {run['selected']} "
                    f"KS {run['student']['ks']:.4f} teacher {run['teacher']['ks']:.4f} "
                    f"small {run['small']['ks']:.4f} ECE {run['student']['ece']:.4f}/"
                    f"{run['teacher']['ece']:.4f} {run['seconds']:.1f}s",
                    flush=True,
                )
    runs = [json.loads(line) for line in args.jsonl.read_text().splitlines() if line]
    print(summarise(runs))


if __name__ == "__main__":
    main()
