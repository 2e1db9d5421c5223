"""Measurement of an export: integrated loudness (ITU-R BS.1770-4), sample peak, true peak, sha256.

Loudness is measured over all channels with their BS.1770 weights, never on a mono downmix (a downmix
reads wrong for any stereo mix whose channels differ). The K-weighting biquads are derived for the file's
sample rate from the analogue prototype (as libebur128 does), which gives the exact BS.1770 coefficients
at 48 kHz; pyloudnorm's default filter reads about 0.04 LU low against them.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray
from scipy.signal import lfilter, resample_poly

BLOCK_S = 0.4
STEP_S = 0.1
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
TRUE_PEAK_OVERSAMPLING = 4


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


def integrated_loudness(audio: NDArray[np.floating[Any]], sample_rate: int) -> float:
    """Gated integrated loudness in LUFS; -inf when every block is below the absolute gate."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n, channels = x.shape
    block = round(BLOCK_S * sample_rate)
    step = round(STEP_S * sample_rate)
    if n < block:
        raise AnalysisError(f"too short for a loudness measurement: {n / sample_rate:.3f} s < {BLOCK_S} s")
    filters = k_weighting(sample_rate)
    n_blocks = (n - block) // step + 1
    starts = np.arange(n_blocks) * step
    energy = np.empty((n_blocks, channels))
    for c in range(channels):
        y = x[:, c]
        for b, a in filters:
            y = lfilter(b, a, y)
        cs = np.concatenate(([0.0], np.cumsum(y * y)))
        energy[:, c] = (cs[starts + block] - cs[starts]) / block
    weighted = energy @ channel_weights(channels)
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(weighted)
    above_abs = block_lufs > ABSOLUTE_GATE_LUFS
    if not above_abs.any():
        return float("-inf")
    relative_gate = -0.691 + 10.0 * math.log10(float(weighted[above_abs].mean())) + RELATIVE_GATE_LU
    gated = above_abs & (block_lufs > relative_gate)
    return float(-0.691 + 10.0 * math.log10(float(weighted[gated].mean())))


def to_db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else float("-inf")


def sample_peak(audio: NDArray[np.floating[Any]]) -> float:
    return float(np.max(np.abs(audio))) if audio.size else 0.0


def true_peak(audio: NDArray[np.floating[Any]], oversampling: int = TRUE_PEAK_OVERSAMPLING) -> float:
    """Linear true peak: the larger of the sample peak and the peak of the oversampled signal."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    up = resample_poly(x, oversampling, 1, axis=0)
    return max(sample_peak(x), float(np.max(np.abs(up))))


def measure_audio(audio: NDArray[np.floating[Any]], sample_rate: int, sha256: str = "") -> Measurement:
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] == 0:
        raise AnalysisError("the file holds no audio frames")
    if not np.all(np.isfinite(x)):
        raise AnalysisError("the file holds NaN or infinite samples")
    lufs = integrated_loudness(x, sample_rate)
    if math.isinf(lufs):
        raise AnalysisError("the file is silent (every block is below the -70 LUFS gate)")
    return Measurement(
        lufs_i=lufs,
        peak_dbfs=to_db(sample_peak(x)),
        true_peak_dbtp=to_db(true_peak(x)),
        duration_s=x.shape[0] / sample_rate,
        sample_rate=sample_rate,
        channels=x.shape[1],
        sha256=sha256,
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def analyze_file(path: str | Path) -> Measurement:
    """Read the file once: hash the bytes and decode the same bytes."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise AnalysisError(f"{p} is a directory, not an audio file") from None
    except OSError as e:
        raise AnalysisError(f"cannot read {p}: {e.strerror or e}") from None
    if not data:
        raise AnalysisError(f"{p} is empty (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AnalysisError(f"{p} is not a readable audio file: {e}") from None
    try:
        return measure_audio(audio, int(sr), digest)
    except AnalysisError as e:
        raise AnalysisError(f"{p}: {e}") from None
