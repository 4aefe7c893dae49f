"""Page 5 — download the student, the results, the summary and the HTML report."""

from __future__ import annotations

from typing import Any

import streamlit as st

from hpmkd_app import cached, compare, exports, ui

ui.run_through_app()
st.title("5 · Export")
st.caption("Take the student with you. The pickle holds a plain scikit-learn model (the "
           "student Pipeline, calibrated on the validation rows; scikit-learn and LightGBM "
           "classes only): it loads without hpmkd.")



def show(job: Any, distiller: Any) -> None:
    """The downloads of a finished run."""
    entries = compare.candidates(distiller.result_)
    names = [e.name for e in entries]
    name = st.selectbox("Model to download", names, index=0, key="w_export_model",
                        format_func=lambda n: f"{n}  ★ best" if n == names[0] else n)
    entry = next(e for e in entries if e.name == name)
    if not entry.selected and entry.role != "baseline":
        st.warning(
            f"`{name}` is not the selected student. Its test figures are not available: the "
            "test rows were read once, for the selected student, its twin and the teacher(s). "
            "Its validation figures are in the results CSV, and they were part of the "
            "selection, so they are optimistic for the candidate that happened to score best."
        )
    filename = f"student_{exports.safe_filename(name)}.joblib"

    st.subheader("Downloads")
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("Student model (.joblib)", cached.model_download(job.id, name, distiller),
                       file_name=filename, mime="application/octet-stream", type="primary",
                       icon=":material/download:", on_click="ignore")
    c2.download_button("Results (.csv)", exports.results_csv(distiller),
                       file_name="hpmkd_results.csv", mime="text/csv",
                       icon=":material/table:", on_click="ignore")
    # The clocks apart, as hpmkd distill writes them: results.csv is then the same bytes
    # for the same inputs (README, "Reproducing a run").
    c3.download_button("Timings (.csv)", exports.timings_csv(distiller),
                       file_name="hpmkd_timings.csv", mime="text/csv",
                       icon=":material/timer:", on_click="ignore",
                       help="Training seconds, latency and cache use of each row of the "
                       "results CSV, by name; kept apart so that the results CSV of two "
                       "runs of the same inputs is the same file.")
    c4.download_button("Summary (.json)", exports.summary_json(distiller),
                       file_name="hpmkd_summary.json", mime="application/json",
                       icon=":material/data_object:", on_click="ignore")

    st.subheader("HTML report")
    missing = exports.report_missing()
    if missing:
        st.info(f"The HTML report is not available in this installation ({missing}). The "
                "CSV and JSON above hold the same numbers.")
    else:
        # One click: the report is written when the button is pressed, then downloaded.
        st.download_button("HTML report", exports.report_download(distiller),
                           file_name="hpmkd_report.html", mime="text/html",
                           icon=":material/description:", on_click="ignore",
                           help="Every number, chart and decision of this run in one "
                           "self-contained page; it is written when you click (a few "
                           "seconds).")

    st.subheader("Use the student")
    dataset = distiller.dataset
    st.code(
        exports.code_snippet(filename, list(dataset.features), list(dataset.categorical),
                             list(dataset.classes), dataset.target),
        language="python",
    )
    st.caption(f"Size {compare.format_bytes(entry.size_bytes)} · "
               f"{entry.latency_ms_1k:.2f} ms per 1,000 rows · trained with hpmkd in run "
               f"`{job.id}`.")


run = ui.finished_run()
if run is not None:
    show(*run)
ui.run_history_list()
