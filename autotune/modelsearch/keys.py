"""Config keys -> the chain model's parameters: which device of the model an alias is (by its name), and
how a physical config value (`threshold_db`, `release`, `attack_ms`, ...) maps onto the model's fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from autotune.dsp.chain import ChainParams
from autotune.errors import ConfigError
from autotune.vocabulary.keys import split_key
from autotune.vocabulary.roles import Role, device_role


def roles(device_names: Mapping[str, str]) -> dict[str, Role]:
    """alias -> which device of the model it is; the model knows Glue Compressor and Limiter only."""
    out: dict[str, Role] = {}
    for alias, name in device_names.items():
        role = device_role(name)
        if role is not None:
            out[alias] = role
        else:
            raise ConfigError(
                f"--sampler model knows Glue Compressor and Limiter only, not {name!r} ({alias}): "
                "use --sampler tpe"
            )
    return out


# config key base name -> (field of the device's params, factor from the key's canonical unit)
_GLUE: dict[str, tuple[str, float]] = {
    "threshold": ("threshold_db", 1.0),
    "ratio": ("ratio", 1.0),
    "attack": ("attack_ms", 1000.0),
    "release": ("release_s", 1.0),
    "makeup": ("makeup_db", 1.0),
    "range": ("range_db", 1.0),
    "dry_wet": ("dry_wet", 0.01),
}
_LIMITER: dict[str, tuple[str, float]] = {
    "gain": ("gain_db", 1.0),
    "input_gain": ("gain_db", 1.0),
    "ceiling": ("ceiling_db", 1.0),
    "release": ("release_ms", 1000.0),
    "release_time": ("release_ms", 1000.0),
    "lookahead": ("lookahead_ms", 1000.0),
}


def field_of(role: Role, key: str) -> tuple[str, float]:
    base, unit = split_key(key)
    table = _GLUE if role == "glue" else _LIMITER
    if base not in table:
        raise ConfigError(f"--sampler model does not model {role} parameter {key!r}: use --sampler tpe")
    name, factor = table[base]
    return name, unit.factor * factor


def check_keys(keys: Iterable[tuple[str, str]], device_roles: Mapping[str, Role]) -> None:
    for alias, key in keys:
        field_of(device_roles[alias], key)


def chain_params(
    values: Mapping[str, Mapping[str, float | None]], device_roles: Mapping[str, Role], base: ChainParams
) -> ChainParams:
    """The model's chain for config-keyed physical values (`{"glue": {"threshold_db": -20}}`) over `base`."""
    glue: dict[str, Any] = {}
    lim: dict[str, Any] = {}
    for alias, vals in values.items():
        role = device_roles[alias]
        for key, v in vals.items():
            name, factor = field_of(role, key)
            value = None if v is None else float(v) * factor
            if value is None and name != "release_s":
                continue
            (glue if role == "glue" else lim)[name] = value
    return ChainParams(
        glue=replace(base.glue, **glue), limiter=replace(base.limiter, **lim), fader_db=base.fader_db
    )
