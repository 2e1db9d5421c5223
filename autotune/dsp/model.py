"""A control-rate model of the master chain: predicts an export's loudness and peak in milliseconds.

Rendering a song through `chain.render` costs a fraction of a second per setting; an optimiser that wants
to try hundreds of settings offline cannot afford that. Every gain the chain applies (compressor, makeup,
limiter, fader) varies slowly next to the audio, so the chain is modelled on blocks of about 0.7 ms: the
dry song is reduced once to each block's stereo-linked peak and its K-weighted energy, and a prediction
only runs the gain computers on those blocks. Loudness follows because K-weighting commutes with a gain
that is constant over a block; the limiter's ceiling holds because the block gain never exceeds what the
block's loudest sample requires. What the model leaves out (gain changes inside a block, clipping shapes)
is left to the optimiser's correction by real exports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from autotune.dsp.chain import (
    ChainParams,
    GlueParams,
    LimiterParams,
    forward_min,
    glue_gain_reduction,
    release_envelope,
    trailing_mean,
)

Vec = NDArray[np.float64]


def model_block(step: int) -> int:
    """The block length: a divisor of the 100 ms loudness step (so blocks tile it exactly), near 32 (the compressor's own control rate)."""
    divisors = [d for d in range(24, 129) if step % d == 0]
    return min(divisors, key=lambda d: abs(d - 32)) if divisors else 32


@dataclass(frozen=True)
class DryFeatures:
    """What the model keeps of the dry song: per block, the linked sample peak and the K-weighted,
    channel-weighted energy (sum of squares). `step` blocks of `block` samples make 100 ms."""

    sample_rate: int
    block: int
    peak: Vec
    energy: Vec

    @property
    def blocks_per_step(self) -> int:
        return round(0.1 * self.sample_rate) // self.block


def block_peaks(audio: NDArray[np.floating], block: int) -> Vec:
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[:, None]
    nb = x.shape[0] // block
    linked = np.abs(x[: nb * block]).max(axis=1)
    return np.asarray(linked.reshape(nb, block).max(axis=1), dtype=np.float64)


def block_sums(values: NDArray[np.floating], block: int) -> Vec:
    nb = len(values) // block
    return np.asarray(np.asarray(values[: nb * block]).reshape(nb, block).sum(axis=1, dtype=np.float64))


@dataclass(frozen=True)
class Predicted:
    """Per-block output energy (for the caller's loudness gating), the output sample peak (linear), and
    how hard each device works (mean gain reduction in dB, over blocks above -70 dBFS)."""

    energy: Vec
    peak: float
    glue_gr_db: float
    limiter_gr_db: float


def _glue_gain_db(f: DryFeatures, p: GlueParams) -> Vec:
    """Gain (dB) the Glue Compressor applies per block, including makeup: the chain's own gain computer and
    ballistics, run at the model's block rate."""
    level = 20.0 * np.log10(np.maximum(f.peak, 1e-10))
    return np.asarray(p.makeup_db - glue_gain_reduction(level, f.block / f.sample_rate, p))


def _soft_clip(x: Vec, limit: float) -> Vec:
    knee = 0.5 * limit
    return np.where(x > knee, knee + knee * np.tanh((x - knee) / knee), x)


def _limiter_gain(q: Vec, f: DryFeatures, p: LimiterParams) -> Vec:
    """Linear gain per block for block peaks `q` at the limiter's input (after its input gain)."""
    ceiling = 10.0 ** (p.ceiling_db / 20.0)
    required = np.minimum(1.0, ceiling / np.maximum(q, 1e-12))
    # Look-ahead, as the chain does it: the gain starts falling one look-ahead before a peak (forward
    # minimum), and ramps (trailing mean) so that it reaches what the peak requires on time.
    n = max(1, round(p.lookahead_ms / 1000.0 * f.sample_rate / f.block))
    # A block takes the lowest gain the chain reaches inside it: the forward minimum (the gain already
    # falling for a peak one look-ahead away) or the ramp towards it, whichever is lower. Either never
    # exceeds what the block's own peak requires, so the ceiling holds at block resolution too.
    if len(required):
        ahead = forward_min(required, n + 1)
        required = np.minimum(ahead, trailing_mean(ahead, n))
    gr_req = -20.0 * np.log10(np.maximum(required, 1e-12))
    gr = release_envelope(gr_req, p.effective_release_ms / 1000.0 * f.sample_rate / f.block)
    return np.asarray(np.power(10.0, -gr / 20.0))


class ChainModel:
    """Glue Compressor -> Limiter -> fader on a dry song's block features."""

    def __init__(self, features: DryFeatures) -> None:
        self.f = features
        self._active = features.peak > 10.0 ** (-70.0 / 20.0)

    def predict(self, params: ChainParams) -> Predicted:
        f, g, lim = self.f, params.glue, params.limiter
        gain = np.ones(len(f.peak))
        glue_gr = 0.0
        if g.on:
            db = _glue_gain_db(f, g)
            wet = np.power(10.0, db / 20.0)
            gain = g.dry_wet * wet + (1.0 - g.dry_wet) if g.dry_wet < 1.0 else wet
            glue_gr = float(np.mean(g.makeup_db - db[self._active])) if self._active.any() else 0.0
        lim_gr = 0.0
        if lim.on:
            gain = gain * 10.0 ** (lim.gain_db / 20.0)
            q = f.peak * gain
            if lim.mode == "soft_clip":
                ceiling = 10.0 ** (lim.ceiling_db / 20.0)
                clipped = _soft_clip(q, 1.25 * ceiling)
                gain = gain * np.where(q > 0, clipped / np.maximum(q, 1e-12), 1.0)
                q = clipped
            lg = _limiter_gain(q, f, lim)
            gain = gain * lg
            lim_gr = float(np.mean(-20.0 * np.log10(lg[self._active]))) if self._active.any() else 0.0
        if params.fader_db != 0.0:
            gain = gain * 10.0 ** (params.fader_db / 20.0)
        out_peak = float(np.max(f.peak * gain)) if len(gain) else 0.0
        return Predicted(f.energy * gain * gain, out_peak, glue_gr, lim_gr)
