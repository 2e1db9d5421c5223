"""Loudness report from 100 ms K-weighted energy segments: momentary (400 ms) and short-term (3 s) loudness,
their maxima, and loudness range (LRA, EBU Tech 3342).

Everything is built from the per-100-ms, per-channel sums of squared K-weighted samples that the
integrated-loudness measurement already produces, so the report costs a few running sums over ~10
segments a second instead of another pass over the audio.

The conventions are libebur128's (ebur128.c, `ebur128_add_frames_*`, `ebur128_energy_in_interval`,
`ebur128_loudness_range_multiple`, non-histogram mode), so the figures agree with it and with tools
built on it:

* A 100 ms segment is one hop; momentary windows are 4 segments, short-term windows 30 segments, both
  divided by their nominal length in samples (4 or 30 times the segment length), not by 0.4 s or 3 s.
* The maxima are over windows ending at every 100 ms boundary: what a meter reading libebur128 at 10 Hz
  shows at its loudest. Before the first window is full, libebur128's ring buffer holds zeros, so a
  reading is the energy so far over the full window length; such a partial window can never beat the
  first full one, so it only matters when the audio is shorter than the window. Then the maximum is that
  zero-padded reading (for short-term: all the audio's energy over 3 s), as libebur128 reports it, rather
  than no value. Only whole segments count: a trailing part of a segment (< 100 ms) is left out.
* LRA uses one short-term window per second: the first ending at 3 s, then every 10 segments (libebur128
  resets its counter to 2 s after each window; windows overlap by 2 s, the overlap Tech 3342 asks for).
  Windows below -70 LUFS are dropped (absolute gate, kept at exactly -70), then those more than 20 LU below
  the energy mean of the rest (relative gate, kept at exactly -20 LU). The 10th and 95th percentiles are
  nearest-rank on the sorted energies, index int((n - 1) * p + 0.5) (rounding half up), and LRA is the
  difference of their loudness. With no window left (audio under 3 s, or all of it silent) LRA is 0.0,
  libebur128's value, never an error.

Tech 3342 itself fixes the window (3 s), the gates (-70 LUFS, -20 LU) and the percentiles (10 %, 95 %), and
leaves the interpolation of the percentiles and the hop (at least 2 s overlap) to the implementation;
libebur128's choices are the ones followed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

MOMENTARY_SEGMENTS = 4  # 400 ms
SHORT_TERM_SEGMENTS = 30  # 3 s
LRA_HOP_SEGMENTS = 10  # 1 s between the short-term windows LRA uses
LRA_ABSOLUTE_GATE_LUFS = -70.0
LRA_RELATIVE_GATE_LU = -20.0
LRA_LOW_PERCENTILE = 0.10
LRA_HIGH_PERCENTILE = 0.95


@dataclass(frozen=True)
class LoudnessReport:
    lra_lu: float
    max_momentary_lufs: float
    max_short_term_lufs: float


def weighted_segments(
    segment_sums: NDArray[np.floating[Any]], weights: NDArray[np.floating[Any]] | None = None
) -> NDArray[np.float64]:
    """One energy per segment: per-channel sums (segments x channels) times the BS.1770 channel weights.

    The weights come from the caller because this layer imports nothing of the project; 1-D input is taken
    as already weighted."""
    s = np.asarray(segment_sums, dtype=np.float64)
    if s.ndim == 1:
        return s
    w = np.ones(s.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    return np.asarray(s @ w, dtype=np.float64)


def window_energies(
    weighted: NDArray[np.float64], segments: int, segment_samples: int
) -> NDArray[np.float64]:
    """Mean square of every window of `segments` consecutive segments, one per 100 ms boundary from the
    first full window on (a running sum: the cost does not grow with the window). Audio shorter than one
    window gives the single zero-padded reading libebur128 gives (see the module docstring)."""
    length = float(segments * segment_samples)
    if len(weighted) < segments:
        return np.array([float(weighted.sum()) / length])
    cs = np.concatenate(([0.0], np.cumsum(weighted)))
    return np.asarray((cs[segments:] - cs[:-segments]) / length)


def to_lufs(energy: NDArray[np.float64]) -> NDArray[np.float64]:
    """BS.1770 loudness of mean squares; -inf for exact silence."""
    with np.errstate(divide="ignore"):
        return np.asarray(-0.691 + 10.0 * np.log10(energy))


def momentary_loudness(weighted: NDArray[np.float64], segment_samples: int) -> NDArray[np.float64]:
    """Momentary loudness (400 ms) at every 100 ms boundary, in LUFS: the series a 10 Hz meter would draw,
    for plotting an export; the report itself needs only its maximum."""
    return to_lufs(window_energies(weighted, MOMENTARY_SEGMENTS, segment_samples))


def short_term_loudness(weighted: NDArray[np.float64], segment_samples: int) -> NDArray[np.float64]:
    """Short-term loudness (3 s) at every 100 ms boundary, in LUFS (10 Hz like the momentary series; LRA
    samples it once a second, see `lra_windows`)."""
    return to_lufs(window_energies(weighted, SHORT_TERM_SEGMENTS, segment_samples))


def _lufs(energy: float) -> float:
    return -0.691 + 10.0 * math.log10(energy) if energy > 0 else float("-inf")


def _energy(lufs: float) -> float:
    return math.pow(10.0, (lufs + 0.691) / 10.0)


def loudness_range(short_term_energy: NDArray[np.float64]) -> float:
    """LRA in LU from the mean squares of the short-term windows LRA uses (one a second, see
    `lra_windows`); works on energies so that the gates and percentiles compare exactly as libebur128's do."""
    e = np.sort(np.asarray(short_term_energy, dtype=np.float64))
    e = e[e >= _energy(LRA_ABSOLUTE_GATE_LUFS)]
    if len(e) == 0:
        return 0.0
    e = e[e >= float(e.mean()) * 10.0 ** (LRA_RELATIVE_GATE_LU / 10.0)]  # keeps the largest, at least
    n = len(e)
    low = float(e[int((n - 1) * LRA_LOW_PERCENTILE + 0.5)])
    high = float(e[int((n - 1) * LRA_HIGH_PERCENTILE + 0.5)])
    return 10.0 * math.log10(high) - 10.0 * math.log10(low)


def lra_windows(short_term_energy: NDArray[np.float64], segments: int) -> NDArray[np.float64]:
    """The short-term windows libebur128 feeds LRA: those ending at 3 s, 4 s, 5 s, ... (none when the audio
    has fewer than 30 whole segments, where `short_term_energy` holds only a zero-padded reading)."""
    if segments < SHORT_TERM_SEGMENTS:
        return np.empty(0)
    return np.asarray(short_term_energy[::LRA_HOP_SEGMENTS])


def loudness_report(
    segment_sums: NDArray[np.floating[Any]],
    segment_samples: int,
    weights: NDArray[np.floating[Any]] | None = None,
) -> LoudnessReport:
    """LRA and the momentary and short-term maxima from 100 ms segment sums (segments x channels, or
    already weighted). `segment_samples` is the segment length the sums were taken over.

    The maxima are -inf only when every segment is exactly silent."""
    w = weighted_segments(segment_sums, weights)
    if len(w) == 0:
        raise ValueError("no whole 100 ms segment: nothing to report")
    short = window_energies(w, SHORT_TERM_SEGMENTS, segment_samples)
    return LoudnessReport(
        lra_lu=loudness_range(lra_windows(short, len(w))),
        max_momentary_lufs=_lufs(float(window_energies(w, MOMENTARY_SEGMENTS, segment_samples).max())),
        max_short_term_lufs=_lufs(float(short.max())),
    )
