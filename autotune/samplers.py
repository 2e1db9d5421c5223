"""Sampler choice. `auto` prefers GPSampler (fewest exports on smooth, low-dimensional problems like this
one) but only when torch imports: GPSampler fails at its first model-based trial without it."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Literal

import optuna

from autotune.errors import ConfigError

SamplerName = Literal["auto", "tpe", "gp", "cmaes", "random"]
STARTUP_TRIALS = 5


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def make_sampler(name: SamplerName, seed: int | None = None) -> tuple[optuna.samplers.BaseSampler, str]:
    """(sampler, label). No seed unless asked: workers sharing one study must not draw the same points."""
    if name == "auto":
        name = "gp" if torch_available() else "tpe"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return (
                optuna.samplers.TPESampler(
                    n_startup_trials=STARTUP_TRIALS, seed=seed, multivariate=True, constant_liar=True
                ),
                "TPE",
            )
        if name == "gp":
            if not torch_available():
                raise ConfigError(
                    "--sampler gp needs torch (pip install torch); --sampler auto uses TPE without it"
                )
            return optuna.samplers.GPSampler(n_startup_trials=STARTUP_TRIALS, seed=seed), "GP"
        if name == "cmaes":
            if importlib.util.find_spec("cmaes") is None:
                raise ConfigError("--sampler cmaes needs the cmaes package (pip install cmaes)")
            return (
                optuna.samplers.CmaEsSampler(
                    n_startup_trials=STARTUP_TRIALS, seed=seed, warn_independent_sampling=False
                ),
                "CMA-ES",
            )
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed), "random"
    raise ConfigError(f"unknown sampler {name!r} (auto, tpe, gp, cmaes, random)")
