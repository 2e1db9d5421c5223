"""The virtual Live's transport and Session recording: what `--export resample` drives.

Live's behaviour, as the virtual Live reproduces it (Live's reference manual, "Routing and I/O: Resampling"
and "Launching clips"; the Live Object Model's `Song` and `ClipSlot`; AbletonOSC's song.py and clip_slot.py):

- The transport runs in real time: song time advances by `tempo / 60` beats a second (here times `speed`,
  1 by default; a test may run it faster). `current_song_time` moves the song position, also while playing.
- `clip_trigger_quantization` is Live's enumeration (0 None, 1 8 Bars, 2 4 Bars, 3 2 Bars, 4 1 Bar, 5 1/2,
  6 1/2T, 7 1/4, 8 1/4T, 9 1/8, 10 1/8T, 11 1/16, 12 1/16T, 13 1/32), in 4/4 time.
- Firing an empty slot of an armed track records into it. A stopped transport starts at once from the song
  position; the recording begins at the first quantization boundary at or after the song time it was fired
  at (at once with None). Firing an empty slot of a track that is not armed records nothing (in Live it
  stops the track's clips).
- `ClipSlot.stop` (and firing the recording slot again) ends the recording at the next boundary, or at once
  with None; `Song.stop_playing` stops the transport and ends any recording at once, and a recording that was
  still waiting for its boundary never starts.
- An audio track whose input routing type is "Resampling" records the main output, post master fader; the
  recording track's own output is left out (here tracks carry no audio of their own, the song is the mix).
  The take is written to the Set's `Samples/Recorded` folder as the recording runs (a header whose sizes are
  patched when it ends, like Live's), 32-bit float, which Live's Audio Fact Sheet calls identical to the
  source for internal routing. Its audio is the render the virtual Live's export gives for the recorded
  song time, silence past the song's end, so a capture and an export of the same span measure alike.
"""

from __future__ import annotations

import math
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from autotune.sim.liveset import SimClip, SimSlot, SimSong, SimStage, SimTrack

#: Beats per step of Live's `clip_trigger_quantization` (index = the enumeration's value), in 4/4.
QUANTIZATION_BEATS: tuple[float, ...] = (
    0.0,
    32.0,
    16.0,
    8.0,
    4.0,
    2.0,
    4.0 / 3.0,
    1.0,
    2.0 / 3.0,
    0.5,
    1.0 / 3.0,
    0.25,
    1.0 / 6.0,
    0.125,
)
#: Live's default: launches wait for the next bar.
QUANTIZE_1_BAR = 4
#: Two song times this close (beats) are the same boundary: float song times land on bar lines exactly
#: only in arithmetic, not in floating point.
EPS_BEATS = 1e-9

Render = Callable[[tuple[tuple[SimStage, ...], float]], tuple[NDArray[np.float32], int]]


def next_boundary(beat: float, quantum: float) -> float:
    """The first quantization boundary at or after `beat` (the beat itself with None)."""
    if quantum <= 0.0:
        return beat
    return math.ceil(beat / quantum - EPS_BEATS) * quantum


@dataclass
class RecordingOptions:
    #: Song time runs this many times faster than real time (1: real time, as in Live).
    speed: float = 1.0
    #: False: a Set that never writes its takes (the clip reports a file that never appears).
    write_files: bool = True
    #: The take starts this long before the audio of its first beat (leading silence, the audio's end cut by
    #: as much): a recorder that does not compensate a latency. 0 in Live, which compensates it.
    latency_s: float = 0.0
    #: A recording that begins this many beats after its launch, the transport playing on meanwhile (as a
    #: Count-In that ran the song would): 0 in Live with Count-In None.
    late_beats: float = 0.0
    #: Seconds between the chunks of a take written after its recording ends.
    chunk_delay_s: float = 0.002


class Transport:
    """Song time as a function of the wall clock, and the Session recordings it drives.

    Every handler calls `advance()` first, and the server calls it between datagrams, so a recording whose
    quantized start or stop falls between two messages still starts or ends exactly on its boundary."""

    def __init__(
        self,
        song: SimSong,
        *,
        tempo_bpm: float,
        render: Render,
        recorded_dir: Path,
        options: RecordingOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.song = song
        self.tempo = tempo_bpm
        self.render = render
        self.recorded_dir = recorded_dir
        self.options = options or RecordingOptions()
        self.clock = clock
        self.quantization = QUANTIZE_1_BAR
        self.playing = False
        self._beat = 0.0  # the position when stopped; the position at `_wall` when playing
        self._wall = 0.0
        self._takes = 0
        self.writers: list[threading.Thread] = []
        self.lock = threading.RLock()

    # -- song time ----------------------------------------------------------------------------------
    @property
    def beats_per_s(self) -> float:
        return self.tempo / 60.0 * self.options.speed

    def beat(self) -> float:
        if not self.playing:
            return self._beat
        return self._beat + (self.clock() - self._wall) * self.beats_per_s

    def _anchor(self, beat: float) -> None:
        self._beat, self._wall = beat, self.clock()

    def set_song_time(self, beat: float) -> None:
        if not math.isfinite(beat) or beat < 0.0:
            raise ValueError(f"Invalid song time {beat:g}")
        with self.lock:
            self.advance()
            if self.playing:  # a jump: every recording goes on from the new position
                now = self.beat()
                for clip in self._recording():
                    clip.segments[-1][1] = now
                    clip.segments.append([beat, beat])
            self._anchor(beat)

    def start_playing(self) -> None:
        with self.lock:
            self.advance()
            if not self.playing:
                self._anchor(self._beat)
                self.playing = True

    def stop_playing(self) -> None:
        with self.lock:
            self.advance()
            if not self.playing:
                return
            now = self.beat()
            for track, slot in self._slots():
                slot.record_at = None  # a recording still waiting for its boundary never starts
                if slot.clip is not None and slot.clip.recording:
                    self._finish(track, slot.clip, now)
            self.playing = False
            self._beat = now

    def set_quantization(self, value: object) -> None:
        if not isinstance(value, (int, float)) or int(value) != value:
            raise ValueError(f"Invalid clip trigger quantization {value!r}")
        if not 0 <= int(value) < len(QUANTIZATION_BEATS):
            raise ValueError(
                f"Invalid clip trigger quantization {int(value)} (0..{len(QUANTIZATION_BEATS) - 1})"
            )
        self.quantization = int(value)

    @property
    def quantum(self) -> float:
        return QUANTIZATION_BEATS[self.quantization]

    # -- clip slots ---------------------------------------------------------------------------------
    def fire(self, track: SimTrack, slot: SimSlot) -> None:
        with self.lock:
            self.advance()
            if slot.clip is not None:
                if slot.clip.recording:  # firing the recording slot again ends the recording
                    self._stop_clip(track, slot.clip)
                return
            if not track.arm or slot.record_at is not None:
                return
            if self.playing:
                slot.record_at = next_boundary(self.beat(), self.quantum) + self.options.late_beats
            else:  # the launch starts the transport: from the song position exactly
                slot.record_at = next_boundary(self._beat, self.quantum) + self.options.late_beats
                self._anchor(self._beat)
                self.playing = True
            self.advance()

    def stop(self, track: SimTrack, slot: SimSlot) -> None:
        with self.lock:
            self.advance()
            slot.record_at = None
            if slot.clip is not None and slot.clip.recording:
                self._stop_clip(track, slot.clip)

    def _stop_clip(self, track: SimTrack, clip: SimClip) -> None:
        if self.quantum <= 0.0 or not self.playing:
            self._finish(track, clip, self.beat())
            return
        clip.stop_at = next_boundary(self.beat(), self.quantum)
        self.advance()

    def delete_clip(self, track: SimTrack, slot: SimSlot) -> None:
        with self.lock:
            self.advance()
            if slot.clip is not None and slot.clip.recording:
                self._finish(track, slot.clip, self.beat())
            slot.clip = None
            slot.record_at = None

    # -- time passing -------------------------------------------------------------------------------
    def _slots(self) -> list[tuple[SimTrack, SimSlot]]:
        return [(t, s) for t in self.song.tracks for s in t.slots]

    def _recording(self) -> list[SimClip]:
        return [s.clip for _, s in self._slots() if s.clip is not None and s.clip.recording]

    def advance(self) -> None:
        """Start and end the recordings whose boundaries the transport has passed, at those boundaries."""
        with self.lock:
            if not self.playing:
                return
            now = self.beat()
            for track, slot in self._slots():
                if slot.record_at is not None and slot.record_at <= now + EPS_BEATS:
                    at, slot.record_at = slot.record_at, None
                    slot.clip = self._begin(track, at)
                clip = slot.clip
                stop_at = clip.stop_at if clip is not None and clip.recording else None
                if clip is not None and stop_at is not None and stop_at <= now + EPS_BEATS:
                    self._finish(track, clip, stop_at)
                if clip is not None and clip.recording:
                    clip.segments[-1][1] = max(clip.segments[-1][1], now)

    def _begin(self, track: SimTrack, at: float) -> SimClip:
        self._takes += 1
        self.recorded_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H%M%S")
        n = self._takes
        while True:  # a file name no other take has (several virtual Lives may share the folder)
            path = self.recorded_dir / f"{track.name} {n:04d} [{stamp}].wav"
            if not self.options.write_files:
                break
            try:
                with path.open("xb") as f:
                    f.write(_float_wav_header(0, 2, 48_000, placeholder=True))
                break
            except FileExistsError:
                n += 1
        return SimClip(file_path=str(path), segments=[[at, at]], stages=self.song.stages())

    def _finish(self, track: SimTrack, clip: SimClip, at: float) -> None:
        clip.segments[-1][1] = max(clip.segments[-1][0], at)
        clip.recording = False
        clip.stop_at = None
        if not self.options.write_files:
            return
        # Rendered and written beside the server, which goes on answering (Live does not stop either).
        t = threading.Thread(target=self._write, args=(clip,), daemon=True)
        self.writers = [w for w in self.writers if w.is_alive()] + [t]
        t.start()

    # -- the take's audio ---------------------------------------------------------------------------
    def take_audio(self, clip: SimClip) -> tuple[NDArray[np.float32], int]:
        """The main output over the song time the clip recorded: the export's render, sliced by beats,
        silence past the song's end; `latency_s` of silence first when a latency is emulated."""
        source, sr = self.render(clip.stages)
        per_beat = 60.0 / self.tempo * sr
        parts = []
        for a, b in clip.segments:
            i, j = round(a * per_beat), round(b * per_beat)
            part = np.zeros((max(0, j - i), source.shape[1]), dtype=np.float32)
            have = source[i : min(j, len(source))]
            part[: len(have)] = have
            parts.append(part)
        audio = np.concatenate(parts) if parts else np.zeros((0, source.shape[1]), np.float32)
        lag = round(self.options.latency_s * sr)
        if lag > 0 and len(audio):
            audio = np.concatenate([np.zeros((lag, audio.shape[1]), np.float32), audio])[: len(audio)]
        return audio, sr

    def _write(self, clip: SimClip) -> None:
        """Like Live: the header's sizes stay placeholders until the last sample is written."""
        path = Path(clip.file_path)
        audio, sr = self.take_audio(clip)
        body = np.ascontiguousarray(audio, dtype="<f4").tobytes()
        channels = audio.shape[1] if audio.ndim == 2 else 1
        n = 8
        step = max(1, -(-len(body) // n))
        try:  # the file Live opened when the recording began (deleted meanwhile: written to nowhere)
            with path.open("r+b") as f:
                f.seek(0)
                f.write(_float_wav_header(len(body), channels, sr, placeholder=True))
                for k in range(0, len(body), step):
                    f.write(body[k : k + step])
                    f.flush()
                    time.sleep(self.options.chunk_delay_s)
                f.truncate()
                f.seek(0)
                f.write(_float_wav_header(len(body), channels, sr, placeholder=False))
        except OSError:
            return  # the folder went away (a test's temporary Set): nothing to record into

    def close(self) -> None:
        for w in self.writers:
            w.join(timeout=10.0)


def _float_wav_header(data_bytes: int, channels: int, sr: int, *, placeholder: bool) -> bytes:
    """A 32-bit float WAV header (WAVE_FORMAT_IEEE_FLOAT); with `placeholder` both sizes are 0."""
    fmt = struct.pack("<HHIIHH", 3, channels, sr, sr * channels * 4, channels * 4, 32)
    riff = 0 if placeholder else 4 + (8 + len(fmt)) + (8 + data_bytes)
    data = 0 if placeholder else data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + (b"data" + struct.pack("<I", data))
    )


def read_take(path: str | os.PathLike[str]) -> tuple[NDArray[np.float32], int]:
    """A take as the virtual Live wrote it (tests compare it with renders)."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return audio, int(sr)
