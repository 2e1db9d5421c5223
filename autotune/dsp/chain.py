"""Master-chain physics: Glue Compressor -> Limiter -> master fader, as a pure function of the input.

The models are deliberately simple but keep the properties a producer relies on and the optimiser exploits:
the compressor is a stereo-linked, feed-forward VCA bus compressor with a soft knee, stepped ratios and
program-independent ballistics; the limiter is a look-ahead brick-wall limiter whose output sample peak
never exceeds its ceiling, and whose loudness never drops when its input gain rises; the master fader sits
after the devices, as it does in Live, so a boosted fader defeats the ceiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import minimum_filter1d
from scipy.signal import resample_poly

Audio = NDArray[np.float64]

#: Control-rate block of the compressor's gain computer (0.67 ms at 48 kHz): fine enough for bus
#: compression, coarse enough that the ballistics loop stays cheap in pure Python.
GLUE_BLOCK = 32
GLUE_KNEE_DB = 6.0
#: Glue's "Auto" release is program dependent; the model uses a fixed middle value.
GLUE_AUTO_RELEASE_S = 0.3


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


@dataclass(frozen=True)
class ChainParams:
    glue: GlueParams = field(default_factory=GlueParams)
    limiter: LimiterParams = field(default_factory=LimiterParams)
    fader_db: float = 0.0


def live_fader_db(volume: float) -> float:
    """Live's fader law as modelled here: raw 0.85 is 0 dB, 1.0 is +6 dB, 0 is silence (-inf)."""
    if volume <= 0:
        return -math.inf
    if volume >= 0.4:
        return (volume - 0.85) * 40.0
    return -18.0 + 40.0 * math.log10(volume / 0.4)


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


def glue_compressor(x: Audio, sr: int, p: GlueParams) -> Audio:
    if not p.on:
        return x
    n = x.shape[0]
    nb = -(-n // GLUE_BLOCK)
    peak = np.abs(x).max(axis=1)
    padded = np.zeros(nb * GLUE_BLOCK)
    padded[:n] = peak
    level = 20.0 * np.log10(np.maximum(padded.reshape(nb, GLUE_BLOCK).max(axis=1), 1e-10))
    over = level - p.threshold_db
    slope = 1.0 - 1.0 / p.ratio
    half = GLUE_KNEE_DB / 2.0
    target = np.where(
        over <= -half,
        0.0,
        np.where(over >= half, over * slope, slope * (over + half) ** 2 / (2 * GLUE_KNEE_DB)),
    )
    target = np.minimum(target, p.range_db)

    dt = GLUE_BLOCK / sr
    a_att = float(np.exp(-dt / max(p.attack_ms / 1000.0, 1e-6)))
    release = GLUE_AUTO_RELEASE_S if p.release_s is None else p.release_s
    a_rel = float(np.exp(-dt / max(release, 1e-6)))
    smoothed = np.empty(nb)
    g = 0.0
    for i, t in enumerate(target.tolist()):
        g = a_att * g + (1.0 - a_att) * t if t > g else a_rel * g + (1.0 - a_rel) * t
        smoothed[i] = g

    centres = (np.arange(nb) + 0.5) * GLUE_BLOCK
    gr_db = np.interp(np.arange(n), centres, smoothed)
    wet = x * np.power(10.0, (p.makeup_db - gr_db) / 20.0)[:, None]
    if p.peak_clip:
        wet = _soft_clip(wet)
    if p.dry_wet >= 1.0:
        return wet
    return p.dry_wet * wet + (1.0 - p.dry_wet) * x


def _forward_min(a: Audio, size: int) -> Audio:
    """out[n] = min(a[n : n + size]) (the end is padded with the last value)."""
    if size <= 1:
        return a
    return np.asarray(minimum_filter1d(a, size=size, mode="nearest", origin=-(size // 2)), dtype=np.float64)


def _trailing_mean(a: Audio, size: int) -> Audio:
    """out[n] = mean(a[n - size + 1 : n + 1]) (the start is padded with the first value)."""
    if size <= 1:
        return a
    padded = np.concatenate([np.full(size - 1, a[0]), a])
    c = np.concatenate([[0.0], np.cumsum(padded)])
    out: Audio = (c[size:] - c[:-size]) / size
    return out


def limiter(x: Audio, sr: int, p: LimiterParams) -> Audio:
    if not p.on:
        return x
    y = x * db_to_lin(p.gain_db)
    ceiling = float(db_to_lin(p.ceiling_db))
    if p.mode == "soft_clip":
        y = _soft_clip(y, limit=ceiling * 1.25)
    peak = np.abs(y).max(axis=1)
    if p.mode == "true_peak":
        up = np.abs(resample_poly(y, 4, 1, axis=0)).max(axis=1)
        peak = np.maximum(peak, up[: 4 * len(peak)].reshape(-1, 4).max(axis=1))
    required = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    look = max(1, round(p.lookahead_ms * sr / 1000.0))
    # Every sample of the trailing mean comes from forward minima whose windows contain that sample,
    # so the smoothed gain never exceeds what the sample itself requires: a true brick wall.
    gain = _trailing_mean(_forward_min(required, look), look)
    # Gain reduction (dB) recovers exponentially with the release time constant. Vectorised as
    # gr[n] = max_k gr_req[k] exp(-(n - k) / tau) = exp(n c + cummax(ln gr_req[k] - k c)), c = -1 / tau.
    gr_req = -20.0 * np.log10(np.maximum(gain, 1e-12))
    c = -1.0 / max(p.release_ms / 1000.0 * sr, 1.0)
    k = np.arange(len(gr_req)) * c
    with np.errstate(divide="ignore"):
        log_gr = np.log(np.maximum(gr_req, 0.0))
    rel = -np.exp(k + np.maximum.accumulate(log_gr - k))
    out = y * np.power(10.0, rel / 20.0)[:, None]
    # Floating-point rounding may leave an ulp above the ceiling; Live's limiter guarantees the ceiling.
    clipped: Audio = np.clip(out, -ceiling, ceiling)
    return clipped


#: One device of a chain in signal order: a plain gain (dB), a Glue Compressor or a Limiter.
Stage = (
    tuple[Literal["gain"], float]
    | tuple[Literal["glue"], GlueParams]
    | tuple[Literal["limiter"], LimiterParams]
)


def render_stages(source: Audio, sr: int, stages: tuple[Stage, ...], fader_db: float = 0.0) -> Audio:
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
            x = glue_compressor(x, sr, p)
        else:
            assert isinstance(p, LimiterParams)
            x = limiter(x, sr, p)
    if fader_db != 0.0:
        x = x * db_to_lin(fader_db)
    return x


def render(source: Audio, sr: int, params: ChainParams) -> Audio:
    """The whole master chain (Glue Compressor -> Limiter -> fader): the virtual Live's default export."""
    return render_stages(source, sr, (("glue", params.glue), ("limiter", params.limiter)), params.fader_db)
