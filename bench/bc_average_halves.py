"""Split-half validation estimates of ways to pick or average a run's candidates (issue 13,
case b): no test row is read.

For each seed, one default run on the clean protocol's split (``bench/quality.py``'s, as
``bench/selection_val.py``); then, many times, the validation rows are cut into two random
halves: each way picks (or averages) candidates by KS on the first half and is scored on
the second, as its gap to the teacher's KS on the same half. Printed per seed and on the
mean of seeds (docs/HPM.md, "Seed averages"). Ways:

- ``top``: the top candidate on the first half (the plain arg-max; the seed average
  competes like any candidate);
- ``topK``: the mean probabilities of the top K candidates on the first half;
- ``average``: the run's seed average (its start was chosen on all validation rows, which
  favours every way that contains it);
- ``average_first``: the top candidate unless it is a single fit the average does not
  score below in at least 90% of 200 paired resamples of the first half (the selection
  rule's "single fits must clearly beat the seed average");
- ``average+K`` / ``average3w+K``: the seed average and the next K candidates on the first
  half, equal weights / the average weighted by its three members.

    python bench/bc_average_halves.py --table case_b --seeds 0,1,2,3,4 --splits 60
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import clean_split, fresh_home, load_table, subsample, timed_distill


def run_candidates(table: str, seed: int, data: Path) -> dict[str, Any]:
    """One default run's validation side: labels, teacher and candidate probabilities."""
    from hpmkd import HPMConfig

    X, y = subsample(*load_table(table, data), None, seed)
    parts = clean_split(X, y, seed)
    with tempfile.TemporaryDirectory() as home:
        fresh_home(Path(home))
        distiller, _ = timed_distill(parts, HPMConfig(), "auto", seed, table)
    result = distiller._check_run()
    pool = [c for c in result.candidates if c.val_proba is not None
            and not c.extra.get("superseded_by") and c.source != "screen"]
    return {"y": result.y_val, "teacher": result.teachers[0].val_proba[:, 1],
            "names": [c.name for c in pool], "proba": np.array([c.val_proba[:, 1] for c in pool])}


def ways(run: dict[str, Any], n_splits: int, rng: np.random.Generator) -> dict[str, list[float]]:
    """Each way's gap to the teacher on the scoring half, per split."""
    from hpmkd.metrics import ks_score

    def ks(y: np.ndarray, p: np.ndarray) -> float:
        return ks_score(y, np.column_stack([1 - p, p]))

    y, t, P = run["y"], run["teacher"], run["proba"]
    averages = [i for i, name in enumerate(run["names"]) if " seeds " in name]
    n, out = len(y), {}
    for _ in range(n_splits):
        idx = rng.permutation(n)
        A, B = idx[: n // 2], idx[n // 2:]
        order = list(np.argsort(-np.array([ks(y[A], p[A]) for p in P]), kind="stable"))
        t_b = ks(y[B], t[B])

        def gap(p: np.ndarray, t_b: float = t_b, B: np.ndarray = B) -> float:
            return ks(y[B], p[B]) - t_b

        got = {"top": gap(P[order[0]])}
        for k in (2, 3, 4):
            got[f"top{k}"] = gap(P[order[:k]].mean(0))
        if averages:
            a, top = averages[-1], order[0]
            pick = a
            if top != a:
                draws = rng.integers(0, len(A), (200, len(A)))
                below = np.mean([ks(y[A][d], P[a][A][d]) < ks(y[A][d], P[top][A][d])
                                 for d in draws])
                pick = top if below >= 0.9 else a
            got["average_first"], got["average"] = gap(P[pick]), gap(P[a])
            others = [i for i in order if i != a]
            for k in (1, 2, 4):
                w = np.r_[[3.0], np.ones(k)]
                got[f"average+{k}"] = gap(P[[a, *others[:k]]].mean(0))
                got[f"average3w+{k}"] = gap((w[:, None] * P[[a, *others[:k]]]).sum(0) / w.sum())
        for key, value in got.items():
            out.setdefault(key, []).append(value)
    return out


def main() -> None:
    """Runs, then one line per way."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="case_b")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--splits", type=int, default=60)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2]
                        / "shared" / "data")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rng = np.random.default_rng(0)
    per_seed = {s: ways(run_candidates(args.table, s, args.data), args.splits, rng)
                for s in seeds}
    keys = list(dict.fromkeys(k for got in per_seed.values() for k in got))
    print("way", *[f"seed {s}" for s in seeds], "mean", sep="\t")
    for key in keys:
        means = [float(np.mean(per_seed[s][key])) if key in per_seed[s] else float("nan")
                 for s in seeds]
        print(key, *[f"{m:+.4f}" for m in means], f"{np.nanmean(means):+.4f}", sep="\t")


if __name__ == "__main__":
    main()
