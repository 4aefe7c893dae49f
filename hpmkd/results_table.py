"""The results table (``results_df``): one row per candidate, teacher and twin, and the
JSON-friendly metric dicts built from the same records.

``results_df`` holds every column. Its files split it in two: ``results.csv`` holds what
the inputs decide, so two runs of the same data, configuration, seed and memory write it
byte for byte the same; ``timings.csv`` holds :data:`RUN_COLUMNS`, what differs between
such runs (README, "Reproducing a run").
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from hpmkd.evaluate import CandidateResult
from hpmkd.metrics import AGREEMENT_METRICS, CALIBRATION_METRICS, QUALITY_METRICS

SPLIT_METRICS = QUALITY_METRICS + CALIBRATION_METRICS + AGREEMENT_METRICS
RESULT_COLUMNS = (
    ["name", "source", "family", "capacity", "params", "temperature", "alpha", "trial"]
    + [f"val_{m}" for m in SPLIT_METRICS]
    + [f"test_{m}" for m in SPLIT_METRICS]
    + ["train_rows", "fit_seconds", "size_bytes", "latency_ms_1k", "from_cache", "selected",
       "final_fit_rows"]
)


#: Columns of ``results_df`` that differ between two runs of the same inputs: the two
#: clocks (training seconds, prediction latency) and whether the disk cache served the
#: row (a cached row's ``fit_seconds`` is its first fit's). ``timings.csv``, not
#: ``results.csv``, holds them, keyed by ``name`` in the same row order.
RUN_COLUMNS = ("fit_seconds", "latency_ms_1k", "from_cache")


def results_csv(frame: pd.DataFrame) -> bytes:
    """``results.csv``: ``frame`` (a ``results_df``) without :data:`RUN_COLUMNS`; the
    same inputs give the same bytes.

    Parameters
    ----------
    frame : DataFrame
    """
    return frame.drop(columns=list(RUN_COLUMNS)).to_csv(index=False).encode()


def timings_csv(frame: pd.DataFrame) -> bytes:
    """``timings.csv``: ``name`` and :data:`RUN_COLUMNS` of ``frame`` (a ``results_df``),
    row for row as in ``results.csv``.

    Parameters
    ----------
    frame : DataFrame
    """
    return frame[["name", *RUN_COLUMNS]].to_csv(index=False).encode()


def candidate_row(result: CandidateResult, selected: bool = False) -> dict[str, Any]:
    """One ``results_df`` row for a trained candidate."""
    spec = result.spec
    row: dict[str, Any] = {
        "name": result.name,
        "source": result.source,
        "family": spec.family if spec else result.extra.get("family", ""),
        "capacity": spec.capacity if spec else "",
        "params": json.dumps(spec.params, sort_keys=True) if spec else "{}",
        # Hard labels (alpha 0) involve no temperature.
        "temperature": spec.temperature if spec and spec.alpha > 0 else math.nan,
        "alpha": spec.alpha if spec else math.nan,
        "trial": spec.trial if spec else 0,
    }
    for m in SPLIT_METRICS:
        row[f"val_{m}"] = result.val.get(m, math.nan)
        row[f"test_{m}"] = result.test.get(m, math.nan)
    row.update(
        train_rows=int(result.train_rows) if result.train_rows else math.nan,
        fit_seconds=result.fit_seconds,
        size_bytes=result.size_bytes,
        latency_ms_1k=result.latency_ms_1k,
        from_cache=bool(result.from_cache),
        selected=selected,
        # The shipped final fit's rows (training + validation; hpmkd.engine.final_fit): its
        # test figures, size and latency are that fit's, its validation figures the
        # train-only fit's (train_rows).
        final_fit_rows=result.extra.get("final_fit", {}).get("rows", math.nan),
    )
    return row


def build_results_df(
    candidates: list[CandidateResult],
    best: CandidateResult,
    teachers: list[CandidateResult],
    baseline: CandidateResult | None,
) -> pd.DataFrame:
    """One row per candidate, then the teachers and the hard-label baseline."""
    rows = [candidate_row(c, selected=c is best) for c in candidates]
    rows += [candidate_row(t) for t in teachers]
    if baseline is not None:
        rows.append(candidate_row(baseline))
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return frame


def metrics_dict(result: CandidateResult) -> dict[str, Any]:
    """Test-split metrics plus size and latency, JSON-friendly (NaN as None)."""
    out = {m: _clean(result.test.get(m, math.nan)) for m in SPLIT_METRICS}
    out["size_bytes"] = int(result.size_bytes) if result.size_bytes >= 0 else None
    out["latency_ms_1k"] = _clean(result.latency_ms_1k)
    undefined = result.test.get("undefined") or {}
    if undefined:
        out["undefined"] = dict(undefined)
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def to_jsonable(value: Any) -> Any:
    """Recursively turn numpy scalars/arrays and NaN into JSON-friendly values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    return _clean(value)
