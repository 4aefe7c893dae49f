"""The HTML report: every number from the run, offline, deterministic, escaped.

Runs real small legacy distillations (breast cancer: binary; wine: three classes) and
checks the generated HTML against ``results_df`` and ``summary()``. HPM component
sections are exercised with hand-made typed records of :mod:`hpmkd.result` (see
``hpm_components``), because the HPM engine fills them and legacy runs have none.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from plotly.offline import get_plotlyjs
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, curves
from hpmkd.metrics import ks_binary
from hpmkd.report import (
    ComponentState,
    component_state,
    figures,
    render_report,
    strip_generated_at,
    write_report,
)
from hpmkd.report.components import LEGACY_REASON
from hpmkd.result import (
    AttentionRecord,
    CacheRecord,
    ChainRecord,
    Components,
    ParallelRecord,
    RunResult,
    SelectionRecord,
    TemperatureRecord,
    WarmStartRecord,
)

T0 = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
T1 = dt.datetime(2031, 6, 7, 8, 9, 10, tzinfo=dt.UTC)
EVIL = "<script>alert('x')</script> & \"quoted\""


# =========================================================================== helpers
def make_binary_run() -> AutoDistiller:
    """Real legacy run: breast cancer, LightGBM teacher, 3 families x 2 T x 2 alpha."""
    frame = load_breast_cancer(as_frame=True).frame
    X = frame.drop(columns="target")
    teacher = LGBMClassifier(n_estimators=50, verbose=-1, random_state=0).fit(X, frame["target"])
    dataset = DistillationDataset(frame, target="target", teacher=teacher, name="breast_cancer.csv")
    distiller = AutoDistiller(
        dataset,
        method="legacy",
        config=HPMConfig(temperatures=(1.0, 2.0), alphas=(0.8, 0.2)),
    )
    distiller.run()
    return distiller


def make_multiclass_run() -> AutoDistiller:
    """Real legacy run on wine (3 imbalanced classes, string labels) with an LGBM teacher."""
    data = load_wine(as_frame=True)
    frame = data.frame.copy()
    frame["target"] = np.asarray(data.target_names)[frame["target"]]
    X = frame.drop(columns="target")
    teacher = LGBMClassifier(n_estimators=50, verbose=-1, random_state=0).fit(X, frame["target"])
    dataset = DistillationDataset(frame, target="target", teacher=teacher, name="wine")
    distiller = AutoDistiller(
        dataset,
        method="legacy",
        config=HPMConfig(families=("logreg", "tree"), temperatures=(1.0, 2.0), alphas=(0.5,)),
    )
    distiller.run()
    return distiller


def hpm_components(distiller: AutoDistiller) -> Components:
    """Realistic typed HPM component records, as the HPM engine would record them.

    Configs and stages name real candidates of the run; meta-features are the dataset's
    own; the rest (ranking scores, neighbours, weights) are hand-set.
    """
    res = distiller.results_df
    cands = res[~res["source"].isin(["teacher", "baseline"])].to_dict(orient="records")
    configs = tuple(
        {
            "label": c["name"],
            "family": c["family"],
            "capacity": c["capacity"],
            "temperature": c["temperature"],
            "alpha": c["alpha"],
            "score": round(0.92 - 0.03 * i, 4),
            "reason": (
                EVIL
                if i == 0
                else f"{c['family']} suits {distiller.dataset.n_features} numeric features"
            ),
        }
        for i, c in enumerate(cands[:5])
    )
    stages = tuple(
        {
            "stage": i + 1,
            "name": c["name"],
            "family": c["family"],
            "capacity": c["capacity"],
            "temperature": c["temperature"],
            "alpha": c["alpha"],
            "val_metric": c["val_ks"],
            "gain": None if i == 0 else c["val_ks"] - cands[i - 1]["val_ks"],
            "kept": i < 2,
            "learned_from": "teacher" if i == 0 else f"teacher x 0.5 + stage {i} x 0.5",
        }
        for i, c in enumerate(cands[:3])
    )
    neighbours = (
        {
            "run_id": "run-0007",
            "dataset": "credit_small.csv",
            "distance": 0.12,
            "best_config": {
                "family": "lgbm",
                "capacity": "small",
                "temperature": 2.0,
                "alpha": 0.5,
            },
            "best_val_metric": 0.612,
        },
        {
            "run_id": "run-0011",
            "dataset": "churn.csv",
            "distance": 0.31,
            "best_config": {
                "family": "logreg",
                "capacity": "medium",
                "temperature": 1.0,
                "alpha": 0.9,
            },
            "best_val_metric": 0.548,
        },
    )
    decisions = (
        {
            "stage": 1,
            "temperature": 2.0,
            "reason": "best validation KS of 3 tried",
            "feedback": {"1.0": 0.951, "2.0": 0.968, "4.0": 0.944},
        },
        {
            "candidate": cands[0]["name"],
            "temperature": 1.0,
            "reason": "flat feedback: kept the lowest",
            "feedback": {1.0: 0.97, 2.0: 0.97},
        },
    )
    return Components(
        selection=SelectionRecord(
            meta_features=distiller.dataset.meta_features(), configs=configs, warm_started=True
        ),
        warm_start=WarmStartRecord(
            used=True, reason="2 past runs within distance 0.35", neighbours=neighbours
        ),
        chain=ChainRecord(
            stages=stages, stop_reason="stage 3 gained less than min_improvement 0.01"
        ),
        temperature=TemperatureRecord(adaptive=True, decisions=decisions),
        attention=AttentionRecord(
            members=("teacher LGBMClassifier", cands[0]["name"]),
            mean_weights={"teacher LGBMClassifier": 0.71, cands[0]["name"]: 0.29},
            val_metric_fused=0.973,
            val_metric_mean=0.965,
            note="fused score is fitted on validation rows",
        ),
        cache=CacheRecord(hits=5, misses=12),
        parallel=ParallelRecord(backend="loky", n_jobs=2),
    )


def with_components(distiller: AutoDistiller, components: Components) -> RunResult:
    """The finished run of ``distiller`` with other component records."""
    return dataclasses.replace(distiller.result_, components=components)


class Node:
    """A parsed element: tag, attributes, children and its own text."""

    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts) + "".join(c.text for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag}> with {attrs}"
        return found[0]


class TreeParser(HTMLParser):
    """Minimal DOM builder on the standard library parser."""

    VOID: ClassVar[set[str]] = {"meta", "input", "br", "img", "link", "hr", "col", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_endtag(self, tag: str) -> None:
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.parts.append(data)


def parse(text: str) -> Node:
    """Parse a report into a :class:`Node` tree."""
    parser = TreeParser()
    parser.feed(text)
    parser.close()
    return parser.root


def data_blob(root: Node) -> dict[str, Any]:
    """The report's ``hpmkd-data`` JSON block."""
    return json.loads(root.find("script", id="hpmkd-data").text)


def fmt_metric(value: Any) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.4f}"
    )


def outside_plotly(text: str) -> str:
    """The report with the inlined plotly.js bundle removed."""
    start = text.index("<script id='plotly-js'>")
    end = text.index("</script>", start)
    return text[:start] + text[end:]


def chart_ids(node: Node) -> list[str]:
    return [n.attrs["id"] for n in node.iter() if "hpmkd-chart" in n.attrs.get("class", "")]


# =========================================================================== fixtures
@pytest.fixture(scope="module")
def binary_run() -> AutoDistiller:
    return make_binary_run()


@pytest.fixture(scope="module")
def multiclass_run() -> AutoDistiller:
    return make_multiclass_run()


@pytest.fixture(scope="module")
def binary_report(binary_run: AutoDistiller, tmp_path_factory) -> tuple[Path, str, Node]:
    path = binary_run.generate_report(tmp_path_factory.mktemp("report") / "out" / "report.html")
    text = path.read_text(encoding="utf-8")
    return path, text, parse(text)


@pytest.fixture(scope="module")
def hpm_report(binary_run: AutoDistiller) -> tuple[str, Node]:
    text = render_report(with_components(binary_run, hpm_components(binary_run)), T0)
    return text, parse(text)


@pytest.fixture(scope="module")
def multiclass_report(multiclass_run: AutoDistiller) -> tuple[str, Node]:
    text = render_report(multiclass_run.result_, T0)
    return text, parse(text)


# =========================================================================== summary
def test_generate_report_writes_one_html_file(binary_report) -> None:
    path, text, _ = binary_report
    assert path.is_file() and path.name == "report.html"
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("plotly.js v") == 1, "plotly.js must be inlined exactly once"
    assert path.stat().st_size < 6_000_000


def test_summary_cells_match_summary(binary_run, binary_report) -> None:
    _, _, root = binary_report
    summary = binary_run.summary()
    table = root.find("table", id="summary-metrics")
    cells = [c for c in table.find_all("td") if "data-metric" in c.attrs]
    seen = set()
    for cell in cells:
        role, metric = cell.attrs["data-model"], cell.attrs["data-metric"]
        source = summary["distillation_gain"] if role == "gain" else summary[role]
        expected = source[metric]
        seen.add((role, metric))
        if expected is None:
            assert cell.attrs["data-value"] == "" and cell.text == "n/a"
            continue
        assert float(cell.attrs["data-value"]) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        if metric == "size_bytes":
            assert cell.text == f"{expected:,}"
        elif metric == "latency_ms_1k":
            assert cell.text == f"{expected:.2f}"
        elif role == "gain":
            assert cell.text == f"{expected:+.4f}"
        else:
            assert cell.text == f"{expected:.4f}"
    for role in ("teacher", "student", "baseline"):
        for metric in (
            "accuracy",
            "f1",
            "auc",
            "ks",
            "fidelity",
            "kl_to_teacher",
            "size_bytes",
            "latency_ms_1k",
        ):
            assert (role, metric) in seen
    assert ("gain", "ks") in seen


def test_summary_compression_gain_and_method(binary_run, binary_report) -> None:
    _, _, root = binary_report
    s = binary_run.summary()
    for key in ("size_ratio", "latency_ratio"):
        span = root.find("span", data_metric=key)
        assert float(span.attrs["data-value"]) == pytest.approx(s["compression"][key])
        assert span.text == f"{s['compression'][key]:.2f}×"
    verdict = root.find("p", id="gain-verdict").text
    assert s["distillation_gain"]["verdict"] in verdict
    assert s["baseline_model"] in verdict
    assert root.find("span", id="method").text == "legacy"
    assert root.find("span", id="method-reason").text == s["method_reason"]
    assert root.find("span", id="best-model").text == s["best_model"]
    why = root.find("table", id="summary-method").text
    assert f"highest validation ks ({binary_run.result_.selected.val['ks']:.4f})" in why


def test_verdict_table_lists_every_comparison(binary_run, binary_report) -> None:
    _, _, root = binary_report
    verdict = binary_run.result_.verdict
    table = root.find("table", id="verdict-intervals")
    headers = [th.text for th in table.find_all("th")]
    assert headers == list(verdict.table().columns)
    rows = [[td.text for td in tr.find_all("td")] for tr in table.find("tbody").find_all("tr")]
    expected = verdict.table()
    expected["test rows"] = expected["test rows"].map("{:,}".format)
    assert rows == expected.astype(str).values.tolist()
    assert {"hard-label twin", "teacher"} == {row[0] for row in rows}
    assert not {"higher", "lower"} & {row[headers.index("outcome")] for row in rows}
    # The gain column says which way is better for the calibration rows.
    legend = root.find("table", id="summary-metrics").parent.text
    assert "ECE and Brier: lower is better" in legend
    for metric in ("ece", "brier"):
        cell = root.find("td", data_model="gain", data_metric=metric)
        assert float(cell.attrs["data-value"]) == pytest.approx(verdict.gains[metric])


def test_a_run_without_a_twin_reports_its_teacher_comparisons(binary_run) -> None:
    from hpmkd.engine.compare import build_verdict
    from hpmkd.evaluate import TestRows

    r = binary_run.result_
    rows = TestRows(pd.DataFrame(index=range(len(r.y_test))), np.asarray(r.y_test),
                    np.asarray(r.primary_teacher.test_proba), list(r.dataset.classes))
    verdict = build_verdict(r.selected, None, r.teachers, rows, "auc", 3,
                            why_no_twin="stopped by the user during the compare phase")
    root = parse(render_report(dataclasses.replace(r, twin=None, verdict=verdict), T0))
    text = root.find("p", id="gain-verdict").text
    assert "no twin to judge distillation by" in text and "(not measured)" in text
    table = root.find("table", id="verdict-intervals").find("tbody")
    cells = [[td.text for td in tr.find_all("td")] for tr in table.find_all("tr")]
    assert [(c[0], c[2]) for c in cells] == [("teacher", "auc"), ("teacher", "ks")]
    assert all(c[6].startswith("[") and c[8] == f"{len(r.y_test):,}" for c in cells)
    assert not root.find_all("td", data_model="gain")


def test_the_pareto_chart_ranks_on_the_selection_metric_on_validation(binary_run) -> None:
    result = dataclasses.replace(binary_run.result_, selection_metric="auc")
    text = render_report(result, T0)
    root = parse(text)
    front = data_blob(root)["charts"]["pareto"]["size_bytes"]
    df = binary_run.results_df
    cands = df[~df["source"].isin(["teacher", "baseline"])].reset_index(drop=True)
    assert front == [cands.loc[i, "name"] for i in curves.pareto_front(cands["size_bytes"],
                                                                        cands["val_auc"])]
    ks_front = [cands.loc[i, "name"] for i in curves.pareto_front(cands["size_bytes"],
                                                                   cands["val_ks"])]
    assert front != ks_front  # on this run the two metrics draw different fronts
    assert "model size vs val_auc" in text


def test_data_block_is_the_run(binary_run, binary_report) -> None:
    _, _, root = binary_report
    blob = data_blob(root)
    assert blob["summary"] == json.loads(json.dumps(binary_run.summary()))
    assert len(blob["leaderboard"]) == len(binary_run.results_df)
    for row, (_, expected) in zip(
        blob["leaderboard"], binary_run.results_df.iterrows(), strict=True
    ):
        assert row["name"] == expected["name"]
        assert row["val_ks"] == pytest.approx(expected["val_ks"])
        if math.isnan(expected["test_ks"]):  # not scored on test: only selected/teacher/twin
            assert row["test_ks"] is None
        else:
            assert row["test_ks"] == pytest.approx(expected["test_ks"])


# =========================================================================== leaderboard
def test_leaderboard_has_one_row_per_result(binary_run, binary_report) -> None:
    _, _, root = binary_report
    df = binary_run.results_df
    rows = root.find("table", id="leaderboard").find("tbody").find_all("tr")
    assert len(rows) == len(df)
    headers = [th.attrs["data-col"] for th in root.find("table", id="leaderboard").find_all("th")]
    for col in (
        "name",
        "source",
        "family",
        "params",
        "temperature",
        "alpha",
        "val_ks",
        "test_ks",
        "test_auc",
        "fit_seconds",
        "size_bytes",
        "latency_ms_1k",
        "from_cache",
    ):
        assert col in headers
    for tr, (_, expected) in zip(rows, df.iterrows(), strict=True):
        cells = {td.attrs["data-col"]: td for td in tr.find_all("td")}
        assert cells["name"].text == expected["name"]
        assert cells["source"].text == expected["source"]
        for col in [c for c in headers if c.startswith(("val_", "test_"))]:
            value = expected[col]
            assert cells[col].text == fmt_metric(value)
            if not math.isnan(value):
                assert float(cells[col].attrs["data-value"]) == pytest.approx(value, rel=1e-12)
        assert int(cells["size_bytes"].attrs["data-value"].split(".")[0]) == expected["size_bytes"]
        assert cells["from_cache"].text == ("yes" if expected["from_cache"] else "no")
        assert (tr.attrs["data-selected"] == "true") == bool(expected["selected"])
        assert ("selected" in tr.attrs.get("class", "")) == bool(expected["selected"])
    assert sum(tr.attrs["data-selected"] == "true" for tr in rows) == 1
    assert {tr.attrs["data-source"] for tr in rows} == {"grid", "teacher", "baseline"}


# =========================================================================== charts
def test_every_chart_has_a_figure(binary_report) -> None:
    _, _, root = binary_report
    ids = chart_ids(root)
    assert len(ids) == len(set(ids))
    for expected in (
        "roc",
        "ks",
        "scores",
        "calibration",
        "confusion",
        "agreement",
        "pareto",
        "timeline",
    ):
        assert f"chart-{expected}" in ids
    for cid in ids:
        figure = json.loads(root.find("script", id=f"figure-{cid[len('chart-') :]}").text)
        assert figure["data"], cid
        assert "template" not in figure["layout"]


def test_ks_and_roc_charts_use_the_real_predictions(binary_run, binary_report) -> None:
    _, _, root = binary_report
    charts = data_blob(root)["charts"]
    best = binary_run.results_df[binary_run.results_df["selected"]].iloc[0]
    teacher = binary_run.results_df[binary_run.results_df["source"] == "teacher"].iloc[0]
    ks = charts["ks"]["1"]
    assert ks["student"]["ks"] == pytest.approx(best["test_ks"], abs=1e-12)
    assert ks["teacher"]["ks"] == pytest.approx(teacher["test_ks"], abs=1e-12)
    roc = charts["roc"]["1"]
    assert roc["student"]["auc"] == pytest.approx(best["test_auc"], abs=1e-9)
    figure = json.loads(root.find("script", id="figure-ks").text)
    notes = [a["text"] for a in figure["layout"]["annotations"] if "KS =" in a["text"]]
    assert f"KS = {best['test_ks']:.4f}" in " ".join(notes)
    assert sum(s["type"] == "line" for s in figure["layout"]["shapes"]) == 2


def test_confusion_matrix_matches_accuracy(binary_run, binary_report) -> None:
    _, _, root = binary_report
    matrix = np.array(data_blob(root)["charts"]["confusion"]["student"])
    best = binary_run.results_df[binary_run.results_df["selected"]].iloc[0]
    assert matrix.sum() == binary_run.summary()["split_sizes"]["test"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(best["test_accuracy"])


def test_timeline_and_pareto_from_the_record(binary_run, binary_report) -> None:
    _, _, root = binary_report
    charts = data_blob(root)["charts"]
    assert [p["phase"] for p in charts["timeline"]["phases"]] == ["grid", "compare"]
    assert charts["timeline"]["phases"][0]["end_s"] == pytest.approx(
        binary_run.result_.timeline[0].end_s
    )
    df = binary_run.results_df
    cands = df[~df["source"].isin(["teacher", "baseline"])].reset_index(drop=True)
    front = curves.pareto_front(cands["size_bytes"], cands["val_ks"])
    assert charts["pareto"]["size_bytes"] == [cands.loc[i, "name"] for i in front]
    # No candidate off the front is both smaller and better than a front member.
    for i in front:
        better = cands[
            (cands["size_bytes"] < cands.loc[i, "size_bytes"])
            & (cands["val_ks"] >= cands.loc[i, "val_ks"])
        ]
        assert better.empty


# =========================================================================== offline, safe
def test_no_external_url_outside_plotly_bundle(binary_report, hpm_report) -> None:
    for text in (binary_report[1], hpm_report[0]):
        rest = outside_plotly(text)
        assert "http://" not in rest and "https://" not in rest
        assert not re.search(r"\bsrc\s*=", rest)
        assert "<link" not in rest.lower() and "@import" not in rest and "url(" not in rest
        for href in re.findall(r"href\s*=\s*['\"]([^'\"]*)", rest):
            assert href.startswith("#"), href
        assert "mathjax" not in rest.lower().replace("mathjaxconfig: 'local'", "")
        # The only part not checked is plotly.js itself, verbatim: it carries URL *strings*
        # (map tiles, licences) in code paths these charts never run; the browser test
        # checks that no request leaves the page.
        start = text.index("<script id='plotly-js'>") + len("<script id='plotly-js'>")
        assert text[start : text.index("</script>", start)] == get_plotlyjs()


def test_user_strings_are_escaped(tmp_path: Path) -> None:
    rows = 120
    x = np.linspace(-2.0, 2.0, rows)
    frame = pd.DataFrame(
        {
            "<b>bold</b>": x,
            EVIL: np.cos(np.arange(rows)),
            "target": np.where(np.sin(7 * x) + x > 0, "yes <i>", "no & 'x'"),
        }
    )
    teacher = LogisticRegression().fit(frame[["<b>bold</b>", EVIL]], frame["target"])
    dataset = DistillationDataset(frame, target="target", teacher=teacher, name=EVIL)
    distiller = AutoDistiller(
        dataset,
        method="legacy",
        config=HPMConfig(families=("logreg",), temperatures=(1.0,), alphas=(0.5,)),
    )
    distiller.run()
    text = distiller.generate_report(tmp_path / "evil.html").read_text(encoding="utf-8")
    rest = outside_plotly(text)
    assert "<script>alert" not in rest
    assert "<b>bold</b>" not in rest and "yes <i>" not in rest
    assert "&lt;b&gt;bold&lt;/b&gt;" in rest
    root = parse(text)
    assert EVIL in root.find("title").text
    assert data_blob(root)["summary"]["classes"] == ["no & 'x'", "yes <i>"]


def test_deterministic_except_timestamp(binary_run, tmp_path: Path) -> None:
    first = write_report(binary_run.result_, tmp_path / "a.html", generated_at=T0).read_bytes()
    second = write_report(binary_run.result_, tmp_path / "b.html", generated_at=T1).read_bytes()
    assert first != second
    a = strip_generated_at(first.decode("utf-8"))
    b = strip_generated_at(second.decode("utf-8"))
    assert a.encode() == b.encode()
    assert len(a) < len(first.decode("utf-8"))
    assert "2030-01-02 03:04:05 UTC" in first.decode("utf-8")


def test_report_needs_a_finished_run(binary_run) -> None:
    fresh = AutoDistiller(binary_run.dataset, method="legacy")
    with pytest.raises(RuntimeError, match="run"):
        fresh.generate_report("never.html")
    with pytest.raises(RuntimeError, match="run"):
        render_report(fresh.result_)


# =========================================================================== components
COMPONENT_KEYS = (
    "selection",
    "warm_start",
    "chain",
    "temperature",
    "attention",
    "cache",
    "parallel",
)


def component_div(root: Node, key: str) -> Node:
    return root.find("div", data_component=key)


def test_legacy_run_shows_every_component_off(binary_run, binary_report) -> None:
    _, _, root = binary_report
    for key in COMPONENT_KEYS:
        div = component_div(root, key)
        assert div.attrs["data-state"] == "off"
        assert "not part of the legacy method" in div.text
        assert not chart_ids(div)
    assert data_blob(root)["components"]["chain"]["on"] is False
    # Records without a block of their own are shown as their plain data.
    rule = binary_run.result_.components.selection_rule
    other = json.loads(root.find("div", id="component-other").find("pre").text)
    final = binary_run.result_.components.final_fit
    assert other == {"selection_rule": json.loads(json.dumps(rule.to_dict())),
                     "final_fit": json.loads(json.dumps(final.to_dict()))}


def test_hpm_components_show_every_component(binary_run, hpm_report) -> None:
    text, root = hpm_report
    components = hpm_components(binary_run)
    for key in COMPONENT_KEYS:
        assert component_div(root, key).attrs["data-state"] == "on", key
    assert chart_ids(component_div(root, "selection")) == ["chart-selection"]
    assert chart_ids(component_div(root, "warm_start")) == ["chart-warm-start"]
    assert chart_ids(component_div(root, "chain")) == ["chart-chain"]
    assert chart_ids(component_div(root, "temperature")) == ["chart-temperature"]
    assert chart_ids(component_div(root, "attention")) == ["chart-attention"]
    selection = component_div(root, "selection").text
    for config in components.selection.configs:
        assert config["label"] in selection and config["reason"] in selection
    assert "<script>alert" not in outside_plotly(text)
    chain = component_div(root, "chain").text
    assert components.chain.stop_reason in chain
    for stage in components.chain.stages:
        assert stage["name"] in chain and f"{stage['val_metric']:.4f}" in chain
    temperature = component_div(root, "temperature").text
    assert "adapted from validation feedback" in temperature
    assert "best validation KS of 3 tried" in temperature
    assert "credit_small.csv" in component_div(root, "warm_start").text
    assert "teacher x 0.5 + stage 1 x 0.5" in chain  # an entry field beyond the columns
    attention = component_div(root, "attention").text
    assert "0.9730" in attention and "0.9650" in attention
    # A typed field the block does not lay out itself is listed under "Other recorded fields".
    assert "fused score is fitted on validation rows" in attention
    cache = component_div(root, "cache").text
    assert "29.4%" in cache  # 5 hits of 17 look-ups
    assert "loky" in component_div(root, "parallel").text
    figure = json.loads(root.find("script", id="figure-attention").text)
    assert figure["data"][0]["x"] == [0.71, 0.29]
    assert not root.find_all("div", id="component-other")  # every record has a block


def test_disabled_component_says_off_and_draws_nothing(binary_run) -> None:
    components = dataclasses.replace(
        hpm_components(binary_run),
        chain=ChainRecord(enabled=False, reason="use_progressive=False"),
        attention=AttentionRecord(enabled=False, reason="use_multi_teacher=False"),
    )
    root = parse(render_report(with_components(binary_run, components), T0))
    for key, reason in (
        ("chain", "use_progressive=False"),
        ("attention", "use_multi_teacher=False"),
    ):
        div = component_div(root, key)
        assert div.attrs["data-state"] == "off"
        assert "Off / not part of this run" in div.text and reason in div.text
        assert not chart_ids(div)
    assert "chart-chain" not in chart_ids(root)
    assert "chart-attention" not in chart_ids(root)
    assert component_div(root, "selection").attrs["data-state"] == "on"


def test_partial_records_render_with_nothing_recorded_messages(binary_run) -> None:
    components = Components(
        selection=SelectionRecord(),
        warm_start=WarmStartRecord(used=False),
        chain=ChainRecord(stages=()),
        temperature=TemperatureRecord(decisions=({"stage": 2, "temperature": 3.0},)),
        attention=AttentionRecord(members=("a",), note=EVIL),
        cache=CacheRecord(enabled=False),
    )
    text = render_report(with_components(binary_run, components), T0)
    root = parse(text)
    assert "No configurations were recorded" in component_div(root, "selection").text
    assert component_div(root, "warm_start").find("strong").text == "no"  # warm start used
    assert "No similar past runs" in component_div(root, "warm_start").text
    assert "No chain stages were recorded" in component_div(root, "chain").text
    assert not chart_ids(component_div(root, "chain"))
    assert chart_ids(component_div(root, "temperature")) == ["chart-temperature"]
    attention = component_div(root, "attention")
    assert "No attention weights were recorded" in attention.text
    assert EVIL in attention.text  # the note, escaped
    cache = component_div(root, "cache")
    assert cache.attrs["data-state"] == "off"
    assert "switched off (no reason recorded)" in cache.text
    assert "served from the cache" in cache.text
    parallel = component_div(root, "parallel")
    assert parallel.attrs["data-state"] == "off"
    assert "not part of the legacy method" in parallel.text  # the run is a legacy one
    assert "<script>alert" not in outside_plotly(text)


def test_component_state_contract() -> None:
    assert component_state(None, "legacy") == ComponentState(False, LEGACY_REASON)
    assert "legacy" in component_state(None, "legacy").reason
    missing = component_state(None, "hpm")
    assert missing == ComponentState(False, "the run recorded nothing for this component")
    assert component_state(ChainRecord(enabled=False, reason="r"), "hpm") == ComponentState(
        False, "r"
    )
    assert component_state(ChainRecord(enabled=False), "hpm").reason == (
        "switched off (no reason recorded)"
    )
    assert component_state(ChainRecord(stages=()), "hpm") == ComponentState(True)
    assert component_state(ParallelRecord(enabled=False), "hpm").on  # no switch of its own


# =========================================================================== multiclass
def test_multiclass_report_renders_per_class_views(multiclass_run, multiclass_report) -> None:
    text, root = multiclass_report
    classes = [str(c) for c in multiclass_run.dataset.classes]
    charts = data_blob(root)["charts"]
    assert set(charts["ks"]) == set(classes)
    best = multiclass_run.results_df[multiclass_run.results_df["selected"]].iloc[0]
    per_class = [charts["ks"][c]["student"]["ks"] for c in classes]
    assert np.mean(per_class) == pytest.approx(best["test_ks"], abs=1e-12)  # macro KS
    matrix = np.array(charts["confusion"]["student"])
    assert matrix.shape == (3, 3)
    assert np.trace(matrix) / matrix.sum() == pytest.approx(best["test_accuracy"])
    for cid in ("roc", "ks", "scores", "calibration", "agreement"):
        figure = json.loads(root.find("script", id=f"figure-{cid}").text)
        menu = figure["layout"]["updatemenus"][0]
        assert [b["label"] for b in menu["buttons"]] == [f"class {c}" for c in classes]
        y_test = multiclass_run.result_.y_test
        assert menu["active"] == int(np.argmin(np.bincount(y_test, minlength=3)))
        visible = [t.get("visible") for t in figure["data"]]
        assert any(v is True for v in visible) and any(v is False for v in visible)
    assert "the class with the fewest test rows" in text
    assert len(data_blob(root)["leaderboard"]) == len(multiclass_run.results_df)


# =========================================================================== chart units
def test_ks_curve_equals_the_metric() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(bool)
    score = np.round(rng.random(400) * 0.6 + y * 0.3, 2)  # ties on purpose
    assert curves.ks_curve(y, score).ks == pytest.approx(ks_binary(y, score), abs=1e-12)


def test_scatter_subsamples_every_kth_row() -> None:
    n = 12_001
    y = (np.arange(n) % 3 == 0).astype(int)
    p = np.linspace(0.0, 1.0, n)
    proba = np.column_stack([1 - p, p])
    inp = figures.ChartInputs(
        y=y, models=(("t", proba), ("s", proba[::-1].copy())), class_names=("0", "1")
    )
    chart = figures.agreement_scatter_chart(inp)
    shown = chart.stats["rows_shown"]
    assert shown <= figures.MAX_SCATTER_POINTS + 1 and chart.stats["rows_total"] == n
    assert list(curves.thin_indices(n, figures.MAX_SCATTER_POINTS)[:3]) == [0, 3, 6]
    assert chart.figure == figures.agreement_scatter_chart(inp).figure
    assert "one row in every 3 " in chart.caption


def test_pareto_front_rules() -> None:
    front = curves.pareto_front([10, 5, 20, 5, float("nan")], [0.5, 0.4, 0.9, 0.45, 1.0])
    assert list(front) == [3, 0, 2]


def test_teacher_given_as_probability_columns(tmp_path: Path) -> None:
    """No teacher model: size, latency and compression are 'n/a', everything else renders."""
    rows = 150
    x = np.linspace(-3.0, 3.0, rows)
    noise = np.sin(np.arange(rows) * 1.7)
    p1 = 1.0 / (1.0 + np.exp(-(2.0 * x + noise)))
    frame = pd.DataFrame(
        {
            "x": x,
            "noise": noise,
            "p0": 1.0 - p1,
            "p1": p1,
            "target": (x + 0.8 * noise > 0).astype(int),
        }
    )
    dataset = DistillationDataset(frame, target="target", teacher_proba_cols=["p0", "p1"])
    distiller = AutoDistiller(
        dataset,
        method="legacy",
        config=HPMConfig(families=("logreg", "tree"), temperatures=(1.0,), alphas=(0.5,)),
    )
    distiller.run()
    text = distiller.generate_report(tmp_path / "proba.html").read_text(encoding="utf-8")
    root = parse(text)
    cell = root.find("td", data_model="teacher", data_metric="size_bytes")
    assert cell.text == "n/a" and cell.attrs["data-value"] == ""
    assert root.find("span", data_metric="size_ratio").text == "n/a"
    teacher_row = root.find("tr", data_source="teacher")
    assert root.find("td", data_col="size_bytes").text != "n/a"
    assert [td.text for td in teacher_row.find_all("td", data_col="size_bytes")] == ["n/a"]
    assert "chart-pareto" in chart_ids(root)
    assert data_blob(root)["summary"]["teacher"]["size_bytes"] is None
