"""Master-chain physics (autotune.dsp): the behaviour a producer would hear or meter.

Short demo songs (2-6 s) and noise keep the suite fast; the default 30 s demo is rendered once. The
contracts a producer relies on (ceiling, bypass, monotonic gain) are checked for every plant in PHYSICS,
not only for the model.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import fields, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from autotune.dsp import (
    PHYSICS,
    SONGS,
    ChainParams,
    DemoSpec,
    GlueParams,
    LimiterParams,
    Physics,
    demo_track,
    render,
)
from autotune.dsp.bs1770 import integrated_loudness
from autotune.dsp.chain import (
    Stage,
    db_to_lin,
    forward_min,
    glue_compressor,
    limiter,
    render_stages,
    saturate,
    trailing_mean,
)
from autotune.dsp.truepeak import to_db, true_peak

SR = 48_000
Mode = Literal["standard", "soft_clip", "true_peak"]
MODES: tuple[Mode, ...] = ("standard", "soft_clip", "true_peak")
Audio = NDArray[np.float64]
PLANTS = [p for p in PHYSICS.values() if p != Physics()]
ALL_PHYSICS = pytest.mark.parametrize("physics", list(PHYSICS.values()), ids=list(PHYSICS))
#: Every limiter mode on the model; plants without true-peak mode, whose 4x detection costs the most and is
#: the same code for every physics (the plants differ in what happens after detection).
PHYSICS_AND_MODES = pytest.mark.parametrize(
    ("physics", "mode"),
    [(Physics(), m) for m in MODES] + [(p, m) for p in PHYSICS.values() if p != Physics() for m in MODES[:2]],
    ids=[f"model-{m}" for m in MODES] + [f"{n}-{m}" for n in PHYSICS if n != "model" for m in MODES[:2]],
)


@functools.cache
def short_demo(seconds: float = 4.0, seed: int = 7) -> Audio:
    x = demo_track(DemoSpec(seconds=seconds, seed=seed))
    x.setflags(write=False)  # shared between tests: any in-place write fails loudly
    return x


@functools.cache
def full_demo() -> Audio:
    x = demo_track()
    x.setflags(write=False)
    return x


@functools.cache
def noise(seconds: float = 2.0) -> Audio:
    rng = np.random.default_rng(11)
    x = 0.2 * rng.standard_normal((round(seconds * SR), 2))
    x.setflags(write=False)
    return x


def peak(x: NDArray[np.floating]) -> float:
    return float(np.max(np.abs(x)))


def peak_db(x: NDArray[np.floating]) -> float:
    return to_db(peak(x))


def crest_db(x: Audio) -> float:
    """Peak-to-loudness ratio (dB): what compression and limiting trade away."""
    return peak_db(x) - integrated_loudness(x, SR)


# --- Demo song -------------------------------------------------------------------------------------------


def test_demo_is_deterministic() -> None:
    spec = DemoSpec(seconds=3)
    a, b = demo_track(spec), demo_track(spec)
    assert np.array_equal(a, b)
    other = demo_track(DemoSpec(seconds=3, seed=8))
    assert a.shape == other.shape
    assert np.max(np.abs(a - other)) > 0.01  # a new seed is a new performance, not a rounding difference
    assert DemoSpec(seconds=3).cache_key() != DemoSpec(seconds=3, seed=8).cache_key()


@pytest.mark.parametrize(
    "spec",
    [
        DemoSpec(seconds=3),
        DemoSpec(seconds=2.5, peak_dbfs=-6.0),
        DemoSpec(seconds=2, sample_rate=44_100, peak_dbfs=-1.0),
        DemoSpec(seconds=3, tempo_bpm=95, seed=3, bass_db=0.0),
    ],
)
def test_demo_shape_and_peak(spec: DemoSpec) -> None:
    x = demo_track(spec)
    assert x.shape == (round(spec.seconds * spec.sample_rate), 2)
    assert x.dtype == np.float64
    assert peak_db(x) == pytest.approx(spec.peak_dbfs, abs=1e-9)
    assert not np.array_equal(x[:, 0], x[:, 1])  # a real stereo mix (panned hats, detuned pads)


def test_default_demo_loudness_is_an_unmastered_mix() -> None:
    x = full_demo()
    assert x.shape == (30 * SR, 2)
    assert peak_db(x) == pytest.approx(-3.8, abs=1e-9)
    # About -18.3 LUFS at a -3.8 dBFS peak: loud targets need the chain.
    assert -19.0 <= integrated_loudness(x, SR) <= -17.5


# --- Limiter: the brick wall -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("gain_db", [0.0, 6.0, 15.0, 30.0])
@pytest.mark.parametrize(
    ("ceiling_db", "release_ms", "lookahead_ms"),
    [(-0.3, 300.0, 3.0), (-1.0, 1.0, 1.5), (-6.0, 1000.0, 6.0), (0.0, 50.0, 0.0), (-12.0, 0.0, 0.02)],
)
def test_limiter_output_never_exceeds_ceiling(
    mode: Mode, gain_db: float, ceiling_db: float, release_ms: float, lookahead_ms: float
) -> None:
    p = LimiterParams(
        gain_db=gain_db, ceiling_db=ceiling_db, release_ms=release_ms, lookahead_ms=lookahead_ms, mode=mode
    )
    for x in (short_demo(2.0), noise()):
        assert peak(limiter(x, SR, p)) <= db_to_lin(ceiling_db)


@pytest.mark.parametrize("plant", PLANTS, ids=[p.name for p in PLANTS])
@pytest.mark.parametrize("mode", MODES[:2])  # true peak: in the property test below, for every physics
@pytest.mark.parametrize(
    ("ceiling_db", "release_ms", "lookahead_ms"), [(-0.3, 300.0, 3.0), (-1.0, 1.0, 1.5), (-12.0, 0.0, 0.02)]
)
def test_plant_limiters_never_exceed_the_ceiling(
    plant: Physics, mode: Mode, ceiling_db: float, release_ms: float, lookahead_ms: float
) -> None:
    for gain_db in (15.0, 30.0):
        p = LimiterParams(
            gain_db=gain_db,
            ceiling_db=ceiling_db,
            release_ms=release_ms,
            lookahead_ms=lookahead_ms,
            mode=mode,
        )
        for x in (short_demo(2.0), noise()):
            assert peak(limiter(x, SR, p, plant)) <= db_to_lin(ceiling_db)


@settings(max_examples=40, deadline=None)
@given(
    gain_db=st.floats(-12.0, 40.0),
    ceiling_db=st.floats(-20.0, 0.0),
    release_ms=st.floats(0.0, 3000.0),
    lookahead_ms=st.floats(0.0, 12.0),
    mode=st.sampled_from(MODES),
    use_noise=st.booleans(),
    physics=st.sampled_from(list(PHYSICS.values())),
)
def test_limiter_ceiling_holds_for_any_settings(
    gain_db: float,
    ceiling_db: float,
    release_ms: float,
    lookahead_ms: float,
    mode: Mode,
    use_noise: bool,
    physics: Physics,
) -> None:
    x = noise(1.0) if use_noise else short_demo(2.0)
    p = LimiterParams(
        gain_db=gain_db, ceiling_db=ceiling_db, release_ms=release_ms, lookahead_ms=lookahead_ms, mode=mode
    )
    y = limiter(x, SR, p, physics)
    assert y.shape == x.shape
    assert np.all(np.isfinite(y))
    assert peak(y) <= db_to_lin(ceiling_db)


@settings(max_examples=25, deadline=None)
@given(
    gain_db=st.floats(0.0, 36.0),
    ceiling_db=st.floats(-12.0, 0.0),
    release_ms=st.floats(0.0, 2000.0),
    lookahead_ms=st.floats(0.0, 10.0),
    mode=st.sampled_from(("standard", "true_peak")),
    physics=st.sampled_from(list(PHYSICS.values())),
)
def test_limiter_is_a_linked_gain_not_a_clipper(
    gain_db: float, ceiling_db: float, release_ms: float, lookahead_ms: float, mode: Mode, physics: Physics
) -> None:
    # The final clip in limiter() only trims floating-point ulps: the ceiling is met by gain reduction,
    # the same on both channels (no distortion, stereo image kept) and never a boost.
    x = short_demo(2.0)
    p = LimiterParams(
        gain_db=gain_db, ceiling_db=ceiling_db, release_ms=release_ms, lookahead_ms=lookahead_ms, mode=mode
    )
    driven = x * db_to_lin(gain_db)
    y = limiter(x, SR, p, physics)
    audible = np.all(np.abs(driven) > 1e-3, axis=1)
    g = y[audible] / driven[audible]
    np.testing.assert_allclose(g[:, 0], g[:, 1], rtol=1e-9, atol=0)
    assert np.all(g > 0)
    assert np.all(g <= 1.0 + 1e-12)


@ALL_PHYSICS
def test_limiter_is_transparent_below_the_ceiling(physics: Physics) -> None:
    x = short_demo()  # peaks at -3.8 dBFS
    assert np.array_equal(limiter(x, SR, LimiterParams(gain_db=0.0, ceiling_db=-0.3), physics), x)
    y = limiter(x, SR, LimiterParams(gain_db=3.0, ceiling_db=-0.3), physics)  # -0.8 dBFS: still no limiting
    np.testing.assert_allclose(y, x * db_to_lin(3.0), rtol=1e-12)


@PHYSICS_AND_MODES
def test_more_input_gain_never_makes_it_quieter(physics: Physics, mode: Mode) -> None:
    x = short_demo()
    gains = np.arange(0.0, 25.0, 1.0 if physics == Physics() else 2.0)  # plants: coarser, same contract
    lufs = [
        integrated_loudness(limiter(x, SR, LimiterParams(gain_db=g, mode=mode), physics), SR) for g in gains
    ]
    steps = np.diff(lufs)
    assert np.all(steps >= -0.01), list(zip(gains[1:], steps, strict=True))
    assert lufs[-1] > lufs[0] + 6.0  # and the gain does buy loudness


@PHYSICS_AND_MODES
def test_longer_release_is_never_louder(physics: Physics, mode: Mode) -> None:
    x = short_demo()
    lufs = [
        integrated_loudness(limiter(x, SR, LimiterParams(gain_db=12.0, release_ms=r, mode=mode), physics), SR)
        for r in (1.0, 10.0, 100.0, 300.0, 1000.0, 3000.0)
    ]
    assert np.all(np.diff(lufs) <= 0.01), lufs
    assert lufs[0] > lufs[-1] + 0.3


def test_true_peak_mode_catches_intersample_overs() -> None:
    x = short_demo()
    ceiling = -0.3
    std = limiter(x, SR, LimiterParams(gain_db=18.0, ceiling_db=ceiling, mode="standard"))
    tp = limiter(x, SR, LimiterParams(gain_db=18.0, ceiling_db=ceiling, mode="true_peak"))
    # Standard mode pins the sample peak but leaves overs of several tenths of a dB between samples.
    assert to_db(true_peak(std)) > ceiling + 0.3
    # True-peak mode (4x detection) keeps them within a tenth of a dB of the ceiling (measured +0.07 dB
    # with the project's meter).
    assert to_db(true_peak(tp)) <= ceiling + 0.1


@ALL_PHYSICS
def test_limiter_off_is_bypass(physics: Physics) -> None:
    x = short_demo()
    y = limiter(x, SR, LimiterParams(on=False, gain_db=20.0, ceiling_db=-10.0), physics)
    assert np.array_equal(y, x)


# --- Glue compressor --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [2.0, 4.0, 10.0])
@pytest.mark.parametrize("attack_ms", [0.1, 0.3])
def test_lower_threshold_reduces_crest_factor(ratio: float, attack_ms: float) -> None:
    # A fast attack (under the 0.67 ms control block) is needed: the gain starts at rest, so with a 1 ms
    # attack the song's very first kick (t = 0) already slips through at a -30 dB threshold, ratio 10.
    x = short_demo()
    crest = [
        crest_db(glue_compressor(x, SR, GlueParams(threshold_db=t, ratio=ratio, attack_ms=attack_ms)))
        for t in (0.0, -10.0, -20.0, -30.0)
    ]
    assert crest[0] == pytest.approx(crest_db(x), abs=1e-6)  # nothing reaches a 0 dB threshold
    assert crest[1] < crest[0] - 0.5
    assert crest[2] < crest[1] - 0.2
    assert crest[3] <= crest[2] + 0.01


def test_slow_attack_lets_transients_through() -> None:
    # With the default 10 ms attack the kick's first milliseconds pass before the gain comes down, so
    # deep compression takes more off the loudness than off the peak: the crest factor grows ("punch").
    # Only a fast attack makes the compressor reduce the crest factor (test above).
    x = short_demo()
    y = glue_compressor(x, SR, GlueParams(threshold_db=-30.0, ratio=4.0, attack_ms=10.0))
    loudness_drop = integrated_loudness(x, SR) - integrated_loudness(y, SR)
    peak_drop = peak_db(x) - peak_db(y)
    assert peak_drop > 1.0
    assert loudness_drop > peak_drop + 2.0


@ALL_PHYSICS
def test_ratio_one_never_compresses(physics: Physics) -> None:
    # A plant's output stage may still colour the signal, but no level-dependent gain reduction happens.
    x = short_demo()
    for threshold in (-40.0, -20.0, 0.0):
        y = glue_compressor(x, SR, GlueParams(threshold_db=threshold, ratio=1.0), physics)
        assert np.array_equal(y, saturate(x, physics.saturation_drive))
    assert np.array_equal(glue_compressor(x, SR, GlueParams(ratio=1.0)), x)


@pytest.mark.parametrize("makeup_db", [0.0, 2.0, 6.5, -3.0])
def test_makeup_adds_exactly_its_gain_below_threshold(makeup_db: float) -> None:
    # The demo peaks at -3.8 dBFS: below a 0 dB threshold and below its 6 dB soft knee (which starts
    # 3 dB under the threshold), so the only change is the makeup gain.
    x = short_demo()
    y = glue_compressor(x, SR, GlueParams(threshold_db=0.0, ratio=4.0, makeup_db=makeup_db))
    np.testing.assert_allclose(y, x * db_to_lin(makeup_db), rtol=1e-12, atol=0)
    assert integrated_loudness(y, SR) == pytest.approx(integrated_loudness(x, SR) + makeup_db, abs=1e-3)


def test_soft_knee_starts_below_threshold() -> None:
    x = short_demo() * db_to_lin(3.0)  # peaks at -0.8 dBFS: under a 0 dB threshold, inside the knee
    y = glue_compressor(x, SR, GlueParams(threshold_db=0.0, ratio=4.0))
    assert 0.0 < peak_db(x) - peak_db(y) < 0.5


def test_range_caps_gain_reduction() -> None:
    x = short_demo()
    y = glue_compressor(x, SR, GlueParams(threshold_db=-40.0, ratio=10.0, attack_ms=0.01, range_db=3.0))
    audible = np.abs(x) > 1e-6
    ratio = np.abs(y[audible]) / np.abs(x[audible])
    assert ratio.min() >= db_to_lin(-3.0) * (1 - 1e-9)
    assert ratio.min() < db_to_lin(-2.9)  # and the cap is reached


@ALL_PHYSICS
def test_dry_wet(physics: Physics) -> None:
    x = short_demo()
    squash = GlueParams(threshold_db=-30.0, ratio=10.0, attack_ms=0.1, makeup_db=6.0)
    wet = glue_compressor(x, SR, squash, physics)
    assert not np.allclose(wet, x)
    assert np.array_equal(glue_compressor(x, SR, replace(squash, dry_wet=0.0), physics), x)
    half = glue_compressor(x, SR, replace(squash, dry_wet=0.5), physics)
    np.testing.assert_allclose(half, 0.5 * wet + 0.5 * x, rtol=1e-12, atol=1e-15)


@ALL_PHYSICS
def test_glue_off_is_bypass(physics: Physics) -> None:
    x = short_demo()
    y = glue_compressor(x, SR, GlueParams(on=False, threshold_db=-40.0, ratio=10.0, makeup_db=12.0), physics)
    assert np.array_equal(y, x)


@ALL_PHYSICS
def test_peak_clip_keeps_a_hot_signal_below_full_scale(physics: Physics) -> None:
    x = short_demo() * db_to_lin(12.0)  # +8 dBFS peaks
    y = glue_compressor(x, SR, GlueParams(threshold_db=0.0, ratio=2.0, peak_clip=True), physics)
    assert peak(y) < 1.0
    assert peak(glue_compressor(x, SR, GlueParams(threshold_db=0.0, ratio=2.0))) > 1.0


# --- Master fader after the chain -----------------------------------------------------------------------


@ALL_PHYSICS
@pytest.mark.parametrize("fader_db", [3.0, -6.0, 0.0])
def test_fader_after_the_limiter_moves_the_peak_past_the_ceiling(physics: Physics, fader_db: float) -> None:
    # The lesson from the real sessions: the master fader sits after the devices, so +3 dB on the fader
    # puts the export 3 dB over the limiter's ceiling, whatever the ceiling says.
    x = short_demo()
    chain = ChainParams(
        glue=GlueParams(threshold_db=-20.0, ratio=4.0, makeup_db=4.0), limiter=LimiterParams(gain_db=10.0)
    )
    at_unity = render(x, SR, chain, physics)
    y = render(x, SR, replace(chain, fader_db=fader_db), physics)
    assert peak_db(at_unity) == pytest.approx(-0.3, abs=1e-9)
    assert peak_db(y) == pytest.approx(-0.3 + fader_db, abs=1e-9)
    assert integrated_loudness(y, SR) == pytest.approx(integrated_loudness(at_unity, SR) + fader_db, abs=1e-3)


# --- Purity ---------------------------------------------------------------------------------------------


CHAINS = [
    ChainParams(),
    ChainParams(
        glue=GlueParams(threshold_db=-20.0, ratio=4.0, makeup_db=3.0, dry_wet=0.7, peak_clip=True),
        limiter=LimiterParams(gain_db=9.0, ceiling_db=-1.0, mode="soft_clip"),
        fader_db=-1.5,
    ),
    ChainParams(limiter=LimiterParams(gain_db=12.0, mode="true_peak"), fader_db=3.0),
    ChainParams(glue=GlueParams(on=False), limiter=LimiterParams(on=False)),
]


@pytest.mark.parametrize("params", CHAINS)
def test_render_is_pure(params: ChainParams) -> None:
    x = np.array(short_demo())  # writable copy: render must not write into it anyway
    before = x.copy()
    a = render(x, SR, params)
    assert np.array_equal(x, before)
    b = render(x, SR, params)
    assert np.array_equal(a, b)
    assert a.shape == x.shape


def test_render_matches_its_stages() -> None:
    x = short_demo()
    p = CHAINS[1]
    by_hand = limiter(glue_compressor(x, SR, p.glue), SR, p.limiter) * db_to_lin(p.fader_db)
    np.testing.assert_allclose(render(x, SR, p), by_hand, rtol=1e-12, atol=0)
    # Device order matters: a compressor with makeup after the limiter pushes past the ceiling.
    glue = GlueParams(threshold_db=-10.0, ratio=2.0, makeup_db=6.0)
    lim = LimiterParams(gain_db=6.0, ceiling_db=-1.0)
    assert peak_db(render_stages(x, SR, (("glue", glue), ("limiter", lim)))) <= -1.0 + 1e-9
    assert peak_db(render_stages(x, SR, (("limiter", lim), ("glue", glue)))) > -1.0 + 3.0


@pytest.mark.parametrize("physics", PLANTS, ids=[p.name for p in PLANTS])
def test_render_matches_its_stages_for_every_physics(physics: Physics) -> None:
    x = short_demo()
    p = CHAINS[1]
    by_hand = limiter(glue_compressor(x, SR, p.glue, physics), SR, p.limiter, physics) * db_to_lin(p.fader_db)
    np.testing.assert_allclose(render(x, SR, p, physics), by_hand, rtol=1e-12, atol=0)
    y = render_stages(x, SR, (("glue", p.glue), ("limiter", p.limiter)), p.fader_db, physics)
    assert np.array_equal(y, render(x, SR, p, physics))


# --- Defaults stay what they were -------------------------------------------------------------------------
# Caches on disk, earlier studies and the model's calibration all assume today's audio: the default song and
# the default physics must keep producing it. numpy picks its SIMD kernels (sin, exp, log, ...) per CPU at run
# time, so the last bits of a float render differ between machines while the audio stays the same: the renders
# are compared with stated tolerances against decimated references in tests/data/dsp_reference.npz (written by
# the code of 2026-11-25; render0, which has Soft Clip on, rewritten on 2026-12-01 when Soft Clip became
# Live's: the Glue's output never above -0.5 dB), never by hashing their float bytes.

REFERENCE = Path(__file__).parent / "data" / "dsp_reference.npz"
#: Every STRIDE-th sample is kept: enough to catch any change of level, shape or timing.
STRIDE_DEMO = 997
STRIDE_RENDER = 97
#: Tolerances: far above the ~1e-15 rounding differences between SIMD kernels, far below anything audible
#: (1e-6 is -120 dBFS) or metered (0.001 LU).
MAX_ABS_DIFF = 1e-6
MAX_LUFS_DIFF = 0.001
#: Renders of the 4 s demo by the chain as it was before Physics existed (fader -1.5 dB).
PINNED = [
    (
        GlueParams(threshold_db=-20.0, ratio=4.0, makeup_db=3.0, dry_wet=0.7, peak_clip=True),
        LimiterParams(gain_db=9.0, ceiling_db=-1.0, mode="soft_clip"),
    ),
    (
        GlueParams(threshold_db=-30.0, ratio=10.0, attack_ms=1.0, release_s=None, makeup_db=8.0),
        LimiterParams(gain_db=14.0, ceiling_db=-1.0, mode="true_peak", release_ms=100.0),
    ),
    (
        GlueParams(threshold_db=-30.0, ratio=10.0, attack_ms=1.0, release_s=None, makeup_db=8.0),
        LimiterParams(gain_db=12.0),
    ),
]


@functools.cache
def reference() -> dict[str, Audio]:
    with np.load(REFERENCE) as z:
        return {k: np.asarray(z[k]) for k in z.files}


def assert_same_audio(y: Audio, name: str, stride: int) -> None:
    ref = reference()
    sampled = y[::stride]
    assert sampled.shape == ref[name].shape
    assert float(np.max(np.abs(sampled - ref[name]))) <= MAX_ABS_DIFF
    assert abs(integrated_loudness(y, SR) - float(ref[f"{name}_lufs"])) <= MAX_LUFS_DIFF


def test_default_demo_is_unchanged() -> None:
    assert_same_audio(full_demo(), "demo", STRIDE_DEMO)
    assert SONGS["demo"] == DemoSpec()
    assert DemoSpec().cache_key() == "demo-v1-30s-48000-7-120-0--4--9--3.8"


@pytest.mark.parametrize(("index", "glue", "lim"), [(i, glue, lim) for i, (glue, lim) in enumerate(PINNED)])
def test_default_physics_renders_as_before(index: int, glue: GlueParams, lim: LimiterParams) -> None:
    x = short_demo()
    params = ChainParams(glue=glue, limiter=lim, fader_db=-1.5)
    y = render(x, SR, params)
    assert_same_audio(y, f"render{index}", STRIDE_RENDER)
    # Physics() and the "model" preset are the same code path: the same machine gives the same bits.
    assert np.array_equal(render(x, SR, params, Physics()), y)
    assert np.array_equal(render(x, SR, params, PHYSICS["model"]), y)
    stages: tuple[Stage, ...] = (("glue", glue), ("limiter", lim))
    assert np.array_equal(
        render_stages(x, SR, stages, -1.5, physics=Physics()), render_stages(x, SR, stages, -1.5)
    )


def test_the_reference_comparison_catches_a_small_change() -> None:
    """The tolerance is not so loose that it passes anything: a 0.01 dB change of level fails it."""
    y = render(short_demo(), SR, ChainParams(glue=PINNED[2][0], limiter=PINNED[2][1], fader_db=-1.5))
    with pytest.raises(AssertionError):
        assert_same_audio(y * db_to_lin(0.01), "render2", STRIDE_RENDER)


# --- Plants: physics the model does not know ---------------------------------------------------------------

#: A typical loud master: about -11 LUFS from the demo, a few dB of glue and limiter reduction each.
MODERATE = ChainParams(
    glue=GlueParams(threshold_db=-20.0, ratio=4.0, makeup_db=6.0),
    limiter=LimiterParams(gain_db=10.0, ceiling_db=-1.0),
)


def test_presets_are_named_after_their_keys() -> None:
    assert PHYSICS["model"] == Physics()
    assert {name: p.name for name, p in PHYSICS.items()} == {name: name for name in PHYSICS}
    assert len(PLANTS) >= 2


@pytest.mark.parametrize("plant", PLANTS, ids=[p.name for p in PLANTS])
# Not "dense": there vintage's RMS detector (compresses less: louder) and auto release (quieter) cancel at
# this setting; a plant is a different device, not a constant offset.
@pytest.mark.parametrize("song", ["demo", "bright", "dynamic"])
def test_each_plant_sounds_measurably_different_but_plausible(plant: Physics, song: str) -> None:
    x = demo_track(replace(SONGS[song], seconds=4.0))
    model = integrated_loudness(render(x, SR, MODERATE), SR)
    other = integrated_loudness(render(x, SR, MODERATE, plant), SR)
    # The same knob positions give a different export (so a model cannot simply invert its own simulator),
    # but by the fraction of a dB to a dB or so that separates two real bus compressors and limiters.
    assert 0.1 < abs(other - model) < 2.0, (plant.name, song, other - model)


@pytest.mark.parametrize("plant", PLANTS, ids=[p.name for p in PLANTS])
def test_plants_keep_the_chain_contract(plant: Physics) -> None:
    x = short_demo(3.0)
    for glue_db, gain_db in ((-10.0, 0.0), (-30.0, 20.0)):
        params = ChainParams(
            glue=GlueParams(threshold_db=glue_db, ratio=10.0, makeup_db=10.0),
            limiter=LimiterParams(gain_db=gain_db, ceiling_db=-1.0),
        )
        assert peak(render(x, SR, params, plant)) <= db_to_lin(-1.0)
    off = ChainParams(glue=GlueParams(on=False), limiter=LimiterParams(on=False), fader_db=-2.0)
    np.testing.assert_array_equal(render(x, SR, off, plant), x * db_to_lin(-2.0))


@pytest.mark.parametrize(
    "bad",
    [
        {"glue_detector": "RMS"},
        {"limiter_release": "auto"},
        {"glue_knee_db": -1.0},
        {"glue_rms_ms": 0.0},
        {"time_scale": 0.0},
        {"saturation_drive": -0.5},
    ],
)
def test_physics_rejects_settings_it_would_misread(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Physics(**bad)  # type: ignore[arg-type]


def test_hard_knee_is_allowed() -> None:
    x = short_demo(2.0)
    y = glue_compressor(x, SR, GlueParams(threshold_db=-20.0, ratio=4.0), Physics(glue_knee_db=0.0))
    assert np.all(np.isfinite(y))
    assert peak(y) < peak(x)


def test_saturation_leaves_quiet_signals_and_takes_a_little_off_loud_ones() -> None:
    x = np.linspace(-1.0, 1.0, 2001)[:, None]
    y = saturate(x, 0.5)
    assert np.all(np.diff(y[:, 0]) > 0)  # monotonic: more in is never less out
    quiet = np.abs(x) <= 0.03  # -30 dBFS
    np.testing.assert_allclose(y[quiet], x[quiet], rtol=1e-3)
    assert -1.0 < to_db(float(y.max())) < -0.5  # full scale loses under a dB
    assert saturate(x, 0.0) is x


def test_program_release_holds_sustained_reduction_longer() -> None:
    # A 1 kHz tone 12 dB over the ceiling, either as a 150 ms note or a 1 ms click, then silence-ish.
    n = SR
    t = np.arange(n) / SR
    quiet = 0.01 * np.sin(2 * np.pi * 1000 * t)
    lim = LimiterParams(ceiling_db=-12.0, release_ms=300.0, lookahead_ms=3.0)
    program = replace(Physics(), limiter_release="program")

    def gain_reduction_db(burst_ms: float, physics: Physics) -> float:
        x = quiet.copy()
        end = round(0.1 * SR + burst_ms * SR / 1000)
        x[round(0.1 * SR) : end] *= 100.0  # 0 dBFS tone
        y = limiter(np.stack([x, x], axis=1), SR, lim, physics)
        probe = slice(end + round(0.2 * SR), end + round(0.25 * SR))  # 200-250 ms after the burst
        return to_db(peak(quiet[probe])) - to_db(peak(y[probe, 0]))

    held = gain_reduction_db(150.0, program)
    assert held > gain_reduction_db(150.0, Physics()) + 2.0  # sustained: recovers much slower
    assert gain_reduction_db(1.0, program) == pytest.approx(gain_reduction_db(1.0, Physics()), abs=0.5)


def test_rms_detector_lets_drum_transients_through() -> None:
    # An RMS detector reads a kick lower than a peak detector does, so the same threshold takes less off.
    x = short_demo()
    glue = GlueParams(threshold_db=-20.0, ratio=4.0, attack_ms=0.1)
    peak_det = glue_compressor(x, SR, glue)
    rms_det = glue_compressor(x, SR, glue, Physics(glue_detector="rms"))
    assert peak_db(rms_det) > peak_db(peak_det) + 1.0


# --- Songs ----------------------------------------------------------------------------------------------


def band_share_db(x: Audio, lo: float, hi: float) -> float:
    """Share of the mix's power between lo and hi Hz (dB): a crude spectral fingerprint."""
    power = np.abs(np.fft.rfft(x.mean(axis=1))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / SR)
    return float(10.0 * np.log10(power[(freqs >= lo) & (freqs < hi)].sum() / power.sum()))


@functools.cache
def short_song(name: str) -> Audio:
    x = demo_track(replace(SONGS[name], seconds=4.0))
    x.setflags(write=False)
    return x


def test_songs_span_crest_factors_in_order() -> None:
    crest = {name: crest_db(short_song(name)) for name in ("dense", "bright", "demo", "dynamic")}
    order = list(crest.values())
    assert all(b > a + 1.0 for a, b in itertools.pairwise(order)), crest
    assert crest["dense"] < 11.5
    assert crest["dynamic"] > 16.0


def test_songs_differ_in_spectrum() -> None:
    demo, bright, dense = short_song("demo"), short_song("bright"), short_song("dense")
    assert band_share_db(bright, 4000, 24000) > band_share_db(demo, 4000, 24000) + 3.0
    assert band_share_db(bright, 20, 200) < band_share_db(demo, 20, 200) - 2.0
    assert band_share_db(dense, 4000, 24000) < band_share_db(demo, 4000, 24000) - 6.0


@pytest.mark.parametrize("name", list(SONGS))
def test_every_song_is_an_unmastered_mix_at_the_same_peak(name: str) -> None:
    x = short_song(name)
    assert x.shape == (4 * SR, 2)
    assert peak_db(x) == pytest.approx(-3.8, abs=1e-9)
    assert not np.array_equal(x[:, 0], x[:, 1])


def test_every_song_option_is_in_the_cache_key() -> None:
    base = DemoSpec(seconds=3)
    keys = {base.cache_key()}
    for f in fields(DemoSpec):
        value = getattr(base, f.name)
        changed = replace(base, **{f.name: value + 1 if not isinstance(value, bool) else not value})
        keys.add(changed.cache_key())
    assert len(keys) == len(fields(DemoSpec)) + 1  # each field on its own yields a new key
    assert len({spec.cache_key() for spec in SONGS.values()}) == len(SONGS)


# --- Helpers against brute force --------------------------------------------------------------------------


def brute_forward_min(a: Audio, size: int) -> Audio:
    padded = np.concatenate([a, np.full(max(size - 1, 0), a[-1])])
    return np.array([padded[i : i + max(size, 1)].min() for i in range(len(a))])


def brute_trailing_mean(a: Audio, size: int) -> Audio:
    size = max(size, 1)
    padded = np.concatenate([np.full(size - 1, a[0]), a])
    return np.array([padded[i : i + size].mean() for i in range(len(a))])


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 257])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 16, 144, 300])
def test_forward_min_and_trailing_mean_match_brute_force(n: int, size: int) -> None:
    a = np.random.default_rng(n * 1000 + size).uniform(0.0, 1.0, n)
    np.testing.assert_array_equal(forward_min(a, size), brute_forward_min(a, size))
    np.testing.assert_allclose(trailing_mean(a, size), brute_trailing_mean(a, size), rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    a=arrays(np.float64, st.integers(1, 80), elements=st.floats(0.0, 1.0)),
    size=st.integers(0, 100),
)
def test_helpers_match_brute_force_on_any_input(a: Audio, size: int) -> None:
    np.testing.assert_array_equal(forward_min(a, size), brute_forward_min(a, size))
    np.testing.assert_allclose(trailing_mean(a, size), brute_trailing_mean(a, size), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dry_wet", [1.0, 0.5])
def test_soft_clip_keeps_the_glues_output_under_minus_half_a_db(dry_wet: float) -> None:
    """Live's manual: with Soft Clip (Peak Clip In) on, the Glue's output never exceeds -0.5 dB, however
    hard it is driven, and Dry/Wet does not let the dry half past it."""
    x = short_demo(2.0)
    hot = GlueParams(threshold_db=-10.0, ratio=4.0, makeup_db=20.0, dry_wet=dry_wet, peak_clip=True)
    y = glue_compressor(x * db_to_lin(6.0), SR, hot)
    assert peak_db(y) <= -0.5 + 1e-9
    assert peak_db(glue_compressor(x * db_to_lin(6.0), SR, replace(hot, peak_clip=False))) > 0.0
