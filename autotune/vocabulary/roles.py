"""Which device of the chain model a Live device is: its role, told by the name the config gives it.

The chain state, the doctor and the model search each need to know which configured alias is the Glue
Compressor and which the Limiter; deciding it in one place keeps them from disagreeing about a device
such as "Glue Compressor 2" or "My Limiter".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Role = Literal["glue", "limiter"]

#: The Live device each role is (as Live names it), for messages about it.
DEVICE: dict[Role, str] = {"glue": "Glue Compressor", "limiter": "Limiter"}


def device_role(name: str) -> Role | None:
    """Which device of the model a Live device name is (None: one the model does not know)."""
    n = name.lower()
    return "glue" if "glue" in n else "limiter" if "limiter" in n else None


def device_roles(device_names: Mapping[str, str]) -> dict[str, Role]:
    """alias -> role for the configured devices the model knows; the others (EQ Eight, Utility) are left
    out, and whoever needs every device modelled says so itself."""
    out: dict[str, Role] = {}
    for alias, name in device_names.items():
        role = device_role(name)
        if role is not None:
            out[alias] = role
    return out
