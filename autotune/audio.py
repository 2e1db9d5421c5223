"""Measurement of an export: integrated loudness (ITU-R BS.1770-4), sample peak, true peak, sha256, and the
loudness report (LRA, maximum momentary and short-term loudness, PLR; see autotune.dsp.loudness), which
reuses the 100 ms energy sums of the integrated measurement.

Loudness is measured over all channels with their BS.1770 weights, never on a mono downmix (a downmix
reads wrong for any stereo mix whose channels differ). The K-weighting biquads are derived for the file's
sample rate from the analogue prototype (as libebur128 does), which gives the exact BS.1770 coefficients
at 48 kHz; pyloudnorm's default filter reads about 0.04 LU low against them.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import queue
import re
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy.signal import firwin, sosfilt, tf2sos

from autotune.dsp.loudness import loudness_report

BLOCK_S = 0.4
STEP_S = 0.1
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


class AnalysisError(Exception):
    """The file cannot give a meaningful measurement (unreadable, empty, silent or too short)."""


@dataclass(frozen=True)
class Measurement:
    lufs_i: float
    peak_dbfs: float
    true_peak_dbtp: float
    duration_s: float
    sample_rate: int
    channels: int
    sha256: str
    # The loudness report (issue 13), after the fields receipts are built from. libebur128's conventions
    # (autotune.dsp.loudness): LRA is 0.0 and max short-term is the zero-padded 3 s reading when the audio is
    # shorter than 3 s, so a file that measures gives finite values for all four.
    lra_lu: float  # EBU Tech 3342 loudness range
    max_momentary_lufs: float  # loudest 400 ms window, at every 100 ms
    max_short_term_lufs: float  # loudest 3 s window, at every 100 ms
    plr_db: float  # peak-to-loudness ratio: true peak (dBTP) minus integrated loudness (LUFS)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def k_weighting(sample_rate: int) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
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


def channel_weights(channels: int) -> NDArray[np.float64]:
    """BS.1770 weights: surround channels count 1.41 (5.0: L R C Ls Rs; 5.1: L R C LFE Ls Rs, LFE 0)."""
    if channels == 5:
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41])
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


#: Samples K-weighted per sosfilt call (rounded down to whole 100 ms steps): small enough that the filtered
#: chunk is still in cache when it is squared and summed, and never a second full copy of the channel.
_FILTER_CHUNK = 19_200 * 12


def _k_weighting_sos(sample_rate: int) -> NDArray[np.float32]:
    return np.vstack([tf2sos(b, a) for b, a in k_weighting(sample_rate)]).astype(np.float32)


def _block_energy(
    channel: NDArray[np.floating[Any]], sos: NDArray[np.float32], block: int, step: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean square of the K-weighted channel over every gating block (float32 filtering, float64 sums:
    within 1e-6 dB of filtering in float64, at a fraction of the time and memory), and the sum of squares
    over every whole 100 ms segment: the loudness report's momentary and short-term windows are built from
    those, so they cost no second pass over the audio."""
    n_blocks = (len(channel) - block) // step + 1
    if block == 4 * step:  # the usual case: blocks are four 100 ms segments, summed once each
        # Filtered in chunks that carry the filter state over: the same samples as one call, bit for bit.
        used = (n_blocks + 3) * step
        chunk = max(step, _FILTER_CHUNK // step * step)
        seg = np.empty(used // step, np.float64)
        zi = np.zeros((sos.shape[0], 2), np.float32)
        for start in range(0, used, chunk):
            part = np.ascontiguousarray(channel[start : min(start + chunk, used)], dtype=np.float32)
            y, zi = sosfilt(sos, part, zi=zi)
            np.square(y, out=y)
            seg[start // step : (start + len(y)) // step] = y.reshape(-1, step).sum(axis=1, dtype=np.float64)
        cs = np.concatenate(([0.0], np.cumsum(seg)))
        return np.asarray((cs[4:] - cs[:-4])[:n_blocks] / block), seg
    y = sosfilt(sos, np.ascontiguousarray(channel, dtype=np.float32))
    np.square(y, out=y)
    cs = np.concatenate(([0.0], np.cumsum(y, dtype=np.float64)))  # rates where 400 ms != 4 x 100 ms samples
    starts = np.arange(n_blocks) * step
    edges = cs[: len(channel) // step * step + 1 : step]
    return np.asarray((cs[starts + block] - cs[starts]) / block), np.diff(edges)


def _gating(sample_rate: int, frames: int) -> tuple[int, int]:
    """Block and step in samples; AnalysisError when the audio is shorter than one block."""
    block = round(BLOCK_S * sample_rate)
    step = round(STEP_S * sample_rate)
    if frames < block:
        raise AnalysisError(
            f"too short for a loudness measurement: {frames / sample_rate:.3f} s < {BLOCK_S} s"
        )
    return block, step


def gated_loudness(energy: NDArray[np.float64]) -> float:
    """BS.1770 gating of per-block, per-channel mean squares (blocks x channels); model-based search gates
    its predicted block energies with it too."""
    weighted = energy @ channel_weights(energy.shape[1])
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(weighted)
    above_abs = block_lufs > ABSOLUTE_GATE_LUFS
    if not above_abs.any():
        return float("-inf")
    relative_gate = -0.691 + 10.0 * math.log10(float(weighted[above_abs].mean())) + RELATIVE_GATE_LU
    gated = above_abs & (block_lufs > relative_gate)
    return float(-0.691 + 10.0 * math.log10(float(weighted[gated].mean())))


def _as_frames(audio: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    x = np.asarray(audio)
    return x[:, None] if x.ndim == 1 else x


def integrated_loudness(audio: NDArray[np.floating[Any]], sample_rate: int) -> float:
    """Gated integrated loudness in LUFS; -inf when every block is below the absolute gate.

    Blocks are 400 ms long and start every 100 ms: the signal is filtered and squared once, and block
    energies come from running sums. Channels are filtered in parallel threads (scipy releases the GIL)."""
    x = _as_frames(audio)
    block, step = _gating(sample_rate, x.shape[0])
    sos = _k_weighting_sos(sample_rate)
    with ThreadPoolExecutor(max_workers=min(x.shape[1], 2)) as pool:
        parts = [pool.submit(_block_energy, x[:, c], sos, block, step) for c in range(x.shape[1])]
        return gated_loudness(np.stack([p.result()[0] for p in parts], axis=1))


def to_db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else float("-inf")


#: True-peak interpolator: 8 phases x 24 taps, Kaiser-windowed sinc with its band edge at 97 % of the
#: original Nyquist. Brick-wall limited masters carry energy right up to Nyquist; BS.1770's minimal 4x filter
#: reads them several tenths of a dB low, this one stays within a few hundredths of a 16x reference.
TP_PHASES, TP_TAPS = 8, 24
_TP_H = (firwin(TP_PHASES * TP_TAPS, 0.97 / TP_PHASES, window=("kaiser", 8.0)) * TP_PHASES).astype(np.float32)
_TP_BANK = np.stack([_TP_H[p::TP_PHASES][::-1] for p in range(TP_PHASES)])  # (phases, taps)
#: Float32 products may differ from exact ones by a few 1e-7 of the inputs' scale: the bounds add this.
_TP_ROUNDING = 1e-5
#: No interpolated value exceeds the largest sample under the filter times this (the bank's L1 norm).
_TP_L1 = float(np.abs(_TP_BANK).sum(axis=1).max()) + _TP_ROUNDING
_TP_BLOCK = 24
#: A block's window starts this many samples before the block; it is the block plus TP_TAPS samples long,
#: enough for every phase of every sample in the block and for phase 0 of the sample after it.
_TP_LEAD = TP_TAPS // 2
_TP_WINDOW = _TP_BLOCK + TP_TAPS


def _odd_phase_slack(h: NDArray[np.float32]) -> float:
    """How far an odd phase can rise above the larger of its two even neighbours, per unit of input.

    The 8x signal is u[m] = sum_j h[m - 8j] x[j]. For odd m, u[m] - (u[m-1] + u[m+1]) / 2 = sum_j d[m - 8j] x[j]
    with d the filter's second difference, so |u[m]| <= max(|u[m-1]|, |u[m+1]|) + L1(d's phase) * max|x|.
    This holds for any input: no band-limit assumption."""
    hd = h.astype(np.float64)
    d = np.zeros(len(hd) + 2)  # d[i] for i = -1 .. len(h), stored at i + 1
    d[1:-1] += hd
    d[2:] -= hd / 2
    d[:-2] -= hd / 2
    index = np.arange(-1, len(hd) + 1)
    return max(float(np.abs(d[index % TP_PHASES == r]).sum()) for r in range(1, TP_PHASES, 2))


_TP_SLACK = _odd_phase_slack(_TP_H) + _TP_ROUNDING


def _toeplitz(phases: list[int], extra_phase0: bool) -> NDArray[np.float32]:
    """A block's window (one row) times this matrix gives the chosen phases of every sample of the block in
    one BLAS call (and, with `extra_phase0`, phase 0 of the sample after the block)."""
    cols = _TP_BLOCK * len(phases) + int(extra_phase0)
    m = np.zeros((_TP_WINDOW, cols), np.float32)
    for s in range(_TP_BLOCK):
        m[s : s + TP_TAPS, s * len(phases) : (s + 1) * len(phases)] = _TP_BANK[phases].T
    if extra_phase0:
        m[_TP_BLOCK : _TP_BLOCK + TP_TAPS, -1] = _TP_BANK[0]
    return m


_TP_COARSE = _toeplitz(list(range(0, TP_PHASES, 2)), extra_phase0=True).T.copy()  # 4x: the even phases
_TP_FINE = _toeplitz(list(range(TP_PHASES)), extra_phase0=False).T.copy()  # 8x: every phase
#: Windows per BLAS call. OpenBLAS hands a product to a second thread above m*n*k = 262144; here the other
#: core is busy with the loudness filters, and threaded products of these shapes ran 2-20x slower than
#: single-threaded ones, so each call stays just under that size.
_OPENBLAS_THREADING_MNK = 262_144
_TP_CALL_COARSE = _OPENBLAS_THREADING_MNK // (_TP_WINDOW * _TP_COARSE.shape[0])
_TP_CALL_FINE = _OPENBLAS_THREADING_MNK // (_TP_WINDOW * _TP_FINE.shape[0])
_TP_BATCH = 4096  # windows gathered at a time: the batch and its products stay in cache
_TP_SEED = 512  # loudest blocks per channel looked at first


def _block_neighbourhood_peaks(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Largest |sample| over each block and its two neighbours: a bound on every sample a block's window
    reads (the window reaches _TP_LEAD <= _TP_BLOCK samples either side).

    |x| as float32 bits with the sign cleared orders like the values, and numpy's integer maximum is twice
    as fast as its float one (no NaN handling); chunks keep the scratch in cache."""
    n = len(x)
    nb = -(-n // _TP_BLOCK)
    whole = n // _TP_BLOCK * _TP_BLOCK
    peak = np.empty(nb, np.float32)
    bits, peak_bits = x.view(np.uint32), peak.view(np.uint32)
    chunk = _TP_BLOCK * 2048
    scratch = np.empty(min(chunk, whole), np.uint32)
    for lo in range(0, whole, chunk):
        hi = min(whole, lo + chunk)
        t = scratch[: hi - lo]
        np.bitwise_and(bits[lo:hi], np.uint32(0x7FFFFFFF), out=t)
        t.reshape(-1, _TP_BLOCK).max(axis=1, out=peak_bits[lo // _TP_BLOCK : hi // _TP_BLOCK])
    if whole < n:
        peak[-1] = np.abs(x[whole:]).max()
    near = peak.copy()
    near[1:] = np.maximum(near[1:], peak[:-1])
    near[:-1] = np.maximum(near[:-1], peak[1:])
    return near


def _windows(x: NDArray[np.float32], blocks: NDArray[np.intp]) -> NDArray[np.float32]:
    """The windows of `blocks` as rows (a copy, so BLAS gets contiguous rows); silence outside the file."""
    n = len(x)
    starts = blocks * _TP_BLOCK - _TP_LEAD
    inside = (starts >= 0) & (starts + _TP_WINDOW <= n)
    if n >= _TP_WINDOW and inside.all():
        return sliding_window_view(x, _TP_WINDOW)[starts]
    rows = np.zeros((len(blocks), _TP_WINDOW), np.float32)
    if n >= _TP_WINDOW:
        rows[inside] = sliding_window_view(x, _TP_WINDOW)[starts[inside]]
    for k in np.flatnonzero(~inside).tolist():
        s = int(starts[k])
        lo, hi = max(s, 0), min(s + _TP_WINDOW, n)
        if lo < hi:
            rows[k, lo - s : hi - s] = x[lo:hi]
    return rows


def _interpolate(
    rows: NDArray[np.float32], matrix: NDArray[np.float32], per_call: int, out: NDArray[np.float32]
) -> NDArray[np.float32]:
    """matrix @ rows.T (interpolated values x windows) into `out`, a few windows per BLAS call."""
    k = len(rows)
    for i in range(0, k, per_call):
        j = min(k, i + per_call)
        np.matmul(matrix, rows[i:j].T, out=out[:, i:j])
    return out[:, :k]


def true_peak(audio: NDArray[np.floating[Any]], sample_peak: float | None = None) -> float:
    """Linear true peak: the larger of the sample peak and the peak of the 8x interpolated signal.

    The result equals interpolating every sample at 8x (to float32 rounding, covered by a 1e-5 margin in
    the bounds), for any input: work is skipped only where a bound proves it cannot matter.
      1. Blocks of 24 samples whose neighbourhood peak times the filter's L1 norm (2.14) cannot beat the
         best value so far (the sample peak, lifted by a first 4x look at each channel's loudest blocks)
         are skipped.
      2. The rest get the 4x (even) phases: half the work of 8x.
      3. An odd phase exceeds the larger of its even neighbours by at most 0.084 times the largest input
         sample under the filter (the filter's second difference, `_odd_phase_slack`). Only blocks whose
         4x peak plus that slack can beat the best value found so far get all 8 phases, loudest first. On
         music, limited or not, that is well under 1 % of the blocks.
    """
    x = _as_frames(audio)
    n, ch = x.shape
    if n == 0:
        return 0.0
    cols = [np.ascontiguousarray(x[:, c], dtype=np.float32) for c in range(ch)]
    if sample_peak is None:
        sample_peak = max(max(float(c.max()), -float(c.min())) for c in cols)
    return _true_peak(cols, sample_peak)


def _coarse_peaks(
    x: NDArray[np.float32], blocks: NDArray[np.intp], out: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Per block, the largest |value| among the 4x phases (and phase 0 of the next sample)."""
    even = _interpolate(_windows(x, blocks), _TP_COARSE, _TP_CALL_COARSE, out)
    return np.asarray(np.maximum(even.max(axis=0), -even.min(axis=0)), dtype=np.float32)


def _true_peak(cols: list[NDArray[np.float32]], best: float) -> float:
    out = np.empty((_TP_COARSE.shape[0], _TP_BATCH), np.float32)
    near = [_block_neighbourhood_peaks(x) for x in cols]
    # A first look at each channel's loudest blocks lifts `best` close to the true peak, so that the L1
    # bound below skips more (on a limited master, a quarter of the blocks instead of a third).
    for x, nx in zip(cols, near, strict=True):
        seed = np.argpartition(nx, -_TP_SEED)[-_TP_SEED:] if len(nx) > _TP_SEED else np.arange(len(nx))
        best = max(best, float(_coarse_peaks(x, seed, out).max()))
    bounds: list[NDArray[np.float32]] = []
    where: list[tuple[int, NDArray[np.intp]]] = []
    for c, (x, nx) in enumerate(zip(cols, near, strict=True)):
        blocks = np.flatnonzero(nx * _TP_L1 > best)
        for lo in range(0, len(blocks), _TP_BATCH):
            chunk = blocks[lo : lo + _TP_BATCH]
            coarse = _coarse_peaks(x, chunk, out)
            best = max(best, float(coarse.max()))
            bound = coarse + nx[chunk] * np.float32(_TP_SLACK)
            keep = bound > best
            bounds.append(bound[keep])
            where.append((c, chunk[keep]))
    if not bounds:
        return best
    bound = np.concatenate(bounds)
    channel = np.concatenate([np.full(len(b), c) for c, b in where])
    block = np.concatenate([b for _, b in where])
    order = np.argsort(-bound, kind="stable")  # loudest first: the rest usually fall below `best`
    out = np.empty((_TP_FINE.shape[0], _TP_BATCH), np.float32)
    for lo in range(0, len(order), _TP_CALL_FINE * 8):
        pick = order[lo : lo + _TP_CALL_FINE * 8]
        pick = pick[bound[pick] > best]
        if len(pick) == 0:
            break
        for c, x in enumerate(cols):
            mine = block[pick[channel[pick] == c]]
            if len(mine):
                fine = _interpolate(_windows(x, mine), _TP_FINE, _TP_CALL_FINE, out)
                best = max(best, float(fine.max()), -float(fine.min()))
    return best


def _measure(
    audio: NDArray[np.floating[Any]], sample_rate: int, pool: ThreadPoolExecutor, sha256: Callable[[], str]
) -> Measurement:
    """The channels are K-weighted on the pool's two threads while this one finds the true peak (scipy and
    BLAS release the GIL); `sha256` is asked for last, so hashing may still be going on meanwhile."""
    x = _as_frames(audio)
    n, channels = x.shape
    if n == 0:
        raise AnalysisError("the file holds no audio frames")
    hi, lo = float(x.max()), float(x.min())  # NaN and inf propagate: no separate finiteness pass
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise AnalysisError("the file holds NaN or infinite samples")
    block, step = _gating(sample_rate, n)
    sos = _k_weighting_sos(sample_rate)
    parts = [pool.submit(_block_energy, x[:, c], sos, block, step) for c in range(channels)]
    try:
        peak_tp = true_peak(x, max(hi, -lo))
    finally:
        done = [p.result() for p in parts]
    energy = np.stack([blocks for blocks, _ in done], axis=1)
    lufs = gated_loudness(energy)
    if math.isinf(lufs):
        raise AnalysisError("the file is silent (every block is below the -70 LUFS gate)")
    report = loudness_report(np.stack([seg for _, seg in done], axis=1), step, channel_weights(channels))
    tp_db = to_db(peak_tp)
    return Measurement(
        lufs_i=lufs,
        peak_dbfs=to_db(max(hi, -lo)),
        true_peak_dbtp=tp_db,
        duration_s=n / sample_rate,
        sample_rate=sample_rate,
        channels=channels,
        sha256=sha256(),
        lra_lu=report.lra_lu,
        max_momentary_lufs=report.max_momentary_lufs,
        max_short_term_lufs=report.max_short_term_lufs,
        plr_db=tp_db - lufs,
    )


def measure_audio(audio: NDArray[np.floating[Any]], sample_rate: int, sha256: str = "") -> Measurement:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return _measure(audio, sample_rate, pool, lambda: sha256)


#: WAVE_FORMAT_EXTENSIBLE's SubFormat for integer PCM (KSDATAFORMAT_SUBTYPE_PCM).
_PCM_GUID = bytes.fromhex("0100000000001000800000aa00389b71")


@dataclass(frozen=True)
class _PcmLayout:
    offset: int  # of the first sample
    frames: int
    channels: int
    sample_rate: int
    width: int  # bytes per sample: 2 or 3


def _pcm_wav_layout(data: bytes | memoryview, size: int | None = None) -> _PcmLayout | None:
    """Where the samples of a 16- or 24-bit integer PCM WAV are; None for anything else (libsndfile reads
    those). `data` may be the file's first bytes only, `size` its whole length. A data chunk cut short
    counts the whole frames that are there, as libsndfile does."""
    size = len(data) if size is None else size
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    fmt: tuple[int, int, int, int, int] | None = None
    while pos + 8 <= len(data):
        cid, chunk = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if cid == b"fmt ":
            if chunk < 16 or body + chunk > len(data):
                return None
            tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == 0xFFFE:
                if chunk < 40 or data[body + 24 : body + 40] != _PCM_GUID:
                    return None
                if struct.unpack_from("<H", data, body + 18)[0] != bits:  # valid bits < container bits
                    return None
                tag = 1
            fmt = (tag, channels, rate, align, bits)
        elif cid == b"data":
            if fmt is None:
                return None
            tag, channels, rate, align, bits = fmt
            width = bits // 8
            if tag != 1 or bits not in (16, 24) or channels < 1 or rate < 1 or align != channels * width:
                return None
            frames = min(chunk, size - body) // align
            return _PcmLayout(body, frames, channels, rate, width)
        pos = body + chunk + (chunk & 1)
    return None


#: Samples converted per numpy call when decoding 24-bit PCM: the int32 scratch stays in cache.
_DECODE_CHUNK = 1 << 16


def _decode_pcm(data: bytes | memoryview, layout: _PcmLayout) -> NDArray[np.float32]:
    """Integer PCM to float32 straight from the file's bytes, one channel at a time into a channel-major
    array (returned transposed, as frames x channels): each channel is then contiguous for the filters and
    the interpolator, with no further copies. Values equal libsndfile's (sample / 2**(bits - 1))."""
    out = np.empty((layout.channels, layout.frames), np.float32)
    _decode_pcm_into(out, data, layout, 0, layout.frames)
    return out.T


def _decode_pcm_into(
    out: NDArray[np.float32], data: bytes | memoryview, layout: _PcmLayout, first: int, stop: int
) -> None:
    """Frames first..stop-1 into `out` (channels x frames); only their bytes are read."""
    k, n = layout.channels, stop - first
    if n <= 0:
        return
    if layout.width == 2:
        for c in range(k):
            at = layout.offset + (first * k + c) * 2
            src = np.ndarray((n,), "<i2", buffer=data, offset=at, strides=(2 * k,))
            np.multiply(src, np.float32(2.0**-15), out=out[c, first:stop], dtype=np.float32, casting="unsafe")
        return
    # 24-bit: read each sample's three bytes together with the byte before them as a little-endian int32
    # (the sample in the top 24 bits), then shift right: the stray low byte drops out and the sign stays.
    scratch = np.empty(min(n, _DECODE_CHUNK), np.int32)
    for c in range(k):
        at = layout.offset - 1 + (first * k + c) * 3
        src = np.ndarray((n,), "<i4", buffer=data, offset=at, strides=(3 * k,))
        for lo in range(0, n, _DECODE_CHUNK):
            hi = min(n, lo + _DECODE_CHUNK)
            t = scratch[: hi - lo]
            np.right_shift(src[lo:hi], 8, out=t)
            dst = out[c, first + lo : first + hi]
            np.multiply(t, np.float32(2.0**-23), out=dst, dtype=np.float32, casting="unsafe")


def _decode_soundfile(data: bytes, pool: ThreadPoolExecutor) -> tuple[NDArray[np.float32], int]:
    """Any other format: libsndfile in two halves on two threads (it runs without the GIL); `data` is
    shared, not copied."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        frames, channels, sr = f.frames, f.channels, f.samplerate
    out = np.empty((frames, channels), np.float32)

    def part(start: int, stop: int) -> None:
        with sf.SoundFile(io.BytesIO(data)) as f:
            f.seek(start)
            f.read(stop - start, dtype="float32", always_2d=True, out=out[start:stop])

    mid = frames // 2
    second = pool.submit(part, mid, frames)
    part(0, mid)
    second.result()
    return out, int(sr)


#: Bytes per read: big enough that each call is cheap, small enough that hashing and decoding keep pace.
_READ_CHUNK = 1 << 22


@dataclass
class _FileRead:
    data: memoryview
    sha256: Future[str]
    audio: NDArray[np.float32] | None  # frames x channels, when decoded as the bytes came in
    sample_rate: int


def _read(path: Path, pool: ThreadPoolExecutor) -> _FileRead:
    """The file's bytes, read in chunks that the pool's two threads hash and (a 16/24-bit PCM WAV) decode
    as they arrive. Reading from the page cache, SHA-256 and decoding each take about the same time, so
    they end together instead of one after the other. The buffer is numpy's empty, never zero-filled."""
    chunks: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()

    def digest() -> str:
        h = hashlib.sha256()
        while (part := chunks.get()) is not None:
            h.update(part)
        return h.hexdigest()

    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        view = np.empty(size, np.uint8).data
        hashing = pool.submit(digest)  # one long task: the decoding below runs on the other thread
        layout: _PcmLayout | None = None
        out = np.empty((0, 0), np.float32)
        decoding: list[Future[None]] = []
        decoded = got = 0
        try:
            while got < size:
                n = f.readinto(view[got : got + _READ_CHUNK])
                if not n:
                    break  # the file shrank since it was opened: measure and hash what was there
                chunks.put(view[got : got + n])
                got += n
                if got == n:  # the first chunk holds the header (unless the data starts further in)
                    layout = _pcm_wav_layout(view[:got], size)
                    if layout is not None:
                        out = np.empty((layout.channels, layout.frames), np.float32)
                if layout is not None:
                    ready = min(layout.frames, (got - layout.offset) // (layout.channels * layout.width))
                    if ready > decoded:
                        decoding.append(pool.submit(_decode_pcm_into, out, view, layout, decoded, ready))
                        decoded = ready
        finally:
            chunks.put(None)
            for d in decoding:
                d.result()
    if layout is None or got < size:  # not a PCM WAV we decode, a header beyond the first chunk, or shrank
        return _FileRead(view[:got], hashing, None, 0)
    return _FileRead(view, hashing, out.T, layout.sample_rate)


def analyze_file(path: str | Path) -> Measurement:
    """Read the file once, hashing and decoding it as it comes in; measure."""
    p = Path(path)
    with ThreadPoolExecutor(max_workers=2) as pool:  # hashlib, libsndfile, scipy and BLAS release the GIL
        try:
            read = _read(p, pool)
        except IsADirectoryError:
            raise AnalysisError(f"{p} is a directory, not an audio file") from None
        except OSError as e:
            raise AnalysisError(f"cannot read {p}: {e.strerror or e}") from None
        if not read.data:
            raise AnalysisError(f"{p} is empty (0 bytes)")
        try:
            if read.audio is not None:
                audio, sr = read.audio, read.sample_rate
            elif (layout := _pcm_wav_layout(read.data)) is not None:
                audio, sr = _decode_pcm(read.data, layout), layout.sample_rate
            else:  # libsndfile reads from bytes; the numpy buffer goes once the hash is done with it
                raw = read.data.tobytes()
                read.sha256.result()
                del read.data
                audio, sr = _decode_soundfile(raw, pool)
                del raw
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
            # libsndfile names the in-memory buffer it read ("Error opening <_io.BytesIO …>: "): only the reason helps.
            reason = re.sub(r"^Error opening [^:]*: ", "", str(e)).strip() or type(e).__name__
            raise AnalysisError(f"{p} is not a readable audio file: {reason}") from None
        try:
            return _measure(audio, int(sr), pool, read.sha256.result)
        except AnalysisError as e:
            raise AnalysisError(f"{p}: {e}") from None
