"""Sampler choice. `auto` is model-based search (`autotune.modelsearch`) whenever the chain is Glue
Compressor -> Limiter, which bench/efficiency.py shows needs the fewest exports; otherwise GPSampler when
torch imports (it fails at its first model-based trial without it), else TPE. `stepwise` is the original
design's Phase 1.4 loop, kept as the baseline the others are measured against."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from autotune.errors import ConfigError
from autotune.storage import measured
from autotune.vocabulary.keys import split_key
from objectives import Choice, Dim, Range
from objectives.limits import Limits, measurement

SamplerName = Literal["auto", "model", "tpe", "gp", "cmaes", "random", "stepwise"]
SAMPLERS: tuple[str, ...] = ("auto", "model", "tpe", "gp", "cmaes", "random", "stepwise")
STARTUP_TRIALS = 5


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def resolve_sampler(name: str, device_names: Mapping[str, str]) -> str:
    """`auto` -> `model` for a Glue Compressor -> Limiter chain, else `gp` with torch, else `tpe`."""
    if name != "auto":
        return name
    kinds = {n.lower() for n in device_names.values()}
    if kinds and all("glue" in k or "limiter" in k for k in kinds):
        return "model"
    return "gp" if torch_available() else "tpe"


def make_sampler(name: str, seed: int | None = None) -> tuple[optuna.samplers.BaseSampler, str]:
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
    raise ConfigError(f"unknown sampler {name!r} ({', '.join(SAMPLERS)})")


class SpaceSampler(optuna.samplers.BaseSampler):
    """A sampler that places every parameter of a known search space at once (Optuna's relative sampling)
    from what the study has measured; a parameter outside the space falls back to random sampling."""

    def __init__(self, space: Mapping[str, Dim], seed: int | None = 0) -> None:
        self.space = space
        self._fallback = optuna.samplers.RandomSampler(seed=seed)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {
            name: CategoricalDistribution(list(d.values))
            if isinstance(d, Choice)
            else FloatDistribution(d.low, d.high)
            for name, d in self.space.items()
        }

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)


class StepwiseSampler(SpaceSampler):
    """The original design's Phase 1.4 auto-adjustment, one export per step: peak over the limit ->
    limiter gain -1 dB; too quiet -> glue threshold -1, makeup +1, limiter gain +1 dB; too loud (which the
    original loop left stuck) -> the same steps reversed. Starts from `start`, steps stay inside the space."""

    def __init__(
        self,
        space: Mapping[str, Dim],
        start: Mapping[str, float],
        limits: Limits,
    ) -> None:
        super().__init__(space)
        self.start = dict(start)
        self.limits = limits
        self.target, self.tolerance = limits.target_lufs, limits.tolerance

    def _role(self, name: str) -> str:
        base = split_key(name.split(".", 1)[1])[0]
        return {"threshold": "threshold", "makeup": "makeup", "gain": "gain", "input_gain": "gain"}.get(
            base, ""
        )

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        done = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
            if measured(t) and measurement(t.user_attrs) is not None and set(self.space) <= set(t.params)
        ]
        if not done:
            return {k: v for k, v in self.start.items() if k in search_space}
        last = max(done, key=lambda t: t.number)
        m = measurement(last.user_attrs)
        assert m is not None
        lufs, peak, tp = m
        steps = {"threshold": 0.0, "makeup": 0.0, "gain": 0.0}
        if self.limits.peak_over_db(peak, tp) > 0.0:
            steps["gain"] = -1.0
        elif lufs < self.target - self.tolerance:
            steps = {"threshold": -1.0, "makeup": 1.0, "gain": 1.0}
        elif lufs > self.target + self.tolerance:
            steps = {"threshold": 1.0, "makeup": -1.0, "gain": -1.0}
        out: dict[str, Any] = {}
        for name, dim in self.space.items():
            v = float(last.params[name])
            if isinstance(dim, Range):
                v = min(dim.high, max(dim.low, v + steps.get(self._role(name), 0.0)))
            out[name] = v
        return {k: v for k, v in out.items() if k in search_space}


def stepwise_start(space: Mapping[str, Dim], runs: list[dict[str, float]]) -> dict[str, float]:
    """Where the stepwise loop starts: the config's first run where it sets a parameter, else the middle
    of each range (a ceiling at the top of its range: it sits just under the peak limit)."""
    first = runs[0] if runs else {}
    out: dict[str, float] = {}
    for name, dim in space.items():
        if name in first and dim.contains(first[name]):
            out[name] = first[name]
        elif isinstance(dim, Choice):
            out[name] = dim.values[0]
        elif split_key(name.split(".", 1)[1])[0] == "ceiling":
            out[name] = dim.high
        else:
            out[name] = (dim.low + dim.high) / 2
    return out
