"""Search spaces over physical device parameters, named `<device alias>.<config key>` in Optuna.

A dimension is a `Range` (continuous, in the key's unit) or a `Choice` among the values a stepped
parameter can show (Glue's ratio 2/4/10): asking a stepped parameter for 3.0 would only be refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import optuna


@dataclass(frozen=True)
class Range:
    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"empty range {self.low:g} .. {self.high:g}")

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def describe(self) -> str:
        return f"{self.low:g} .. {self.high:g}"


@dataclass(frozen=True)
class Choice:
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a choice needs at least one value")

    def contains(self, value: float) -> bool:
        return any(abs(v - value) <= 1e-9 * max(1.0, abs(v)) for v in self.values)

    def describe(self) -> str:
        return "{" + ", ".join(f"{v:g}" for v in self.values) + "}"


Dim = Range | Choice
#: "glue.threshold_db" -> its dimension
Space = Mapping[str, Dim]


def param_name(alias: str, key: str) -> str:
    return f"{alias}.{key}"


def flatten(params: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {param_name(alias, k): float(v) for alias, values in params.items() for k, v in values.items()}


def unflatten(flat: Mapping[str, float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, v in flat.items():
        alias, key = name.split(".", 1)
        out.setdefault(alias, {})[key] = float(v)
    return out


def suggest(
    trial: optuna.Trial, space: Space, only: Iterable[str] | None = None
) -> dict[str, dict[str, float]]:
    """Ask the trial for each parameter of `space` (or the named subset), in the space's order."""
    wanted = None if only is None else set(only)
    values: dict[str, float] = {}
    for name, dim in space.items():
        if wanted is not None and name not in wanted:
            continue
        if isinstance(dim, Choice):
            values[name] = float(trial.suggest_categorical(name, list(dim.values)))
        else:
            values[name] = trial.suggest_float(name, dim.low, dim.high)
    return unflatten(values)
