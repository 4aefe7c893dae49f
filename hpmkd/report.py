"""The self-contained interactive HTML report of a finished distillation run.

:func:`write_report` writes one HTML file that opens offline: plotly.js is inlined once,
each chart is a JSON figure drawn by ``Plotly.newPlot``, the leaderboard is sortable and
filterable with a few lines of inline JavaScript, and nothing references an external URL
(no CDN, no MathJax, no web fonts, no outgoing links).

Every number comes from the finished run's :class:`~hpmkd.result.RunResult` (candidates
with their real test predictions, timeline, component records, results table and
summary). Nothing is sampled at random and nothing is a placeholder; a
component that was off, or that the method does not have, is named as such with its
reason instead of being drawn.

The report is deterministic: the same run gives the same bytes except for the single
``<p id="generated-at">`` line. Machine-readable copies of the numbers are in
``data-metric``/``data-value`` attributes of the summary cells, ``data-col``/``data-value``
attributes of the leaderboard cells and the ``<script type="application/json"
id="hpmkd-data">`` block.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hpmkd import report_charts as rc
from hpmkd.results import SPLIT_METRICS, to_jsonable

if TYPE_CHECKING:
    from hpmkd.result import RunResult

METRIC_LABELS = {
    "accuracy": "accuracy",
    "f1": "F1",
    "auc": "ROC AUC",
    "ks": "KS",
    "fidelity": "fidelity (same class as teacher)",
    "rank_fidelity": "rank fidelity (Spearman vs teacher)",
    "kl_to_teacher": "KL(teacher ‖ model), nats",
    "size_bytes": "size (pickled bytes)",
    "latency_ms_1k": "latency (ms per 1,000 rows)",
}
COMPONENTS = (
    ("selection", "Configuration selection", "AdaptiveConfigurationManager"),
    ("warm_start", "Memory warm start", "SharedOptimizationMemory"),
    ("chain", "Progressive chain", "ProgressiveDistillationChain"),
    ("temperature", "Temperature scheduling", "MetaTemperatureScheduler"),
    ("attention", "Multi-teacher attention", "AttentionWeightedMultiTeacher"),
    ("cache", "Cache", "IntelligentCache"),
    ("parallel", "Parallel training", "joblib / Dask backend"),
)
RENDERED_KEYS: dict[str, frozenset[str]] = {
    "selection": frozenset({"enabled", "meta_features", "configs", "warm_started"}),
    "warm_start": frozenset({"enabled", "used", "reason", "neighbours"}),
    "chain": frozenset({"enabled", "stages", "stop_reason"}),
    "temperature": frozenset({"enabled", "adaptive", "decisions"}),
    "attention": frozenset(
        {"enabled", "members", "mean_weights", "val_metric_fused", "val_metric_mean"}
    ),
    "cache": frozenset({"enabled", "hits", "misses"}),
    "parallel": frozenset({"enabled", "backend", "n_jobs"}),
}
GENERATED_AT_PATTERN = re.compile(r'<p id="generated-at">[^<]*</p>')


# =========================================================================== public API
def write_report(
    result: RunResult, path: Path, generated_at: _dt.datetime | None = None
) -> Path:
    """Write the interactive HTML report of a finished run.

    Parameters
    ----------
    result : RunResult
        A finished run (``AutoDistiller.result_``).
    path : Path
        File to write (parent folders are created).
    generated_at : datetime, optional
        Time stamp printed in the report; default now (UTC).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    text = render_report(result, generated_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def render_report(result: RunResult, generated_at: _dt.datetime | None = None) -> str:
    """The report of a finished run as one HTML string (see :func:`write_report`).

    Parameters
    ----------
    result : RunResult
        A finished run.
    generated_at : datetime, optional
        Time stamp printed in the report; default now (UTC).

    Returns
    -------
    str
        The complete, self-contained HTML document.
    """
    if result is None:
        raise RuntimeError("Call run() before writing a report.")
    return _Report(result, generated_at or _dt.datetime.now(_dt.UTC)).render()


def strip_generated_at(text: str) -> str:
    """The report text without its one time-stamp line (for comparing two renders).

    Parameters
    ----------
    text : str
        A report produced by :func:`render_report`.

    Returns
    -------
    str
    """
    return GENERATED_AT_PATTERN.sub("", text)


def component_state(
    details: dict[str, Any], key: str, method: str
) -> tuple[bool, dict[str, Any], str]:
    """Whether a component's record says it ran, its record, and why not if it did not.

    Parameters
    ----------
    details : dict
        ``record.details`` of the run.
    key : str
        Component key (``selection``, ``warm_start``, ``chain``, ``temperature``,
        ``attention``, ``cache``, ``parallel``).
    method : str
        The method that ran (used to explain a missing record).

    Returns
    -------
    (on, record, reason)
        ``on`` is False when the record is missing, not a dict, or ``enabled`` is False;
        ``reason`` then says why (the record's own ``reason`` when it has one).
    """
    value = details.get(key) if isinstance(details, dict) else None
    if value is None:
        if method == "legacy":
            return (
                False,
                {},
                (
                    "not part of the legacy method (a fixed grid of families × temperatures × "
                    "alphas trained one after another, with no adaptive components)"
                ),
            )
        return False, {}, "the run recorded nothing for this component"
    if not isinstance(value, dict):
        return False, {}, f"recorded in an unexpected form ({type(value).__name__})"
    if value.get("enabled") is False:
        reason = value.get("reason")
        return False, value, str(reason) if reason else "switched off (no reason recorded)"
    return True, value, ""


# =========================================================================== formatting
def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _fmt(value: Any, kind: str = "metric") -> str:
    v = _num(value)
    if v is None:
        return "n/a"
    if kind == "metric":
        return f"{v:.4f}"
    if kind == "signed":
        return f"{v:+.4f}"
    if kind == "bytes":
        return f"{int(v):,}"
    if kind == "ms":
        return f"{v:.2f}"
    if kind == "seconds":
        return f"{v:.3f}"
    if kind == "ratio":
        return f"{v:.2f}×"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "auto":
        return f"{int(v):,}" if v.is_integer() and abs(v) < 1e15 else f"{v:.4f}"
    return f"{v:g}"


def _data_value(value: Any) -> str:
    v = _num(value)
    return "" if v is None else repr(v)


def _safe_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(
        to_jsonable(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _kv_table(rows: list[tuple[str, str]], table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    body = "".join(f"<tr><th scope='row'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='kv'{ident}><tbody>{body}</tbody></table>"


def _table(headers: list[str], rows: list[list[str]], cls: str = "grid") -> str:
    head = "".join(f"<th scope='col'>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plain(value: Any, float_kind: str = "metric") -> str:
    """Escaped display text of a plain-data value (floats formatted as ``float_kind``)."""
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return _esc(f"{int(value):,}")
    if isinstance(value, (float, np.floating)):
        return _fmt(value, float_kind) if math.isfinite(float(value)) else "n/a"
    if isinstance(value, (dict, list, tuple)):
        return _esc(json.dumps(to_jsonable(value), sort_keys=True, ensure_ascii=False))
    return _esc(value)


def decision_label(decision: dict[str, Any]) -> str:
    """Who a temperature decision was for: ``stage N``, the candidate, or both.

    Parameters
    ----------
    decision : dict
        One entry of ``details["temperature"]["decisions"]``.

    Returns
    -------
    str
        Plain (unescaped) text.
    """
    stage, candidate = decision.get("stage"), decision.get("candidate")
    if stage is not None and candidate:
        return f"stage {stage}: {candidate}"
    if stage is not None:
        return f"stage {stage}"
    return str(candidate or "")


def _record_table(items: list[dict[str, Any]], keys: list[str]) -> str:
    """A table of records: the schema's columns first, then any other recorded field."""
    columns = list(keys)
    for item in items:
        columns += [k for k in item if k not in columns]
    return _table(
        columns, [[_cell(k, item[k]) if k in item else "" for k in columns] for item in items]
    )


def _extras(record: dict[str, Any], rendered: frozenset[str]) -> str:
    """Fields of a component record that the section did not already show."""
    rest = {k: v for k, v in record.items() if k not in rendered and not _is_empty(v)}
    if not rest:
        return ""
    return (
        f"<details class='extra'><summary>Other recorded fields ({len(rest)})</summary>"
        + _kv_table([(_esc(k), _plain(v, "auto")) for k, v in rest.items()])
        + "</details>"
    )


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, tuple, dict)) and len(value) == 0)


def _cell(key: str, value: Any) -> str:
    """Table cell text: temperatures and alphas as given, other floats with 4 decimals."""
    if key == "gain":
        return _fmt(value, "signed")
    return _plain(value, "general" if key in ("temperature", "alpha") else "metric")


def _plotly_js() -> tuple[str, str]:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    match = re.search(r"plotly\.js v([0-9][^\s*]*)", js[:500])
    # A literal closing tag would end the <script> element early; plotly.js has none, but
    # guard anyway.
    return js.replace("</script", "<\\/script"), match.group(1) if match else "unknown"


def _plotly_template() -> dict[str, Any]:
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()


# =========================================================================== the report
class _Report:
    """Collects the sections of one report."""

    def __init__(self, result: RunResult, generated_at: _dt.datetime) -> None:
        self.record = result
        self.results: pd.DataFrame = result.results_df()
        self.summary = result.summary()
        self.dataset = result.dataset
        self.metric = self.summary["selection_metric"]
        self.generated_at = generated_at
        self.details = result.components.to_dict()
        self.charts: list[rc.Chart] = []
        self.chart_stats: dict[str, Any] = {}
        self.component_states: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ charts
    def chart(self, chart: rc.Chart | None) -> str:
        if chart is None:
            return ""
        self.charts.append(chart)
        self.chart_stats[chart.chart_id] = chart.stats
        return (
            f"<figure class='chart-block'><h3>{_esc(chart.title)}</h3>"
            f"<div class='hpmkd-chart' id='chart-{chart.chart_id}' data-chart='{chart.chart_id}'"
            f" data-figure='figure-{chart.chart_id}'></div>"
            f"<figcaption>{_esc(chart.caption)}</figcaption></figure>"
        )

    def figure_scripts(self) -> str:
        return "".join(
            f"<script type='application/json' id='figure-{c.chart_id}'>"
            f"{_safe_json(c.figure)}</script>"
            for c in self.charts
        )

    # ------------------------------------------------------------------ assemble
    def render(self) -> str:
        plotly_js, plotly_js_version = _plotly_js()
        self.plotly_js_version = plotly_js_version
        sections = [
            ("summary", "Summary", self.section_summary()),
            ("leaderboard", "Leaderboard", self.section_leaderboard()),
            ("student-vs-teacher", "Student vs teacher", self.section_student_vs_teacher()),
            ("cost", "Cost, quality and time", self.section_cost()),
            ("components", "HPM components", self.section_components()),
            ("dataset", "Dataset", self.section_dataset()),
            ("configuration", "Configuration and versions", self.section_configuration()),
        ]
        nav = "".join(f"<a href='#sec-{sid}'>{_esc(title)}</a>" for sid, title, _ in sections)
        body = "".join(
            f"<section id='sec-{sid}'><h2>{_esc(title)}</h2>{content}</section>"
            for sid, title, content in sections
        )
        data = {
            "summary": self.summary,
            "leaderboard": self.leaderboard_records(),
            "charts": self.chart_stats,
            "components": self.component_states,
            "report": {"plotly_js": plotly_js_version},
        }
        stamp = self.generated_at.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        title = f"hpmkd report: {self.dataset.name}"
        return "".join(
            [
                "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n",
                "<meta name='viewport' content='width=device-width, initial-scale=1'>\n",
                f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n",
                "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n",
                f"<script id='plotly-js'>{plotly_js}</script>\n</head>\n<body>\n",
                f"<header><h1>{_esc(title)}</h1>\n",
                f'<p id="generated-at">Generated {stamp}</p>\n',
                f"<nav>{nav}</nav></header>\n<main>\n{body}\n</main>\n",
                f"<script type='application/json' id='hpmkd-data'>{_safe_json(data)}</script>\n",
                "<script type='application/json' id='hpmkd-plotly-template'>"
                f"{_safe_json(_plotly_template())}</script>\n",
                self.figure_scripts(),
                f"\n<script>{_JS}</script>\n</body>\n</html>\n",
            ]
        )

    # ------------------------------------------------------------------ summary
    def section_summary(self) -> str:
        s = self.summary
        teacher, student, baseline = s["teacher"], s["student"], s.get("baseline") or {}
        gain = s.get("distillation_gain") or {}
        teacher_name = self.record.teachers[0].name if self.record.teachers else "teacher"
        cols = [
            ("teacher", teacher, f"primary {teacher_name}"),
            ("student", student, f"best student: {s['best_model']}"),
        ]
        if baseline:
            cols.append(("baseline", baseline, f"hard-label {s['baseline_model']}"))
        head = "".join(f"<th scope='col'>{_esc(name)}</th>" for _, _, name in cols)
        if baseline:
            head += "<th scope='col'>gain (student − baseline)</th>"
        rows = []
        for m in (*SPLIT_METRICS, "size_bytes", "latency_ms_1k"):
            kind = "bytes" if m == "size_bytes" else "ms" if m == "latency_ms_1k" else "metric"
            cells = []
            for role, values, _ in cols:
                reason = (values.get("undefined") or {}).get(m, "")
                value = values.get(m)
                title = f" title='{_esc(reason)}'" if reason else ""
                cells.append(
                    f"<td data-model='{role}' data-metric='{m}' "
                    f"data-value='{_data_value(value)}'{title}>{_fmt(value, kind)}</td>"
                )
            if baseline:
                if m in gain:
                    cells.append(
                        f"<td data-model='gain' data-metric='{m}' data-value="
                        f"'{_data_value(gain[m])}'>{_fmt(gain[m], 'signed')}</td>"
                    )
                else:
                    cells.append("<td></td>")
            rows.append(f"<tr><th scope='row'>{_esc(METRIC_LABELS[m])}</th>{''.join(cells)}</tr>")
        metrics_table = (
            f"<table class='grid' id='summary-metrics'><thead><tr><th>test split</th>{head}"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
        comp = s.get("compression") or {}
        size_r, lat_r = _num(comp.get("size_ratio")), _num(comp.get("latency_ratio"))
        size_text = (
            f"the student is {size_r:.2f}× smaller than the teacher"
            if size_r and size_r >= 1
            else f"the student is {1 / size_r:.2f}× larger than the teacher"
            if size_r
            else "not measurable (the teacher has no model object)"
        )
        lat_text = (
            f"the student predicts {lat_r:.2f}× faster"
            if lat_r and lat_r >= 1
            else f"the student predicts {1 / lat_r:.2f}× slower than the teacher"
            if lat_r
            else "not measurable (the teacher has no model object)"
        )
        compression = _kv_table(
            [
                (
                    "size ratio (teacher ÷ student)",
                    f"<span data-metric='size_ratio' data-value='{_data_value(size_r)}'>"
                    f"{_fmt(size_r, 'ratio')}</span> — {_esc(size_text)}",
                ),
                (
                    "latency ratio (teacher ÷ student)",
                    f"<span data-metric='latency_ratio' data-value='{_data_value(lat_r)}'>"
                    f"{_fmt(lat_r, 'ratio')}</span> — {_esc(lat_text)}",
                ),
            ],
            "summary-compression",
        )
        verdict = gain.get("verdict")
        verdict_html = (
            f"<p class='verdict' id='gain-verdict'><strong>Distillation gain:</strong> "
            f"{_esc(verdict)} (test KS gain "
            f"<span data-metric='gain_ks' data-value='{_data_value(gain.get('ks'))}'>"
            f"{_fmt(gain.get('ks'), 'signed')}</span> over the same-size hard-label student "
            f"{_esc(s.get('baseline_model'))}).</p>"
            if verdict
            else "<p class='verdict' id='gain-verdict'>No hard-label baseline was trained, so the "
            "distillation gain is not measured.</p>"
        )
        budget = (
            "<p class='warn'>The time budget ran out: not every candidate was trained; "
            "the best of those trained was kept.</p>"
            if s.get("stopped_by_time_budget")
            else ""
        )
        why = _kv_table(
            [
                ("method", f"<span id='method'>{_esc(s['method'])}</span>"),
                ("why this method", f"<span id='method-reason'>{_esc(s['method_reason'])}</span>"),
                (
                    "selected student",
                    f"<span id='best-model'>{_esc(s['best_model'])}</span> "
                    f"(source: {_esc(s['best_source'])})",
                ),
                ("why this student", _esc(self.selection_reason())),
                (
                    "rows (train / validation / test)",
                    _esc(
                        " / ".join(
                            f"{s['split_sizes'].get(k, 0):,}"
                            for k in ("train", "validation", "test")
                        )
                    ),
                ),
                ("candidates trained", _esc(f"{s['n_candidates']:,}")),
                ("total run time", _esc(f"{_fmt(s['timings'].get('total'), 'seconds')} s")),
            ],
            "summary-method",
        )
        return (
            "<p>All metrics on the <strong>test split</strong>, which no selection step saw. "
            "Agreement metrics (fidelity, rank fidelity, KL) compare each model with the "
            "primary teacher.</p>"
            + metrics_table
            + verdict_html
            + budget
            + "<h3>Compression</h3>"
            + compression
            + "<h3>Method and selection</h3>"
            + why
        )

    def selection_reason(self) -> str:
        rule = self.details.get("selection_rule")
        if isinstance(rule, dict) and rule.get("reason"):
            return f"{rule['reason']} (selection rule: {rule.get('rule')})"
        metric, best = self.metric, self.record.selected
        value = best.val.get(metric)
        candidates = self.results[~self.results["source"].isin(["teacher", "baseline"])]
        col = f"val_{metric}"
        ties = 0
        if value is not None and col in candidates and _num(value) is not None:
            ties = int((candidates[col] == value).sum()) - 1
        text = f"highest validation {metric} ({_fmt(value)}) of {len(candidates):,} candidates"
        if ties > 0:
            text += (
                f"; {ties} other candidate(s) tie on validation {metric}, and ties go to "
                "the smaller model, then to the one trained first"
            )
        return text

    # ------------------------------------------------------------------ leaderboard
    LEADERBOARD_COLUMNS: tuple[tuple[str, str, str], ...] = (
        ("name", "name", "text"),
        ("source", "source", "text"),
        ("family", "family", "text"),
        ("capacity", "capacity", "text"),
        ("params", "params", "text"),
        ("temperature", "T", "float"),
        ("alpha", "alpha", "float"),
        ("trial", "trial", "int"),
        *((f"val_{m}", f"val {m}", "metric") for m in SPLIT_METRICS),
        *((f"test_{m}", f"test {m}", "metric") for m in SPLIT_METRICS),
        ("fit_seconds", "fit s", "seconds"),
        ("size_bytes", "size B", "bytes"),
        ("latency_ms_1k", "ms/1k", "ms"),
        ("from_cache", "from cache", "bool"),
    )

    def leaderboard_records(self) -> list[dict[str, Any]]:
        return [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in to_jsonable(self.results.to_dict(orient="records"))
        ]

    def section_leaderboard(self) -> str:
        heads = []
        for col, title, kind in self.LEADERBOARD_COLUMNS:
            numeric = kind not in ("text", "bool")
            heads.append(
                f"<th scope='col' tabindex='0' data-col='{col}' "
                f"data-type='{'num' if numeric else 'text'}' title='click to sort'>"
                f"{_esc(title)}</th>"
            )
        rows = []
        for i, row in enumerate(self.results.to_dict(orient="records")):
            cells = []
            for col, _title, kind in self.LEADERBOARD_COLUMNS:
                value = row.get(col)
                if kind == "text":
                    text = (
                        ""
                        if value is None or (isinstance(value, float) and math.isnan(value))
                        else str(value)
                    )
                    cells.append(
                        f"<td data-col='{col}' data-value='{_esc(text)}'>{_esc(text)}</td>"
                    )
                elif kind == "bool":
                    flag = bool(value)
                    cells.append(
                        f"<td data-col='{col}' data-value='{str(flag).lower()}'>"
                        f"{'yes' if flag else 'no'}</td>"
                    )
                else:
                    shown = _fmt(value, {"float": "general", "int": "int"}.get(kind, kind))
                    if kind == "bytes" and _num(value) is not None and float(value) < 0:
                        shown, value = "n/a", None
                    cells.append(
                        f"<td data-col='{col}' data-value='{_data_value(value)}'>{shown}</td>"
                    )
            selected = bool(row.get("selected"))
            cls = " class='selected'" if selected else ""
            rows.append(
                f"<tr data-row='{i}' data-source='{_esc(row.get('source', ''))}' "
                f"data-selected='{str(selected).lower()}'{cls}>{''.join(cells)}</tr>"
            )
        return (
            "<p>Every candidate, the teacher(s) and the same-size hard-label baseline, as in "
            "<code>results_df</code>. Click a column header to sort; type to filter rows. The "
            f"selected student is highlighted. Selection used validation {_esc(self.metric)}."
            "</p><p class='filter'><label for='leaderboard-filter'>Filter rows: </label>"
            "<input type='search' id='leaderboard-filter' placeholder='e.g. lgbm, chain, "
            "T=2' autocomplete='off'> <span id='leaderboard-count'></span></p>"
            f"<div class='scroll'><table class='grid' id='leaderboard'><thead><tr>"
            f"{''.join(heads)}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )

    # ------------------------------------------------------------------ charts
    def chart_inputs(self) -> rc.ChartInputs | None:
        r = self.record
        teacher = r.teachers[0] if r.teachers else None
        if teacher is None or r.y_test is None:
            return None
        return rc.ChartInputs(
            y=np.asarray(r.y_test, dtype=int),
            teacher=np.asarray(teacher.test_proba, dtype=float),
            student=np.asarray(r.selected.test_proba, dtype=float),
            class_names=[str(c) for c in self.dataset.classes],
            teacher_name=teacher.name,
            student_name=r.selected.name,
        )

    def section_student_vs_teacher(self) -> str:
        inp = self.chart_inputs()
        if inp is None:
            return "<p>The run recorded no test labels or teacher scores to chart.</p>"
        intro = (
            f"<p>Primary teacher <strong>{_esc(inp.teacher_name)}</strong> against the "
            f"selected student <strong>{_esc(inp.student_name)}</strong> on the "
            f"{len(inp.y):,} test rows.</p>"
        )
        return intro + "".join(
            self.chart(build(inp))
            for build in (
                rc.roc_chart,
                rc.ks_chart,
                rc.score_distribution_chart,
                rc.calibration_chart,
                rc.confusion_chart,
                rc.agreement_scatter_chart,
            )
        )

    def section_cost(self) -> str:
        parts = [self.chart(rc.pareto_chart(self.results, "test_ks"))]
        timeline = [dataclasses.asdict(span) for span in self.record.timeline]
        if timeline:
            parts.append(self.chart(rc.timeline_chart(timeline)))
        timings = self.summary.get("timings") or {}
        parts.append(
            "<h3>Phase durations</h3>"
            + _table(
                ["phase", "seconds"],
                [[_esc(k), _fmt(v, "seconds")] for k, v in timings.items()],
            )
        )
        return "".join(parts)

    # ------------------------------------------------------------------ components
    def section_components(self) -> str:
        renderers: dict[str, Callable[[dict[str, Any]], str]] = {
            "selection": self.render_selection,
            "warm_start": self.render_warm_start,
            "chain": self.render_chain,
            "temperature": self.render_temperature,
            "attention": self.render_attention,
            "cache": self.render_cache,
            "parallel": self.render_parallel,
        }
        method = self.summary["method"]
        out = [
            f"<p>What each HPM-KD component did in this run (method "
            f"<strong>{_esc(method)}</strong>).</p>"
        ]
        for key, title, component in COMPONENTS:
            on, record, reason = component_state(self.details, key, method)
            self.component_states[key] = {"on": on, "reason": reason}
            head = f"<h3>{_esc(title)} <span class='component-name'>({_esc(component)})</span></h3>"
            if on:
                try:
                    inner = renderers[key](record) + _extras(record, RENDERED_KEYS[key])
                except (TypeError, ValueError, AttributeError, KeyError) as exc:
                    inner = (
                        f"<p class='warn'>The record of this component could not be "
                        f"read ({_esc(type(exc).__name__)}: {_esc(exc)}); raw record:</p>"
                        f"<pre>{_plain(record)}</pre>"
                    )
            else:
                inner = (
                    f"<p class='component-off'><strong>Off / not part of this run:"
                    f"</strong> {_esc(reason)}</p>" + self.off_extra(key)
                )
            state = "on" if on else "off"
            out.append(
                f"<div class='component' id='component-{key.replace('_', '-')}' "
                f"data-component='{key}' data-state='{state}'>{head}{inner}</div>"
            )
        known = {k for k, _, _ in COMPONENTS}
        other = {k: v for k, v in self.details.items() if k not in known}
        if other:
            out.append(
                "<div class='component' id='component-other'><h3>Other recorded "
                f"details</h3><pre>{_esc(json.dumps(to_jsonable(other), indent=2))}"
                "</pre></div>"
            )
        return "".join(out)

    def off_extra(self, key: str) -> str:
        if key == "cache":
            return self.cache_usage_line()
        return ""

    def cache_usage_line(self) -> str:
        n = int(self.results["from_cache"].astype(bool).sum())
        return (
            f"<p>Rows of the leaderboard served from the cache: "
            f"<span data-metric='from_cache_rows' data-value='{n}'>{n:,}</span> of "
            f"{len(self.results):,}.</p>"
        )

    def render_selection(self, rec: dict[str, Any]) -> str:
        parts = []
        if "warm_started" in rec:
            parts.append(
                f"<p>Warm-started from the optimization memory: "
                f"<strong>{'yes' if rec.get('warm_started') else 'no'}</strong>.</p>"
            )
        meta = rec.get("meta_features") or {}
        if isinstance(meta, dict) and meta:
            parts.append(
                "<h4>Dataset meta-features used for ranking</h4>"
                + _kv_table([(_esc(k), _plain(v, "auto")) for k, v in meta.items()])
            )
        configs = [c for c in rec.get("configs") or [] if isinstance(c, dict)]
        if configs:
            keys = ["label", "family", "capacity", "temperature", "alpha", "score", "reason"]
            parts.append(
                f"<h4>{len(configs)} configuration(s) kept</h4>" + _record_table(configs, keys)
            )
            parts.append(self.chart(rc.selection_chart(configs)))
        else:
            parts.append("<p>No configurations were recorded.</p>")
        return "".join(parts)

    def render_warm_start(self, rec: dict[str, Any]) -> str:
        used = rec.get("used")
        parts = [
            f"<p>Warm start used: <strong>{'yes' if used else 'no'}</strong>"
            + (f" — {_esc(rec['reason'])}" if rec.get("reason") else "")
            + ".</p>"
        ]
        neighbours = [n for n in rec.get("neighbours") or [] if isinstance(n, dict)]
        if neighbours:
            keys = ["run_id", "dataset", "distance", "best_config", "best_val_metric"]
            parts.append("<h4>Similar past runs</h4>" + _record_table(neighbours, keys))
            parts.append(self.chart(rc.warm_start_chart(neighbours, self.metric)))
        else:
            parts.append("<p>No similar past runs were found in the memory.</p>")
        return "".join(parts)

    def render_chain(self, rec: dict[str, Any]) -> str:
        stages = [s for s in rec.get("stages") or [] if isinstance(s, dict)]
        parts = []
        if stages:
            keys = [
                "stage",
                "name",
                "family",
                "capacity",
                "temperature",
                "alpha",
                "val_metric",
                "gain",
                "kept",
            ]
            parts.append(_record_table(stages, keys))
            min_imp = _num((self.summary.get("config") or {}).get("min_improvement"))
            parts.append(self.chart(rc.chain_chart(stages, min_imp, self.metric)))
        else:
            parts.append("<p>No chain stages were recorded.</p>")
        if rec.get("stop_reason"):
            parts.append(f"<p><strong>Stopped because:</strong> {_esc(rec['stop_reason'])}</p>")
        return "".join(parts)

    def render_temperature(self, rec: dict[str, Any]) -> str:
        adaptive = rec.get("adaptive")
        parts = []
        if adaptive is not None:
            parts.append(
                "<p>Temperatures were <strong>"
                + (
                    "adapted from validation feedback"
                    if adaptive
                    else "taken from the fixed list (not adaptive)"
                )
                + "</strong>.</p>"
            )
        decisions = [d for d in rec.get("decisions") or [] if isinstance(d, dict)]
        if decisions:
            rows = []
            for d in decisions:
                who = decision_label(d)
                feedback = d.get("feedback") or {}
                tried = (
                    ", ".join(f"T={_fmt(t, 'general')}: {_fmt(v)}" for t, v in feedback.items())
                    if isinstance(feedback, dict)
                    else ""
                )
                rows.append(
                    [
                        _esc(who),
                        _fmt(d.get("temperature"), "general"),
                        _esc(d.get("reason", "")),
                        _esc(tried),
                    ]
                )
            parts.append(
                _table(
                    [
                        "stage / candidate",
                        "temperature",
                        "reason",
                        f"validation {self.metric} by temperature",
                    ],
                    rows,
                )
            )
            parts.append(self.chart(rc.temperature_chart(decisions, self.metric)))
        else:
            parts.append("<p>No temperature decisions were recorded.</p>")
        return "".join(parts)

    def render_attention(self, rec: dict[str, Any]) -> str:
        members = rec.get("members") or []
        parts = []
        if members:
            parts.append("<p>Members: " + ", ".join(_esc(m) for m in members) + ".</p>")
        fused, mean = rec.get("val_metric_fused"), rec.get("val_metric_mean")
        if _num(fused) is not None or _num(mean) is not None:
            parts.append(
                f"<p>Validation {_esc(self.metric)} of the attention-fused target "
                f"<strong>{_fmt(fused)}</strong> vs the plain mean of members "
                f"<strong>{_fmt(mean)}</strong>.</p>"
            )
        weights = rec.get("mean_weights") or {}
        if isinstance(weights, dict) and weights:
            parts.append(self.chart(rc.attention_chart(weights, fused, mean, self.metric)))
        else:
            parts.append("<p>No attention weights were recorded.</p>")
        return "".join(parts)

    def render_cache(self, rec: dict[str, Any]) -> str:
        hits, misses = _num(rec.get("hits")), _num(rec.get("misses"))
        rows = [("hits", _fmt(hits, "int")), ("misses", _fmt(misses, "int"))]
        if hits is not None and misses is not None and hits + misses > 0:
            rows.append(("hit rate", f"{hits / (hits + misses):.1%}"))
        return _kv_table(rows) + self.cache_usage_line()

    def render_parallel(self, rec: dict[str, Any]) -> str:
        return _kv_table(
            [
                ("backend", _esc(rec.get("backend", "not recorded"))),
                ("workers (n_jobs)", _fmt(rec.get("n_jobs"), "int")),
            ]
        )

    # ------------------------------------------------------------------ dataset / config
    def section_dataset(self) -> str:
        p = self.dataset.profile
        rows_total = max(int(p.get("rows", 0)), 1)
        numeric = list(p.get("numeric_features") or [])
        categorical = list(p.get("categorical_features") or [])
        info = _kv_table(
            [
                ("name", _esc(p.get("name", ""))),
                ("target column", _esc(p.get("target", ""))),
                (
                    "rows",
                    f"<span data-metric='rows' data-value='{p.get('rows')}'>"
                    f"{_fmt(p.get('rows'), 'int')}</span>",
                ),
                (
                    "feature columns",
                    f"<span data-metric='features' data-value='"
                    f"{p.get('features')}'>{_fmt(p.get('features'), 'int')}</span>"
                    f" ({len(numeric):,} numeric, {len(categorical):,} categorical)",
                ),
                ("rows dropped for a missing target", _fmt(p.get("dropped_missing_target"), "int")),
                ("teachers", _esc(", ".join(map(str, p.get("teachers") or [])) or "none")),
            ],
            "dataset-profile",
        )
        classes = p.get("class_counts") or {}
        balance = _table(
            ["class", "rows", "share"],
            [[_esc(c), _fmt(n, "int"), f"{int(n) / rows_total:.1%}"] for c, n in classes.items()],
        )
        missing = p.get("missing_by_feature") or {}
        missing_html = (
            _table(
                ["feature", "missing values", "share of rows"],
                [
                    [_esc(c), _fmt(n, "int"), f"{int(n) / rows_total:.1%}"]
                    for c, n in missing.items()
                ],
            )
            if missing
            else "<p>No feature has missing values.</p>"
        )
        features = (
            f"<details><summary>Numeric features ({len(numeric):,})</summary><p>"
            + ", ".join(_esc(c) for c in numeric)
            + f"</p></details><details><summary>Categorical features ({len(categorical):,})"
            "</summary><p>" + (", ".join(_esc(c) for c in categorical) or "none") + "</p></details>"
        )
        return (
            info
            + "<h3>Class balance</h3>"
            + balance
            + "<h3>Missing values</h3>"
            + missing_html
            + "<h3>Feature types</h3>"
            + features
        )

    def section_configuration(self) -> str:
        config = self.summary.get("config") or {}
        cfg = _kv_table(
            [(_esc(k), _plain(v, "general")) for k, v in config.items()], "config-table"
        )
        import plotly

        versions = dict(self.summary.get("versions") or {})
        versions["plotly (report)"] = plotly.__version__
        versions["plotly.js (inlined)"] = self.plotly_js_version
        ver = _kv_table([(_esc(k), _esc(v)) for k, v in versions.items()], "versions-table")
        seed = f"<p>Random state: {_esc(self.summary.get('random_state'))}.</p>"
        return "<h3>HPMConfig</h3>" + cfg + seed + "<h3>Versions</h3>" + ver


_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg2:#f6f8fa;--sel:#fff4d6;--accent:#dd8452}
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);line-height:1.45;font-size:15px}
header{padding:16px 28px;border-bottom:1px solid var(--line);background:var(--bg2)}
header h1{margin:0 0 4px;font-size:1.5em}
#generated-at{margin:0;color:var(--muted);font-size:.9em}
nav{margin-top:8px;display:flex;flex-wrap:wrap;gap:14px}
nav a{color:#0969da;text-decoration:none}
main{padding:0 28px 40px;max-width:1400px}
section{margin-top:28px}
h2{border-bottom:1px solid var(--line);padding-bottom:4px}
h3{margin-bottom:6px}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
table.grid td[data-value]{font-variant-numeric:tabular-nums}
table.kv th{background:var(--bg2);font-weight:600;white-space:nowrap}
thead th{background:var(--bg2)}
#leaderboard th{cursor:pointer;white-space:nowrap;user-select:none;position:sticky;top:0}
#leaderboard th[aria-sort=ascending]::after{content:" \\25B2"}
#leaderboard th[aria-sort=descending]::after{content:" \\25BC"}
#leaderboard td{white-space:nowrap;font-size:.88em}
#leaderboard td[data-col=params]{max-width:260px;overflow:hidden;text-overflow:ellipsis}
#leaderboard tr.selected td{background:var(--sel);font-weight:600}
#leaderboard tr.selected td:first-child::before{content:"\\2605  ";color:var(--accent)}
.scroll{overflow:auto;max-height:640px;border:1px solid var(--line)}
.scroll table{margin:0}
.verdict{padding:8px 12px;background:var(--bg2);border-left:4px solid var(--accent)}
.warn{padding:8px 12px;background:#fff1f0;border-left:4px solid #c44e52}
.component{border:1px solid var(--line);border-radius:6px;padding:4px 16px 10px;margin:12px 0}
.component[data-state=off]{background:var(--bg2)}
.component-name{color:var(--muted);font-weight:normal;font-size:.85em}
.component-off{color:var(--muted)}
figure.chart-block{margin:18px 0}
figcaption{color:var(--muted);font-size:.9em}
.hpmkd-chart{width:100%;min-height:240px}
pre{background:var(--bg2);padding:8px;overflow:auto}
"""

_JS = """
(function () {
  "use strict";
  var template = JSON.parse(document.getElementById("hpmkd-plotly-template").textContent);
  var config = {responsive: true, displaylogo: false, showLink: false,
                modeBarButtonsToRemove: ["sendDataToCloud"]};
  var charts = document.querySelectorAll(".hpmkd-chart");
  Array.prototype.forEach.call(charts, function (div) {
    var fig = JSON.parse(document.getElementById(div.getAttribute("data-figure")).textContent);
    fig.layout.template = template;
    Plotly.newPlot(div, fig.data, fig.layout, config).catch(function (err) {
      console.error("chart " + div.id + " failed: " + err);
    });
  });

  var table = document.getElementById("leaderboard");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var headers = table.tHead.rows[0].cells;
  var rows = Array.prototype.slice.call(tbody.rows);
  rows.forEach(function (row, i) { row.setAttribute("data-order", String(i)); });

  function key(row, col, numeric) {
    var raw = row.cells[col].getAttribute("data-value");
    if (numeric) {
      var v = parseFloat(raw);
      return isNaN(v) ? null : v;
    }
    return (raw === null ? row.cells[col].textContent : raw).toLowerCase();
  }
  function sortBy(col) {
    var th = headers[col];
    var numeric = th.getAttribute("data-type") === "num";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var current = Array.prototype.slice.call(tbody.rows);
    current.sort(function (a, b) {
      var x = key(a, col, numeric), y = key(b, col, numeric);
      var oa = +a.getAttribute("data-order"), ob = +b.getAttribute("data-order");
      if (x === null && y === null) { return oa - ob; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return (ascending ? c : -c) || (oa - ob);
    });
    current.forEach(function (row) { tbody.appendChild(row); });
  }
  Array.prototype.forEach.call(headers, function (th, col) {
    th.addEventListener("click", function () { sortBy(col); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(col); }
    });
  });

  var box = document.getElementById("leaderboard-filter");
  var count = document.getElementById("leaderboard-count");
  function filter() {
    var q = box.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var match = !q || row.textContent.toLowerCase().indexOf(q) !== -1;
      row.hidden = !match;
      if (match) { shown += 1; }
    });
    count.textContent = "showing " + shown + " of " + rows.length + " rows";
  }
  box.addEventListener("input", filter);
  filter();
})();
"""
