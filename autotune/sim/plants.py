"""The virtual Live's plants: what renders an export from the chain's settings.

A plant takes the chain's switched-on devices (`SimSong.stages()`, already read in Live's conventions) and
the fader gain after them, and renders the song through them. The kinds:

- `DspPlant`: `autotune.dsp`'s devices with a `Physics` preset: the model's own physics ("model") or the
  project's plant variants ("vintage", "punchy"). With no stress and Link on it gives exactly what
  `autotune.dsp.chain.render_stages` gives.
- `PedalboardDevices` ("pedalboard"): DSP we did not write, Spotify's pedalboard wrapping JUCE's
  `dsp::Compressor`, behind the same Live parameter tables and Live's manual. See its docstring for how
  every Live parameter maps onto JUCE's (and what JUCE does not have).
- "pedalboard-maximizer": the same Glue, and JUCE's `dsp::Limiter` as it comes (a maximiser with a fixed
  4:1 stage and its own make-up) with the Ceiling a gain after it. That breaks Live's manual ("if your
  incoming signal level has no peaks that are higher than the ceiling, Limiter will have no effect"): kept
  as a limiter design unlike Live's, for the benchmark's table of plants that disagree with the model.

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
PEDALBOARD_MAXIMIZER = "pedalboard-maximizer"


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
#: Live's Limiter on JUCE: the 1000:1, 0.001 ms-attack `dsp::Compressor` that is the brick-wall stage of
#: JUCE's own `dsp::Limiter`, with its threshold at the Ceiling, then a hard clip at the Ceiling. It has no
#: look-ahead: its reduction starts at a peak, not before it (the clip takes what the attack lets through).
PEDALBOARD_LIMITER_RATIO = 1000.0
PEDALBOARD_LIMITER_ATTACK_MS = 0.001
#: JUCE's `dsp::Limiter` ("pedalboard-maximizer") at this threshold: a fixed 4:1 compressor above -10 dBFS
#: (2 ms attack, 200 ms release), a 1000:1 stage at the threshold (with the release given), an automatic
#: make-up of 3.75 dB minus the threshold, and a hard clip at 0 dBFS. At 0 dB only its 3.75 dB make-up is
#: added: a -20 dBFS sine comes out at -16.25 dBFS, where Live's Limiter would leave it alone.
PEDALBOARD_LIMITER_THRESHOLD_DB = 0.0
#: Glue's Soft Clip: "the Glue's output never exceeds -0.5 dB" (Live's manual), as a tanh waveshaper.
SOFT_CLIP_DB = -0.5
#: Samples quieter than this carry no usable compressor gain (JUCE's gain is read back as output / input).
_GAIN_FLOOR = 1e-5


def _load_pedalboard(name: str = PEDALBOARD) -> Any:
    try:
        return importlib.import_module("pedalboard")
    except ImportError:
        raise ConfigError(
            f"physics {name} needs Spotify's pedalboard package: pip install pedalboard"
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

    Limiter -> the Gain (in float64) -> JUCE's brick-wall stage (`pedalboard.Compressor`, ratio
    `PEDALBOARD_LIMITER_RATIO`, attack `PEDALBOARD_LIMITER_ATTACK_MS`, threshold = the Ceiling, release = the
    Release shown, or `PEDALBOARD_LIMITER_AUTO_RELEASE_MS` with Auto on) -> a hard clip at the Ceiling. So, as
    Live's manual says, the Ceiling is "the absolute maximum level that the Limiter will output", and a signal
    with no peak above it passes untouched. Stereo (Link on) takes one gain for both channels from the louder
    channel's level ("limiting to both channels whenever either of them has a peak"); L/R limits each channel
    on its own. JUCE's compressor is a VCA, so the gain is read back as output / input and applied to the
    channels. JUCE has no look-ahead and no Soft Clip or True Peak mode: every Mode acts as Standard (a
    sample-peak ceiling).

    With `maximizer=True` the Limiter is JUCE's whole `dsp::Limiter` instead (see
    `PEDALBOARD_LIMITER_THRESHOLD_DB`), with the Ceiling a gain after it and each channel on its own.
    """

    def __init__(self, maximizer: bool = False) -> None:
        self.maximizer = maximizer
        self.name = PEDALBOARD_MAXIMIZER if maximizer else PEDALBOARD
        self.pb = _load_pedalboard(self.name)

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
        release_ms = float(PEDALBOARD_LIMITER_AUTO_RELEASE_MS if p.auto_release else p.release_ms)
        if self.maximizer:
            y = self._run(
                [
                    pb.Gain(gain_db=float(p.gain_db)),
                    pb.Limiter(threshold_db=PEDALBOARD_LIMITER_THRESHOLD_DB, release_ms=release_ms),
                ],
                x,
                sr,
            )
            # JUCE clips at full scale (float32 1.0 exactly), so after this gain no sample exceeds the ceiling.
            out: Audio = np.clip(y, -1.0, 1.0) * db_to_lin(p.ceiling_db)
            return out
        driven = x * db_to_lin(p.gain_db)
        wall = pb.Compressor(
            threshold_db=float(p.ceiling_db),
            ratio=PEDALBOARD_LIMITER_RATIO,
            attack_ms=PEDALBOARD_LIMITER_ATTACK_MS,
            release_ms=release_ms,
        )
        # The detector: the louder channel's level for a linked (Stereo) limiter, each channel for L/R.
        level = np.abs(driven).max(axis=1, keepdims=True) if link else np.abs(driven)
        # In JUCE's float32, so a sample JUCE leaves alone reads back a gain of exactly 1.
        level = level.astype(np.float32).astype(np.float64)
        gain = _read_back_gain(level, self._run([wall], level, sr))
        ceiling = float(db_to_lin(p.ceiling_db))
        limited: Audio = np.clip(driven * gain, -ceiling, ceiling)
        return limited


def _read_back_gain(x: Audio, y: Audio) -> Audio:
    """The per-sample gain a VCA applied to `x` to give `y` (per channel), where `x` is not near silence;
    between such samples it is interpolated (the gain of a silent sample does not matter)."""
    gain = np.ones_like(x)
    n = np.arange(x.shape[0])
    for c in range(x.shape[1]):
        xc, yc = x[:, c], y[:, c]
        known = np.abs(xc) > _GAIN_FLOOR
        if known.any():
            gain[:, c] = np.interp(n, n[known], yc[known] / xc[known])
    return gain


def _cap_reduction(x: Audio, compressed: Audio, range_db: float) -> Audio:
    """`compressed` with the compressor's gain reduction capped at `range_db` (per channel)."""
    return x * np.maximum(_read_back_gain(x, compressed), float(db_to_lin(-range_db)))


def make_plant(physics: Physics | str) -> Plant:
    """The plant for a `Physics` preset, a preset's name, or a third-party plant's name ("pedalboard")."""
    if isinstance(physics, Physics):
        return Plant(DspPlant(physics))
    if physics in PHYSICS:
        return Plant(DspPlant(PHYSICS[physics]))
    if physics == PEDALBOARD:
        return Plant(PedalboardDevices())
    if physics == PEDALBOARD_MAXIMIZER:
        return Plant(PedalboardDevices(maximizer=True))
    raise ConfigError(f"unknown physics {physics!r} (choose from {', '.join(PHYSICS_NAMES)})")
