"""The newcomer's journey in a real browser: ``streamlit run app.py`` driven by Playwright.

Sample data -> reference teacher -> Configure (quick preset, legacy) -> Distill -> Compare
(charts render) -> Export (download the student, load it with joblib, predict), plus a
reload that re-attaches to the run, real uploads (a bad CSV, a good CSV, a malicious
pickle teacher), and a run stopped mid-train ("Stop and keep the best so far") whose
partial result is compared and exported. Step timings are printed (run with ``-s``).
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import joblib
import pandas as pd
import pytest
from browser_support import (
    BROWSER_MARKS,
    ROOT,
    SAMPLE,
    STEP_TIMEOUT_MS,
    Timer,
    free_port,
    goto_page,
    launch_chromium,
)

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("browser-home")
    port = free_port()
    log = (home / "streamlit.log").open("w")
    env = {**os.environ, "HPMKD_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                pytest.fail("streamlit did not start:\n" + (home / "streamlit.log").read_text())
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


def _download_report(page, path: Path) -> None:
    """One click on "HTML report" builds and downloads it."""
    with page.expect_download(timeout=120_000) as report:
        page.get_by_role("button", name="HTML report", exact=True).click()
    report.value.save_as(path)
    assert path.read_bytes()[:200].lower().lstrip().startswith(b"<!doctype html")


def test_sample_journey_from_data_to_downloaded_student(server, browser, tmp_path):
    timer = Timer(width=34)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(server)
    page.get_by_role("button", name="Use sample data").wait_for()
    timer.lap("open the app")

    page.get_by_role("button", name="Use sample data").click()
    page.get_by_text("german_credit.csv —").wait_for()
    page.get_by_text("Class balance").wait_for()
    timer.lap("load sample data + preview")

    page.get_by_role("button", name="Train a reference teacher").click()
    page.get_by_text("Dataset ready").wait_for()
    timer.lap("train reference teacher")

    goto_page(page, "Configure", "2 · Configure")
    page.get_by_role("button", name="Quick run preset").click()
    page.get_by_text("legacy — plain grid").click()
    page.get_by_text("trains a grid of 2 candidate(s)").wait_for()
    timer.lap("configure (quick preset, legacy)")

    goto_page(page, "Distill", "3 · Distill")
    page.get_by_role("button", name="Start distillation").click()
    page.get_by_text("Done in").first.wait_for(timeout=90_000)
    page.get_by_text("Best student:").first.wait_for()
    assert "session=" in page.url
    timer.lap("distill (start -> done)")

    goto_page(page, "Compare", "4 · Compare")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 9")
    page.get_by_text("Feature importance on a fixed sample").wait_for()
    assert page.get_by_text("KL to teacher").count() >= 1
    timer.lap("compare (9 charts rendered)")

    goto_page(page, "Export", "5 · Export")
    with page.expect_download() as info:
        page.get_by_role("button", name="Student model (.joblib)").click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    timer.lap("export + download student")

    _download_report(page, tmp_path / "report.html")
    timer.lap("download HTML report (one click)")

    page.reload()
    page.get_by_role("button", name="Student model (.joblib)").wait_for()
    assert "session=" in page.url
    timer.lap("reload restores the session and its run")
    timer.report("Browser journey timings")

    model = joblib.load(target)
    rows = pd.read_csv(SAMPLE).head(50)
    features = [c for c in rows.columns if c != "target"]
    proba = model.predict_proba(rows[features])
    assert proba.shape == (50, 2)
    assert set(model.predict(rows[features])) <= {0, 1}
    page.close()


def test_real_uploads_bad_csv_good_csv_and_malicious_teacher(server, browser, tmp_path):
    timer = Timer(width=34)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(server)
    page.get_by_role("button", name="Use sample data").wait_for()
    data_input = page.locator("input[type=file]").first

    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"\x00\x01\x02 not a table")
    data_input.set_input_files(str(bad))
    page.get_by_text("looks binary, not CSV text").wait_for()
    timer.lap("upload a bad CSV -> error")

    good = tmp_path / "credit_small.csv"
    pd.read_csv(SAMPLE).head(300).to_csv(good, index=False)
    data_input.set_input_files(str(good))
    page.get_by_text("credit_small.csv — 300 rows").wait_for()
    timer.lap("upload a good CSV -> preview")

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "teacher.pkl"
    evil.write_bytes(pickle.dumps(Exploit()))
    page.get_by_role("tab", name="Upload model files").click()
    (page.locator('[data-testid="stFileUploader"]').filter(has_text="Model files")
     .locator("input[type=file]").set_input_files(str(evil)))
    page.get_by_text("not on the list of classes allowed").wait_for()
    assert not marker.exists()
    timer.lap("malicious pickle teacher -> refused")

    page.get_by_role("tab", name="Train a reference teacher").click()
    page.get_by_role("button", name="Train a reference teacher").click()
    page.get_by_text("Dataset ready: 300 rows").wait_for()
    timer.lap("reference teacher on the upload")
    timer.report("Upload timings")
    page.close()


def test_stop_mid_train_then_compare_and_export_the_partial_run(server, browser, tmp_path):
    from playwright.sync_api import expect

    timer = Timer(width=34)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(server)
    page.get_by_role("button", name="Use sample data").click()
    page.get_by_text("Class balance").wait_for()
    page.get_by_role("button", name="Train a reference teacher").click()
    page.get_by_text("Dataset ready").wait_for()
    timer.lap("sample data + reference teacher")

    # The default configuration (hpm on the 1,000-row sample): long enough to stop in
    # the training phase.
    goto_page(page, "Distill", "3 · Distill")
    page.get_by_text("Train again even if an identical run").click()
    page.get_by_role("button", name="Start distillation").click()
    page.get_by_text(re.compile(r"Running — phase train, [1-9]\d* candidate")).wait_for(
        timeout=180_000)
    timer.lap("distill until the train phase")

    page.get_by_role("button", name="Stop and keep the best so far").click()
    page.get_by_text("Partial run").first.wait_for(timeout=30_000)
    page.get_by_text("stopped by the user during the train phase").first.wait_for()
    # The page reruns in full once the run has ended; a click during that rerun can be
    # lost, so wait for it (the Start button comes back enabled).
    expect(page.get_by_role("button", name="Start distillation")).to_be_enabled()
    assert "session=" in page.url
    timer.lap("stop -> partial run shown")

    goto_page(page, "Compare", "4 · Compare")
    page.get_by_text("Partial run").first.wait_for()
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 8")
    timer.lap("compare the partial run")

    goto_page(page, "Export", "5 · Export")
    page.get_by_text("Partial run").first.wait_for()
    with page.expect_download() as info:
        page.get_by_role("button", name="Student model (.joblib)").click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    report = tmp_path / "partial.html"
    _download_report(page, report)
    assert b"Partial run" in report.read_bytes()
    timer.lap("export the partial run")
    timer.report("Stop mid-train timings")

    model = joblib.load(target)
    rows = pd.read_csv(SAMPLE).head(20)
    proba = model.predict_proba(rows[[c for c in rows.columns if c != "target"]])
    assert proba.shape == (20, 2)
    page.close()
