"""The HTML report in a real headless Chromium: renders offline, no errors, interactive.

Opens each report via ``file://`` and records console errors, page errors and every
request that is not ``file:``/``data:``/``about:``/``blob:`` (there must be none: the
report is fully self-contained even though plotly.js carries URL strings in its code).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")


def _helpers() -> Any:
    """The run builders of ``test_report.py`` (loaded by path: works in any import mode)."""
    name = "_hpmkd_report_test_helpers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(
            "test_report.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, tuple[Path, Any]]:
    h = _helpers()
    from hpmkd.report import write_report

    folder = tmp_path_factory.mktemp("browser-reports")
    binary = h.make_binary_run()
    multiclass = h.make_multiclass_run()
    return {
        "legacy": (binary.generate_report(folder / "legacy.html"), binary),
        "hpm-details": (write_report(h.with_components(binary, h.hpm_components(binary)),
                                     folder / "hpm.html"), binary),
        "multiclass": (multiclass.generate_report(folder / "multiclass.html"), multiclass),
    }


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield instance
        instance.close()


class OpenedPage:
    """A report opened in a fresh page, with everything the page reported."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.external_requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(
            m.text))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("request", lambda r: r.url.startswith(LOCAL_SCHEMES)
                     or self.external_requests.append(r.url))
        self.page.goto(path.resolve().as_uri(), wait_until="load")
        self.page.wait_for_function(
            "Array.from(document.querySelectorAll('.hpmkd-chart'))"
            ".every(d => d.querySelector('.main-svg'))", timeout=30_000)

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def opened(browser, reports):
    pages: list[OpenedPage] = []

    def open_report(kind: str) -> OpenedPage:
        page = OpenedPage(browser, reports[kind][0])
        pages.append(page)
        return page

    yield open_report
    for page in pages:
        page.close()


@pytest.mark.parametrize("kind", ["legacy", "hpm-details", "multiclass"])
def test_report_renders_offline_without_errors(opened, reports, kind: str) -> None:
    view = opened(kind)
    page = view.page
    page.wait_for_timeout(300)  # late errors from deferred plot work
    assert view.console_errors == []
    assert view.page_errors == []
    assert view.external_requests == []
    charts = page.eval_on_selector_all(
        ".hpmkd-chart", "els => els.map(e => [e.id, e.querySelectorAll('.main-svg').length,"
        " e.getBoundingClientRect().height])")
    html_text = reports[kind][0].read_text(encoding="utf-8")
    assert len(charts) == html_text.count("class='hpmkd-chart'")
    assert len(charts) >= 8
    for chart_id, svgs, height in charts:
        assert svgs >= 1, chart_id
        assert height > 100, chart_id
    if kind == "hpm-details":
        ids = {c[0] for c in charts}
        assert {"chart-selection", "chart-chain", "chart-temperature", "chart-attention",
                "chart-warm-start"} <= ids
    # Traces really drew: the KS chart has its curves and the max-gap annotation.
    assert page.locator("#chart-ks .scatterlayer .trace").count() >= 4
    assert page.locator("#chart-ks .annotation-text", has_text="KS =").count() == 2


def _column(page: Any, col: str) -> list[str | None]:
    return page.eval_on_selector_all(
        "#leaderboard tbody tr:not([hidden])",
        f"rows => rows.map(r => r.querySelector(\"td[data-col='{col}']\")"
        ".getAttribute('data-value'))")


def _numbers(values: list[str | None]) -> list[float]:
    return [float(v) if v else math.nan for v in values]


def test_clicking_a_header_sorts_the_leaderboard(opened, reports) -> None:
    page = opened("legacy").page
    df = reports["legacy"][1].results_df
    before = _numbers(_column(page, "val_ks"))
    assert before == pytest.approx(df["val_ks"].tolist())
    header = page.locator("#leaderboard th[data-col='val_ks']")
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    ascending = _numbers(_column(page, "val_ks"))
    assert ascending == sorted(ascending)
    assert ascending != before
    assert sorted(ascending) == sorted(df["val_ks"].tolist())
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    descending = _numbers(_column(page, "val_ks"))
    assert descending == sorted(descending, reverse=True)
    # NaN (empty data-value) sorts last in both directions; text columns sort as text.
    temperature = page.locator("#leaderboard th[data-col='temperature']")
    temperature.click()
    temps = _column(page, "temperature")
    assert temps[-1] == ""  # the teacher has no temperature
    name = page.locator("#leaderboard th[data-col='name']")
    name.click()
    names = _column(page, "name")
    assert names == sorted(names, key=str.lower)
    assert page.locator("#leaderboard tr.selected").count() == 1


def test_filter_box_hides_non_matching_rows(opened, reports) -> None:
    page = opened("legacy").page
    df = reports["legacy"][1].results_df
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == len(df)
    page.fill("#leaderboard-filter", "tree")
    visible = _column(page, "name")
    # The match is on the row's text: name, source, family, capacity, params (LightGBM's
    # "colsample_bytree" matches too).
    text_cols = ["name", "source", "family", "capacity", "params"]
    expected = [row["name"] for row in df[text_cols].to_dict(orient="records")
                if any("tree" in str(v).lower() for v in row.values())]
    assert visible == expected and 0 < len(visible) < len(df)
    hidden = page.locator("#leaderboard tbody tr[hidden]")
    assert hidden.count() == len(df) - len(expected)
    for i in range(hidden.count()):
        assert not hidden.nth(i).is_visible()
    assert page.locator("#leaderboard-count").inner_text() == \
        f"showing {len(expected)} of {len(df)} rows"
    page.fill("#leaderboard-filter", "no such candidate")
    assert _column(page, "name") == []
    page.fill("#leaderboard-filter", "")
    assert len(_column(page, "name")) == len(df)


def test_multiclass_dropdown_switches_class(opened, reports) -> None:
    page = opened("multiclass").page
    distiller = reports["multiclass"][1]
    classes = [str(c) for c in distiller.dataset.classes]

    def shown_annotations() -> list[str]:
        return page.eval_on_selector(
            "#chart-ks", "d => (d.layout.annotations || []).map(a => a.text)"
            ".filter(t => t.indexOf('KS =') === 0)")

    def visible_names() -> list[str]:
        return page.eval_on_selector(
            "#chart-ks", "d => d.data.filter(t => t.visible !== false && t.showlegend !== false)"
            ".map(t => t.name)")

    first = visible_names()
    before = shown_annotations()
    page.locator("#chart-ks .updatemenu-header-group").click()
    buttons = page.locator("#chart-ks .updatemenu-dropdown-button")
    assert buttons.count() == len(classes)
    target = next(i for i, c in enumerate(classes) if f"class {c}" not in " ".join(first))
    buttons.nth(target).click()
    page.wait_for_function(
        "([names]) => { const d = document.getElementById('chart-ks');"
        " return d.data.some(t => t.visible !== false && t.name.indexOf(names) !== -1); }",
        arg=[f"class {classes[target]}"], timeout=10_000)
    after = visible_names()
    assert after != first and any(f"class {classes[target]}" in n for n in after)
    assert len(before) == 2 and len(shown_annotations()) == 2
