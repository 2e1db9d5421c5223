"""The fast chain model and Glue ballistics against the straightforward loops they replace.

`ChainModel.predict` and `glue_gain_reduction` run compiled kernels when numba is installed, and numpy /
pure Python otherwise. Whichever runs, the numbers must be the ones of the plain implementation written
out below (the model as it was before the kernels: a Python loop for the ballistics, numpy for the
limiter), within stated tolerances, on songs, synthetic block features with silence and bursts, and
settings at the edges (attack longer than release, Auto release, ratio 10 and 1, every look-ahead, Soft
Clip, Limiter Auto, Dry/Wet, devices off, a silent fader). Tolerances, never float hashes: numpy and LLVM
pick different SIMD kernels on different CPUs.

Each test runs on three paths: `jit` (numba's machine code; skipped without numba), `python` (the same
kernels run as plain Python, so their logic is checked even where numba is missing) and `numpy` (the
fallback without numba).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from autotune.dsp import (
    ChainParams,
    DemoSpec,
    GlueParams,
    LimiterParams,
    Physics,
    chain,
    compiled,
    demo_track,
    model,
)
from autotune.dsp.chain import GLUE_AUTO_RELEASE_S, GLUE_BLOCK, glue_compressor, glue_gain_reduction
from autotune.dsp.model import ChainModel, DryFeatures, Predicted
from autotune.modelsearch import features, gated_lufs

Vec = NDArray[np.float64]
SR = 48_000

#: Per-block Glue gain reduction (dB): the kernel is the same loop, so only rounding may differ.
GR_DB = 1e-9
#: Integrated loudness of a prediction (LU).
LUFS = 1e-6
#: Device effort (mean gain reduction, dB) and output peak (dB). The reference's trailing mean is a
#: difference of cumulative sums over the whole song, which alone is off by ~1e-10 dB on a long one.
EFFORT_DB = 1e-8
PEAK_DB = 1e-8
#: Per-block output energy, relative.
ENERGY_REL = 1e-8

KERNELS = (
    chain._ballistics_kernel,
    model._required_kernel,
    model._release_kernel,
    model._exp_kernel,
    model._masked_sum_kernel,
)
HAVE_NUMBA = importlib.util.find_spec("numba") is not None


@pytest.fixture(params=["jit", "python", "numpy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which implementation `chain.jit` hands out for the duration of a test."""
    if request.param == "jit":
        if not HAVE_NUMBA:
            pytest.skip("numba is not installed")
        monkeypatch.setattr(compiled, "_NUMBA", None)  # whatever an earlier test or AUTOTUNE_NUMBA set
        monkeypatch.delenv("AUTOTUNE_NUMBA", raising=False)
        assert chain.jit(chain._ballistics_kernel) is not None
    elif request.param == "python":
        monkeypatch.setattr(compiled, "_COMPILED", {k: k for k in KERNELS})
    else:
        monkeypatch.setattr(compiled, "_COMPILED", {})
        monkeypatch.setattr(compiled, "_NUMBA", False)
    yield request.param


# -- the reference: the model as it was, written out plainly --------------------------------------------


def ref_glue_gain_reduction(level_db: Vec, dt: float, p: GlueParams, physics: Physics | None = None) -> Vec:
    physics = physics or Physics()
    over = level_db - p.threshold_db
    slope = 1.0 - 1.0 / p.ratio
    knee = max(physics.glue_knee_db, 1e-9)
    half = knee / 2.0
    target = np.where(
        over <= -half,
        0.0,
        np.where(over >= half, over * slope, slope * (over + half) ** 2 / (2 * knee)),
    )
    target = np.minimum(target, p.range_db)
    a_att = math.exp(-dt / max(p.attack_ms / 1000.0 * physics.time_scale, 1e-6))
    release = GLUE_AUTO_RELEASE_S if p.release_s is None else p.release_s
    a_rel = math.exp(-dt / max(release * physics.time_scale, 1e-6))
    out = np.empty(len(target))
    g = 0.0
    for i, t in enumerate(target.tolist()):
        g = a_att * g + (1.0 - a_att) * t if t > g else a_rel * g + (1.0 - a_rel) * t
        out[i] = g
    return out


def ref_forward_min(a: Vec, size: int) -> Vec:
    padded = np.concatenate([a, np.full(size - 1, a[-1])])
    return np.asarray(np.lib.stride_tricks.sliding_window_view(padded, size).min(axis=1))


def ref_trailing_mean(a: Vec, size: int) -> Vec:
    if size <= 1:
        return a
    padded = np.concatenate([np.full(size - 1, a[0]), a])
    return np.asarray(np.lib.stride_tricks.sliding_window_view(padded, size).mean(axis=1))


def ref_release(gr_req: Vec, tau: float) -> Vec:
    decay = math.exp(-1.0 / max(tau, 1.0))
    out = np.empty(len(gr_req))
    g = 0.0
    for i, r in enumerate(gr_req.tolist()):
        g = max(r, g * decay)
        out[i] = g
    return out


def ref_limiter_gain(q: Vec, f: DryFeatures, p: LimiterParams) -> Vec:
    ceiling = 10.0 ** (p.ceiling_db / 20.0)
    required = np.minimum(1.0, ceiling / np.maximum(q, 1e-12))
    n = max(1, round(p.lookahead_ms / 1000.0 * f.sample_rate / f.block))
    if len(required):
        ahead = ref_forward_min(required, n + 1)
        required = np.minimum(ahead, ref_trailing_mean(ahead, n))
    gr_req = -20.0 * np.log10(np.maximum(required, 1e-12))
    gr = ref_release(gr_req, p.effective_release_ms / 1000.0 * f.sample_rate / f.block)
    return np.asarray(np.power(10.0, -gr / 20.0))


def ref_predict(f: DryFeatures, params: ChainParams) -> Predicted:
    g, lim = params.glue, params.limiter
    active = f.peak > 10.0 ** (-70.0 / 20.0)
    gain = np.ones(len(f.peak))
    glue_gr = 0.0
    if g.on:
        level = 20.0 * np.log10(np.maximum(f.peak, 1e-10))
        db = g.makeup_db - ref_glue_gain_reduction(level, f.block / f.sample_rate, g)
        wet = np.power(10.0, db / 20.0)
        gain = g.dry_wet * wet + (1.0 - g.dry_wet) if g.dry_wet < 1.0 else wet
        glue_gr = float(np.mean(g.makeup_db - db[active])) if active.any() else 0.0
    lim_gr = 0.0
    if lim.on:
        gain = gain * 10.0 ** (lim.gain_db / 20.0)
        q = f.peak * gain
        if lim.mode == "soft_clip":
            knee = 0.5 * 1.25 * 10.0 ** (lim.ceiling_db / 20.0)
            clipped = np.where(q > knee, knee + knee * np.tanh((q - knee) / knee), q)
            gain = gain * np.where(q > 0, clipped / np.maximum(q, 1e-12), 1.0)
            q = clipped
        lg = ref_limiter_gain(q, f, lim)
        gain = gain * lg
        lim_gr = float(np.mean(-20.0 * np.log10(lg[active]))) if active.any() else 0.0
    if params.fader_db != 0.0:
        gain = gain * 10.0 ** (params.fader_db / 20.0)
    out_peak = float(np.max(f.peak * gain)) if len(gain) else 0.0
    return Predicted(f.energy * gain * gain, out_peak, glue_gr, lim_gr)


def assert_same_prediction(f: DryFeatures, got: Predicted, want: Predicted, loose: bool = False) -> None:
    """`loose`: per cent on the energy and 1e-3 dB on the effort, for the one case that needs it below."""
    assert got.energy.shape == want.energy.shape
    np.testing.assert_allclose(got.energy, want.energy, rtol=0.05 if loose else ENERGY_REL, atol=0.0)
    effort_db = 1e-3 if loose else EFFORT_DB
    if len(want.energy) >= 4 * f.blocks_per_step:
        a, b = gated_lufs(got.energy, f), gated_lufs(want.energy, f)
        assert a == b if math.isinf(b) else abs(a - b) <= LUFS, (a, b)
    if want.peak > 0.0:
        assert abs(20.0 * math.log10(got.peak / want.peak)) <= PEAK_DB, (got.peak, want.peak)
    else:
        assert got.peak == 0.0
    assert got.glue_gr_db == pytest.approx(want.glue_gr_db, abs=effort_db)
    assert got.limiter_gr_db == pytest.approx(want.limiter_gr_db, abs=effort_db)


# -- inputs ----------------------------------------------------------------------------------------------


def song_features(seconds: float, **spec: float) -> DryFeatures:
    return features(demo_track(DemoSpec(seconds=seconds, **spec)), SR)


SONG = song_features(8.0)
DENSE = song_features(6.0, drums_db=-4.0, bass_db=-1.0, chords_db=-3.0, bass_hold=0.7, seed=3)
#: For the tests that predict many times (the kernels run as plain Python on one path).
SHORT = song_features(2.5, seed=5)


def synthetic(n_blocks: int, seed: int) -> DryFeatures:
    """Block features no song has: digital silence, isolated bursts far over full scale, noise floors."""
    rng = np.random.default_rng(seed)
    peak = 10.0 ** rng.uniform(-5.0, 0.5, n_blocks) * (rng.random(n_blocks) > 0.1)
    peak[n_blocks // 3 : n_blocks // 3 + 300] = 0.0  # a silent gap
    burst = rng.integers(0, n_blocks, 40)
    peak[burst] = 10.0 ** rng.uniform(0.0, 1.5, 40)
    energy = peak**2 * rng.uniform(0.05, 0.5, n_blocks) * 32
    return DryFeatures(SR, 32, peak, energy)


SYNTH = synthetic(9000, 1)

CHAINS: dict[str, ChainParams] = {
    "gentle": ChainParams(
        GlueParams(threshold_db=-20, ratio=4, makeup_db=4), LimiterParams(gain_db=6, ceiling_db=-1)
    ),
    "attack-longer-than-release": ChainParams(
        GlueParams(threshold_db=-25, ratio=4, attack_ms=100.0, release_s=0.005, makeup_db=6),
        LimiterParams(gain_db=8, ceiling_db=-1, release_ms=10),
    ),
    "auto-release-ratio-10": ChainParams(
        GlueParams(threshold_db=-30, ratio=10, release_s=None, makeup_db=12, attack_ms=0.01),
        LimiterParams(gain_db=10, ceiling_db=-6, release_ms=1, lookahead_ms=1.5),
    ),
    "ratio-1-range-6": ChainParams(
        GlueParams(threshold_db=-40, ratio=1, range_db=6), LimiterParams(gain_db=3, lookahead_ms=6)
    ),
    "range-caps": ChainParams(
        GlueParams(threshold_db=-40, ratio=10, range_db=3, makeup_db=2), LimiterParams(gain_db=12)
    ),
    "lookahead-6-slow": ChainParams(
        GlueParams(threshold_db=-18, ratio=2, release_s=1.2, attack_ms=30),
        LimiterParams(gain_db=24, ceiling_db=-3, release_ms=1000, lookahead_ms=6),
    ),
    "soft-clip": ChainParams(
        GlueParams(threshold_db=-20, ratio=4, makeup_db=4),
        LimiterParams(gain_db=12, ceiling_db=-1, mode="soft_clip"),
    ),
    "true-peak": ChainParams(GlueParams(threshold_db=-10), LimiterParams(gain_db=9, mode="true_peak")),
    "limiter-auto": ChainParams(
        GlueParams(threshold_db=-20, makeup_db=3),
        LimiterParams(gain_db=14, ceiling_db=-2, auto_release=True, release_ms=3000),
    ),
    "parallel-glue": ChainParams(
        GlueParams(threshold_db=-20, ratio=4, makeup_db=4, dry_wet=0.4), LimiterParams(gain_db=6)
    ),
    "parallel-glue-soft-clip": ChainParams(
        GlueParams(threshold_db=-24, ratio=10, makeup_db=8, dry_wet=0.7),
        LimiterParams(gain_db=10, ceiling_db=-0.3, mode="soft_clip", lookahead_ms=1.5),
    ),
    "glue-only": ChainParams(GlueParams(threshold_db=-25, ratio=4, makeup_db=8), LimiterParams(on=False)),
    "limiter-only": ChainParams(GlueParams(on=False), LimiterParams(gain_db=24, ceiling_db=-3)),
    "soft-clip-only": ChainParams(
        GlueParams(on=False), LimiterParams(gain_db=18, ceiling_db=-0.3, mode="soft_clip")
    ),
    "bypassed": ChainParams(GlueParams(on=False), LimiterParams(on=False)),
    "fader": ChainParams(GlueParams(threshold_db=-20), LimiterParams(gain_db=8), fader_db=-2.5),
    "fader-silent": ChainParams(GlueParams(threshold_db=-20), LimiterParams(gain_db=8), fader_db=-math.inf),
    "absurd-ceiling": ChainParams(GlueParams(on=False), LimiterParams(gain_db=30, ceiling_db=-250.0)),
}


# -- the Glue's ballistics ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "physics", [Physics(), Physics(glue_knee_db=0.0), Physics(glue_knee_db=10.0, time_scale=0.5)]
)
@pytest.mark.parametrize(
    "name", ["gentle", "attack-longer-than-release", "auto-release-ratio-10", "ratio-1-range-6", "range-caps"]
)
def test_glue_gain_reduction_matches_the_loop(path: str, name: str, physics: Physics) -> None:
    level = 20.0 * np.log10(np.maximum(np.concatenate([SONG.peak, SYNTH.peak]), 1e-10))
    g = CHAINS[name].glue
    got = glue_gain_reduction(level, GLUE_BLOCK / SR, g, physics)
    want = ref_glue_gain_reduction(level, GLUE_BLOCK / SR, g, physics)
    assert want.max() > 0.5 or g.ratio == 1.0  # the setting compresses (ratio 1 never does)
    np.testing.assert_allclose(got, want, rtol=0.0, atol=GR_DB)


@settings(max_examples=60, deadline=None)
@given(
    levels=st.lists(st.floats(-120.0, 20.0), min_size=0, max_size=400),
    threshold=st.floats(-60.0, 0.0),
    ratio=st.sampled_from([1.0, 1.5, 2.0, 4.0, 10.0]),
    attack_ms=st.floats(0.01, 300.0),
    release_s=st.one_of(st.none(), st.floats(0.001, 2.0)),
    range_db=st.floats(0.0, 70.0),
    knee=st.floats(0.0, 12.0),
)
def test_ballistics_match_the_loop_on_any_levels(
    levels: list[float],
    threshold: float,
    ratio: float,
    attack_ms: float,
    release_s: float | None,
    range_db: float,
    knee: float,
) -> None:
    """On whatever path this process has (numba's when installed)."""
    g = GlueParams(
        threshold_db=threshold, ratio=ratio, attack_ms=attack_ms, release_s=release_s, range_db=range_db
    )
    physics = Physics(glue_knee_db=knee)
    level = np.asarray(levels, dtype=np.float64)
    got = glue_gain_reduction(level, GLUE_BLOCK / SR, g, physics)
    want = ref_glue_gain_reduction(level, GLUE_BLOCK / SR, g, physics)
    np.testing.assert_allclose(got, want, rtol=0.0, atol=GR_DB)


@pytest.mark.parametrize(
    "physics", [Physics(), Physics(glue_knee_db=10.0, glue_detector="rms", saturation_drive=0.5)]
)
def test_the_glue_renders_as_with_the_loop(
    path: str, physics: Physics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The virtual Live's render runs the same kernel: its audio must be the loop's."""
    x = demo_track(DemoSpec(seconds=3.0, seed=11))
    g = GlueParams(threshold_db=-24, ratio=4, makeup_db=6, attack_ms=3, release_s=0.2, peak_clip=True)
    got = glue_compressor(x, SR, g, physics)
    monkeypatch.setattr(chain, "glue_gain_reduction", ref_glue_gain_reduction)
    want = glue_compressor(x, SR, g, physics)
    np.testing.assert_allclose(got, want, rtol=0.0, atol=1e-12)


# -- the whole model ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("feats", [SONG, DENSE, SYNTH], ids=["song", "dense", "synthetic"])
@pytest.mark.parametrize("name", list(CHAINS))
def test_predictions_match_the_plain_model(path: str, feats: DryFeatures, name: str) -> None:
    params = CHAINS[name]
    # The numpy path's trailing mean is a difference of cumulative sums over the song: where a -250 dB
    # ceiling leaves linear gains near 1e-12, that difference keeps only a few digits (the kernels sum
    # each window anew). So far under any ceiling that is inaudible; the loudness check stays as tight.
    loose = path == "numpy" and name == "absurd-ceiling"
    assert_same_prediction(feats, ChainModel(feats).predict(params), ref_predict(feats, params), loose)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_blocks=st.sampled_from([0, 1, 2, 3, 7, 600, 2000]),
    threshold=st.floats(-40.0, 0.0),
    ratio=st.sampled_from([2.0, 4.0, 10.0]),
    attack_ms=st.sampled_from([0.01, 1.0, 10.0, 100.0]),
    release_s=st.sampled_from([None, 0.005, 0.1, 1.2]),
    makeup=st.floats(0.0, 12.0),
    dry_wet=st.sampled_from([1.0, 0.5]),
    gain=st.floats(0.0, 24.0),
    ceiling=st.floats(-7.0, 0.0),
    release_ms=st.sampled_from([1.0, 50.0, 300.0, 1000.0]),
    lookahead=st.sampled_from([1.5, 3.0, 6.0]),
    mode=st.sampled_from(["standard", "soft_clip"]),
    auto=st.booleans(),
)
def test_predictions_match_on_any_settings(
    seed: int,
    n_blocks: int,
    threshold: float,
    ratio: float,
    attack_ms: float,
    release_s: float | None,
    makeup: float,
    dry_wet: float,
    gain: float,
    ceiling: float,
    release_ms: float,
    lookahead: float,
    mode: Literal["standard", "soft_clip"],
    auto: bool,
) -> None:
    rng = np.random.default_rng(seed)
    peak = 10.0 ** rng.uniform(-4.0, 0.3, n_blocks) * (rng.random(n_blocks) > 0.05)
    feats = DryFeatures(SR, 32, peak, peak**2 * 8.0)
    params = ChainParams(
        GlueParams(
            threshold_db=threshold,
            ratio=ratio,
            attack_ms=attack_ms,
            release_s=release_s,
            makeup_db=makeup,
            dry_wet=dry_wet,
        ),
        LimiterParams(
            gain_db=gain,
            ceiling_db=ceiling,
            release_ms=release_ms,
            lookahead_ms=lookahead,
            mode=mode,
            auto_release=auto,
        ),
    )
    assert_same_prediction(feats, ChainModel(feats).predict(params), ref_predict(feats, params))


def test_the_glue_cache_serves_only_settings_that_share_the_ballistics(path: str) -> None:
    """A model keeps the Glue's reduction of a few settings; makeup and Dry/Wet act after it, so settings that
    differ only there share it, every other Glue parameter gets its own, and old entries make room."""
    m = ChainModel(SHORT)
    base = CHAINS["gentle"]
    settings_ = [
        base,
        replace(base, glue=replace(base.glue, makeup_db=9.0)),
        replace(base, glue=replace(base.glue, dry_wet=0.5)),
        replace(base, limiter=replace(base.limiter, gain_db=12.0)),
        *(replace(base, glue=replace(base.glue, threshold_db=t)) for t in (-30.0, -25.0, -15.0, -10.0, -5.0)),
        replace(base, glue=replace(base.glue, attack_ms=50.0)),
        replace(base, glue=replace(base.glue, release_s=None)),
        replace(base, glue=replace(base.glue, ratio=10.0)),
        replace(base, glue=replace(base.glue, range_db=2.0)),
        base,
    ]
    for params in settings_ * 2:
        assert_same_prediction(SHORT, m.predict(params), ref_predict(SHORT, params))
    assert len(m._glue_cache) <= model.GLUE_CACHE


def test_a_prediction_is_not_overwritten_by_the_next(path: str) -> None:
    """The kernels reuse scratch arrays: what a prediction returned must stay what it was."""
    m = ChainModel(SHORT)
    first = m.predict(CHAINS["gentle"])
    kept = first.energy.copy()
    m.predict(CHAINS["lookahead-6-slow"])
    m.predict(CHAINS["parallel-glue"])
    np.testing.assert_array_equal(first.energy, kept)
    first.energy[:] = 0.0  # and a caller may write into what it got
    assert_same_prediction(SHORT, m.predict(CHAINS["gentle"]), ref_predict(SHORT, CHAINS["gentle"]))


def test_threads_sharing_a_model_get_their_own_predictions(path: str) -> None:
    m = ChainModel(SHORT)
    names = list(CHAINS) * 2
    results: dict[int, Predicted] = {}

    def work(start: int) -> None:
        for i in range(start, len(names), 3):
            results[i] = m.predict(CHAINS[names[i]])

    threads = [threading.Thread(target=work, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, name in enumerate(names):
        assert_same_prediction(SHORT, results[i], ref_predict(SHORT, CHAINS[name]))


def test_the_exp_kernel_is_exp(path: str) -> None:
    """The vectorisable exp against numpy's over the exponents the model uses, and at the clamps."""
    if path == "numpy":
        pytest.skip("the numpy path has no exp kernel")
    kernel = chain.jit(model._exp_kernel, contract=True)
    assert kernel is not None
    rng = np.random.default_rng(5)
    src = np.concatenate(
        [[0.0, 1e-300, 1e-8, 0.5, 1.0, 1e4], rng.uniform(0.0, 400.0, 5000), rng.uniform(0.0, 1e-3, 100)]
    )
    weight = rng.uniform(0.1, 2.0, len(src))
    for factor in (-model._K, -2.0 * model._K, -1.0, 1.0):
        dst, bits = np.empty(len(src)), np.empty(len(src))
        kernel(src, factor, weight, 0.75, dst, bits)
        want = weight * 0.75 * np.exp(np.clip(factor * src, -708.0, 708.0))
        np.testing.assert_allclose(dst, want, rtol=2e-15, atol=0.0)  # a few ulp
    dst, bits = np.empty(1), np.empty(1)
    kernel(np.zeros(1), -1.0, np.ones(1), 1.0, dst, bits)
    assert dst[0] == 1.0  # no reduction is exactly unity gain
