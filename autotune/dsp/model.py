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

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from autotune.dsp.chain import (
    ChainParams,
    GlueParams,
    LimiterParams,
    forward_min,
    glue_gain_reduction,
    jit,
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


#: dB -> natural exponent of the linear amplitude (10^(x/20) = e^(x K))
_K = math.log(10.0) / 20.0
#: Glue settings whose gain reduction a model keeps (an offline search often varies the limiter only).
GLUE_CACHE = 4

# exp(v) = 2^k e^r with k = round(v / ln 2) and |r| <= ln 2 / 2: Cody-Waite reduction, then Taylor to r^13
# (truncation < 1e-17). Adding 1.5 * 2^52 rounds v / ln 2 to an integer k that sits in the low bits of the
# sum, from where it is shifted into the result's exponent: no libm call and no float -> int conversion,
# so LLVM vectorises the loop (about 3x numpy's exp on AVX2, within 2 ulp of it).
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0
_C2, _C3, _C4, _C5, _C6, _C7 = (1.0 / math.factorial(k) for k in range(2, 8))
_C8, _C9, _C10, _C11, _C12, _C13 = (1.0 / math.factorial(k) for k in range(8, 14))


def _exp_kernel(src: Vec, factor: float, weight: Vec, scale: float, dst: Vec, bits: Vec) -> None:
    """dst = weight * scale * exp(factor * src), the exponent clamped to +-708 (compiled by `jit`; `bits`
    is scratch)."""
    size = src.shape[0]
    for i in range(size):
        v = min(max(factor * src[i], -708.0), 708.0)
        t = v * _LOG2E + _ROUND
        k = t - _ROUND
        r = (v - k * _LN2_HI) - k * _LN2_LO
        p = _C13
        p = p * r + _C12
        p = p * r + _C11
        p = p * r + _C10
        p = p * r + _C9
        p = p * r + _C8
        p = p * r + _C7
        p = p * r + _C6
        p = p * r + _C5
        p = p * r + _C4
        p = p * r + _C3
        p = p * r + _C2
        p = p * r + 1.0
        dst[i] = p * r + 1.0
        bits[i] = t
    out_bits = dst.view(np.int64)
    k_bits = bits.view(np.int64)
    for i in range(size):
        out_bits[i] += k_bits[i] << 52
    for i in range(size):
        dst[i] *= weight[i] * scale


def _masked_sum_kernel(values: Vec, mask: NDArray[np.bool_]) -> float:
    """Sum of `values` where `mask` is set (compiled by `jit`: numpy's masked sums cost a millisecond on a
    song, and np.dot goes to a BLAS whose idle threads spin on a small machine)."""
    total = 0.0
    for i in range(values.shape[0]):
        if mask[i]:
            total += values[i]
    return total


def _required_kernel(
    peak_db: Vec, att_db: Vec, offset_db: float, ceiling_db: float, n: int, ahead: Vec
) -> None:
    """`_limiter_gain` up to the ramp, in dB (compiled by `jit`): ahead[i] becomes the most reduction any
    block in [i, i + n] requires, for limiter input peaks `peak_db - att_db + offset_db` (dB)."""
    size = peak_db.shape[0]
    # Reduction each block's own peak requires (the chain model clamps the linear gain at 1e-12).
    for i in range(size):
        ahead[i] = max(max(peak_db[i] - att_db[i] + offset_db, -240.0) - ceiling_db, 0.0)
    # Forward maximum over n + 1 blocks (the end padded with the last block), in place by doubling the span:
    # after a pass, ahead[i] covers [i, i + span), and a last pass with a shorter shift makes it n + 1.
    width = n + 1
    span = 1
    while span < width:
        shift = min(span, width - span)
        for i in range(size - shift):
            ahead[i] = max(ahead[i], ahead[i + shift])
        span += shift


def _release_kernel(
    ahead: Vec,
    lin: Vec,
    n: int,
    decay: float,
    att_db: Vec,
    peak_db: Vec,
    offset_db: float,
    active: NDArray[np.bool_],
    out: Vec,
) -> tuple[float, float]:
    """The ramp and the release, sequentially (compiled by `jit`). `lin` is 10^(-ahead / 20) (read only when
    n > 1). out[i] becomes att_db[i] plus the limiter's reduction gr[i] (dB); `out` may be `lin`, whose
    element i is read before it is written. Returns the output's highest block peak (dB) and the sum of
    gr over the `active` blocks."""
    size = ahead.shape[0]
    top = -math.inf
    gr_sum = 0.0
    if size == 0:
        return top, gr_sum
    # `ring` holds the last n linear gains (the start padded with the first) for the ramp's trailing mean;
    # its sum is taken anew every n blocks so that the running sum cannot drift.
    ring = np.empty(max(n, 1))
    first = lin[0] if n > 1 else 1.0
    for j in range(n):
        ring[j] = first
    total = first * n
    pos = 0
    gr = 0.0
    for i in range(size):
        req = min(ahead[i], 240.0)
        if n > 1:
            x = lin[i]
            total += x - ring[pos]
            ring[pos] = x
            pos += 1
            if pos == n:
                pos = 0
                total = 0.0
                for j in range(n):
                    total += ring[j]
            mean = total / n
            if mean < x:
                req = -math.log(max(mean, 1e-12)) / _K
        gr = max(req, gr * decay)
        att = att_db[i] + gr
        out[i] = att
        top = max(top, peak_db[i] - att + offset_db)
        if active[i]:
            gr_sum += gr
    return top, gr_sum


class ChainModel:
    """Glue Compressor -> Limiter -> fader on a dry song's block features."""

    def __init__(self, features: DryFeatures) -> None:
        self.f = features
        self._active = features.peak > 10.0 ** (-70.0 / 20.0)
        # What every prediction reads, computed once: contiguous float64 copies of the features, the
        # Glue's detector level and the block peaks in dB.
        peak = np.array(features.peak, dtype=np.float64)
        self._energy = np.array(features.energy, dtype=np.float64)
        with np.errstate(divide="ignore"):
            self._peak_db = 20.0 * np.log10(peak)
        self._level_db = 20.0 * np.log10(np.maximum(peak, 1e-10))
        self._active_c = np.ascontiguousarray(self._active, dtype=np.bool_)
        self._n_active = int(np.count_nonzero(self._active))
        self._zeros = np.zeros(len(peak))
        self._ones = np.ones(len(peak))
        self._glue_cache: OrderedDict[GlueParams, tuple[Vec, float]] = OrderedDict()
        self._lock = threading.Lock()
        # Two block-length scratch arrays, reused: fresh ones cost more in page faults than the kernels.
        self._scratch = (np.empty(len(peak)), np.empty(len(peak)))
        self._scratch_lock = threading.Lock()

    def _glue(self, g: GlueParams) -> tuple[Vec, float]:
        """The Glue's gain reduction per block (dB) and its mean over the active blocks. Makeup and
        Dry/Wet act after it, so settings that differ only there share it."""
        key = replace(g, makeup_db=0.0, dry_wet=1.0)
        with self._lock:
            hit = self._glue_cache.get(key)
            if hit is not None:
                self._glue_cache.move_to_end(key)
                return hit
        f = self.f
        gr = glue_gain_reduction(self._level_db, f.block / f.sample_rate, g)
        masked_sum = jit(_masked_sum_kernel)
        if not self._n_active:
            mean = 0.0
        elif masked_sum is not None:
            mean = float(masked_sum(gr, self._active_c)) / self._n_active
        else:
            mean = float(np.mean(gr[self._active]))
        with self._lock:
            self._glue_cache[key] = (gr, mean)
            while len(self._glue_cache) > GLUE_CACHE:
                self._glue_cache.popitem(last=False)
        return gr, mean

    def predict(self, params: ChainParams) -> Predicted:
        required = jit(_required_kernel)
        release = jit(_release_kernel)
        exp = jit(_exp_kernel, contract=True)
        if required is None or release is None or exp is None:
            return self._predict_numpy(params)
        f, g, lim = self.f, params.glue, params.limiter
        gr_glue, glue_gr = self._glue(g) if g.on else (self._zeros, 0.0)
        if lim.on:
            ceiling_db = float(lim.ceiling_db)
            n = max(1, round(lim.lookahead_ms / 1000.0 * f.sample_rate / f.block))
            decay = math.exp(-1.0 / max(lim.effective_release_ms / 1000.0 * f.sample_rate / f.block, 1.0))
        else:
            ceiling_db, n, decay = math.inf, 1, 0.0
        fader = 10.0 ** (params.fader_db / 20.0)
        if (not g.on or g.dry_wet >= 1.0) and not (lim.on and lim.mode == "soft_clip"):
            # Every gain is a sum in dB: the limiter's input peak is the dry peak, less the Glue's reduction,
            # plus makeup and input gain, and the output energy is one exp per block.
            peak_db, att_db, energy = self._peak_db, gr_glue, self._energy
            offset = float((g.makeup_db if g.on else 0.0) + (lim.gain_db if lim.on else 0.0))
            scale = (10.0 ** (offset / 20.0) * fader) ** 2
        else:
            # Dry/Wet or Soft Clip: the limiter's input gain per block in linear terms, as `_predict_numpy`.
            gain = np.ones(len(self._energy))
            if g.on:
                wet = np.power(10.0, (g.makeup_db - gr_glue) / 20.0)
                gain = g.dry_wet * wet + (1.0 - g.dry_wet) if g.dry_wet < 1.0 else wet
            if lim.on:
                gain = gain * 10.0 ** (lim.gain_db / 20.0)
            q = f.peak * gain
            if lim.on and lim.mode == "soft_clip":
                clipped = _soft_clip(q, 1.25 * 10.0 ** (lim.ceiling_db / 20.0))
                gain = gain * np.where(q > 0, clipped / np.maximum(q, 1e-12), 1.0)
                q = clipped
            with np.errstate(divide="ignore"):
                peak_db = np.ascontiguousarray(20.0 * np.log10(q), dtype=np.float64)
            att_db, offset, scale = self._zeros, 0.0, fader * fader
            energy = np.ascontiguousarray(self._energy * gain * gain, dtype=np.float64)
        out = np.empty(len(self._energy))
        mine = self._scratch_lock.acquire(blocking=False)
        try:
            lin, bits = self._scratch if mine else (np.empty(len(out)), np.empty(len(out)))
            required(peak_db, att_db, offset, ceiling_db, n, out)  # out: the reduction required ahead
            if n > 1:
                exp(out, -_K, self._ones, 1.0, lin, bits)  # lin: its linear gain
            top, gr_sum = release(out, lin, n, decay, att_db, peak_db, offset, self._active_c, lin)
            exp(lin, -2.0 * _K, energy, float(scale), out, bits)  # lin held the total reduction (dB)
        finally:
            if mine:
                self._scratch_lock.release()
        lim_gr = gr_sum / self._n_active if lim.on and self._n_active else 0.0
        out_peak = 10.0 ** ((top + params.fader_db) / 20.0) if len(out) else 0.0
        return Predicted(out, float(out_peak), float(glue_gr), float(lim_gr))

    def _predict_numpy(self, params: ChainParams) -> Predicted:
        """`predict` without numba: the same steps on whole arrays, and the Glue's ballistics in Python."""
        f, g, lim = self.f, params.glue, params.limiter
        gain = np.ones(len(f.peak))
        glue_gr = 0.0
        if g.on:
            gr_glue, glue_gr = self._glue(g)
            db = g.makeup_db - gr_glue
            wet = np.power(10.0, db / 20.0)
            gain = g.dry_wet * wet + (1.0 - g.dry_wet) if g.dry_wet < 1.0 else wet
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
