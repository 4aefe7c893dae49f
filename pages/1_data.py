"""Page 1 — load a table, choose target and features, add the teacher(s)."""

from __future__ import annotations

import time

import streamlit as st

from hpmkd import HPMKDInputError
from hpmkd_app import cached, configform, leakage_view, state, tables, teachers, ui

ui.run_through_app()
st.title("1 · Data & teachers")
st.caption(
    "Load a table, choose the column to predict and the feature columns, then add the "
    "**teacher**: the heavy model whose behaviour the small student will learn."
)

# ------------------------------------------------------------------ data
st.subheader("Data")
left, right = st.columns([3, 1], vertical_alignment="center")
upload = left.file_uploader(
    "Upload a CSV or Parquet file",
    type=["csv", "tsv", "txt", "parquet", "pq"],
    key="data_upload",
    help="Comma/semicolon/tab separated CSV (UTF-8 or Latin-1) or Parquet; the size limit "
    "is set by server.maxUploadSize in .streamlit/config.toml.",
)
with right:
    if st.button("Use sample data", type="primary", icon=":material/dataset:",
                 help="German credit: 1,000 applicants, 30 numeric features, "
                 "target 1 = bad credit risk (UCI Statlog, CC BY 4.0)."):
        state.set_table(tables.load_sample())
        st.session_state.pop("hpmkd.upload_error", None)

if upload is not None:
    signature = (upload.file_id, upload.name, upload.size)
    if st.session_state.get("hpmkd.upload_sig") != signature:
        st.session_state["hpmkd.upload_sig"] = signature
        st.session_state.pop("hpmkd.upload_error", None)
        started = time.perf_counter()
        try:
            with st.spinner(f"Reading {upload.name} ..."):
                loaded = tables.load_table_bytes(upload.getvalue(), upload.name)
        except HPMKDInputError as exc:
            st.session_state["hpmkd.upload_error"] = str(exc)
        else:
            current = state.table()
            if current is None or current.digest != loaded.digest:
                state.set_table(loaded)
            st.session_state["hpmkd.upload_seconds"] = time.perf_counter() - started
    if st.session_state.get("hpmkd.upload_error"):
        st.error(st.session_state["hpmkd.upload_error"])



def show(table: tables.LoadedTable) -> None:
    """Preview, target and features, teachers and the dataset check of a loaded table."""
    frame = table.frame
    st.markdown(
        f"**{table.name}** — {table.n_rows:,} rows × {frame.shape[1]} columns, "
        f"{tables.describe_size(table.n_bytes)}"
        + (" (sample data)" if table.source == "sample" else "")
        + (f", read in {st.session_state['hpmkd.upload_seconds']:.1f} s"
           if table.source == "upload" and "hpmkd.upload_seconds" in st.session_state else "")
    )
    tab_preview, tab_types = st.tabs(["Preview (first 20 rows)", "Column types"])
    tab_preview.dataframe(tables.preview(frame), width="stretch", height=300)
    tab_types.dataframe(table.columns, width="stretch", hide_index=True, height=300)

    # ------------------------------------------------------------------ target & features
    st.subheader("Target and features")
    columns = list(frame.columns)
    current_target = state.target() if state.target() in columns else tables.default_target(columns)
    col_target, col_balance = st.columns([1, 2])
    with col_target:
        chosen = st.selectbox(
            "Target column (the class to predict)", columns, index=columns.index(current_target),
            key=f"w_target_{state.data_version()}",
        )
        if chosen != state.target():
            state.set_target(chosen)
    balance = None
    try:
        balance = tables.class_balance(frame, chosen)
    except HPMKDInputError as exc:
        col_balance.error(str(exc))
    else:
        with col_balance:
            st.markdown("**Class balance**")
            st.dataframe(
                balance.assign(share=(balance["share"] * 100).round(1).astype(str) + " %"),
                hide_index=True, width="stretch",
            )
            problem = tables.target_problem(frame, chosen)
            if problem:
                st.error(problem, icon=":material/block:")

    options = [c for c in columns if c != chosen]
    selected = [c for c in state.features_() if c in options]
    features = st.multiselect(
        "Feature columns", options, default=selected,
        key=f"w_features_{chosen}_{state.data_version()}",
        help="The columns the student may use. Drop ids and columns that leak the target.",
    )
    st.caption(f"{len(features)} of {len(options)} columns selected as features.")
    if features != state.features_():
        state.set_features(features)
    if not features:
        st.error("Choose at least one feature column.")

    # ------------------------------------------------------------------ test rows
    st.subheader("Test rows")
    st.caption(
        "The final teacher-vs-student figures are measured on test rows that no selection "
        "step sees. By default they are a seeded random part of your table. If your teacher "
        "was trained on this table, upload a **separate test table** (same columns) that "
        "nobody trained on: otherwise the teacher looks better than it is."
    )
    test_upload = st.file_uploader(
        "Upload a test table (CSV or Parquet, same columns as the table above)",
        help="Choose it before training the reference teacher: the test table decides "
        "which rows are train rows.",
        type=["csv", "tsv", "txt", "parquet", "pq"],
        key=f"test_upload_{state.test_upload_version()}",
    )
    upload_error = ui.receive_test_upload(test_upload)
    if upload_error:
        st.error(upload_error)
    test_table = state.test_table()
    if test_table is not None:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.markdown(tables.describe_test_rows(test_table, chosen, 0, teachers.TEST_SIZE)
                    + " Every row of the table above is used for training and validation.")
        if c2.button("Remove test table", key="remove_test_table"):
            state.set_test_table(None)
            st.rerun()
        try:
            for note in tables.check_test_table(test_table, table, chosen, features):
                st.caption(note)
        except HPMKDInputError as exc:
            st.error(str(exc))
    else:
        st.markdown(tables.describe_test_rows(
            None, chosen, tables.rows_with_target(frame, chosen), teachers.TEST_SIZE))

    # ------------------------------------------------------------------ teachers
    st.subheader("Teachers")
    st.caption("Add one or more. Each is checked against the data: features present, classes "
               "matching the target, probabilities valid.")
    tab_ref, tab_files, tab_cols = st.tabs(
        ["Train a reference teacher", "Upload model files", "Probability columns"]
    )

    with tab_ref:
        form = state.config_form()
        try:
            validation_split = configform.to_config(form).validation_split
        except HPMKDInputError:
            validation_split = 0.2
        settings = teachers.reference_settings(table, chosen, features, state.seed(),
                                               validation_split, test_table=test_table)
        non_test = ("all rows of your table (the test rows are your test table)"
                    if test_table is not None else
                    f"{100 - int(100 * teachers.TEST_SIZE)}% non-test rows")
        st.markdown(
            f"A **LightGBM classifier with {teachers.REFERENCE_TREES} trees**, trained here on the "
            "**train part** of the run's seeded split (seed "
            f"{state.seed()}: {non_test}, of which "
            f"{round(100 * validation_split)}% go to validation). The **validation and test "
            "rows stay unseen** by the teacher, so its test scores are honest."
        )
        if st.button("Train a reference teacher", icon=":material/model_training:",
                     disabled=not features):
            outcome = cached.reference_teacher(
                cached.settings_json(settings), frame,
                test_table.frame if test_table is not None else None,
            )
            if outcome.ok:
                _, info = outcome.value
                state.add_teacher(teachers.reference_source(settings, info))
                st.success(
                    f"Reference teacher ready: trained on {info['train_rows']:,} of "
                    f"{info['rows']:,} rows ({100 * info['train_share']:.0f}%)."
                )
            else:
                st.error(outcome.error)

    with tab_files:
        files = st.file_uploader(
            "Model files: joblib/pickle, LightGBM .txt, XGBoost .json/.ubj, skops",
            type=list(teachers.MODEL_FILE_TYPES), accept_multiple_files=True, key="teacher_upload",
            help="Pickle and joblib files are opened by a restricted loader that accepts only "
            "known model classes (scikit-learn, LightGBM, XGBoost); anything else is refused "
            "without running it. Every model file is loaded and scored in a separate, "
            "resource-limited process, never in the server.",
        )
        trusted = False
        if teachers.trust_uploads_allowed():
            # Only on a server started with HPMKD_APP_TRUST_UPLOADED_TEACHERS=1.
            st.warning(
                "This app was started with trusted uploads allowed "
                f"({teachers.TRUST_ENV}=1). Loading a file unrestricted **runs any code in "
                "it** on this machine: tick the box only for your own files.",
                icon=":material/warning:",
            )
            trusted = st.checkbox(
                "Load my model files without restrictions (runs code in them)",
                key="w_trust_teacher",
                help="For your own files that the restricted loader refuses (custom classes "
                "or functions). The run summary records teacher_trusted: true.",
            )
        # Each upload (file id) is checked once per loading mode: a teacher removed below
        # stays removed while its file is still shown in the uploader; uploading it again
        # re-adds it.
        outcomes = state.teacher_errors()
        for f in files or []:
            check = f"{f.file_id}:{'trusted' if trusted else 'restricted'}"
            if check not in outcomes:
                data = f.getvalue()
                source = teachers.file_source(data, f.name, trusted=trusted)
                checked = cached.check_teacher_upload(source.digest, f.name, data, trusted)
                if checked.ok:
                    state.add_teacher(source)
                outcomes[check] = checked.error or ""
            if outcomes[check]:
                st.error(outcomes[check])
            else:
                st.caption(f"✓ {f.name} checked in a separate, resource-limited process")

    with tab_cols:
        numeric = [c for c in tables.numeric_columns(frame) if c != chosen]
        classes = [] if balance is None else [
            c for c in balance["class"] if not c.startswith("(missing")
        ]
        st.markdown(
            "Columns already holding a teacher's probabilities, **one per class in class order**"
            + (f" ({', '.join(classes)})." if classes else ".")
            + " They are removed from the features."
        )
        cols = st.multiselect("Probability columns", numeric, key="w_proba_cols")
        if st.button("Use these columns as a teacher", disabled=not cols):
            try:
                state.add_teacher(teachers.proba_cols_source(cols))
            except HPMKDInputError as exc:
                st.error(str(exc))
            else:
                state.set_features([c for c in state.features_() if c not in cols])
                state.bump_data_version()
                st.rerun()

    sources = state.teacher_sources()
    if sources:
        st.markdown("**Teachers added**")
        for i, source in enumerate(sources):
            c1, c2 = st.columns([6, 1], vertical_alignment="center")
            c1.markdown(f"`{source.name}` — {source.describe()}")
            if c2.button("Remove", key=f"remove_teacher_{i}_{source.name}"):
                state.remove_teacher(i)
                st.rerun()
            stale = teachers.stale_reference_reason(source, table, chosen, features, state.seed(),
                                                    validation_split, test_table)
            if stale:
                st.warning(stale)

    # ------------------------------------------------------------------ dataset check
    st.subheader("Ready to distill?")
    dataset, error = ui.current_dataset()
    if error and sources:
        st.error(error)
    elif error:
        st.info(error)
    else:
        profile = dataset.profile()
        n_test = teachers.separate_test_rows(dataset)
        rows = (f"{dataset.n_rows - n_test:,} rows + {n_test:,} test rows from your test table"
                if n_test else f"{dataset.n_rows:,} rows")
        st.success(
            f"Dataset ready: {rows}, {dataset.n_features} features "
            f"({len(profile['categorical_features'])} categorical), classes "
            f"{', '.join(profile['class_counts'])}, teacher(s) {', '.join(profile['teachers'])}."
            + (f" {dataset.n_dropped_missing_target} row(s) without a target were dropped."
               if dataset.n_dropped_missing_target else "")
        )
        # The pre-run leakage check, on the rows a run with this seed will not test on.
        check, check_error = ui.current_leakage(dataset)
        if check_error:
            st.warning(f"The leakage check could not run: {check_error}")
        leakage_view.render(
            check, test_table is not None, "data", on_refit=ui.use_teacher_refit_oof,
            refit_possible=any(s.kind != "proba_cols" for s in sources),
            trained_here=ui.reference_teachers_of(dataset, validation_split),
            teacher_refit=str(state.config_form().get("teacher_refit", "none")),
        )
        ui.page_link("configure", "Next: Configure the run")


table = state.table()
if table is None:
    st.info("Upload a table or click **Use sample data** to start.")
else:
    show(table)
