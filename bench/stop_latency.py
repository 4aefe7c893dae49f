"""Stop latency per phase: how long a run takes to return after "stop and keep the best".

For each phase, a cold run (fresh ``HPMKD_HOME``) of the issue's case b (or c) requests a
stop ``--delay`` seconds after that phase starts (from a timer thread, as the app's button
does) and measures the wall time from the request to ``AutoDistiller.run()`` returning
with its partial result. The ensemble phase runs with ``use_multi_teacher=True``.

The teacher is ``bench.common.lgbm_pipeline`` (LightGBM with 500 trees, an ordinal
encoder in front for tables with text columns) fitted on the protocol's 60% train part.
``--parallel`` trains with ``use_parallel=True, n_jobs=2`` (loky), as the command line
and the app choose by themselves from 50,000 rows. After each run the script also says
what was still burning CPU: abandoned fits (threads) and this process's child processes
(loky workers), over the second after ``run()`` returned.

    python bench/stop_latency.py --case b
    python bench/stop_latency.py --table ../shared/data/caravan_insurance.csv.gz
    python bench/stop_latency.py --table ../shared/data/nyc_flights_delay.csv.gz --parallel
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.model_selection import train_test_split

from bench.common import fresh_home, lgbm_pipeline, load_real, synthetic_case

PHASES = ("select", "chain", "train", "ensemble", "compare")


def protocol_split(X, y) -> dict:
    """``bench.common.protocol_split`` with a teacher that also takes text columns."""
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=42
    )
    X_train, _X_val, y_train, _y_val = train_test_split(
        X_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=42
    )
    teacher = lgbm_pipeline(X_train, n_estimators=500).fit(X_train, y_train)
    distill = X_rest.copy()
    distill["target"] = y_rest.to_numpy()
    test = X_test.copy()
    test["target"] = y_test.to_numpy()
    return {"teacher": teacher, "distill": distill, "test": test}


def _children_cpu() -> dict[int, float]:
    """CPU seconds so far of each child process of this one (Linux ``/proc``; else {})."""
    out: dict[int, float] = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return out
    tick = os.sysconf("SC_CLK_TCK")
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/children") as handle:
                pids = [int(p) for p in handle.read().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the ")" of the command: state is field 0, utime 11, stime 12.
            if fields[0] != "Z":
                out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def busy_after(window: float = 1.0) -> dict:
    """What still burns CPU after ``run()`` returned: abandoned fits (threads) and
    child processes, with the children's CPU seconds over the next ``window`` s."""
    threads = sum(t.name.startswith("hpmkd-abandonable") for t in threading.enumerate())
    before = _children_cpu()
    time.sleep(window)
    after = _children_cpu()
    return {
        "abandoned_threads": threads,
        "children": len(after),
        "children_cpu_s": sum(after[p] - before.get(p, 0.0) for p in after),
    }


def stop_in(parts: dict, phase: str, delay: float, home: Path, parallel: bool) -> dict:
    """One run stopped ``delay`` s into ``phase``; its latency and what it kept."""
    from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, RunCancelled, StopRequest

    fresh_home(home)
    extra = {"use_parallel": True, "n_jobs": 2} if parallel else {}
    config = HPMConfig(use_multi_teacher=phase == "ensemble", **extra)
    ds = DistillationDataset(parts["distill"], target="target", teacher=parts["teacher"],
                             test_data=parts["test"], name="case")
    stop = StopRequest()
    cpu_at_request: list[float] = []

    def request() -> None:
        cpu_at_request.append(time.process_time())
        stop.request()

    def on_event(event) -> None:
        if event.kind == "phase_start" and event.phase == phase and not stop.requested:
            threading.Timer(delay, request).start()

    distiller = AutoDistiller(ds, method="hpm", config=config, random_state=42)
    try:
        distiller.run(callbacks=[on_event], stop=stop)
        result = distiller.result_
    except RunCancelled as exc:
        # Stopped before any model finished: nothing to keep (a clear cancellation).
        result = None
        cancelled = str(exc)
    returned, cpu_returned = time.perf_counter(), time.process_time()
    latency = returned - stop.requested_at if stop.requested_at is not None else float("nan")
    busy = busy_after()
    if result is None:
        return {**busy, "phase": phase, "latency_s": latency, "load": os.getloadavg()[0],
                "cpu_s": cpu_returned - cpu_at_request[0] if cpu_at_request else float("nan"),
                "reason": f"cancelled: {cancelled}", "candidates": 0, "selected": "none",
                "test_ks": float("nan")}
    return {
        **busy,
        "phase": phase,
        "latency_s": latency,
        # CPU seconds of this process over the same span: on a machine shared with other
        # work the wall time stretches, this does not (the run's own thread plus any
        # abandoned fit still running; loky workers are other processes, see busy_after).
        "cpu_s": cpu_returned - cpu_at_request[0] if cpu_at_request else float("nan"),
        "load": os.getloadavg()[0],
        "reason": result.stop_reason,
        "candidates": len(result.candidates),
        "selected": result.selected.name,
        "test_ks": result.selected.test.get("ks"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", choices=["b", "c"], default="b")
    parser.add_argument("--table", default=None,
                        help="a development table (gzip CSV with a 0/1 target) instead of "
                        "the synthetic case, e.g. ../shared/data/caravan_insurance.csv.gz")
    parser.add_argument("--delay", type=float, default=0.5,
                        help="seconds after the phase starts (default 0.5)")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--parallel", action="store_true",
                        help="use_parallel=True, n_jobs=2 (loky), as chosen from 50,000 rows")
    args = parser.parse_args()
    data = load_real(args.table) if args.table else synthetic_case(args.case)
    label = Path(args.table).name.split(".")[0] if args.table else f"case {args.case}"
    label += " parallel" if args.parallel else " sequential"
    parts = protocol_split(*data)
    with tempfile.TemporaryDirectory() as tmp:
        for i, phase in enumerate(args.phases.split(",")):
            row = stop_in(parts, phase, args.delay, Path(tmp) / str(i), args.parallel)
            print(
                f"{label} stop {args.delay:g} s into {row['phase']}: returned "
                f"{row['latency_s']:.2f} s after the request ({row['cpu_s']:.2f} CPU s, "
                f"load {row['load']:.1f}); {row['candidates']} candidates "
                f"kept, selected {row['selected']} (test KS {row['test_ks']:.4f}); "
                f"reason: {row['reason']}; in the next second: "
                f"{row['abandoned_threads']} abandoned fit(s) running, "
                f"{row['children']} child process(es) using {row['children_cpu_s']:.2f} CPU s",
                flush=True,
            )


if __name__ == "__main__":
    main()
