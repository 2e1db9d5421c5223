"""Pure, seeded audio physics shared by the virtual Live (rendering) and model-based search (prediction).

Nothing in here imports the rest of the project: the same functions must give the same numbers whether
they run inside the virtual Live's UDP server or inside an optimiser predicting an export offline.
"""

from autotune.dsp.chain import ChainParams, GlueParams, LimiterParams, render
from autotune.dsp.demo import DemoSpec, demo_track

__all__ = ["ChainParams", "DemoSpec", "GlueParams", "LimiterParams", "demo_track", "render"]
