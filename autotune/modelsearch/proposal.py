"""What the model search works with: its constants, a measured export (`Observation`), the bare model's
prediction, and a proposal (the setting to export next, with what the corrected model expects of it)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import optuna
from numpy.typing import NDArray

from objectives.limits import measurement

#: unit-cube position -> (LUFS correction, peak correction, distance to the nearest measured setting)
Correct = Callable[[NDArray[np.float64]], tuple[float, float, float]]
optuna.logging.set_verbosity(optuna.logging.WARNING)  # offline studies: hundreds of model trials, not news

#: The model keeps the limiter's output this far under the peak limit (the plant may differ a little).
PEAK_SAFETY_DB = 0.1
#: Points of the quasi-random (Sobol) design per offline proposal, before the coordinate polish.
OFFLINE_TRIALS = 32
#: Points of the design over the knobs other than gains and ceiling, for the first proposal.
FIRST_DESIGN = 8
#: Misses this small count nothing in the offline score (far inside any tolerance).
DEAD_ZONE_LU = 0.05
#: What proposing a setting already measured costs in the offline score (in LU).
REPEAT_PENALTY = 0.3
#: An export peaking this close to 0 dBFS has clipped (a fixed-point WAV cannot hold more).
CLIPPED_DBFS = -0.05
#: What a clipped export's gain after the chain is assumed to exceed its visible part by.
CLIPPED_EXTRA_DB = 3.0
#: Gain after the chain that an earlier study's export must show before this study's ceiling allows for it.
PRIOR_AFTER_CHAIN_DB = 0.3
#: A Limiter in True Peak mode holds the true peak at its ceiling, but only as well as its own oversampled
#: detector sees it: a little margin for the difference from the BS.1770 meter's.
TRUE_PEAK_MODE_ALLOWANCE_DB = 0.1
#: Kernel width of the residual correction, in units of each dimension's range.
KERNEL_WIDTH = 0.25


@dataclass(frozen=True)
class Observation:
    params: dict[str, float]  # flat Optuna names -> values
    lufs: float
    peak_db: float
    #: The export's true peak (dBTP); NaN when not measured.
    true_peak_db: float = math.nan

    @classmethod
    def of(cls, params: Mapping[str, float], values: Mapping[str, Any]) -> Observation | None:
        """The observation a receipt's results or a trial's user attributes hold (None without a
        measurement). A true peak not recorded stays NaN rather than the sample peak, so it never counts
        as a measured margin of 0 dB over the sample peak."""
        m = measurement(values)
        if m is None:
            return None
        tp = values.get("true_peak_dbtp")
        return cls(dict(params), m[0], m[1], float(tp) if isinstance(tp, (int, float)) else math.nan)


@dataclass(frozen=True)
class Prediction:
    lufs: float
    peak_db: float
    effort_db: float


@dataclass(frozen=True)
class Proposal:
    params: dict[str, float]
    model: Prediction  # what the bare model says
    lufs: float  # corrected
    peak_db: float  # corrected
    reachable: bool
    exports_used: int
    #: How the setting was chosen: "model" (the model alone), "scaled" (the model with its processing
    #: cost scaled to the exports), "secant"/"bisect" (a step along the drive line; all three see
    #: autotune.drive), "end" (an end of that line), "offline" (the kernel-corrected model, for --refine
    #: or a space without gains), "exhausted" (the end of the line is measured and misses).
    how: str = "model"
    #: Set when the end of the drive line in the direction of the shortfall has been exported and still
    #: misses by more than the tolerance: the physics, not the model, says the target is out of reach.
    verdict: Literal["louder", "quieter"] | None = None

    @property
    def correction_lu(self) -> float:
        return self.lufs - self.model.lufs

    def describe(self) -> str:
        corr = (
            f" (model {self.model.lufs:+.2f}, corrected by {self.correction_lu:+.2f} LU from "
            f"{self.exports_used} export{'s' if self.exports_used != 1 else ''}; {self.how} step)"
            if self.exports_used
            else ""
        )
        return f"predicts {self.lufs:.2f} LUFS, peak {self.peak_db:.2f} dBFS{corr}"
