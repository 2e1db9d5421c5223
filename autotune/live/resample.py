"""`--export resample`: capture Live's main output by recording it into a Session clip, over AbletonOSC only.

Live has no export API (AbletonOSC issue 62 was closed for that reason), but it records its own output: the
"Resampling" option of an audio track's input type chooser routes the Master output to that track, the
recording track's own output is left out, and an armed track records into any empty clip slot (Live's
reference manual, "Routing and I/O: Resampling"). The take is stored in the Set's `Samples/Recorded` folder,
or the Temporary Folder until the Set is saved; recorded via internal routing at 32 bits it is identical to
the source (Live's Audio Fact Sheet, "Recording internal sources at 32 bit"). Nothing here needs a UI, a
permission or an operating system in particular.

The route's set-up is `autotune.live.route`'s, what a run changes in the Set and putting it back (with the
crash marker) `autotune.live.setstate`'s, the span and the take files `autotune.live.takes`'; this module is
the per-capture protocol on top of them, the exporter, and the names the rest of the project imports.

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
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from autotune.live.client import OscClient
from autotune.live.errors import ExportFailed, LiveError, LiveErrorReply, LiveTimeout
from autotune.live.route import (
    MONITOR_AUTO,
    MONITOR_IN,
    MONITOR_OFF,
    QUANTIZE_NONE,
    RESAMPLING,
    CaptureRoute,
    CaptureSetupError,
)
from autotune.live.setstate import CAPTURE_TRACK, QUANTIZATION_NAMES, Log, SavedSet, marker_path, truthy
from autotune.live.takes import (
    END_TIMEOUT_S,
    SILENCE_DBFS,
    Capture,
    Span,
    await_take,
    discard_take,
    write_span,
)
from autotune.vocabulary.export import RULE

__all__ = [
    "CAPTURE_TRACK",
    "END_TIMEOUT_S",
    "LATE_START_S",
    "MONITOR_AUTO",
    "MONITOR_IN",
    "MONITOR_OFF",
    "POLL_S",
    "QUANTIZATION_NAMES",
    "QUANTIZE_NONE",
    "RESAMPLING",
    "SILENCE_DBFS",
    "START_TIMEOUT_S",
    "STOP_MARGIN_S",
    "Capture",
    "CaptureSetupError",
    "Log",
    "ResampleExporter",
    "ResampleSession",
    "SavedSet",
    "Span",
    "marker_path",
]

#: Seconds between looks at the song position while recording.
POLL_S = 0.05
#: Seconds recorded past the span's end before the stop is sent; the take is cut to the span afterwards.
STOP_MARGIN_S = 0.25
#: Seconds Live has to show the clip a fire started (a few of AbletonOSC's ~100 ms ticks).
START_TIMEOUT_S = 3.0
#: A take this much shorter (s) than what the transport played began after the span's start (a Count-In).
LATE_START_S = 0.02


class BeatSpan(Protocol):
    """A span of the arrangement in beats, as the config gives one (`config.CaptureSpan`): the capture
    takes it by shape, so the backend does not depend on the config that names it."""

    @property
    def start_beats(self) -> float: ...

    @property
    def length_beats(self) -> float: ...


class ResampleSession(CaptureRoute):
    """The capture route in one Live Set: set up once (`prepare`), one `capture` per export, `restore`."""

    def __init__(
        self,
        osc: OscClient,
        *,
        capture: Literal["loop", "song"] | BeatSpan,
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
        self.saved: SavedSet | None = None
        self.span: Span | None = None
        self.song_beats: float | None = None
        self.last: Capture | None = None

    def _resolve_span(self) -> Span:
        cap = self.capture_spec
        try:
            self.song_beats = self._number("/live/song/get/song_length")
        except LiveError:
            self.song_beats = None
        if not isinstance(cap, str):
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
            if not truthy(self._get("/live/track/get/arm", t)):
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
            if not truthy(self._get("/live/clip_slot/get/has_clip", t, s)):
                return s
        raise ExportFailed(
            f"every clip slot of the capture track {self.track_name!r} holds a clip: delete them (they are not this "
            "tool's: it deletes its own), or add a scene"
        )

    def _await_clip(self, t: int, slot: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not truthy(self._get("/live/clip_slot/get/has_clip", t, slot)):
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
                    playing = truthy(self._get("/live/song/get/is_playing"))
                    raise ExportFailed(
                        f"the transport reached beat {now:g} of {end:g} in {time.monotonic() - started:.1f} s"
                        + ("" if playing else " and stopped (was it stopped in Live?)")
                    )
                time.sleep(self.poll_s)
        osc.send("/live/clip_slot/stop", t, slot)
        osc.send("/live/song/stop_playing")
        deadline = time.monotonic() + END_TIMEOUT_S
        while truthy(self._get("/live/clip/get/is_recording", t, slot)):
            if time.monotonic() >= deadline:
                raise ExportFailed(f"Live was still recording {END_TIMEOUT_S:g} s after the stop")
            time.sleep(self.poll_s)
        return now - span.start_beats

    def _write_span(self, take: Path, path: Path, seconds: float, recorded_s: float) -> int:
        """Wait for the take to be complete, cut it to the span and write it to `path` as WAV (the take's
        own sample format where WAV has it); the file appears whole (written beside it, then renamed)."""
        await_take(take, timeout_s=self.timeout_s, poll_s=self.poll_s, host=self.osc.host)
        return write_span(take, path, seconds, recorded_s)

    def _clean_slot(self, t: int, slot: int, take: Path | None, *, failed: bool) -> None:
        """The clip goes at once (the Set must not fill up with takes); its file goes too unless kept."""
        assert self.saved is not None
        osc = self.osc
        with contextlib.suppress(LiveError):
            osc.send("/live/song/stop_playing")
            if truthy(self._get("/live/clip_slot/get/has_clip", t, slot, after_send=True)):
                if take is None:  # stopped before its file was asked for (an error, Ctrl-C): ask now
                    named = str(self._get("/live/clip/get/file_path", t, slot))
                    take = Path(named) if named.strip() else None
                osc.send("/live/clip_slot/delete_clip", t, slot)
                if truthy(self._get("/live/clip_slot/get/has_clip", t, slot, after_send=True)):
                    self.log(f"  ⚠ Live did not delete the clip in slot {slot + 1} of {self.track_name!r}")
            self.saved.take_slot = None
            self._write_marker()
        if take is not None and not self.keep_takes:
            discard_take(take, finished=not failed, poll_s=self.poll_s)
        elif take is not None and failed:
            self.log(f"  (the take is kept: {take})")


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
