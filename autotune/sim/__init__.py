"""The virtual Live backend: only imported when the user picks `--backend sim` or `--export sim`.

The package's names load lazily, so `autotune.sim.presets` (the preset names the settings validate against)
can be imported without the UDP server, the OSC client or any plant's DSP.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autotune.sim.exporter import SimExporter
    from autotune.sim.liveset import SimSong
    from autotune.sim.plants import Stress
    from autotune.sim.server import SimOptions, VirtualLive

__all__ = ["SimExporter", "SimOptions", "SimSong", "Stress", "VirtualLive"]

_WHERE = {
    "SimExporter": "autotune.sim.exporter",
    "SimOptions": "autotune.sim.server",
    "SimSong": "autotune.sim.liveset",
    "Stress": "autotune.sim.plants",
    "VirtualLive": "autotune.sim.server",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'autotune.sim' has no attribute {name!r}")
