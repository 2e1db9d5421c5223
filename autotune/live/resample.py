"""`--export resample`: capture Live's main output by recording it into a Session clip, over AbletonOSC only.

Live has no export API (AbletonOSC issue 62 was closed for that reason), but it records its own output: the
"Resampling" option of an audio track's input type chooser routes the Master output to that track, the
recording track's own output is left out, and an armed track records into any empty clip slot (Live's
reference manual, "Routing and I/O: Resampling"). The take is stored in the Set's `Samples/Recorded` folder,
or the Temporary Folder until the Set is saved; recorded via internal routing at 32 bits it is identical to
the source (Live's Audio Fact Sheet, "Recording internal sources at 32 bit"). Nothing here needs a UI, a
permission or an operating system in particular.

What AbletonOSC offers for it (ideoforms/AbletonOSC, song.py, track.py, clip_slot.py, clip.py), and what it
answers, which decides how every step is confirmed:

- `/live/song/create_audio_track index` (-1: at the end), `/live/song/delete_track index`, `/live/song/
  stop_playing`, `/live/song/continue_playing`: methods, no reply.
- `/live/song/get|set/clip_trigger_quantization` (Live's enumeration, 0 = None, 4 = 1 Bar), `current_song_time`
  (beats), `loop_start`, `loop_length`, `/live/song/get/tempo`, `is_playing`, `song_length`, `num_scenes`:
  getters reply with the value alone, setters reply nothing.
- `/live/track/get|set/arm`, `current_monitoring_state` (0 In, 1 Auto, 2 Off), `input_routing_type` (set by
  display name: a name not in `available_input_routing_types` is ignored with a warning in Live's log, no
  error), `/live/track/get/can_be_armed`, `/live/track/set/name`: getters reply (track, value).
- `/live/clip_slot/fire|stop|delete_clip track slot`: methods, no reply; `/live/clip_slot/get/has_clip`
  replies (track, slot, value). Firing an empty slot of an armed track records into it and starts a stopped
  transport; stopping ends it at the next quantization boundary, at once with quantization None.
- `/live/clip/get/file_path`, `length` (beats), `is_recording`: (track, slot, value), Session clips only; on an
  empty slot they fail with `/live/error`.

Since setters never answer, every setting is read back before it is relied on, and every method is followed
by a getter that shows its effect (Live handles messages in order).

**Alignment.** The span is recorded from a stopped transport with quantization None, so the launch starts
the transport and the recording together, at the song position just set: the take's first sample is the
span's start. The recording is stopped late on purpose (`STOP_MARGIN_S` past the span's end, plus up to one
processing tick of Live's), so the take is cut to exactly the span's length; a take shorter than the span is
a failed export, never padded. Two things would break the start's alignment and are checked on every
capture: a launch that plays from another song position (the first position seen while recording lies before
the span's start) and a recording that begins after the launch, as a Count-In does (the clip holds fewer
beats than the transport played): both are failed exports with the reason. No leading trim is made, and the
loudness needs none: Live's Delay Compensation keeps tracks in step with each other (Ableton's "Delay
Compensation FAQ"; monitoring Off is what its "Recordings are out of sync" article advises for recordings in
sync), and should a master chain's latency still reach the take uncompensated, an offset of its size (a
Limiter's look-ahead is 1.5 to 6 ms) moved the integrated loudness of 1 to 8 s spans by at most 0.024 LU on
the virtual Live emulating it (0.025 LU at 20 ms), against the 0.1 LU the captures must agree within
(`tests/test_resample.py`).

**Leaving the Set as it was.** The state this changes (clip trigger quantization, song position, transport,
the arm of every track, the capture track itself) is saved in a marker file before anything is changed, and
restored after the run, after an error, after Ctrl-C, and, when the process was killed, by the next run that
finds the marker (like the dry reference's devices-off marker). A capture track this run created is deleted
again; one found by name keeps its place with its arm, monitoring and input as they were. Every clip a
capture records is deleted at once; its file is deleted too unless `keep_takes` says otherwise.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import soundfile as sf

from autotune.config import CaptureSpan
from autotune.live.client import OscArg, OscClient
from autotune.live.errors import ExportFailed, LiveError, LiveErrorReply, LiveReadError, LiveTimeout
from autotune.live.export import RULE, stamp, wav_problem

Log = Callable[[str], None]

#: The track the captures are recorded on: found by this name, or created with it.
CAPTURE_TRACK = "autotune capture"
#: Live's name for the main output in an audio track's input type chooser.
RESAMPLING = "Resampling"
MONITOR_IN, MONITOR_AUTO, MONITOR_OFF = 0, 1, 2
QUANTIZE_NONE = 0
#: Live's clip trigger quantization values, for messages (LOM `Song.clip_trigger_quantization`).
QUANTIZATION_NAMES = (
    "None",
    "8 Bars",
    "4 Bars",
    "2 Bars",
    "1 Bar",
    "1/2",
    "1/2T",
    "1/4",
    "1/4T",
    "1/8",
    "1/8T",
    "1/16",
    "1/16T",
    "1/32",
)
#: Seconds between looks at the song position while recording.
POLL_S = 0.05
#: Seconds recorded past the span's end before the stop is sent; the take is cut to the span afterwards.
STOP_MARGIN_S = 0.25
#: Seconds Live has to show the clip a fire started (a few of AbletonOSC's ~100 ms ticks).
START_TIMEOUT_S = 3.0
#: Seconds Live has to end a recording once stopped.
END_TIMEOUT_S = 5.0
#: A take this much shorter (s) than what the transport played began after the span's start (a Count-In).
LATE_START_S = 0.02
#: A take with no sample above this (dBFS) is silence: the doctor's test recording must not be.
SILENCE_DBFS = -90.0


class CaptureSetupError(LiveError):
    """The capture route cannot be set up in this Set: one line with the fix; `check` names the doctor's
    check it fails (exit 20, or 30 when Live refused a write)."""

    def __init__(self, check: str, message: str, fix: str, exit_code: int = 20) -> None:
        super().__init__(f"{message}; {fix}")
        self.check, self.detail, self.fix = check, message, fix
        self.exit_code = exit_code


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


@dataclass
class _Saved:
    """What the run changes in the Set, as it was before: restored at the end, kept in the marker."""

    quantization: int
    song_time: float
    playing: bool
    #: Tracks this run disarmed so they cannot sound through the capture: (index, name).
    disarmed: list[tuple[int, str]] = field(default_factory=list)
    track_name: str = CAPTURE_TRACK
    created: bool = False
    #: A capture track found by name: its arm, monitoring and input routing type before this run.
    before: dict[str, Any] | None = None
    #: The slot a capture is recording into right now (deleted by a restore).
    take_slot: int | None = None

    def dump(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, text: str) -> _Saved:
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError("not an object")
        return cls(
            quantization=int(d["quantization"]),
            song_time=float(d["song_time"]),
            playing=bool(d["playing"]),
            disarmed=[(int(i), str(n)) for i, n in d.get("disarmed", [])],
            track_name=str(d.get("track_name", CAPTURE_TRACK)),
            created=bool(d.get("created", False)),
            before=d.get("before"),
            take_slot=None if d.get("take_slot") is None else int(d["take_slot"]),
        )


def marker_path(marker_dir: Path, osc: OscClient) -> Path:
    """One marker per Live (host and port): a virtual Live on a port of its own never sees another's."""
    return marker_dir / f"set-{osc.host}-{osc.port}.json"


def _truthy(v: OscArg | None) -> bool:
    return bool(v) and v not in ("0", "false", "False")


class ResampleSession:
    """The capture route in one Live Set: set up once (`prepare`), one `capture` per export, `restore`."""

    def __init__(
        self,
        osc: OscClient,
        *,
        capture: Literal["loop", "song"] | CaptureSpan,
        keep_takes: bool,
        timeout_s: float,
        marker_dir: Path,
        log: Log = print,
        track_name: str = CAPTURE_TRACK,
        poll_s: float = POLL_S,
        progress: bool | None = None,
    ) -> None:
        self.osc = osc
        self.capture_spec = capture
        self.keep_takes = keep_takes
        self.timeout_s = timeout_s
        self.marker = marker_path(marker_dir, osc)
        self.log = log
        self.track_name = track_name
        self.poll_s = poll_s
        self.progress = sys.stdout.isatty() if progress is None else progress
        self.saved: _Saved | None = None
        self.span: Span | None = None
        self.song_beats: float | None = None
        self.last: Capture | None = None

    # -- OSC helpers --------------------------------------------------------------------------------
    def _get(self, address: str, *args: OscArg, after_send: bool = False) -> OscArg | None:
        """The value a getter answers, after the ids it echoes."""
        reply = self.osc.query(address, *args, after_send=after_send)
        value: OscArg | None = reply[len(args)] if len(reply) > len(args) else None
        return value

    def _number(self, address: str, *args: OscArg, after_send: bool = False) -> float:
        v = self._get(address, *args, after_send=after_send)
        if not isinstance(v, (int, float)):
            raise LiveReadError(f"Live answered {address} {list(args)} with {v!r}, not a number")
        return float(v)

    def _names(self) -> list[str]:
        return [str(n) for n in self.osc.query("/live/song/get/track_names")]

    def _track(self) -> int:
        """The capture track's index now (found by name each time: the producer may move tracks)."""
        names = self._names()
        hits = [i for i, n in enumerate(names) if n == self.track_name]
        if len(hits) != 1:
            why = "is gone" if not hits else f"exists {len(hits)} times"
            raise ExportFailed(f"the capture track {self.track_name!r} {why} (tracks: {', '.join(names)})")
        return hits[0]

    def _write_marker(self) -> None:
        if self.saved is None:
            return
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.marker.with_name(f".{self.marker.name}.{os.getpid()}.tmp")
        tmp.write_text(self.saved.dump())
        tmp.replace(self.marker)

    # -- set-up ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Find or create the capture track and make it record the main output; before that, put back what
        a killed run left changed. Every change from here on is undone by `restore`."""
        if self.saved is not None:
            return
        self._recover()
        osc = self.osc
        quant = int(self._number("/live/song/get/clip_trigger_quantization"))
        self.saved = _Saved(
            quantization=quant,
            song_time=self._number("/live/song/get/current_song_time"),
            playing=_truthy(self._get("/live/song/get/is_playing")),
            track_name=self.track_name,
        )
        self._write_marker()  # before the first change: a kill from here on is undone by the next run
        try:
            t, how = self._find_or_create()
            self._route(t)
            self._disarm_others(t)
            osc.send("/live/song/stop_playing")
            osc.send("/live/song/set/clip_trigger_quantization", QUANTIZE_NONE)
            now = int(self._number("/live/song/get/clip_trigger_quantization", after_send=True))
            if now != QUANTIZE_NONE:
                raise CaptureSetupError(
                    "capture quantization",
                    f"Live kept clip trigger quantization at {_qname(now)} when set to None",
                    "set the Control Bar's quantization chooser to None by hand",
                    exit_code=30,
                )
            self.span = self._resolve_span()
        except BaseException:
            self.restore()
            raise
        tempo = self._number("/live/song/get/tempo")
        span = self.span
        disarmed = ", ".join(n for _, n in self.saved.disarmed)
        self.log(
            f"Capture by resampling: track {self.track_name!r} ({how}), input {RESAMPLING}, monitoring Off, "
            f"armed; clip trigger quantization None (was {_qname(quant)})"
            + (f"; disarmed for the run: {disarmed}" if disarmed else "")
        )
        whole = ""
        if self.song_beats is not None and (
            span.start_beats > 1e-6 or span.length_beats < self.song_beats - 1e-6
        ):
            whole = (
                f"; the song is {self.song_beats:g} beats ({self.song_beats * 60 / tempo:.2f} s): "
                "the target applies to this span, not to the whole song"
            )
        self.log(
            f"  Span: beats {span.start_beats:g}–{span.end_beats:g} ({span.source}), {span.seconds(tempo):.2f} s "
            f"at {tempo:g} BPM, recorded in real time{whole}"
        )

    def _find_or_create(self) -> tuple[int, str]:
        assert self.saved is not None
        names = self._names()
        hits = [i for i, n in enumerate(names) if n == self.track_name]
        if len(hits) > 1:
            raise CaptureSetupError(
                "capture track",
                f"{len(hits)} tracks are named {self.track_name!r}",
                "delete or rename all but one",
            )
        if hits:
            t = hits[0]
            self.saved.before = {
                "arm": _truthy(self._get("/live/track/get/arm", t)),
                "monitoring": int(self._number("/live/track/get/current_monitoring_state", t)),
                "input": str(self._get("/live/track/get/input_routing_type", t)),
            }
            self._write_marker()
            return t, "found"
        self.osc.send("/live/song/create_audio_track", -1)
        after = self._names()
        if len(after) != len(names) + 1:
            raise CaptureSetupError(
                "capture track",
                "Live did not create the capture track (/live/song/create_audio_track -1)",
                f"add an audio track named {self.track_name!r} by hand",
                exit_code=30,
            )
        t = len(names)
        self.osc.send("/live/track/set/name", t, self.track_name)
        self.saved.created = True
        self._write_marker()
        if self._names()[t] != self.track_name:
            raise CaptureSetupError(
                "capture track",
                f"Live did not name the new track {self.track_name!r}",
                f"rename it to {self.track_name!r} by hand",
                exit_code=30,
            )
        return t, "created"

    def _route(self, t: int) -> None:
        """Resampling in, monitoring Off, armed: each read back, since none of these setters answers."""
        types = [str(x) for x in self.osc.query("/live/track/get/available_input_routing_types", t)[1:]]
        name = next((x for x in types if x.lower() == RESAMPLING.lower()), None)
        if name is None:
            raise CaptureSetupError(
                "capture routing",
                f"track {self.track_name!r} offers no input type {RESAMPLING!r} (it offers: {', '.join(types) or 'none'})",
                f"make {self.track_name!r} an audio track (a MIDI or group track cannot resample), or delete it "
                "so that one is created",
            )
        self.osc.send("/live/track/set/input_routing_type", t, name)
        now = str(self._get("/live/track/get/input_routing_type", t, after_send=True))
        if now != name:
            raise CaptureSetupError(
                "capture routing",
                f"track {self.track_name!r} kept its input at {now!r} when set to {name!r}",
                f"choose {name!r} in its Audio From chooser by hand",
                exit_code=30,
            )
        self.osc.send("/live/track/set/current_monitoring_state", t, MONITOR_OFF)
        if int(self._number("/live/track/get/current_monitoring_state", t, after_send=True)) != MONITOR_OFF:
            raise CaptureSetupError(
                "capture routing",
                f"track {self.track_name!r} did not take monitoring Off",
                "set its Monitor switch to Off by hand",
                exit_code=30,
            )
        if not _truthy(self._get("/live/track/get/can_be_armed", t)):
            raise CaptureSetupError(
                "capture arm", f"track {self.track_name!r} cannot be armed", "make it an unfrozen audio track"
            )
        self.osc.send("/live/track/set/arm", t, 1)
        try:
            armed = _truthy(self._get("/live/track/get/arm", t, after_send=True))
        except LiveErrorReply as e:
            raise CaptureSetupError(
                "capture arm", f"Live refused to arm {self.track_name!r}: {e}", "arm it by hand", exit_code=30
            ) from None
        if not armed:
            raise CaptureSetupError(
                "capture arm",
                f"Live did not arm {self.track_name!r}",
                "unfreeze it, or arm it by hand",
                exit_code=30,
            )

    def _disarm_others(self, t: int) -> None:
        """Another armed track with monitoring Auto or In would play its input into the main output, and so
        into every capture (an export would not have it): disarmed for the run, armed again by `restore`."""
        assert self.saved is not None
        for i, name in enumerate(self._names()):
            if i == t:
                continue
            try:
                armed = _truthy(self._get("/live/track/get/arm", i))
            except LiveErrorReply:
                continue  # a track that cannot be armed (a group track): upstream answers with an error
            if not armed:
                continue
            self.saved.disarmed.append((i, name))
            self._write_marker()
            self.osc.send("/live/track/set/arm", i, 0)
            if _truthy(self._get("/live/track/get/arm", i, after_send=True)):
                raise CaptureSetupError(
                    "capture arm",
                    f"track {name!r} is armed and Live did not disarm it",
                    "disarm it by hand: its input would be recorded with the master",
                    exit_code=30,
                )

    def _resolve_span(self) -> Span:
        cap = self.capture_spec
        try:
            self.song_beats = self._number("/live/song/get/song_length")
        except LiveError:
            self.song_beats = None
        if isinstance(cap, CaptureSpan):
            span = Span(cap.start_beats, cap.length_beats, "the config's capture span")
        elif cap == "loop":
            span = Span(
                self._number("/live/song/get/loop_start"),
                self._number("/live/song/get/loop_length"),
                "the Set's loop",
            )
        else:
            if self.song_beats is None:
                raise CaptureSetupError(
                    "capture span",
                    "Live did not report the song's length (/live/song/get/song_length)",
                    'give "capture": {"start_beats": …, "length_beats": …} in the config',
                )
            span = Span(0.0, self.song_beats, "the whole song")
        if not (math.isfinite(span.length_beats) and span.length_beats > 0 and span.start_beats >= 0):
            raise CaptureSetupError(
                "capture span",
                f"{span.source} is beats {span.start_beats:g} + {span.length_beats:g}, nothing to record",
                "set a loop in Live, or give a capture span in the config",
            )
        return span

    # -- one capture ------------------------------------------------------------------------------------
    def capture(self, path: Path, span: Span | None = None) -> Capture:
        """Record the span into an empty slot of the capture track and write exactly the span to `path`.
        A failure is `ExportFailed` (an `export_failed` receipt, the run goes on); Live going silent is a
        `LiveTimeout` (the run stops, the next one resumes)."""
        self.prepare()
        assert self.saved is not None and self.span is not None
        span = span or self.span
        osc = self.osc
        try:
            t = self._track()
            tempo = self._number("/live/song/get/tempo")
            if not _truthy(self._get("/live/track/get/arm", t)):
                raise ExportFailed(
                    f"the capture track {self.track_name!r} is not armed, so Live records nothing into it "
                    "(was it disarmed in Live?); arm it, or run autotune doctor --export resample"
                )
            slot = self._empty_slot(t)
            osc.send("/live/song/stop_playing")
            osc.send("/live/song/set/clip_trigger_quantization", QUANTIZE_NONE)
            osc.send("/live/song/set/current_song_time", float(span.start_beats))
            at = self._number("/live/song/get/current_song_time", after_send=True)
            if abs(at - span.start_beats) > 1e-3:
                raise ExportFailed(f"Live put the song position at beat {at:g}, not at {span.start_beats:g}")
        except LiveErrorReply as e:
            raise ExportFailed(str(e)) from None
        self.saved.take_slot = slot
        self._write_marker()
        take: Path | None = None
        done = False
        try:
            osc.send("/live/clip_slot/fire", t, slot)
            self._await_clip(t, slot)
            played = self._record(t, slot, span, tempo)
            take = Path(str(self._get("/live/clip/get/file_path", t, slot)))
            if not str(take).strip():
                raise ExportFailed("Live reports no file for the recorded clip")
            recorded = self._number("/live/clip/get/length", t, slot)
            late = played - recorded
            if late > LATE_START_S * tempo / 60.0:
                # The take must start at the span's start; a late one misses the span's beginning.
                raise ExportFailed(
                    f"the recording started at least {late * 60.0 / tempo:.2f} s after the span's start (Live recorded "
                    f"{recorded:g} of the {played:g} beats the transport played): set Count-In to None in "
                    "Live's Record, Warp & Launch preferences"
                )
            sr = self._write_span(take, path, span.seconds(tempo), recorded * 60.0 / tempo)
            done = True
        except LiveErrorReply as e:
            raise ExportFailed(f"the capture failed: {e}") from None
        finally:
            self._clean_slot(t, slot, take, failed=not done)
        self.last = Capture(
            start_beats=span.start_beats,
            length_beats=span.length_beats,
            seconds=round(span.seconds(tempo), 6),
            tempo=tempo,
            sample_rate=sr,
            take_file=str(take),
            take_kept=self.keep_takes,
            span_source=span.source,
            song_beats=self.song_beats,
        )
        return self.last

    def _empty_slot(self, t: int) -> int:
        scenes = int(self._number("/live/song/get/num_scenes"))
        for s in range(scenes):
            if not _truthy(self._get("/live/clip_slot/get/has_clip", t, s)):
                return s
        raise ExportFailed(
            f"every clip slot of the capture track {self.track_name!r} holds a clip: delete them (they are not this "
            "tool's: it deletes its own), or add a scene"
        )

    def _await_clip(self, t: int, slot: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _truthy(self._get("/live/clip_slot/get/has_clip", t, slot)):
            if time.monotonic() >= deadline:
                raise ExportFailed(
                    f"Live did not start recording on {self.track_name!r} within {START_TIMEOUT_S:g} s of firing "
                    "its slot (is the track still armed, with Resampling as its input, and Count-In None in Live's "
                    "Record, Warp & Launch preferences?)"
                )
            time.sleep(self.poll_s)

    def _record(self, t: int, slot: int, span: Span, tempo: float) -> float:
        """Wait while the transport plays the span (real time, watched by the song position, which also
        follows a faster virtual Live), then stop a little past its end. Returns the beats the transport had
        played from the span's start at the last look before the stop: the take holds at least as many."""
        osc = self.osc
        seconds = span.seconds(tempo)
        end = span.end_beats + STOP_MARGIN_S * tempo / 60.0
        started = time.monotonic()
        deadline = started + 1.5 * (seconds + STOP_MARGIN_S) + 5.0
        label = f"beats {span.start_beats:g}–{span.end_beats:g}"
        with _progress(self.progress, label, seconds, self.log) as show:
            while True:
                now = self._number("/live/song/get/current_song_time")
                if now < span.start_beats - 1e-3:  # the launch did not start from the position set
                    raise ExportFailed(
                        f"Live played from beat {now:g} while recording, before the span's start at "
                        f"{span.start_beats:g}: the take would not be the span"
                    )
                show(min(1.0, max(0.0, (now - span.start_beats) / span.length_beats)))
                if now >= end:
                    break
                if time.monotonic() >= deadline:
                    playing = _truthy(self._get("/live/song/get/is_playing"))
                    raise ExportFailed(
                        f"the transport reached beat {now:g} of {end:g} in {time.monotonic() - started:.1f} s"
                        + ("" if playing else " and stopped (was it stopped in Live?)")
                    )
                time.sleep(self.poll_s)
        osc.send("/live/clip_slot/stop", t, slot)
        osc.send("/live/song/stop_playing")
        deadline = time.monotonic() + END_TIMEOUT_S
        while _truthy(self._get("/live/clip/get/is_recording", t, slot)):
            if time.monotonic() >= deadline:
                raise ExportFailed(f"Live was still recording {END_TIMEOUT_S:g} s after the stop")
            time.sleep(self.poll_s)
        return now - span.start_beats

    def _write_span(self, take: Path, path: Path, seconds: float, recorded_s: float) -> int:
        """Wait for the take to be complete, cut it to the span and write it to `path` as WAV (the take's
        own sample format where WAV has it); the file appears whole (written beside it, then renamed)."""
        self._await_take(take)
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

    def _await_take(self, take: Path) -> None:
        """Live writes the take while it records and finishes it once stopped: complete when a WAV header
        agrees with the file (an AIFF: when libsndfile reads it) and size and mtime held for two polls."""
        deadline = time.monotonic() + self.timeout_s
        last, steady = None, 0
        while True:
            now = stamp(take)
            if now is not None:
                steady = steady + 1 if now == last else 0
                last = now
                if steady >= 2 and _take_complete(take):
                    return
            if time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        if last is None:
            remote = self.osc.host not in ("127.0.0.1", "localhost", "::1")
            hint = (
                " (Live writes takes on its own computer: resampling needs Live on this one)"
                if remote
                else ""
            )
            raise ExportFailed(f"the take {take} did not appear within {self.timeout_s:g} s{hint}")
        raise ExportFailed(
            f"the take {take} was not complete within {self.timeout_s:g} s ({last.size} bytes)"
        )

    def _clean_slot(self, t: int, slot: int, take: Path | None, *, failed: bool) -> None:
        """The clip goes at once (the Set must not fill up with takes); its file goes too unless kept."""
        assert self.saved is not None
        osc = self.osc
        with contextlib.suppress(LiveError):
            osc.send("/live/song/stop_playing")
            if _truthy(self._get("/live/clip_slot/get/has_clip", t, slot, after_send=True)):
                if take is None:  # stopped before its file was asked for (an error, Ctrl-C): ask now
                    named = str(self._get("/live/clip/get/file_path", t, slot))
                    take = Path(named) if named.strip() else None
                osc.send("/live/clip_slot/delete_clip", t, slot)
                if _truthy(self._get("/live/clip_slot/get/has_clip", t, slot, after_send=True)):
                    self.log(f"  ⚠ Live did not delete the clip in slot {slot + 1} of {self.track_name!r}")
            self.saved.take_slot = None
            self._write_marker()
        if take is not None and not self.keep_takes:
            self._discard(take, finished=not failed)
        elif take is not None and failed:
            self.log(f"  (the take is kept: {take})")

    def _discard(self, take: Path, *, finished: bool) -> None:
        """Delete a take's file; one whose recording was cut short first gets the moment Live needs to
        finish writing it, or Live would write it again after the delete."""
        if not finished:
            deadline = time.monotonic() + END_TIMEOUT_S
            last, steady = stamp(take), 0
            while time.monotonic() < deadline and steady < 2:
                time.sleep(self.poll_s)
                now = stamp(take)
                steady = steady + 1 if now == last and (now is None or _take_complete(take)) else 0
                last = now
        with contextlib.suppress(OSError):
            take.unlink()

    # -- restoring ------------------------------------------------------------------------------------
    def restore(self) -> None:
        """Put back what `prepare` changed. A step that fails (Live gone) keeps the marker, so the next run
        finishes the job."""
        saved, self.saved, self.span = self.saved, None, None
        if saved is None:
            return
        try:
            self._restore(saved)
        except (LiveError, ExportFailed, OSError) as e:
            self.log(f"  ⚠ Could not put the Set back as it was ({e}); the next run does it")
            return
        self.marker.unlink(missing_ok=True)

    def _recover(self) -> None:
        try:
            saved = _Saved.load(self.marker.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            self.marker.unlink(missing_ok=True)
            return
        self._restore(saved)
        self.marker.unlink(missing_ok=True)
        self.log("  (an interrupted capture had left the Set changed: put back as it was)")

    def _restore(self, saved: _Saved) -> None:
        osc = self.osc
        osc.send("/live/song/stop_playing")
        names = self._names()
        hits = [i for i, n in enumerate(names) if n == saved.track_name]
        if hits:
            t = hits[0]
            slot = saved.take_slot
            if slot is not None and _truthy(
                self._get("/live/clip_slot/get/has_clip", t, slot, after_send=True)
            ):
                take = str(self._get("/live/clip/get/file_path", t, slot))  # a capture cut short by a kill
                osc.send("/live/clip_slot/delete_clip", t, slot)
                if take.strip() and not self.keep_takes:
                    self._discard(Path(take), finished=False)
            if saved.created:
                osc.send("/live/song/delete_track", t)
                names = self._names()
            else:  # only what differs is written: a setter that fails would hide the next reply's error
                before = saved.before or {}
                for prop, value in (
                    ("current_monitoring_state", before.get("monitoring")),
                    ("input_routing_type", before.get("input")),
                    ("arm", None if "arm" not in before else int(bool(before["arm"]))),
                ):
                    if value is None:
                        continue
                    now = self._get(f"/live/track/get/{prop}", t)
                    if (int(_truthy(now)) if prop == "arm" else now) != value:
                        osc.send(f"/live/track/set/{prop}", t, value)
        for i, name in saved.disarmed:
            where = (
                i
                if i < len(names) and names[i] == name
                else next((j for j, n in enumerate(names) if n == name), None)
            )
            if where is not None:
                osc.send("/live/track/set/arm", where, 1)
        osc.send("/live/song/set/clip_trigger_quantization", saved.quantization)
        osc.send("/live/song/set/current_song_time", saved.song_time)
        if saved.playing:
            osc.send("/live/song/continue_playing")
        now = int(self._number("/live/song/get/clip_trigger_quantization", after_send=True))
        if now != saved.quantization:
            raise LiveReadError(
                f"Live kept clip trigger quantization at {_qname(now)}, not {_qname(saved.quantization)}"
            )


def _qname(v: int) -> str:
    return QUANTIZATION_NAMES[v] if 0 <= v < len(QUANTIZATION_NAMES) else str(v)


def _take_complete(take: Path) -> bool:
    if take.suffix.lower() == ".wav":
        return wav_problem(take) is None
    try:
        return bool(sf.info(str(take)).frames > 0)
    except (RuntimeError, sf.LibsndfileError):
        return False


@contextlib.contextmanager
def _progress(rich_bar: bool, label: str, seconds: float, log: Log) -> Iterator[Callable[[float], None]]:
    """The one export that takes real time shows it: a rich bar in a terminal, a line before and after
    elsewhere."""
    if not rich_bar:
        log(f"  ⏺ Recording {label} ({seconds:.2f} s in real time)...")
        yield lambda _: None
        log("  ✓ Recorded")
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(f"  ⏺ Recording {label}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=Console(highlight=False),
        transient=True,
    ) as bar:
        task = bar.add_task("record", total=1.0)
        yield lambda done: bar.update(task, completed=done)
    log(f"  ✓ Recorded {label} ({seconds:.2f} s)")


class ResampleExporter:
    """The exporter of `--export resample`: each trigger is one capture, the waiter then takes the file."""

    name = "resample"

    def __init__(self, session: ResampleSession, log: Log = print) -> None:
        self.session = session
        self.log = log

    def prepare(self) -> None:
        self.session.prepare()

    def trigger(self, path: Path, display_path: str) -> None:
        self.log(RULE)
        self.log(f"📤 CAPTURING (resampling): {path.name}")
        self.log(RULE)
        try:
            self.session.capture(path)
        except LiveTimeout:
            raise
        except CaptureSetupError as e:
            raise ExportFailed(str(e)) from None

    def problem(self) -> str | None:
        return None

    def close(self) -> None:
        pass

    def finish(self) -> None:
        """At the end of the run (also after an error or Ctrl-C): the Set as it was found."""
        self.session.restore()

    @property
    def capture_span(self) -> dict[str, float] | None:
        """The span every capture of this run records (known once prepared): a dry reference captured over
        one span is not the reference of another, so it belongs in the reference cache's key."""
        span = self.session.span
        return None if span is None else {"start_beats": span.start_beats, "length_beats": span.length_beats}

    @property
    def capture_info(self) -> dict[str, Any] | None:
        """The last capture's span, for the receipt: the target applies to this span of the song."""
        return None if self.session.last is None else self.session.last.receipt()
