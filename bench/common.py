"""Shared pieces of the benchmark scripts: the issue's cases, timing, peak memory."""

from __future__ import annotations

import gzip
import math
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

CASES = {
    "b": dict(n_samples=20000, n_features=60, n_informative=20, random_state=0),
    "c": dict(
        n_samples=100000, n_features=50, n_informative=15, weights=[0.9, 0.1], random_state=1
    ),
}


def synthetic_case(name: str) -> tuple[pd.DataFrame, pd.Series]:
    """The issue's case ``b`` or ``c`` as a DataFrame and target."""
    X, y = make_classification(**CASES[name])
    cols = [f"f{i}" for i in range(X.shape[1])]
    return pd.DataFrame(X, columns=cols), pd.Series(y, name="target")


def load_real(path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
    """A development dataset (gzip CSV with a 0/1 ``target`` column)."""
    with gzip.open(path, "rt") if str(path).endswith(".gz") else open(path) as handle:
        frame = pd.read_csv(handle)
    return frame.drop(columns=["target"]), frame["target"]


def protocol_split(X: pd.DataFrame, y: pd.Series) -> dict[str, Any]:
    """The issue's protocol: 20% test (stratified, seed 42), then 25% of the rest for
    validation; the teacher sees only the 60% train part; the distiller gets
    train + validation; the student is scored on the test rows neither saw."""
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=42
    )
    X_train, _X_val, y_train, _y_val = train_test_split(
        X_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=42
    )
    teacher = LGBMClassifier(n_estimators=500, random_state=0, verbose=-1)
    teacher.fit(X_train, y_train)
    distill = X_rest.copy()
    distill["target"] = y_rest.to_numpy()
    test = X_test.copy()
    test["target"] = y_test.to_numpy()
    return {"teacher": teacher, "distill": distill, "test": test}


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and reaped children) in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and two-sided 95% Student t interval of the mean (NaN bounds for one value)."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def median(values: list[float]) -> float:
    """Median, NaN for no values."""
    return float(statistics.median(values)) if values else float("nan")


class Timer:
    """``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def fresh_home(tmp: Path) -> None:
    """Point hpmkd's cache and memory at an empty folder (a cold run)."""
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["HPMKD_HOME"] = str(tmp)


def fmt(value: float, digits: int = 4) -> str:
    """Format a float for a Markdown table."""
    return (
        "n/a"
        if value is None or (isinstance(value, float) and np.isnan(value))
        else f"{value:.{digits}f}"
    )


def timed_distill(
    parts: dict[str, Any],
    config: Any,
    method: str,
    seed: int = 42,
    name: str = "case",
    callbacks: list[Any] | None = None,
) -> tuple[Any, float]:
    """Build the dataset (teacher probabilities included) and distill, timed together.

    ``callbacks`` go to ``run()``. Returns the finished ``AutoDistiller`` and the wall
    seconds.
    """
    from hpmkd import AutoDistiller, DistillationDataset
    from hpmkd.components.cache import IntelligentCache

    with Timer() as timer:
        ds = DistillationDataset(
            parts["distill"],
            target="target",
            teacher=parts["teacher"],
            test_data=parts["test"],
            name=name,
            cache=IntelligentCache.from_config(config),
        )
        distiller = AutoDistiller(ds, method=method, config=config, random_state=seed)
        distiller.run(callbacks=callbacks)
    return distiller, timer.seconds


# ----------------------------------------------------------------------------- clean protocol
#: Development tables of ../shared/data, smallest first (the order the benchmarks run in).
REAL_TABLES = {
    "german_credit": "german_credit.csv.gz",
    "mortgage_loanapp": "mortgage_loanapp.csv.gz",
    "caravan_insurance": "caravan_insurance.csv.gz",
    "taiwan_default": "taiwan_default_sample.csv.gz",
    "k401_eligibility": "k401_eligibility.csv.gz",
    "us_census_fertility": "us_census_fertility.csv.gz",
    "nyc_flights_delay": "nyc_flights_delay.csv.gz",
}
#: Share of the rows in each part of the clean protocol: A teacher, B distiller, C test.
CLEAN_SHARES = (0.4, 0.4, 0.2)


def load_table(name: str, data_dir: Path) -> tuple[pd.DataFrame, pd.Series]:
    """A development table by short name, or synthetic case ``case_b`` / ``case_c``."""
    if name.startswith("case_"):
        return synthetic_case(name.removeprefix("case_"))
    return load_real(Path(data_dir) / REAL_TABLES[name])


def subsample(
    X: pd.DataFrame, y: pd.Series, rows: int | None, seed: int
) -> tuple[pd.DataFrame, pd.Series]:
    """A stratified, seeded subsample of ``rows`` rows (all rows when ``rows`` is None or
    not smaller than the table)."""
    if rows is None or rows >= len(y):
        return X, y
    X_sub, _, y_sub, _ = train_test_split(
        X, y, train_size=rows, stratify=y, random_state=1000 + seed
    )
    return X_sub, y_sub


def text_columns(X: pd.DataFrame) -> list[str]:
    """Columns that are not numeric (the tables' categorical columns)."""
    return [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]


def lgbm_pipeline(X: pd.DataFrame, **params: Any) -> Any:
    """LightGBM on the table as it is: plain for numeric tables; for tables with text
    columns an ``OrdinalEncoder`` on those (unknown levels -> -1, missing stays NaN) in a
    ``ColumnTransformer`` whose remainder passes the numeric columns through."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    model = LGBMClassifier(random_state=0, verbose=-1, n_jobs=1, **params)
    text = text_columns(X)
    if not text:
        return model
    encode = ColumnTransformer(
        [
            (
                "text",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                text,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    return Pipeline([("encode", encode), ("lgbm", model)])


def clean_split(X: pd.DataFrame, y: pd.Series, seed: int) -> dict[str, Any]:
    """The clean protocol: three disjoint, stratified parts chosen by ``seed``.

    A (40%) fits the teacher (``lgbm_pipeline``, 500 trees); B (40%) goes to the
    distiller, which splits its own train/validation part off it; C (20%) is the test
    table, read once. The teacher never saw a row the engine validates or tests on, so
    its probabilities there are honest and its test score is not optimistic.
    """
    share_a, share_b, share_c = CLEAN_SHARES
    X_ab, X_c, y_ab, y_c = train_test_split(X, y, test_size=share_c, stratify=y, random_state=seed)
    X_a, X_b, y_a, y_b = train_test_split(
        X_ab, y_ab, test_size=share_b / (share_a + share_b), stratify=y_ab, random_state=seed
    )
    with Timer() as timer:
        teacher = lgbm_pipeline(X_a, n_estimators=500).fit(X_a, y_a)
    distill = X_b.copy()
    distill["target"] = y_b.to_numpy()
    test = X_c.copy()
    test["target"] = y_c.to_numpy()
    return {
        "teacher": teacher,
        "teacher_seconds": timer.seconds,
        "distill": distill,
        "test": test,
        "rows": {"A": len(y_a), "B": len(y_b), "C": len(y_c)},
    }


def clean_session(
    table: str, seed: int, rows: int | None, data_dir: Path
) -> tuple[Any, dict[str, Any]]:
    """The engine's ``RunSession`` of a default run on the clean protocol's split of
    ``table`` (cache and memory off), and the split's parts; no test row is read."""
    X, y = subsample(*load_table(table, data_dir), rows, seed)
    parts = clean_split(X, y, seed)
    return session_on(parts, table, seed), parts


def session_on(
    parts: dict[str, Any], table: str, seed: int, settings: dict[str, Any] | None = None
) -> Any:
    """The engine's ``RunSession`` of a run on ``parts`` (:func:`clean_split`'s) with
    ``HPMConfig(**settings)``, cache and memory off: the rows, split and targets the run
    with that seed trains on."""
    from hpmkd import DistillationDataset, HPMConfig
    from hpmkd.engine.session import PLANS, RunSession
    from hpmkd.events import EventBus

    ds = DistillationDataset(parts["distill"], target="target", teacher=parts["teacher"],
                             test_data=parts["test"], name=table)
    config = HPMConfig(**{**(settings or {}), "use_cache": False, "use_memory": False})
    return RunSession(ds, config, PLANS["hpm"], seed, EventBus())


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``--set field=json`` items as ``HPMConfig`` keyword arguments."""
    import json

    return {k: json.loads(v) for k, _, v in (item.partition("=") for item in items)}
