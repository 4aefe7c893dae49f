"""Benchmark: the ``below_noise_floor`` leakage signal against the size of the table
hpmkd gets, on the teachers of ``bench/oof.py``.

For one development table (default ``us_census_fertility``, the table whose leak
``in_sample_fit`` misses): the leaky teacher (fitted on every row) and the clean one
(fitted on half A), as ``bench/oof.py`` builds them (same seed, cached in ``--out``).
hpmkd's table is a stratified sample of ``n`` rows of half B, for each ``--sizes``;
:func:`hpmkd.leakage.check_dataset` runs on it and the signal's numbers and its own time
are printed.

    python bench/noise_floor.py --data ../shared/data --out /tmp/oof-bench
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/oof.py's helpers
from oof import prepare

from hpmkd.data import DistillationDataset
from hpmkd.leakage import _noise_floor_signals, _non_test_rows


def main(argv: list[str] | None = None) -> int:
    """Print one Markdown row per size and teacher."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="bench/oof.py's work folder")
    parser.add_argument("--table", default="us_census_fertility")
    parser.add_argument("--sizes", default="10000,30000,60000,130000")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    path = Path(args.data) / f"{args.table}.csv.gz"
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    files = prepare(path, work, 10000)  # the teachers (cached); B is rebuilt below
    frame = pd.read_csv(path)
    y = frame["target"]
    _a, b = train_test_split(np.arange(len(frame)), test_size=0.5, stratify=y, random_state=0)
    print("| rows given | teacher | fired | Brier - noise | 99% interval | repeated rows | "
          "cells | signal s |")
    print("|---|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        rows = b
        if len(b) > size:
            rows, _ = train_test_split(b, train_size=size, stratify=y.iloc[b], random_state=0)
        part = frame.iloc[np.sort(rows)].reset_index(drop=True)
        for kind in ("leaky", "clean"):
            ds = DistillationDataset(part, "target", teacher=joblib.load(files[kind]))
            non_test = _non_test_rows(ds, args.seed)
            start = time.perf_counter()
            found = _noise_floor_signals(ds, non_test, args.seed)
            seconds = time.perf_counter() - start
            if not found:
                print(f"| {len(part):,} | {kind} | not measured (too few repeats) | | | | | "
                      f"{seconds:.2f} |")
                continue
            v = found[0].values
            print(f"| {len(part):,} | {kind} | {'yes' if found[0].fired else 'no'} | "
                  f"{v['excess']:+.4f} | [{v['excess_low']:+.4f}, {v['excess_high']:+.4f}] | "
                  f"{v['repeated_rows']:,.0f} | {v['cells']:,.0f} | {seconds:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
