"""Benchmark: the leakage check and ``teacher_refit="oof"`` on the development tables,
through the command line, with Pipeline teachers saved by joblib.

For each table (gzip CSV with a 0/1 ``target``): a stratified half A and half B (seed 0).
Two teachers, the shape of issue 10 - ``Pipeline([ColumnTransformer([("cat",
OrdinalEncoder(), text_cols)], remainder="passthrough"), LGBMClassifier(n_estimators=500)])``
saved with ``joblib.dump``:

- *leaky*: fitted on every row of the table (so on every row hpmkd gets);
- *clean*: fitted on half A only.

hpmkd gets half B (a stratified sample of at most ``--max-rows`` rows of it, so the large
tables stay cheap) and runs ``hpmkd distill B.csv --teacher FILE`` for each teacher, with
``--teacher-refit none`` and ``oof``. Recorded per run, from ``summary.json`` and stderr:
whether the CLI printed the leakage warning block, the check's numbers, the teacher's and
the selected student's test KS (the test part of B: rows no student saw), and seconds.

    python bench/oof.py --data ../shared/data --out /tmp/oof-bench --max-rows 10000

The run uses a small legacy grid (``--grid``) so 28 runs take minutes, not hours; the
grid and the seed are printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

ROOT = Path(__file__).resolve().parents[1]
#: The small legacy grid of every run (families x temperatures x alphas).
GRID = ("--method", "legacy", "--set", "families=lgbm,logreg", "--set", "temperatures=1,2",
        "--set", "alphas=0.9,0.5,0.0")
WARNING = "WARNING: LEAKAGE SUSPECTED"


def pipeline_teacher(text_cols: list[str]) -> Pipeline:
    """The issue's teacher: ordinal-encoded text columns, the rest passed through, a
    500-tree LightGBM (one thread)."""
    encoder = ColumnTransformer(
        [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                encoded_missing_value=-1), text_cols)],
        remainder="passthrough",
    )
    gbm = LGBMClassifier(n_estimators=500, n_jobs=1, verbose=-1, random_state=0)
    return Pipeline([("enc", encoder), ("gbm", gbm)])


def prepare(path: Path, work: Path, max_rows: int) -> dict[str, Path]:
    """Teachers (leaky, clean) and the distiller's table B of one dataset (cached)."""
    name = path.name.split(".")[0]
    files = {
        "leaky": work / f"{name}_leaky.joblib",
        "clean": work / f"{name}_clean.joblib",
        "table": work / f"{name}_B.csv",
    }
    if all(f.exists() for f in files.values()):
        return files
    frame = pd.read_csv(path)
    X, y = frame.drop(columns="target"), frame["target"]
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    a, b = train_test_split(np.arange(len(frame)), test_size=0.5, stratify=y, random_state=0)
    joblib.dump(pipeline_teacher(text).fit(X, y), files["leaky"])
    joblib.dump(pipeline_teacher(text).fit(X.iloc[a], y.iloc[a]), files["clean"])
    if len(b) > max_rows:
        b, _ = train_test_split(b, train_size=max_rows, stratify=y.iloc[b], random_state=0)
    frame.iloc[np.sort(b)].to_csv(files["table"], index=False)
    return files


def run_cli(table: Path, teacher: Path, refit: str, out: Path, seed: int) -> dict:
    """One ``hpmkd distill`` run; what it printed and wrote."""
    command = [
        sys.executable, "-m", "hpmkd", "distill", str(table), "--target", "target",
        "--teacher", str(teacher), "--teacher-refit", refit, "--seed", str(seed),
        "--out", str(out), "--quiet", *GRID,
        "--set", "use_cache=false", "--set", "use_memory=false",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    signal = summary["leakage"]["signals"][0]["values"]
    return {
        "warned": WARNING in done.stderr,
        "suspected": summary["leakage"]["suspected"],
        "gain_low": signal["gain_low"],
        "slope_low": signal.get("calibration_slope_low"),
        "check_s": summary["leakage"]["seconds"],
        "teacher_ks": summary["teacher"]["ks"],
        "student_ks": summary["student"]["ks"],
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of the development tables")
    parser.add_argument("--out", required=True, help="work folder (teachers, tables, runs)")
    parser.add_argument("--max-rows", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--only", default=None, help="comma-separated table names")
    args = parser.parse_args(argv)
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    paths = sorted(Path(args.data).glob("*.csv.gz"))
    if args.only:
        keep = set(args.only.split(","))
        paths = [p for p in paths if p.name.split(".")[0] in keep]
    rows = []
    for path in paths:
        name = path.name.split(".")[0]
        files = prepare(path, work, args.max_rows)
        for kind in ("leaky", "clean"):
            for refit in ("none", "oof"):
                result = run_cli(files["table"], files[kind], refit,
                                 work / f"run_{name}_{kind}_{refit}", args.seed)
                rows.append({"table": name, "teacher": kind, "refit": refit, **result})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"grid: {' '.join(GRID)}; seed {args.seed}; B at most {args.max_rows:,} rows\n")
    print("| table | teacher | refit | warning | gain low | slope low | check s | "
          "teacher test KS | student test KS | run s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        slope = "-" if r["slope_low"] is None else f"{r['slope_low']:.2f}"
        print(f"| {r['table']} | {r['teacher']} | {r['refit']} | "
              f"{'yes' if r['warned'] else 'no'} | {r['gain_low']:+.3f} | {slope} | "
              f"{r['check_s']:.1f} | {r['teacher_ks']:.4f} | {r['student_ks']:.4f} | "
              f"{r['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
