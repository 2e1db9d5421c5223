"""The virtual Live's plants and songs: third-party DSP (pedalboard), stress, and real recordings.

The pedalboard plant must keep the contracts a producer relies on (the output's sample peak never above the
Ceiling, more Limiter gain never quieter, devices off = bypass); the recordings must have the stated peak and
length. Tests that need pedalboard or Debian's sonic-pi-samples skip with the reason when it is absent.
Audio is compared with stated tolerances, never by hashes of floats.
"""

from __future__ import annotations

import importlib
import itertools
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotune.dsp import GlueParams, LimiterParams, demo_track
from autotune.dsp.bs1770 import integrated_loudness
from autotune.dsp.chain import render_stages
from autotune.dsp.demo import DemoSpec
from autotune.errors import ConfigError
from autotune.live.client import OscClient
from autotune.settings import load_settings
from autotune.sim import SimOptions, Stress, VirtualLive
from autotune.sim import plants as plants_module
from autotune.sim.liveset import SimStage
from autotune.sim.plants import make_plant, pedalboard_available
from autotune.sim.presets import PHYSICS_NAMES, SONG_NAMES, sim_options, song
from autotune.sim.recordings import PACKAGE, RECORDINGS, SAMPLES_DIR, build_recording
from autotune.sim.server import EXPORT_ADDRESS, DemoSource

SR = 48_000
needs_pedalboard = pytest.mark.skipif(not pedalboard_available(), reason="pedalboard is not installed")
needs_samples = pytest.mark.skipif(
    not (SAMPLES_DIR / "loop_amen.flac").is_file(),
    reason=f"Debian's {PACKAGE} is not installed (apt-get install {PACKAGE})",
)
#: Float64 renders keep the ceiling exactly; 24-bit WAVs may round one step above it.
LSB24 = 2.0**-23


@pytest.fixture(scope="module")
def song_3s() -> np.ndarray:
    """A short, dynamic stereo song (3 s of the demo): drums with panned hats, bass and pads."""
    return demo_track(DemoSpec(seconds=3.0)).astype(np.float32)


def lufs(y: np.ndarray) -> float:
    return integrated_loudness(y, SR)


def chain(glue: GlueParams | None = None, lim: LimiterParams | None = None) -> tuple[SimStage, ...]:
    stages: list[SimStage] = []
    if glue is not None:
        stages.append(("glue", glue))
    if lim is not None:
        stages.append(("limiter", lim))
    return tuple(stages)


# -- the pedalboard plant --------------------------------------------------------------------------


THIRD_PARTY = ("pedalboard", "pedalboard-maximizer")


@needs_pedalboard
@pytest.mark.parametrize("name", THIRD_PARTY)
@pytest.mark.parametrize("ceiling_db", [-6.0, -1.0, -0.3, 0.0])
def test_pedalboard_sample_peak_never_exceeds_the_ceiling(
    song_3s: np.ndarray, ceiling_db: float, name: str
) -> None:
    plant = make_plant(name)
    ceiling = 10 ** (ceiling_db / 20)
    for gain in (0.0, 12.0, 24.0, 36.0):
        for glue in (None, GlueParams(threshold_db=-20.0, ratio=4.0, makeup_db=20.0, peak_clip=True)):
            for auto in (False, True):
                lim = LimiterParams(gain_db=gain, ceiling_db=ceiling_db, release_ms=1.0, auto_release=auto)
                y = plant.render(song_3s, SR, chain(glue, lim))
                assert float(np.abs(y).max()) <= ceiling, (gain, glue, auto)


@needs_pedalboard
@pytest.mark.parametrize("name", THIRD_PARTY)
@pytest.mark.parametrize("threshold_db", [-30.0, 0.0])
def test_pedalboard_more_limiter_gain_is_never_quieter(
    song_3s: np.ndarray, threshold_db: float, name: str
) -> None:
    plant = make_plant(name)
    glue = GlueParams(threshold_db=threshold_db, ratio=4.0, makeup_db=6.0)
    loudness = [
        lufs(plant.render(song_3s, SR, chain(glue, LimiterParams(gain_db=g, ceiling_db=-1.0))))
        for g in np.arange(0.0, 31.0, 3.0)
    ]
    assert all(b >= a - 0.01 for a, b in itertools.pairwise(loudness)), loudness
    assert loudness[-1] > loudness[0] + 3.0  # and the gain does drive it


@needs_pedalboard
def test_pedalboard_devices_off_and_neutral_settings_are_bypass(song_3s: np.ndarray) -> None:
    plant = make_plant("pedalboard")
    x = song_3s.astype(np.float64)
    np.testing.assert_array_equal(plant.render(song_3s, SR, ()), x)  # both devices off: nothing runs
    heavy = GlueParams(threshold_db=-40.0, ratio=10.0, attack_ms=0.01, makeup_db=0.0)
    # Dry/Wet 0 % bypasses the Glue; Range 0 dB means no compression.
    np.testing.assert_allclose(plant.render(song_3s, SR, chain(replace(heavy, dry_wet=0.0))), x, atol=1e-7)
    np.testing.assert_allclose(plant.render(song_3s, SR, chain(replace(heavy, range_db=0.0))), x, atol=1e-7)
    # A Utility gain alone is a plain gain, with no input offset applied (no device of the chain is on).
    stressed = plant.render(song_3s, SR, (("gain", -6.0),), stress=Stress(input_offset_db=6.0))
    np.testing.assert_allclose(stressed, x * 10 ** (-6 / 20), atol=1e-9)


@needs_pedalboard
def test_pedalboard_glue_follows_its_knobs(song_3s: np.ndarray) -> None:
    plant = make_plant("pedalboard")
    dry = lufs(song_3s)

    def glue(**kw: float | bool | None) -> float:
        return lufs(plant.render(song_3s, SR, chain(GlueParams(**kw))))  # type: ignore[arg-type]

    assert glue(threshold_db=-30.0, ratio=4.0) < glue(threshold_db=-10.0, ratio=4.0) < dry + 0.01
    assert glue(threshold_db=-30.0, ratio=10.0) < glue(threshold_db=-30.0, ratio=2.0)
    assert glue(threshold_db=-30.0, ratio=4.0, makeup_db=6.0) == pytest.approx(
        glue(threshold_db=-30.0, ratio=4.0) + 6.0, abs=0.05
    )
    # Range caps the reduction at the magnitude shown: -6 dB takes off at most 6 dB.
    capped = glue(threshold_db=-40.0, ratio=10.0, attack_ms=0.01, range_db=6.0)
    assert dry - 6.0 - 0.1 <= capped < dry - 3.0
    assert glue(threshold_db=-40.0, ratio=10.0, attack_ms=0.01) < capped - 3.0
    # Release "Auto" is a release time of its own, neither the fastest nor the slowest step.
    auto = glue(threshold_db=-30.0, ratio=4.0, release_s=None)
    assert (
        glue(threshold_db=-30.0, ratio=4.0, release_s=1.2)
        < auto
        < glue(threshold_db=-30.0, ratio=4.0, release_s=0.1)
    )
    # Soft Clip: the Glue's output never exceeds -0.5 dB.
    y = plant.render(song_3s, SR, chain(GlueParams(makeup_db=20.0, peak_clip=True)))
    assert float(np.abs(y).max()) <= 10 ** (-0.5 / 20)


@needs_pedalboard
def test_pedalboard_limiter_auto_and_release(song_3s: np.ndarray) -> None:
    """A slower release holds the reduction longer (a quieter export at high drive); Auto on is a release of
    its own, whatever Release shows."""
    plant = make_plant("pedalboard")

    def lim(**kw: float | bool) -> np.ndarray:
        p = LimiterParams(**{"gain_db": 36.0, "ceiling_db": -1.0, **kw})  # type: ignore[arg-type]
        return plant.render(song_3s, SR, chain(None, p))

    assert lufs(lim(release_ms=1000.0)) < lufs(lim(release_ms=1.0)) - 0.1
    auto = lim(release_ms=1000.0, auto_release=True)
    np.testing.assert_allclose(auto, lim(release_ms=1.0, auto_release=True), rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        auto, lim(release_ms=plants_module.PEDALBOARD_LIMITER_AUTO_RELEASE_MS), rtol=0, atol=1e-9
    )


@needs_pedalboard
def test_pedalboard_limiter_leaves_a_signal_under_its_ceiling_alone(song_3s: np.ndarray) -> None:
    """Live's manual: "If your incoming signal level has no peaks that are higher than the ceiling, Limiter
    will have no effect", whatever the ceiling; JUCE's own Limiter (the maximiser) does not keep that."""
    x = song_3s.astype(np.float64) * (10 ** (-12 / 20) / float(np.abs(song_3s).max()))  # peaks at -12 dBFS
    for ceiling_db in (-6.0, -1.0, 0.0):
        lim = LimiterParams(gain_db=3.0, ceiling_db=ceiling_db)  # peaks at -9 dBFS after the Gain
        y = make_plant("pedalboard").render(x, SR, chain(None, lim))
        np.testing.assert_allclose(y, x * 10 ** (3 / 20), rtol=1e-6, atol=0)  # 1e-6: -120 dB
        maximised = make_plant("pedalboard-maximizer").render(x, SR, chain(None, lim))
        assert abs(lufs(maximised) - lufs(x) - 3.0) > 1.0, ceiling_db


@needs_pedalboard
def test_pedalboard_limiter_links_the_channels_in_stereo_mode() -> None:
    """Stereo mode limits both channels whenever either has a peak over the ceiling (the image is kept);
    L/R limits each on its own, so the quieter channel passes untouched and the export is louder."""
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 440.0 * t)
    x = np.stack([tone, 0.25 * tone], axis=1)  # left peaks at 0 dBFS, right 12 dB lower
    lim = LimiterParams(gain_db=0.0, ceiling_db=-6.0)
    plant = make_plant("pedalboard")
    linked = plant.render(x, SR, (("limiter", lim),))[SR // 2 :]
    split = plant.render(x, SR, (("limiter_lr", lim),))[SR // 2 :]
    peak = 20 * np.log10(np.abs(linked).max(axis=0))
    np.testing.assert_allclose(peak, [-6.0, -18.04], atol=0.05)  # one gain: both 6 dB down
    np.testing.assert_allclose(20 * np.log10(np.abs(split).max(axis=0)), [-6.0, -12.04], atol=0.05)
    assert lufs(split) > lufs(linked) + 0.5


@needs_pedalboard
def test_pedalboard_plant_is_not_the_model(song_3s: np.ndarray) -> None:
    """The point of a third-party plant: the same knob positions give a different export."""
    stages = chain(
        GlueParams(threshold_db=-20.0, ratio=4.0, makeup_db=4.0), LimiterParams(gain_db=12.0, ceiling_db=-1.0)
    )
    a = lufs(make_plant("pedalboard").render(song_3s, SR, stages))
    b = lufs(make_plant("model").render(song_3s, SR, stages))
    assert abs(a - b) > 0.5


@needs_pedalboard
def test_virtual_live_exports_through_pedalboard(tmp_path: Path, demo_cache: Path) -> None:
    """Over OSC: the server renders its exports through the chosen plant, ceiling kept in the WAV."""
    spec = DemoSpec(seconds=3.0)
    results = {}
    for physics in ("pedalboard", "model"):
        sim = VirtualLive(
            "127.0.0.1",
            0,
            reply_port=0,
            export_root=tmp_path,
            options=SimOptions(demo=spec, cache_dir=demo_cache, physics=physics),
        )
        client = OscClient("127.0.0.1", sim.port, reply_port=0, timeout=1.0, retries=1)
        sim.reply_port = client.reply_port
        sim.start()
        try:
            client.send("/live/device/set/parameter/value", -1000, 2, 1, 24.0)  # Input Gain
            client.send("/live/device/set/parameter/value", -1000, 2, 3, -1.0)  # Ceiling
            assert client.query("/live/device/get/parameter/value_string", -1000, 2, 3)[3] == "-1.00 dB"
            path = (tmp_path / f"{physics}.wav").resolve()
            client.query(EXPORT_ADDRESS, str(path), timeout=10.0)
            deadline = time.monotonic() + 30.0
            while str(path) not in sim.export_done:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            client.close()
            sim.close()
        y, sr = sf.read(str(path), dtype="float64", always_2d=True)
        assert float(np.abs(y).max()) <= 10 ** (-1 / 20) + LSB24
        results[physics] = integrated_loudness(y, sr)
    assert abs(results["pedalboard"] - results["model"]) > 0.5


def test_missing_pedalboard_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_pedalboard(name: str, package: str | None = None) -> object:
        if name == "pedalboard":
            raise ImportError("No module named 'pedalboard'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_pedalboard)
    with pytest.raises(ConfigError) as e:
        make_plant("pedalboard")
    assert str(e.value) == "physics pedalboard needs Spotify's pedalboard package: pip install pedalboard"
    with pytest.raises(ConfigError, match=r"^physics pedalboard-maximizer needs Spotify's pedalboard"):
        make_plant("pedalboard-maximizer")
    make_plant("model")  # the project's own plants need nothing more


# -- the project's own plants through the sim ------------------------------------------------------


def test_dsp_plant_is_the_model_render(song_3s: np.ndarray) -> None:
    stages = chain(
        GlueParams(threshold_db=-20.0, ratio=4.0, makeup_db=3.0), LimiterParams(gain_db=12.0, ceiling_db=-1.0)
    )
    for name in ("model", "vintage", "punchy"):
        from autotune.dsp import PHYSICS

        want = render_stages(song_3s, SR, stages, -1.5, PHYSICS[name])  # type: ignore[arg-type]
        np.testing.assert_allclose(
            make_plant(name).render(song_3s, SR, stages, -1.5), want, rtol=0, atol=1e-12
        )


# -- stress ----------------------------------------------------------------------------------------


def test_stress_changes_what_the_model_cannot_see(song_3s: np.ndarray) -> None:
    plant = make_plant("model")
    x = song_3s.astype(np.float64)
    glue = GlueParams(threshold_db=-20.0, ratio=4.0, makeup_db=4.0)
    lim = LimiterParams(gain_db=6.0, ceiling_db=-1.0)
    stages = chain(glue, lim)
    # Drive slope: Makeup and Gain act as twice (half) what they show.
    doubled = plant.render(song_3s, SR, stages, stress=Stress(drive_slope=2.0))
    want = plant.render(
        song_3s,
        SR,
        chain(
            GlueParams(threshold_db=-20.0, ratio=4.0, makeup_db=8.0),
            LimiterParams(gain_db=12.0, ceiling_db=-1.0),
        ),
    )
    np.testing.assert_allclose(doubled, want, rtol=0, atol=1e-12)
    halved = plant.render(song_3s, SR, stages, stress=Stress(drive_slope=0.5))
    want = plant.render(
        song_3s,
        SR,
        chain(
            GlueParams(threshold_db=-20.0, ratio=4.0, makeup_db=2.0),
            LimiterParams(gain_db=3.0, ceiling_db=-1.0),
        ),
    )
    np.testing.assert_allclose(halved, want, rtol=0, atol=1e-12)
    # Input offset: the devices see a hotter input; the dry path (devices off) does not.
    hot = plant.render(song_3s, SR, stages, stress=Stress(input_offset_db=6.0))
    want = plant.render(x * 10 ** (6 / 20), SR, stages)
    np.testing.assert_allclose(hot, want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(plant.render(song_3s, SR, (), stress=Stress(input_offset_db=6.0)), x)
    # After the chain: +3 dB on everything, the dry export included, so peaks go above the ceiling.
    post = plant.render(song_3s, SR, stages, stress=Stress(post_gain_db=3.0))
    np.testing.assert_allclose(post, plant.render(song_3s, SR, stages) * 10 ** (3 / 20), rtol=1e-12, atol=0)
    assert 20 * np.log10(np.abs(post).max()) == pytest.approx(-1.0 + 3.0, abs=1e-6)
    np.testing.assert_allclose(
        plant.render(song_3s, SR, (), stress=Stress(post_gain_db=3.0)), x * 10 ** (3 / 20), rtol=1e-12
    )
    assert Stress(input_offset_db=-6.0, drive_slope=2.0, post_gain_db=3.0).describe() == (
        "input offset -6 dB, drive slope x2, +3 dB after the chain"
    )
    with pytest.raises(ValueError):
        Stress(drive_slope=0.0)


# -- settings and presets --------------------------------------------------------------------------


def test_settings_know_every_preset_and_the_stress(tmp_path: Path) -> None:
    assert "pedalboard" in PHYSICS_NAMES and {"rec-amen", "rec-amen-4min", "rec-mix"} <= set(SONG_NAMES)
    s = load_settings(
        sim_physics="pedalboard", sim_song="rec-amen", sim_drive_slope=0.5, sim_post_gain_db=3.0
    )
    assert (s.sim_physics, s.sim_song, s.sim_drive_slope, s.sim_post_gain_db) == (
        "pedalboard",
        "rec-amen",
        0.5,
        3.0,
    )
    with pytest.raises(ConfigError, match=r"setting sim_physics .*'bogus'.*unknown physics .*pedalboard"):
        load_settings(sim_physics="bogus")
    with pytest.raises(ConfigError, match=r"setting sim_song .*unknown song .*rec-amen-4min"):
        load_settings(sim_song="rec-nope")
    with pytest.raises(ConfigError, match="sim_drive_slope"):
        load_settings(sim_drive_slope=0.0)
    # A recording is a valid name even where its loops are missing; building the options says what to install.
    s = load_settings(sim_song="rec-amen", sim_samples_dir=tmp_path)
    with pytest.raises(ConfigError) as e:
        sim_options(s)
    assert "\n" not in str(e.value) and f"apt-get install {PACKAGE}" in str(e.value)


def test_sim_options_from_settings(demo_cache: Path) -> None:
    s = load_settings(
        sim_physics="vintage", sim_input_offset_db=-6.0, sim_chain_on="bus", cache_dir=demo_cache
    )
    o = sim_options(s)
    assert o.chain_on == "bus" and o.stress == Stress(input_offset_db=-6.0)
    assert getattr(o.physics, "name", None) == "vintage" and o.demo == song("demo")


@needs_pedalboard
def test_both_third_party_physics_come_from_the_settings(demo_cache: Path) -> None:
    """AUTOTUNE_SIM_PHYSICS names either JUCE plant, and the virtual Live renders with that one."""
    for name in THIRD_PARTY:
        o = sim_options(load_settings(sim_physics=name, cache_dir=demo_cache))
        assert o.physics == name and make_plant(o.physics).name == name


# -- real recordings -------------------------------------------------------------------------------


def test_missing_recordings_name_the_package(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        song("rec-mix", tmp_path)
    message = str(e.value)
    assert "\n" not in message and PACKAGE in message and "rec-mix" in message
    with pytest.raises(ConfigError, match=PACKAGE):
        VirtualLive(
            "127.0.0.1",
            0,
            reply_port=0,
            export_root=tmp_path,
            options=SimOptions(demo=RECORDINGS["rec-amen"].with_samples_dir(tmp_path)),
        )


@needs_samples
@pytest.mark.parametrize("name", ["rec-amen", "rec-tabla", "rec-mix"])
def test_recordings_have_the_stated_peak_and_length(name: str) -> None:
    spec = RECORDINGS[name]
    y = build_recording(spec)
    assert y.shape == (round(30.0 * SR), 2) and spec.sample_rate == SR
    assert 20 * np.log10(np.abs(y).max()) == pytest.approx(spec.peak_dbfs, abs=1e-6)
    assert -3.0 <= spec.peak_dbfs <= -1.0
    # Real music, not silence or a tone: loud enough, and with a mix engineer's crest factor.
    plr = spec.peak_dbfs - lufs(y)
    assert 8.0 < plr < 22.0


@needs_samples
def test_four_minute_recording_and_its_cache(tmp_path: Path) -> None:
    spec = RECORDINGS["rec-amen-4min"]
    y = DemoSource.get(spec, tmp_path)
    assert y.shape == (240 * SR, 2) and y.dtype == np.float32
    assert 20 * np.log10(float(np.abs(y).max())) == pytest.approx(spec.peak_dbfs, abs=1e-4)
    cached = tmp_path / f"{spec.cache_key()}.npy"
    assert cached.is_file()
    np.testing.assert_allclose(np.load(cached), y, rtol=0, atol=0)  # the file is what is served
    # The 30 s song is the start of the same material (its own peak normalisation differs by a hair: the
    # resampler lands on other phases of the loop in later passes).
    short = build_recording(RECORDINGS["rec-amen"])
    np.testing.assert_allclose(y[: 10 * SR], short[: 10 * SR], atol=2e-3)
