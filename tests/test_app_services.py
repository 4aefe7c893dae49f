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
from hpmkd.settings import ServerSettings
from hpmkd_app import charts, compare, configform, explain, exports, jobs, progress, tables
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


def test_file_teacher_loads_through_the_restricted_loader(sample, fit_teacher):
    X = sample.frame.drop(columns="target")
    buffer = io.BytesIO()
    joblib.dump(fit_teacher(X, sample.frame["target"], n_estimators=10), buffer)
    model = teacher_lib.load_model_bytes(buffer.getvalue(), "m.joblib")
    assert hasattr(model, "predict_proba")
    source = teacher_lib.file_source(buffer.getvalue(), "m.joblib")
    dataset = teacher_lib.build_dataset(
        sample, "target", list(X.columns), [source, source], lambda s: model
    )
    assert [t.name for t in dataset.teachers] == ["m.joblib", "m.joblib#2"]
    assert set(dataset.teacher_probas) == {"m.joblib", "m.joblib#2"}
    with pytest.raises(HPMKDInputError, match="not a classifier"):
        buffer = io.BytesIO()
        joblib.dump({"a": 1}, buffer)
        teacher_lib.load_model_bytes(buffer.getvalue(), "dict.joblib")


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
    assert configform.unused_by_legacy({**form, "n_trials": 5}) == ["n_trials"]


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


def test_component_panels_say_off_and_why():
    cfg = HPMConfig(
        use_progressive=False, use_multi_teacher=False, use_memory=False, use_cache=False
    )
    details = {
        "selection": {
            "enabled": True,
            "configs": [
                {"label": "lgbm-small", "score": 0.4, "reason": "best screen", "params": {}}
            ],
            "warm_started": False,
        },
        "chain": {"enabled": False, "reason": "use_progressive=False", "stages": []},
        "attention": {"enabled": False, "reason": "use_multi_teacher=False"},
        "temperature": {
            "enabled": True,
            "adaptive": True,
            "decisions": [
                {"candidate": "x", "temperature": 2.0, "reason": "explore", "feedback": {"2": 0.4}}
            ],
        },
        "cache": {"enabled": False, "hits": 0, "misses": 0},
        "parallel": {"backend": "sequential", "n_jobs": 1},
    }
    panels = {p.title: p for p in progress.component_panels("hpm", cfg.to_dict(), details)}
    for title in (
        "Progressive chain",
        "Attention-weighted multi-teacher",
        "Cache",
        "Warm start (optimization memory)",
        "Parallel training",
    ):
        assert not panels[title].on and panels[title].summary.startswith("off"), title
    assert panels["Configuration selection"].on
    assert panels["Configuration selection"].table.loc[0, "params"] == "{}"
    assert "adaptive" in panels["Temperatures"].summary
    legacy = progress.component_panels("legacy", cfg.to_dict(), {})
    assert sum(p.on for p in legacy) == 1  # only the fixed temperature grid


def test_live_details_come_from_info_events():
    events = [
        _event(
            "info",
            "select",
            configs=[{"label": "tree-small", "warm_started": True}],
            warm_start={
                "enabled": True,
                "used": True,
                "reason": "2 similar runs",
                "neighbours": [{"name": "x"}],
            },
        ),
        _event(
            "info",
            "chain",
            stages=[{"stage": 1, "val_metric": 0.4, "test_metric": 0.5, "kept": True}],
        ),
    ]
    view = _view(events, config=HPMConfig(use_multi_teacher=True))
    panels = {p.title: p for p in progress.component_panels("hpm", view.config, None, view)}
    assert "warm-started" in panels["Configuration selection"].summary
    assert panels["Warm start (optimization memory)"].on
    chain = panels["Progressive chain"]
    assert chain.on and "test_metric" not in chain.table.columns


# ----------------------------------------------------------------- compare & charts
def test_metric_cards_and_entries(finished):
    teacher = compare.teachers(finished)[0]
    students = compare.students(finished)
    assert students[0].selected and students[0].name == finished.best_name
    assert students[-1].role == "baseline"
    cards = compare.metric_cards(teacher, students[0])
    assert [c.label for c in cards] == [
        "Accuracy",
        "F1",
        "AUC",
        "KS",
        "Fidelity",
        "KL to teacher",
        "Size",
        "Latency / 1k rows",
    ]
    ks_card = cards[3]
    expected = students[0].metrics["ks"] - teacher.metrics["ks"]
    assert ks_card.delta == f"{expected:+.3f} vs teacher"
    assert cards[5].delta_color == cards[6].delta_color == "inverse"


def test_charts_are_computed_from_the_record(finished):
    y = compare.y_test(finished)
    assert len(y) == finished.result_.split_sizes["test"]
    teacher = compare.teachers(finished)[0]
    student = compare.students(finished)[0]
    is_k = y == 1
    ks = curves.ks_curve(is_k, student.test_proba[:, 1]).ks
    assert ks == pytest.approx(ks_binary(is_k, student.test_proba[:, 1]))
    assert ks == pytest.approx(student.metrics["ks"])
    scores = {teacher.name: teacher.test_proba[:, 1], student.name: student.test_proba[:, 1]}
    for fig in (
        charts.roc_figure(is_k, scores, "1"),
        charts.ks_figure(is_k, scores, "1"),
        charts.distribution_figure(is_k, scores, "1"),
        charts.calibration_figure(is_k, scores, "1"),
        charts.confusion_figure(y, {teacher.name: teacher.test_proba}, ["0", "1"]),
        charts.scatter_figure(scores[teacher.name], scores[student.name], is_k, "t", "s", "1"),
    ):
        assert fig.data
    frame = compare.candidates_frame(compare.students(finished), y, 1)
    assert frame["pareto_size"].any()
    fig = charts.pareto_figure(frame, "size_bytes", "1", (teacher.size_bytes, 0.4))
    assert any(trace.name == "Pareto front" for trace in fig.data)
    table = curves.calibration_bins(is_k, scores[student.name])
    assert table["rows"].sum() == len(y)


def test_candidates_frame_flags_the_pareto_front(finished):
    y = compare.y_test(finished)
    frame = compare.candidates_frame(compare.students(finished), y, 1)
    for cost, flag in (("size_bytes", "pareto_size"), ("latency_ms_1k", "pareto_latency")):
        front = curves.pareto_front(frame[cost], frame["test_ks"])
        assert list(np.flatnonzero(frame[flag])) == sorted(front)
        # No flagged candidate has another that is cheaper and at least as good.
        for i in front:
            cheaper = frame[(frame[cost] > 0) & (frame[cost] < frame.loc[i, cost])]
            assert not (cheaper["test_ks"] >= frame.loc[i, "test_ks"]).any()


# ----------------------------------------------------------------- importance
def test_feature_importance_names_its_method(finished):
    students = compare.students(finished)
    teacher = compare.teachers(finished)[0]
    y = compare.y_test(finished)
    for entry, method in ((teacher, "SHAP (TreeExplainer)"),):
        model, X, predict = compare.model_inputs(finished, entry)
        result, _ = explain.feature_importance(model, X, y, 1, predict)
        assert result.method.startswith(method)
        assert list(result.values.index) == list(X.columns)
    by_family = {e.family: e for e in students}
    model, X, predict = compare.model_inputs(finished, by_family["logreg"])
    result, _ = explain.feature_importance(model, X, y, 1, predict)
    assert result.method.startswith("SHAP (LinearExplainer)")
    fallback = explain.permutation(predict, X.iloc[:80], y[:80], 1)
    lgbm, X_lgbm, predict_lgbm = compare.model_inputs(finished, by_family["lgbm"])
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
