"""``hpmkd distill``: the command-line face of the engine.

Exit codes: 0 success; 2 bad input (one ``error: ...`` line on stderr, nothing written);
1 an unexpected internal failure.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hpmkd.config import HPMConfig, settings_help
from hpmkd.errors import HPMKDInputError, RunCancelled
from hpmkd.events import Event
from hpmkd.extras import require

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2


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


def _progress(event: Event) -> None:
    if event.kind in {"phase_start", "phase_end", "info", "run_start", "run_end"}:
        prefix = f"[{event.phase}] " if event.phase else ""
        print(f"{time.strftime('%H:%M:%S')} {prefix}{event.message}", file=sys.stderr)
    elif event.kind == "candidate":
        print(f"  {event.message}", file=sys.stderr)


def distill(args: argparse.Namespace) -> int:
    """Run ``hpmkd distill`` with parsed arguments; returns the exit code."""
    from hpmkd import AutoDistiller, DistillationDataset
    from hpmkd.components.cache import IntelligentCache

    config = _parse_settings(args.settings)
    if args.report:
        # Before any work: a missing optional package is bad input, not a late failure.
        require("plotly", "--report (the HTML report)")
    drop = [c.strip() for c in args.drop.split(",")] if args.drop else None
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
    distiller = AutoDistiller(dataset, method=args.method, config=config, random_state=args.seed)
    callbacks = [] if args.quiet else [_progress]
    distiller.run(callbacks=callbacks)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Everything is written to a scratch folder first, so a failure leaves no partial output.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".hpmkd-tmp-") as tmp:
        scratch = Path(tmp)
        distiller.results_df.to_csv(scratch / "results.csv", index=False)
        distiller.save_best_model(scratch / "best_model.joblib")
        distiller.save_summary(scratch / "summary.json")
        if args.report:
            distiller.generate_report(scratch / "report.html")
        out.mkdir(parents=True, exist_ok=True)
        for item in scratch.iterdir():
            shutil.move(str(item), out / item.name)
    if not args.quiet:
        m = distiller.best_metrics
        print(
            f"best {distiller.best_name}: test KS {m['ks']:.4f}, AUC {m['auc']:.4f}; "
            f"outputs in {out}",
            file=sys.stderr,
        )
    return EXIT_OK


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
    except RunCancelled:
        print("error: the run was cancelled", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
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
