"""Out-of-fold evidence for the final fit on training + validation rows
(``HPMConfig.final_fit``), on the clean protocol's split of one table and seed
(``bench/quality.py``'s): no test row is read.

The engine's rows (training + validation, part B) are cut into 5 folds. Each fold in turn
stands in for the test rows; the other four stand in for the run's training and
validation rows, split 80/20 as the engine splits them. There, one configuration is
trained the engine's way (``hpmkd.evaluate.train_candidate``: fitted on the inner
training rows, calibrated on the inner validation rows) and then, as the final fit does,
once more on the inner training + validation rows with the calibration of the first fit
(``refit_of``). Both predict the held-out fold. Printed per student, pooled over the 5
folds: KS of the train-only fit, of the final fit and of the teacher (gap = student -
teacher), and the ECE of the three (15 equal-width bins, the engine's ``ece``).

    python bench/final_fit_gain.py --table case_b --seeds 0,1,2,3,4 mlp,64,4,0.5,n_members=3

A student is ``bench/bc_gap.py``'s text (``family,shape,temperature,alpha[,param=value]``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bc_gap import DEFAULT_DATA, parse  # noqa: E402
from bench.common import clean_session  # noqa: E402


def out_of_fold(spec: Any, ctx: Any, X_all: Any, y_all: Any, t_all: Any,
                seed: int) -> tuple[Any, Any]:
    """Out-of-fold probabilities of one configuration, train-only fit and final fit.

    Five stratified folds seeded by ``seed``; in each, the other four are split 80/20 as
    the engine splits its rows (see the module docstring).

    Parameters
    ----------
    spec : StudentSpec
        The configuration.
    ctx : TrainingContext
        The run's context; each fold's context is a copy with its own rows.
    X_all, y_all, t_all : DataFrame, ndarray, ndarray
        The rows, their labels and the teacher's probabilities on them.
    seed : int
        Seeds the folds and the inner splits.

    Returns
    -------
    (only, final) : tuple of ndarray
        Held-out probabilities of the train-only fit and of the final fit, in the rows'
        order.
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from hpmkd.evaluate import train_candidate
    from hpmkd.students import proba_in_class_order

    only, final = np.zeros_like(t_all), np.zeros_like(t_all)
    for rest, held in StratifiedKFold(5, shuffle=True, random_state=seed).split(X_all, y_all):
        tr, va = train_test_split(rest, test_size=0.2, stratify=y_all[rest], random_state=seed)

        def context(train, val=va):
            return replace(ctx, X_train=X_all.iloc[train], y_train=y_all[train],
                           teacher_train=t_all[train], X_val=X_all.iloc[val],
                           y_val=y_all[val], reference_val=t_all[val])

        first = train_candidate(spec, context(tr))
        again = train_candidate(spec, context(np.concatenate([tr, va])), refit_of=first.model)
        X_held = X_all.iloc[held]
        only[held] = proba_in_class_order(first.model, X_held, ctx.classes)
        final[held] = proba_in_class_order(again.model, X_held, ctx.classes)
    return only, final


def one_seed(table: str, seed: int, students: list[str], rows: int | None,
             data: Path) -> list[dict]:
    """The out-of-fold figures of each student on one seed's split."""
    import numpy as np
    import pandas as pd

    from hpmkd.metrics import expected_calibration_error, ks_score

    session, _ = clean_session(table, seed, rows, data)
    ctx = session.ctx
    X_all = pd.concat([ctx.X_train, ctx.X_val])
    y_all = np.concatenate([ctx.y_train, ctx.y_val])
    t_all = np.vstack([ctx.teacher_train, ctx.reference_val])
    out = []
    for text in students:
        spec = parse(text, len(ctx.y_train), seed)
        start = time.perf_counter()
        only, final = out_of_fold(spec, ctx, X_all, y_all, t_all, seed)
        ks = {k: ks_score(y_all, p) for k, p in (("only", only), ("final", final),
                                                  ("teacher", t_all))}
        ece = {k: expected_calibration_error(y_all, p) for k, p in (
            ("only", only), ("final", final), ("teacher", t_all))}
        out.append({
            "table": table, "seed": seed, "student": text, "rows": len(y_all),
            "ks_train_only": round(ks["only"], 4), "ks_final": round(ks["final"], 4),
            "ks_teacher": round(ks["teacher"], 4),
            "gain": round(ks["final"] - ks["only"], 4),
            "gap_train_only": round(ks["only"] - ks["teacher"], 4),
            "gap_final": round(ks["final"] - ks["teacher"], 4),
            "ece_train_only": round(ece["only"], 4), "ece_final": round(ece["final"], 4),
            "ece_teacher": round(ece["teacher"], 4),
            "seconds": round(time.perf_counter() - start, 1),
        })
    session.close()
    return out


def main() -> None:
    """One JSON line per (seed, student), then the means over seeds per student."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="case_b")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("students", nargs="+")
    args = parser.parse_args()
    lines = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for line in one_seed(args.table, seed, args.students, args.rows, args.data):
            print(json.dumps(line), flush=True)
            lines.append(line)
    for text in args.students:
        mine = [line for line in lines if line["student"] == text]
        keys = ("gain", "gap_train_only", "gap_final", "ece_train_only", "ece_final",
                "ece_teacher")
        print(json.dumps({"table": args.table, "student": text, "seeds": len(mine),
                          "mean": {k: round(sum(m[k] for m in mine) / len(mine), 4)
                                   for k in keys},
                          "gains": [m["gain"] for m in mine]}), flush=True)


if __name__ == "__main__":
    main()
