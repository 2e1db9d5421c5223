"""Pure loss functions and search spaces: no I/O, testable with `optuna.trial.FixedTrial`."""

from objectives.loss import PEAK_WEIGHT, loss, peak_violation
from objectives.space import Choice, Dim, Range, Space, flatten, param_name, suggest, unflatten

__all__ = [
    "PEAK_WEIGHT",
    "Choice",
    "Dim",
    "Range",
    "Space",
    "flatten",
    "loss",
    "param_name",
    "peak_violation",
    "suggest",
    "unflatten",
]
