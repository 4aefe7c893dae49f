"""Loky waves on a large table: wall time of the parallel executor alone.

Builds the training context a default run uses on a development table (the protocol
split's distill part, 25% of it for validation; soft targets from label-smoothed labels
instead of a teacher, which does not change the cost of shipping or fitting), then trains
the phase-3 pattern of a run on ``Executor("loky", n_jobs=2)``: waves of four trials
(LightGBM, logistic regression, tree) on the rung-0 subsample (a quarter of the rows),
then on all rows. Run it against two checkouts to compare their executors on the same
machine, alternating, e.g.::

    PYTHONPATH=/path/old python bench/loky_waves.py --table ../shared/data/nyc_flights_delay.csv.gz
    PYTHONPATH=.         python bench/loky_waves.py --table ../shared/data/nyc_flights_delay.csv.gz
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


def main() -> None:
    import hpmkd.parallel
    from bench.common import load_real
    from hpmkd.evaluate import TrainingContext, subsample_context
    from hpmkd.parallel import Executor, Job
    from hpmkd.students import StudentSpec, trial_params

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", required=True)
    args = parser.parse_args()
    X, y = load_real(args.table)
    X_rest, _, y_rest, _ = train_test_split(X, y, test_size=0.2, stratify=y, random_state=42)
    X_tr, X_va, y_tr, y_va = train_test_split(
        X_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=42
    )
    y_tr, y_va = y_tr.to_numpy(), y_va.to_numpy()

    def smoothed(labels: np.ndarray) -> np.ndarray:
        return np.column_stack([1 - labels, labels]).astype(float) * 0.8 + 0.1

    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    ctx = TrainingContext(
        X_tr, y_tr, X_va, y_va, smoothed(y_tr), smoothed(y_va), [0, 1], numeric,
        [c for c in X.columns if c not in numeric],
    )
    sub = subsample_context(ctx, len(y_tr) // 4, 0, validation=False)
    executor = Executor("loky", n_jobs=2)
    start, cpu = time.perf_counter(), time.process_time()
    for context in (sub, ctx):
        n = len(context.y_train)
        specs = [("lgbm", t) for t in range(2)] + [("logreg", 0), ("tree", 0)]
        jobs = [Job(StudentSpec(f, "medium", 2.0, 0.9, t, trial_params(f, "medium", t, n, 0)))
                for f, t in specs]
        wave = time.perf_counter()
        results = executor.run(jobs, context)
        print(f"{n:,} rows: wave of {len(jobs)} in {time.perf_counter() - wave:.1f} s; val KS "
              + ", ".join(f"{r.val['ks']:.4f}" for r in results), flush=True)
    executor.close()
    print(f"{os.path.dirname(hpmkd.parallel.__file__)}: total {time.perf_counter() - start:.1f}"
          f" s wall, {time.process_time() - cpu:.1f} CPU s in this process, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
