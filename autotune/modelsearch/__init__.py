"""Model-based search: predict exports from a dry reference, correct the model by real exports.

One export with the devices switched off gives the chain's input (`reference`). The chain model
(`autotune.dsp.model`) then predicts the loudness and peak of any setting in milliseconds (`search`); the first
trial is the gentlest setting it puts on target, and every later one a safeguarded secant step along the
chain's drive line (`autotune.drive`), which converges whatever the model's errors; `peaks` keeps the ceiling
safe, `offline` serves --refine and spaces without gains, `sampler` is the Optuna side, `keys` maps config
keys onto the model's parameters.

The package's modules, in the order they import each other: keys, reference, proposal, peaks and offline,
search, sampler. This module re-exports what the rest of autotune uses.
"""

from autotune.modelsearch.keys import chain_params, check_keys, roles
from autotune.modelsearch.offline import sobol_design
from autotune.modelsearch.proposal import Observation, Prediction, Proposal
from autotune.modelsearch.reference import (
    Prior,
    ReferenceCache,
    features,
    features_of_file,
    fingerprint,
    gated_lufs,
)
from autotune.modelsearch.sampler import ModelSampler, describe_params, observations, same_setting
from autotune.modelsearch.search import ModelSearch
from autotune.vocabulary.roles import Role

__all__ = [
    "ModelSampler",
    "ModelSearch",
    "Observation",
    "Prediction",
    "Prior",
    "Proposal",
    "ReferenceCache",
    "Role",
    "chain_params",
    "check_keys",
    "describe_params",
    "features",
    "features_of_file",
    "fingerprint",
    "gated_lufs",
    "observations",
    "roles",
    "same_setting",
    "sobol_design",
]
