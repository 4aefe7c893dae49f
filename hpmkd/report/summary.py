"""The report's summary section: teacher, student and hard-label twin on the test split,
the distillation gain, compression, and why this method and this student."""

from __future__ import annotations

from typing import Any

from hpmkd.report.context import ReportContext
from hpmkd.report.fmt import data_value, esc, finite, fmt, kv_table, table
from hpmkd.report.leakage import leakage_banner
from hpmkd.result import compression
from hpmkd.results_table import SPLIT_METRICS, metrics_dict

#: Row labels of the summary table.
METRIC_LABELS = {
    "accuracy": "accuracy",
    "f1": "F1",
    "auc": "ROC AUC",
    "ks": "KS",
    "fidelity": "fidelity (same class as teacher)",
    "rank_fidelity": "rank fidelity (Spearman vs teacher)",
    "ece": "ECE (expected calibration error; lower is better)",
    "brier": "Brier score (lower is better)",
    "kl_to_teacher": "KL(teacher ‖ model), nats",
    "size_bytes": "size (pickled bytes)",
    "latency_ms_1k": "latency (ms per 1,000 rows)",
}
NOT_MEASURABLE = "not measurable (the teacher has no model object)"


def section_summary(ctx: ReportContext) -> str:
    """Test metrics of teacher, student and twin, the gain verdict, compression, method.

    Parameters
    ----------
    ctx : ReportContext

    Returns
    -------
    str
        HTML.
    """
    return (
        leakage_banner(ctx)
        + "<p>All metrics on the <strong>test split</strong>, which no selection step saw. "
        "Agreement metrics (fidelity, rank fidelity, KL) compare each model with the "
        "primary teacher.</p>"
        + _metrics_table(ctx)
        + _verdict(ctx)
        + _budget(ctx)
        + "<h3>Compression</h3>"
        + _compression(ctx)
        + "<h3>Method and selection</h3>"
        + _method(ctx)
    )


def _metrics_table(ctx: ReportContext) -> str:
    r = ctx.result
    cols: list[tuple[str, dict[str, Any], str]] = [
        ("teacher", metrics_dict(r.primary_teacher), f"primary {r.primary_teacher.name}"),
        ("student", metrics_dict(r.selected), f"best student: {r.selected.name}"),
    ]
    if r.twin is not None:
        cols.append(("baseline", metrics_dict(r.twin), f"hard-label {r.twin.name}"))
    gains = r.verdict.gains if r.verdict is not None else {}
    head = "".join(f"<th scope='col'>{esc(name)}</th>" for _, _, name in cols)
    if r.twin is not None:
        head += "<th scope='col'>gain (student − baseline)</th>"
    rows = []
    for m in (*SPLIT_METRICS, "size_bytes", "latency_ms_1k"):
        kind = "bytes" if m == "size_bytes" else "ms" if m == "latency_ms_1k" else "metric"
        cells = []
        for role, values, _ in cols:
            reason = (values.get("undefined") or {}).get(m, "")
            value = values.get(m)
            title = f" title='{esc(reason)}'" if reason else ""
            cells.append(
                f"<td data-model='{role}' data-metric='{m}' "
                f"data-value='{data_value(value)}'{title}>{fmt(value, kind)}</td>"
            )
        if r.twin is not None:
            if m in gains:
                cells.append(
                    f"<td data-model='gain' data-metric='{m}' data-value="
                    f"'{data_value(gains[m])}'>{fmt(gains[m], 'signed')}</td>"
                )
            else:
                cells.append("<td></td>")
        rows.append(f"<tr><th scope='row'>{esc(METRIC_LABELS[m])}</th>{''.join(cells)}</tr>")
    legend = (
        "<p>Gain: student minus baseline, point values (the verdict below gives intervals "
        "in KS and the selection metric). ECE and Brier: lower is better, so a negative "
        "gain there is an improvement.</p>"
        if r.twin is not None
        else ""
    )
    return (
        f"<table class='grid' id='summary-metrics'><thead><tr><th>test split</th>{head}"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{legend}"
    )


def _verdict(ctx: ReportContext) -> str:
    verdict = ctx.result.verdict
    if verdict is None:
        return (
            "<p class='verdict' id='gain-verdict'>The student was compared with no other "
            "model on the test rows, so the distillation gain is not measured.</p>"
        )
    frame = verdict.table()
    rows = [
        [esc(f"{value:,}" if column == "test rows" else value) for column, value in row.items()]
        for row in frame.to_dict("records")
    ]
    return (
        f"<p class='verdict' id='gain-verdict'><strong>Distillation gain "
        f"({esc(verdict.outcome)}):</strong> {esc(verdict.text)}.</p>"
        + table(list(frame.columns), rows).replace(
            "<table class='grid'>", "<table class='grid' id='verdict-intervals'>", 1
        )
        + "<p>Every comparison of the selected student on the test rows (higher is better "
        "in each metric shown). Intervals: paired bootstrap (percentile) over the test "
        "rows; an interval above 0 is a measured gain (against the hard-label twin: "
        "<em>helped</em>; against a teacher: <em>better than the teacher</em>), one below "
        "0 a measured loss (<em>hurt</em>; <em>worse than the teacher</em>), one that "
        "includes 0 is no measurable difference.</p>"
    )


def _budget(ctx: ReportContext) -> str:
    result = ctx.result
    reason = result.stop_reason
    if reason is None and not result.stopped_by_budget:
        return ""
    why = esc(reason) if reason else "the time budget ran out"
    return (
        f"<p class='warn'><b>Partial run</b>: {why}. Not every candidate was trained; "
        f"the best of the {len(result.candidates)} that finished was kept.</p>"
    )


def _compression(ctx: ReportContext) -> str:
    ratios = compression(ctx.result.primary_teacher, ctx.result.selected)
    size_r, lat_r = finite(ratios["size_ratio"]), finite(ratios["latency_ratio"])
    if not size_r:
        size_text = NOT_MEASURABLE
    elif size_r >= 1:
        size_text = f"the student is {size_r:.2f}× smaller than the teacher"
    else:
        size_text = f"the student is {1 / size_r:.2f}× larger than the teacher"
    if not lat_r:
        lat_text = NOT_MEASURABLE
    elif lat_r >= 1:
        lat_text = f"the student predicts {lat_r:.2f}× faster"
    else:
        lat_text = f"the student predicts {1 / lat_r:.2f}× slower than the teacher"
    return kv_table(
        [
            (
                "size ratio (teacher ÷ student)",
                f"<span data-metric='size_ratio' data-value='{data_value(size_r)}'>"
                f"{fmt(size_r, 'ratio')}</span> — {esc(size_text)}",
            ),
            (
                "latency ratio (teacher ÷ student)",
                f"<span data-metric='latency_ratio' data-value='{data_value(lat_r)}'>"
                f"{fmt(lat_r, 'ratio')}</span> — {esc(lat_text)}",
            ),
        ],
        "summary-compression",
    )


def _method(ctx: ReportContext) -> str:
    r = ctx.result
    sizes = r.split_sizes
    return kv_table(
        [
            ("method", f"<span id='method'>{esc(r.method)}</span>"),
            ("why this method", f"<span id='method-reason'>{esc(r.method_reason)}</span>"),
            (
                "selected student",
                f"<span id='best-model'>{esc(r.selected.name)}</span> "
                f"(source: {esc(r.selected.source)})",
            ),
            ("why this student", esc(selection_reason(ctx))),
            *(
                [("shipped", f"<span id='final-fit'>{esc(final.sentence())}</span>")]
                if (final := r.components.final_fit) is not None
                else []
            ),
            (
                "rows (train / validation / test)",
                esc(" / ".join(f"{sizes[k]:,}" for k in ("train", "validation", "test"))),
            ),
            ("candidates trained", esc(f"{len(r.candidates):,}")),
            ("total run time", esc(f"{fmt(r.phases.get('total'), 'seconds')} s")),
        ],
        "summary-method",
    )


def selection_reason(ctx: ReportContext) -> str:
    """Why the selected student was selected, in plain (unescaped) words.

    Parameters
    ----------
    ctx : ReportContext

    Returns
    -------
    str
        The selection rule's own reason when the run recorded one; otherwise the
        candidate's validation metric, and how ties were broken.
    """
    rule = ctx.result.components.selection_rule
    if rule is not None and rule.reason:
        return f"{rule.reason} (selection rule: {rule.rule})"
    metric, best = ctx.metric, ctx.result.selected
    value = best.val.get(metric)
    candidates = ctx.results[~ctx.results["source"].isin(["teacher", "baseline"])]
    col = f"val_{metric}"
    ties = 0
    if value is not None and col in candidates and finite(value) is not None:
        ties = int((candidates[col] == value).sum()) - 1
    text = f"highest validation {metric} ({fmt(value)}) of {len(candidates):,} candidates"
    if ties > 0:
        text += (
            f"; {ties} other candidate(s) tie on validation {metric}, and ties go to "
            "the smaller model, then to the one trained first"
        )
    return text
