"""Benchmark: the default run on large tables, timed against the teacher's own fit.

For each table the protocol of ``bench/common.py`` splits the rows (20% test, then 25% of
the rest for validation); a Pipeline teacher (an ``OrdinalEncoder`` on the text columns,
the rest passed through, then ``LGBMClassifier(n_estimators=500)``) is fitted on the 60%
train part only, in the same process and sitting as the run, so its fit time is the yard
stick the run is measured against. The distiller gets train + validation with the default
``HPMConfig()`` and a fresh ``HPMKD_HOME`` (cold cache and memory); the student, the
teacher and the hard-label twin are scored on the test rows neither saw.

Every repeat runs in its own child interpreter, so the peak resident memory printed is
that run's alone (data loading, teacher fit and run included) and peaks do not accumulate
across tables or repeats. Beside the process's own peak (``ru_maxrss``), a sampler
(:class:`RssSampler`) reports per stage the memory of the process and of its worker
processes, the workers' own peaks and the largest sum of both (``--json``: every sample).
The machine's load average is printed beside each run: on a
shared machine the ratio to the teacher fit, measured in the same child, is the figure to
compare, not the wall seconds.

    python bench/scale.py                          # nyc_flights_delay and us_census_fertility
    python bench/scale.py --table nyc --repeats 3  # medians of three
    python bench/scale.py --table million          # 1,000,000 x 50 synthetic
    python bench/scale.py --table million --synthetic-rows 500000
    python bench/scale.py --parallel off           # force sequential training (or ``on``)
    python bench/scale.py --set n_trials=2         # any HPMConfig override
    python bench/scale.py --as-app                 # as the app's jobs run (one LightGBM thread)

``--parallel auto`` (the default) makes the choice ``hpmkd distill`` makes: parallel
training from :data:`hpmkd.parallel.AUTO_PARALLEL_MIN_ROWS` rows of the table, with the
config's ``n_jobs`` (so the run is what a user gets from the command line); the choice
and why are printed with each run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Table short names and their sources (``million`` is generated, not read).
TABLES = {
    "nyc": "nyc_flights_delay.csv.gz",
    "census": "us_census_fertility.csv.gz",
    "million": None,
}
DEFAULT_DATA = ROOT.parent / "shared" / "data"
#: Marks the child's result line among anything else it prints.
MARK = "SCALE-RESULT "


def load_table(
    name: str, data_dir: Path, synthetic_rows: int = 1_000_000
) -> tuple[Any, Any]:
    """The table's features and 0/1 target (``million``: make_classification, 50 columns,
    ``synthetic_rows`` rows)."""
    import pandas as pd

    from bench.common import load_real

    if TABLES[name] is not None:
        return load_real(data_dir / TABLES[name])
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=synthetic_rows, n_features=50, n_informative=15, random_state=3
    )
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])], copy=False)
    return frame, pd.Series(y, name="target")


def pipeline_teacher(X: Any) -> Any:
    """OrdinalEncoder on the text columns (unknown and missing levels get their own
    codes), numeric columns passed through, then a 500-tree LightGBM."""
    import pandas as pd
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    encode = ColumnTransformer(
        [
            (
                "text",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=-1,
                    encoded_missing_value=-2,
                ),
                text,
            )
        ],
        remainder="passthrough",
    )
    return Pipeline(
        [("encode", encode), ("lgbm", LGBMClassifier(n_estimators=500, random_state=0, verbose=-1))]
    )


def split(X: Any, y: Any) -> dict[str, Any]:
    """The protocol split of ``bench/common.protocol_split`` without its teacher."""
    from sklearn.model_selection import train_test_split

    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=42
    )
    X_train, _X_val, y_train, _y_val = train_test_split(
        X_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=42
    )
    distill = X_rest.copy()
    distill["target"] = y_rest.to_numpy()
    test = X_test.copy()
    test["target"] = y_test.to_numpy()
    return {"X_train": X_train, "y_train": y_train, "distill": distill, "test": test}


def parallel_choice(
    parallel: str, n_rows: int, n_features: int, config: Any
) -> tuple[Any, str]:
    """``config`` with ``use_parallel`` as ``--parallel`` asks and a sentence saying why.

    ``auto`` is the command line's choice (:func:`hpmkd.parallel.auto_parallel` on the
    table's rows before the split, its features and the config's ``n_jobs``);
    ``off``/``on`` force it.
    """
    if parallel == "auto":
        from hpmkd.parallel import auto_parallel

        on, why = auto_parallel(n_rows, n_features, config.n_jobs)
    else:
        on, why = parallel == "on", f"parallel training {parallel} (--parallel {parallel})"
    return config.with_updates(use_parallel=on), why


def workers_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's child processes: the parallel run's
    loky workers, still alive (joblib keeps them for reuse), read from ``/proc``, plus
    any children already reaped. 0 for a sequential run; NaN off Linux."""
    import resource

    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return float("nan")
    pids = {pid for f in tasks.glob("*/children") for pid in f.read_text().split()}
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # exited in between: counted below once reaped
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ticks / os.sysconf("SC_CLK_TCK") + usage.ru_utime + usage.ru_stime


def _status_kib(pid: str, key: str) -> int:
    """A ``/proc/PID/status`` field in KiB (``VmRSS``, ``VmHWM``); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _process_name(pid: str) -> str:
    """A short name of a child process: loky worker, resource tracker or its command."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    if "LokyProcess" in cmd:
        return "loky worker"
    if "resource_tracker" in cmd:
        return "resource tracker"
    return cmd[:60]


def _forked_not_started(pid: str) -> bool:
    """Whether child ``pid`` is still a copy of this process (forked, not yet exec'd)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == Path("/proc/self/cmdline").read_bytes()
    except OSError:
        return True


def _children() -> set[str]:
    """Process ids of this process's live children (the loky workers of a parallel run)."""
    tasks = Path("/proc/self/task").glob("*/children")
    return {pid for f in tasks for pid in f.read_text().split()}


class RssSampler:
    """Samples resident memory every ``interval`` seconds, per stage of the repeat.

    A background thread reads ``VmRSS`` of this process and of each live child process
    (the loky workers) from ``/proc``; the stage is whatever :meth:`stage` last set (the
    bench's own steps, then the run's phases from its ``phase_start`` events). Per stage
    it keeps the largest RSS of this process, of the workers together, and of both
    together at one sample. Each worker's own peak is read from its ``VmHWM`` (the
    kernel's high-water mark, so short peaks between samples are included), as long as
    the worker is alive when sampled. Samples miss peaks shorter than ``interval`` for
    the per-stage figures; the process's own peak overall is the kernel's ``ru_maxrss``.
    Linux only (``/proc``); elsewhere it records nothing.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.current = "start"
        self.stages: dict[str, dict[str, float]] = {}
        self.worker_hwm_kib: dict[str, int] = {}
        # Every sample (seconds, stage, MiB of this process, of its children) and every
        # finished candidate (seconds, its event message): for --json, to see what ran
        # when the memory rose.
        self.timeline: list[tuple] = []
        self.t0 = time.perf_counter()
        # Per child process: what it is and the stages it was seen in (first, last).
        self.worker_info: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RssSampler:
        if Path("/proc/self/status").is_file():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def stage(self, name: str) -> None:
        """Label the following samples ``name`` (sampled once at once, so it is recorded)."""
        self.sample()
        self.current = name
        self.sample()

    def on_event(self, event: Any) -> None:
        """Run callback: each ``phase_start`` starts a stage named after its phase; each
        finished candidate is noted in the timeline."""
        if event.kind == "phase_start" and event.phase:
            self.stage(event.phase)
        elif event.kind == "phase_end":
            self.stage("between phases")
        elif event.kind == "candidate":
            self.timeline.append((round(time.perf_counter() - self.t0, 2), event.message))

    def sample(self) -> None:
        """One sample of this process and its children."""
        own = _status_kib("self", "VmRSS")
        workers = 0
        for pid in _children():
            if _forked_not_started(pid):
                # Between fork and exec a starting worker shares this process's pages,
                # and its RSS and high-water mark count them: not memory of its own.
                continue
            workers += _status_kib(pid, "VmRSS")
            hwm = _status_kib(pid, "VmHWM")
            self.worker_hwm_kib[pid] = max(self.worker_hwm_kib.get(pid, 0), hwm)
            if pid not in self.worker_info:
                self.worker_info[pid] = [_process_name(pid), self.current, self.current]
            self.worker_info[pid][2] = self.current
        rec = self.stages.setdefault(self.current, {"own": 0.0, "workers": 0.0, "total": 0.0})
        rec["own"] = max(rec["own"], own / 1024)
        rec["workers"] = max(rec["workers"], workers / 1024)
        rec["total"] = max(rec["total"], (own + workers) / 1024)
        self.timeline.append(
            (round(time.perf_counter() - self.t0, 2), self.current, own // 1024, workers // 1024)
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def report(self) -> dict[str, Any]:
        """Per-stage peaks (MiB) and the workers' own peaks (MiB, one per worker seen)."""
        stages = {k: {m: round(v, 1) for m, v in r.items()} for k, r in self.stages.items()}
        total = max((r["total"] for r in self.stages.values()), default=0.0)
        return {
            "stages": stages,
            "worker_peaks_mib": sorted(round(v / 1024, 1) for v in self.worker_hwm_kib.values()),
            "children": [
                {"pid": pid, "what": info[0], "seen": f"{info[1]} .. {info[2]}",
                 "peak_mib": round(self.worker_hwm_kib.get(pid, 0) / 1024, 1)}
                for pid, info in self.worker_info.items()
            ],
            "total_peak_mib": round(total, 1),
            "timeline": self.timeline,
        }


def child(
    table: str,
    data_dir: Path,
    settings: dict[str, str],
    parallel: str = "auto",
    synthetic_rows: int = 1_000_000,
    as_app: bool = False,
) -> dict[str, Any]:
    """One repeat: load, split, fit the teacher (timed), distill (timed), score.

    ``as_app``: the run inside :func:`hpmkd.native_threads.shared_process`, as the app's
    jobs run (LightGBM on one thread in the run's own process).
    """
    import contextlib
    import resource

    from bench.common import Timer, fresh_home, timed_distill
    from hpmkd import HPMConfig
    from hpmkd.native_threads import shared_process

    load_before = os.getloadavg()[0]
    with RssSampler() as rss:
        rss.stage("load")
        X, y = load_table(table, data_dir, synthetic_rows)
        rss.stage("split")
        parts = split(X, y)
        del X, y
        teacher = pipeline_teacher(parts["X_train"])
        rss.stage("teacher fit")
        cpu = time.process_time()
        with Timer() as fit:
            teacher.fit(parts["X_train"], parts["y_train"])
        fit_cpu = time.process_time() - cpu
        parts = {"teacher": teacher, "distill": parts["distill"], "test": parts["test"]}
        n_rows = len(parts["distill"]) + len(parts["test"])
        n_features = parts["test"].shape[1] - 1  # all columns but the target
        config, parallel_why = parallel_choice(
            parallel, n_rows, n_features, HPMConfig.from_dict(settings)
        )
        with tempfile.TemporaryDirectory() as home:
            fresh_home(Path(home))
            rss.stage("dataset")
            cpu = time.process_time()
            with shared_process() if as_app else contextlib.nullcontext():
                distiller, seconds = timed_distill(
                    parts, config, "auto", name=table, callbacks=[rss.on_event]
                )
            run_cpu = time.process_time() - cpu
            rss.stage("after run")
            workers_cpu = workers_cpu_seconds()
    s = distiller.summary()
    return {
        "table": table,
        "rows": s["n_rows"],
        "features": s["n_features"],
        "teacher_fit_s": fit.seconds,
        "run_s": seconds,
        "ratio": seconds / fit.seconds,
        # CPU seconds of this process (all threads) and, for the run, of its worker
        # processes: less sensitive to other processes on a shared machine than wall
        # seconds, though thread spinning under contention still inflates the teacher's
        # multi-threaded fit.
        "teacher_fit_cpu_s": fit_cpu,
        "run_cpu_s": run_cpu,
        "workers_cpu_s": workers_cpu,
        "parallel": config.use_parallel,
        "parallel_why": parallel_why,
        "as_app": as_app,
        "phases": {k: v for k, v in s["timings"].items() if k != "total"},
        # The kernel's ru_maxrss of this process (data, teacher fit and run), not of its
        # children: a child's ru_maxrss counts this process's pages it shared between
        # fork and exec. The workers' own peaks and the sampled peak of this process and
        # its workers together come from RssSampler.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_peak_rss_mib": max(rss.report()["worker_peaks_mib"], default=0.0),
        "memory": rss.report(),
        "selected": s["best_model"],
        "student_bytes": s["student"]["size_bytes"],
        "teacher_bytes": s["teacher"]["size_bytes"],
        "size_ratio": s["compression"]["size_ratio"],
        "student_ks": s["student"]["ks"],
        "teacher_ks": s["teacher"]["ks"],
        "twin_ks": (s["baseline"] or {}).get("ks"),
        "twin": s["baseline_model"],
        "stopped_by_time_budget": s["stopped_by_time_budget"],
        "halving": s["details"].get("halving"),
        "capacity": s["details"].get("capacity"),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def run_child(table: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one repeat in a fresh interpreter and read its result line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", table]
    cmd += ["--data", str(args.data), "--parallel", args.parallel]
    cmd += ["--synthetic-rows", str(args.synthetic_rows)]
    for item in args.settings:
        cmd += ["--set", item]
    if args.as_app:
        cmd.append("--as-app")
    env = dict(os.environ)
    # The teacher's OpenMP threads sleep while they wait instead of spinning: on a shared,
    # oversubscribed machine a spinning thread burns the CPU its partner needs (the 5.8 s
    # nyc_flights_delay teacher fit took 175 s at load 16, and made no progress for 25
    # minutes at load 40). Students train single-threaded and are not affected.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"scale.py: the {table} run failed (exit {proc.returncode}); see above")
    return json.loads(lines[-1][len(MARK) :])


def describe(r: dict[str, Any]) -> str:
    """One line per repeat."""
    phases = " / ".join(f"{k} {v:.1f}" for k, v in r["phases"].items())
    size = f"{r['size_ratio']:.0f}x smaller" if r["size_ratio"] else "size n/a"
    twin = f"{r['twin_ks']:.4f}" if r["twin_ks"] is not None else "n/a"
    return (
        f"{r['table']} ({r['rows']:,} x {r['features']}): teacher fit {r['teacher_fit_s']:.1f}s, "
        f"run {r['run_s']:.1f}s = {r['ratio']:.1f}x (CPU {r['teacher_fit_cpu_s']:.1f}s / "
        f"{r['run_cpu_s']:.1f}s + workers {r['workers_cpu_s']:.1f}s); phases {phases}; peak RSS "
        f"{r['peak_rss_mib']:.0f} MiB (workers' largest {r['workers_peak_rss_mib']:.0f} MiB; "
        f"sampled peak of both together {r['memory']['total_peak_mib']:.0f} MiB); "
        f"selected {r['selected']} ({r['student_bytes']:,} B, "
        f"{size}); test KS student {r['student_ks']:.4f} teacher {r['teacher_ks']:.4f} "
        f"twin {twin}; {r['parallel_why']}; load {r['load_before']:.2f}->{r['load_after']:.2f}"
    )


def describe_memory(r: dict[str, Any]) -> str:
    """One line: the sampled RSS peaks per stage (this process / workers, MiB)."""
    stages = ", ".join(
        f"{k} {v['own']:.0f}/{v['workers']:.0f}" for k, v in r["memory"]["stages"].items()
    )
    children = "; ".join(
        f"{c['what']} {c['peak_mib']:.0f} MiB ({c['seen']})" for c in r["memory"]["children"]
    ) or "none"
    return (
        f"  RSS MiB per stage (this process / its children, sampled every 0.1 s): {stages}\n"
        f"  children's own peaks (VmHWM) and the stages they were seen in: {children}"
    )


def main() -> None:
    """Run the tables (each repeat in a child) and print lines and medians."""
    from bench.common import median

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=[*TABLES, "both"], default="both")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--set", action="append", default=[], dest="settings")
    parser.add_argument(
        "--parallel",
        choices=["auto", "off", "on"],
        default="auto",
        help="parallel training: the command line's automatic choice (default), off or on",
    )
    parser.add_argument(
        "--synthetic-rows", type=int, default=1_000_000,
        help="rows of the generated table (--table million; default 1,000,000)",
    )
    parser.add_argument("--json", type=Path, help="also write every repeat's result here")
    parser.add_argument(
        "--as-app", action="store_true",
        help="run as the app's jobs run: LightGBM on one thread in the run's process",
    )
    parser.add_argument("--child", choices=list(TABLES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = dict(s.split("=", 1) for s in args.settings)
    if args.child:
        result = child(args.child, args.data, settings, args.parallel, args.synthetic_rows,
                       args.as_app)
        print(MARK + json.dumps(result), flush=True)
        return
    tables = ["nyc", "census"] if args.table == "both" else [args.table]
    everything = []
    for table in tables:
        runs = []
        for _ in range(args.repeats):
            runs.append(run_child(table, args))
            print(describe(runs[-1]), flush=True)
            print(describe_memory(runs[-1]), flush=True)
        everything += runs
        if args.repeats > 1:
            med = {k: median([r[k] for r in runs]) for k in ("teacher_fit_s", "run_s", "ratio")}
            phases = {k: median([r["phases"].get(k, 0.0) for r in runs]) for k in runs[0]["phases"]}
            print(
                f"{table} medians of {args.repeats}: teacher fit {med['teacher_fit_s']:.1f}s, "
                f"run {med['run_s']:.1f}s, ratio {med['ratio']:.1f}x; phases "
                + " / ".join(f"{k} {v:.1f}" for k, v in phases.items())
                + f"; peak RSS max {max(r['peak_rss_mib'] for r in runs):.0f} MiB; student KS "
                f"median {median([r['student_ks'] for r in runs]):.4f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
