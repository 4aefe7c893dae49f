"""Meta-feature distances between real tables and resamples of them: the evidence behind
``SharedOptimizationMemory``'s similarity threshold (``SIMILARITY_THRESHOLD``).

For every development table (gzip CSV with a 0/1 ``target``) the script computes
``DistillationDataset.meta_features()`` with a teacher (a 100-tree LightGBM fitted on half
of the rows, its probabilities given as columns), then the same for resamples of the
table, which must count as similar: a bootstrap resample (same size, with replacement), a
random half and a random tenth (at least 300 rows). It prints

* the largest distance between a table and any of its resamples (must be accepted), and
* the distance between every pair of different tables (should be rejected),

as Markdown tables for ``docs/HPM.md``.

    python bench/memory_distances.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import load_real
from hpmkd import DistillationDataset
from hpmkd.components.memory import SIMILARITY_THRESHOLD, meta_feature_distance


def teacher_columns(X: pd.DataFrame, y: pd.Series, seed: int = 0) -> pd.DataFrame:
    """Probabilities of a 100-tree LightGBM fitted on a random half of the rows."""
    from lightgbm import LGBMClassifier

    codes = X.copy()
    for col in codes.columns:
        if not pd.api.types.is_numeric_dtype(codes[col]):
            codes[col] = codes[col].astype("category").cat.codes
    rng = np.random.default_rng(seed)
    half = rng.random(len(codes)) < 0.5
    model = LGBMClassifier(n_estimators=100, random_state=seed, verbose=-1, n_jobs=1)
    model.fit(codes[half], y[half])
    proba = model.predict_proba(codes)
    return pd.DataFrame(proba, columns=["p_0", "p_1"], index=X.index)


def meta(frame: pd.DataFrame, name: str) -> dict[str, float]:
    """Meta-features of a table holding ``target`` and teacher columns ``p_0``, ``p_1``."""
    ds = DistillationDataset(
        frame.reset_index(drop=True),
        target="target",
        teacher_proba_cols=["p_0", "p_1"],
        name=name,
    )
    return ds.meta_features()


def main() -> None:
    """Print the within-table and between-table distance tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="folder of *.csv.gz tables")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    tables: dict[str, dict[str, float]] = {}
    within: dict[str, dict[str, float]] = {}
    for path in sorted(Path(args.data).glob("*.csv.gz")):
        name = path.name.removesuffix(".csv.gz")
        X, y = load_real(path)
        frame = X.copy()
        frame[["p_0", "p_1"]] = teacher_columns(X, y, args.seed)
        frame["target"] = y.to_numpy()
        base = meta(frame, name)
        tables[name] = base
        n = len(frame)
        resamples = {
            "bootstrap": frame.iloc[rng.integers(0, n, n)],
            "half": frame.iloc[rng.permutation(n)[: n // 2]],
            "tenth": frame.iloc[rng.permutation(n)[: max(n // 10, 300)]],
        }
        within[name] = {
            kind: meta_feature_distance(base, meta(sub, f"{name}-{kind}"))
            for kind, sub in resamples.items()
        }
        print(f"{name}: {base}", file=sys.stderr)

    print("| table | bootstrap | half | tenth |")
    print("|---|---|---|---|")
    for name, row in within.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in row) + " |")
    names = list(tables)
    print()
    print("| | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for a in names:
        cells = [
            "-" if a == b else f"{meta_feature_distance(tables[a], tables[b]):.3f}" for b in names
        ]
        print(f"| {a} | " + " | ".join(cells) + " |")
    pairs = [
        meta_feature_distance(tables[a], tables[b]) for a, b in itertools.combinations(names, 2)
    ]
    largest_within = max(max(row.values()) for row in within.values())
    print()
    print(
        f"largest within-table distance {largest_within:.3f}; smallest between-table "
        f"distance {min(pairs):.3f}; median between-table {np.median(pairs):.3f}; "
        f"threshold {SIMILARITY_THRESHOLD}"
    )


if __name__ == "__main__":
    main()
