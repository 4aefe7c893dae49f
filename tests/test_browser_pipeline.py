"""A real user's teacher in a real browser: a CSV, a joblib Pipeline teacher and a test table.

The teacher is the most common shape people ship: ``Pipeline([ColumnTransformer(
[OrdinalEncoder on the text columns], remainder="passthrough"), LGBMClassifier])`` saved
with ``joblib.dump``. Upload the table, the teacher and a separate test table -> run ->
compare -> export, twice on a few thousand rows of ``nyc_flights_delay`` (9 text columns,
missing values):

- the teacher fitted on every uploaded row: the leakage warning shows on Data, Distill
  and Compare;
- the teacher fitted on other rows of the same source: no warning anywhere.

With ``HPMKD_BROWSER_ALL_TABLES=1`` the same two journeys run on every development table
(``test_every_development_table``, about 14 journeys: minutes, so not in the default
suite).

The development tables live beside the project (``../shared/data``, or the folder in
``HPMKD_DEV_DATA``); without them the tests are skipped. Step timings are printed (run
with ``-s``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from browser_support import CHROMIUM, ROOT, STEP_TIMEOUT_MS, Timer, goto_page
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from test_browser_journey import browser, server

__all__ = ["browser", "server"]  # the fixtures, shared with the sample journey

DEV_DATA = Path(os.environ.get("HPMKD_DEV_DATA", ROOT.parent / "shared" / "data"))
FLIGHTS = DEV_DATA / "nyc_flights_delay.csv.gz"
#: Most rows of the uploaded table, of the test table, and of the teacher's other rows
#: (small tables give 40%, 20% and the rest).
N_TABLE, N_TEST, N_OTHER = 2000, 600, 2000
#: The leakage notice's headline when suspected (hpmkd_app.leakage_view.SUSPECTED).
WARNING = "leakage suspected"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]


def samples(source: Path | pd.DataFrame, name: str | None = None) -> dict[str, Any]:
    """Three disjoint, seeded samples of a table: the table, the test table, other rows."""
    frame = pd.read_csv(source) if isinstance(source, Path) else source
    n = len(frame)
    n_table, n_test = min(N_TABLE, int(0.4 * n)), min(N_TEST, int(0.2 * n))
    n_other = min(N_OTHER, n - n_table - n_test)
    order = np.random.default_rng(11).permutation(n)
    take = np.split(order[: n_table + n_test + n_other], [n_table, n_table + n_test])
    parts = {name: frame.iloc[np.sort(rows)].reset_index(drop=True)
             for name, rows in zip(("table", "test", "other"), take, strict=True)}
    parts["name"] = name or source.name.removesuffix(".csv.gz")
    return parts


def sample_with_text() -> pd.DataFrame:
    """The app's own sample with two columns as text levels: the journey's table where the
    development tables are not beside the checkout (a clean clone elsewhere)."""
    frame = pd.read_csv(ROOT / "assets" / "german_credit.csv")
    for column in ("CHK_ACCT", "HISTORY"):
        frame[column] = "level_" + frame[column].astype(str)
    return frame


@pytest.fixture(scope="module")
def flights() -> dict[str, Any]:
    """The flights table's samples (9 text columns, missing values), or the sample with
    text columns when the development tables are absent."""
    if FLIGHTS.exists():
        return samples(FLIGHTS)
    return samples(sample_with_text(), name="german_credit_text")


def pipeline_teacher(frame: pd.DataFrame) -> Pipeline:
    """The teacher as users write it: ordinal-encoded text columns, the rest passed through."""
    X = frame.drop(columns="target")
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    encode = ColumnTransformer(
        [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), text)],
        remainder="passthrough",
    )
    model = LGBMClassifier(n_estimators=300, num_leaves=63, n_jobs=1, verbose=-1,
                           random_state=0)
    return Pipeline([("enc", encode), ("gbm", model)]).fit(X, frame["target"])


def _leakage_warning(page, where: str) -> bool:
    """Wait for the page's leakage notice; whether it says leakage is suspected."""
    notice = page.locator(f".st-key-leakage_{where}")
    notice.get_by_text("Leakage check").first.wait_for()
    return notice.get_by_text(WARNING).count() > 0


def _wait_or_explain(page, locator, what: str, timeout: float) -> None:
    """Wait for ``locator``; on timeout fail with the page's alerts (what went wrong)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        locator.first.wait_for(timeout=timeout)
    except PlaywrightTimeout:
        alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
        pytest.fail(f"waited {timeout / 1000:.0f} s for {what}; the page shows: {alerts}")


def _uploader(page, label: str):
    return (page.locator('[data-testid="stFileUploader"]').filter(has_text=label)
            .locator("input[type=file]"))


def _journey(server, browser, tmp_path: Path, parts: dict[str, Any], teacher_rows: str
             ) -> dict[str, bool]:
    """Upload -> run -> compare -> export; returns where the leakage warning showed."""
    from playwright.sync_api import expect

    timer = Timer()
    tmp_path.mkdir(parents=True, exist_ok=True)
    name = parts["name"]
    n_table, n_test = len(parts["table"]), len(parts["test"])
    table, test = tmp_path / f"{name}.csv", tmp_path / f"{name}_test.csv"
    parts["table"].to_csv(table, index=False)
    parts["test"].to_csv(test, index=False)
    teacher = tmp_path / "teacher.joblib"
    joblib.dump(pipeline_teacher(parts[teacher_rows]), teacher)
    timer.lap("write table, test table, teacher")

    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(server)
    page.get_by_role("button", name="Use sample data").wait_for()
    _uploader(page, "Upload a CSV or Parquet file").set_input_files(str(table))
    page.get_by_text(f"{name}.csv — {n_table:,} rows").wait_for()
    timer.lap("upload the table")

    page.get_by_role("tab", name="Upload model files").click()
    _uploader(page, "Model files").set_input_files(str(teacher))
    page.get_by_text("✓ teacher.joblib checked").wait_for()
    timer.lap("upload the Pipeline teacher")

    _uploader(page, "Upload a test table").set_input_files(str(test))
    page.get_by_text(f"Test rows: from your test table {name}_test.csv, {n_test:,} rows"
                     ).wait_for()
    page.get_by_text(f"Dataset ready: {n_table:,} rows + {n_test:,} test rows").wait_for()
    seen = {"data": _leakage_warning(page, "data")}
    timer.lap("test table + dataset + leakage check")

    goto_page(page, "Configure", "2 · Configure")
    page.get_by_role("button", name="Quick run preset").click()
    page.get_by_text("legacy — plain grid").click()
    page.get_by_text("trains a grid of 2 candidate(s)").wait_for()
    goto_page(page, "Distill", "3 · Distill")
    page.get_by_text(f"test rows: from your test table, {n_test:,} rows").wait_for()
    page.get_by_role("button", name="Start distillation").click()
    # "Done in ..." or, for a run identical to an earlier one, "Done — served from cache".
    _wait_or_explain(page, page.get_by_text(re.compile(r"^Done( in | — served from cache)")),
                     "the run to finish", timeout=300_000)
    page.get_by_text("Best student:").first.wait_for()
    # The finished run's full rerun re-enables Start; a click before it can be lost.
    expect(page.get_by_role("button", name="Start distillation")).to_be_enabled(
        timeout=60_000)
    seen["distill"] = _leakage_warning(page, "distill")
    timer.lap("configure + distill")

    goto_page(page, "Compare", "4 · Compare")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 9")
    page.get_by_text(f"Measured on the test rows: from your test table, {n_test:,} rows"
                     ).wait_for()
    seen["compare"] = _leakage_warning(page, "compare")
    timer.lap("compare (charts)")

    goto_page(page, "Export", "5 · Export")
    with page.expect_download() as info:
        page.get_by_role("button", name="Student model (.joblib)").click()
    student = tmp_path / info.value.suggested_filename
    info.value.save_as(student)
    timer.lap("export the student")
    timer.report(f"Pipeline-teacher journey on {name}, teacher fitted on the {teacher_rows} "
                 f"rows; leakage warning on {[k for k, v in seen.items() if v]}")
    page.close()

    # The student takes the raw rows the teacher took (text columns as text).
    model = joblib.load(student)
    rows = parts["test"].drop(columns="target").head(200)
    proba = model.predict_proba(rows)
    assert proba.shape == (len(rows), 2) and np.allclose(proba.sum(axis=1), 1.0)
    return seen


def test_pipeline_teacher_fitted_on_the_uploaded_rows_is_flagged_everywhere(
    server, browser, tmp_path, flights
):
    seen = _journey(server, browser, tmp_path, flights, teacher_rows="table")
    assert seen == {"data": True, "distill": True, "compare": True}


def test_pipeline_teacher_fitted_on_other_rows_is_not_flagged(server, browser, tmp_path,
                                                              flights):
    seen = _journey(server, browser, tmp_path, flights, teacher_rows="other")
    assert seen == {"data": False, "distill": False, "compare": False}


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("HPMKD_BROWSER_ALL_TABLES") != "1",
                    reason="set HPMKD_BROWSER_ALL_TABLES=1 to run both journeys on every "
                    "development table (minutes)")
@pytest.mark.parametrize("path", sorted(DEV_DATA.glob("*.csv.gz")),
                         ids=lambda p: p.name.removesuffix(".csv.gz"))
def test_every_development_table(server, browser, tmp_path, path):
    parts = samples(path)
    leaky = _journey(server, browser, tmp_path / "seen", parts, teacher_rows="table")
    clean = _journey(server, browser, tmp_path / "other", parts, teacher_rows="other")
    assert leaky == {"data": True, "distill": True, "compare": True}
    assert clean == {"data": False, "distill": False, "compare": False}
