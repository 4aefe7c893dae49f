"""Command-line start and identical-rerun times (issue 12): ``hpmkd --help`` and a cached
rerun of case b, each a fresh process as from the shell, medians of ``--repeats``.

Writes case b as files (the distiller's rows, the test rows, the teacher as joblib), runs
``hpmkd distill`` once cold in an empty ``HPMKD_HOME``, then times the help and the
identical reruns (same files, arguments and home). ``--root`` points at another checkout
of the project, to compare commits in one sitting::

    python bench/cli_speed.py                       # this checkout
    python bench/cli_speed.py --root /tmp/old-checkout
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import median, protocol_split, synthetic_case


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of one process (its exit code must be 0)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    """Time and print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = Path(args.root).resolve()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        parts = protocol_split(*synthetic_case("b"))
        parts["distill"].to_csv(folder / "b.csv", index=False)
        parts["test"].to_csv(folder / "b_test.csv", index=False)
        import joblib

        joblib.dump(parts["teacher"], folder / "teacher.joblib")
        env = {**os.environ, "PYTHONPATH": str(root), "HPMKD_HOME": str(folder / "home")}
        hpmkd = [python, "-c", "import sys; from hpmkd.cli import main; sys.exit(main())"]
        run = [*hpmkd, "distill", "b.csv", "--target", "target", "--teacher",
               "teacher.joblib", "--test-data", "b_test.csv", "--quiet"]
        cold = timed([*run, "--out", "cold"], env, folder)
        out = {"root": str(root), "cold_run_s": round(cold, 2)}
        for name, argv in (
            ("help_s", [*hpmkd, "--help"]),
            ("distill_help_s", [*hpmkd, "distill", "--help"]),
            ("cached_rerun_s", [*run, "--out", "again"]),
            ("python_startup_s", [python, "-c", "pass"]),
        ):
            times = [timed(argv, env, folder) for _ in range(args.repeats)]
            out[name] = round(median(times), 3)
            out[name.removesuffix("_s") + "_all"] = [round(t, 3) for t in times]
        same = all(
            (folder / "cold" / f).read_bytes() == (folder / "again" / f).read_bytes()
            for f in ("results.csv", "best_model.joblib")
        )
        out["rerun_outputs_equal_cold"] = same
        summary = json.loads((folder / "again" / "summary.json").read_text())
        out["rerun_served_from_run_cache"] = bool(summary.get("run_cache", {}).get("served"))
    out["load_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
