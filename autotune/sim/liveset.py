"""The virtual Live set: tracks, devices and parameter tables that behave like Live's.

Raw ranges are not all "raw = dB": Makeup and Dry/Wet are raw 0..1, the Limiter's Release is a log law over
raw 0..1, Ratio, Attack and Glue's Release are stepped displays over raw 0..1 that report not quantized (as
Live's Glue does). `value_string` is computed from the raw value, so it is the only truthful way to learn
what a raw value means, exactly as with a real Live.

Every display means what it means in Live (Live's reference manual; ../shared/spec/abletonosc-facts.md):

- Glue Compressor **Range** is shown in negative dB, raw 0..1 -> "0.0 dB".."-70.0 dB" (linear), default
  "-70.0 dB", which emulates the hardware; at "0.0 dB" no compression occurs. The device's gain reduction is
  capped at the magnitude shown (`GlueParams.range_db` = |display|).
- Glue **Release**'s last step shows "Auto" (program dependent; `GlueParams.release_s` None).
- Limiter **Auto** (both Live 11 and 12 names) on means the release is the device's own: it maps to
  `LimiterParams.auto_release`, and the Release value does not act.
- Limiter **Link** / **Link Channels** off is L/R mode: each channel is limited on its own.
- Limiter **Mode** (Live 12.1) Standard / Soft Clip / True Peak; in Standard the ceiling is a sample peak.
- Track volume raw 0.85 is 0 dB and 1.0 is +6 dB (the law is `autotune.vocabulary.fader`'s); faders act
  after the devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from autotune.dsp import GlueParams, LimiterParams
from autotune.dsp.chain import Stage
from autotune.vocabulary.fader import FADER_0DB, fader_db

Names = Literal["live12", "live11"]
#: How the build answers for the master: the original project's patch (-1000), the "master" string of
#: several pull requests, index len(tracks) of another proposal, a /live/master namespace, or stock
#: upstream, which cannot reach it at all (-1 wraps to the last regular track).
Addressing = Literal["minus-1000", "master-string", "append", "namespace", "stock"]
#: Where the set carries Utility -> Glue Compressor -> Limiter: on the master, or on a bus track that every
#: track is routed to (the layout that works with stock AbletonOSC).
ChainOn = Literal["master", "bus"]
BUS_NAME = "Mix Bus"
#: A chain device as the virtual Live renders it: the DSP's stages (a gain, a Glue, a stereo-linked Limiter),
#: or a Limiter in L/R mode ("limiter_lr": Link off, each channel limited on its own).
SimStage = Stage | tuple[Literal["limiter_lr"], LimiterParams]


@dataclass(frozen=True)
class Law:
    """raw -> physical number (None for words) and physical -> display string."""

    physical: Callable[[float], float | None]
    display: Callable[[float], str]


def _db(decimals: int) -> Law:
    return Law(lambda r: r, lambda r: f"{r:.{decimals}f} dB")


def _scaled_db(lo: float, hi: float) -> Law:
    def phys(r: float) -> float:
        return lo + (hi - lo) * r

    return Law(phys, lambda r: f"{phys(r):.2f} dB")


def _steps(values: list[float | None], fmt: Callable[[float], str], word: str = "Auto") -> Law:
    def index(r: float) -> int:
        return min(len(values) - 1, int(r * len(values)))

    def phys(r: float) -> float | None:
        return values[index(r)]

    def display(r: float) -> str:
        v = values[index(r)]
        return word if v is None else fmt(v)

    return Law(phys, display)


def _ms_text(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def _log_ms(lo_ms: float, hi_ms: float) -> Law:
    def ms(r: float) -> float:
        return float(lo_ms * (hi_ms / lo_ms) ** r)

    return Law(lambda r: ms(r) / 1000.0, lambda r: _ms_text(ms(r)))


def _switch(words: tuple[str, ...] = ("Off", "On")) -> Law:
    return Law(lambda r: float(round(r)), lambda r: words[min(len(words) - 1, max(0, round(r)))])


def _negative_db(magnitude: float, decimals: int = 1) -> Law:
    """Raw 0..1 shown as 0 .. -`magnitude` dB (Glue's Range): the physical value is the negative number shown."""

    def phys(r: float) -> float:
        return -magnitude * r

    def display(r: float) -> str:
        text = f"{phys(r):.{decimals}f}"
        return f"{0.0:.{decimals}f} dB" if float(text) == 0.0 else f"{text} dB"  # "0.0 dB", never "-0.0 dB"

    return Law(phys, display)


def _percent() -> Law:
    return Law(lambda r: r * 100.0, lambda r: f"{r * 100:.0f} %")


@dataclass
class SimParameter:
    name: str
    min: float
    max: float
    value: float
    law: Law
    is_quantized: bool = False

    def __post_init__(self) -> None:
        self.value = float(np.float32(self.value))  # Live holds 32-bit values from the start

    def set(self, raw: float) -> None:
        if not math.isfinite(raw) or raw < self.min - 1e-6 or raw > self.max + 1e-6:
            raise ValueError(f"Invalid value {raw:g} for {self.name} (allowed {self.min:g}..{self.max:g})")
        raw = min(max(raw, self.min), self.max)
        if self.is_quantized:
            raw = float(round(raw))
        self.value = float(np.float32(raw))  # Live stores and sends 32-bit floats

    @property
    def physical(self) -> float | None:
        return self.law.physical(self.value)

    @property
    def display(self) -> str:
        return self.law.display(self.value)


@dataclass
class SimDevice:
    name: str
    parameters: list[SimParameter]

    def param(self, name: str) -> SimParameter:
        return next(p for p in self.parameters if p.name == name)

    def physical(self, name: str) -> float:
        v = self.param(name).physical
        return 0.0 if v is None else v

    @property
    def on(self) -> bool:
        return self.param("Device On").value >= 0.5


#: Scenes in a new Live Set: every track has this many clip slots.
SCENES = 8
#: Live's monitoring states (LOM `Track.current_monitoring_state`): In, Auto, Off.
MONITOR_IN, MONITOR_AUTO, MONITOR_OFF = 0, 1, 2


@dataclass
class SimClip:
    """A Session clip recorded into a slot: the song time it covers and the file Live wrote it to.

    `segments` are the stretches of song time (beats) the transport played while it recorded, in order: one,
    unless the song position jumped meanwhile. `recording` is true until the recording has ended."""

    file_path: str
    segments: list[list[float]]
    stages: tuple[tuple[SimStage, ...], float]
    recording: bool = True
    stop_at: float | None = None  # a quantized stop waiting for its boundary (song beats)

    @property
    def length(self) -> float:
        return float(sum(b - a for a, b in self.segments))


@dataclass
class SimSlot:
    clip: SimClip | None = None
    #: A recording fired but waiting for its quantization boundary (song beats): Live's triggered state.
    record_at: float | None = None


@dataclass
class SimTrack:
    name: str
    devices: list[SimDevice] = field(default_factory=list)
    volume: float = FADER_0DB
    arm: bool = False
    can_be_armed: bool = True
    monitoring: int = MONITOR_AUTO
    #: The input routing type's display name (Live's `input_routing_type.display_name`).
    input_routing: str = "Ext. In"
    slots: list[SimSlot] = field(default_factory=lambda: [SimSlot() for _ in range(SCENES)])


GLUE_RATIOS: list[float | None] = [2.0, 4.0, 10.0]
GLUE_ATTACKS_MS: list[float | None] = [0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
GLUE_RELEASES_S: list[float | None] = [0.1, 0.2, 0.4, 0.6, 0.8, 1.2, None]
LOOKAHEADS_MS = (1.5, 3.0, 6.0)
#: Glue's Range spans 0 dB (no compression) to -70 dB (the hardware's behaviour, the default).
GLUE_RANGE_DB = 70.0
LIMITER_MODES = ("Standard", "Soft Clip", "True Peak")


def glue_compressor() -> SimDevice:
    return SimDevice(
        "Glue Compressor",
        [
            SimParameter("Device On", 0, 1, 1, _switch(), True),
            SimParameter("Threshold", -40, 0, 0, _db(1)),
            SimParameter("Ratio", 0, 1, 0, _steps(GLUE_RATIOS, lambda v: f"{v:.2f} : 1")),
            SimParameter("Attack", 0, 1, 5 / 7 + 0.01, _steps(GLUE_ATTACKS_MS, lambda v: f"{v:g} ms")),
            SimParameter("Release", 0, 1, 2 / 7 + 0.01, _steps(GLUE_RELEASES_S, lambda v: f"{v:.1f} s")),
            SimParameter("Peak Clip In", 0, 1, 0, _switch(), True),
            SimParameter("Range", 0, 1, 1, _negative_db(GLUE_RANGE_DB)),
            SimParameter("Makeup", 0, 1, 0, _scaled_db(0.0, 20.0)),
            SimParameter("Dry/Wet", 0, 1, 1, _percent()),
            SimParameter("S/C On", 0, 1, 0, _switch(), True),
            SimParameter("S/C Gain", -24, 24, 0, _db(1)),
            SimParameter("S/C Mix", 0, 1, 1, _percent()),
        ],
    )


def limiter(names: Names = "live12") -> SimDevice:
    release = _log_ms(1.0, 1000.0)
    lookahead = Law(lambda r: LOOKAHEADS_MS[round(r)] / 1000.0, lambda r: f"{LOOKAHEADS_MS[round(r)]:.1f} ms")
    if names == "live11":
        return SimDevice(
            "Limiter",
            [
                SimParameter("Device On", 0, 1, 1, _switch(), True),
                SimParameter("Gain", -24, 36, 0, _db(2)),
                SimParameter("Ceiling", -24, 0, -0.3, _db(2)),
                SimParameter("Link Channels", 0, 1, 1, _switch(), True),
                SimParameter("Lookahead", 0, 2, 1, lookahead, True),
                SimParameter("Auto", 0, 1, 0, _switch(), True),
                SimParameter("Release time", 0, 1, math.log10(300) / 3, release),
            ],
        )
    return SimDevice(
        "Limiter",
        [
            SimParameter("Device On", 0, 1, 1, _switch(), True),
            SimParameter("Input Gain", -24, 36, 0, _db(2)),
            SimParameter("Release", 0, 1, math.log10(300) / 3, release),
            SimParameter("Ceiling", -24, 0, -0.3, _db(2)),
            SimParameter("Link", 0, 1, 1, _switch(), True),
            SimParameter("M/S Link", 0, 1, 0, _switch(), True),
            SimParameter("Lookahead", 0, 2, 1, lookahead, True),
            SimParameter("Mode", 0, 2, 0, _switch(LIMITER_MODES), True),
            SimParameter("Auto", 0, 1, 0, _switch(), True),
        ],
    )


def utility() -> SimDevice:
    return SimDevice(
        "Utility",
        [
            SimParameter("Device On", 0, 1, 1, _switch(), True),
            SimParameter("Gain", -35, 35, 0, _db(2)),
            SimParameter("Mute", 0, 1, 0, _switch(), True),
        ],
    )


@dataclass
class SimSong:
    """A Live set: a few regular tracks and a master carrying Utility -> Glue Compressor -> Limiter."""

    names: Names = "live12"
    addressing: Addressing = "minus-1000"
    chain_on: ChainOn = "master"
    tracks: list[SimTrack] = field(default_factory=list)
    master: SimTrack = field(default_factory=lambda: SimTrack("Master", can_be_armed=False))

    def __post_init__(self) -> None:
        if not self.tracks:
            self.tracks = [SimTrack("Drums"), SimTrack("Bass"), SimTrack("Chords"), SimTrack(BUS_NAME)]
        if not self.chain_track().devices:
            self.chain_track().devices = [utility(), glue_compressor(), limiter(self.names)]

    def track(self, t: object) -> SimTrack:
        """`song.tracks[int(t)]` as upstream does (negative indices wrap), plus this flavour's master."""
        if self.addressing == "master-string" and isinstance(t, str) and t == "master":
            return self.master
        if not isinstance(t, (int, float)):
            raise ValueError(f"invalid literal for int() with base 10: {t!r}")
        index = int(t)
        if self.addressing == "minus-1000" and index == -1000:
            return self.master
        if self.addressing == "append" and index == len(self.tracks):
            return self.master
        return self.tracks[index]

    def device(self, t: object, d: object) -> SimDevice:
        return self._device_of(self.track(t), d)

    @staticmethod
    def _device_of(track: SimTrack, d: object) -> SimDevice:
        if not isinstance(d, (int, float)):
            raise ValueError(f"invalid literal for int() with base 10: {d!r}")
        return track.devices[int(d)]

    def master_device(self, d: object) -> SimDevice:
        return self._device_of(self.master, d)

    def chain_track(self) -> SimTrack:
        return self.bus if self.chain_on == "bus" else self.master

    @property
    def bus(self) -> SimTrack:
        return next(t for t in self.tracks if t.name == BUS_NAME)

    def stages(self) -> tuple[tuple[SimStage, ...], float]:
        """The chain's switched-on devices in their order on the track, and the total fader gain after them
        (dB): the master's, plus the bus's when the chain is on the bus."""
        stages: list[SimStage] = []
        for dev in self.chain_track().devices:
            if not dev.on:
                continue
            if dev.name == "Utility":
                stages.append(
                    ("gain", -200.0 if dev.param("Mute").value >= 0.5 else float(dev.physical("Gain")))
                )
            elif dev.name == "Glue Compressor":
                stages.append(("glue", self._glue(dev)))
            elif dev.name == "Limiter":
                live11 = self.names == "live11"
                link = dev.param("Link Channels" if live11 else "Link").value >= 0.5
                stages.append(("limiter", self._limiter(dev)) if link else ("limiter_lr", self._limiter(dev)))
        fader = fader_db(self.master.volume)
        if self.chain_on == "bus":
            fader += fader_db(self.bus.volume)
        return tuple(stages), fader

    @staticmethod
    def _glue(dev: SimDevice) -> GlueParams:
        return GlueParams(
            threshold_db=dev.physical("Threshold"),
            ratio=dev.physical("Ratio"),
            attack_ms=dev.physical("Attack"),
            release_s=dev.param("Release").physical,
            makeup_db=dev.physical("Makeup"),
            # Range shows negative dB (-70 dB: up to 70 dB of reduction; 0 dB: none); the DSP takes the
            # positive magnitude of the reduction it allows.
            range_db=abs(dev.physical("Range")),
            dry_wet=dev.physical("Dry/Wet") / 100.0,
            peak_clip=dev.param("Peak Clip In").value >= 0.5,
        )

    def _limiter(self, dev: SimDevice) -> LimiterParams:
        live11 = self.names == "live11"
        mode: Literal["standard", "soft_clip", "true_peak"] = (
            "standard" if live11 else ("standard", "soft_clip", "true_peak")[round(dev.param("Mode").value)]
        )
        return LimiterParams(
            gain_db=dev.physical("Gain" if live11 else "Input Gain"),
            ceiling_db=dev.physical("Ceiling"),
            release_ms=dev.physical("Release time" if live11 else "Release") * 1000.0,
            lookahead_ms=dev.physical("Lookahead") * 1000.0,
            mode=mode,
            auto_release=dev.param("Auto").value >= 0.5,
        )
