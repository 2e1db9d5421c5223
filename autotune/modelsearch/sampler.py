"""The Optuna side of the model search: observations read from a study, and the sampler that places
trials where the model search proposes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from autotune.modelsearch.proposal import Observation, Proposal
from autotune.modelsearch.search import ModelSearch
from autotune.samplers import SpaceSampler
from autotune.storage import measured
from objectives import Dim


def observations(study: optuna.Study, space: Mapping[str, Dim]) -> list[Observation]:
    """Measured trials, whatever sampler or worker ran them (one killed after its receipt counts too)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if measured(t) and set(space) <= set(t.params):
            o = Observation.of({k: float(t.params[k]) for k in space}, t.user_attrs)
            if o is not None:
                out.append(o)
    return out


class ModelSampler(SpaceSampler):
    """Optuna sampler over the corrected chain model: trials stay ordinary trials of the study (storage,
    resume, several workers, the dashboard), only where they are placed comes from the model."""

    def __init__(self, search: ModelSearch, *, from_cache: bool = False) -> None:
        super().__init__(search.space, seed=search.seed)
        self.search = search
        #: The dry reference came from the cache: the first export checks that it still fits the song.
        self.from_cache = from_cache
        #: That check failed: a fresh reference is due before the next trial.
        self.stale = False
        self.proposals: dict[int, Proposal] = {}
        #: Under a true-peak limit: the true peak each proposal is expected to measure (its corrected
        #: sample peak plus the margin the exports so far showed), from the observations it was made with.
        self.true_peaks: dict[int, float] = {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        obs = observations(study, self.search.space)
        prop = self.search.propose(obs)
        if not trial.system_attrs.get("fixed_params"):
            # A queued run (--with-runs, a retried trial) sets its own values: only the parameters it leaves
            # open come from the model, and it is neither predicted nor judged as the model's setting.
            self.proposals[trial.number] = prop
            if self.search.true_peak_limit_dbtp is not None:
                self.true_peaks[trial.number] = prop.peak_db + self.search.true_peak_over(obs)
        return {k: v for k, v in prop.params.items() if k in search_space}


def same_setting(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(b[k])) for k in b)


def describe_params(flat: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in flat.items())
