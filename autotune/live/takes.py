"""The span a resample capture records, and the take files Live writes for it.

A capture records a span of the song (`Span`) into a take in the Set's `Samples/Recorded` folder; this
module waits for the take to be complete, cuts exactly the span out of it into the export's WAV, and
deletes it afterwards. What it knows is the files', not the Set's: `autotune.live.resample` drives the
recording, and `Capture` is what its receipt states about one.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from autotune.live.errors import ExportFailed
from autotune.live.export import stamp, wav_problem

#: Seconds Live has to end a recording once stopped.
END_TIMEOUT_S = 5.0
#: A take with no sample above this (dBFS) is silence: the doctor's test recording must not be.
SILENCE_DBFS = -90.0


@dataclass(frozen=True)
class Span:
    """What a capture records, in song time (beats), and where that span came from."""

    start_beats: float
    length_beats: float
    source: str

    @property
    def end_beats(self) -> float:
        return self.start_beats + self.length_beats

    def seconds(self, tempo: float) -> float:
        return self.length_beats * 60.0 / tempo


@dataclass(frozen=True)
class Capture:
    """One capture as its receipt can state it: the target applies to this span of the song."""

    start_beats: float
    length_beats: float
    seconds: float
    tempo: float
    sample_rate: int
    take_file: str
    take_kept: bool
    span_source: str
    song_beats: float | None

    def receipt(self) -> dict[str, Any]:
        return asdict(self)


def take_complete(take: Path) -> bool:
    if take.suffix.lower() == ".wav":
        return wav_problem(take) is None
    try:
        return bool(sf.info(str(take)).frames > 0)
    except (RuntimeError, sf.LibsndfileError):
        return False


def await_take(take: Path, *, timeout_s: float, poll_s: float, host: str) -> None:
    """Live writes the take while it records and finishes it once stopped: complete when a WAV header
    agrees with the file (an AIFF: when libsndfile reads it) and size and mtime held for two polls."""
    deadline = time.monotonic() + timeout_s
    last, steady = None, 0
    while True:
        now = stamp(take)
        if now is not None:
            steady = steady + 1 if now == last else 0
            last = now
            if steady >= 2 and take_complete(take):
                return
        if time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    if last is None:
        remote = host not in ("127.0.0.1", "localhost", "::1")
        hint = " (Live writes takes on its own computer: resampling needs Live on this one)" if remote else ""
        raise ExportFailed(f"the take {take} did not appear within {timeout_s:g} s{hint}")
    raise ExportFailed(f"the take {take} was not complete within {timeout_s:g} s ({last.size} bytes)")


def write_span(take: Path, path: Path, seconds: float, recorded_s: float) -> int:
    """Cut a complete take to the span and write it to `path` as WAV (the take's own sample format where
    WAV has it); the file appears whole (written beside it, then renamed)."""
    try:
        info = sf.info(str(take))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise ExportFailed(f"the take {take} cannot be read: {e}") from None
    frames = round(seconds * info.samplerate)
    if info.frames < frames:
        raise ExportFailed(
            f"the take {take.name} holds {info.frames / info.samplerate:.3f} s, shorter than the span's "
            f"{seconds:.3f} s (Live reported {recorded_s:.3f} s recorded)"
        )
    audio, sr = sf.read(str(take), frames=frames, dtype="float64", always_2d=True)
    subtype = info.subtype if info.subtype in sf.available_subtypes("WAV") else "FLOAT"
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        sf.write(str(part), audio, sr, subtype=subtype, format="WAV")
        part.replace(path)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise ExportFailed(f"cannot write {path}: {e.strerror or e}") from None
    return int(sr)


def discard_take(take: Path, *, finished: bool, poll_s: float) -> None:
    """Delete a take's file; one whose recording was cut short first gets the moment Live needs to
    finish writing it, or Live would write it again after the delete."""
    if not finished:
        deadline = time.monotonic() + END_TIMEOUT_S
        last, steady = stamp(take), 0
        while time.monotonic() < deadline and steady < 2:
            time.sleep(poll_s)
            now = stamp(take)
            steady = steady + 1 if now == last and (now is None or take_complete(take)) else 0
            last = now
    with contextlib.suppress(OSError):
        take.unlink()
