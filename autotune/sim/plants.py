"""The virtual Live's plants: what renders an export from the chain's settings.

A plant takes the chain's switched-on devices (`SimSong.stages()`, already read in Live's conventions) and
the fader gain after them, and renders the song through them. Two kinds:

- `DspPlant`: `autotune.dsp`'s devices with a `Physics` preset: the model's own physics ("model") or the
  project's plant variants ("vintage", "punchy"). With no stress and Link on it gives exactly what
  `autotune.dsp.chain.render_stages` gives.
- `PedalboardPlant` ("pedalboard"): DSP we did not write, Spotify's pedalboard wrapping JUCE's
  `dsp::Compressor` and `dsp::Limiter`, behind the same Live parameter tables. See its docstring for how
  every Live parameter maps onto JUCE's (and what JUCE does not have).

`Stress` makes any plant disagree with the model on purpose, for the benchmark: an input calibration offset,
a drive slope on the gains, and a gain after the chain that OSC cannot see.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from autotune.dsp import PHYSICS, GlueParams, LimiterParams, Physics
from autotune.dsp.chain import LIMITER_AUTO_RELEASE_MS, db_to_lin, glue_compressor, limiter
from autotune.errors import ConfigError
from autotune.sim.liveset import GLUE_RANGE_DB, SimStage
from autotune.sim.presets import PHYSICS_NAMES

Audio = NDArray[np.float64]

PEDALBOARD = "pedalboard"


@dataclass(frozen=True)
class Stress:
    """Ways a plant deliberately disagrees with what the model can know (all neutral by default).

    - `input_offset_db`: the devices' input calibration. While the Glue or the Limiter is switched on, the
      chain's input is this much hotter (or, negative, quieter) than the track's signal, as if the devices'
      0 dB reference were not the model's. A dry reference (both devices off) does not see it, and OSC
      shows nothing of it.
    - `drive_slope`: the Glue's Makeup and the Limiter's Gain act as this multiple of the dB they display
      (0.5: half as much as shown; 2: twice), so the plant's sensitivity to drive differs from the model's.
    - `post_gain_db`: gain after the chain and its fader, in every export including the dry reference:
      a master fader at +3 dB behind a chain on a bus track, which stock AbletonOSC can neither read nor set.
    """

    input_offset_db: float = 0.0
    drive_slope: float = 1.0
    post_gain_db: float = 0.0

    def __post_init__(self) -> None:
        values = (self.input_offset_db, self.drive_slope, self.post_gain_db)
        if not all(math.isfinite(v) for v in values) or self.drive_slope <= 0:
            raise ValueError(f"stress out of range: {self}")

    @property
    def neutral(self) -> bool:
        return self == Stress()

    def describe(self) -> str:
        parts = []
        if self.input_offset_db:
            parts.append(f"input offset {self.input_offset_db:+g} dB")
        if self.drive_slope != 1.0:
            parts.append(f"drive slope x{self.drive_slope:g}")
        if self.post_gain_db:
            parts.append(f"{self.post_gain_db:+g} dB after the chain")
        return ", ".join(parts) or "none"


class Devices(Protocol):
    """One plant's Glue Compressor and Limiter (float64 (frames, channels) audio in and out)."""

    name: str

    def glue(self, x: Audio, sr: int, p: GlueParams) -> Audio: ...

    def limiter(self, x: Audio, sr: int, p: LimiterParams, link: bool) -> Audio: ...


class Plant:
    """Renders the chain: input offset, then the devices in their order on the track, then the faders."""

    def __init__(self, devices: Devices) -> None:
        self.devices = devices

    @property
    def name(self) -> str:
        return self.devices.name

    def render(
        self,
        source: NDArray[np.floating[Any]],
        sr: int,
        stages: tuple[SimStage, ...],
        fader_db: float = 0.0,
        stress: Stress = Stress(),
    ) -> Audio:
        x = np.asarray(source, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if stress.input_offset_db != 0.0 and any(kind != "gain" for kind, _ in stages):
            x = x * db_to_lin(stress.input_offset_db)
        slope = stress.drive_slope
        for stage in stages:
            if stage[0] == "gain":
                x = x * db_to_lin(stage[1])
            elif stage[0] == "glue":
                g = stage[1]
                x = self.devices.glue(x, sr, g if slope == 1.0 else replace(g, makeup_db=g.makeup_db * slope))
            else:
                lim = stage[1]
                lim = lim if slope == 1.0 else replace(lim, gain_db=lim.gain_db * slope)
                x = self.devices.limiter(x, sr, lim, stage[0] == "limiter")
        after = fader_db + stress.post_gain_db
        if after != 0.0:
            x = x * db_to_lin(after)
        return x


class DspPlant:
    """The project's own devices (`autotune.dsp`) with a `Physics` preset."""

    def __init__(self, physics: Physics) -> None:
        self.physics = physics
        self.name = physics.name

    def glue(self, x: Audio, sr: int, p: GlueParams) -> Audio:
        return glue_compressor(x, sr, p, self.physics)

    def limiter(self, x: Audio, sr: int, p: LimiterParams, link: bool) -> Audio:
        if link or x.shape[1] == 1:
            return limiter(x, sr, p, self.physics)
        # L/R mode: each channel limited on its own.
        return np.concatenate([limiter(x[:, [c]], sr, p, self.physics) for c in range(x.shape[1])], axis=1)


#: Glue's "Auto" release on JUCE's one-time-constant compressor: Live's Auto is two-stage (a fast release for
#: transients, a slow one for sustained reduction); 0.35 s is the geometric mean of the Glue's fastest and
#: slowest numbered steps (0.1 s and 1.2 s), neither fast nor slow, and not the model's 0.3 s.
PEDALBOARD_GLUE_AUTO_RELEASE_S = 0.35
#: Limiter `Auto` on JUCE's one-release limiter: Live's Auto base release (what the model assumes for it).
PEDALBOARD_LIMITER_AUTO_RELEASE_MS = LIMITER_AUTO_RELEASE_MS
#: JUCE's Limiter threshold. JUCE's limiter is a fixed 4:1 compressor above -10 dBFS (2 ms attack, 200 ms
#: release), a 1000:1 stage at the threshold (with the release given), an automatic makeup of 3.75 dB minus
#: the threshold, and a hard clip at 0 dBFS: its output peaks land at 0 dBFS whatever the threshold, which
#: only adds drive. At 0 dB the 1000:1 stage limits at 0 dBFS and only JUCE's fixed 3.75 dB makeup is added
#: (so at Gain 0 dB the plant is already louder than its input); Live's Gain does the rest of the driving.
#: In practice the fixed first stage and the clip do most of the work: the Release acts only at high drive.
PEDALBOARD_LIMITER_THRESHOLD_DB = 0.0
#: Glue's Soft Clip: "the Glue's output never exceeds -0.5 dB" (Live's manual), as a tanh waveshaper.
SOFT_CLIP_DB = -0.5
#: Samples quieter than this carry no usable compressor gain (JUCE's gain is read back as output / input).
_GAIN_FLOOR = 1e-5


def _load_pedalboard() -> Any:
    try:
        return importlib.import_module("pedalboard")
    except ImportError:
        raise ConfigError(
            "physics pedalboard needs Spotify's pedalboard package: pip install pedalboard"
        ) from None


def pedalboard_available() -> bool:
    try:
        _load_pedalboard()
    except ConfigError:
        return False
    return True


class PedalboardDevices:
    """Live's Glue Compressor and Limiter parameters on JUCE's DSP (through pedalboard).

    Glue Compressor -> `pedalboard.Compressor` (JUCE `dsp::Compressor`: hard knee, peak ballistics, each
    channel on its own): Threshold, Ratio, Attack and Release map 1:1 (ms); Release "Auto" is
    `PEDALBOARD_GLUE_AUTO_RELEASE_S`. Makeup is a `pedalboard.Gain` after it; Dry/Wet mixes that with the
    device's input (JUCE's compressor has no latency, so the mix is aligned). Range has no JUCE counterpart:
    JUCE's compressor is a VCA (output = gain x input per sample), so its gain is read back as output / input
    where the input is not near silence, capped at the Range shown (0 dB: no compression at all), and
    applied again; at -70 dB (more than a Glue can reduce) JUCE's output is used untouched. Soft Clip
    (`Peak Clip In`) is a tanh waveshaper with the output never above -0.5 dB (`pedalboard.Distortion` at
    0 dB drive between two `pedalboard.Gain`s), on the device's output.

    Limiter -> `pedalboard.Gain(Gain)` -> `pedalboard.Limiter` (JUCE `dsp::Limiter`, threshold
    `PEDALBOARD_LIMITER_THRESHOLD_DB`, release = the Release shown, or `PEDALBOARD_LIMITER_AUTO_RELEASE_MS`
    with Auto on) -> a gain of Ceiling dB. JUCE's limiter normalises its peaks to 0 dBFS (and hard clips
    there), so the ceiling is a gain after it: the output sample peak never exceeds the Ceiling, as in Live.
    JUCE has no look-ahead, no stereo link (each channel is always limited on its own, Link or not) and no
    Soft Clip or True Peak mode (every Mode acts as Standard: a sample-peak ceiling).
    """

    name = PEDALBOARD

    def __init__(self) -> None:
        self.pb = _load_pedalboard()

    def _run(self, plugins: list[Any], x: Audio, sr: int) -> Audio:
        board = self.pb.Pedalboard(plugins)
        y = board(np.ascontiguousarray(x.T, dtype=np.float32), float(sr))
        return np.asarray(y, dtype=np.float64).T

    def glue(self, x: Audio, sr: int, p: GlueParams) -> Audio:
        pb = self.pb
        if p.range_db <= 0.0:
            compressed = x  # Range 0 dB: no compression occurs
        else:
            release_s = PEDALBOARD_GLUE_AUTO_RELEASE_S if p.release_s is None else p.release_s
            comp = pb.Compressor(
                threshold_db=float(p.threshold_db),
                ratio=float(p.ratio),
                attack_ms=float(p.attack_ms),
                release_ms=float(release_s * 1000.0),
            )
            compressed = self._run([comp], x, sr)
            if p.range_db < GLUE_RANGE_DB:
                compressed = _cap_reduction(x, compressed, p.range_db)
        wet = self._run([pb.Gain(gain_db=float(p.makeup_db))], compressed, sr) if p.makeup_db else compressed
        out = wet if p.dry_wet >= 1.0 else p.dry_wet * wet + (1.0 - p.dry_wet) * x
        if p.peak_clip:
            # L tanh(x / L) with L at -0.5 dB; the last gain in float64, so no float32 rounding tops L.
            shaped = self._run([pb.Gain(gain_db=-SOFT_CLIP_DB), pb.Distortion(drive_db=0.0)], out, sr)
            out = np.clip(shaped, -1.0, 1.0) * db_to_lin(SOFT_CLIP_DB)
        return out

    def limiter(self, x: Audio, sr: int, p: LimiterParams, link: bool) -> Audio:
        pb = self.pb
        release_ms = PEDALBOARD_LIMITER_AUTO_RELEASE_MS if p.auto_release else p.release_ms
        y = self._run(
            [
                pb.Gain(gain_db=float(p.gain_db)),
                pb.Limiter(threshold_db=PEDALBOARD_LIMITER_THRESHOLD_DB, release_ms=float(release_ms)),
            ],
            x,
            sr,
        )
        # JUCE clips at full scale (float32 1.0 exactly), so after this gain no sample exceeds the ceiling.
        ceiling: Audio = np.clip(y, -1.0, 1.0) * db_to_lin(p.ceiling_db)
        return ceiling


def _cap_reduction(x: Audio, compressed: Audio, range_db: float) -> Audio:
    """`compressed` with the compressor's gain reduction capped at `range_db` (per channel)."""
    floor = float(db_to_lin(-range_db))
    out = np.empty_like(x)
    n = np.arange(x.shape[0])
    for c in range(x.shape[1]):
        xc, yc = x[:, c], compressed[:, c]
        known = np.abs(xc) > _GAIN_FLOOR
        if not known.any():
            out[:, c] = yc
            continue
        gain = np.interp(n, n[known], yc[known] / xc[known])
        out[:, c] = xc * np.maximum(gain, floor)
    return out


def make_plant(physics: Physics | str) -> Plant:
    """The plant for a `Physics` preset, a preset's name, or a third-party plant's name ("pedalboard")."""
    if isinstance(physics, Physics):
        return Plant(DspPlant(physics))
    if physics in PHYSICS:
        return Plant(DspPlant(PHYSICS[physics]))
    if physics == PEDALBOARD:
        return Plant(PedalboardDevices())
    raise ConfigError(f"unknown physics {physics!r} (choose from {', '.join(PHYSICS_NAMES)})")
