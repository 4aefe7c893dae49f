"""Sessions in a real browser: reload on every page, restart the server, switch datasets.

``streamlit run app.py`` driven by Playwright with headless Chromium, as
``tests/test_browser_journey.py``. A reload is ``page.reload()`` (a new Streamlit session
with the same ``?session=`` link); a restart stops the server process and starts a new
one on the same port and the same ``HPMKD_HOME``. Step timings are printed (``-s``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

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

TOKEN = re.compile(r"[?&]session=([A-Za-z0-9_-]{43})(?:&|$)")

pytestmark = BROWSER_MARKS


class Server:
    """One ``streamlit run app.py`` process that can be restarted on the same port and home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.home / f"streamlit-{self.starts}.log").open("w")
        env = {**os.environ, "HPMKD_HOME": str(self.home),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                text = (self.home / f"streamlit-{self.starts}.log").read_text()
                self.stop()
                pytest.fail("streamlit did not start:\n" + text)
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    instance = Server(tmp_path_factory.mktemp("browser-sessions-home"))
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


def _token(page) -> str:
    """The session token in the page's URL (waits for the app to put it there)."""
    page.wait_for_function("/[?&]session=[A-Za-z0-9_-]{43}/.test(location.search)")
    match = TOKEN.search(page.url)
    assert match, page.url
    return match.group(1)


def _reload(page, title: str, token: str) -> None:
    page.reload()
    page.get_by_role("heading", name=title).wait_for()
    assert _token(page) == token


def _stored(page, text: str) -> None:
    """Wait until the sidebar shows ``text``: it is drawn after the session is stored
    (app.py), so a reload from here finds the change (the page's own text comes earlier,
    and a reload then could beat the store)."""
    page.locator("[data-testid=stSidebar]").get_by_text(text).first.wait_for()


def _sample_with_teacher(page) -> None:
    page.get_by_role("button", name="Use sample data").click()
    page.get_by_text("german_credit.csv —").wait_for()
    page.get_by_role("button", name="Train a reference teacher").click()
    page.get_by_text("Dataset ready").wait_for()
    _stored(page, "reference_lgbm_300")


def _quick_legacy_run(page) -> None:
    goto_page(page, "Configure", "2 · Configure")
    page.get_by_role("button", name="Quick run preset").click()
    page.get_by_text("legacy — plain grid").click()
    page.get_by_text("trains a grid of 2 candidate(s)").wait_for()
    goto_page(page, "Distill", "3 · Distill")
    page.get_by_role("button", name="Start distillation").click()
    page.get_by_text("Best student:").first.wait_for(timeout=90_000)


def _sidebar(page) -> str:
    # The session summary is drawn after the page itself (app.py): wait for it, so a
    # page whose main part is already up is not read half-drawn.
    side = page.locator("[data-testid=stSidebar]")
    side.get_by_text("Your session").wait_for()
    side.get_by_text("Method:").wait_for()
    return side.inner_text()


def test_reload_on_every_page_after_a_run_and_a_server_restart(server, browser):
    timer = Timer()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(server.url)
    page.get_by_role("button", name="Use sample data").wait_for()
    assert "session=" not in page.url  # nothing to keep yet
    _sample_with_teacher(page)
    token = _token(page)
    timer.lap("sample + reference teacher")

    _reload(page, "1 · Data & teachers", token)
    page.get_by_text("german_credit.csv —").wait_for()
    page.get_by_text("Dataset ready: 1,000 rows").wait_for()  # the teacher came back too
    assert "reference_lgbm_300" in _sidebar(page)
    timer.lap("reload on Data")

    goto_page(page, "Configure", "2 · Configure")
    page.get_by_role("button", name="Quick run preset").click()
    page.get_by_text("legacy — plain grid").click()
    page.get_by_text("trains a grid of 2 candidate(s)").wait_for()
    _stored(page, "Method: legacy")
    _reload(page, "2 · Configure", token)
    page.get_by_text("trains a grid of 2 candidate(s)").wait_for()
    assert page.get_by_role("radio", name="legacy — plain grid").is_checked()
    timer.lap("configure + reload on Configure")

    goto_page(page, "Distill", "3 · Distill")
    page.get_by_role("button", name="Start distillation").click()
    page.get_by_text("Best student:").first.wait_for(timeout=90_000)
    best = page.get_by_text("Best student:").first.inner_text()
    timer.lap("distill (start -> done)")
    _reload(page, "3 · Distill", token)
    page.get_by_text("Done in").first.wait_for()
    assert page.get_by_text("Best student:").first.inner_text() == best
    timer.lap("reload on Distill after the run")

    goto_page(page, "Compare", "4 · Compare")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 9")
    _reload(page, "4 · Compare", token)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 9")
    timer.lap("compare + reload on Compare")

    goto_page(page, "Export", "5 · Export")
    page.get_by_role("button", name="Student model (.joblib)").wait_for()
    _reload(page, "5 · Export", token)
    page.get_by_role("button", name="Student model (.joblib)").wait_for()
    timer.lap("export + reload on Export")

    server.stop()
    server.start()
    timer.lap("restart the server")
    _reload(page, "5 · Export", token)
    page.get_by_role("button", name="Student model (.joblib)").wait_for()
    assert "german_credit.csv" in _sidebar(page)
    timer.lap("reload on Export after the restart")
    goto_page(page, "Distill", "3 · Distill")
    page.get_by_text("Done in").first.wait_for()
    assert page.get_by_text("Best student:").first.inner_text() == best
    goto_page(page, "Data & teachers", "1 · Data & teachers")
    page.get_by_text("Dataset ready: 1,000 rows").wait_for()  # teacher retrained, seeded
    timer.lap("Distill and Data after the restart")
    timer.report("Session reload/restart timings")
    page.close()


def test_switching_datasets_never_offers_the_old_student(server, browser, tmp_path):
    timer = Timer()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(server.url)
    page.get_by_role("button", name="Use sample data").wait_for()
    _sample_with_teacher(page)
    _quick_legacy_run(page)
    page.wait_for_function("/Run [0-9a-f]{12}: done/.test(document.querySelector("
                           "'[data-testid=stSidebar]').innerText)")
    old_id = re.search(r"Run ([0-9a-f]{12}): done", _sidebar(page)).group(1)
    timer.lap("sample run")

    other = tmp_path / "credit_other.csv"
    pd.read_csv(SAMPLE).sample(n=400, random_state=1).to_csv(other, index=False)
    goto_page(page, "Data & teachers", "1 · Data & teachers")
    page.locator("input[type=file]").first.set_input_files(str(other))
    page.get_by_text("credit_other.csv — 400 rows").wait_for()
    page.get_by_role("button", name="Train a reference teacher").click()
    page.get_by_text("Dataset ready: 400 rows").wait_for()
    timer.lap("switch to another CSV + teacher")

    goto_page(page, "Distill", "3 · Distill")
    page.get_by_text("The current inputs have no run yet").first.wait_for()
    assert page.get_by_text("Best student:").count() == 0
    goto_page(page, "Compare", "4 · Compare")
    page.get_by_text("The current inputs have no run yet").first.wait_for()
    assert page.locator(".js-plotly-plot").count() == 0
    goto_page(page, "Export", "5 · Export")
    page.get_by_text("The current inputs have no run yet").first.wait_for()
    assert page.get_by_role("button", name="Student model (.joblib)").count() == 0
    assert "none on the current inputs" in _sidebar(page)
    timer.lap("no page offers the old run")

    # The old run is in the history, labelled; opened explicitly, it says what it is.
    page.get_by_text("Run history (1)").click()
    history = page.get_by_text("german_credit.csv ·").first.inner_text()
    assert "does not match the current inputs" in history
    assert old_id in history
    page.get_by_role("button", name="Open", exact=True).click()
    page.get_by_text("It does not match the current inputs").first.wait_for()
    page.get_by_role("button", name="Student model (.joblib)").wait_for()
    page.get_by_role("button", name="Back to the run of the current inputs").click()
    page.get_by_text("The current inputs have no run yet").first.wait_for()
    # Gone once the rerun ends (Streamlit fades stale elements until then).
    page.get_by_role("button", name="Student model (.joblib)").wait_for(state="detached")
    timer.lap("history: open, label, back")

    # The reload keeps the new dataset, not the old run.
    token = _token(page)
    _reload(page, "5 · Export", token)
    page.get_by_text("The current inputs have no run yet").first.wait_for()
    assert "credit_other.csv" in _sidebar(page)
    timer.lap("reload after the switch")
    timer.report("Dataset switch timings")
    page.close()
