"""MetaTemperatureScheduler reacts to measured feedback."""

from __future__ import annotations

import math

from hpmkd.components.temperature import MetaTemperatureScheduler


def test_without_comparable_feedback_it_cycles_the_grid_and_says_so():
    s = MetaTemperatureScheduler((1.0, 2.0, 4.0))
    first = s.suggest("lgbm")
    assert first.temperature == 1.0 and "no comparable feedback" in first.reason
    # Different configurations at different temperatures are not a comparison.
    s.observe("lgbm", 1.0, 0.70, "small", 0.5, "trial 0")
    s.observe("lgbm", 2.0, 0.75, "small", 0.9, "trial 0")
    s.observe("lgbm", 4.0, 0.80, "small", 0.5, "trial 1")
    assert s.feedback("lgbm") == {}
    assert [s.suggest("lgbm").temperature for _ in range(2)] == [2.0, 4.0]


def test_alpha_and_trial_effects_are_not_credited_to_temperature():
    s = MetaTemperatureScheduler((1.0, 2.0, 4.0))
    # Within each identical configuration T=1 is best; alpha 0.9 and trial 1 score higher
    # overall and happened to run at higher temperatures.
    for alpha, params, base, temps in (
        (0.5, "trial 0", 0.60, (1.0, 2.0)),
        (0.9, "trial 1", 0.90, (2.0, 4.0)),
    ):
        for t in temps:
            s.observe("lgbm", t, base - 0.05 * (t != temps[0]), "small", alpha, params)
    feedback = s.feedback("lgbm")
    assert feedback[1.0] > feedback[4.0]
    assert s.suggest("lgbm").temperature <= 2.0


def test_effects_within_the_noise_fall_back_to_the_grid():
    s = MetaTemperatureScheduler((1.0, 2.0, 4.0), noise=0.02)
    for t, score in [(1.0, 0.700), (2.0, 0.705), (4.0, 0.710)]:
        s.observe("tree", t, score, "small", 0.5, "sweep")
    decision = s.suggest("tree")
    assert "no signal" in decision.reason and decision.temperature == 1.0
    loud = MetaTemperatureScheduler((1.0, 2.0, 4.0), noise=0.001)
    for t, score in [(1.0, 0.700), (2.0, 0.705), (4.0, 0.710)]:
        loud.observe("tree", t, score, "small", 0.5, "sweep")
    assert "no signal" not in loud.suggest("tree").reason


def test_alpha_zero_carries_no_temperature_information():
    s = MetaTemperatureScheduler((1.0, 2.0))
    s.observe("tree", 1.0, 0.6, "small", 0.0, "x")
    s.observe("tree", 2.0, 0.9, "small", 0.0, "x")
    assert s.feedback() == {}


def test_suggestion_follows_the_feedback():
    high = MetaTemperatureScheduler((1.0, 2.0, 4.0))
    for t, score in [(1.0, 0.60), (2.0, 0.66), (4.0, 0.70)]:
        high.observe("tree", t, score)
    low = MetaTemperatureScheduler((1.0, 2.0, 4.0))
    for t, score in [(1.0, 0.70), (2.0, 0.66), (4.0, 0.60)]:
        low.observe("tree", t, score)
    t_high = high.suggest("tree").temperature
    t_low = low.suggest("tree").temperature
    # Rising scores push the temperature up, falling scores pull it down.
    assert t_high >= 4.0
    assert t_low <= 1.0
    assert t_high > t_low


def test_interior_peak_is_found_by_the_quadratic_fit():
    s = MetaTemperatureScheduler((1.0, 2.0, 4.0, 8.0))
    for t in (1.0, 2.0, 4.0, 8.0):
        s.observe("lgbm", t, 0.8 - 0.05 * (math.log(t) - math.log(3.0)) ** 2)
    decision = s.suggest("lgbm")
    assert 2.0 < decision.temperature < 4.5
    assert "quadratic" in decision.reason
    assert set(decision.feedback) == {1.0, 2.0, 4.0, 8.0}


def test_family_specific_feedback_wins_once_there_is_enough():
    s = MetaTemperatureScheduler((1.0, 2.0, 4.0))
    for t, score in [(1.0, 0.9), (2.0, 0.8), (4.0, 0.7)]:
        s.observe("logreg", t, score)
    for t, score in [(1.0, 0.5), (2.0, 0.6), (4.0, 0.7)]:
        s.observe("lgbm", t, score)
    assert s.suggest("logreg").temperature < s.suggest("lgbm").temperature


def test_nan_feedback_is_ignored_and_fixed_mode_cycles():
    s = MetaTemperatureScheduler((1.0, 3.0), adaptive=False)
    s.observe("tree", 1.0, float("nan"))
    assert s.feedback() == {}
    assert [s.suggest("tree").temperature for _ in range(3)] == [1.0, 3.0, 1.0]
    assert "fixed" in s.suggest("tree").reason


def test_capacity_gains_are_not_mistaken_for_temperature_gains():
    s = MetaTemperatureScheduler((1.0, 2.0, 4.0))
    # Within each capacity the lowest temperature wins; the large capacity scores higher
    # overall and happened to be measured at higher temperatures.
    for cap, base in (("small", 0.6), ("large", 0.9)):
        for t, drop in ((1.0, 0.0), (2.0, 0.01), (4.0, 0.03)):
            s.observe("lgbm", t if cap == "small" else t * 2, base - drop, cap)
    decision = s.suggest("lgbm")
    assert decision.temperature <= 2.0
    # Groups with one measurement carry no temperature information.
    lone = MetaTemperatureScheduler((1.0, 2.0, 4.0))
    for cap, t, score in (("small", 1.0, 0.6), ("medium", 2.0, 0.8), ("large", 4.0, 0.9)):
        lone.observe("lgbm", t, score, cap)
    assert lone.feedback("lgbm") == {}
    assert "no comparable feedback" in lone.suggest("lgbm").reason
