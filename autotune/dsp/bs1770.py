"""ITU-R BS.1770-4 integrated loudness as pure functions: the K-weighting filter, the channel weights, the
per-block energies and the two-stage gate.

One copy serves both sides of the project: the export analysis (`autotune.audio`) measures files with it,
and model-based search (`autotune.modelsearch`) weights the dry reference and gates its predicted block
energies with it, so a model prediction and a measured export can only differ in the audio, never in the
meter. Like the rest of `autotune.dsp` this imports nothing of the project outside `autotune.dsp`.

Loudness is measured over all channels with their BS.1770 weights, never on a mono downmix (a downmix
reads wrong for any stereo mix whose channels differ). The K-weighting biquads are derived for the
sample rate from the analogue prototype (as libebur128 does), which gives the exact BS.1770 coefficients
at 48 kHz; pyloudnorm's default filter reads about 0.04 LU low against them.

The gating blocks (400 ms every 100 ms) are sums of four 100 ms segments: the loudness report
(`autotune.dsp.loudness`) reuses the same segment sums, so it costs no second pass over the audio.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from autotune.dsp.compiled import jit
from autotune.dsp.loudness import MOMENTARY_SEGMENTS, window_energies

BLOCK_S = 0.4
STEP_S = 0.1
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0

Biquad = tuple[NDArray[np.float64], NDArray[np.float64]]


class AudioTooShort(ValueError):
    """Shorter than one 400 ms gating block: BS.1770 defines no loudness for it.

    A ValueError rather than the file pipeline's AnalysisError because this layer knows nothing of files;
    `autotune.audio` turns it into an AnalysisError naming the file."""


def k_weighting(sample_rate: int) -> list[Biquad]:
    """The two BS.1770 K-weighting biquads (shelf, then high-pass) for any sample rate."""
    # High shelf (head effects).
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf_b = np.array(
        [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0]
    )
    shelf_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    # RLB high-pass.
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1.0 + k / q + k * k
    hp_b = np.array([1.0, -2.0, 1.0])
    hp_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    return [(shelf_b, shelf_a), (hp_b, hp_a)]


def k_weighting_sos(sample_rate: int, dtype: DTypeLike = np.float32) -> NDArray[Any]:
    """The K-weighting as one second-order-sections array (rows b0 b1 b2 1 a1 a2, as `scipy.signal.sosfilt`
    takes them; `k_weighting`'s denominators are normalised already).

    float32 is what the export analysis filters in (fast; it reads about 2e-5 dB above float64, mostly from
    the rounded coefficients); the model's dry reference is filtered once per song and cached, so it keeps
    float64 (`k_weighted_block_sums`)."""
    return np.vstack([np.concatenate([b, a]) for b, a in k_weighting(sample_rate)]).astype(dtype)


def _sosfilt_kernel(sos: NDArray[Any], x: NDArray[Any], zi: NDArray[Any], y: NDArray[Any]) -> None:
    """scipy.signal.sosfilt's recursion (direct form II transposed, the sections in turn for each sample),
    in the arrays' own precision; `zi` carries the state in and out (compiled by `jit`)."""
    for i in range(x.shape[0]):
        v = x[i]
        for s in range(sos.shape[0]):
            out = sos[s, 0] * v + zi[s, 0]
            zi[s, 0] = sos[s, 1] * v - sos[s, 4] * out + zi[s, 1]
            zi[s, 1] = sos[s, 2] * v - sos[s, 5] * out
            v = out
        y[i] = v


def sosfilt(
    sos: NDArray[Any], x: NDArray[Any], zi: NDArray[Any] | None = None
) -> tuple[NDArray[Any], NDArray[Any]]:
    """`x` through the sections, and the final state. Compiled, so a process that measures never imports
    scipy.signal (which takes 1.5 s to import, scipy.stats with it); scipy's own without numba."""
    state = np.zeros((sos.shape[0], 2), sos.dtype) if zi is None else np.array(zi, dtype=sos.dtype)
    signal = np.ascontiguousarray(x, dtype=sos.dtype)  # filtered in the sections' precision either way
    if signal.ndim != 1 or state.shape != (sos.shape[0], 2):  # the kernel checks no bounds
        raise ValueError(f"one channel and a ({sos.shape[0]}, 2) state, not {signal.shape} and {state.shape}")
    kernel = jit(_sosfilt_kernel)
    if kernel is None:
        from scipy.signal import sosfilt as scipy_sosfilt

        y, state = scipy_sosfilt(sos, signal, zi=state)
        return np.asarray(y, dtype=sos.dtype), np.asarray(state, dtype=sos.dtype)
    y = np.empty(len(signal), sos.dtype)
    kernel(sos, signal, state, y)
    return y, state


def channel_weights(channels: int) -> NDArray[np.float64]:
    """BS.1770 weights: surround channels count 1.41 (5.0: L R C Ls Rs; 5.1: L R C LFE Ls Rs, LFE 0)."""
    if channels == 5:
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41])
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


def as_frames(audio: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    """Frames x channels, so that mono callers may pass a 1-D signal."""
    x = np.asarray(audio)
    return x[:, None] if x.ndim == 1 else x


def gating(sample_rate: int, frames: int) -> tuple[int, int]:
    """Block and step in samples; AudioTooShort when the audio is shorter than one block."""
    block = round(BLOCK_S * sample_rate)
    step = round(STEP_S * sample_rate)
    if frames < block:
        raise AudioTooShort(
            f"too short for a loudness measurement: {frames / sample_rate:.3f} s < {BLOCK_S} s"
        )
    return block, step


#: Samples K-weighted per sosfilt call (rounded down to whole 100 ms steps): small enough that the filtered
#: chunk is still in cache when it is squared and summed, and never a second full copy of the channel.
_FILTER_CHUNK = 19_200 * 12


def channel_energies(
    channel: NDArray[np.floating[Any]], sos: NDArray[np.float32], block: int, step: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean square of the K-weighted channel over every gating block (float32 filtering, float64 sums:
    within 1e-4 dB of filtering in float64, at a fraction of the time and memory), and the sum of squares
    over every whole 100 ms segment: the loudness report's momentary and short-term windows are built from
    those, so they cost no second pass over the audio. Pure, and releases the GIL in the filter: the
    analysis runs one channel per thread."""
    n_blocks = (len(channel) - block) // step + 1
    if block == MOMENTARY_SEGMENTS * step:  # the usual case: blocks are four 100 ms segments
        # Filtered in chunks that carry the filter state over: the same samples as one call, bit for bit.
        used = (n_blocks + 3) * step
        chunk = max(step, _FILTER_CHUNK // step * step)
        seg = np.empty(used // step, np.float64)
        zi = np.zeros((sos.shape[0], 2), np.float32)
        for start in range(0, used, chunk):
            part = np.ascontiguousarray(channel[start : min(start + chunk, used)], dtype=np.float32)
            y, zi = sosfilt(sos, part, zi)
            np.square(y, out=y)
            seg[start // step : (start + len(y)) // step] = y.reshape(-1, step).sum(axis=1, dtype=np.float64)
        # Exactly n_blocks windows: `used` holds n_blocks + 3 segments.
        return window_energies(seg, MOMENTARY_SEGMENTS, step), seg
    y, _ = sosfilt(sos, channel)
    np.square(y, out=y)
    cs = np.concatenate(([0.0], np.cumsum(y, dtype=np.float64)))  # rates where 400 ms != 4 x 100 ms samples
    starts = np.arange(n_blocks) * step
    edges = cs[: len(channel) // step * step + 1 : step]
    return np.asarray((cs[starts + block] - cs[starts]) / block), np.diff(edges)


def gate(weighted: NDArray[np.float64]) -> float:
    """BS.1770's two gates over channel-weighted block mean squares (one per 400 ms block); -inf when every
    block is below the absolute gate."""
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(weighted)
    above_abs = block_lufs > ABSOLUTE_GATE_LUFS
    if not above_abs.any():
        return float("-inf")
    relative_gate = -0.691 + 10.0 * math.log10(float(weighted[above_abs].mean())) + RELATIVE_GATE_LU
    gated = above_abs & (block_lufs > relative_gate)
    return float(-0.691 + 10.0 * math.log10(float(weighted[gated].mean())))


def gated_loudness(energy: NDArray[np.float64]) -> float:
    """BS.1770 gating of per-block, per-channel mean squares (blocks x channels): channels are weighted
    per block before the gate, as the standard sums them."""
    return gate(energy @ channel_weights(energy.shape[1]))


def gated_loudness_of_segments(weighted_segments: NDArray[np.float64], segment_samples: int) -> float:
    """Integrated loudness from channel-weighted 100 ms segment energies (sums of squares, not means):
    400 ms blocks of four segments at every segment, then `gate`. -inf with fewer than four segments.

    For callers that hold energies per segment rather than audio: model-based search predicts them block by
    block and sums its blocks into segments. `segment_samples` is the segment length the sums were taken
    over (100 ms of samples)."""
    if len(weighted_segments) < MOMENTARY_SEGMENTS:
        return float("-inf")
    return gate(window_energies(weighted_segments, MOMENTARY_SEGMENTS, segment_samples))


def segment_samples(sample_rate: int) -> int:
    """Samples in one 100 ms segment (the gating step), rounded as the analysis rounds it."""
    return round(STEP_S * sample_rate)


def k_weighted_block_sums(
    audio: NDArray[np.floating[Any]], sample_rate: int, block: int
) -> NDArray[np.float64]:
    """Channel-weighted sums of squared K-weighted samples over consecutive blocks of `block` samples (a
    trailing partial block is dropped), filtered in float64.

    What model-based search keeps of its dry reference: blocks finer than 100 ms so the chain model can
    work at its own control rate, summed back into segments for `gated_loudness_of_segments`. Channels
    weighted 0 (LFE) are not filtered at all."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    sos = k_weighting_sos(sample_rate, np.float64)
    weights = channel_weights(x.shape[1])
    nb = x.shape[0] // block
    energy = np.zeros(nb)
    for c in range(x.shape[1]):
        if weights[c] == 0.0:
            continue
        y, _ = sosfilt(sos, x[:, c])
        sums = np.asarray((y * y)[: nb * block]).reshape(nb, block).sum(axis=1, dtype=np.float64)
        energy += weights[c] * sums
    return energy


def integrated_loudness(audio: NDArray[np.floating[Any]], sample_rate: int) -> float:
    """Gated integrated loudness in LUFS; -inf when every block is below the absolute gate; AudioTooShort
    under 400 ms.

    Blocks are 400 ms long and start every 100 ms: the signal is filtered and squared once, and block
    energies come from running sums. Channels are filtered in parallel threads (the kernel releases the GIL)."""
    x = as_frames(audio)
    block, step = gating(sample_rate, x.shape[0])
    sos = k_weighting_sos(sample_rate)
    with ThreadPoolExecutor(max_workers=min(x.shape[1], 2)) as pool:
        parts = [pool.submit(channel_energies, x[:, c], sos, block, step) for c in range(x.shape[1])]
        return gated_loudness(np.stack([p.result()[0] for p in parts], axis=1))
