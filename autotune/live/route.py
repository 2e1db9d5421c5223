"""Setting up the capture route of `--export resample`: the capture track found or created, Resampling as
its input, monitoring Off, armed, every other armed track disarmed, clip trigger quantization None.

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
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from autotune.live.errors import LiveError, LiveErrorReply
from autotune.live.setstate import SavedSet, SetKeeper, qname, truthy
from autotune.live.takes import Span

#: Live's name for the main output in an audio track's input type chooser.
RESAMPLING = "Resampling"
MONITOR_IN, MONITOR_AUTO, MONITOR_OFF = 0, 1, 2
QUANTIZE_NONE = 0


class CaptureSetupError(LiveError):
    """The capture route cannot be set up in this Set: one line with the fix; `check` names the doctor's
    check it fails (exit 20, or 30 when Live refused a write)."""

    def __init__(self, check: str, message: str, fix: str, exit_code: int = 20) -> None:
        super().__init__(f"{message}; {fix}")
        self.check, self.detail, self.fix = check, message, fix
        self.exit_code = exit_code


class CaptureRoute(SetKeeper, ABC):
    """The capture route in one Live Set: `prepare` sets it up, `restore` (`SetKeeper`'s) undoes it. The
    span it records is the session's to resolve (`ResampleSession` knows the config's capture span)."""

    song_beats: float | None

    def prepare(self) -> None:
        """Find or create the capture track and make it record the main output; before that, put back what
        a killed run left changed. Every change from here on is undone by `restore`."""
        if self.saved is not None:
            return
        self._recover()
        osc = self.osc
        quant = int(self._number("/live/song/get/clip_trigger_quantization"))
        self.saved = SavedSet(
            quantization=quant,
            song_time=self._number("/live/song/get/current_song_time"),
            playing=truthy(self._get("/live/song/get/is_playing")),
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
                    f"Live kept clip trigger quantization at {qname(now)} when set to None",
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
            f"armed; clip trigger quantization None (was {qname(quant)})"
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
                "arm": truthy(self._get("/live/track/get/arm", t)),
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
        if not truthy(self._get("/live/track/get/can_be_armed", t)):
            raise CaptureSetupError(
                "capture arm", f"track {self.track_name!r} cannot be armed", "make it an unfrozen audio track"
            )
        self.osc.send("/live/track/set/arm", t, 1)
        try:
            armed = truthy(self._get("/live/track/get/arm", t, after_send=True))
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
                armed = truthy(self._get("/live/track/get/arm", i))
            except LiveErrorReply:
                continue  # a track that cannot be armed (a group track): upstream answers with an error
            if not armed:
                continue
            self.saved.disarmed.append((i, name))
            self._write_marker()
            self.osc.send("/live/track/set/arm", i, 0)
            if truthy(self._get("/live/track/get/arm", i, after_send=True)):
                raise CaptureSetupError(
                    "capture arm",
                    f"track {name!r} is armed and Live did not disarm it",
                    "disarm it by hand: its input would be recorded with the master",
                    exit_code=30,
                )

    @abstractmethod
    def _resolve_span(self) -> Span:
        """The span every capture records, asked for by `prepare` once the route is set up (the session,
        which knows the config's capture setting, says which)."""
