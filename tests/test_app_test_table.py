"""The separate test table of the app: upload on the Data page, checks against the
training table, and its rows as the run's test rows (AppTest and service level)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from apptest_support import QUICK_LEGACY, ROOT, TIMEOUT, button, ok, texts
from streamlit.testing.v1 import AppTest

from hpmkd import HPMKDInputError
from hpmkd_app import configform, jobs, run_cache, state, tables, teachers


def data_page() -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / "1_data.py"), default_timeout=TIMEOUT)


def csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def parts():
    """The sample split into an 800-row training table and a 200-row test table."""
    frame = tables.load_sample().frame
    rng = np.random.default_rng(3)
    order = rng.permutation(len(frame))
    train = frame.iloc[np.sort(order[:800])].reset_index(drop=True)
    test = frame.iloc[np.sort(order[800:])].reset_index(drop=True)
    return {
        "train": tables.load_table_bytes(csv(train), "credit_train.csv"),
        "test": tables.load_table_bytes(csv(test), "credit_test.csv", source="test"),
        "features": [c for c in frame.columns if c != "target"],
    }


def preset(at: AppTest, parts, **extra) -> AppTest:
    at.session_state[state.TABLE] = parts["train"]
    at.session_state[state.TARGET] = "target"
    at.session_state[state.FEATURES] = list(parts["features"])
    for key, value in extra.items():
        at.session_state[key] = value
    return at


# ----------------------------------------------------------------- Data page
def test_without_a_test_table_the_page_says_which_rows_are_held_out(parts):
    at = ok(preset(data_page(), parts).run())
    assert "Test rows: 20% of your table held out at random (seeded), 160 rows." in texts(
        at.markdown)
    assert state.TEST_TABLE not in at.session_state


def test_uploaded_test_table_is_the_runs_test_rows(parts):
    at = ok(preset(data_page(), parts).run())
    at.file_uploader(key="test_upload_0").set_value(
        ("credit_test.csv", csv(parts["test"].frame), "text/csv"))
    ok(at.run())
    test = at.session_state[state.TEST_TABLE]
    assert test.name == "credit_test.csv" and test.n_rows == 200
    assert "Test rows: from your test table `credit_test.csv`, 200 rows." in texts(at.markdown)
    assert not at.error

    # The reference teacher now trains on the train part of the 800 table rows only.
    ok(button(at, "Train a reference teacher").click().run())
    source = at.session_state[state.TEACHERS][0]
    assert source.settings["test_digest"] == test.digest
    assert source.settings["train_rows"] == 640 and source.settings["rows"] == 800
    assert "Dataset ready: 800 rows + 200 test rows from your test table" in texts(at.success)

    # Removing the test table goes back to the held-out part and flags the teacher.
    ok(button(at, "Remove test table").click().run())
    assert state.TEST_TABLE not in at.session_state
    assert at.session_state[state.TEST_UPLOAD_VERSION] == 1
    assert "the test table was removed" in texts(at.warning)
    assert "held out at random" in texts(at.markdown)


def test_a_reference_teacher_trained_before_the_test_table_is_flagged(parts):
    settings = teachers.reference_settings(parts["train"], "target", parts["features"], 42, 0.2)
    _model, info = teachers.train_reference_teacher(parts["train"].frame, settings)
    at = preset(data_page(), parts, **{
        state.TEACHERS: [teachers.reference_source(settings, info)],
        state.TEST_TABLE: parts["test"],
    })
    ok(at.run())
    assert "a test table was added" in texts(at.warning)
    assert "trained before the test table changed" in texts(at.error)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["AGE", "DURATION"]),
         "lacks column(s) 'DURATION', 'AGE' that the training table"),
        (lambda f: f.assign(AGE=f["AGE"].astype(str).where(f.index != 4, "forty")),
         "Column 'AGE' is numeric in the training table 'credit_train.csv' but categorical "
         "in the test table 'credit_test.csv' (e.g. value 'forty' in data row 5)"),
        (lambda f: f.assign(target=f["target"].where(f.index != 0, 7)),
         "holds class(es) '7' that the training table"),
        (lambda f: f.assign(target=np.nan), "has no value in target column 'target'"),
    ],
    ids=["missing-columns", "other-kind", "unknown-class", "no-target"],
)
def test_a_test_table_that_does_not_fit_is_explained(parts, change, message):
    at = ok(preset(data_page(), parts).run())
    at.file_uploader(key="test_upload_0").set_value(
        ("credit_test.csv", csv(change(parts["test"].frame.copy())), "text/csv"))
    ok(at.run())
    assert message in texts(at.error)


def test_an_unreadable_test_table_is_reported_and_changes_nothing(parts):
    at = ok(preset(data_page(), parts, **{state.TEST_TABLE: parts["test"]}).run())
    at.file_uploader(key="test_upload_0").set_value(("bad.csv", b"\x00\x01binary", "text/csv"))
    ok(at.run())
    assert "Test table: Data file 'bad.csv' looks binary" in texts(at.error)
    assert at.session_state[state.TEST_TABLE] is parts["test"]


def test_extra_columns_and_missing_targets_in_the_test_table_are_noted(parts):
    frame = parts["test"].frame.copy()
    frame["row_id"] = range(len(frame))
    frame.loc[:2, "target"] = np.nan
    at = ok(preset(data_page(), parts).run())
    at.file_uploader(key="test_upload_0").set_value(("t.csv", csv(frame), "text/csv"))
    ok(at.run())
    notes = texts(at.caption)
    assert "Column(s) 'row_id' are not in the training table and are ignored." in notes
    assert "3 test row(s) without a target are dropped." in notes
    assert "from your test table `t.csv`, 197 rows" in texts(at.markdown)


# ----------------------------------------------------------------- the run
def test_the_run_reads_exactly_the_test_tables_rows(parts, fit_teacher):
    train, test = parts["train"], parts["test"]
    features = parts["features"]
    teacher = fit_teacher(train.frame[features], train.frame["target"], n_estimators=20)
    source = teachers.TeacherSource(kind="reference", name="lgbm")
    dataset = teachers.build_dataset(train, "target", features, [source], lambda s: teacher,
                                     test_table=test)
    assert dataset.n_rows == 1000 and teachers.separate_test_rows(dataset) == 200
    config = configform.to_config(QUICK_LEGACY)
    job = jobs.start_job(dataset, config, method="legacy", seed=42)
    assert job.wait(TIMEOUT) and job.status == "done", job.error
    result = job.result
    assert np.array_equal(np.asarray(result.y_test), test.frame["target"].to_numpy())

    # The same 1,000 rows as one table have the same fingerprint but other test rows:
    # the run cache must not serve one for the other.
    whole = pd.concat([train.frame, test.frame], ignore_index=True)
    one = tables.load_table_bytes(csv(whole), "credit_all.csv")
    single = teachers.build_dataset(one, "target", features, [source], lambda s: teacher)
    assert single.fingerprint() == dataset.fingerprint()
    assert (run_cache.run_key(single, config, "legacy", 42)
            != run_cache.run_key(dataset, config, "legacy", 42))


def test_build_dataset_refuses_a_test_table_that_does_not_fit(parts, fit_teacher):
    train, features = parts["train"], parts["features"]
    teacher = fit_teacher(train.frame[features], train.frame["target"], n_estimators=5)
    bad = tables.load_table_bytes(csv(parts["test"].frame.drop(columns=["AGE"])), "t.csv")
    with pytest.raises(HPMKDInputError, match="lacks column"):
        teachers.build_dataset(train, "target", features,
                               [teachers.TeacherSource(kind="reference", name="t")],
                               lambda s: teacher, test_table=bad)


def test_distill_says_where_the_test_rows_come_from(parts):
    train, test, features = parts["train"], parts["test"], parts["features"]
    settings = teachers.reference_settings(train, "target", features, 42, 0.2, test_table=test)
    at = AppTest.from_file(str(ROOT / "pages" / "3_distill.py"), default_timeout=TIMEOUT)
    _model, info = teachers.train_reference_teacher(train.frame, settings, test.frame)
    preset(at, parts, **{
        state.TEACHERS: [teachers.reference_source(settings, info)],
        state.TEST_TABLE: test,
        state.CONFIG: dict(QUICK_LEGACY),
        state.METHOD: "legacy",
    })
    ok(at.run())
    assert "test rows: from your test table, 200 rows" in texts(at.markdown)


def test_a_parquet_test_table_is_read_like_a_csv_one(parts):
    buffer = io.BytesIO()
    parts["test"].frame.to_parquet(buffer, index=False)
    at = ok(preset(data_page(), parts).run())
    at.file_uploader(key="test_upload_0").set_value(
        ("credit_test.parquet", buffer.getvalue(), "application/octet-stream"))
    ok(at.run())
    assert at.session_state[state.TEST_TABLE].n_rows == 200
    assert "from your test table `credit_test.parquet`, 200 rows" in texts(at.markdown)
    assert not at.error
