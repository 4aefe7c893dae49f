"""The leakage notice in the app: on Data before the run, on Distill and Compare from the
run's ``RunResult.leakage``; what it saw, why it matters, the remedies that still apply.

Teachers are probability columns of the sample table (no isolated process needed):
a LightGBM fitted on every row (it saw them: leakage) or its out-of-fold probabilities
(no row scored by a model that saw it: no leakage). The refit button is checked with a
model teacher (probability columns cannot be refitted).
"""

from __future__ import annotations

import io

import joblib
import numpy as np
import pytest
from apptest_support import QUICK_LEGACY, ROOT, TIMEOUT, ok, texts
from lightgbm import LGBMClassifier
from sklearn.model_selection import cross_val_predict
from streamlit.testing.v1 import AppTest

from hpmkd.leakage import LeakageCheck, LeakageSignal
from hpmkd_app import configform, jobs, leakage_view, state, tables, teachers
from hpmkd_app.run_history import RunRecord


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)


@pytest.fixture(scope="module")
def inputs():
    """The sample with two probability-column teachers: fitted on every row, out-of-fold."""
    frame = tables.load_sample().frame.copy()
    features = [c for c in frame.columns if c != "target"]
    model = LGBMClassifier(n_estimators=300, num_leaves=31, n_jobs=1, verbose=-1,
                           random_state=0)
    seen = model.fit(frame[features], frame["target"]).predict_proba(frame[features])
    unseen = cross_val_predict(model, frame[features], frame["target"], cv=5,
                               method="predict_proba")
    frame[["seen_0", "seen_1"]] = seen
    frame[["oof_0", "oof_1"]] = unseen
    table = tables.load_table_bytes(frame.to_csv(index=False).encode(), "credit_probas.csv")
    order = np.random.default_rng(5).permutation(len(frame))
    test = frame.iloc[np.sort(order[:250])]
    rest = frame.iloc[np.sort(order[250:])]
    return {
        "table": table,
        "features": features,
        "seen": teachers.proba_cols_source(["seen_0", "seen_1"]),
        "unseen": teachers.proba_cols_source(["oof_0", "oof_1"]),
        "rest": tables.load_table_bytes(rest.to_csv(index=False).encode(), "rest.csv"),
        "test": tables.load_table_bytes(test.to_csv(index=False).encode(), "test.csv",
                                        source="test"),
    }


def preset(at: AppTest, inputs, teacher: str, table: str = "table", test=None) -> AppTest:
    at.session_state[state.TABLE] = inputs[table]
    at.session_state[state.TARGET] = "target"
    at.session_state[state.FEATURES] = list(inputs["features"])
    at.session_state[state.TEACHERS] = [inputs[teacher]]
    at.session_state[state.CONFIG] = dict(QUICK_LEGACY)
    at.session_state[state.METHOD] = "legacy"
    if test is not None:
        at.session_state[state.TEST_TABLE] = test
    return at


# ----------------------------------------------------------------- the notice as data
def _signal(fired: bool, name: str = "in_sample_fit") -> LeakageSignal:
    return LeakageSignal(name, "t", fired, "log-loss against a reference",
                         {"gain": 0.6 if fired else 0.01, "rows": 800.0},
                         f"Teacher 't' measured ({'far better' if fired else 'alike'}).")


def test_a_suspected_check_says_what_why_and_the_remedies_that_still_apply():
    check = LeakageCheck(True, (_signal(True), _signal(False, "validation_above_test")),
                         "engine text", n_rows=800, seconds=1.0)
    notice = leakage_view.build_notice(check, test_table_used=False)
    assert notice.suspected and notice.headline == leakage_view.SUSPECTED
    assert notice.seen == ("Teacher 't' measured (far better).",)
    assert "close to the labels" in notice.why
    assert "Upload a separate test table" in notice.remedies[0]
    assert "Set **Teacher refit** to **oof**" in notice.remedies[1]
    assert notice.offer_refit
    assert list(notice.details["fired"]) == [True, False]

    applied = leakage_view.build_notice(
        LeakageCheck(True, (_signal(True),), "", teacher_refit="oof"), test_table_used=True)
    assert "test table** is in use" in applied.remedies[0]
    assert "**Teacher refit: oof** is set" in applied.remedies[1]
    assert not applied.offer_refit

    columns = leakage_view.build_notice(check, test_table_used=False, refit_possible=False)
    assert "probability columns cannot be refitted" in columns.remedies[1]
    assert not columns.offer_refit


def test_only_the_reference_teachers_own_fit_is_expected():
    check = LeakageCheck(True, (_signal(True),), "")
    own = leakage_view.build_notice(check, test_table_used=False, trained_here=("t",))
    assert not own.suspected and own.level == "info" and own.headline == leakage_view.EXPECTED
    assert len(own.remedies) == 1 and "Teacher refit" in own.remedies[0]
    other = leakage_view.build_notice(check, test_table_used=False, trained_here=("u",))
    assert other.suspected and other.level == "warning"
    # A teacher of the app that scores better on validation than on test saw other rows.
    val = LeakageCheck(True, (_signal(True, "validation_above_test"),), "")
    assert leakage_view.build_notice(val, False, trained_here=("t",)).level == "warning"


def test_a_quiet_check_has_no_remedies():
    notice = leakage_view.build_notice(LeakageCheck(False, (_signal(False),), "nothing"),
                                       test_table_used=False)
    assert not notice.suspected and notice.headline == leakage_view.QUIET
    assert notice.remedies == () and notice.why == ""
    assert notice.seen == ("Teacher 't' measured (alike).",)


# ----------------------------------------------------------------- Data page
def refit_buttons(at: AppTest) -> list:
    return [b for b in at.button if b.label == leakage_view.REFIT_BUTTON]


def test_data_page_warns_about_probability_columns_that_saw_the_rows(inputs):
    at = ok(preset(page("1_data"), inputs, "seen").run())
    warning = texts(at.warning)
    assert leakage_view.SUSPECTED in warning
    assert "What hpmkd saw." in warning and "far better than a model that never saw" in warning
    assert "Why it matters." in warning and "Upload a separate test table" in warning
    assert "probability columns cannot be refitted" in warning
    assert not refit_buttons(at)


def test_data_page_warns_about_a_model_file_that_saw_the_rows_and_applies_the_refit(
    inputs, fit_teacher
):
    frame = inputs["table"].frame
    buffer = io.BytesIO()
    joblib.dump(fit_teacher(frame[inputs["features"]], frame["target"], n_estimators=300),
                buffer)
    at = preset(page("1_data"), inputs, "seen")
    at.session_state[state.TEACHERS] = []
    ok(at.run())
    at.file_uploader(key="teacher_upload").set_value(
        ("all_rows.joblib", buffer.getvalue(), "application/octet-stream"))
    ok(at.run())
    warning = texts(at.warning)
    assert leakage_view.SUSPECTED in warning and "Teacher 'all_rows.joblib'" in warning
    assert "Set **Teacher refit** to **oof**" in warning
    assert at.session_state[state.CONFIG].get("teacher_refit") != "oof"

    ok(refit_buttons(at)[0].click().run())
    assert at.session_state[state.CONFIG]["teacher_refit"] == "oof"
    assert "**Teacher refit: oof** is set" in texts(at.warning)
    assert not refit_buttons(at)


def test_the_reference_teacher_fitting_its_own_train_rows_is_expected_not_suspected(inputs):
    at = preset(page("1_data"), inputs, "seen")
    at.session_state[state.TEACHERS] = []
    ok(at.run())
    ok(next(b for b in at.button if b.label == "Train a reference teacher").click().run())
    assert leakage_view.SUSPECTED not in texts(at.warning)
    info = texts(at.info)
    assert leakage_view.EXPECTED in info and "validation and test scores are honest" in info
    assert refit_buttons(at)


def test_data_page_is_quiet_for_out_of_fold_probabilities(inputs):
    at = ok(preset(page("1_data"), inputs, "unseen").run())
    assert leakage_view.QUIET in texts(at.caption)
    assert leakage_view.SUSPECTED not in texts(at.warning)


def test_with_a_test_table_the_notice_says_it_is_in_use(inputs):
    at = ok(preset(page("1_data"), inputs, "seen", table="rest", test=inputs["test"]).run())
    warning = texts(at.warning)
    assert leakage_view.SUSPECTED in warning
    assert "test table** is in use" in warning and "Upload a separate" not in warning


# ----------------------------------------------------------------- Distill and Compare
@pytest.mark.parametrize(("teacher", "suspected"), [("seen", True), ("unseen", False)])
def test_distill_and_compare_show_the_runs_leakage_check(inputs, teacher, suspected):
    at = ok(preset(page("3_distill"), inputs, teacher, table="rest", test=inputs["test"]).run())
    [start] = [b for b in at.button if b.label == "Start distillation"]
    ok(start.click().run())
    runs = at.session_state[state.RUNS]
    job = jobs.get_job(runs[-1].job_id)
    assert job.wait(TIMEOUT) and job.status == "done", job.error
    assert job.result.leakage.suspected is suspected
    compare = preset(page("4_compare"), inputs, teacher, table="rest", test=inputs["test"])
    compare.session_state[state.RUNS] = runs  # the run of the same inputs
    for view in (at, compare):
        ok(view.run())
        if suspected:
            assert leakage_view.SUSPECTED in texts(view.warning)
            assert "test table** is in use" in texts(view.warning)
        else:
            assert leakage_view.QUIET in texts(view.caption)
            assert leakage_view.SUSPECTED not in texts(view.warning)


def test_a_run_with_the_reference_teacher_says_its_fit_is_expected(inputs):
    table, features = inputs["table"], inputs["features"]
    settings = teachers.reference_settings(table, "target", features, 42, 0.2)
    model, info = teachers.train_reference_teacher(table.frame, settings)
    source = teachers.reference_source(settings, info)
    dataset = teachers.build_dataset(table, "target", features, [source], lambda s: model)
    job = jobs.start_job(dataset, configform.to_config(QUICK_LEGACY), method="legacy", seed=42)
    assert job.wait(TIMEOUT) and job.status == "done", job.error
    assert teachers.teachers_fitted_on(dataset, job.result.split.train) == [source.name]
    at = preset(page("4_compare"), inputs, "seen")
    at.session_state[state.TEACHERS] = [source]
    at.session_state[state.RUNS] = [RunRecord(job.id, "", table.name, job.started_at,
                                              "legacy", 42, "done")]
    at.session_state[state.OPENED_RUN] = job.id
    ok(at.run())
    assert leakage_view.EXPECTED in texts(at.info)
    assert leakage_view.SUSPECTED not in texts(at.warning)
