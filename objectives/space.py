"""Search spaces over physical device parameters, named `<device alias>.<config key>` in Optuna."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import optuna

#: "glue.threshold_db" -> (low, high) in the key's physical unit
Space = Mapping[str, tuple[float, float]]


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
    names = list(space) if only is None else [n for n in space if n in set(only)]
    return unflatten({n: trial.suggest_float(n, *space[n]) for n in names})
