"""The file pipeline of the export analysis: read an export once, hash (sha256) and decode it as the bytes
arrive, and measure the decoded audio into a `Measurement` (integrated loudness, sample peak, true peak and
the loudness report: LRA, maximum momentary and short-term loudness, PLR).

The meters themselves are pure code in `autotune.dsp` (`bs1770`: K-weighting, gating, integrated loudness;
`truepeak`; `loudness`: the report from the same 100 ms segment sums), shared with model-based search.
This module owns what touches files and threads: reading, decoding, hashing, running the meters in
parallel, and turning what cannot be measured into an AnalysisError that names the file.
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
from numpy.typing import NDArray

from autotune.dsp.bs1770 import (
    AudioTooShort,
    as_frames,
    channel_energies,
    channel_weights,
    gated_loudness,
    gating,
    integrated_loudness,
    k_weighting,
    k_weighting_sos,
)
from autotune.dsp.loudness import loudness_report
from autotune.dsp.truepeak import to_db, true_peak
from autotune.errors import AnalysisError

__all__ = [
    "AnalysisError",
    "Measurement",
    "analyze_file",
    "channel_weights",
    "gated_loudness",
    "integrated_loudness",
    "k_weighting",
    "measure_audio",
    "to_db",
    "true_peak",
]
# channel_weights, gated_loudness, integrated_loudness, k_weighting (autotune.dsp.bs1770), to_db and
# true_peak (autotune.dsp.truepeak) are re-exports for importers that predate those modules (issue 14).
# New code imports them from autotune.dsp; they go from here once nothing imports them from here.


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


def _measure(
    audio: NDArray[np.floating[Any]], sample_rate: int, pool: ThreadPoolExecutor, sha256: Callable[[], str]
) -> Measurement:
    """The channels are K-weighted on the pool's two threads while this one finds the true peak (the
    compiled filter and numpy release the GIL); `sha256` is asked for last, so hashing may still be going
    on meanwhile."""
    x = as_frames(audio)
    n, channels = x.shape
    if n == 0:
        raise AnalysisError("the file holds no audio frames")
    hi, lo = float(x.max()), float(x.min())  # NaN and inf propagate: no separate finiteness pass
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise AnalysisError("the file holds NaN or infinite samples")
    try:
        block, step = gating(sample_rate, n)
    except AudioTooShort as e:
        raise AnalysisError(str(e)) from None
    sos = k_weighting_sos(sample_rate)
    parts = [pool.submit(channel_energies, x[:, c], sos, block, step) for c in range(channels)]
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
    """The measurement of audio already in memory (tests, benchmarks): the same figures `analyze_file`
    gives for a file that decodes to it, with the hash supplied by the caller."""
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
    with ThreadPoolExecutor(
        max_workers=2
    ) as pool:  # hashlib, libsndfile, the filter and numpy release the GIL
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
