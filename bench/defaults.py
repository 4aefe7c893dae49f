"""Are the defaults right? Alternatives compared on validation rows only, never on test.

Per table and seed the clean protocol's parts are drawn as in ``bench/quality.py``
(A fits the teacher, C is the test table), but C is **not used at all** here: the
distiller's part B is split again, stratified and seeded, into B1 (75%, given to
``AutoDistiller``, which splits its own train/validation rows off it) and B2 (25%, an
outer validation set no candidate trained on and no engine decision saw; it is passed as
the run's ``test_data``, so the engine's "test" figures here are B2 figures). Every
alternative is scored by the KS on B2 of the student it selects (and its size).

Alternatives:

- selection rule: ``best`` and ``smaller_if_noninferior`` with ``min_saving`` in
  ``SAVINGS`` x ``noninferiority_margin`` in ``MARGINS``; re-applied to the default run's
  own candidates (``select_student``, the engine's function), so they differ in the
  selection only;
- families: the default four vs without ``mlp``;
- MLP epochs: the default budget (500,000 sample passes, 10-40 epochs) vs half and double;
- alphas: the default ``(0.9, 0.5, 0.1, 0.0)`` vs without ``0.0`` (no hard-label
  candidates) vs a wider ``(1.0, 0.7, 0.5, 0.3, 0.0)``;
- temperatures: the default grid ``(1, 2, 4)`` vs ``(1,)`` vs ``(1, 2, 4, 8)``, and the
  adaptive scheduler vs the fixed grid;
- the progressive chain: on vs off, ``min_improvement`` 0.01 vs 0 and 0.03,
  ``max_chain_stages`` 4 vs 2;
- the multi-teacher ensemble: off (default) vs on;
- the search's size: ``max_configs`` 16 vs 8, ``n_trials`` 3 vs 1 and 5;
- the capacity climb: on (``max_capacity_steps=4``) vs off, ``min_compression`` 5 vs 3.

Each run has a fresh ``HPMKD_HOME`` (no memory, no cache carried over between seeds);
the variants of one (table, seed) share it, so a fit they have in common is trained once
(the memory leaves out past runs on the very same data, so they do not warm-start each
other). ``--seeds`` loops outside the tables and a rerun skips the (table, seed) pairs
already in ``--jsonl``.

    python bench/defaults.py --data ../shared/data --seeds 3 --jsonl defaults.jsonl
    python bench/defaults.py --first-seed 2 --seeds 2 --jsonl defaults_2.jsonl  # a second process
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

from sklearn.model_selection import train_test_split

import hpmkd.students as students
from bench.common import (
    REAL_TABLES,
    clean_split,
    fresh_home,
    interval,
    load_table,
    subsample,
)
from hpmkd import AutoDistiller, DistillationDataset, HPMConfig
from hpmkd.components.selection_rule import select_student
from hpmkd.metrics import ks_score

TABLES = [*REAL_TABLES, "case_b"]
LARGE = ("us_census_fertility", "nyc_flights_delay")
SAVINGS = (1.5, 2.0, 4.0)
MARGINS = (0.005, 0.01, 0.02)
#: Engine-run variants: name -> (config overrides, MLP (sample passes, (min, max) epochs)).
VARIANTS: dict[str, tuple[dict[str, Any], tuple[int, tuple[int, int]] | None]] = {
    "default": ({}, None),
    "no mlp": ({"families": ("logreg", "tree", "lgbm")}, None),
    "mlp epochs x0.5": ({}, (250_000, (5, 20))),
    "mlp epochs x2": ({}, (1_000_000, (20, 80))),
    "alphas without 0": ({"alphas": (0.9, 0.5, 0.1)}, None),
    "alphas wider": ({"alphas": (1.0, 0.7, 0.5, 0.3, 0.0)}, None),
    "temperatures 1 only": ({"temperatures": (1.0,)}, None),
    "temperatures 1/2/4/8": ({"temperatures": (1.0, 2.0, 4.0, 8.0)}, None),
    "fixed temperatures": ({"use_adaptive_temperature": False}, None),
    "no chain": ({"use_progressive": False}, None),
    "chain min_improvement 0": ({"min_improvement": 0.0}, None),
    "chain min_improvement 0.03": ({"min_improvement": 0.03}, None),
    "chain 2 stages": ({"max_chain_stages": 2}, None),
    "multi-teacher ensemble on": ({"use_multi_teacher": True}, None),
    "max_configs 8": ({"max_configs": 8}, None),
    "n_trials 1": ({"n_trials": 1}, None),
    "n_trials 5": ({"n_trials": 5}, None),
    "no capacity climb": ({"max_capacity_steps": 0}, None),
    "min_compression 3": ({"min_compression": 3.0}, None),
}


def outer_parts(name: str, data: Path, seed: int, rows: int | None) -> dict[str, Any]:
    """Teacher on A; B split into B1 (the distiller's) and B2 (outer validation)."""
    X, y = load_table(name, data)
    X, y = subsample(X, y, rows, seed)
    parts = clean_split(X, y, seed)
    b = parts["distill"]
    b1, b2 = train_test_split(b, test_size=0.25, stratify=b["target"], random_state=seed)
    return {"teacher": parts["teacher"], "distill": b1, "outer": b2}


def run_variant(parts: dict[str, Any], name: str, variant: str, seed: int) -> Any:
    """One engine run of ``variant`` (its ``RunResult``); B2 is the run's test table."""
    overrides, epochs = VARIANTS[variant]
    saved = (students._MLP_SAMPLE_PASSES, students._MLP_EPOCHS)
    if epochs is not None:
        # The MLP epoch budget is a module constant, not a config field: swap it for the
        # run and put it back whatever happens.
        students._MLP_SAMPLE_PASSES, students._MLP_EPOCHS = epochs
    try:
        config = HPMConfig(**overrides)
        ds = DistillationDataset(
            parts["distill"],
            target="target",
            teacher=parts["teacher"],
            test_data=parts["outer"],
            name=name,
        )
        distiller = AutoDistiller(ds, method="auto", config=config, random_state=seed)
        distiller.run()
    finally:
        students._MLP_SAMPLE_PASSES, students._MLP_EPOCHS = saved
    return distiller._check_run()


def rule_choices(result: Any, outer: Any, seed: int) -> dict[str, dict[str, Any]]:
    """Every selection-rule alternative re-applied to the run's candidates, scored on B2."""
    X_out = outer.drop(columns=["target"])
    y_out = outer["target"].to_numpy()
    classes = list(result.dataset.classes)
    y_idx = (y_out == classes[1]).astype(int) if len(classes) == 2 else y_out
    teacher_val = result.teachers[0].val_proba
    rules = [("best", None, None)] + [
        ("smaller_if_noninferior", s, m) for s, m in itertools.product(SAVINGS, MARGINS)
    ]
    scored: dict[int, float] = {}
    out = {}
    for rule, min_saving, margin in rules:
        chosen, _ = select_student(
            result.candidates,
            result.y_val,
            teacher_val,
            result.selection_metric,
            rule,
            min_saving or 2.0,
            margin or 0.01,
            result.random_state,
        )
        if id(chosen) not in scored:
            proba = students.proba_in_class_order(chosen.model, X_out, classes)
            scored[id(chosen)] = ks_score(y_idx, proba)
        label = "best" if rule == "best" else f"saving {min_saving:g} margin {margin:g}"
        out[label] = {
            "selected": chosen.name,
            "val_ks": chosen.val["ks"],
            "outer_ks": scored[id(chosen)],
            "size_bytes": chosen.size_bytes,
        }
    return out


def summarise(runs: list[dict[str, Any]]) -> str:
    """Two Markdown tables (selection-rule alternatives, engine-run variants): per table
    the mean B2 KS over seeds, then over every (table, seed) pair the mean difference to
    the default with its 95% t interval, wins/ties/losses, and the mean selected size."""
    tables = [t for t in TABLES if any(r["table"] == t for r in runs)]
    reference = {"rules": "saving 2 margin 0.01", "variants": "default"}
    out = []
    for kind in ("rules", "variants"):
        labels = list(runs[0][kind])
        head = (
            "| alternative | "
            + " | ".join(tables)
            + " | diff vs default, mean [95% t interval] | wins/ties/losses | mean size kB |"
        )
        out += ["", head, "|" + "---|" * (len(tables) + 4)]
        for label in labels:
            cells, diffs, sizes = [], [], []
            for t in tables:
                rs = [r for r in runs if r["table"] == t and label in r[kind]]
                ks = [r[kind][label]["outer_ks"] for r in rs]
                cells.append(f"{statistics.fmean(ks):.4f}" if ks else "n/a")
                diffs += [
                    r[kind][label]["outer_ks"] - r[kind][reference[kind]]["outer_ks"] for r in rs
                ]
                sizes += [r[kind][label]["size_bytes"] / 1000 for r in rs]
            mean, low, high = interval(diffs)
            wins = sum(d > 0 for d in diffs)
            losses = sum(d < 0 for d in diffs)
            out.append(
                f"| {label} | "
                + " | ".join(cells)
                + f" | {mean:+.4f} [{low:+.4f}, {high:+.4f}] "
                f"| {wins}/{len(diffs) - wins - losses}/{losses} "
                f"| {statistics.fmean(sizes):.1f} |"
            )
    return "\n".join(out)


def run_table(args: argparse.Namespace, name: str, seed: int) -> None:
    """Every variant on one (table, seed); the record is appended to ``args.jsonl``."""
    rows = args.large_rows if name in LARGE else None
    parts = outer_parts(name, args.data, seed, rows)
    record: dict[str, Any] = {"table": name, "seed": seed, "variants": {}}
    with tempfile.TemporaryDirectory() as home:
        fresh_home(Path(home))
        for variant in args.variants.split(","):
            result = run_variant(parts, name, variant, seed)
            if variant == "default":
                record["method"] = result.method
                record["rules"] = rule_choices(result, parts["outer"], seed)
            record["variants"][variant] = {
                "selected": result.selected.name,
                "val_ks": result.selected.val["ks"],
                "outer_ks": result.selected.test["ks"],
                "size_bytes": result.selected.size_bytes,
            }
            print(
                f"{name} seed {seed} {variant}: {result.selected.name} "
                f"val {result.selected.val['ks']:.4f} B2 {result.selected.test['ks']:.4f}",
                flush=True,
            )
    with args.jsonl.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def main() -> None:
    """Run every (table, seed, variant); append JSON lines; print the summary."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--large-rows", type=int, default=30_000)
    parser.add_argument("--jsonl", type=Path, default=Path("defaults.jsonl"))
    parser.add_argument("--summarise", action="store_true")
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    if not args.summarise:
        done = set()
        if args.jsonl.exists():
            # Resume: a (table, seed) already recorded is not run again.
            for line in args.jsonl.read_text().splitlines():
                if line:
                    record = json.loads(line)
                    done.add((record["table"], record["seed"]))
        # Seeds outside, tables inside: every table gets seed 0 before any gets seed 1.
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for name in args.tables.split(","):
                if (name, seed) not in done:
                    run_table(args, name, seed)
    runs = [json.loads(line) for line in args.jsonl.read_text().splitlines() if line]
    print(summarise(runs))


if __name__ == "__main__":
    main()
