"""Benchmark 3: one million rows x 50 features — wall time and peak memory.

The teacher (500-tree LightGBM) is trained on a 200,000-row sample of the train part
(the teacher's own training time is not what is measured); the distiller then gets the
800,000 train+validation rows and a 200,000-row test set. Peak RSS is read from the
kernel for this process (``ru_maxrss``); it includes generating the data.

    python bench/million.py [--rows 1000000] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.datasets import make_classification

from bench.common import Timer, fmt, peak_rss_mb
from hpmkd import AutoDistiller, DistillationDataset, HPMConfig


def main() -> None:
    """Generate the data, distill with the default config, print time and memory."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--set", action="append", default=[], dest="settings")
    args = parser.parse_args()
    config = HPMConfig.from_dict(dict(s.split("=", 1) for s in args.settings))
    X, y = make_classification(n_samples=args.rows, n_features=50, n_informative=15, random_state=3)
    X = X.astype(np.float64)
    cut = int(args.rows * 0.8)
    columns = [f"f{i}" for i in range(50)]
    distill = pd.DataFrame(X[:cut], columns=columns)
    distill["target"] = y[:cut]
    test = pd.DataFrame(X[cut:], columns=columns)
    test["target"] = y[cut:]
    del X
    rss_data = peak_rss_mb()
    teacher = LGBMClassifier(n_estimators=500, random_state=0, verbose=-1)
    teacher.fit(distill[columns].iloc[:200_000], distill["target"].iloc[:200_000])
    with tempfile.TemporaryDirectory() as home:
        os.environ["HPMKD_HOME"] = home
        with Timer() as timer:
            ds = DistillationDataset(distill, target="target", teacher=teacher, test_data=test)
            d = AutoDistiller(ds, method="hpm", config=config, random_state=42)
            d.run()
    s = d.summary()
    print(
        f"{args.rows:,} rows x 50: wall {timer.seconds:.1f}s (dataset + run), peak RSS "
        f"{peak_rss_mb():.0f} MiB (after data generation {rss_data:.0f} MiB); student "
        f"{s['best_model']} test KS {fmt(s['student']['ks'])} AUC {fmt(s['student']['auc'])}; "
        f"teacher KS {fmt(s['teacher']['ks'])}; baseline KS {fmt(s['baseline']['ks'])}"
    )
    print("phases:", {k: round(v, 1) for k, v in s["timings"].items()})
    print("halving:", s["details"].get("halving"))


if __name__ == "__main__":
    main()
