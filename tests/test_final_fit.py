"""The final fit (``hpmkd.engine.final_fit``): after every decision, the selected student and
its hard-label twin are fitted once more on the training + validation rows, keep the
calibration fitted on validation for their train-only fits, and are what the test rows
score and what is shipped; the decisions and the validation figures are unchanged."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hpmkd import HPMConfig
from hpmkd.engine.final_fit import _why_not
from hpmkd.engine.session import PLANS, RunSession
from hpmkd.evaluate import (
    CandidateResult,
    calibrate,
    train_candidate,
    uncalibrated,
    with_calibration_of,
)
from hpmkd.events import EventBus
from hpmkd.metrics import compute_metrics
from hpmkd.students import StudentSpec, proba_in_class_order, trial_params
from tests.test_hpm import ISOLATED, make_dataset, run_hpm


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(7, "final-fit")


@pytest.fixture(scope="module")
def runs(dataset):
    """The same run with the final fit (the default) and without it."""
    on = run_hpm(dataset, **ISOLATED)._check_run()
    off = run_hpm(dataset, **ISOLATED, final_fit="off")._check_run()
    return on, off


def _beta(model) -> float:
    (fitted,) = model.calibrated_classifiers_
    return float(fitted.calibrators[0].beta_)


def test_the_final_fit_changes_no_decision_and_no_validation_figure(runs):
    on, off = runs
    assert [c.name for c in on.candidates] == [c.name for c in off.candidates]
    for a, b in zip(on.candidates, off.candidates, strict=True):
        np.testing.assert_equal(a.val, b.val)
        np.testing.assert_array_equal(a.val_proba, b.val_proba)
    assert on.selected.name == off.selected.name and on.twin.name == off.twin.name
    assert on.components.selection_rule == off.components.selection_rule
    np.testing.assert_array_equal(on.twin.val_proba, off.twin.val_proba)


def test_student_and_twin_are_fitted_on_training_and_validation_rows(dataset, runs):
    on, off = runs
    n_train, n_val = on.split_sizes["train"], on.split_sizes["validation"]
    record = on.components.final_fit
    assert record.enabled and record.rows == n_train + n_val
    assert (record.train_only_rows, record.validation_rows) == (n_train, n_val)
    assert record.student == on.selected.name and record.twin == on.twin.name
    for shipped in (on.selected, on.twin):
        assert shipped.extra["final_fit"]["rows"] == n_train + n_val
        assert shipped.train_rows == n_train  # the rows behind its validation figures
    # The shipped student is the spec fitted afresh on all those rows, with the
    # temperature fitted on validation for the train-only fit.
    session = RunSession(dataset, HPMConfig(**ISOLATED), PLANS["hpm"], 42, EventBus())
    expected = train_candidate(off.selected.spec, session.with_validation_rows(session.ctx),
                               refit_of=off.selected.model)
    session.close()
    X = dataset.X
    np.testing.assert_allclose(on.selected.model.predict_proba(X),
                               expected.model.predict_proba(X))
    assert not np.allclose(on.selected.model.predict_proba(X),
                           off.selected.model.predict_proba(X))
    if type(off.selected.model).__name__ == "CalibratedClassifierCV":
        assert _beta(on.selected.model) == _beta(off.selected.model)


def test_the_test_figures_and_the_verdict_are_the_final_fits(dataset, runs):
    on, _ = runs
    X_test, y_test = dataset.X.iloc[on.split.test], dataset.y[on.split.test]
    for shipped in (on.selected, on.twin):
        proba = proba_in_class_order(shipped.model, X_test, dataset.classes)
        np.testing.assert_array_equal(proba, shipped.test_proba)
        assert compute_metrics(y_test, proba)["ks"] == pytest.approx(shipped.test["ks"])
    twin = on.verdict.against("twin", "ks")
    assert twin.student == pytest.approx(on.selected.test["ks"])
    assert twin.other == pytest.approx(on.twin.test["ks"])
    frame = on.results_df()
    row = frame[frame["selected"]].iloc[0]
    assert row["final_fit_rows"] == on.components.final_fit.rows
    assert row["train_rows"] == on.split_sizes["train"]
    assert row["size_bytes"] == on.selected.size_bytes
    others = frame[~frame["selected"] & frame["source"].isin(["config", "chain", "climb"])]
    assert others["final_fit_rows"].isna().all()


def test_off_ships_the_train_only_fits_and_says_so(runs):
    _, off = runs
    record = off.components.final_fit
    assert not record.enabled and record.reason == "final_fit is off"
    assert "final_fit" not in off.selected.extra
    assert record.sentence().startswith("train-only fit shipped")


def test_ensemble_students_and_stopped_runs_ship_the_train_only_fit(dataset):
    session = RunSession(dataset, HPMConfig(**ISOLATED), PLANS["hpm"], 42, EventBus())
    params = trial_params("logreg", "small", 0, len(session.ctx.y_train), 42)
    spec = session.fit(StudentSpec("logreg", "small", 1.0, 0.5, 0, params))
    ensemble = CandidateResult("x", "ensemble", spec.spec, {}, 0.0, 1, 0.0, np.zeros((0, 2)))
    reason = _why_not(session, ensemble)
    assert reason is not None and "ensemble" in reason and "training rows only" in reason
    assert _why_not(session, spec) is None
    session.stop.request()
    assert "skipped" in _why_not(session, spec)
    session.close()


def test_with_calibration_of_carries_the_temperature_to_another_fit(dataset):
    from sklearn.linear_model import LogisticRegression

    session = RunSession(dataset, HPMConfig(**ISOLATED), PLANS["hpm"], 42, EventBus())
    ctx = session.ctx
    session.close()
    first = LogisticRegression(C=0.05).fit(ctx.X_train, ctx.y_train)
    calibrated = calibrate(first, ctx)
    assert type(calibrated).__name__ == "CalibratedClassifierCV"
    # Onto the model it was fitted for: the calibrated model itself.
    np.testing.assert_allclose(with_calibration_of(first, calibrated).predict_proba(ctx.X_val),
                               calibrated.predict_proba(ctx.X_val))
    # Onto another fit: the same temperature on that fit's log-odds, and a plain
    # scikit-learn model that pickles.
    other = LogisticRegression(C=0.05).fit(ctx.X_val, ctx.y_val)
    moved = pickle.loads(pickle.dumps(with_calibration_of(other, calibrated)))
    assert uncalibrated(moved) is not first and _beta(moved) == _beta(calibrated)
    logit = other.decision_function(ctx.X_val)
    # Binary: the log-odds x as the two logits (-x, x), softmax at beta.
    expected = 1.0 / (1.0 + np.exp(-2.0 * logit * _beta(calibrated)))
    np.testing.assert_allclose(moved.predict_proba(ctx.X_val)[:, 1], expected, rtol=1e-6)
    # A model that was never calibrated has nothing to carry.
    assert with_calibration_of(other, first) is other


def test_a_chain_stage_is_fitted_again_on_the_chain_s_own_mix(dataset, monkeypatch):
    # Stage 2 learned from the teacher mixed with stage 1's predictions: its final fit
    # learns the same mix, with stage 1's predictions on the validation rows too.
    from dataclasses import replace

    import hpmkd.engine.compare as compare

    original = compare.select_student

    def stage_2(candidates, *args, **kwargs):
        _, decision = original(candidates, *args, **kwargs)
        return next(c for c in candidates if c.name.startswith("chain stage 2")), decision

    monkeypatch.setattr(compare, "select_student", stage_2)
    result = run_hpm(dataset, **ISOLATED)._check_run()
    assert result.selected.name.startswith("chain stage 2") and result.components.final_fit.enabled
    session = RunSession(dataset, HPMConfig(**ISOLATED), PLANS["hpm"], 42, EventBus())
    ctx = session.ctx
    stage1 = next(c for c in result.candidates if c.name.startswith("chain stage 1"))

    def mix(source, X):
        mixed = 0.5 * source + 0.5 * proba_in_class_order(stage1.model, X, ctx.classes)
        return mixed / mixed.sum(axis=1, keepdims=True)

    spec = result.selected.spec
    # The mix is the chain's own: on the training rows alone it gives stage 2 again.
    train_only = train_candidate(spec, replace(ctx, teacher_train=mix(ctx.teacher_train,
                                                                      ctx.X_train)))
    np.testing.assert_allclose(train_only.val_proba, result.selected.val_proba)
    targets = (mix(ctx.teacher_train, ctx.X_train), mix(session.validation_targets(), ctx.X_val))
    expected = train_candidate(spec, session.with_validation_rows(ctx, targets),
                               refit_of=train_only.model)
    session.close()
    np.testing.assert_allclose(result.selected.model.predict_proba(dataset.X),
                               expected.model.predict_proba(dataset.X))


def test_auto_leaves_the_final_fit_out_above_the_row_limit_and_on_fits_anyway(
    dataset, monkeypatch
):
    import hpmkd.engine.final_fit as final_fit

    monkeypatch.setattr(final_fit, "FINAL_FIT_MAX_ROWS", 500)
    auto = run_hpm(dataset, **ISOLATED)._check_run()
    record = auto.components.final_fit
    n_train = auto.split_sizes["train"]
    assert n_train > 500 and not record.enabled
    assert f"above 500 training rows ({n_train:,} here)" in record.reason
    assert "final_fit" not in auto.selected.extra
    forced = run_hpm(dataset, **ISOLATED, final_fit="on")._check_run()
    assert forced.components.final_fit.enabled
    assert forced.selected.extra["final_fit"]["rows"] == n_train + auto.split_sizes["validation"]


def test_the_cli_and_the_report_say_what_was_shipped(dataset, tmp_path):
    from hpmkd.cli import _closing_lines
    from hpmkd.report.fmt import esc

    distiller = run_hpm(dataset, **ISOLATED)
    sentence = distiller.result_.components.final_fit.sentence()
    assert sentence.startswith("final fit on training + validation rows: ")
    assert f"shipped: {sentence}" in _closing_lines(distiller)
    text = distiller.generate_report(tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"<span id='final-fit'>{esc(sentence)}</span>" in text
    assert distiller.summary()["details"]["final_fit"]["rows"] == (
        distiller.result_.components.final_fit.rows)
