"""The virtual Live shows and acts on every parameter in Live's own conventions (Live's reference manual, as
collected in ../shared/spec/abletonosc-facts.md), checked as a client sees it: over OSC on real UDP sockets,
exports rendered by the server and measured from the WAV it writes.

Audio is compared by loudness and sample values with stated tolerances, never by hashes of floats.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotune.dsp.bs1770 import integrated_loudness
from autotune.dsp.demo import DemoSpec
from autotune.live.client import OscClient
from autotune.sim import SimOptions, VirtualLive
from autotune.sim.liveset import Names
from autotune.sim.server import EXPORT_ADDRESS

MASTER = -1000
UTILITY, GLUE, LIMITER = 0, 1, 2
#: Short songs keep every export well under a second.
SONG = DemoSpec(seconds=6.0)


class Rig:
    """A client of a virtual Live, addressing parameters by name as the AbletonOSC tables give them."""

    def __init__(self, sim: VirtualLive, client: OscClient, export_root: Path) -> None:
        self.sim, self.client, self.root = sim, client, export_root
        self.exports = 0

    def index(self, device: int, name: str) -> int:
        names = self.client.query("/live/device/get/parameters/name", MASTER, device)[2:]
        return list(names).index(name)

    def set(self, device: int, name: str, raw: float) -> None:
        self.client.send("/live/device/set/parameter/value", MASTER, device, self.index(device, name), raw)

    def raw(self, device: int, name: str) -> float:
        return float(
            self.client.query("/live/device/get/parameter/value", MASTER, device, self.index(device, name))[3]
        )

    def shown(self, device: int, name: str) -> str:
        reply = self.client.query(
            "/live/device/get/parameter/value_string", MASTER, device, self.index(device, name)
        )
        return str(reply[3])

    def column(self, device: int, what: str) -> dict[str, float]:
        names = self.client.query("/live/device/get/parameters/name", MASTER, device)[2:]
        values = self.client.query(f"/live/device/get/parameters/{what}", MASTER, device)[2:]
        return {str(n): float(v) for n, v in zip(names, values, strict=True)}

    def export(self) -> np.ndarray:
        """Export over OSC and wait until the server has written the last byte; the audio as float64."""
        self.exports += 1
        path = (self.root / f"export-{self.exports}.wav").resolve()
        assert self.client.query(EXPORT_ADDRESS, str(path), timeout=10.0)[1] == "started"
        deadline = time.monotonic() + 30.0
        while str(path) not in self.sim.export_done:
            assert time.monotonic() < deadline, "the export never finished"
            time.sleep(0.01)
        audio, sr = sf.read(str(path), dtype="float64", always_2d=True)
        assert sr == SONG.sample_rate
        return np.asarray(audio)


@contextmanager
def _rig(tmp_path: Path, cache: Path, names: Names) -> Iterator[Rig]:
    sim = VirtualLive(
        "127.0.0.1",
        0,
        reply_port=0,
        export_root=tmp_path,
        options=SimOptions(names=names, demo=SONG, cache_dir=cache),
    )
    client = OscClient("127.0.0.1", sim.port, reply_port=0, timeout=1.0, retries=1)
    sim.reply_port = client.reply_port
    sim.start()
    try:
        yield Rig(sim, client, tmp_path)
    finally:
        client.close()
        sim.close()


@pytest.fixture
def rig(tmp_path: Path, demo_cache: Path) -> Iterator[Rig]:
    with _rig(tmp_path, demo_cache, "live12") as r:
        yield r


@pytest.fixture(params=["live12", "live11"])
def any_rig(request: pytest.FixtureRequest, tmp_path: Path, demo_cache: Path) -> Iterator[Rig]:
    with _rig(tmp_path, demo_cache, request.param) as r:
        yield r


def lufs(audio: np.ndarray) -> float:
    return integrated_loudness(audio, SONG.sample_rate)


def heavy_glue(rig: Rig) -> None:
    """The Glue at its most compressing: -40 dB threshold, 10:1, the fastest attack; the Limiter off."""
    rig.set(GLUE, "Threshold", -40.0)
    rig.set(GLUE, "Ratio", 1.0)  # the last step: 10:1
    rig.set(GLUE, "Attack", 0.0)  # 0.01 ms
    rig.set(LIMITER, "Device On", 0)


def test_range_is_shown_in_negative_db_with_the_hardware_default(rig: Rig) -> None:
    assert (rig.column(GLUE, "min")["Range"], rig.column(GLUE, "max")["Range"]) == (0.0, 1.0)
    assert rig.shown(GLUE, "Range") == "-70.0 dB"  # the default emulates the hardware
    assert rig.raw(GLUE, "Range") == pytest.approx(1.0)
    for raw, text in ((0.0, "0.0 dB"), (0.5, "-35.0 dB"), (0.25, "-17.5 dB"), (1.0, "-70.0 dB")):
        rig.set(GLUE, "Range", raw)
        assert rig.shown(GLUE, "Range") == text
    # Linear and never positive over the whole raw range.
    for raw in np.linspace(0.0, 1.0, 11):
        rig.set(GLUE, "Range", float(raw))
        shown = float(rig.shown(GLUE, "Range").removesuffix(" dB"))
        assert shown <= 0.0
        assert shown == pytest.approx(-70.0 * raw, abs=0.05 + 1e-6)


def test_range_0_db_means_no_compression(rig: Rig) -> None:
    rig.set(GLUE, "Device On", 0)
    rig.set(LIMITER, "Device On", 0)
    dry = rig.export()
    rig.set(GLUE, "Device On", 1)
    heavy_glue(rig)
    squashed = rig.export()  # Range at its default, -70 dB
    rig.set(GLUE, "Range", 0.0)
    assert rig.shown(GLUE, "Range") == "0.0 dB"
    untouched = rig.export()
    # At -70 dB the Glue pulls this song down by many dB; at 0 dB it does nothing at all.
    assert lufs(squashed) < lufs(dry) - 6.0
    assert lufs(untouched) == pytest.approx(lufs(dry), abs=0.01)
    np.testing.assert_allclose(untouched, dry, rtol=0, atol=2.0**-22)  # within 24-bit rounding
    # In between, the reduction is capped at the magnitude shown: -6 dB takes no more than about 6 dB off.
    rig.set(GLUE, "Range", 6.0 / 70.0)
    assert rig.shown(GLUE, "Range") == "-6.0 dB"
    capped = rig.export()
    assert lufs(dry) - 6.0 - 0.1 <= lufs(capped) < lufs(dry) - 3.0


def test_glue_release_auto_is_a_word(rig: Rig) -> None:
    rig.set(GLUE, "Release", 1.0)
    assert rig.shown(GLUE, "Release") == "Auto"


def test_limiter_auto_release_changes_the_render(any_rig: Rig) -> None:
    """Auto on: the Limiter sets its release itself, and the Release shown is not what acts."""
    rig = any_rig
    rig.set(GLUE, "Device On", 0)
    rig.set(LIMITER, "Gain" if "Gain" in rig.column(LIMITER, "value") else "Input Gain", 18.0)
    release = "Release time" if "Release time" in rig.column(LIMITER, "value") else "Release"
    rig.set(LIMITER, release, 1.0)  # 1 s: far from the auto release
    assert rig.shown(LIMITER, release) == "1.00 s"
    assert rig.shown(LIMITER, "Auto") == "Off"
    fixed = rig.export()
    rig.set(LIMITER, "Auto", 1)
    assert rig.shown(LIMITER, "Auto") == "On"
    auto = rig.export()
    # The program-dependent release recovers far sooner than 1 s: much louder at the same ceiling.
    assert lufs(auto) > lufs(fixed) + 1.0
    ceiling = 10 ** (-0.3 / 20)
    assert np.abs(auto).max() <= ceiling + 2.0**-22 and np.abs(fixed).max() <= ceiling + 2.0**-22
    # With Auto on, the Release shown does not act.
    rig.set(LIMITER, release, 0.0)
    assert rig.shown(LIMITER, release) == "1.0 ms"
    again = rig.export()
    np.testing.assert_allclose(again, auto, rtol=0, atol=2.0**-22)


def test_limiter_link_off_limits_each_channel_on_its_own(tmp_path: Path, demo_cache: Path) -> None:
    """L/R mode: a loud left channel no longer pulls the right one down with it."""
    with _rig(tmp_path, demo_cache, "live12") as rig:
        rig.set(GLUE, "Device On", 0)
        rig.set(UTILITY, "Device On", 0)
        rig.set(LIMITER, "Input Gain", 12.0)
        linked = rig.export()
        rig.set(LIMITER, "Link", 0)
        assert rig.shown(LIMITER, "Link") == "Off"
        lr = rig.export()
        ceiling = 10 ** (-0.3 / 20)
        assert np.abs(lr).max() <= ceiling + 2.0**-22
        # Same channels, differently limited: each channel's own limiting is never deeper than the linked one.
        assert not np.allclose(lr, linked, atol=1e-4)
        assert lufs(lr) >= lufs(linked) - 0.01
