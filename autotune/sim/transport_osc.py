"""The virtual Live's transport and Session recording as AbletonOSC exposes them: the handlers.

`autotune.sim.transport` models song time, quantization and recording takes; this module is its OSC face
(song.py's transport and loop, track.py's arm, monitoring and input routing, clip_slot.py and clip.py),
kept apart from `autotune.sim.server`, which answers the rest of the protocol and renders the exports.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from autotune.sim.liveset import SimClip, SimSlot, SimTrack

if TYPE_CHECKING:
    from autotune.sim.server import Handler, VirtualLive


def transport_handlers(live: VirtualLive) -> dict[str, Handler]:
    """Song time, quantization, loop, track arm/monitoring/input routing, clip slots and clips, as
    AbletonOSC's song.py, track.py, clip_slot.py and clip.py expose them: song getters reply with the
    value alone, track getters with (track, value), slot and clip getters with (track, slot, value);
    methods and setters reply nothing; a clip getter on an empty slot fails as upstream's does
    (`getattr(None, ...)`), and an input routing type that is not in the list is ignored silently
    (upstream only logs a warning)."""
    song, tr = live.song, live.transport

    def tracks_track(a: tuple[Any, ...]) -> SimTrack:
        tr.advance()
        return song.track(a[0])

    def slot_of(a: tuple[Any, ...]) -> tuple[SimTrack, SimSlot]:
        tr.advance()
        if not isinstance(a[0], (int, float)) or not isinstance(a[1], (int, float)):
            raise ValueError(f"invalid literal for int() with base 10: {a[0]!r}")
        track = song.tracks[int(a[0])]
        return track, track.slots[int(a[1])]

    def clip_of(a: tuple[Any, ...], prop: str) -> SimClip:
        clip = slot_of(a)[1].clip
        if clip is None:
            raise AttributeError(f"'NoneType' object has no attribute '{prop}'")
        return clip

    def set_arm(a: tuple[Any, ...]) -> None:
        track = tracks_track(a)
        if not track.can_be_armed:
            raise RuntimeError(f"track {track.name!r} cannot be armed")
        track.arm = bool(a[1])

    def set_monitoring(a: tuple[Any, ...]) -> None:
        value = int(a[1])
        if value not in (0, 1, 2):
            raise ValueError(f"Invalid monitoring state {value} (0 In, 1 Auto, 2 Off)")
        tracks_track(a).monitoring = value

    def input_types(track: SimTrack) -> tuple[str, ...]:
        others = tuple(t.name for t in song.tracks if t is not track)
        return ("Ext. In", live.options.resampling_name, *others, "No Input")

    def set_input(a: tuple[Any, ...]) -> None:
        track = tracks_track(a)
        if str(a[1]) in input_types(track):
            track.input_routing = str(a[1])

    def create_audio_track(a: tuple[Any, ...]) -> None:
        if len(a) != 1 or not isinstance(a[0], (int, float)):
            raise TypeError("create_audio_track takes the new track's index (-1: at the end)")
        index = int(a[0])
        at = len(song.tracks) if index == -1 else index
        if not 0 <= at <= len(song.tracks):
            raise IndexError("index out of range")
        song.tracks.insert(at, SimTrack(f"{at + 1}-Audio"))

    def delete_track(a: tuple[Any, ...]) -> None:
        tr.advance()
        index = int(a[0])
        if not 0 <= index < len(song.tracks):
            raise IndexError("list index out of range")
        for slot in song.tracks[index].slots:
            if slot.clip is not None:
                tr.delete_clip(song.tracks[index], slot)
        del song.tracks[index]

    def delete_clip(a: tuple[Any, ...]) -> None:
        track, slot = slot_of(a)
        if slot.clip is None:
            raise RuntimeError("no clip in this slot")
        tr.delete_clip(track, slot)

    def set_loop(i: int) -> Handler:
        def h(a: tuple[Any, ...]) -> None:
            v = float(a[0])
            if not math.isfinite(v) or v < (0.0 if i == 0 else 1e-6):
                raise ValueError(f"Invalid value {v:g}")
            live.loop[i] = v

        return h

    def beat(_: tuple[Any, ...]) -> tuple[float]:
        tr.advance()
        return (float(tr.beat()),)

    return {
        "/live/song/get/is_playing": lambda a: (int(tr.playing),),
        "/live/song/get/current_song_time": beat,
        "/live/song/set/current_song_time": lambda a: tr.set_song_time(float(a[0])),
        "/live/song/get/clip_trigger_quantization": lambda a: (tr.quantization,),
        "/live/song/set/clip_trigger_quantization": lambda a: tr.set_quantization(a[0]),
        "/live/song/start_playing": lambda a: tr.start_playing(),
        "/live/song/continue_playing": lambda a: tr.start_playing(),
        "/live/song/stop_playing": lambda a: tr.stop_playing(),
        "/live/song/get/loop_start": lambda a: (live.loop[0],),
        "/live/song/get/loop_length": lambda a: (live.loop[1],),
        "/live/song/set/loop_start": set_loop(0),
        "/live/song/set/loop_length": set_loop(1),
        "/live/song/get/num_scenes": lambda a: (len(song.tracks[0].slots) if song.tracks else 0,),
        "/live/song/create_audio_track": create_audio_track,
        "/live/song/delete_track": delete_track,
        "/live/track/set/name": lambda a: setattr(tracks_track(a), "name", str(a[1])),
        "/live/track/get/arm": lambda a: (a[0], int(tracks_track(a).arm)),
        "/live/track/set/arm": set_arm,
        "/live/track/get/can_be_armed": lambda a: (a[0], int(tracks_track(a).can_be_armed)),
        "/live/track/get/current_monitoring_state": lambda a: (a[0], tracks_track(a).monitoring),
        "/live/track/set/current_monitoring_state": set_monitoring,
        "/live/track/get/available_input_routing_types": lambda a: (a[0], *input_types(tracks_track(a))),
        "/live/track/get/input_routing_type": lambda a: (a[0], tracks_track(a).input_routing),
        "/live/track/set/input_routing_type": set_input,
        "/live/clip_slot/fire": lambda a: tr.fire(*slot_of(a)),
        "/live/clip_slot/stop": lambda a: tr.stop(*slot_of(a)),
        "/live/clip_slot/delete_clip": delete_clip,
        "/live/clip_slot/get/has_clip": lambda a: (a[0], a[1], int(slot_of(a)[1].clip is not None)),
        "/live/clip_slot/get/is_triggered": lambda a: (
            a[0],
            a[1],
            int(slot_of(a)[1].record_at is not None),
        ),
        "/live/clip/get/file_path": lambda a: (a[0], a[1], clip_of(a, "file_path").file_path),
        "/live/clip/get/length": lambda a: (a[0], a[1], clip_of(a, "length").length),
        "/live/clip/get/is_recording": lambda a: (a[0], a[1], int(clip_of(a, "is_recording").recording)),
    }
