"""Benchmark: where parallel training pays, to choose the auto-parallel threshold.

Runs the default configuration with ``use_parallel`` off and on (loky, ``n_jobs=2``,
``n_jobs=1`` inside the workers) on row subsamples of a development table, each run in its
own child interpreter with a fresh ``HPMKD_HOME``, against the Pipeline teacher of
``bench/scale.py`` fitted on the protocol's train part. Prints the wall and CPU seconds of
each run and the machine's load average beside them (a busy machine takes the second
core away from the parallel run: read the figures with the load).

    python bench/auto_parallel.py --table census --rows 20000,80000,0
    python bench/auto_parallel.py --table nyc --rows 0

``--rows 0`` is the whole table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scale import (  # noqa: E402
    DEFAULT_DATA,
    load_table,
    pipeline_teacher,
    split,
    workers_cpu_seconds,
)

MARK = "PARALLEL-RESULT "


def child(table: str, rows: int, parallel: bool, data_dir: Path) -> dict[str, Any]:
    """One run: subsample, split, fit the teacher, distill (timed)."""
    from bench.common import fresh_home, timed_distill
    from hpmkd import HPMConfig

    X, y = load_table(table, data_dir)
    if rows and rows < len(y):
        from sklearn.model_selection import train_test_split

        X, _, y, _ = train_test_split(X, y, train_size=rows, stratify=y, random_state=0)
    parts = split(X, y)
    teacher = pipeline_teacher(parts["X_train"]).fit(parts["X_train"], parts["y_train"])
    parts = {"teacher": teacher, "distill": parts["distill"], "test": parts["test"]}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as home:
        fresh_home(Path(home))
        cpu = time.process_time()
        distiller, seconds = timed_distill(parts, HPMConfig(use_parallel=parallel), "auto")
        cpu = time.process_time() - cpu
        workers = workers_cpu_seconds()
    s = distiller.summary()
    return {
        "table": table,
        "rows": s["n_rows"],
        "features": s["n_features"],
        "parallel": parallel,
        "run_s": seconds,
        "main_cpu_s": cpu,
        "workers_cpu_s": workers,
        "phases": {k: round(v, 1) for k, v in s["timings"].items() if k != "total"},
        "student_ks": s["student"]["ks"],
        "selected": s["best_model"],
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def main() -> None:
    """Off and on for every row count; one line per run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=["nyc", "census"], default="census")
    parser.add_argument("--rows", default="20000,80000,0")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "PARALLEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows, parallel = int(args.child[0]), args.child[1] == "1"
        print(MARK + json.dumps(child(args.table, rows, parallel, args.data)), flush=True)
        return
    for rows in (int(r) for r in args.rows.split(",")):
        for parallel in (False, True):
            cmd = [sys.executable, __file__, "--table", args.table, "--data", str(args.data)]
            cmd += ["--child", str(rows), "1" if parallel else "0"]
            # Sleeping, not spinning, OpenMP waits, as in bench/scale.py (a spinning
            # teacher thread burns the CPU its partner needs on a busy machine).
            env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
            if proc.returncode != 0 or not lines:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"auto_parallel.py: run failed (exit {proc.returncode})")
            r = json.loads(lines[-1][len(MARK) :])
            phases = " / ".join(f"{k} {v}" for k, v in r["phases"].items())
            print(
                f"{r['table']} {r['rows']:,} x {r['features']} parallel={r['parallel']}: "
                f"{r['run_s']:.1f}s (CPU main {r['main_cpu_s']:.1f}s + workers "
                f"{r['workers_cpu_s']:.1f}s); {phases}; KS "
                f"{r['student_ks']:.4f} {r['selected']}; load {r['load_before']:.1f}->"
                f"{r['load_after']:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
