"""What the real-browser tests share: where Chromium is, how it is launched, a free port,
page navigation and step timings (``tests/test_browser_*.py``)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SAMPLE = ROOT / "assets" / "german_credit.csv"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]
#: How long a page step may take: generous, because the suite shares 2 cores with
#: subprocess-heavy tests and a step that is only slow must not fail.
STEP_TIMEOUT_MS = 120_000
#: The marks of every browser test module: Debian's chromium, never a download.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian chromium at /usr/bin/chromium "
                       "(apt-get install chromium); playwright cannot download browsers here"),
]


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_chromium() -> Iterator[Any]:
    """Headless Chromium for a module-scoped fixture (yields the browser, closes it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


class Timer:
    """Seconds per named step, printed at the end."""

    def __init__(self, width: int = 40) -> None:
        self.steps: list[tuple[str, float]] = []
        self.width = width
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.steps.append((name, now - self._last))
        self._last = now

    def report(self, title: str) -> None:
        total = sum(s for _, s in self.steps)
        lines = [f"{name:<{self.width}s}{seconds:6.1f} s" for name, seconds in self.steps]
        print(f"\n{title} (total {total:.1f} s)\n  " + "\n  ".join(lines))


def goto_page(page: Any, name: str, title: str) -> None:
    """Click the sidebar link ``name`` and wait for the page heading ``title``."""
    page.get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", name=title).wait_for()
