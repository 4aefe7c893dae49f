"""The app's service layer without Streamlit: tables, teachers, config form, progress,
comparison numbers, charts, feature importance and exports."""

from __future__ import annotations

import io
import math

import joblib
import numpy as np
import pandas as pd
import pytest

from hpmkd import DistillationDataset, HPMConfig, HPMKDInputError, curves
from hpmkd.events import Event
from hpmkd.metrics import ks_binary
from hpmkd.report import figures
from hpmkd.result import (
    AttentionRecord,
    CacheRecord,
    ChainRecord,
    Components,
    ParallelRecord,
    SelectionRecord,
    TemperatureRecord,
    WarmStartRecord,
)
from hpmkd.settings import ServerSettings
from hpmkd_app import (
    charts,
    compare,
    configform,
    explain,
    exports,
    jobs,
    live_records,
    panels,
    progress,
    tables,
)
from hpmkd_app import teachers as teacher_lib


def quick():
    """The quick preset as a config, with the server settings of the test session
    (read when called: HPMKD_HOME points at the tests' private folder by then)."""
    return configform.to_config(
        configform.apply_preset(configform.default_form(), configform.QUICK_PRESET)
    )


@pytest.fixture(scope="module")
def sample() -> tables.LoadedTable:
    return tables.load_sample()


@pytest.fixture(scope="module")
def finished(sample, tmp_path_factory):
    features = [c for c in sample.frame.columns if c != "target"]
    settings = teacher_lib.reference_settings(sample, "target", features, 42, 0.2)
    model, info = teacher_lib.train_reference_teacher(sample.frame, settings)
    source = teacher_lib.reference_source(settings, info)
    dataset = teacher_lib.build_dataset(sample, "target", features, [source], lambda s: model)
    job = jobs.start_job(
        dataset, quick(), method="legacy", seed=42, cache_dir=tmp_path_factory.mktemp("runs")
    )
    assert job.wait(60) and job.status == "done", job.error
    return job.distiller


# ----------------------------------------------------------------- tables
def test_upload_parsing_and_summaries(sample):
    assert sample.n_rows == 1000 and sample.source == "sample"
    assert sample.digest == tables.digest_bytes(tables.SAMPLE_CSV.read_bytes())
    assert set(sample.columns["kind"]) == {"numeric"}
    balance = tables.class_balance(sample.frame, "target")
    assert list(balance["rows"]) == [700, 300]
    semicolon = b"a;b;target\n1,5;x;0\n2,5;y;1\n"
    table = tables.load_table_bytes(semicolon, "semi.csv")
    assert list(table.frame.columns) == ["a", "b", "target"]
    assert tables.default_target(["x", "Target"]) == "Target"
    assert tables.default_target(["x", "y"]) == "y"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "a.csv", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "img.csv", "looks binary"),
        (b"a,b\n", "h.csv", "no data rows"),
        (b"PAR1garbage", "x.parquet", "could not be read as Parquet"),
    ],
)
def test_bad_uploads_raise_readable_errors(data, name, message):
    with pytest.raises(HPMKDInputError, match=message):
        tables.load_table_bytes(data, name)


def test_class_balance_refuses_id_columns():
    frame = pd.DataFrame({"id": range(100), "target": [0, 1] * 50})
    with pytest.raises(HPMKDInputError, match="distinct values"):
        tables.class_balance(frame, "id")
    with_missing = pd.DataFrame({"target": [0, 1, None, 1]})
    assert "(missing: dropped)" in set(tables.class_balance(with_missing, "target")["class"])


def test_parquet_upload_round_trip(sample):
    buffer = io.BytesIO()
    sample.frame.head(50).to_parquet(buffer)
    table = tables.load_table_bytes(buffer.getvalue(), "sample.parquet")
    assert table.n_rows == 50 and table.frame.equals(sample.frame.head(50))


# ----------------------------------------------------------------- teachers
def test_reference_teacher_trains_on_the_engine_train_rows_only(sample):
    features = [c for c in sample.frame.columns if c != "target"]
    settings = teacher_lib.reference_settings(sample, "target", features, 7, 0.25)
    model, info = teacher_lib.train_reference_teacher(sample.frame, settings)
    split = DistillationDataset(sample.frame, "target", features).split(0.25, 7)
    assert info["train_rows"] == len(split.train) == 600
    assert list(model.feature_names_in_) == features
    assert model[-1].n_estimators == teacher_lib.REFERENCE_TREES
    source = teacher_lib.reference_source(settings, info)
    assert teacher_lib.stale_reference_reason(source, sample, "target", features, 7, 0.25) is None
    stale = teacher_lib.stale_reference_reason(source, sample, "target", features, 8, 0.2)
    assert "seed 7" in stale and "validation split" in stale


def test_build_dataset_names_teachers_and_drops_probability_features(sample):
    frame = sample.frame.copy()
    frame["p0"], frame["p1"] = 0.7, 0.3
    table = tables.LoadedTable(frame, "with_p.csv", "d" * 64, 1, "upload")
    features = [c for c in frame.columns if c != "target"]
    source = teacher_lib.proba_cols_source(["p0", "p1"])
    dataset = teacher_lib.build_dataset(table, "target", features, [source], lambda s: None)
    assert "p0" not in dataset.features and dataset.n_features == 30
    with pytest.raises(HPMKDInputError, match="Add a teacher"):
        teacher_lib.build_dataset(table, "target", features, [], lambda s: None)
    with pytest.raises(HPMKDInputError, match="one per class"):
        teacher_lib.proba_cols_source([])


def test_file_teacher_is_checked_and_scored_in_isolation(sample, fit_teacher):
    X = sample.frame.drop(columns="target")
    buffer = io.BytesIO()
    teacher = fit_teacher(X, sample.frame["target"], n_estimators=10)
    joblib.dump(teacher, buffer)
    info = teacher_lib.check_model_bytes(buffer.getvalue(), "m.joblib")
    assert info.family == "LGBMClassifier" and info.n_features == X.shape[1]
    assert info.classes == ["0", "1"]
    source = teacher_lib.file_source(buffer.getvalue(), "m.joblib")

    def never(source):
        raise AssertionError("an uploaded file is never loaded in the app's process")

    dataset = teacher_lib.build_dataset(sample, "target", list(X.columns), [source, source],
                                        never)
    assert [t.name for t in dataset.teachers] == ["m.joblib", "m.joblib#2"]
    assert set(dataset.teacher_probas) == {"m.joblib", "m.joblib#2"}
    assert all(t.model is None and t.family == "LGBMClassifier" for t in dataset.teachers)
    assert np.allclose(dataset.teacher_proba("m.joblib"), teacher.predict_proba(X))
    with pytest.raises(HPMKDInputError, match="not a classifier"):
        buffer = io.BytesIO()
        joblib.dump({"a": 1}, buffer)
        teacher_lib.check_model_bytes(buffer.getvalue(), "dict.joblib")


# ----------------------------------------------------------------- config form
def test_config_form_round_trips_every_field():
    specs = configform.field_specs()
    assert [s.name for s in specs] == [
        s.name for s in HPMConfig.field_specs() if not s.server]
    assert all(s.kind in configform.WIDGET_KINDS for s in specs)
    assert all(s.help for s in specs), "every field shows its docstring"
    # The form's defaults are HPMConfig's; the server fields are the server's settings.
    server = ServerSettings.from_env()
    assert configform.to_config(configform.default_form()) == HPMConfig(**server.values())
    form = configform.config_to_form(quick().to_dict())
    assert configform.to_config(form) == quick()


def test_config_form_errors_are_the_engine_messages():
    form = configform.default_form()
    with pytest.raises(HPMKDInputError, match=r"HPMConfig\.temperatures"):
        configform.to_config({**form, "temperatures": "2, hot"})
    with pytest.raises(HPMKDInputError, match=r"HPMConfig\.families"):
        configform.to_config({**form, "families": []})
    with pytest.raises(HPMKDInputError, match="no field 'max_config'"):
        configform.to_config({**form, "max_config": 3})
    for name, value in (("cache_dir", "/tmp/x"), ("dask_scheduler", "tcp://h:1"),
                        ("n_jobs", 1), ("memory_dir", None)):
        # Even a session-state form that somehow holds one is refused, never applied.
        with pytest.raises(HPMKDInputError, match=f"sets {name}, which belong to the server"):
            configform.to_config({**form, name: value})



def test_the_form_warns_of_settings_without_effect_but_never_of_server_fields():
    settings = ServerSettings.from_env({"HPMKD_MAX_JOBS": "4"})  # n_jobs=4, no parallel
    form = configform.default_form()
    config = configform.to_config({**form, "n_trials": 5, "use_progressive": False,
                                   "max_chain_stages": 2}, settings)  # fmt: skip
    assert config.n_jobs == 4 and ("n_jobs", "use_parallel is False") in (
        config.ineffective_fields("hpm"))
    hpm = configform.ineffective_messages(config, "hpm")
    assert hpm == [
        "HPMConfig.max_chain_stages=2 has no effect: use_progressive is False; set "
        "use_progressive=True, or leave max_chain_stages at its default (4)."
    ]
    legacy = configform.ineffective_messages(config, "legacy")
    assert [m.split("=")[0] for m in legacy] == [
        "HPMConfig.n_trials", "HPMConfig.use_progressive", "HPMConfig.max_chain_stages"]
    assert all("the legacy method does not use it; use method 'hpm'" in m for m in legacy)
    # auto before the data is known: only what has no effect under either method.
    assert configform.ineffective_messages(config, None) == hpm
    assert configform.ineffective_messages(configform.to_config(form, settings), None) == []


# ----------------------------------------------------------------- progress
def _view(events, status="running", method="hpm", config=None, finished_at=None):
    return jobs.JobView(
        id="abc",
        status=status,
        method=method,
        seed=1,
        config=(config or HPMConfig()).to_dict(),
        events=tuple(events),
        error=None,
        from_cache=False,
        cached_finished_at=None,
        started_at=100.0,
        finished_at=finished_at,
    )


def _event(kind, phase=None, t=100.0, **data):
    return Event(kind=kind, phase=phase, message=kind, data=data, time=t)


def test_phase_status_progress_and_leaderboard():
    row = {"name": "a", "source": "config", "val_ks": 0.3, "from_cache": True, "temperature": 2.0}
    events = [
        _event(
            "run_start", method="hpm", phases=["select", "chain", "train", "ensemble", "compare"]
        ),
        _event("phase_start", "select", 101.0),
        _event("phase_end", "select", 102.0, seconds=1.0),
        _event("phase_start", "chain", 102.0),
        _event(
            "candidate",
            "chain",
            103.0,
            row={**row, "name": "b", "source": "chain", "val_ks": 0.5, "from_cache": False},
        ),
        _event("candidate", "config", 103.5, row=row),
    ]
    view = _view(events)
    states = {p.name: p.state for p in progress.phase_statuses(view, now=105.0)}
    assert states == {
        "select": "done",
        "chain": "running",
        "train": "pending",
        "ensemble": "pending",
        "compare": "pending",
    }
    running = [p for p in progress.phase_statuses(view, now=105.0) if p.state == "running"]
    assert running[0].seconds == pytest.approx(3.0)
    assert progress.progress_fraction(view) == pytest.approx(1.5 / 5)
    board = progress.leaderboard(view, "ks")
    assert list(board["name"]) == ["b", "a"] and list(board["rank"]) == [1, 2]
    assert not any(c.startswith("test_") for c in board.columns)
    assert progress.cache_counts(view) == (1, 1)
    cancelled = _view(events, status="cancelled", finished_at=106.0)
    assert {p.name: p.state for p in progress.phase_statuses(cancelled)}["chain"] == "stopped"


def test_leaderboard_shows_validation_calibration_when_candidates_carry_it():
    rows = [{"name": "a", "source": "config", "val_ks": 0.3, "val_ece": 0.05, "val_brier": 0.2},
            {"name": "b", "source": "config", "val_ks": 0.5, "val_ece": 0.02, "val_brier": 0.1}]
    view = _view([_event("candidate", "config", 101.0, row=r) for r in rows])
    board = progress.leaderboard(view, "ks")
    assert list(board["name"]) == ["b", "a"]
    assert list(board["val_ece"]) == [0.02, 0.05] and list(board["val_brier"]) == [0.1, 0.2]
    # Rows without them (an older run's events): no empty calibration columns.
    bare = [{k: v for k, v in r.items() if k not in ("val_ece", "val_brier")} for r in rows]
    board = progress.leaderboard(_view([_event("candidate", "config", 101.0, row=r)
                                        for r in bare]), "ks")
    assert "val_ece" not in board.columns and "val_brier" not in board.columns


def test_component_panels_say_off_and_why():
    cfg = HPMConfig(
        use_progressive=False, use_multi_teacher=False, use_memory=False, use_cache=False
    )
    components = Components(
        selection=SelectionRecord(
            configs=(
                {"label": "lgbm-small", "score": 0.4, "reason": "best screen", "params": {}},
            ),
            warm_started=False,
        ),
        chain=ChainRecord(enabled=False, reason="use_progressive=False"),
        attention=AttentionRecord(enabled=False, reason="use_multi_teacher=False"),
        temperature=TemperatureRecord(
            adaptive=True,
            decisions=(
                {"candidate": "x", "temperature": 2.0, "reason": "explore", "feedback": {"2": 0.4}},
            ),
        ),
        cache=CacheRecord(enabled=False),
        parallel=ParallelRecord(),
    )
    source = panels.PanelSource("hpm", cfg.to_dict(), components)
    by_title = {p.title: p for p in panels.component_panels(source)}
    for title in (
        "Progressive chain",
        "Attention-weighted multi-teacher",
        "Cache",
        "Warm start (optimization memory)",
        "Parallel training",
    ):
        assert not by_title[title].on and by_title[title].summary.startswith("off"), title
    assert by_title["Configuration selection"].on
    assert by_title["Configuration selection"].table.loc[0, "params"] == "{}"
    assert "adaptive" in by_title["Temperatures"].summary
    legacy = panels.component_panels(panels.PanelSource("legacy", cfg.to_dict(), Components()))
    # Only the fixed temperature grid, and the final fit (both methods).
    assert [p.title for p in legacy if p.on] == [
        "Temperatures", "Final fit on training + validation rows"]
    off = cfg.with_updates(final_fit="off")
    final = panels.component_panels(panels.PanelSource("hpm", off.to_dict(), components))[-1]
    assert not final.on and final.summary == "off — final_fit is off"


def test_live_records_come_from_info_events():
    selection = SelectionRecord(configs=({"label": "tree-small", "warm_started": True},),
                                warm_started=True)
    warm = WarmStartRecord(used=True, reason="2 similar runs", neighbours=({"name": "x"},))
    chain = ChainRecord(
        family="tree", alpha=0.5, stop_reason="no gain at stage 2",
        stages=({"stage": 1, "val_metric": 0.4, "test_metric": 0.5, "kept": True},),
    )
    events = [
        _event("info", "select", selection=selection.to_dict(), warm_start=warm.to_dict()),
        _event("info", "chain", chain=chain.to_dict()),
    ]
    view = _view(events, config=HPMConfig(use_multi_teacher=True))
    live = live_records.live_components(view)
    # The same typed records the finished run holds, rebuilt from the events' plain data.
    assert live.selection == selection and live.warm_start == warm and live.chain == chain
    assert live.attention is None  # not reported yet
    by_title = {p.title: p for p in panels.job_panels(view, None)}
    assert "warm-started" in by_title["Configuration selection"].summary
    assert by_title["Warm start (optimization memory)"].on
    panel = by_title["Progressive chain"]
    assert panel.on and "test_metric" not in panel.table.columns
    assert "1 kept; stopped: no gain at stage 2" in panel.summary


def test_live_chain_and_cache_come_from_candidates_before_their_events():
    row = {"name": "c1", "source": "chain", "family": "tree", "capacity": "small",
           "temperature": 2.0, "alpha": 0.5, "val_ks": 0.3, "from_cache": True}
    events = [
        _event("run_start", method="hpm"),
        _event("candidate", "chain", row=row),
        _event("candidate", "chain", row={**row, "name": "c2", "from_cache": False}),
    ]
    view = _view(events)
    live = live_records.live_components(view)
    assert [s["name"] for s in live.chain.stages] == ["c1", "c2"]
    assert live.chain.stages[0]["val_metric"] == 0.3 and live.chain.stop_reason is None
    assert (live.cache.hits, live.cache.misses) == (1, 1)
    assert [d["temperature"] for d in live.temperature.decisions] == [2.0, 2.0]
    by_title = {p.title: p for p in panels.job_panels(view, None)}
    assert by_title["Progressive chain"].summary == "2 stage(s) so far"
    assert by_title["Cache"].summary == "1 hit(s), 1 miss(es) so far"
    legacy = _view([_event("run_start", method="legacy"), _event("candidate", "grid", row=row)],
                   method="legacy")
    assert live_records.live_components(legacy) == Components()


def test_finished_run_panels_read_the_typed_result(finished):
    result = finished.result_
    by_title = {p.title: p for p in panels.job_panels(_view([], status="done"), result)}
    assert set(by_title) == {
        "Configuration selection", "Warm start (optimization memory)", "Progressive chain",
        "Capacity climb", "Temperatures", "Attention-weighted multi-teacher", "Cache",
        "Parallel training", "Final fit on training + validation rows",
    }
    final = by_title["Final fit on training + validation rows"]
    assert final.on and final.summary == result.components.final_fit.sentence()
    source = panels.PanelSource.of_result(result)
    assert source.method == result.method and len(source.candidates) == len(result.candidates)
    # The legacy grid's temperatures come from the result's candidates (no events needed,
    # so a run served from the run cache shows them too).
    assert len(by_title["Temperatures"].table) == len(result.candidates)


# ----------------------------------------------------------------- compare & charts
def test_metric_cards_and_entries(finished):
    teacher = compare.teachers(finished.result_)[0]
    students = compare.students(finished.result_)
    assert students[0].selected and students[0].name == finished.best_name
    assert students[-1].role == "baseline"
    cards = compare.metric_cards(teacher, students[0])
    assert [c.label for c in cards] == [
        "Accuracy",
        "F1",
        "AUC",
        "KS",
        "ECE",
        "Brier",
        "Fidelity",
        "KL to teacher",
        "Size",
        "Latency / 1k rows",
    ]
    ks_card = cards[3]
    expected = students[0].metrics["ks"] - teacher.metrics["ks"]
    assert ks_card.delta == f"{expected:+.3f} vs teacher"
    assert cards[4].delta_color == cards[7].delta_color == cards[8].delta_color == "inverse"
    # Only the selected student and its twin have test figures (the test rows are read once).
    assert [e.role for e in students] == ["student", "baseline"]
    assert compare.format_bytes(-1) == "n/a" and compare.format_bytes(2048) == "2.0 KB"


def test_charts_are_the_engines_builders_on_the_record(finished):
    result = finished.result_
    y = np.asarray(result.y_test)
    assert len(y) == result.split_sizes["test"]
    teacher = compare.teachers(result)[0]
    student, other = compare.students(result)[:2]  # the selected student and its twin
    is_k = y == 1
    ks = curves.ks_curve(is_k, student.test_proba[:, 1]).ks
    assert ks == pytest.approx(ks_binary(is_k, student.test_proba[:, 1]))
    assert ks == pytest.approx(student.metrics["ks"])
    # Three models at once: the shared builders take any list of models.
    inp = compare.chart_inputs(result, [teacher, student, other], 1)
    assert inp.model_names == [teacher.name, student.name, other.name]
    for build in figures.EVALUATION_CHARTS:
        chart = build(inp)
        fig = charts.show(chart, "title")
        assert fig.data and fig.layout.title.text == "title"
        assert "updatemenus" not in chart.figure["layout"]  # one class: no dropdown
    ks_stats = figures.ks_chart(inp).stats["1"]
    assert ks_stats[student.name]["ks"] == pytest.approx(student.metrics["ks"])
    assert set(ks_stats) == {teacher.name, student.name, other.name}
    roc = figures.roc_chart(inp).figure["data"]
    colors = [t["line"]["color"] for t in roc]
    assert colors == list(figures.MODEL_COLORS[:3])  # one palette: teacher blue, student orange
    confusion = figures.confusion_chart(inp).stats[student.name]
    assert np.trace(confusion) / np.sum(confusion) == pytest.approx(student.metrics["accuracy"])
    scatter = figures.agreement_scatter_chart(inp).figure
    assert len([k for k in scatter["layout"] if k.startswith("xaxis")]) == 2  # a panel each
    table = curves.calibration_bins(is_k, student.test_proba[:, 1])
    assert table["rows"].sum() == len(y)


def test_pareto_chart_of_the_candidates(finished):
    result = finished.result_
    y = np.asarray(result.y_test)
    entries = compare.teachers(result) + compare.candidates(result)
    frame = compare.candidates_frame(result, 1)
    # Ranked on validation: every candidate has a validation KS, none needs test rows.
    assert frame["val_ks"].tolist() == pytest.approx([e.result.val["ks"] for e in entries])
    assert len(y) == result.split_sizes["test"]
    chart = figures.pareto_chart(frame, "val_ks", costs=("size_bytes",))
    assert any(trace["name"] == "Pareto front" for trace in chart.figure["data"])
    assert set(chart.stats) == {"size_bytes"}
    cands = frame[~frame["source"].isin(["teacher", "baseline"])].reset_index(drop=True)
    front = curves.pareto_front(cands["size_bytes"], cands["val_ks"])
    assert chart.stats["size_bytes"] == [cands.loc[i, "name"] for i in front]
    for i in front:  # no candidate is both smaller and at least as good as a front member
        cheaper = cands[
            (cands["size_bytes"] > 0) & (cands["size_bytes"] < cands.loc[i, "size_bytes"])
        ]
        assert not (cheaper["val_ks"] >= cands.loc[i, "val_ks"]).any()


# ----------------------------------------------------------------- importance
def test_feature_importance_names_its_method(finished):
    run = finished.result_
    students = compare.candidates(run)
    teacher = compare.teachers(run)[0]
    y = np.asarray(run.y_test)
    for entry, method in ((teacher, "SHAP (TreeExplainer)"),):
        model, X, predict = compare.model_inputs(finished.dataset, run, entry)
        result, _ = explain.feature_importance(model, X, y, 1, predict)
        assert result.method.startswith(method)
        assert list(result.values.index) == list(X.columns)
    by_family = {e.family: e for e in students}
    model, X, predict = compare.model_inputs(finished.dataset, run, by_family["logreg"])
    result, _ = explain.feature_importance(model, X, y, 1, predict)
    assert result.method.startswith("SHAP (LinearExplainer)")
    fallback = explain.permutation(predict, X.iloc[:80], y[:80], 1)
    lgbm, X_lgbm, predict_lgbm = compare.model_inputs(finished.dataset, run, by_family["lgbm"])
    assert explain.feature_importance(lgbm, X_lgbm, y, 1, predict_lgbm)[0].method.startswith(
        "SHAP (TreeExplainer)"
    )
    assert fallback.method.startswith("permutation importance")
    again = explain.permutation(predict, X.iloc[:80], y[:80], 1)
    assert fallback.values.equals(again.values)  # seeded: nothing random between runs
    assert explain.feature_importance(None, X, y, 1, predict)[0] is None
    assert list(explain.sample_positions(1000, 500)[:3]) == [0, 2, 4]


@pytest.mark.slow  # shap compiles its permutation explainer on first use (~8 s)
def test_generic_shap_for_models_without_a_fast_explainer(make_frame):
    from sklearn.naive_bayes import GaussianNB

    frame = make_frame(n_rows=120, n_features=3)
    X, y = frame.drop(columns="target"), frame["target"].to_numpy()
    model = GaussianNB().fit(X, y)
    result, _ = explain.feature_importance(model, X, y, 1, model.predict_proba)
    assert result.method.startswith("SHAP (permutation explainer")
    assert result.values.idxmax() in {"f0", "f1"}


# ----------------------------------------------------------------- exports
def test_exports_and_the_snippet_run(finished, sample, tmp_path, monkeypatch):
    model = finished.best_model()
    path = tmp_path / "student.joblib"
    path.write_bytes(exports.model_bytes(model))
    csv = exports.results_csv(finished).decode()
    assert csv.splitlines()[0].startswith("name,source,family")
    # The clocks are apart (as hpmkd distill writes them), row for row by name.
    header = csv.splitlines()[0].split(",")
    assert not {"fit_seconds", "latency_ms_1k", "from_cache"} & set(header)
    timings = pd.read_csv(io.BytesIO(exports.timings_csv(finished)))
    assert list(timings.columns) == ["name", "fit_seconds", "latency_ms_1k", "from_cache"]
    assert timings["name"].tolist() == finished.results_df["name"].tolist()
    assert '"best_model"' in exports.summary_json(finished).decode()
    sample.frame.head(25).to_csv(tmp_path / "new_rows.csv", index=False)
    ds = finished.dataset
    code = exports.code_snippet(
        "student.joblib", ds.features, ds.categorical, ds.classes, ds.target
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "snippet", "exec"), namespace)  # our own snippet
    assert namespace["proba"].shape == (25, 2)
    assert set(namespace["predicted_target"]) <= {0, 1}
    assert exports.safe_filename("lgbm-medium T=2 a=0.5 #0") == "lgbm-medium_T_2_a_0.5_0"


def test_snippet_converts_text_columns():
    code = exports.code_snippet("m.joblib", ["a", "city"], ["city"], ["no", "yes"], "churn")
    assert "text_columns = ['city']" in code and "predicted_churn" in code
    assert not math.isnan(len(code))
