"""True peak (ITU-R BS.1770-4 Annex 2, with a better interpolator): the largest value of the 8x oversampled
signal, found without interpolating most of it.

Pure (numpy only, nothing of the project outside `autotune.dsp`) so that the export analysis and
anything that predicts or checks a true peak read the same meter. The filter tables are built once, at
import: they are a few kilobytes, and every measurement reuses them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from autotune.dsp.bs1770 import as_frames


def to_db(value: float) -> float:
    """A linear amplitude (a sample or true peak) in dB; -inf for silence rather than an error, because a
    silent channel is a reading, not a fault."""
    return 20.0 * math.log10(value) if value > 0 else float("-inf")


#: True-peak interpolator: 8 phases x 24 taps, Kaiser-windowed sinc with its band edge at 97 % of the
#: original Nyquist. Brick-wall limited masters carry energy right up to Nyquist; BS.1770's minimal 4x filter
#: reads them several tenths of a dB low, this one stays within a few hundredths of a 16x reference.
TP_PHASES, TP_TAPS = 8, 24


def kaiser_lowpass(taps: int, cutoff: float, beta: float) -> NDArray[np.float64]:
    """A Kaiser-windowed sinc low-pass with unit DC gain, `cutoff` a fraction of Nyquist: what
    `scipy.signal.firwin(taps, cutoff, window=("kaiser", beta))` designs, written out so that measuring
    never imports scipy.signal (1.5 s; tests/test_bs1770.py holds the two together)."""
    m = np.arange(taps) - (taps - 1) / 2.0
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(taps, beta)
    return np.asarray(h / h.sum())


_TP_H = (kaiser_lowpass(TP_PHASES * TP_TAPS, 0.97 / TP_PHASES, 8.0) * TP_PHASES).astype(np.float32)
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
    x = as_frames(audio)
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
