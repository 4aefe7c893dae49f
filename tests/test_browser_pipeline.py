"""A real user's teacher in a real browser: a CSV, a joblib Pipeline teacher and a test table.

The teacher is the most common shape people ship: ``Pipeline([ColumnTransformer(
[OrdinalEncoder on the text columns], remainder="passthrough"), LGBMClassifier])`` saved
with ``joblib.dump``. Upload the table, the teacher and a separate test table -> run ->
compare -> export, twice on a few thousand rows of ``nyc_flights_delay`` (9 text columns,
missing values):

- the teacher fitted on every uploaded row: the leakage warning shows on Data, Distill
  and Compare;
- the teacher fitted on other rows of the same source: no warning anywhere.

The development tables live beside the project (``../shared/data``, or the folder in
``HPMKD_DEV_DATA``); without them the tests are skipped. Step timings are printed (run
with ``-s``).
"""

from __future__ import annotations

import os
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from test_browser_journey import CHROMIUM, ROOT, Timer, _goto_page, browser, server

__all__ = ["browser", "server"]  # the fixtures, shared with the sample journey

DEV_DATA = Path(os.environ.get("HPMKD_DEV_DATA", ROOT.parent / "shared" / "data"))
FLIGHTS = DEV_DATA / "nyc_flights_delay.csv.gz"
#: Rows of the uploaded table, of the test table, and of the teacher's own other rows.
N_TABLE, N_TEST, N_OTHER = 2500, 800, 2500
#: The leakage notice's headline when suspected (hpmkd_app.leakage_view.SUSPECTED).
WARNING = "leakage suspected"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not FLIGHTS.exists(),
                       reason=f"needs the development table {FLIGHTS} (set HPMKD_DEV_DATA)"),
]


@pytest.fixture(scope="module")
def flights() -> dict[str, pd.DataFrame]:
    """Three disjoint, seeded samples of the flights table: table, test table, other rows."""
    frame = pd.read_csv(FLIGHTS)
    order = np.random.default_rng(11).permutation(len(frame))
    take = np.split(order[: N_TABLE + N_TEST + N_OTHER], [N_TABLE, N_TABLE + N_TEST])
    return {name: frame.iloc[np.sort(rows)].reset_index(drop=True)
            for name, rows in zip(("table", "test", "other"), take, strict=True)}


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


def _uploader(page, label: str):
    return (page.locator('[data-testid="stFileUploader"]').filter(has_text=label)
            .locator("input[type=file]"))


def _journey(server, browser, tmp_path, flights, teacher_rows: str) -> dict[str, bool]:
    """Upload -> run -> compare -> export; returns where the leakage warning showed."""
    timer = Timer()
    table, test = tmp_path / "flights.csv", tmp_path / "flights_test.csv"
    flights["table"].to_csv(table, index=False)
    flights["test"].to_csv(test, index=False)
    teacher = tmp_path / "teacher.joblib"
    joblib.dump(pipeline_teacher(flights[teacher_rows]), teacher)
    timer.lap("write table, test table, teacher")

    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(60_000)
    page.goto(server)
    page.get_by_role("button", name="Use sample data").wait_for()
    _uploader(page, "Upload a CSV or Parquet file").set_input_files(str(table))
    page.get_by_text(f"flights.csv — {N_TABLE:,} rows").wait_for()
    timer.lap("upload the table")

    page.get_by_role("tab", name="Upload model files").click()
    _uploader(page, "Model files").set_input_files(str(teacher))
    page.get_by_text("✓ teacher.joblib checked").wait_for()
    timer.lap("upload the Pipeline teacher")

    _uploader(page, "Upload a test table").set_input_files(str(test))
    page.get_by_text(f"Test rows: from your test table flights_test.csv, {N_TEST:,} rows"
                     ).wait_for()
    page.get_by_text(f"Dataset ready: {N_TABLE:,} rows + {N_TEST:,} test rows").wait_for()
    seen = {"data": _leakage_warning(page, "data")}
    timer.lap("test table + dataset + leakage check")

    _goto_page(page, "Configure", "2 · Configure")
    page.get_by_role("button", name="Quick run preset").click()
    page.get_by_text("legacy — plain grid").click()
    page.get_by_text("trains a grid of 2 candidate(s)").wait_for()
    _goto_page(page, "Distill", "3 · Distill")
    page.get_by_text(f"test rows: from your test table, {N_TEST:,} rows").wait_for()
    page.get_by_role("button", name="Start distillation").click()
    page.get_by_text("Done in").first.wait_for(timeout=120_000)
    page.get_by_text("Best student:").first.wait_for()
    seen["distill"] = _leakage_warning(page, "distill")
    timer.lap("configure + distill")

    _goto_page(page, "Compare", "4 · Compare")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 9")
    page.get_by_text(f"Measured on the test rows: from your test table, {N_TEST:,} rows"
                     ).wait_for()
    seen["compare"] = _leakage_warning(page, "compare")
    timer.lap("compare (charts)")

    _goto_page(page, "Export", "5 · Export")
    with page.expect_download() as info:
        page.get_by_role("button", name="Student model (.joblib)").click()
    student = tmp_path / info.value.suggested_filename
    info.value.save_as(student)
    timer.lap("export the student")
    timer.report(f"Pipeline-teacher journey, teacher fitted on the {teacher_rows} rows")
    page.close()

    # The student takes the raw rows the teacher took (text columns as text).
    model = joblib.load(student)
    rows = flights["test"].drop(columns="target").head(200)
    proba = model.predict_proba(rows)
    assert proba.shape == (200, 2) and np.allclose(proba.sum(axis=1), 1.0)
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
