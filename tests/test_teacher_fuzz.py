"""Fuzz: mutated genuine teacher files never bring down the process that reads them.

Small genuine teacher files (LightGBM in joblib and as text, a forest compressed with
zlib, a logistic regression pickled, a forest in ``.skops``) are mutated with a fixed seed
- bytes flipped, overwritten, inserted, deleted, cut; lines of the LightGBM text model
changed, dropped, repeated, swapped - and every mutant goes through the path a teacher
file takes (:func:`hpmkd.isolation.run_teacher_file`). Each outcome must be probabilities
of the right shape or one ``HPMKDInputError``; anything else (another exception, this
process dying) fails the test. The run is bounded in time.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import re
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from hpmkd.errors import HPMKDInputError, TeacherProcessError
from hpmkd.isolation import run_teacher_file
from hpmkd.settings import TeacherLimits

FEATURES = ["f0", "f1", "f2", "f3"]
SEED = 20240917
#: How many mutants, and the most time they may take together.
MUTANTS = 200
BUDGET_S = 55.0
LIMITS = TeacherLimits(upload_limit_mb=4, memory_mb=1024, cpu_seconds=3, wall_seconds=10,
                       threads=8)


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(120, 4)), columns=FEATURES)
    frame["y"] = ((frame["f0"] - frame["f2"] + 0.5 * rng.normal(size=120)) > 0).astype(int)
    return frame


FRAME = _frame()


def _genuine_files() -> dict[str, tuple[str, bytes]]:
    X, y = FRAME[FEATURES], FRAME["y"]
    lgbm = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1).fit(X, y)
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
    logistic = LogisticRegression().fit(X, y)

    def dump(model: object, **kwargs: object) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(model, buffer, **kwargs)
        return buffer.getvalue()

    return {
        "lgbm_joblib": ("teacher.joblib", dump(lgbm)),
        "lgbm_text": ("teacher.txt", lgbm.booster_.model_to_string().encode()),
        "forest_zlib": ("teacher.joblib", dump(forest, compress=3)),
        "forest_joblib": ("teacher.joblib", dump(forest)),
        "logistic_pickle": ("teacher.pkl", pickle.dumps(logistic, protocol=5)),
        "forest_skops": ("teacher.skops", _canonical_skops(skops.io.dumps(forest))),
    }


def _canonical_skops(data: bytes) -> bytes:
    """The same .skops file with the object ids skops writes (memory addresses) and the
    zip timestamps replaced by fixed values, so the mutants are the same every run."""
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = source.read("schema.json").decode()
    ids = sorted(set(re.findall(r"\b\d{9,}\b", schema)), key=schema.index)
    mapping = {old: str(1000 + i) for i, old in enumerate(ids)}
    schema = re.sub(r"\b\d{9,}\b", lambda m: mapping[m.group(0)], schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        entries = {re.sub(r"\d{9,}", lambda m: mapping[m.group(0)], i.filename): i
                   for i in source.infolist()}
        for name in sorted(entries):
            item = entries[name]
            content = schema.encode() if item.filename == "schema.json" else source.read(item)
            target.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return out.getvalue()


# ----------------------------------------------------------------------- mutations
def _byte_mutant(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    kind = rng.choice(["flip", "overwrite", "insert", "delete", "cut", "zero", "repeat"])
    at = rng.randrange(len(buf))
    span = rng.randint(1, 16)
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif kind == "overwrite":
        buf[at:at + span] = bytes(rng.randrange(256) for _ in range(span))
    elif kind == "insert":
        buf[at:at] = bytes(rng.randrange(256) for _ in range(span))
    elif kind == "delete":
        del buf[at:at + span]
    elif kind == "cut":
        del buf[max(at, 1):]
    elif kind == "zero":
        buf[at:at + span] = bytes(min(span, len(buf) - at))
    else:
        buf[at:at] = buf[at:at + span] * rng.randint(2, 50)
    return bytes(buf)


def _number(rng: random.Random) -> str:
    return str(rng.choice([-1, 0, 1, 2, 3, 4, 5, 31, 255, 1000, 10**6, 2**31 - 1, -(2**31)]))


def _line_mutant(data: bytes, rng: random.Random) -> bytes:
    lines = data.decode().split("\n")
    at = rng.randrange(len(lines))
    kind = rng.choice(["number", "number", "drop", "repeat", "swap", "token", "cut"])
    line = lines[at]
    if kind == "number" and "=" in line:
        key, value = line.split("=", 1)
        tokens = value.split(" ")
        tokens[rng.randrange(len(tokens))] = _number(rng)
        lines[at] = f"{key}={' '.join(tokens)}"
    elif kind == "drop":
        del lines[at]
    elif kind == "repeat":
        lines.insert(at, line)
    elif kind == "swap":
        other = rng.randrange(len(lines))
        lines[at], lines[other] = lines[other], line
    elif kind == "token" and "=" in line:
        lines[at] = line + " " + _number(rng) if rng.random() < 0.5 else line.rsplit(" ", 1)[0]
    else:
        lines[at] = line[: rng.randrange(len(line) + 1)]
    return "\n".join(lines).encode()


def _mutants() -> list[tuple[str, str, bytes]]:
    rng = random.Random(SEED)
    files = _genuine_files()
    plan: list[tuple[str, Callable[[bytes, random.Random], bytes]]] = (
        [("lgbm_text", _line_mutant)] * 70
        + [("lgbm_text", _byte_mutant)] * 10
        + [("lgbm_joblib", _byte_mutant)] * 40
        + [("forest_joblib", _byte_mutant)] * 30
        + [("logistic_pickle", _byte_mutant)] * 20
        + [("forest_zlib", _byte_mutant)] * 15
        + [("forest_skops", _byte_mutant)] * 15
    )
    assert len(plan) == MUTANTS
    out = []
    for source, mutate in plan:
        filename, data = files[source]
        out.append((source, filename, mutate(data, rng)))
    return out


def _outcome(item: tuple[str, str, bytes]) -> str:
    source, filename, data = item
    try:
        proba = run_teacher_file(data, FRAME, FEATURES, [0, 1], LIMITS, filename=filename,
                                 measure=False).proba
    except TeacherProcessError as exc:
        return f"contained {exc.reason}"
    except HPMKDInputError:
        return "refused"
    assert proba.shape == (len(FRAME), 2) and np.all(np.isfinite(proba)), source
    return "scored"


def test_mutated_teacher_files_never_crash_this_process() -> None:
    pid = os.getpid()
    mutants = _mutants()
    deadline = time.monotonic() + BUDGET_S
    outcomes: Counter[str] = Counter()
    by_source: dict[str, Counter[str]] = {}

    def run(item: tuple[str, str, bytes]) -> tuple[str, str]:
        if time.monotonic() > deadline:
            return item[0], "skipped"
        return item[0], _outcome(item)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for source, outcome in pool.map(run, mutants):
            outcomes[outcome] += 1
            by_source.setdefault(source, Counter())[outcome] += 1
    print("fuzz outcomes:", dict(outcomes), {k: dict(v) for k, v in by_source.items()})
    assert os.getpid() == pid
    done = MUTANTS - outcomes["skipped"]
    assert done >= MUTANTS // 2, f"only {done} mutants ran within {BUDGET_S:.0f} s"
    assert outcomes["refused"] > 0 and outcomes["scored"] > 0
    # The genuine files still score in this same process afterwards.
    for filename, data in _genuine_files().values():
        proba = run_teacher_file(data, FRAME, FEATURES, [0, 1], LIMITS, filename=filename).proba
        assert proba.shape == (len(FRAME), 2)


@pytest.mark.parametrize("source", sorted(_genuine_files()))
def test_genuine_fuzz_seeds_score_and_are_the_same_every_run(source: str) -> None:
    assert _genuine_files()[source] == _genuine_files()[source]
    _check_seed(source)


def _check_seed(source: str) -> None:
    filename, data = _genuine_files()[source]
    proba = run_teacher_file(data, FRAME, FEATURES, [0, 1], LIMITS, filename=filename).proba
    assert proba.shape == (len(FRAME), 2) and np.allclose(proba.sum(axis=1), 1)
