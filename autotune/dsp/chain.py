"""Master-chain physics: Glue Compressor -> Limiter -> master fader, as a pure function of the input.

The models are deliberately simple but keep the properties a producer relies on and the optimiser exploits:
the compressor is a stereo-linked, feed-forward VCA bus compressor with a soft knee, stepped ratios and
program-independent ballistics; the limiter is a look-ahead brick-wall limiter whose output sample peak
never exceeds its ceiling, and whose loudness never drops when its input gain rises; the master fader sits
after the devices, as it does in Live, so a boosted fader defeats the ceiling.

Everything a device does beyond its front-panel parameters (knee, detector, release behaviour, analogue
colour) is gathered in `Physics`. The default is the model the optimiser predicts with; the presets in
`PHYSICS` are "plants": plausible devices that behave a little differently, so a benchmark can run the
virtual Live on physics the model does not know and show that a model-based search is not just inverting
its own simulator. Every preset keeps the contract a producer relies on (ceiling, bypass, monotonic gain).
The parameter dataclasses and the presets live in `autotune.dsp.params` and are re-exported here.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from autotune.dsp.compiled import jit as jit
from autotune.dsp.params import GLUE_KNEE_DB as GLUE_KNEE_DB
from autotune.dsp.params import LIMITER_AUTO_RELEASE_MS as LIMITER_AUTO_RELEASE_MS
from autotune.dsp.params import PHYSICS as PHYSICS
from autotune.dsp.params import PROGRAM_SLOW_FACTOR as PROGRAM_SLOW_FACTOR
from autotune.dsp.params import PROGRAM_WINDOW_MS as PROGRAM_WINDOW_MS
from autotune.dsp.params import ChainParams as ChainParams
from autotune.dsp.params import GlueParams as GlueParams
from autotune.dsp.params import LimiterParams as LimiterParams
from autotune.dsp.params import Physics as Physics

Audio = NDArray[np.float64]
#: The model's physics, every function's default (frozen: one instance serves them all).
_MODEL = Physics()

#: Control-rate block of the compressor's gain computer (0.67 ms at 48 kHz): fine enough for bus
#: compression, coarse enough that the ballistics loop stays cheap in pure Python.
GLUE_BLOCK = 32
#: Glue's Soft Clip (`Peak Clip In`): a waveshaper whose output never exceeds -0.5 dB (Live's manual).
GLUE_SOFT_CLIP_LIMIT = 10.0 ** (-0.5 / 20.0)
#: Glue's "Auto" release is program dependent; the model uses a fixed middle value.
GLUE_AUTO_RELEASE_S = 0.3


# -- compiled kernels: `autotune.dsp.compiled` ------------------------------------------------------


def _ballistics_kernel(
    level_db: Audio,
    threshold_db: float,
    slope: float,
    knee: float,
    range_db: float,
    a_att: float,
    a_rel: float,
    out: Audio,
) -> None:
    """`glue_gain_reduction`'s gain computer and ballistics fused in one loop (compiled by `jit`)."""
    half = knee / 2.0
    g = 0.0
    for i in range(level_db.shape[0]):
        over = level_db[i] - threshold_db
        if over <= -half:
            t = 0.0
        elif over >= half:
            t = over * slope
        else:
            t = slope * (over + half) ** 2 / (2 * knee)
        t = min(t, range_db)
        a = a_att if t > g else a_rel
        g = a * g + (1.0 - a) * t
        out[i] = g


def db_to_lin(db: float | Audio) -> float | Audio:
    return np.power(10.0, np.asarray(db) / 20.0) if isinstance(db, np.ndarray) else 10.0 ** (db / 20.0)


def _soft_clip(x: Audio, limit: float = 1.0) -> Audio:
    """Linear below half the limit, then a tanh shoulder that never reaches the limit."""
    knee = 0.5 * limit
    mag = np.abs(x)
    over = mag > knee
    out = x.copy()
    out[over] = np.sign(x[over]) * (knee + knee * np.tanh((mag[over] - knee) / knee))
    return out


def saturate(x: Audio, drive: float) -> Audio:
    """tanh(d x) / d: slope 1 at zero, so quiet passages are untouched and only loud peaks lose level."""
    if drive <= 0.0:
        return x
    out: Audio = np.tanh(drive * x) / drive
    return out


def _detector_level(x: Audio, sr: int, physics: Physics) -> Audio:
    """Per-sample detector input (linear amplitude), before the per-block maximum."""
    if physics.glue_detector == "peak":
        level: Audio = np.abs(x).max(axis=1)
        return level
    # Mean square of both channels together (stereo-linked), times 2 so a sine reads its peak: the same
    # threshold means the same thing on a steady tone, while drum transients read lower than on a peak meter.
    ms = 2.0 * trailing_mean(np.mean(np.square(x), axis=1), max(1, round(physics.glue_rms_ms * sr / 1000.0)))
    rms: Audio = np.sqrt(np.maximum(ms, 0.0))
    return rms


def glue_gain_reduction(level_db: Audio, dt: float, p: GlueParams, physics: Physics = _MODEL) -> Audio:
    """Gain reduction (dB) per control block of `dt` seconds for detector levels `level_db`: the soft-knee
    gain computer, Range, then attack/release ballistics. The chain model runs this same computer on its
    own blocks."""
    slope = 1.0 - 1.0 / p.ratio
    knee = max(physics.glue_knee_db, 1e-9)
    scale = physics.time_scale
    a_att = float(np.exp(-dt / max(p.attack_ms / 1000.0 * scale, 1e-6)))
    release = GLUE_AUTO_RELEASE_S if p.release_s is None else p.release_s
    a_rel = float(np.exp(-dt / max(release * scale, 1e-6)))
    kernel = jit(_ballistics_kernel)
    if kernel is not None:
        level = np.ascontiguousarray(level_db, dtype=np.float64)
        out: Audio = np.empty(len(level))
        kernel(level, float(p.threshold_db), slope, float(knee), float(p.range_db), a_att, a_rel, out)
        return out
    # Without numba: the gain computer in numpy, the ballistics in plain Python (~1 us per block).
    over = level_db - p.threshold_db
    half = knee / 2.0
    target = np.where(
        over <= -half,
        0.0,
        np.where(over >= half, over * slope, slope * (over + half) ** 2 / (2 * knee)),
    )
    target = np.minimum(target, p.range_db)
    smoothed = np.empty(len(target))
    g = 0.0
    for i, t in enumerate(target.tolist()):
        g = a_att * g + (1.0 - a_att) * t if t > g else a_rel * g + (1.0 - a_rel) * t
        smoothed[i] = g
    return smoothed


def glue_compressor(x: Audio, sr: int, p: GlueParams, physics: Physics = _MODEL) -> Audio:
    """The Glue on `x`; `physics` shapes its knee, detector, ballistics and output stage.

    Output-stage saturation sits here, on the wet signal after makeup and before Soft Clip, because it is
    part of the device: it goes away with the device's switch, and the dry half of Dry/Wet stays clean.
    """
    if not p.on:
        return x
    n = x.shape[0]
    nb = -(-n // GLUE_BLOCK)
    peak = _detector_level(x, sr, physics)
    padded = np.zeros(nb * GLUE_BLOCK)
    padded[:n] = peak
    level = 20.0 * np.log10(np.maximum(padded.reshape(nb, GLUE_BLOCK).max(axis=1), 1e-10))
    smoothed = glue_gain_reduction(level, GLUE_BLOCK / sr, p, physics)

    centres = (np.arange(nb) + 0.5) * GLUE_BLOCK
    gr_db = np.interp(np.arange(n), centres, smoothed)
    wet = saturate(x * np.power(10.0, (p.makeup_db - gr_db) / 20.0)[:, None], physics.saturation_drive)
    out = wet if p.dry_wet >= 1.0 else p.dry_wet * wet + (1.0 - p.dry_wet) * x
    if p.peak_clip:
        # Live's manual: with Soft Clip on, the Glue's output never exceeds -0.5 dB.
        out = _soft_clip(out, limit=GLUE_SOFT_CLIP_LIMIT)
    return out


def forward_min(a: Audio, size: int) -> Audio:
    """out[n] = min(a[n : n + size]) (the end is padded with the last value)."""
    if size <= 1:
        return a
    from scipy.ndimage import minimum_filter1d  # imported on first use: a process that only measures skips it

    return np.asarray(minimum_filter1d(a, size=size, mode="nearest", origin=-(size // 2)), dtype=np.float64)


def trailing_mean(a: Audio, size: int) -> Audio:
    """out[n] = mean(a[n - size + 1 : n + 1]) (the start is padded with the first value)."""
    if size <= 1:
        return a
    padded = np.concatenate([np.full(size - 1, a[0]), a])
    c = np.concatenate([[0.0], np.cumsum(padded)])
    out: Audio = (c[size:] - c[:-size]) / size
    return out


def release_envelope(gr_req: Audio, tau_samples: float) -> Audio:
    """Gain reduction (dB) that jumps up at once and recovers exponentially: max_k gr_req[k] e^-(n-k)/tau.

    Vectorised as exp(n c + cummax(ln gr_req[k] - k c)) with c = -1 / tau. It never falls below gr_req
    (the brick wall) and rises by at most d dB when every gr_req[k] does (the monotonic-gain contract).
    """
    c = -1.0 / max(tau_samples, 1.0)
    k = np.arange(len(gr_req)) * c
    with np.errstate(divide="ignore"):
        log_gr = np.log(np.maximum(gr_req, 0.0))
    out: Audio = np.exp(k + np.maximum.accumulate(log_gr - k))
    return out


def limiter(x: Audio, sr: int, p: LimiterParams, physics: Physics = _MODEL) -> Audio:
    """The Limiter on `x`. With program release, sustained reduction recovers slower (less pumping).

    The program release is the larger of two exponential releases: the labelled one on the instantaneous
    requirement, and one `PROGRAM_SLOW_FACTOR` times slower on its trailing mean, which is only large when
    reduction lasts. Both stages keep the brick wall and the monotonic-gain contract, and so does their max.
    """
    if not p.on:
        return x
    y = x * db_to_lin(p.gain_db)
    ceiling = float(db_to_lin(p.ceiling_db))
    if p.mode == "soft_clip":
        y = _soft_clip(y, limit=ceiling * 1.25)
    peak = np.abs(y).max(axis=1)
    if p.mode == "true_peak":
        from scipy.signal import resample_poly  # only this mode needs scipy.signal (1.5 s to import)

        up = np.abs(resample_poly(y, 4, 1, axis=0)).max(axis=1)
        peak = np.maximum(peak, up[: 4 * len(peak)].reshape(-1, 4).max(axis=1))
    required = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    look = max(1, round(p.lookahead_ms * sr / 1000.0))
    # Every sample of the trailing mean comes from forward minima whose windows contain that sample,
    # so the smoothed gain never exceeds what the sample itself requires: a true brick wall.
    gain = trailing_mean(forward_min(required, look), look)
    # Gain reduction (dB) recovers exponentially with the release time constant. Vectorised as
    # gr[n] = max_k gr_req[k] exp(-(n - k) / tau) = exp(n c + cummax(ln gr_req[k] - k c)), c = -1 / tau.
    gr_req = -20.0 * np.log10(np.maximum(gain, 1e-12))
    tau = p.effective_release_ms / 1000.0 * sr * physics.time_scale
    gr = release_envelope(gr_req, tau)
    if physics.limiter_release == "program" or p.auto_release:
        sustained = trailing_mean(gr_req, max(1, round(PROGRAM_WINDOW_MS * sr / 1000.0)))
        gr = np.maximum(gr, release_envelope(sustained, PROGRAM_SLOW_FACTOR * tau))
    out = y * np.power(10.0, -gr / 20.0)[:, None]
    # Floating-point rounding may leave an ulp above the ceiling; Live's limiter guarantees the ceiling.
    clipped: Audio = np.clip(out, -ceiling, ceiling)
    return clipped


#: One device of a chain in signal order: a plain gain (dB), a Glue Compressor or a Limiter.
Stage = (
    tuple[Literal["gain"], float]
    | tuple[Literal["glue"], GlueParams]
    | tuple[Literal["limiter"], LimiterParams]
)


def render_stages(
    source: Audio, sr: int, stages: tuple[Stage, ...], fader_db: float = 0.0, physics: Physics = _MODEL
) -> Audio:
    """Devices in the order they sit on the track, then the fader: pure and deterministic."""
    x = np.asarray(source, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    for kind, p in stages:
        if kind == "gain":
            assert isinstance(p, float)
            x = x * db_to_lin(p)
        elif kind == "glue":
            assert isinstance(p, GlueParams)
            x = glue_compressor(x, sr, p, physics)
        else:
            assert isinstance(p, LimiterParams)
            x = limiter(x, sr, p, physics)
    if fader_db != 0.0:
        x = x * db_to_lin(fader_db)
    return x


def render(source: Audio, sr: int, params: ChainParams, physics: Physics = _MODEL) -> Audio:
    """The whole master chain (Glue Compressor -> Limiter -> fader): the virtual Live's default export."""
    stages: tuple[Stage, ...] = (("glue", params.glue), ("limiter", params.limiter))
    return render_stages(source, sr, stages, params.fader_db, physics)
