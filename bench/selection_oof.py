"""What a default run ships, scored out of fold: the run's choice of configuration on its
validation rows, without reading a test row.

For each seed, on the clean protocol's split of the table (``bench/quality.py``'s: the
teacher fitted on part A, the distiller given part B), a default run (or one with
``--set field=json``) chooses its student on its validation rows. That configuration is
then scored as ``bench/final_fit_gain.py`` scores one: part B is cut into 5 folds; each
fold in turn stands in for the test rows, the other four are split 80/20 as the engine
splits them, the configuration is trained the engine's way and fitted once more on the
inner training + validation rows (the final fit), and predicts the held-out fold. Printed
per seed: the selected student and its out-of-fold KS minus the teacher's, on all of part
B (the same rows and folds whatever the setting) and on the run's training rows (the rows
the run did not choose on).

A selected chain stage after the first learned from the chain's mix of targets; here it
is scored on the run's own targets (``"approx": true`` on its line).

    python bench/selection_oof.py --table case_b --seeds 0-14
    python bench/selection_oof.py --table case_b --seeds 0-14 --set validation_split=0.3

The last line is the mean over seeds with a 95% interval (t over seeds). Two settings on
the same seeds give paired lines: their per-seed difference is the comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bc_gap import DEFAULT_DATA  # noqa: E402
from bench.common import (  # noqa: E402
    clean_split,
    fresh_home,
    interval,
    load_table,
    parse_settings,
    session_on,
    subsample,
    timed_distill,
)
from bench.final_fit_gain import out_of_fold  # noqa: E402


def seeds_of(text: str) -> list[int]:
    """``"0-4"`` or ``"0,2,5"`` as a list of seeds."""
    if "-" in text:
        first, last = (int(s) for s in text.split("-"))
        return list(range(first, last + 1))
    return [int(s) for s in text.split(",")]


def one_seed(table: str, seed: int, rows: int | None, data: Path,
             settings: dict[str, Any]) -> dict[str, Any]:
    """Run once on ``seed``'s split and score the selected configuration out of fold."""
    import numpy as np
    import pandas as pd

    from hpmkd import HPMConfig
    from hpmkd.metrics import ks_score

    X, y = subsample(*load_table(table, data), rows, seed)
    parts = clean_split(X, y, seed)
    config = HPMConfig(**settings)
    with tempfile.TemporaryDirectory() as home:
        fresh_home(Path(home))
        distiller, seconds = timed_distill(parts, config, "auto", seed, table)
    selected = distiller._check_run().selected
    # The run's own split of part B (same rows, same seed), for its training rows.
    session = session_on(parts, table, seed, settings)
    ctx = session.ctx
    # Part B's rows in their own order, so the folds do not depend on the run's split
    # (two settings on one seed are scored on the same folds).
    positions = np.concatenate([session.split.train, session.split.validation])
    order = np.argsort(positions)
    X_all = pd.concat([ctx.X_train, ctx.X_val]).iloc[order]
    y_all = np.concatenate([ctx.y_train, ctx.y_val])[order]
    t_all = np.vstack([ctx.teacher_train, ctx.reference_val])[order]
    run_train = np.isin(positions[order], session.split.train)
    _, final = out_of_fold(selected.spec, ctx, X_all, y_all, t_all, seed)
    session.close()
    gap_train = ks_score(y_all[run_train], final[run_train]) - ks_score(
        y_all[run_train], t_all[run_train])
    return {
        "table": table, "seed": seed, "settings": settings, "selected": selected.name,
        "approx": selected.source == "chain" and not selected.name.startswith("chain stage 1"),
        "val_ks": round(selected.val["ks"], 4),
        "oof_gap_train_rows": round(gap_train, 4),
        "oof_gap_all_rows": round(ks_score(y_all, final) - ks_score(y_all, t_all), 4),
        "run_seconds": round(seconds, 1),
    }


def main() -> None:
    """One JSON line per seed, then the mean with its interval."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="case_b")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="an HPMConfig field, e.g. validation_split=0.3")
    args = parser.parse_args()
    settings = parse_settings(args.set)
    gaps = []
    for seed in seeds_of(args.seeds):
        line = one_seed(args.table, seed, args.rows, args.data, settings)
        print(json.dumps(line), flush=True)
        gaps.append(line["oof_gap_all_rows"])
    mean, low, high = interval(gaps)
    ci95 = [round(low, 4), round(high, 4)] if len(gaps) > 1 else None
    print(json.dumps({"table": args.table, "settings": settings, "seeds": len(gaps),
                      "oof_gap_all_rows": {"mean": round(mean, 4), "ci95": ci95}}),
          flush=True)


if __name__ == "__main__":
    main()
