"""Page 4 — teacher against the best (or any) student, on the test rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from hpmkd_app import cached, charts, compare, ui

st.title("4 · Compare")
st.caption(
    "Everything here is measured on the **test rows**, which no selection step saw. "
    "The best student was chosen on the validation rows."
)



def show(job: Any, distiller: Any) -> None:
    """The comparison of a finished run."""
    teacher_entries = compare.teachers(distiller)
    student_entries = compare.students(distiller)
    labels = compare.class_labels(distiller)
    y = compare.y_test(distiller)

    c1, c2, c3 = st.columns(3)
    student_names = [e.name for e in student_entries]
    student_name = c1.selectbox(
        "Student", student_names, index=0, key="w_compare_student",
        format_func=lambda n: f"{n}  ★ best" if n == student_entries[0].name else n,
        help="The selected best student, any other candidate, or the hard-label baseline.",
    )
    teacher_names = [e.name for e in teacher_entries]
    teacher_name = c2.selectbox("Teacher", teacher_names, index=0, key="w_compare_teacher")
    if len(labels) > 2:
        k = c3.selectbox("Class (one-vs-rest charts)", list(range(len(labels))),
                         format_func=lambda i: labels[i], key="w_compare_class")
    else:
        k = compare.default_class(len(labels))
        c3.markdown(f"Charts show the positive class **{labels[k]}** vs **{labels[1 - k]}**.")

    student = next(e for e in student_entries if e.name == student_name)
    teacher = next(e for e in teacher_entries if e.name == teacher_name)

    summary = distiller.summary()
    verdict = (summary.get("distillation_gain") or {}).get("verdict")
    if verdict:
        st.info(f"**Distillation gain** (best student vs its hard-label twin "
                f"`{summary.get('baseline_model')}`): {verdict}.")

    # ------------------------------------------------------------------ metric cards
    st.subheader(f"{student.name} vs {teacher.name}")
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
    is_k = y == k
    scores = {
        teacher.name: compare.class_score(teacher, k),
        student.name: compare.class_score(student, k),
    }
    label = labels[k]

    left, right = st.columns(2)
    left.plotly_chart(charts.roc_figure(is_k, scores, label), width="stretch")
    right.plotly_chart(charts.calibration_figure(is_k, scores, label), width="stretch")
    st.plotly_chart(charts.ks_figure(is_k, scores, label), width="stretch")
    st.plotly_chart(charts.distribution_figure(is_k, scores, label), width="stretch")
    left, right = st.columns(2)
    left.plotly_chart(
        charts.confusion_figure(y, {teacher.name: teacher.test_proba,
                                    student.name: student.test_proba}, labels),
        width="stretch",
    )
    right.plotly_chart(
        charts.scatter_figure(scores[teacher.name], scores[student.name], is_k, teacher.name,
                              student.name, label),
        width="stretch",
    )

    st.subheader("Every candidate: cost against test KS")
    frame = compare.candidates_frame(student_entries, y, k)
    teacher_ks = compare.ks_of(y, compare.class_score(teacher, k), k)
    left, right = st.columns(2)
    left.plotly_chart(charts.pareto_figure(frame, "size_bytes", label,
                                           (teacher.size_bytes, teacher_ks)), width="stretch")
    right.plotly_chart(charts.pareto_figure(frame, "latency_ms_1k", label,
                                            (teacher.latency_ms_1k, teacher_ks)), width="stretch")
    st.caption("Pareto front: no other candidate is both cheaper and better on test KS. "
               "Selection used validation KS, so the selected student need not be on it.")

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
    n_test = len(y)
    st.caption(f"{n_test:,} test rows · classes {', '.join(labels)} · "
               f"{int(np.sum(is_k)):,} of class {label}.")


run = ui.finished_run()
if run is not None:
    show(*run)
