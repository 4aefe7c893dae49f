"""Validation-only diagnosis of the gap between student and teacher on the clean protocol
(``bench/quality.py``'s split) of one table and seed.

Builds the run's session as the default run would (teacher on part A, the distiller on
part B, ``random_state`` = seed), prints the teacher's validation KS, then trains each
student given on the command line through the engine's own ``RunSession.fit`` (all
training rows, the engine's preprocessing and calibration) and prints its validation KS,
the share of paired bootstrap resamples of the validation rows in which it scores below
the teacher (the climb's measure), its pickled size and fit seconds. No test row is read.
With ``--folds K`` each student is also trained K times on K-fold splits of all the
engine's rows (training and validation, the same number of training rows as the run)
and scored out of fold: KS on all of them pooled, against the teacher's on the same rows
(a larger, unselected estimate of the gap than the 20% validation part alone).

    python bench/bc_gap.py --table case_b --seed 0 mlp,64,4,0.5 mlp,144,4,0.5 \
        mlp,64,4,0.5,max_iter=80 lgbm,45x31,2,0.5

A student is ``family,shape,temperature,alpha`` then optional ``param=value`` items; the
shape is the MLP's hidden units or LightGBM's ``trees x leaves``; the other knobs are
trial 0's (``hpmkd.students.trial_params`` of capacity ``large``) or ``trial=N``'s;
``ens=K`` also scores the mean of K students with seeds ``seed`` ... ``seed + K - 1``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import clean_session  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"


def parse(text: str, n_rows: int, seed: int) -> Any:
    """A ``StudentSpec`` from its command-line text."""
    from hpmkd.students import StudentSpec, trial_params

    family, shape, temperature, alpha, *extras = text.split(",")
    trial = int(dict(i.partition("=")[::2] for i in extras).get("trial", 0))
    params = trial_params(family, "large", trial, n_rows, seed)
    if family == "mlp":
        params["hidden_layer_sizes"] = tuple(int(u) for u in shape.split("x"))
    elif family == "lgbm":
        trees, leaves = shape.split("x")
        params.update(n_estimators=int(trees), num_leaves=int(leaves))
    for item in extras:
        key, _, value = item.partition("=")
        if key in ("aug", "ens", "trial"):
            continue
        params[key] = float(value) if "." in value or "e" in value else int(value)
    return StudentSpec(family, "large", float(temperature), float(alpha), 0, params)


def augmented(fold: Any, teacher: Any, copies: int, sigma: float, seed: int) -> Any:
    """``fold`` with ``copies`` noisy copies of each training row added (Gaussian noise of
    ``sigma`` times each column's sd), labelled by the teacher: its probabilities are the
    soft part of their targets and its most likely class the label part."""
    from dataclasses import replace

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = fold.X_train
    sd = X.std().to_numpy()
    noisy = [X + rng.normal(0.0, 1.0, X.shape) * sigma * sd for _ in range(copies)]
    X_new = pd.concat(noisy, ignore_index=True)
    t_new = teacher.predict_proba(X_new)
    classes = np.asarray(fold.classes)
    return replace(
        fold,
        X_train=pd.concat([X, X_new], ignore_index=True),
        y_train=np.concatenate([fold.y_train, classes[t_new.argmax(axis=1)]]),
        teacher_train=np.vstack([fold.teacher_train, t_new]),
    )


def out_of_fold(spec: Any, ctx: Any, folds: int, seed: int,
                aug: tuple[Any, int, float] | None = None, ens: int = 1) -> dict[str, float]:
    """Student and teacher KS on all the engine's rows, each row scored by a student
    trained on the other folds (the fold itself calibrates it, as validation rows do)."""
    from dataclasses import replace

    import numpy as np
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold

    from hpmkd.evaluate import train_candidate
    from hpmkd.metrics import ks_score

    X = pd.concat([ctx.X_train, ctx.X_val])
    y = np.concatenate([ctx.y_train, ctx.y_val])
    teacher = np.vstack([ctx.teacher_train, ctx.reference_val])
    proba = np.zeros_like(teacher)
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        fold = replace(ctx, X_train=X.iloc[train], y_train=y[train], teacher_train=teacher[train],
                       X_val=X.iloc[held], y_val=y[held], reference_val=teacher[held])
        if aug is not None:
            fold = augmented(fold, *aug, seed)
        members = [replace(fold, seed=fold.seed + i) for i in range(ens)]
        proba[held] = np.mean([train_candidate(spec, m).val_proba for m in members], axis=0)
    student_ks, teacher_ks = ks_score(y, proba), ks_score(y, teacher)
    return {"oof_ks": round(student_ks, 4), "oof_teacher_ks": round(teacher_ks, 4),
            "oof_gap": round(student_ks - teacher_ks, 4)}


def aug_of(text: str, teacher: Any) -> tuple[Any, int, float] | None:
    """The ``aug=copies:sigma`` item of a student's text, with the teacher to label them."""
    for item in text.split(","):
        if item.startswith("aug="):
            copies, sigma = item.removeprefix("aug=").split(":")
            return teacher, int(copies), float(sigma)
    return None


def main() -> None:
    """Session, then one JSON line per student."""
    from hpmkd.components.racing import PairedBootstrap, metric_value
    from hpmkd.metrics import size_bytes

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="case_b")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=0)
    parser.add_argument("students", nargs="+")
    args = parser.parse_args()
    session, parts = clean_session(args.table, args.seed, args.rows, args.data)
    ctx = session.ctx
    teacher_ks = metric_value("ks", ctx.y_val, ctx.reference_val, ctx.reference_val)
    boot = PairedBootstrap(ctx.y_val, ctx.reference_val, "ks", ctx.reference_val,
                           n_boot=200, seed=args.seed)
    print(json.dumps({"table": args.table, "seed": args.seed, "train": len(ctx.y_train),
                      "validation": len(ctx.y_val), "teacher_val_ks": round(teacher_ks, 4),
                      "teacher_size": size_bytes(parts["teacher"])}), flush=True)
    for text in args.students:
        spec = parse(text, len(ctx.y_train), args.seed)
        start = time.process_time()
        result = session.fit(spec, source="config")
        ens = int(dict(i.partition("=")[::2] for i in text.split(",")).get("ens", 1))
        if ens > 1:
            # The mean of ``ens`` students that differ only in their seed.
            from dataclasses import replace

            import numpy as np

            from hpmkd.evaluate import train_candidate
            from hpmkd.metrics import ks_score

            probas = [result.val_proba] + [
                train_candidate(spec, replace(ctx, seed=ctx.seed + i)).val_proba
                for i in range(1, ens)]
            ens_val = {"ens_val_ks": round(ks_score(ctx.y_val, np.mean(probas, axis=0)), 4),
                       "ens_share_below_teacher": boot.share_worse(np.mean(probas, axis=0))}
        else:
            ens_val = {}
        print(json.dumps({
            "student": text, "val_ks": round(result.val["ks"], 4),
            "gap": round(result.val["ks"] - teacher_ks, 4),
            "share_below_teacher": boot.share_worse(result.val_proba),
            "size_bytes": result.size_bytes,
            **ens_val,
            "cpu_s": round(time.process_time() - start, 1),
            **(out_of_fold(spec, ctx, args.folds, args.seed, aug_of(text, parts["teacher"]),
                           int(dict(i.partition("=")[::2] for i in text.split(",")
                                    ).get("ens", 1)))
               if args.folds else {}),
        }), flush=True)
    session.close()


if __name__ == "__main__":
    main()
