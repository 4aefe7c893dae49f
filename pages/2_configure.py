"""Page 2 — every HPMConfig option, the method and the seed."""

from __future__ import annotations

import streamlit as st

from hpmkd import HPMKDInputError, choose_method
from hpmkd_app import configform, state, tables, ui

ui.run_through_app()
st.title("2 · Configure")
st.caption(
    "Every option of the run. Defaults follow the HPM-KD specification; hover a field's "
    "ⓘ for what it does. Values are kept when you switch pages."
)

UPLOAD_SIG, UPLOAD_ERROR = "hpmkd.config_upload_sig", "hpmkd.config_upload_error"
#: Counts configuration files applied; the method and seed widgets change identity with it.
FILES_APPLIED = "hpmkd.config_files_applied"


def _versioned(key: str) -> str:
    """A widget key that changes when a configuration file sets the method and seed, so
    the browser drops the value it holds for the old widget."""
    version = int(st.session_state.get(FILES_APPLIED, 0))
    return key if version == 0 else f"{key}__{version}"


form = state.config_form()

# ------------------------------------------------------------------ presets
c1, c2, _ = st.columns([1, 1, 3])
if c1.button("Quick run preset", icon=":material/bolt:",
             help="A small search that finishes in seconds on the sample data: 2 families, "
             "one temperature and alpha, 1 trial, 4 configurations."):
    state.replace_config_form(configform.apply_preset(form, configform.QUICK_PRESET))
    st.rerun()
if c2.button("Reset to defaults", icon=":material/restart_alt:"):
    state.replace_config_form(configform.default_form())
    st.rerun()

# ------------------------------------------------------------------ configuration file
upload = st.file_uploader(
    "Load a configuration file (.json)", type=["json"], key="config_upload",
    help="A file saved with 'Download the configuration' below: the method, the seed and "
    "the run's options. Worker processes, the Dask scheduler, the cache and memory folders "
    "and the cache size are the server's settings and cannot be set from a file.",
)
if upload is not None:
    signature = (upload.file_id, upload.name, upload.size)
    if st.session_state.get(UPLOAD_SIG) != signature:
        st.session_state[UPLOAD_SIG] = signature
        st.session_state.pop(UPLOAD_ERROR, None)
        try:
            new_form, new_method, new_seed = configform.form_from_json(
                upload.getvalue(), upload.name, form)
        except HPMKDInputError as exc:
            st.session_state[UPLOAD_ERROR] = str(exc)
        else:
            state.replace_config_form(new_form)
            st.session_state[FILES_APPLIED] = int(st.session_state.get(FILES_APPLIED, 0)) + 1
            if new_method is not None:
                state.set_method(new_method)
            if new_seed is not None:
                state.set_seed(new_seed)
            st.rerun()
    if st.session_state.get(UPLOAD_ERROR):
        st.error(st.session_state[UPLOAD_ERROR])

# ------------------------------------------------------------------ method
st.subheader("Method")
methods = configform.method_options()
method = st.radio(
    "Distillation method", methods, index=methods.index(state.method()),
    format_func=lambda m: configform.METHOD_LABELS.get(m, m), horizontal=True,
    key=_versioned("w_method"),
)
if method != state.method():
    state.set_method(method)

table = state.table()
if table is not None and state.target():
    n_rows = tables.rows_with_target(table.frame, state.target())
    auto_method, reason = choose_method(n_rows, len(state.features_()))
    st.caption(f"On your data **auto** picks **{auto_method}** — {reason}.")
else:
    auto_method = None
    st.caption("Load data to see what **auto** picks (hpm for more than 10,000 rows or 50 "
               "features, legacy below 1,000 rows, hpm otherwise).")
resolved = auto_method if method == "auto" else method
if not configform.hpm_available() and resolved == "hpm":
    st.warning("The **hpm** method is not available in this installation yet; the run would "
               "fail. Choose **legacy**.")

seed = st.number_input("Random seed (splits, trials, students)", min_value=0,
                       max_value=configform.SEED_MAX, value=state.seed(), step=1,
                       key=_versioned("w_seed"))
if int(seed) != state.seed():
    state.set_seed(int(seed))

# ------------------------------------------------------------------ fields
specs = configform.field_specs()
values = dict(form)
for group in configform.groups():
    st.subheader(group)
    if group == "Compute":
        st.caption("The worker processes, the Dask scheduler, the cache and memory folders "
                   "and the cache size are the server's settings (its HPMKD_* environment "
                   "variables), not options of a run.")
    group_specs = [s for s in specs if s.group == group]
    cols = st.columns(2)
    for i, spec in enumerate(group_specs):
        col = cols[i % 2]
        key = configform.widget_key(spec.name, state.config_version())
        current = form.get(spec.name)
        label = f"{spec.label} (`{spec.name}`)"
        if spec.kind == "checkbox":
            values[spec.name] = col.checkbox(label, value=bool(current), key=key, help=spec.help)
        elif spec.kind == "slider":
            values[spec.name] = col.slider(label, int(spec.min), int(spec.max), int(current),
                                           key=key, help=spec.help)
        elif spec.kind == "int":
            values[spec.name] = int(col.number_input(
                label, min_value=int(spec.min) if spec.min is not None else None,
                max_value=int(spec.max) if spec.max is not None else None,
                value=int(current), step=1, key=key, help=spec.help))
        elif spec.kind == "float":
            values[spec.name] = float(col.number_input(
                label, min_value=spec.min, max_value=spec.max, value=float(current),
                step=spec.step, format=spec.format or "%.2f", key=key, help=spec.help))
        elif spec.kind == "float_optional":
            values[spec.name] = col.number_input(
                label, min_value=spec.min, max_value=spec.max,
                value=None if current is None else float(current),
                step=spec.step, placeholder="no limit", key=key, help=spec.help)
        elif spec.kind == "choice":
            options = list(spec.options)
            values[spec.name] = col.selectbox(
                label, options, index=options.index(current) if current in options else 0,
                key=key, help=spec.help)
        elif spec.kind == "multichoice":
            values[spec.name] = col.multiselect(label, list(spec.options),
                                                default=list(current or []), key=key,
                                                help=spec.help)
        else:  # floats, text_optional, text
            values[spec.name] = col.text_input(
                label, value="" if current is None else str(current), key=key,
                placeholder=spec.placeholder or ("comma-separated numbers"
                                                 if spec.kind == "floats" else ""),
                help=spec.help)
if values != form:
    state.set_config_form(values)

# ------------------------------------------------------------------ validation
st.subheader("Check")
config, error = ui.current_config()
if error:
    st.error(error)
else:
    if resolved == "legacy":
        n = len(config.families) * len(config.temperatures) * len(config.alphas)
        st.info(
            f"**legacy** trains a grid of {n} candidate(s) "
            f"({len(config.families)} families × {len(config.temperatures)} temperatures × "
            f"{len(config.alphas)} alphas) and uses only "
            f"{', '.join(configform.LEGACY_FIELDS)}."
        )
    ineffective = configform.ineffective_messages(config, resolved)
    if ineffective:
        which = f"this **{resolved}** run" if resolved else "the run, whichever method auto picks"
        st.warning(f"Settings without effect on {which}:\n\n"
                   + "\n".join(f"- {message}" for message in ineffective))
    st.success("The configuration is valid.")
    with st.expander("Configuration as JSON"):
        st.json({"method": method, "random_state": state.seed(),
                 **configform.experiment_values(config)})
        st.caption("Worker processes, the Dask scheduler, the cache and memory folders and "
                   "the cache size are set by the server, not here.")
    st.download_button("Download the configuration", configform.config_json(
        config, method, state.seed()), file_name="hpmkd_config.json",
        mime="application/json", icon=":material/download:")
    ui.page_link("distill", "Next: Distill")
