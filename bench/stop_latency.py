"""Stop latency per phase: how long a run takes to return after "stop and keep the best".

For each phase, a cold run (fresh ``HPMKD_HOME``) of the issue's case b (or c) requests a
stop ``--delay`` seconds after that phase starts (from a timer thread, as the app's button
does) and measures the wall time from the request to ``AutoDistiller.run()`` returning
with its partial result. The ensemble phase runs with ``use_multi_teacher=True``.

    python bench/stop_latency.py --case b
    python bench/stop_latency.py --table ../shared/data/caravan_insurance.csv.gz
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

from bench.common import fresh_home, load_real, protocol_split, synthetic_case

PHASES = ("select", "chain", "train", "ensemble", "compare")


def stop_in(parts: dict, phase: str, delay: float, home: Path) -> dict:
    """One run stopped ``delay`` s into ``phase``; its latency and what it kept."""
    from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, StopRequest

    fresh_home(home)
    config = HPMConfig(use_multi_teacher=phase == "ensemble")
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
    distiller.run(callbacks=[on_event], stop=stop)
    returned, cpu_returned = time.perf_counter(), time.process_time()
    result = distiller.result_
    latency = returned - stop.requested_at if stop.requested_at is not None else float("nan")
    return {
        "phase": phase,
        "latency_s": latency,
        # CPU seconds of this process over the same span: on a machine shared with other
        # work the wall time stretches, this does not (the run is single-threaded).
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
    args = parser.parse_args()
    data = load_real(args.table) if args.table else synthetic_case(args.case)
    label = Path(args.table).name.split(".")[0] if args.table else f"case {args.case}"
    parts = protocol_split(*data)
    with tempfile.TemporaryDirectory() as tmp:
        for i, phase in enumerate(args.phases.split(",")):
            row = stop_in(parts, phase, args.delay, Path(tmp) / str(i))
            print(
                f"{label} stop {args.delay:g} s into {row['phase']}: returned "
                f"{row['latency_s']:.2f} s after the request ({row['cpu_s']:.2f} CPU s, "
                f"load {row['load']:.1f}); {row['candidates']} candidates "
                f"kept, selected {row['selected']} (test KS {row['test_ks']:.4f}); "
                f"reason: {row['reason']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
