"""Validation-only single fits of LightGBM students on a large table (docs/HPM.md, "The
capacity climb: hard labels first, leaves first, filling the size cap").

Builds the run's session as ``bench/climb_ladder.py`` does (the ``bench/scale.py``
protocol: Pipeline teacher on the 60% train part, the distiller's rows, seed 42), says
which share of the engine's training and validation rows the teacher saw, then fits each
student given on the command line on all training rows with the engine's own
``build_student`` and ``fit_on_soft_targets`` and prints its validation KS, pickled size
and fit seconds. No test row is read.

    python bench/student_shapes.py --table nyc 68,31,0.3,0.9,2 68,31,0.3,0,1 28,95,0.3,0,1
    python bench/student_shapes.py --table nyc 26,95,0.3,0,1,catmax=20 \
        26,95,0.3,0,1,min_child_samples=40

A student is ``trees,leaves,learning_rate,alpha,temperature`` and optional extras:
``cat`` (LightGBM categorical splits on every text column's ordinal codes),
``catmax=N`` (only on text columns of at most N levels) or ``param=value``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scale import DEFAULT_DATA, load_table, pipeline_teacher, split  # noqa: E402


def parse(text: str, ctx: Any) -> tuple[dict[str, Any], float, float]:
    """A student's LightGBM parameters, alpha and temperature from its command-line text."""
    fields = text.split(",")
    params: dict[str, Any] = {
        "n_estimators": int(fields[0]),
        "num_leaves": int(fields[1]),
        "learning_rate": float(fields[2]),
        "min_child_samples": 20,
        "colsample_bytree": 1.0,
    }
    alpha, temperature = float(fields[3]), float(fields[4])
    levels = ctx.X_train[ctx.categorical].nunique() if ctx.categorical else {}
    for item in fields[5:]:
        key, _, value = item.partition("=")
        if key in ("cat", "catmax"):
            most = int(value) if key == "catmax" else None
            # Codes follow the numeric columns in the student's ColumnTransformer output.
            params["categorical_feature"] = [
                len(ctx.numeric) + j
                for j, c in enumerate(ctx.categorical)
                if most is None or levels[c] <= most
            ]
        else:
            params[key] = float(value) if "." in value else int(value)
    return params, alpha, temperature


def main() -> None:
    """Teacher, session, then one JSON line per student."""
    import numpy as np

    from hpmkd import DistillationDataset, HPMConfig
    from hpmkd.engine.session import PLANS, RunSession
    from hpmkd.events import EventBus
    from hpmkd.metrics import compute_metrics, size_bytes
    from hpmkd.students import (
        build_student,
        fit_on_soft_targets,
        proba_in_class_order,
        soft_targets,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=["nyc", "census"], default="nyc")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("students", nargs="+")
    args = parser.parse_args()
    X, y = load_table(args.table, args.data)
    parts = split(X, y)
    teacher = pipeline_teacher(parts["X_train"]).fit(parts["X_train"], parts["y_train"])
    ds = DistillationDataset(parts["distill"], target="target", teacher=teacher,
                             test_data=parts["test"], name=args.table)
    session = RunSession(ds, HPMConfig(use_cache=False, use_memory=False), PLANS["hpm"], 42,
                         EventBus())
    ctx, seen, rows = session.ctx, set(parts["X_train"].index), parts["distill"].index
    print(json.dumps({
        "teacher_saw_train": float(np.mean([rows[i] in seen for i in session.split.train])),
        "teacher_saw_validation": float(
            np.mean([rows[i] in seen for i in session.split.validation])),
        "teacher_val_ks": compute_metrics(ctx.y_val, ctx.reference_val)["ks"],
    }), flush=True)
    for text in args.students:
        params, alpha, temperature = parse(text, ctx)
        model = build_student("lgbm", params, ctx.numeric, ctx.categorical, 42)
        targets = soft_targets(ctx.teacher_train, ctx.y_train, temperature, alpha)
        start = time.perf_counter()
        with warnings.catch_warnings():
            # LightGBM warns that a categorical_feature parameter "will be ignored", and
            # then uses it (the model's trees hold categorical splits).
            warnings.filterwarnings("ignore", message="categorical_feature keyword")
            fit_on_soft_targets(model, ctx.X_train, targets, ctx.classes)
        seconds = time.perf_counter() - start
        proba = proba_in_class_order(model, ctx.X_val, ctx.classes)
        ks = compute_metrics(ctx.y_val, proba)["ks"]
        print(json.dumps({"student": text, "val_ks": round(ks, 4),
                          "size_bytes": size_bytes(model), "fit_s": round(seconds, 1)}), flush=True)
    session.close()


if __name__ == "__main__":
    main()
