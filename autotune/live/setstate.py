"""What a resample run changes in the Live Set, kept in a crash marker, and putting it back.

**Leaving the Set as it was.** The state this changes (clip trigger quantization, song position, transport,
the arm of every track, the capture track itself) is saved in a marker file before anything is changed, and
restored after the run, after an error, after Ctrl-C, and, when the process was killed, by the next run that
finds the marker (like the dry reference's devices-off marker). A capture track this run created is deleted
again; one found by name keeps its place with its arm, monitoring and input as they were. Every clip a
capture records is deleted at once; its file is deleted too unless `keep_takes` says otherwise.

`SetKeeper` is the part of `autotune.live.resample.ResampleSession` that does this: its OSC getters, the
saved state and its marker, `restore`, and the recovery a run makes of a killed run's marker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autotune.live.client import OscClient
from autotune.live.errors import ExportFailed, LiveError, LiveReadError
from autotune.live.takes import Span, discard_take
from autotune.vocabulary.osc import OscArg

Log = Callable[[str], None]

#: The track the captures are recorded on: found by this name, or created with it.
CAPTURE_TRACK = "autotune capture"
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


@dataclass
class SavedSet:
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
    def load(cls, text: str) -> SavedSet:
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


def truthy(v: OscArg | None) -> bool:
    return bool(v) and v not in ("0", "false", "False")


def qname(v: int) -> str:
    return QUANTIZATION_NAMES[v] if 0 <= v < len(QUANTIZATION_NAMES) else str(v)


class SetKeeper:
    """A Live Set under a resample run: the getters every step confirms with, the state the run changed
    (`saved`, mirrored in the `marker` file) and `restore`. `ResampleSession` sets the attributes."""

    osc: OscClient
    keep_takes: bool
    marker: Path
    log: Log
    track_name: str
    poll_s: float
    saved: SavedSet | None
    span: Span | None

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
            saved = SavedSet.load(self.marker.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            self.marker.unlink(missing_ok=True)
            return
        self._restore(saved)
        self.marker.unlink(missing_ok=True)
        self.log("  (an interrupted capture had left the Set changed: put back as it was)")

    def _restore(self, saved: SavedSet) -> None:
        osc = self.osc
        osc.send("/live/song/stop_playing")
        names = self._names()
        hits = [i for i, n in enumerate(names) if n == saved.track_name]
        if hits:
            t = hits[0]
            slot = saved.take_slot
            if slot is not None and truthy(
                self._get("/live/clip_slot/get/has_clip", t, slot, after_send=True)
            ):
                take = str(self._get("/live/clip/get/file_path", t, slot))  # a capture cut short by a kill
                osc.send("/live/clip_slot/delete_clip", t, slot)
                if take.strip() and not self.keep_takes:
                    discard_take(Path(take), finished=False, poll_s=self.poll_s)
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
                    if (int(truthy(now)) if prop == "arm" else now) != value:
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
                f"Live kept clip trigger quantization at {qname(now)}, not {qname(saved.quantization)}"
            )
