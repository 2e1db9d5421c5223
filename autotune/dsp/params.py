"""The master chain's parameters and physics, apart from the functions that render with them.

`GlueParams`, `LimiterParams` and `ChainParams` are what a trial sets on the devices; `Physics` (and the
plant presets in `PHYSICS`) is how the devices behave beyond those knobs. They are plain frozen
dataclasses that most of the project imports (the chain state, the model search, the virtual Live)
without needing the rendering code in `autotune.dsp.chain`, which re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

GLUE_KNEE_DB = 6.0


@dataclass(frozen=True)
class Physics:
    """How a compressor and limiter behave beyond their parameters: the model's defaults, or a plant's.

    The defaults reproduce the model bit for bit; a plant changes only what a real device could plausibly
    hide behind the same knob positions.
    """

    name: str = "model"
    #: Width of the Glue's soft knee (dB), centred on the threshold.
    glue_knee_db: float = GLUE_KNEE_DB
    #: "peak": block peak of the louder channel. "rms": stereo-linked mean square over `glue_rms_ms`,
    #: calibrated so a sine reads its peak level (an RMS detector reacts less to drum transients).
    glue_detector: Literal["peak", "rms"] = "peak"
    glue_rms_ms: float = 10.0
    #: Real time constants (Glue attack and release, Limiter release) relative to the labelled ones:
    #: hardware labels are nominal, and one maker's "10 ms" is another's 5.
    time_scale: float = 1.0
    #: "exponential": fixed release. "program": two-stage auto release, where gain reduction that lasts
    #: (its mean over `PROGRAM_WINDOW_MS`) recovers `PROGRAM_SLOW_FACTOR` times slower than short peaks.
    limiter_release: Literal["exponential", "program"] = "exponential"
    #: Output-stage saturation of the Glue's wet signal, y = tanh(d x) / d: unity gain for small signals,
    #: a fraction of a dB off loud peaks (0 = clean).
    saturation_drive: float = 0.0

    def __post_init__(self) -> None:
        # Presets may come from a benchmark's config file: a misspelt mode must not silently mean the default.
        if self.glue_detector not in ("peak", "rms"):
            raise ValueError(f"glue_detector must be 'peak' or 'rms', not {self.glue_detector!r}")
        if self.limiter_release not in ("exponential", "program"):
            raise ValueError(
                f"limiter_release must be 'exponential' or 'program', not {self.limiter_release!r}"
            )
        if (
            self.glue_knee_db < 0
            or self.glue_rms_ms <= 0
            or self.time_scale <= 0
            or self.saturation_drive < 0
        ):
            raise ValueError(f"physics out of range: {self}")


#: Program-dependent limiter release: window of the sustained gain reduction and how much slower it recovers.
PROGRAM_WINDOW_MS = 10.0
PROGRAM_SLOW_FACTOR = 3.0
#: Base release of the Limiter's Auto mode, which is program dependent (the two-stage release above).
LIMITER_AUTO_RELEASE_MS = 100.0

PHYSICS: dict[str, Physics] = {
    "model": Physics(),
    # Soft and smooth: wide knee, RMS detection, auto-release limiter, audible output-stage colour.
    "vintage": Physics(
        name="vintage",
        glue_knee_db=10.0,
        glue_detector="rms",
        limiter_release="program",
        saturation_drive=0.5,
    ),
    # Hard and fast: narrow knee, time constants half the labelled ones on both devices, no colour.
    "punchy": Physics(name="punchy", glue_knee_db=2.0, time_scale=0.5),
}


@dataclass(frozen=True)
class GlueParams:
    on: bool = True
    threshold_db: float = 0.0
    ratio: float = 2.0
    attack_ms: float = 10.0
    release_s: float | None = 0.4  # None = Auto
    makeup_db: float = 0.0
    range_db: float = 70.0
    dry_wet: float = 1.0
    peak_clip: bool = False


@dataclass(frozen=True)
class LimiterParams:
    on: bool = True
    gain_db: float = 0.0
    ceiling_db: float = -0.3
    release_ms: float = 300.0
    lookahead_ms: float = 3.0
    mode: Literal["standard", "soft_clip", "true_peak"] = "standard"
    #: Live's Limiter `Auto`: the device sets its release from the signal, and `release_ms` does not act.
    auto_release: bool = False

    @property
    def effective_release_ms(self) -> float:
        return LIMITER_AUTO_RELEASE_MS if self.auto_release else self.release_ms


@dataclass(frozen=True)
class ChainParams:
    glue: GlueParams = field(default_factory=GlueParams)
    limiter: LimiterParams = field(default_factory=LimiterParams)
    fader_db: float = 0.0
