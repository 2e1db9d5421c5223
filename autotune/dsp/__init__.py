"""Pure, seeded audio physics shared by the virtual Live (rendering) and model-based search (prediction).

Nothing in here imports the rest of the project: the same functions must give the same numbers whether
they run inside the virtual Live's UDP server or inside an optimiser predicting an export offline.
`Physics` (with the plant presets in `PHYSICS`) and the songs in `SONGS` let a benchmark render on
physics and music the optimiser's model was not built from.
"""

from autotune.dsp.chain import PHYSICS, ChainParams, GlueParams, LimiterParams, Physics, render
from autotune.dsp.demo import SONGS, DemoSpec, demo_track

__all__ = [
    "PHYSICS",
    "SONGS",
    "ChainParams",
    "DemoSpec",
    "GlueParams",
    "LimiterParams",
    "Physics",
    "demo_track",
    "render",
]
