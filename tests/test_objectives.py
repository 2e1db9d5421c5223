"""Loss and search spaces are pure: tested with optuna.trial.FixedTrial, no Live, no audio."""

from __future__ import annotations

import optuna
import pytest

from objectives import (
    PEAK_WEIGHT,
    Choice,
    Range,
    flatten,
    loss,
    param_name,
    peak_violation,
    suggest,
    unflatten,
)


def test_loss_is_the_lufs_gap_plus_weighted_peak_overshoot() -> None:
    assert loss(-12.0, -6.5, -10.5, -6.0) == pytest.approx(1.5)
    assert loss(-9.0, -6.5, -10.5, -6.0) == pytest.approx(1.5)  # too loud costs the same as too quiet
    assert loss(-10.5, -5.0, -10.5, -6.0) == pytest.approx(PEAK_WEIGHT * 1.0)
    assert peak_violation(-6.5, -6.0) == 0.0 and peak_violation(-5.5, -6.0) == pytest.approx(0.5)


def test_loss_never_buys_loudness_with_peak_overshoot() -> None:
    # One dB closer to the target but one dB over the limit must be worse.
    assert loss(-11.0, -5.0, -10.5, -6.0) > loss(-12.0, -6.0, -10.5, -6.0)


def test_suggest_with_fixed_trial_returns_physical_values_by_device() -> None:
    space = {
        "glue.threshold_db": Range(-40.0, 0.0),
        "limiter.gain_db": Range(-24.0, 36.0),
        "limiter.ceiling_db": Range(-24.0, 0.0),
    }
    trial = optuna.trial.FixedTrial({"glue.threshold_db": -30.0, "limiter.gain_db": 28.0})
    assert suggest(trial, space, only=["glue.threshold_db", "limiter.gain_db"]) == {
        "glue": {"threshold_db": -30.0},
        "limiter": {"gain_db": 28.0},
    }
    with pytest.raises(ValueError):  # FixedTrial without a value for a parameter of the space
        suggest(trial, space)


def test_flatten_round_trip() -> None:
    params = {"glue": {"threshold_db": -30.0, "makeup_db": 15.0}, "limiter": {"gain_db": 28.0}}
    flat = flatten(params)
    assert flat == {"glue.threshold_db": -30.0, "glue.makeup_db": 15.0, "limiter.gain_db": 28.0}
    assert unflatten(flat) == params
    assert param_name("utility", "gain_db") == "utility.gain_db"


def test_stepped_parameters_are_categorical() -> None:
    space = {"glue.ratio": Choice((2.0, 4.0, 10.0)), "glue.threshold_db": Range(-40.0, 0.0)}
    assert suggest(optuna.trial.FixedTrial({"glue.ratio": 10.0, "glue.threshold_db": -12.5}), space) == {
        "glue": {"ratio": 10.0, "threshold_db": -12.5}
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = {suggest(study.ask(), space)["glue"]["ratio"] for _ in range(30)}
    assert seen == {2.0, 4.0, 10.0}
    assert Choice((2.0, 4.0)).contains(4.0) and not Choice((2.0, 4.0)).contains(3.0)
    with pytest.raises(ValueError):
        Range(1.0, 1.0)
