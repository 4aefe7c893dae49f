"""Every page of the Streamlit app, driven by ``streamlit.testing.v1.AppTest``.

Pages run on their own (``AppTest.from_file("pages/...")``) with session state preset, and
through ``app.py`` for navigation. Runs are tiny legacy grids on the sample data (one
tiny hpm run checks the component panels).
``run_every`` fragments do not tick in AppTest, so tests wait for the job and rerun.
"""

from __future__ import annotations

import io
import os
import pickle
import time

import joblib
import pytest
from apptest_support import QUICK_LEGACY, ROOT, TIMEOUT, button, ok, texts
from streamlit.testing.v1 import AppTest

from hpmkd import AutoDistiller, HPMConfig
from hpmkd.settings import ENV_VARS, ServerSettings
from hpmkd_app import configform, jobs, session_codec, state, tables, teachers
from hpmkd_app.run_history import RunRecord

PAGE_FILES = {"data": "1_data", "configure": "2_configure", "distill": "3_distill",
              "compare": "4_compare", "export": "5_export"}


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / f"{PAGE_FILES[name]}.py"),
                             default_timeout=TIMEOUT)


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sample():
    """The sample table, its features and a trained reference teacher source."""
    table = tables.load_sample()
    features = [c for c in table.frame.columns if c != "target"]
    settings = teachers.reference_settings(table, "target", features, 42, 0.2)
    model, info = teachers.train_reference_teacher(table.frame, settings)
    source = teachers.reference_source(settings, info)
    dataset = teachers.build_dataset(table, "target", features, [source], lambda s: model)
    return {"table": table, "features": features, "source": source, "dataset": dataset}


def preset(at: AppTest, sample, **extra) -> AppTest:
    at.session_state[state.TABLE] = sample["table"]
    at.session_state[state.TARGET] = "target"
    at.session_state[state.FEATURES] = list(sample["features"])
    at.session_state[state.TEACHERS] = [sample["source"]]
    at.session_state[state.CONFIG] = dict(QUICK_LEGACY)
    at.session_state[state.METHOD] = "legacy"
    for key, value in extra.items():
        at.session_state[key] = value
    return at


def bind(at: AppTest, sample, job: jobs.Job, **extra) -> AppTest:
    """Preset the sample inputs (with ``extra``) and record ``job`` as the run made on them,
    as the Distill page does when it starts a run."""
    preset(at, sample, **extra)
    values = {state.TABLE: sample["table"], state.TARGET: "target",
              state.FEATURES: list(sample["features"]), state.TEACHERS: [sample["source"]],
              state.CONFIG: dict(QUICK_LEGACY), state.METHOD: "legacy",
              state.SEED: state.DEFAULT_SEED, **extra}
    fingerprint = session_codec.fingerprint({k: values.get(k) for k in state.INPUTS})
    at.session_state[state.RUNS] = [RunRecord(job.id, fingerprint, sample["table"].name,
                                              job.started_at, job.method, job.seed,
                                              job.status)]
    return at


def last_job(at: AppTest) -> jobs.Job:
    job = jobs.get_job(at.session_state[state.RUNS][-1].job_id)
    assert job is not None
    return job


@pytest.fixture(scope="module")
def finished_job(sample):
    config = configform.to_config(QUICK_LEGACY)
    job = jobs.start_job(sample["dataset"], config, method="legacy", seed=42)
    assert job.wait(TIMEOUT) and job.status == "done", job.error
    return job


@pytest.fixture(scope="module")
def auc_job(sample):
    """A finished run selecting on validation AUC (not KS)."""
    form = {**QUICK_LEGACY, "selection_metric": "auc"}
    job = jobs.start_job(sample["dataset"], configform.to_config(form), method="legacy",
                         seed=42)
    assert job.wait(TIMEOUT) and job.status == "done", job.error
    return job, form


def verdict_frame(at: AppTest):
    """The verdict table a page shows (every comparison of the selected student)."""
    frames = [d.value for d in at.dataframe if "95% interval" in d.value.columns]
    assert len(frames) == 1, [list(d.value.columns) for d in at.dataframe]
    return frames[0]


def assert_verdict_table(frame, job: jobs.Job, metrics: tuple[str, ...]) -> None:
    """The table has the twin and the teacher in each of ``metrics``, each with its
    interval, a three-way outcome and the number of test rows."""
    result = job.result
    n_test = len(result.y_test)
    for against, name in (("hard-label twin", result.twin.name),
                          ("teacher", result.primary_teacher.name)):
        for metric in metrics:
            rows = frame[(frame["against"] == against) & (frame["metric"] == metric)]
            assert len(rows) == 1, (against, metric)
            row = rows.iloc[0]
            assert row["model"] == name
            d = result.verdict.against("twin" if against != "teacher" else "teacher", metric)
            assert row["95% interval"] == f"[{d.low:+.4f}, {d.high:+.4f}]"
            assert row["outcome"] == d.outcome and row["test rows"] == n_test
    assert set(frame["outcome"]) <= {"helped", "hurt", "no measurable difference",
                                     "better than the teacher", "worse than the teacher"}


# ----------------------------------------------------------------- app & navigation
def test_app_navigates_every_page(sample, finished_job):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    bind(at, sample, finished_job)
    ok(at.run())
    assert at.title[0].value == "1 · Data & teachers"
    sidebar = texts(at.sidebar.caption)
    assert "german_credit.csv" in sidebar and f"Run `{finished_job.id}`: **done**" in sidebar
    for name, title in (("configure", "2 · Configure"), ("distill", "3 · Distill"),
                        ("compare", "4 · Compare"), ("export", "5 · Export"),
                        ("data", "1 · Data & teachers")):
        ok(at.switch_page(f"pages/{PAGE_FILES[name]}.py").run())
        assert at.title[0].value == title


# ----------------------------------------------------------------- data & teachers
def test_sample_data_preview_target_features_and_reference_teacher():
    at = ok(page("data").run())
    assert "Use sample data" in texts(at.info)
    ok(button(at, "Use sample data").click().run())
    table = at.session_state[state.TABLE]
    assert table.name == "german_credit.csv" and table.n_rows == 1000
    assert len(at.dataframe) >= 3  # preview, column types, class balance
    assert at.selectbox(key="w_target_1").value == "target"
    assert len(at.multiselect(key="w_features_target_1").value) == 30

    ok(at.selectbox(key="w_target_1").set_value("FOREIGN").run())
    assert at.session_state[state.TARGET] == "FOREIGN"
    assert "target" in at.session_state[state.FEATURES]
    assert "FOREIGN" not in at.session_state[state.FEATURES]
    ok(at.selectbox(key="w_target_1").set_value("target").run())
    ok(at.multiselect(key="w_features_target_1").unselect("AGE").run())
    assert "AGE" not in at.session_state[state.FEATURES]
    assert len(at.session_state[state.FEATURES]) == 29

    ok(button(at, "Train a reference teacher").click().run())
    sources = at.session_state[state.TEACHERS]
    assert [s.kind for s in sources] == ["reference"]
    assert sources[0].settings["train_rows"] == 640
    assert "AGE" not in sources[0].settings["features"]
    assert "Dataset ready" in texts(at.success)
    assert "validation and test rows stay unseen" in texts(at.markdown)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.csv", b"\x00\x01\x02\x03binary", "looks binary"),
        ("empty.csv", b"", "is empty"),
        ("header.csv", b"a,b,target\n", "no data rows"),
        ("dupes.csv", b"a,a,target\n1,2,0\n", "duplicate column"),
        ("broken.parquet", b"PAR1 not really", "could not be read as Parquet"),
    ],
)
def test_bad_upload_shows_a_readable_error(name, content, message):
    at = ok(page("data").run())
    at.file_uploader(key="data_upload").set_value((name, content, "text/csv"))
    ok(at.run())
    assert message in texts(at.error)
    assert state.TABLE not in at.session_state


def test_upload_csv_then_single_class_target_is_reported(sample):
    at = ok(page("data").run())
    frame = sample["table"].frame.head(60).copy()
    frame["target"] = 1
    at.file_uploader(key="data_upload").set_value(
        ("one_class.csv", frame.to_csv(index=False).encode(), "text/csv"))
    ok(at.run())
    assert at.session_state[state.TABLE].name == "one_class.csv"
    # Flagged at upload, before any teacher is trained.
    assert "has a single class (1) in all 60 rows" in texts(at.error)
    ok(button(at, "Train a reference teacher").click().run())
    assert "single class" in texts(at.error)


@pytest.mark.parametrize(
    "column, message",
    [
        ([None] * 60, "is empty in every row"),
        ([(i % 20) / 7 for i in range(60)], "looks like a measurement, not a class label"),
        ([0] * 57 + [1] * 3, "Class 1 has 3 row(s)"),
        (list(range(60)), "60 distinct values"),
    ],
    ids=["all-missing", "continuous-float", "rare-class", "id-like"],
)
def test_an_unusable_target_is_flagged_at_upload(sample, column, message):
    at = ok(page("data").run())
    frame = sample["table"].frame.head(60).copy()
    frame["target"] = column
    at.file_uploader(key="data_upload").set_value(
        ("bad_target.csv", frame.to_csv(index=False).encode(), "text/csv"))
    ok(at.run())
    assert message in texts(at.error)


def test_a_usable_target_is_not_flagged():
    from hpmkd_app import tables as app_tables

    frame = app_tables.load_sample().frame
    assert app_tables.target_problem(frame, "target") is None


def test_malicious_pickle_teacher_is_refused_and_never_runs(sample, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    at = ok(preset(page("data"), sample, **{state.TEACHERS: []}).run())
    at.file_uploader(key="teacher_upload").set_value(
        ("teacher.pkl", pickle.dumps(Exploit()), "application/octet-stream"))
    ok(at.run())
    assert "not on the list of classes allowed" in texts(at.error)
    assert at.session_state[state.TEACHERS] == []
    assert not marker.exists()


def test_uploaded_teacher_files_are_checked_against_the_data(sample, fit_teacher):
    frame = sample["table"].frame
    X, y = frame[sample["features"]], frame["target"]
    good, wrong_cols = io.BytesIO(), io.BytesIO()
    joblib.dump(fit_teacher(X, y, n_estimators=20), good)
    joblib.dump(fit_teacher(X.rename(columns={"AGE": "age_years"}), y, n_estimators=20),
                wrong_cols)

    at = ok(preset(page("data"), sample, **{state.TEACHERS: []}).run())
    at.file_uploader(key="teacher_upload").set_value(
        ("good.joblib", good.getvalue(), "application/octet-stream"))
    ok(at.run())
    assert [s.name for s in at.session_state[state.TEACHERS]] == ["good.joblib"]
    assert "Dataset ready" in texts(at.success)
    ok(button(at, "Remove").click().run())
    ok(at.run())  # the file is still in the uploader: it must stay removed
    assert at.session_state[state.TEACHERS] == []

    at.file_uploader(key="teacher_upload").set_value(
        ("renamed.joblib", wrong_cols.getvalue(), "application/octet-stream"))
    ok(at.run())
    assert "needs column(s) 'age_years'" in texts(at.error)


def test_teacher_with_other_classes_is_reported(sample, fit_teacher):
    frame = sample["table"].frame
    X = frame[sample["features"]]
    three = frame["HISTORY"].clip(0, 2)  # a 3-class target the data's target is not
    buffer = io.BytesIO()
    joblib.dump(fit_teacher(X, three, n_estimators=10), buffer)
    at = ok(preset(page("data"), sample, **{state.TEACHERS: []}).run())
    at.file_uploader(key="teacher_upload").set_value(
        ("other.joblib", buffer.getvalue(), "application/octet-stream"))
    ok(at.run())
    assert "was trained on classes" in texts(at.error)


def test_probability_columns_teacher(sample):
    frame = sample["table"].frame.copy()
    frame["p_bad"] = (frame["DURATION"] / frame["DURATION"].max()).round(4)
    frame["p_good"] = 1.0 - frame["p_bad"]
    table = tables.load_table_bytes(frame.to_csv(index=False).encode(), "with_proba.csv")
    at = page("data")
    at.session_state[state.TABLE] = table
    at.session_state[state.TARGET] = "target"
    at.session_state[state.FEATURES] = [c for c in frame.columns if c != "target"]
    ok(at.run())
    ok(at.multiselect(key="w_proba_cols").set_value(["p_good", "p_bad"]).run())
    ok(button(at, "Use these columns as a teacher").click().run())
    assert [s.kind for s in at.session_state[state.TEACHERS]] == ["proba_cols"]
    assert not {"p_good", "p_bad"} & set(at.session_state[state.FEATURES])
    assert "Dataset ready: 1,000 rows, 30 features" in texts(at.success)


# ----------------------------------------------------------------- configure
def test_every_config_field_has_a_widget_and_changes_are_stored(sample):
    at = ok(preset(page("configure"), sample, **{state.CONFIG: configform.default_form(),
                                                 state.METHOD: "auto"}).run())
    keys = {w.key for kind in ("checkbox", "slider", "number_input", "selectbox",
                               "multiselect", "text_input") for w in getattr(at, kind)}
    for spec in HPMConfig.field_specs():
        # Every field a person chooses has a widget; the server's own have none.
        assert (f"cfg_{spec.name}" in keys) != spec.server, spec.name
    assert "picks **hpm**" in texts(at.caption)
    for spec in HPMConfig.field_specs():  # the widgets' bounds and labels are the specs'
        widgets = [w for kind in ("slider", "number_input") for w in getattr(at, kind)
                   if w.key == f"cfg_{spec.name}"]
        for widget in widgets:
            assert widget.label.startswith(spec.label), spec.name
            assert (widget.min, widget.max) == (spec.min, spec.max), spec.name

    at.slider(key="cfg_max_configs").set_value(8)
    at.checkbox(key="cfg_use_progressive").uncheck()
    at.text_input(key="cfg_temperatures").set_value("1.5, 3")
    at.number_input(key="cfg_time_budget_s").set_value(30.0)
    ok(at.run())
    form = at.session_state[state.CONFIG]
    assert form["max_configs"] == 8 and form["use_progressive"] is False
    config = configform.to_config(form)
    assert config.temperatures == (1.5, 3.0) and config.time_budget_s == 30.0
    ok(at.run())  # survives a rerun
    assert at.slider(key="cfg_max_configs").value == 8
    assert "The configuration is valid." in texts(at.success)

    ok(at.radio(key="w_method").set_value("legacy").run())
    assert at.session_state[state.METHOD] == "legacy"
    assert "legacy** trains a grid" in texts(at.info)


def test_settings_without_effect_are_warned_for_the_method_that_would_run(sample, monkeypatch):
    monkeypatch.setenv(ENV_VARS["n_jobs"], "4")  # the server's n_jobs; parallel is off
    at = ok(preset(page("configure"), sample).run())  # the quick preset, legacy
    (warning,) = at.warning
    assert warning.value.startswith("Settings without effect on this **legacy** run:")
    for name, value in (("max_configs", 4), ("n_trials", 1), ("max_chain_stages", 2)):
        assert (f"- HPMConfig.{name}={value} has no effect: the legacy method does not use "
                f"it; use method 'hpm'") in warning.value, name
    assert "n_jobs" not in warning.value  # a server field: the server's business
    assert "The configuration is valid." in texts(at.success)  # a warning, not an error

    ok(at.radio(key="w_method").set_value("auto").run())  # 1,000 rows: auto picks hpm
    assert "picks **hpm**" in texts(at.caption)
    assert not at.warning  # hpm uses every setting of the preset
    ok(at.checkbox(key="cfg_use_progressive").uncheck().run())
    (warning,) = at.warning
    assert warning.value == (
        "Settings without effect on this **hpm** run:\n\n- HPMConfig.max_chain_stages=2 has no "
        "effect: use_progressive is False; set use_progressive=True, or leave "
        "max_chain_stages at its default (4)."
    )


def test_config_survives_page_switches():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    ok(at.run())
    ok(at.switch_page("pages/2_configure.py").run())
    ok(at.slider(key="cfg_n_trials").set_value(5).run())
    ok(at.switch_page("pages/1_data.py").run())
    assert "cfg_n_trials" not in at.session_state  # Streamlit dropped the widget state
    ok(at.switch_page("pages/2_configure.py").run())
    assert at.slider(key="cfg_n_trials").value == 5
    assert at.session_state[state.CONFIG]["n_trials"] == 5


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cfg_temperatures", "1, abc", "HPMConfig.temperatures"),
        ("cfg_alphas", "1.5", "HPMConfig.alphas"),
        ("cfg_families", [], "HPMConfig.families"),
    ],
)
def test_invalid_config_shows_the_engine_message(key, value, message):
    at = ok(page("configure").run())
    widget = at.multiselect(key=key) if key == "cfg_families" else at.text_input(key=key)
    ok(widget.set_value(value).run())
    assert message in texts(at.error)


def test_presets_replace_the_form():
    at = ok(page("configure").run())
    ok(button(at, "Quick run preset").click().run())
    assert at.slider(key="cfg_max_configs__1").value == 4
    assert at.multiselect(key="cfg_families__1").value == ["logreg", "lgbm"]
    assert at.session_state[state.CONFIG]["max_configs"] == 4
    ok(button(at, "Reset to defaults").click().run())
    assert at.session_state[state.CONFIG] == configform.default_form()


# ----------------------------------------------------------------- server settings
SERVER_FIELDS = ("n_jobs", "dask_scheduler", "cache_dir", "memory_dir", "cache_size_limit_gb")


def _all_widgets(at: AppTest) -> list:
    kinds = ("checkbox", "slider", "number_input", "selectbox", "multiselect", "text_input",
             "text_area", "radio", "select_slider", "date_input", "time_input")
    return [w for kind in kinds for w in getattr(at, kind)]


def test_the_form_has_no_server_field():
    at = ok(page("configure").run())
    widgets = _all_widgets(at)
    assert widgets
    for widget in widgets:
        text = f"{widget.key} {widget.label}".lower()
        for name in SERVER_FIELDS:
            assert name not in text, (name, widget.key)
        for word in ("scheduler", "folder", "worker", "directory", "cache size"):
            assert word not in text, (word, widget.key)
    assert not set(SERVER_FIELDS) & set(at.session_state[state.CONFIG])
    assert "server's settings" in texts(at.caption)


def _upload_config(at: AppTest, payload: dict | bytes, name: str = "config.json") -> AppTest:
    import json

    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    at.file_uploader(key="config_upload").set_value((name, content, "application/json"))
    return ok(at.run())


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"dask_scheduler": "tcp://attacker:8786", "use_parallel": True},
         ["dask_scheduler", "HPMKD_DASK_SCHEDULER"]),
        ({"cache_dir": "/etc", "memory_dir": "/root/.ssh"},
         ["memory_dir, cache_dir", "HPMKD_MEMORY_DIR, HPMKD_CACHE_DIR"]),
        ({"n_jobs": 64, "cache_size_limit_gb": 500}, ["n_jobs", "HPMKD_MAX_JOBS"]),
    ],
    ids=["scheduler", "folders", "workers-and-size"],
)
def test_a_config_file_with_server_fields_is_refused(payload, named):
    at = ok(page("configure").run())
    before = dict(at.session_state[state.CONFIG])
    at = _upload_config(at, {"max_configs": 3, **payload})
    error = texts(at.error)
    assert "belong to the server" in error and "config.json" in error
    for words in named:
        assert words in error
    assert at.session_state[state.CONFIG] == before  # nothing of the file was applied
    ok(at.run())  # the same upload is not re-read on every rerun; the message stays
    assert "belong to the server" in texts(at.error)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is not valid JSON"),
        (b"[1, 2]", "not an object of field names"),
        (b'{"max_config": 3}', "Did you mean max_configs"),
        (b'{"temperatures": [1, NaN]}', "HPMConfig.temperatures"),
        (b'{"random_state": -5}', "random_state=-5"),
        (b'{"method": "deep"}', "method='deep'"),
    ],
)
def test_a_bad_config_file_shows_what_is_wrong(content, message):
    at = _upload_config(ok(page("configure").run()), content, name="mine.json")
    assert message in texts(at.error) and "mine.json" in texts(at.error)


def test_a_config_file_round_trips_method_seed_and_options():
    config = configform.to_config({**configform.default_form(), "max_configs": 6,
                                   "temperatures": "1.5, 3", "use_parallel": True})
    content = configform.config_json(config, "legacy", 1234)
    assert not set(SERVER_FIELDS) & set(__import__("json").loads(content))
    at = _upload_config(ok(page("configure").run()), content)
    assert not at.error
    form = at.session_state[state.CONFIG]
    assert form["max_configs"] == 6 and form["temperatures"] == "1.5, 3"
    assert form["use_parallel"] is True
    assert at.session_state[state.METHOD] == "legacy" and at.session_state[state.SEED] == 1234
    version = at.session_state[state.CONFIG_VERSION]
    assert at.slider(key=configform.widget_key("max_configs", version)).value == 6
    assert at.number_input(key="w_seed__1").value == 1234  # new widgets, the file's values
    assert at.radio(key="w_method__1").value == "legacy"


def test_a_run_from_the_app_uses_the_servers_settings(sample, tmp_path, monkeypatch):
    home = tmp_path / "server-home"
    monkeypatch.setenv("HPMKD_HOME", str(home))
    monkeypatch.setenv(ENV_VARS["n_jobs"], "1")
    for name in ("cache_dir", "memory_dir", "dask_scheduler"):
        monkeypatch.delenv(ENV_VARS[name], raising=False)
    evil = tmp_path / "chosen-by-the-browser"
    form = {**QUICK_LEGACY, "max_configs": 2, "use_progressive": False, "use_parallel": True,
            "families": ["logreg"]}
    at = preset(page("distill"), sample, **{state.CONFIG: form, state.METHOD: "hpm",
                                             state.SEED: 31337})
    # Nothing in the URL reaches the config: only ?job= is read, and only as a run id.
    for name in ("cache_dir", "memory_dir"):
        at.query_params[name] = str(evil / name)
    at.query_params["dask_scheduler"] = "tcp://127.0.0.1:1"
    at.query_params["n_jobs"] = "64"
    ok(at.run())
    at.checkbox(key="w_fresh").check()
    ok(button(at, "Start distillation").click().run())
    job = _wait_for(at)
    assert job.status == "done", job.error
    settings = ServerSettings.from_env()
    assert settings.cache_dir == home / "cache" and settings.memory_dir == home / "memory"
    config = job.config
    assert config.cache_dir == str(home / "cache") and config.memory_dir == str(home / "memory")
    assert config.dask_scheduler is None and config.n_jobs == 1
    assert config.cache_size_limit_gb == HPMConfig().cache_size_limit_gb
    assert any((home / "cache").iterdir()), "the run's cache files are in the server's folder"
    assert (home / "memory" / "memory.sqlite").is_file()
    assert job.distiller.result_.components.parallel.to_dict() == {"backend": "loky",
                                                                   "n_jobs": 1}
    assert not evil.exists()


@pytest.mark.parametrize(("field", "value"), [
    ("n_jobs", "lots"), ("cache_dir", "srv/secret-folder"),
    ("dask_scheduler", "10.9.8.7:8786"),
])
def test_an_invalid_server_setting_is_named_but_its_value_only_logged(monkeypatch, caplog,
                                                                       field, value):
    # The variable tells the administrator what to fix; its value (a folder, an address)
    # is the server's, and goes to the server log.
    monkeypatch.setenv(ENV_VARS[field], value)
    with caplog.at_level("ERROR"):
        at = ok(page("configure").run())
    shown = texts(at.error)
    assert f"its setting {ENV_VARS[field]} is invalid" in shown and "no run can start" in shown
    assert value not in shown and "server log" in shown
    assert f"{ENV_VARS[field]}={value!r}" in caplog.text


def test_an_invalid_teacher_limit_is_named_but_its_value_only_logged(sample, fit_teacher,
                                                                     monkeypatch, caplog):
    frame = sample["table"].frame
    buffer = io.BytesIO()
    joblib.dump(fit_teacher(frame[sample["features"]], frame["target"], n_estimators=5),
                buffer)
    monkeypatch.setenv("HPMKD_TEACHER_MEMORY_MB", "987654321987")
    at = ok(preset(page("data"), sample, **{state.TEACHERS: []}).run())
    at.file_uploader(key="teacher_upload").set_value(
        ("limit.joblib", buffer.getvalue(), "application/octet-stream"))
    with caplog.at_level("ERROR"):
        ok(at.run())
    shown = texts(at.error)
    assert "its setting HPMKD_TEACHER_MEMORY_MB is invalid" in shown
    assert "teacher files cannot be checked" in shown and "987654321987" not in shown
    assert at.session_state[state.TEACHERS] == []
    assert "HPMKD_TEACHER_MEMORY_MB='987654321987'" in caplog.text


# ----------------------------------------------------------------- distill
def test_distill_without_data_says_what_to_do():
    at = ok(page("distill").run())
    assert "Load data" in texts(at.warning)


def _wait_for(at: AppTest) -> jobs.Job:
    job = last_job(at)
    assert job.wait(TIMEOUT)
    return job


def test_distill_starts_a_job_shows_done_then_serves_the_rerun_from_cache(sample):
    at = ok(preset(page("distill"), sample, **{state.SEED: 777}).run())
    assert "Ready" in texts(at.info)
    ok(button(at, "Start distillation").click().run())
    first = _wait_for(at)
    assert first.status == "done" and not first.from_cache
    ok(at.run())
    assert "Done in" in texts(at.success)
    assert "Best student" in texts(at.markdown)
    phases = at.dataframe[0].value
    assert list(phases["status"]) == ["done", "done"]

    ok(button(at, "Start distillation").click().run())
    second = _wait_for(at)
    assert second.id != first.id and second.from_cache
    ok(at.run())
    assert "served from cache" in texts(at.success)


def _start_and_wait_for_a_candidate(sample, seed: int, **extra) -> tuple[AppTest, jobs.Job]:
    grid = {**configform.default_form(), "families": ["logreg", "tree", "lgbm"]}
    at = ok(preset(page("distill"), sample, **{state.CONFIG: grid, state.SEED: seed},
                   **extra).run())
    at.checkbox(key="w_fresh").check()
    ok(button(at, "Start distillation").click().run())
    job = last_job(at)
    deadline = time.time() + TIMEOUT
    while not any(e.kind == "candidate" for e in job.view().events):
        assert time.time() < deadline
        time.sleep(0.05)
    ok(at.run())
    assert "Running" in texts(at.info)
    return at, job


def test_distill_cancel_discards_the_run(sample):
    at, job = _start_and_wait_for_a_candidate(sample, 4242)
    ok(button(at, "Cancel and discard").click().run())
    assert job.wait(TIMEOUT) and job.status == "cancelled" and job.distiller is None
    ok(at.run())
    assert "Cancelled" in texts(at.warning)


def test_distill_stop_keeps_the_best_so_far_then_compare_and_export_it(sample):
    at, job = _start_and_wait_for_a_candidate(sample, 4343)
    ok(button(at, "Stop and keep the best so far").click().run())
    assert job.wait(TIMEOUT) and job.status == "done", job.error
    result = job.result
    assert result.partial and 1 <= len(result.candidates) < 18
    ok(at.run())
    assert "Partial run" in texts(at.warning)
    inputs = {state.CONFIG: dict(at.session_state[state.CONFIG]), state.SEED: 4343}
    compare_page = ok(bind(page("compare"), sample, job, **inputs).run())
    assert "Partial run" in texts(compare_page.warning)
    assert len(compare_page.get("plotly_chart")) >= 8
    # No twin: the student against the teacher, as point values (a stop skips intervals).
    assert result.twin is None
    assert "no twin to judge distillation by" in texts(compare_page.markdown)
    frame = verdict_frame(compare_page)
    assert set(frame["against"]) == {"teacher"} and set(frame["metric"]) == {"ks"}
    assert set(frame["95% interval"]) == {"not computed (run stopped)"}
    assert set(frame["test rows"]) == {len(result.y_test)}
    export = ok(bind(page("export"), sample, job, **inputs).run())
    assert "Partial run" in texts(export.warning)
    labels = [b.label for b in export.get("download_button")]
    assert "Student model (.joblib)" in labels


def test_distill_reports_a_failed_run_inline(sample, monkeypatch):
    def boom(self, callbacks=None, stop=None):
        raise ValueError("Teacher 'x' returned probabilities of shape (3, 2).")

    monkeypatch.setattr(AutoDistiller, "run", boom)
    at = ok(preset(page("distill"), sample, **{state.SEED: 999}).run())
    at.checkbox(key="w_fresh").check()
    ok(button(at, "Start distillation").click().run())
    _wait_for(at)
    ok(at.run())
    assert "returned probabilities of shape" in texts(at.error)


def test_distill_shows_the_run_of_the_current_inputs(sample, finished_job):
    at = ok(bind(page("distill"), sample, finished_job).run())
    assert "Done" in texts(at.success)
    assert "Best student" in texts(at.markdown)
    assert_verdict_table(verdict_frame(at), finished_job, ("ks",))


def test_an_old_job_link_opens_the_run_as_history(sample, finished_job):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["job"] = finished_job.id
    ok(at.run())
    assert at.session_state[state.OPENED_RUN] == finished_job.id
    assert "job" not in at.query_params
    ok(at.switch_page("pages/4_compare.py").run())
    warning = texts(at.warning)
    assert f"viewing run `{finished_job.id}`" in warning
    assert "does not match the current inputs" in warning
    assert len(at.get("plotly_chart")) >= 9


def test_distill_shows_hpm_components_of_the_finished_run(sample):
    form = {**QUICK_LEGACY, "families": ["logreg"], "max_configs": 2, "use_memory": False}
    job = jobs.start_job(sample["dataset"], configform.to_config(form), method="hpm", seed=5)
    assert job.wait(TIMEOUT) and job.status == "done", job.error
    at = ok(bind(page("distill"), sample, job, **{state.CONFIG: form, state.METHOD: "hpm",
                                                  state.SEED: 5}).run())
    markdown, captions = texts(at.markdown), texts(at.caption)
    for title in ("Configuration selection", "Progressive chain", "Temperatures", "Cache"):
        assert f"**{title}** :green-badge[on]" in markdown, title
    chain = job.result.components.chain
    assert f"{len(chain.stages)} stage(s)" in captions
    assert f"{len(job.result.components.selection.configs)} configuration(s) kept" in captions


# ----------------------------------------------------------------- compare
def test_compare_renders_cards_and_charts(sample, finished_job):
    at = ok(bind(page("compare"), sample, finished_job).run())
    assert not at.warning  # the run of the current inputs: no history banner
    charts = at.get("plotly_chart")
    assert len(charts) >= 9  # ROC, calibration, KS, scores, confusion, scatter, 2 Pareto, SHAP
    labels = [m.label for m in at.metric]
    for label in ("Accuracy", "F1", "AUC", "KS", "Fidelity", "KL to teacher", "Size",
                  "Latency / 1k rows"):
        assert label in labels
    assert "SHAP (TreeExplainer)" in str([c.proto.spec for c in charts])
    assert_verdict_table(verdict_frame(at), finished_job, ("ks",))
    assert finished_job.result.verdict.text in texts(at.markdown)
    student = at.selectbox(key="w_compare_student")
    ok(student.set_value(student.options[-1]).run())  # the hard-label baseline
    assert len(at.get("plotly_chart")) >= 9
    more = at.multiselect(key="w_compare_more")
    ok(more.set_value(more.options[:2]).run())  # two more models in the same charts
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    roc = next(s for s in specs if "ROC curve" in s)
    assert all(name in roc for name in more.value)


def test_compare_and_distill_show_the_verdict_in_the_selection_metric_and_ks(sample, auc_job):
    job, form = auc_job
    inputs = {state.CONFIG: form}
    compare_page = ok(bind(page("compare"), sample, job, **inputs).run())
    assert_verdict_table(verdict_frame(compare_page), job, ("auc", "ks"))
    # The Pareto charts rank the candidates on the run's selection metric, on validation.
    assert "Every candidate: cost against validation auc" in texts(compare_page.subheader)
    distill = ok(bind(page("distill"), sample, job, **inputs).run())
    assert "Best student" in texts(distill.markdown)
    assert_verdict_table(verdict_frame(distill), job, ("auc", "ks"))


def test_compare_multiclass_has_a_class_selector(make_frame, fit_teacher, tmp_path):
    frame = make_frame(n_rows=300, n_features=4, n_classes=3, seed=5)
    teacher = fit_teacher(frame.drop(columns="target"), frame["target"], n_estimators=20)
    from hpmkd import DistillationDataset

    dataset = DistillationDataset(frame, target="target", teacher=teacher, name="three")
    job = jobs.start_job(dataset, configform.to_config(QUICK_LEGACY), method="legacy", seed=1,
                         cache_dir=tmp_path)
    assert job.wait(TIMEOUT) and job.status == "done", job.error
    at = page("compare")  # another dataset's run: opened from the history
    at.session_state[state.RUNS] = [RunRecord(job.id, "", "three", job.started_at, "legacy", 1,
                                              "done")]
    at.session_state[state.OPENED_RUN] = job.id
    ok(at.run())
    assert "does not match the current inputs" in texts(at.warning)
    chooser = at.selectbox(key="w_compare_class")
    assert len(chooser.options) == 3
    ok(chooser.set_value(2).run())
    assert len(at.get("plotly_chart")) >= 9


def test_compare_without_a_run_says_so():
    at = ok(page("compare").run())
    assert "No distillation run yet" in texts(at.info)


# ----------------------------------------------------------------- export
def test_export_offers_downloads_report_and_snippet(sample, finished_job):
    at = ok(bind(page("export"), sample, finished_job).run())
    labels = [b.label for b in at.get("download_button")]
    assert labels[:4] == ["Student model (.joblib)", "Results (.csv)", "Timings (.csv)",
                          "Summary (.json)"]
    assert "joblib.load" in at.code[0].value and "predict_proba" in at.code[0].value
    # The report is one click: its button is there before anything is built.
    assert "HTML report" in labels
    assert not [b for b in at.button if "Build" in b.label]


def test_export_warns_that_a_candidate_not_selected_has_no_test_figures(sample, finished_job):
    at = ok(bind(page("export"), sample, finished_job).run())
    assert not at.warning  # the selected student: its test figures are the run's
    chooser = at.selectbox(key="w_export_model")
    result = finished_job.result
    other = next(c.name for c in result.candidates if c is not result.selected)
    ok(chooser.set_value(other).run())
    warning = texts(at.warning)
    assert f"`{other}` is not the selected student" in warning
    assert "Its test figures are not available" in warning
    ok(chooser.set_value(result.twin.name).run())  # the twin was scored on test: no warning
    assert not at.warning


def test_export_without_a_run_says_so():
    at = ok(page("export").run())
    assert "No distillation run yet" in texts(at.info)
