"""The drivers' conversations with AbletonOSC, message by message, in memory (tests/protocol.py).

Each test is the exchange a real Live with upstream AbletonOSC (ideoforms/AbletonOSC) would have: the
address and argument order each handler takes, and what it answers. What upstream does, once for all:

- getters answer on their own address with the ids they were given first (`track_callback`,
  `device_callback`, `clip_slot_callback`, `clip_callback` return `(ids..., *rv)`; song getters answer the
  value alone), setters and methods answer nothing (osc_server.py `process_message` sends only a non-None
  return value);
- a handler that raises is logged as "AbletonOSC: Error handling OSC message: <exception>" by
  `OSCServer.process`, an unknown address as "AbletonOSC: Unknown OSC address: <address>", and manager.py's
  `LiveOSCErrorLogHandler` sends every logged error as `/live/error` with the text after the first ": ";
- Live's bools (`arm`, `has_clip`, `is_recording`, `is_playing`, `is_quantized`) go out as OSC True/False.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotune.config import CaptureSpan
from autotune.live.client import OscClient
from autotune.live.devices import LiveSet, MasterChain
from autotune.live.errors import ExportFailed, LiveReadError, LiveWriteError
from autotune.live.resample import ResampleSession
from autotune.live.tracks import MASTER_HELP, Track, resolve_track
from autotune.vocabulary.fader import FADER_0DB
from autotune.vocabulary.osc import OscArg
from tests.protocol import Message, Pair, ScriptedLive, expected_protocol

ERROR = "/live/error"
NAMES = {"glue": "Glue Compressor", "limiter": "Limiter"}
STOCK_TRACKS = ("Drums", "Bass", "Keys", "Mix Bus")


def error(text: str) -> Message:
    return (ERROR, (f"Error handling OSC message: {text}",))


def track_names(*names: str) -> Pair:
    # song.py `song_get_track_names`: regular tracks only (no master, no returns), the names alone.
    return ("/live/song/get/track_names", ()), ("/live/song/get/track_names", names)


def get(address: str, ids: tuple[OscArg, ...], *value: OscArg) -> Pair:
    """A getter and its answer: the ids echoed, then the value(s)."""
    return (address, ids), (address, (*ids, *value))


def sent(address: str, *args: OscArg) -> Pair:
    """A setter or method: Live answers nothing."""
    return (address, args), None


# -- the helper itself --------------------------------------------------------------------------------
def test_a_wrong_message_fails_at_the_call_that_sent_it() -> None:
    with pytest.raises(AssertionError, match=r"was /live/track/get/volume \[2\], expected .*\[3\]"):
        with expected_protocol([get("/live/track/get/volume", (3,), 0.85)]) as osc:
            osc.query("/live/track/get/volume", 2)


def test_an_int_is_not_a_float_on_the_wire() -> None:
    with pytest.raises(AssertionError, match="expected /live/track/set/volume"):
        with expected_protocol([sent("/live/track/set/volume", 3, 0.85)]) as osc:
            osc.send("/live/track/set/volume", 3, 1)


def test_a_message_left_over_fails_at_the_end() -> None:
    with pytest.raises(
        AssertionError, match=r"1 expected message\(s\) never sent:\n  /live/song/stop_playing"
    ):
        with expected_protocol([sent("/live/song/stop_playing")]):
            pass


def test_a_message_past_the_end_fails() -> None:
    with pytest.raises(AssertionError, match="after the expected protocol ended"):
        with expected_protocol([]) as osc:
            osc.send("/live/song/stop_playing")


def test_a_mismatch_the_driver_swallows_still_fails_at_the_end() -> None:
    live = ScriptedLive([sent("/live/song/stop_playing")])
    with pytest.raises(AssertionError):
        live.sendto(b"garbage", ("127.0.0.1", 11000))
    with pytest.raises(AssertionError, match="held 0 messages"):
        live.check_done()


# -- tracks.py: which track carries the chain ---------------------------------------------------------
def test_stock_build_cannot_reach_the_master_and_never_tries_minus_one() -> None:
    # track.py `track_callback`: `self.song.tracks[int(params[0])]`, regular tracks only. -1 would answer
    # for "Mix Bus", so it is not in the list; the exact protocol shows it is never sent.
    protocol: list[Pair] = [
        track_names(*STOCK_TRACKS),
        (("/live/track/get/devices/name", (-1000,)), error("list index out of range")),
        (
            ("/live/track/get/devices/name", ("master",)),
            error("invalid literal for int() with base 10: 'master'"),
        ),
        (
            ("/live/master/get/devices/name", ()),
            (ERROR, ("Unknown OSC address: /live/master/get/devices/name",)),
        ),
        (("/live/track/get/devices/name", (4,)), error("list index out of range")),
    ]
    with expected_protocol(protocol) as osc:
        with pytest.raises(LiveReadError) as err:
            resolve_track(osc, "master")
    assert str(err.value) == MASTER_HELP


def test_a_build_that_takes_the_string_master() -> None:
    # The reply echoes the id as given: the string "master", then the device names.
    protocol: list[Pair] = [
        track_names(*STOCK_TRACKS),
        (("/live/track/get/devices/name", (-1000,)), error("list index out of range")),
        get("/live/track/get/devices/name", ("master",), "Glue Compressor", "Limiter"),
    ]
    with expected_protocol(protocol) as osc:
        track = resolve_track(osc, "Master")
    assert track == Track("master", "master", "master-string") and track.is_master


def test_a_track_by_name_on_a_stock_build_and_its_devices_resolved() -> None:
    # track.py `track_get_device_names`; device.py `device_get_parameters_*`: (track, device, *column).
    limiter: dict[str, tuple[OscArg, ...]] = {
        "name": ("Device On", "Gain", "Ceiling"),
        "min": (0.0, 0.0, -24.0),
        "max": (1.0, 24.0, 0.0),
        "is_quantized": (True, False, False),
        "value": (1.0, 0.0, -0.3),
    }
    glue: dict[str, tuple[OscArg, ...]] = {
        "name": ("Device On", "Threshold", "Makeup"),
        "min": (0.0, -40.0, 0.0),
        "max": (1.0, 0.0, 20.0),
        "is_quantized": (True, False, False),
        "value": (1.0, -10.0, 2.0),
    }
    protocol: list[Pair] = [
        track_names(*STOCK_TRACKS),
        get("/live/track/get/devices/name", (3,), "Glue Compressor", "Utility", "Limiter"),
    ]
    for d, columns in ((0, glue), (2, limiter)):
        protocol += [get(f"/live/device/get/parameters/{c}", (3, d), *columns[c]) for c in columns]
    lines: list[str] = []
    with expected_protocol(protocol) as osc:
        track = resolve_track(osc, "mix bus")
        chain = MasterChain(LiveSet(osc), track, NAMES, lines.append)
        chain.resolve()
    assert track == Track("3 ('Mix Bus')", 3, "index")
    assert lines[:3] == [
        "Resolving devices on track 3 ('Mix Bus')...",
        "  Glue Compressor: device 0",
        "  Limiter: device 2",
    ]
    assert [p.name for p in chain.devices["limiter"][1]] == ["Device On", "Gain", "Ceiling"]
    assert chain.devices["limiter"][1][0].is_quantized


def test_a_track_index_out_of_range_asks_only_for_the_names() -> None:
    with expected_protocol([track_names("Drums", "Bass")]) as osc:
        with pytest.raises(
            LiveReadError, match=r"track 2 does not exist \(regular tracks: 0: 'Drums', 1: 'Bass'\)"
        ):
            resolve_track(osc, 2)


# -- devices.py: a write and its read-back, the fader ---------------------------------------------------
BUS = Track("3 ('Mix Bus')", 3, "index")
LIMITER: list[Pair] = [
    get("/live/track/get/devices/name", (3,), "Limiter"),
    get("/live/device/get/parameters/name", (3, 0), "Device On", "Gain", "Ceiling"),
    get("/live/device/get/parameters/min", (3, 0), 0.0, 0.0, -24.0),
    get("/live/device/get/parameters/max", (3, 0), 1.0, 24.0, 0.0),
    get("/live/device/get/parameters/is_quantized", (3, 0), True, False, False),
    get("/live/device/get/parameters/value", (3, 0), 1.0, 0.0, -0.3),
]


def probe(raw: float, shown: str, param: int = 2) -> list[Pair]:
    """One probe of the display law: device.py `device_set_parameter_value` (track, device, parameter,
    value) answers nothing, so the display string is read back."""
    return [
        sent("/live/device/set/parameter/value", 3, 0, param, raw),
        get("/live/device/get/parameter/value_string", (3, 0, param), shown),
    ]


def test_a_write_learns_the_display_law_sets_the_value_and_reads_it_back() -> None:
    grid = [-24.0 + 3.0 * i for i in range(9)]  # the law's first look: nine points across the raw range
    protocol = [*LIMITER]
    for raw in grid:
        protocol += probe(raw, f"{raw:.2f} dB")
    protocol += probe(-6.0, "-6.00 dB")  # the target shows at a known point: set it and confirm
    protocol.append(get("/live/device/get/parameter/value", (3, 0, 2), -6.0))  # the raw value it holds
    with expected_protocol(protocol) as osc:
        chain = MasterChain(LiveSet(osc), BUS, {"limiter": "Limiter"}, lambda _: None)
        chain.resolve()
        applied = chain.write("limiter", "ceiling_db", -6.0)
    assert (applied.param, applied.raw, applied.display) == ("Ceiling", -6.0, "-6.00 dB")


def test_switching_a_device_off_is_read_back_twice() -> None:
    protocol = [
        *LIMITER,
        *probe(0.0, "Off", param=0),
        get("/live/device/get/parameter/value", (3, 0, 0), 0.0),
    ]
    with expected_protocol(protocol) as osc:
        chain = MasterChain(LiveSet(osc), BUS, {"limiter": "Limiter"}, lambda _: None)
        chain.resolve()
        chain.switch("limiter", on=False)


def test_a_write_live_refuses_is_reported_by_its_read_back() -> None:
    # The setter's /live/error comes before the getter's reply (Live handles messages in order).
    protocol = [
        *LIMITER,
        (
            ("/live/device/set/parameter/value", (3, 0, 0, 0.0)),
            error("Invalid value (parameter is disabled)"),
        ),
        get("/live/device/get/parameter/value_string", (3, 0, 0), "On"),
    ]
    with expected_protocol(protocol) as osc:
        chain = MasterChain(LiveSet(osc), BUS, {"limiter": "Limiter"}, lambda _: None)
        chain.resolve()
        with pytest.raises(
            LiveWriteError, match=r"Live refused /live/device/set/parameter/value \[3, 0, 0, 0.0\]"
        ):
            chain.switch("limiter", on=False)


def test_the_fader_is_set_to_0db_and_read_back() -> None:
    # track.py: volume is the mixer_device's (`_set_mixer_property`, `_get_mixer_property`): (track, value).
    protocol = [
        sent("/live/track/set/volume", 3, FADER_0DB),
        get("/live/track/get/volume", (3,), FADER_0DB),
    ]
    with expected_protocol(protocol) as osc:
        chain = MasterChain(LiveSet(osc), BUS, {}, lambda _: None)
        assert chain.set_fader_0db() == "over OSC"


def test_the_master_fader_through_the_master_namespace() -> None:
    # A build with /live/master/...: no track argument, the getter answers the value alone.
    protocol = [
        sent("/live/master/set/volume", FADER_0DB),
        (("/live/master/get/volume", ()), ("/live/master/get/volume", (FADER_0DB,))),
    ]
    with expected_protocol(protocol) as osc:
        chain = MasterChain(
            LiveSet(osc), Track("master (/live/master)", None, "namespace"), {}, lambda _: None
        )
        assert chain.set_fader_0db() == "over OSC"


def test_a_fader_that_reads_back_otherwise_stops_the_run() -> None:
    protocol = [
        sent("/live/track/set/volume", 3, FADER_0DB),
        get("/live/track/get/volume", (3,), 1.0),
    ]
    with expected_protocol(protocol) as osc:
        chain = MasterChain(LiveSet(osc), BUS, {}, lambda _: None)
        with pytest.raises(LiveWriteError, match="reads back 1; set it to 0 dB by hand"):
            chain.set_fader_0db()


# -- resample.py: set up, one capture, the Set put back ----------------------------------------------
CAP = "autotune capture"
TRACKS = ("Drums", "Bass", CAP)
SR = 8_000


def prepare_protocol() -> list[Pair]:
    """`CaptureRoute.prepare` on a Set whose capture track exists (index 2) and whose "Bass" is armed."""
    song = "/live/song/get"
    return [
        # the state a restore puts back (song.py properties: the value alone)
        ((f"{song}/clip_trigger_quantization", ()), (f"{song}/clip_trigger_quantization", (4,))),
        ((f"{song}/current_song_time", ()), (f"{song}/current_song_time", (3.0,))),
        ((f"{song}/is_playing", ()), (f"{song}/is_playing", (False,))),
        # the capture track found by name, and how it was
        track_names(*TRACKS),
        get("/live/track/get/arm", (2,), False),
        get("/live/track/get/current_monitoring_state", (2,), 1),
        get("/live/track/get/input_routing_type", (2,), "Ext. In"),
        # track.py `track_set_input_routing_type`: by display name, from the available types
        get("/live/track/get/available_input_routing_types", (2,), "Ext. In", "Resampling", "Drums", "Bass"),
        sent("/live/track/set/input_routing_type", 2, "Resampling"),
        get("/live/track/get/input_routing_type", (2,), "Resampling"),
        sent("/live/track/set/current_monitoring_state", 2, 2),  # 2: Off
        get("/live/track/get/current_monitoring_state", (2,), 2),
        get("/live/track/get/can_be_armed", (2,), True),
        sent("/live/track/set/arm", 2, 1),
        get("/live/track/get/arm", (2,), True),
        # every other armed track disarmed for the run
        track_names(*TRACKS),
        get("/live/track/get/arm", (0,), False),
        get("/live/track/get/arm", (1,), True),
        sent("/live/track/set/arm", 1, 0),
        get("/live/track/get/arm", (1,), False),
        # a stopped transport, quantization None (0), read back
        sent("/live/song/stop_playing"),
        sent("/live/song/set/clip_trigger_quantization", 0),
        ((f"{song}/clip_trigger_quantization", ()), (f"{song}/clip_trigger_quantization", (0,))),
        ((f"{song}/song_length", ()), (f"{song}/song_length", (24.0,))),
        ((f"{song}/tempo", ()), (f"{song}/tempo", (120.0,))),
    ]


def capture_protocol(take: Path) -> list[Pair]:
    """One `ResampleSession.capture` of beats 4-8 at 120 BPM into slot 0 of track 2."""
    song = "/live/song/get"
    return [
        track_names(*TRACKS),  # the capture track is found by name each time
        ((f"{song}/tempo", ()), (f"{song}/tempo", (120.0,))),
        get("/live/track/get/arm", (2,), True),
        ((f"{song}/num_scenes", ()), (f"{song}/num_scenes", (8,))),
        get("/live/clip_slot/get/has_clip", (2, 0), False),  # clip_slot.py: (track, slot, value)
        sent("/live/song/stop_playing"),
        sent("/live/song/set/clip_trigger_quantization", 0),
        sent("/live/song/set/current_song_time", 4.0),
        ((f"{song}/current_song_time", ()), (f"{song}/current_song_time", (4.0,))),
        sent("/live/clip_slot/fire", 2, 0),  # an armed track's empty slot: records, starts the transport
        get("/live/clip_slot/get/has_clip", (2, 0), True),
        ((f"{song}/current_song_time", ()), (f"{song}/current_song_time", (4.1,))),
        ((f"{song}/current_song_time", ()), (f"{song}/current_song_time", (8.6,))),  # past 8 + 0.25 s
        sent("/live/clip_slot/stop", 2, 0),
        sent("/live/song/stop_playing"),
        get("/live/clip/get/is_recording", (2, 0), False),  # clip.py: (track, slot, value)
        get("/live/clip/get/file_path", (2, 0), str(take)),
        get("/live/clip/get/length", (2, 0), 4.6),
        # the clip goes at once
        sent("/live/song/stop_playing"),
        get("/live/clip_slot/get/has_clip", (2, 0), True),
        sent("/live/clip_slot/delete_clip", 2, 0),
        get("/live/clip_slot/get/has_clip", (2, 0), False),
    ]


def restore_protocol() -> list[Pair]:
    """`SetKeeper.restore`: only what differs is written back, then quantization is read back."""
    return [
        sent("/live/song/stop_playing"),
        track_names(*TRACKS),
        get("/live/track/get/current_monitoring_state", (2,), 2),
        sent("/live/track/set/current_monitoring_state", 2, 1),
        get("/live/track/get/input_routing_type", (2,), "Resampling"),
        sent("/live/track/set/input_routing_type", 2, "Ext. In"),
        get("/live/track/get/arm", (2,), True),
        sent("/live/track/set/arm", 2, 0),
        sent("/live/track/set/arm", 1, 1),  # "Bass" armed again
        sent("/live/song/set/clip_trigger_quantization", 4),
        sent("/live/song/set/current_song_time", 3.0),
        (
            ("/live/song/get/clip_trigger_quantization", ()),
            ("/live/song/get/clip_trigger_quantization", (4,)),
        ),
    ]


def session(osc: OscClient, tmp_path: Path) -> ResampleSession:
    return ResampleSession(
        osc,
        capture=CaptureSpan(start_beats=4.0, length_beats=4.0),
        keep_takes=False,
        timeout_s=2.0,
        marker_dir=tmp_path / "markers",
        log=lambda _: None,
        poll_s=0.001,
        progress=False,
    )


def test_a_resample_run_sets_up_captures_once_and_puts_the_set_back(tmp_path: Path) -> None:
    take = tmp_path / "Samples" / "Recorded" / "take.wav"
    take.parent.mkdir(parents=True)
    sf.write(str(take), np.full((int(2.3 * SR), 2), 0.1), SR, subtype="FLOAT")  # 4.6 beats recorded
    out = tmp_path / "out.wav"
    with expected_protocol([*prepare_protocol(), *capture_protocol(take), *restore_protocol()]) as osc:
        s = session(osc, tmp_path)
        s.prepare()
        assert s.saved is not None and s.saved.disarmed == [(1, "Bass")] and s.marker.exists()
        capture = s.capture(out)
        s.restore()
    assert (capture.start_beats, capture.length_beats, capture.seconds, capture.tempo) == (
        4.0,
        4.0,
        2.0,
        120.0,
    )
    assert sf.info(str(out)).frames == 2 * SR  # exactly the span
    assert not take.exists() and not s.marker.exists()


def test_a_capture_track_disarmed_in_live_fails_the_export_before_anything_changes(tmp_path: Path) -> None:
    song = "/live/song/get"
    protocol = [
        *prepare_protocol(),
        track_names(*TRACKS),
        ((f"{song}/tempo", ()), (f"{song}/tempo", (120.0,))),
        get("/live/track/get/arm", (2,), False),
        *restore_protocol(),
    ]
    with expected_protocol(protocol) as osc:
        s = session(osc, tmp_path)
        s.prepare()
        with pytest.raises(ExportFailed, match="is not armed"):
            s.capture(tmp_path / "out.wav")
        s.restore()
