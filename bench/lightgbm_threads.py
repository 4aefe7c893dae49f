"""LightGBM fits in several threads of one process: with which thread counts it crashes,
and whether :func:`hpmkd.native_threads.lightgbm_threads` prevents it.

Each trial is a child process in which three threads fit and predict small LightGBM
models (30 trees, 15 leaves, 5,000 rows x 20 features) in a loop for ``--seconds``:

- ``one``: every call with one thread; ``two``: every call with two;
- ``mixed``: two threads with one, one thread with two (a parallel run's in-process fits
  beside its leakage check, or two app jobs with different settings);
- ``mixed-guarded``: the same, each fit and prediction inside ``lightgbm_threads(n)``.

One JSON line per trial: the mode, the child's exit code (-11: killed by a segmentation
fault), the fits it finished and its seconds; then per mode the crashed trials.

    python bench/lightgbm_threads.py --trials 4 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {"one": (1, 1, 1), "two": (2, 2, 2), "mixed": (1, 2, 1), "mixed-guarded": (1, 2, 1)}


def child(mode: str, seconds: float) -> None:
    """Fit in three threads until ``seconds`` have passed; print the fits per thread."""
    import contextlib
    import threading

    import numpy as np
    from lightgbm import LGBMClassifier

    sys.path.insert(0, str(ROOT))
    from hpmkd.native_threads import lightgbm_threads

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 20))
    y = (X[:, 0] + rng.normal(size=5000) > 0).astype(int)
    end = time.monotonic() + seconds
    fits = [0] * len(MODES[mode])

    def work(i: int, threads: int) -> None:
        while time.monotonic() < end:
            guard = (lightgbm_threads(threads) if mode == "mixed-guarded"
                     else contextlib.nullcontext())
            with guard:
                model = LGBMClassifier(n_estimators=30, num_leaves=15, n_jobs=threads,
                                       verbose=-1, random_state=i)
                model.fit(X, y)
                model.predict_proba(X[:500])
            fits[i] += 1

    workers = [threading.Thread(target=work, args=(i, n)) for i, n in enumerate(MODES[mode])]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps(fits))


def main() -> None:
    """Run the trials and print one line each, then the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seconds)
        return
    crashed: dict[str, int] = {}
    for mode in args.modes.split(","):
        crashed[mode] = 0
        for trial in range(args.trials):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--seconds", str(args.seconds)],
                capture_output=True, text=True, check=False,
            )
            fits = json.loads(done.stdout) if done.returncode == 0 else None
            crashed[mode] += done.returncode != 0
            print(json.dumps({"mode": mode, "trial": trial, "exit_code": done.returncode,
                              "fits": fits,
                              "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    print(json.dumps({"trials": args.trials, "seconds": args.seconds, "crashed": crashed}))


if __name__ == "__main__":
    main()
