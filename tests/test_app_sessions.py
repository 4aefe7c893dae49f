"""Runs bound to their inputs, and sessions that survive a reload and a server restart.

The store and the codec are tested directly; the app through ``app.py`` in AppTest: a
reload is a new ``AppTest`` with the same ``?session=`` link, a server restart drops the
job registry (as a new process has none) and the Streamlit caches.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from apptest_support import QUICK_LEGACY, ROOT, TIMEOUT, button, ok, texts
from streamlit.testing.v1 import AppTest

from hpmkd_app import configform, jobs, run_history, session_codec, sessions, state, tables
from hpmkd_app import teachers as teacher_lib
from hpmkd_app.run_history import RunRecord
from hpmkd_app.session_store import SessionStore, SessionTooLarge, new_token, valid_token


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def reload(at: AppTest) -> AppTest:
    """What a browser reload does: a new session, the same URL."""
    again = app()
    again.query_params.update(at.query_params)
    return ok(again.run())


@pytest.fixture(autouse=True)
def _every_run_goes_through_app_py(monkeypatch):
    """Run ``app.py`` on every AppTest run, clicks included, as a real server does.

    AppTest resets ``PagesManager.uses_pages_directory`` before each run, as if every run
    were a fresh server's first: with a ``pages/`` folder beside ``app.py`` the page file
    then runs alone, and :func:`hpmkd_app.ui.run_through_app` reruns it through
    ``app.py``, which drops the click of that run. A server clears the flag once.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    class _Pages(PagesManager):
        pass

    monkeypatch.setattr(app_test, "PagesManager", _Pages)
    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)


def test_a_page_url_on_a_fresh_server_still_runs_app_py(monkeypatch):
    monkeypatch.undo()  # AppTest's own flag handling: each run is like a fresh server's first
    at = ok(app().run())
    ok(at.switch_page("pages/5_export.py").run())
    assert at.title[0].value == "5 · Export"
    assert "Your session" in texts(at.sidebar.markdown)  # app.py ran around the page


@pytest.fixture(scope="module")
def sample_inputs():
    table = tables.load_sample()
    features = [c for c in table.frame.columns if c != "target"]
    settings = teacher_lib.reference_settings(table, "target", features, 42, 0.2)
    _, info = teacher_lib.train_reference_teacher(table.frame, settings)
    return table, features, teacher_lib.reference_source(settings, info)


# ----------------------------------------------------------------- codec
def test_fingerprint_survives_encode_and_decode(sample_inputs, tmp_path):
    table, features, reference = sample_inputs
    upload = teacher_lib.file_source(b"model bytes", "teacher.joblib")
    values = {state.TABLE: table, state.TARGET: "target", state.FEATURES: features,
              state.TEACHERS: [reference, upload, teacher_lib.proba_cols_source(["p0", "p1"])],
              state.CONFIG: dict(QUICK_LEGACY), state.METHOD: "legacy", state.SEED: 7}
    blobs: dict[str, bytes] = {}
    encoded = {k: session_codec.encode(v, blobs) for k, v in values.items()}
    text = json.dumps(encoded)  # plain JSON, no bytes inside
    assert b"model bytes" not in text.encode() and set(blobs) == {table.digest, upload.digest}
    decoded = {k: session_codec.decode(v, blobs.get) for k, v in json.loads(text).items()}
    assert session_codec.fingerprint(decoded) == session_codec.fingerprint(values)
    assert decoded[state.TABLE].frame.equals(table.frame)
    assert decoded[state.TEACHERS][1].data == b"model bytes"
    assert decoded[state.TEACHERS][2].proba_cols == ("p0", "p1")


@pytest.mark.parametrize("change", ["table", "target", "features", "teacher", "config",
                                    "method", "seed"])
def test_every_input_changes_the_fingerprint(sample_inputs, change):
    table, features, reference = sample_inputs
    base = {state.TABLE: table, state.TARGET: "target", state.FEATURES: features,
            state.TEACHERS: [reference], state.CONFIG: dict(QUICK_LEGACY),
            state.METHOD: "legacy", state.SEED: 42}
    other = dict(base)
    if change == "table":
        other[state.TABLE] = tables.load_table_bytes(table.frame.head(500).to_csv().encode(),
                                                     table.name)
    elif change == "target":
        other[state.TARGET] = "FOREIGN"
    elif change == "features":
        other[state.FEATURES] = features[:-1]
    elif change == "teacher":
        other[state.TEACHERS] = [teacher_lib.file_source(b"x", "t.joblib")]
    elif change == "config":
        other[state.CONFIG] = {**QUICK_LEGACY, "n_trials": 2}
    elif change == "method":
        other[state.METHOD] = "hpm"
    else:
        other[state.SEED] = 43
    assert session_codec.fingerprint(other) != session_codec.fingerprint(base)


def test_a_missing_or_changed_blob_is_a_clear_restore_problem(sample_inputs):
    table = sample_inputs[0]
    blobs: dict[str, bytes] = {}
    encoded = session_codec.encode(table, blobs)
    with pytest.raises(session_codec.RestoreProblem, match="no longer holds the table"):
        session_codec.decode(encoded, lambda digest: None)
    with pytest.raises(session_codec.RestoreProblem, match="no longer holds the table"):
        session_codec.decode(encoded, lambda digest: b"tampered")
    with pytest.raises(TypeError, match="not a known session input type"):
        session_codec.encode(object(), blobs)


# ----------------------------------------------------------------- store
def test_tokens_are_random_and_validated_strictly(tmp_path):
    store = SessionStore(tmp_path / "s")
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(valid_token(t) for t in tokens)
    for bad in ("", "abc", "../" + "a" * 40, "a" * 42, "a" * 44, "a" * 42 + "/",
                "a" * 42 + ".", None, 12):
        assert not valid_token(bad)
        assert store.load(bad) is None
    with pytest.raises(ValueError):
        store.save("../../etc/passwd", {}, {})
    assert store.read_blob("../records") is None


def test_store_round_trip_is_private_and_atomic(tmp_path):
    store = SessionStore(tmp_path / "s")
    token = new_token()
    store.save(token, {"inputs": {"a": 1}}, {"0" * 64: b"blob"})
    for path in (store.directory, store.records, store.blobs):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    record = store.load(token)
    assert record["inputs"] == {"a": 1} and record["blobs"] == ["0" * 64]
    assert store.read_blob("0" * 64) == b"blob"
    assert not [p for p in store.records.iterdir() if p.name.startswith(".tmp")]
    (store.records / f"{token}.json").write_text("{half a rec")
    assert store.load(token) is None  # unreadable: treated as unknown, never a crash


def test_store_is_size_bounded_least_recently_used_first(tmp_path):
    store = SessionStore(tmp_path / "s", limit_bytes=10_000)
    tokens = []
    now = time.time()
    for i in range(4):
        token = new_token()
        store.save(token, {"i": i}, {f"{i:064x}": bytes(3000)})
        tokens.append(token)
        os.utime(store.records / f"{token}.json", (now - 100 + i, now - 100 + i))
    # Four 3 kB blobs do not fit in 10 kB: the oldest session and its blob went first.
    assert store.size_bytes() <= 10_000
    assert not store.exists(tokens[0]) and store.read_blob(f"{0:064x}") is None
    assert all(store.exists(t) for t in tokens[1:])
    store.load(tokens[1])  # used again: now the most recent
    store.save(new_token(), {"i": 9}, {f"{9:064x}": bytes(3000)})
    assert store.exists(tokens[1]) and not store.exists(tokens[2])
    with pytest.raises(SessionTooLarge, match="more than the"):
        store.save(new_token(), {}, {"f" * 64: bytes(20_000)})


def test_store_drops_sessions_unused_for_longer_than_the_ttl(tmp_path):
    store = SessionStore(tmp_path / "s", ttl_s=3600)
    old, new = new_token(), new_token()
    store.save(old, {}, {"a" * 64: b"x"})
    past = time.time() - 7200
    os.utime(store.records / f"{old}.json", (past, past))
    store.save(new, {}, {})
    assert not store.exists(old) and store.exists(new)
    assert store.read_blob("a" * 64) is None  # its blob went with it


# ----------------------------------------------------------------- history
def test_run_history_picks_only_runs_of_the_current_inputs():
    a = RunRecord("aaaa", "fp-a", "a.csv", 1.0, status="done", selected="tree_T2")
    b = RunRecord("bbbb", "fp-b", "b.csv", 2.0, status="running")
    a2 = RunRecord("cccc", "fp-a", "a.csv", 3.0, status="cancelled")
    records = [a, b, a2]
    assert run_history.current(records, "fp-a") is a2
    assert run_history.latest_done(records, "fp-a") is a
    assert run_history.current(records, "fp-c") is None
    assert run_history.running(records) is b
    assert "does not match the current inputs" in run_history.label(a, "fp-b")
    assert "a.csv" in run_history.label(a, "fp-a") and "student tree_T2" in run_history.label(
        a, "fp-a")
    assert not RunRecord("dddd", "", "x", 0.0).matches("")  # unknown inputs match nothing
    many = records
    for i in range(run_history.MAX_RUNS + 5):
        many = run_history.remember(many, RunRecord(f"{i:04x}", "f", "d", float(i)))
    assert len(many) == run_history.MAX_RUNS
    assert many[-1].job_id == f"{run_history.MAX_RUNS + 4:04x}"
    assert RunRecord.from_dict({**a.to_dict(), "later_field": 1}) == a


# ----------------------------------------------------------------- the app
def _load_sample_and_teacher(at: AppTest) -> AppTest:
    ok(button(at, "Use sample data").click().run())
    ok(button(at, "Train a reference teacher").click().run())
    assert "Dataset ready" in texts(at.success)
    at.session_state[state.CONFIG] = dict(QUICK_LEGACY)
    at.session_state[state.METHOD] = "legacy"
    return ok(at.run())


def _run_on_distill(at: AppTest) -> jobs.Job:
    ok(at.switch_page("pages/3_distill.py").run())
    ok(button(at, "Start distillation").click().run())
    job = jobs.get_job(at.session_state[state.RUNS][-1].job_id)
    assert job is not None and job.wait(TIMEOUT) and job.status == "done", job and job.error
    ok(at.run())
    return job


def test_reload_restores_inputs_and_the_finished_run():
    at = ok(app().run())
    assert "session" not in at.query_params  # a visitor who did nothing gets no session
    _load_sample_and_teacher(at)
    token = at.query_params["session"]
    assert valid_token(token)
    # Stored where the server decides: the private app folder under HPMKD_HOME.
    store = sessions.store()
    assert store.exists(token)
    assert store.directory == Path(os.environ["HPMKD_HOME"]) / "app" / "sessions"
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    job = _run_on_distill(at)

    again = reload(at)
    assert again.query_params["session"] == token
    table = again.session_state[state.TABLE]
    assert table.name == "german_credit.csv" and table.n_rows == 1000
    assert again.session_state[state.TEACHERS] == at.session_state[state.TEACHERS]
    assert again.session_state[state.CONFIG] == dict(QUICK_LEGACY)
    assert again.session_state[state.METHOD] == "legacy"
    assert [r.job_id for r in again.session_state[state.RUNS]] == [job.id]
    for page, marker in (("pages/3_distill.py", "Best student"),
                         ("pages/4_compare.py", None), ("pages/5_export.py", None)):
        ok(again.switch_page(page).run())
        if marker:
            assert marker in texts(again.markdown)
    assert "Student model (.joblib)" in [b.label for b in again.get("download_button")]
    assert not again.warning


def test_a_dataset_switch_never_offers_the_old_student(tmp_path):
    at = _load_sample_and_teacher(ok(app().run()))
    old = _run_on_distill(at)
    old_teachers = at.session_state[state.TEACHERS]
    # Another CSV (the first 400 rows, under another name) and a teacher for it.
    other = tables.load_table_bytes(tables.load_sample().frame.head(400).to_csv(index=False)
                                    .encode(), "credit_400.csv")
    at.session_state[state.TABLE] = other
    ok(at.switch_page("pages/1_data.py").run())
    ok(button(at, "Train a reference teacher").click().run())
    assert "Dataset ready: 400 rows" in texts(at.success)
    ok(at.switch_page("pages/5_export.py").run())
    assert "The current inputs have no run yet" in texts(at.info)
    assert not at.get("download_button")
    assert old.id in texts(at.markdown)  # in the run history, labelled
    assert "does not match the current inputs" in texts(at.markdown)
    ok(at.switch_page("pages/4_compare.py").run())
    assert "The current inputs have no run yet" in texts(at.info)
    assert not at.get("plotly_chart")
    ok(at.switch_page("pages/3_distill.py").run())
    assert "Best student" not in texts(at.markdown)
    assert "current inputs have no run yet" in texts(at.info)
    assert "none on the current inputs" in texts(at.sidebar.caption)

    # Opened explicitly from the history, the old run shows, labelled as history.
    ok(at.switch_page("pages/5_export.py").run())
    ok(button(at, "Open").click().run())
    warning = texts(at.warning)
    assert f"viewing run `{old.id}`" in warning and "does not match the current inputs" in warning
    assert "Student model (.joblib)" in [b.label for b in at.get("download_button")]
    ok(button(at, "Back to the run of the current inputs").click().run())
    assert not at.get("download_button")

    # From Distill, the history opens the run on Compare, labelled.
    ok(at.switch_page("pages/3_distill.py").run())
    ok(button(at, "Open in Compare").click().run())
    assert at.title[0].value == "4 · Compare"
    assert "does not match the current inputs" in texts(at.warning)
    ok(button(at, "Back to the run of the current inputs").click().run())

    # The old inputs again: their run is the current one again.
    at.session_state[state.TABLE] = tables.load_sample()
    at.session_state[state.TEACHERS] = old_teachers
    ok(at.switch_page("pages/5_export.py").run())
    assert "Student model (.joblib)" in [b.label for b in at.get("download_button")]


def test_server_restart_brings_back_finished_runs_and_says_a_running_one_is_gone():
    at = _load_sample_and_teacher(ok(app().run()))
    job = _run_on_distill(at)
    # A run that was still going when the server stopped (its job never finished).
    records = at.session_state[state.RUNS]
    lost = RunRecord("feedfacecafe", records[-1].fingerprint, "german_credit.csv",
                     time.time(), "legacy", 42, "running")
    at.session_state[state.RUNS] = [*records, lost]
    ok(at.run())  # stored
    # Restart: a new process has no jobs in memory and empty Streamlit caches.
    with jobs._JOBS_LOCK:
        jobs._JOBS.clear()
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    again = reload(at)
    ok(again.switch_page("pages/3_distill.py").run())
    assert "a running job cannot survive a server restart" in texts(again.warning)
    assert f"{run_history.LOST} · matches the current inputs" in texts(again.markdown)
    # The finished run of the same inputs is still theirs, from the run cache.
    ok(again.switch_page("pages/5_export.py").run())
    assert "Student model (.joblib)" in [b.label for b in again.get("download_button")]
    assert job.id in texts(again.caption)


def test_an_unknown_or_malformed_session_link_starts_a_new_session():
    for bad in (new_token(), "../../etc/passwd", "x"):
        at = app()
        at.query_params["session"] = bad
        ok(at.run())
        assert "not known to this server" in texts(at.sidebar.warning)
        assert "session" not in at.query_params
        assert state.TABLE not in at.session_state


def test_a_run_on_other_inputs_still_going_is_not_shown_as_current(sample_inputs):
    table, features, reference = sample_inputs
    at = _load_sample_and_teacher(ok(app().run()))
    dataset = teacher_lib.build_dataset(table, "target", features, [reference],
                                        lambda s: teacher_lib.train_reference_teacher(
                                            table.frame, s.settings)[0])
    grid = configform.to_config({**configform.default_form(),
                                 "families": ["logreg", "tree", "lgbm"]})
    job = jobs.start_job(dataset, grid, method="legacy", seed=31337, use_run_cache=False)
    try:
        at.session_state[state.RUNS] = [RunRecord(job.id, "other-inputs", "old.csv",
                                                  job.started_at, "legacy", 31337, "running")]
        ok(at.switch_page("pages/3_distill.py").run())
        assert "A run on **other inputs** is still going" in texts(at.warning)
        assert button(at, "Start distillation").disabled
        assert "Best student" not in texts(at.markdown)
        ok(button(at, "Cancel that run").click().run())
        assert job.wait(TIMEOUT) and job.status == "cancelled"
        ok(at.run())
        assert not button(at, "Start distillation").disabled
    finally:
        job.cancel()
