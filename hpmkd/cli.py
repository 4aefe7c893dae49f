"""``hpmkd distill``: the command-line face of the engine.

Exit codes: 0 success; 2 bad input (one ``error: ...`` line on stderr, nothing written);
1 an unexpected internal failure. A setting that has no effect on the method that runs
(``HPMConfig.ineffective_messages``) is a ``warning: ...`` line on stderr before the work;
the run goes on. Unless ``--set use_parallel=...`` is given, an hpm run on a table of at
least ``hpmkd.parallel.AUTO_PARALLEL_MIN_ROWS`` rows trains in parallel, and a line on
stderr says so (the config default stays off).

Every argument is checked before any work, in this order: the arguments themselves, the
output folder (can it be written?), ``--seed``, ``--test-size``, the package ``--report``
needs, the input files, the settings (``--set``), then the data and the teachers
(``DistillationDataset``) and the split. Outputs are written into a scratch folder
``.hpmkd-tmp-<pid>-<random>`` next to ``--out`` and moved into place at the end; a scratch
folder left by a killed run is removed by the next run that writes next to it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hpmkd.config import HPMConfig, settings_help
from hpmkd.errors import HPMKDConfigWarning, HPMKDInputError, RunCancelled
from hpmkd.events import Event
from hpmkd.extras import require
from hpmkd.stop import StopRequest

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2
#: Ctrl-C (128 + SIGINT), also when the best so far was kept and written.
EXIT_INTERRUPTED = 130
#: Config fields the CLI reads itself, whatever the method: the teachers' probabilities
#: are cached with them before the run (``DistillationDataset(cache=...)``).
CLI_USED_FIELDS = ("use_cache", "cache_dir", "cache_size_limit_gb")
#: Prefix of the scratch folders the outputs are written into before they are moved.
SCRATCH_PREFIX = ".hpmkd-tmp-"
#: A scratch folder older than this is stale even when its process id is in use again.
STALE_SCRATCH_S = 6 * 3600
_SCRATCH_NAME = re.compile(r"^\.hpmkd-tmp-(?:(?P<pid>[0-9]+)-)?[A-Za-z0-9_]+$")


class _InputArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT, f"error: {message} (see 'hpmkd distill --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hpmkd`` command."""
    parser = _InputArgumentParser(prog="hpmkd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_InputArgumentParser)
    p = sub.add_parser(
        "distill",
        help="distill a teacher into a small student",
        # Raw: the settings list below is laid out by hpmkd.config, one entry per field.
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", help="CSV or Parquet file with features and the target")
    p.add_argument("--target", required=True, help="target column")
    p.add_argument(
        "--teacher",
        action="append",
        default=[],
        metavar="FILE",
        help="teacher model file: .joblib/.pkl/.pickle (restricted loader), LightGBM "
        ".txt/.lgb, XGBoost .json/.ubj, .skops; repeat for several teachers",
    )
    p.add_argument(
        "--trust-teacher",
        action="store_true",
        help="load the --teacher files with plain joblib, without the restricted loader. "
        "This RUNS ANY CODE in them: only for your own files on your own machine. "
        "Recorded as teacher_trusted in summary.json",
    )
    p.add_argument(
        "--teacher-proba-cols",
        default=None,
        metavar="C1,C2,...",
        help="columns already holding the teacher's class probabilities, in class order",
    )
    p.add_argument(
        "--teacher-refit",
        choices=["none", "oof"],
        default=None,
        help="oof: refit clones of the teacher on K-1 folds of the training rows (K: --set "
        "teacher_refit_folds=K, default 5), so students learn from out-of-fold soft targets "
        "and the teacher's scores come from rows it did not train on; the remedy when the "
        "teacher was trained on DATA (hpmkd warns when it looks so). Same as --set "
        "teacher_refit=oof",
    )
    p.add_argument("--method", choices=["auto", "hpm", "legacy"], default="auto")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="settings",
        help="set an HPMConfig field, e.g. --set max_configs=8 --set use_parallel=true "
        "(every field is listed below)",
    )
    p.add_argument(
        "--test-data",
        default=None,
        metavar="FILE",
        help="separate test table (same columns); default: split --test-size off DATA",
    )
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--drop", default=None, metavar="C1,C2,...", help="columns that are not features"
    )
    p.add_argument("--out", default="hpmkd-out", help="output folder (default ./hpmkd-out)")
    p.add_argument("--report", action="store_true", help="also write report.html")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def _parse_settings(items: list[str]) -> HPMConfig:
    values = {}
    for item in items:
        if "=" not in item:
            raise HPMKDInputError(f"--set {item!r} is not KEY=VALUE (e.g. --set n_trials=2).")
        key, value = item.split("=", 1)
        values[key.strip()] = value
    return HPMConfig.from_dict(values)


def _set_explicitly(items: list[str], name: str) -> bool:
    """Whether ``--set`` gave field ``name`` (whatever its value)."""
    return any(item.split("=", 1)[0].strip() == name for item in items)


def _progress(event: Event) -> None:
    if event.kind in {"phase_start", "phase_end", "info", "run_start", "run_end"}:
        prefix = f"[{event.phase}] " if event.phase else ""
        print(f"{time.strftime('%H:%M:%S')} {prefix}{event.message}", file=sys.stderr)
    elif event.kind == "candidate":
        print(f"  {event.message}", file=sys.stderr)


def check_output_folder(text: str) -> Path:
    """Check that ``--out`` can be written, before any work; returns it as a path.

    ``--out`` is a folder (created if missing, existing files in it are replaced). Writing
    is tried for real: a probe folder is made and removed where the outputs will go (in
    ``--out`` when it exists, and where the scratch folder is made next to it).

    Raises
    ------
    HPMKDInputError
        ``--out`` is a file, lies under a file, or the place cannot be written.
    """
    out = Path(text).expanduser()
    if out.exists() and not out.is_dir():
        raise HPMKDInputError(
            f"--out {text!r} is an existing file, not a folder. Give a folder path (it is "
            "created if missing), or move the file away."
        )
    if out.is_dir():
        _probe_writable(out, text)
    existing = out.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise HPMKDInputError(
            f"--out {text!r} cannot be created: {str(existing)!r} is a file, not a folder. "
            "Give a folder path whose parents are folders."
        )
    _probe_writable(existing, text)
    return out


def _probe_writable(folder: Path, text: str) -> None:
    try:
        probe = tempfile.mkdtemp(prefix=".hpmkd-probe-", dir=folder)
        os.rmdir(probe)
    except OSError as exc:
        raise HPMKDInputError(
            f"--out {text!r} cannot be written: creating a folder in {str(folder)!r} failed "
            f"({exc.strerror or exc}). Choose a folder you can write to."
        ) from None


def check_input_file(text: str, what: str) -> Path:
    """Check that an input path is an existing, readable file (not a folder).

    Parameters
    ----------
    text : str
        The path as given.
    what : str
        What it is ("Data file", "Teacher file"), for the message.
    """
    path = Path(text).expanduser()
    if not path.exists():
        raise HPMKDInputError(f"{what} {text!r} does not exist. Check the path.")
    if path.is_dir():
        raise HPMKDInputError(
            f"{what} {text!r} is a folder, not a file. Give the file inside it."
        )
    if not os.access(path, os.R_OK):
        raise HPMKDInputError(
            f"{what} {text!r} cannot be read (permission denied). Check its permissions."
        )
    return path


def remove_stale_scratch(folder: Path, now: float | None = None) -> list[Path]:
    """Remove scratch folders that killed runs left in ``folder``; returns them.

    A scratch folder is this user's ``.hpmkd-tmp-<pid>-<random>`` folder whose process
    no longer runs, or any ``.hpmkd-tmp-*`` folder of this user older than
    :data:`STALE_SCRATCH_S` (a process id may be reused; writing outputs takes seconds).
    Symbolic links and other users' folders are never touched.

    Parameters
    ----------
    folder : Path
        Where ``--out`` lives.
    now : float, optional
        ``time.time()`` (for tests).
    """
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _SCRATCH_NAME.match(entry.name)
        if not match:
            continue
        try:
            info = entry.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        pid = match.group("pid")
        old = now - info.st_mtime > STALE_SCRATCH_S
        if old or (pid is not None and not _process_runs(int(pid))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def write_outputs(distiller, out: Path, report: bool) -> dict[str, bytes]:
    """Write results, model, summary (and report) into ``out`` through a scratch folder.

    The files are written into ``.hpmkd-tmp-<pid>-<random>`` next to ``out``; a new
    ``out`` is then that folder renamed (atomic), an existing one receives the files.
    A failure removes the scratch folder; a kill leaves it for the next run to remove
    (:func:`remove_stale_scratch`, called before a run starts).

    Returns
    -------
    dict of str to bytes
        Each file written and its bytes (what the run cache stores).
    """

    def fill(scratch: Path) -> None:
        distiller.save_results(scratch)  # results.csv (reproducible) and timings.csv
        distiller.save_best_model(scratch / "best_model.joblib")
        distiller.save_summary(scratch / "summary.json")
        if report:
            distiller.generate_report(scratch / "report.html")

    return _write_through_scratch(out, fill)


def write_files(files: dict[str, bytes], out: Path) -> None:
    """Write ready-made output files into ``out`` the way :func:`write_outputs` does."""

    def fill(scratch: Path) -> None:
        for name, data in files.items():
            (scratch / name).write_bytes(data)

    _write_through_scratch(out, fill)


def _write_through_scratch(out: Path, fill: Callable[[Path], None]) -> dict[str, bytes]:
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    try:
        fill(scratch)
        written = {item.name: item.read_bytes() for item in sorted(scratch.iterdir())}
        scratch.chmod(0o777 & ~_umask())
        if not out.exists():
            try:
                os.rename(scratch, out)
                return written
            except OSError:
                pass  # made meanwhile: move the files in
        out.mkdir(parents=True, exist_ok=True)
        for item in scratch.iterdir():
            os.replace(item, out / item.name)
        return written
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def distill(args: argparse.Namespace) -> int:
    """Run ``hpmkd distill`` with parsed arguments; returns the exit code."""
    from hpmkd.checks import check_random_state, check_test_size
    from hpmkd.run_cache import RunCache

    started = time.perf_counter()
    # Before any work, cheapest first: where the outputs go, the numbers, the optional
    # packages asked for, the files, the settings; then the data, the teachers, the split.
    out = check_output_folder(args.out)
    seed = check_random_state(args.seed, "--seed")
    check_test_size(args.test_size, "--test-size")
    if args.report:
        # A missing optional package is bad input, not a late failure.
        require("plotly", "--report (the HTML report)")
    check_input_file(args.data, "Data file")
    if args.test_data:
        check_input_file(args.test_data, "Test data file")
    for teacher in args.teacher:
        check_input_file(teacher, "Teacher file")
    config = _parse_settings(args.settings)
    if args.teacher_refit is not None:
        if any(i.split("=", 1)[0].strip() == "teacher_refit" for i in args.settings) and (
            config.teacher_refit != args.teacher_refit
        ):
            raise HPMKDInputError(
                f"--teacher-refit {args.teacher_refit} and --set "
                f"teacher_refit={config.teacher_refit} disagree. Give one of them."
            )
        config = config.with_updates(teacher_refit=args.teacher_refit)
    drop = [c.strip() for c in args.drop.split(",")] if args.drop else None
    # An identical run done before is written again from the run cache: the key is made
    # of the input files' bytes and everything else that decides the run, not the tables.
    inputs = [args.data, *([args.test_data] if args.test_data else []), *args.teacher]
    run_cache = RunCache(config, _run_arguments(args, seed, drop), inputs)
    try:
        entry = run_cache.lookup(need=("report.html",) if args.report else ())
        if entry is not None:
            return _serve_from_run_cache(entry, run_cache, args, config, out, started)
        return _distill_cold(args, config, seed, drop, out, run_cache, started)
    finally:
        run_cache.close()


def _run_arguments(args: argparse.Namespace, seed: int, drop: list[str] | None) -> dict:
    """The arguments that reach the run (``--out``, ``--quiet``, ``--report`` do not)."""
    return {
        "data": args.data,
        "target": args.target,
        "teacher": list(args.teacher),
        "trust_teacher": bool(args.trust_teacher),
        "teacher_proba_cols": args.teacher_proba_cols,
        "method": args.method,
        "test_data": args.test_data,
        "test_size": float(args.test_size),
        "seed": int(seed),
        "drop": drop,
        # Which settings were given, not only their values: a setting left to the CLI
        # (use_parallel, chosen by data size) and the same value set by hand are two runs.
        "set": sorted(i.split("=", 1)[0].strip() for i in args.settings),
    }


def _distill_cold(
    args: argparse.Namespace,
    config: HPMConfig,
    seed: int,
    drop: list[str] | None,
    out: Path,
    run_cache: Any,
    started: float,
) -> int:
    # The heavy libraries load here, when there is work to do.
    from hpmkd import AutoDistiller, DistillationDataset
    from hpmkd.components.cache import IntelligentCache

    if args.trust_teacher and args.teacher:
        print(
            "warning: --trust-teacher: loading the teacher file(s) with plain joblib, which "
            "runs any code in them; do this only with your own files",
            file=sys.stderr,
        )
    dataset = DistillationDataset(
        args.data,
        target=args.target,
        teacher=args.teacher or None,
        teacher_proba_cols=args.teacher_proba_cols,
        test_size=args.test_size,
        test_data=args.test_data,
        drop=drop,
        cache=IntelligentCache.from_config(config),
        trusted=args.trust_teacher,
    )
    if not dataset.has_teacher:
        raise HPMKDInputError(
            "No teacher given. Pass --teacher FILE (repeatable) or --teacher-proba-cols C1,C2."
        )
    distiller = AutoDistiller(dataset, method=args.method, config=config, random_state=seed)
    # Settings without effect on the method that runs: said once, before the work, as
    # warnings (not errors: the run is still what was asked for, minus those settings).
    method, _ = distiller.resolve_method()
    if method == "hpm" and not _set_explicitly(args.settings, "use_parallel"):
        # Both cores where it pays; the config default itself stays off (specification).
        from hpmkd.parallel import auto_parallel

        on, why = auto_parallel(dataset.n_rows, dataset.n_features, config.n_jobs)
        if on:
            config = distiller.config = config.with_updates(use_parallel=True)
            if not args.quiet:
                print(f"{why} (--set use_parallel=false to train one at a time)",
                      file=sys.stderr)
    _warn_ineffective(config, method)
    # Every check passed: clear what killed runs left next to --out, then work.
    remove_stale_scratch(out.absolute().parent)
    callbacks = [] if args.quiet else [_progress]
    # The memory as this run's warm start sees it, for the run cache's entry (the legacy
    # plan neither reads nor writes the memory: its entry does not depend on it).
    from hpmkd.engine.session import PLANS

    uses_memory = PLANS[method].components
    memory_before = run_cache.memory_state(dataset.fingerprint()) if uses_memory else None
    stop = StopRequest()
    with warnings.catch_warnings(), _ctrl_c_stops(stop):
        # Printed above in the CLI's own words (run() warns the Python API's users).
        warnings.simplefilter("ignore", HPMKDConfigWarning)
        distiller.run(callbacks=callbacks, stop=stop)
    # Everything is written to a scratch folder first, so a failure leaves no partial output.
    files = write_outputs(distiller, out, args.report)
    leakage = distiller.result_.leakage
    print_leakage(None if leakage is None else leakage.to_dict(), quiet=args.quiet)
    if stop.requested:
        print(
            f"interrupted: {distiller.result_.stop_reason}; kept the best of the "
            f"{len(distiller.result_.candidates)} candidate(s) that finished: "
            f"{distiller.best_name} (a partial run; outputs in {out})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    lines = _closing_lines(distiller)
    if not args.quiet:
        _print_closing(lines, out)
    if not distiller.result_.partial:  # a budget-stopped run depends on the clock
        run_cache.store(
            files, lines, method, dataset.fingerprint(), memory_before,
            time.perf_counter() - started,
        )
    return EXIT_OK


def _serve_from_run_cache(
    entry: Any, run_cache: Any, args: argparse.Namespace, config: HPMConfig, out: Path,
    started: float,
) -> int:
    _warn_ineffective(config, entry.method)
    remove_stale_scratch(out.absolute().parent)
    files = {k: v for k, v in entry.files.items() if args.report or k != "report.html"}
    summary = json.loads(files["summary.json"])
    # The outputs are the first run's; the summary says so, with both runs' times.
    summary["run_cache"] = {
        "served": True,
        "key": run_cache.key,
        "first_run_finished_at": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.created_at)
        ),
        "first_run_seconds": entry.seconds,
        "seconds": time.perf_counter() - started,
    }
    files["summary.json"] = json.dumps(summary, indent=2, sort_keys=False).encode()
    write_files(files, out)
    run_cache.remember_again(entry)
    print_leakage(summary.get("leakage"), quiet=args.quiet)
    if not args.quiet:
        print(
            f"{time.strftime('%H:%M:%S')} identical run found in the run cache (first run "
            f"{summary['run_cache']['first_run_finished_at']}, {entry.seconds:.1f} s): its "
            "outputs are written again, nothing was loaded or trained",
            file=sys.stderr,
        )
        _print_closing(entry.lines, out)
    return EXIT_OK


def print_leakage(
    check: Mapping[str, Any] | None, quiet: bool = False, width: int = 88
) -> None:
    """The leakage check on stderr: a warning block when leakage is suspected (also with
    ``--quiet``: it is a warning), else one line (not with ``--quiet``).

    Parameters
    ----------
    check : mapping or None
        The check in its ``summary.json`` form (``LeakageCheck.to_dict()``), so a rerun
        served from the run cache prints it without loading the engine.
    quiet : bool
    width : int
        Line width of the block.
    """
    import textwrap

    if check is None:
        return
    if check["suspected"]:
        rule = "=" * width
        title = " WARNING: LEAKAGE SUSPECTED - the teacher looks trained on these rows "
        lines = [rule, title.center(width, "="), ""]
        for paragraph in str(check.get("text", "")).split("\n\n"):
            lines += [*textwrap.wrap(paragraph, width), ""]
        lines.append(rule)
        print("\n".join(lines), file=sys.stderr)
    elif not quiet:
        print(
            f"leakage check: no sign that the teacher saw these rows "
            f"({int(check.get('n_rows', 0)):,} rows checked; details in summary.json under "
            '"leakage")',
            file=sys.stderr,
        )


def _warn_ineffective(config: HPMConfig, method: str) -> None:
    for message in config.ineffective_messages(method, also_used=CLI_USED_FIELDS):
        print(f"warning: {message}", file=sys.stderr)


#: The test figures of the closing lines, with their labels (ECE and Brier: lower is
#: better).
CLOSING_METRICS = (("ks", "KS"), ("auc", "AUC"), ("ece", "ECE"), ("brier", "Brier"))


def _closing_lines(distiller: Any) -> list[str]:
    """The closing lines of a run (the first one gets the output folder when printed):
    the test figures of student, twin and teacher(s), why this student, and the verdict
    with every comparison's interval and outcome."""
    result = distiller.result_
    lines = [
        f"best {distiller.best_name}",
        f"test figures on {len(result.y_test):,} test rows (ECE and Brier: lower is better):",
    ]
    models = [("student", result.selected)]
    if result.twin is not None:
        models.append(("twin", result.twin))
    # A teacher's name already says it is one ("teacher <name>").
    models += [("", t) for t in result.teachers]
    for role, model in models:
        figures = ", ".join(
            f"{label} {_figure(model.test.get(m))}" for m, label in CLOSING_METRICS
        )
        lines.append(f"  {f'{role} ' if role else ''}{model.name}: {figures}")
    lines.append(f"why this student: {result.components.selection_rule.reason}")
    if result.components.final_fit is not None:
        lines.append(f"shipped: {result.components.final_fit.sentence()}")
    climb = result.components.capacity
    if climb is not None:
        lines.append(f"capacity climb: {climb.stop_reason if climb.enabled else climb.reason}")
    if result.verdict is not None:
        lines.append(f"distillation gain ({result.verdict.outcome}): {result.verdict.text}")
        for d in result.verdict.differences:
            lines.append(f"  student - {d.against}: {d.sentence()} -> {d.outcome}")
    return lines


def _figure(value: Any) -> str:
    """A test figure with four decimals; ``n/a`` when undefined."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(number) else f"{number:.4f}"


def _print_closing(lines: list[str] | tuple[str, ...], out: Path) -> None:
    first, *rest = lines
    print(f"{first}; outputs in {out}", file=sys.stderr)
    for line in rest:
        print(line, file=sys.stderr)


@contextmanager
def _ctrl_c_stops(stop: StopRequest) -> Iterator[None]:
    """While the run works, the first Ctrl-C stops it and keeps the best so far (outputs
    are still written, marked partial); a second Ctrl-C aborts as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        print(
            "\ninterrupted: stopping and keeping the best so far (Ctrl-C again to abort)",
            file=sys.stderr,
        )
        stop.request("interrupted with Ctrl-C")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hpmkd`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "distill":
            return distill(args)
    except HPMKDInputError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_INPUT
    except RunCancelled as exc:
        print(f"error: the run was cancelled: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        print(
            f"error: internal error {type(exc).__name__}: {exc}. Please report it with the "
            "command you ran.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
