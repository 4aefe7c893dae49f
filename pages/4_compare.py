"""Page 4 — teacher against the best (or any) student, on the test rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from hpmkd import curves
from hpmkd.report import figures
from hpmkd_app import cached, charts, compare, leakage_view, teachers, ui

ui.run_through_app()
st.title("4 · Compare")
st.caption(
    "The cards and charts are measured on the **test rows**, which no selection step saw; "
    "they are read once, for the selected student, its hard-label twin and the teacher(s). "
    "The other candidates are compared on the validation rows below."
)



def show(job: Any, distiller: Any) -> None:
    """The comparison of a finished run."""
    result = distiller.result_
    teacher_entries = compare.teachers(result)
    student_entries = compare.students(result)
    labels = compare.class_labels(result)
    y = np.asarray(result.y_test, dtype=int)
    leakage_view.render(
        result.leakage, distiller.dataset.has_separate_test, "compare",
        refit_possible=any(t.kind != "proba_cols" for t in distiller.dataset.teachers),
        trained_here=teachers.teachers_fitted_on(distiller.dataset, result.split.train),
    )

    c1, c2, c3 = st.columns(3)
    student_names = [e.name for e in student_entries]
    student_name = c1.selectbox(
        "Student", student_names, index=0, key="w_compare_student",
        format_func=lambda n: f"{n}  ★ best" if n == student_entries[0].name else n,
        help="The selected best student or its hard-label twin (the models with test "
        "figures; other candidates are ranked on validation below).",
    )
    teacher_names = [e.name for e in teacher_entries]
    teacher_name = c2.selectbox("Teacher", teacher_names, index=0, key="w_compare_teacher")
    if len(labels) > 2:
        k = c3.selectbox("Class (one-vs-rest charts)", list(range(len(labels))),
                         index=curves.default_class(y, len(labels)),
                         format_func=lambda i: labels[i], key="w_compare_class",
                         help="Shown first: the class with the fewest test rows.")
    else:
        k = curves.default_class(y, len(labels))
        c3.markdown(f"Charts show the positive class **{labels[k]}** vs **{labels[1 - k]}**.")

    student = next(e for e in student_entries if e.name == student_name)
    teacher = next(e for e in teacher_entries if e.name == teacher_name)
    others = [e for e in teacher_entries + student_entries if e is not teacher and e is not student]
    more = st.multiselect(
        "More models in the charts", [e.name for e in others], key="w_compare_more",
        help="The twin or other teachers, drawn beside the teacher and the student.",
    )

    st.subheader("Verdict: the best student against its twin and the teacher(s)")
    ui.show_verdict(result)

    # ------------------------------------------------------------------ metric cards
    st.subheader(f"{student.name} vs {teacher.name}")
    st.caption(f"Measured on the {ui.test_rows_note(distiller.dataset)}.")
    cards = compare.metric_cards(teacher, student)
    for row in range(0, len(cards), 4):
        cols = st.columns(4)
        for col, card in zip(cols, cards[row:row + 4], strict=False):
            col.metric(card.label, card.value, card.delta, delta_color=card.delta_color,
                       help=card.help, border=True)
    with st.expander("Teacher's own values"):
        tcols = st.columns(len(cards))
        for col, card in zip(tcols, compare.teacher_cards(teacher), strict=True):
            col.metric(card.label, card.value, help=card.help)

    # ------------------------------------------------------------------ charts
    shown = [teacher, student, *(e for e in others if e.name in more)]
    inp = compare.chart_inputs(result, shown, k)
    label = labels[k]

    def draw(where: Any, chart: figures.Chart, title: str, **layout: Any) -> None:
        where.plotly_chart(charts.show(chart, title, **layout), width="stretch")

    left, right = st.columns(2)
    draw(left, figures.roc_chart(inp), f"ROC curve — class {label} vs rest")
    draw(right, figures.calibration_chart(inp), "Calibration")
    draw(st, figures.ks_chart(inp), f"KS plot — score CDFs of class {label} vs the rest")
    draw(st, figures.score_distribution_chart(inp), "Score distributions on the test rows")
    # One panel per model: more than two models need the full width.
    left, right = st.columns(2) if len(shown) == 2 else (st, st)
    draw(left, figures.confusion_chart(inp), "Confusion matrices on the test rows")
    scatter = figures.agreement_scatter_chart(inp)
    draw(right, scatter, f"Agreement with the teacher: P(class {label})")
    st.caption(scatter.caption)

    metric = result.selection_metric
    quality = f"validation {metric}" + (f" (class {label} vs rest)" if metric == "ks" else "")
    st.subheader(f"Every candidate: cost against validation {metric}")
    frame = compare.candidates_frame(result, k)
    left, right = st.columns(2)
    for where, cost, title in ((left, "size_bytes", f"Size vs validation {metric}"),
                               (right, "latency_ms_1k", f"Latency vs validation {metric}")):
        chart = figures.pareto_chart(frame, compare.pareto_metric(result), costs=(cost,))
        draw(where, chart, title, yaxis_title=quality)
    st.caption(f"Pareto front: no other candidate is both cheaper and better on validation "
               f"{metric}, the metric the run selected by. Candidates are ranked on the "
               "validation rows only; the test rows were read once, for the selected student, "
               "its twin and the teacher(s).")

    # ------------------------------------------------------------------ importance
    st.subheader("Feature importance")
    results = {}
    methods = {}
    for entry in (teacher, student):
        importance, note = cached.importance(job.id, entry.name, int(k), distiller)
        if importance is None:
            st.caption(f"{entry.name}: {note}")
            continue
        results[entry.name] = importance.values
        methods[entry.name] = f"{importance.method}, {importance.rows} rows"
        if note:
            st.caption(f"{entry.name}: {note}")
    if results:
        st.plotly_chart(charts.importance_figure(results, methods), width="stretch")
        st.caption("Rows: an evenly spaced sample of at most 500 test rows (the same for both "
                   "models). Values are comparable within a model, not across methods.")
    st.caption(f"{len(y):,} test rows ({ui.test_rows_note(distiller.dataset)}) · classes "
               f"{', '.join(labels)} · {int(np.sum(y == k)):,} of class {label}.")


run = ui.finished_run()
if run is not None:
    show(*run)
ui.run_history_list()
