"""The virtual Live records like Live, driven over real UDP: transport, quantized starts and stops, arm,
routing, clip slots, and takes of the main output that are the export's render of the recorded span."""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotune.live.client import OscClient
from autotune.live.errors import LiveErrorReply
from autotune.sim import SimOptions, VirtualLive
from autotune.sim.transport import QUANTIZE_1_BAR, next_boundary

#: The demo song: 120 BPM, 48 kHz, 30 s = 60 beats.
SR, BEAT_S, SONG_BEATS = 48_000, 0.5, 60.0
SPEED = 8.0
CAPTURE = 4  # the track the tests record on: created at the end of the demo Set's four tracks


def pair(tmp_path: Path, demo_cache: Path, **options: object) -> tuple[VirtualLive, OscClient]:
    sim = VirtualLive(
        "127.0.0.1",
        0,
        reply_port=0,
        export_root=tmp_path,
        options=SimOptions(
            cache_dir=demo_cache, set_dir=tmp_path / "Set", **{"clock_speed": SPEED, **options}
        ),  # type: ignore[arg-type]
    )
    osc = OscClient("127.0.0.1", sim.port, reply_port=0, timeout=2.0, retries=0)
    sim.reply_port = osc.reply_port
    sim.start()
    return sim, osc


@pytest.fixture
def rig(tmp_path: Path, demo_cache: Path) -> Iterator[tuple[VirtualLive, OscClient]]:
    sim, osc = pair(tmp_path, demo_cache)
    try:
        yield sim, osc
    finally:
        osc.close()
        sim.close()


def resampling_track(osc: OscClient, arm: bool = True) -> int:
    osc.send("/live/song/create_audio_track", -1)
    osc.send("/live/track/set/input_routing_type", CAPTURE, "Resampling")
    osc.send("/live/track/set/current_monitoring_state", CAPTURE, 2)
    osc.send("/live/track/set/arm", CAPTURE, int(arm))
    assert osc.query("/live/track/get/arm", CAPTURE) == (CAPTURE, int(arm))
    return CAPTURE


def beat(osc: OscClient) -> float:
    return float(osc.query("/live/song/get/current_song_time")[0])


def until_beat(osc: OscClient, b: float) -> None:
    deadline = time.monotonic() + 10.0
    while beat(osc) < b:
        assert time.monotonic() < deadline, f"the transport never reached beat {b}"
        time.sleep(0.005)


def take(osc: OscClient, t: int, s: int) -> tuple[np.ndarray, Path]:
    path = Path(str(osc.query("/live/clip/get/file_path", t, s)[2]))
    deadline = time.monotonic() + 10.0
    while True:
        try:
            info = sf.info(str(path))
            if info.frames > 0 and path.stat().st_size == 44 + info.frames * info.channels * 4:
                break
        except (RuntimeError, OSError):
            pass
        assert time.monotonic() < deadline, f"{path} was never completed"
        time.sleep(0.01)
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == SR and info.subtype == "FLOAT"
    return audio, path


def export_audio(sim: VirtualLive) -> np.ndarray:
    audio, _ = sf.read(io.BytesIO(sim.render_wav()), dtype="float32", always_2d=True)
    return audio


def test_quantization_none_records_from_the_song_position_at_once(rig: tuple[VirtualLive, OscClient]) -> None:
    sim, osc = rig
    t = resampling_track(osc)
    osc.send("/live/song/set/clip_trigger_quantization", 0)
    osc.send("/live/song/set/current_song_time", 2.5)
    osc.send("/live/clip_slot/fire", t, 0)
    assert osc.query("/live/clip_slot/get/has_clip", t, 0) == (t, 0, 1)  # at once: no boundary to wait for
    assert osc.query("/live/song/get/is_playing") == (1,)  # the stopped transport started with it
    until_beat(osc, 4.5)
    osc.send("/live/clip_slot/stop", t, 0)
    assert osc.query("/live/clip/get/is_recording", t, 0) == (t, 0, 0)
    clip = sim.song.tracks[t].slots[0].clip
    assert clip is not None and clip.segments[0][0] == 2.5  # the take's first sample is the position set
    length = float(osc.query("/live/clip/get/length", t, 0)[2])
    assert length >= 2.0  # from 2.5 to wherever the stop landed
    audio, _ = take(osc, t, 0)
    assert len(audio) == round(length * BEAT_S * SR)
    # the take is the export's render of exactly that song time, sample for sample
    ref = export_audio(sim)[round(2.5 * BEAT_S * SR) :][: len(audio)]
    np.testing.assert_array_equal(audio, ref)


@pytest.fixture
def slow_rig(tmp_path: Path, demo_cache: Path) -> Iterator[tuple[VirtualLive, OscClient]]:
    """Twice real time: messages that must land before a bar line have three quarters of a second."""
    sim, osc = pair(tmp_path, demo_cache, clock_speed=2.0)
    try:
        yield sim, osc
    finally:
        osc.close()
        sim.close()


def test_quantization_1_bar_starts_and_stops_on_bar_lines(slow_rig: tuple[VirtualLive, OscClient]) -> None:
    sim, osc = slow_rig
    t = resampling_track(osc)
    assert osc.query("/live/song/get/clip_trigger_quantization") == (QUANTIZE_1_BAR,)  # Live's default
    osc.send("/live/song/set/current_song_time", 0.5)
    osc.send("/live/song/start_playing")
    until_beat(osc, 1.0)
    osc.send("/live/clip_slot/fire", t, 0)
    assert osc.query("/live/clip_slot/get/is_triggered", t, 0) == (t, 0, 1)
    assert osc.query("/live/clip_slot/get/has_clip", t, 0) == (t, 0, 0)  # waiting for the bar line
    until_beat(osc, 5.0)
    assert osc.query("/live/clip_slot/get/has_clip", t, 0) == (t, 0, 1)
    osc.send("/live/clip_slot/stop", t, 0)  # mid-bar: the stop lands on the next bar line
    assert osc.query("/live/clip/get/is_recording", t, 0) == (t, 0, 1)
    until_beat(osc, 8.2)
    assert osc.query("/live/clip/get/is_recording", t, 0) == (t, 0, 0)
    clip = sim.song.tracks[t].slots[0].clip
    assert clip is not None and clip.segments == [[4.0, 8.0]]
    assert osc.query("/live/clip/get/length", t, 0) == (t, 0, 4.0)
    audio, _ = take(osc, t, 0)
    assert len(audio) == 4 * round(BEAT_S * SR)
    np.testing.assert_array_equal(audio, export_audio(sim)[4 * 24_000 : 8 * 24_000])


def test_stop_playing_ends_a_quantized_recording_at_once_and_cancels_a_waiting_one(
    slow_rig: tuple[VirtualLive, OscClient],
) -> None:
    sim, osc = slow_rig
    t = resampling_track(osc)
    osc.send("/live/song/set/clip_trigger_quantization", 4)
    osc.send("/live/clip_slot/fire", t, 0)  # stopped at beat 0, a bar line: transport and recording start
    until_beat(osc, 1.0)
    osc.send("/live/clip_slot/fire", t, 1)  # waits for beat 4
    osc.send("/live/song/stop_playing")
    assert osc.query("/live/clip/get/is_recording", t, 0) == (t, 0, 0)
    assert osc.query("/live/clip_slot/get/has_clip", t, 1) == (t, 1, 0)
    clip = sim.song.tracks[t].slots[0].clip
    assert clip is not None and 1.0 <= clip.length < 4.0  # not held until the bar line
    assert osc.query("/live/song/get/is_playing") == (0,)


def test_a_recording_past_the_songs_end_is_silence(rig: tuple[VirtualLive, OscClient]) -> None:
    sim, osc = rig
    t = resampling_track(osc)
    osc.send("/live/song/set/clip_trigger_quantization", 0)
    osc.send("/live/song/set/current_song_time", SONG_BEATS - 2)
    osc.send("/live/clip_slot/fire", t, 0)
    until_beat(osc, SONG_BEATS + 2)
    osc.send("/live/song/stop_playing")
    audio, _ = take(osc, t, 0)
    inside = round(2 * BEAT_S * SR)
    np.testing.assert_array_equal(audio[:inside], export_audio(sim)[-inside:])
    assert len(audio) > inside + SR // 2 and not np.any(audio[inside:])


def test_an_unarmed_track_records_nothing(rig: tuple[VirtualLive, OscClient]) -> None:
    sim, osc = rig
    t = resampling_track(osc, arm=False)
    osc.send("/live/song/set/clip_trigger_quantization", 0)
    osc.send("/live/clip_slot/fire", t, 0)
    time.sleep(0.1)
    assert osc.query("/live/clip_slot/get/has_clip", t, 0) == (t, 0, 0)
    with pytest.raises(LiveErrorReply, match="no attribute 'file_path'"):  # upstream's getattr(None, ...)
        osc.query("/live/clip/get/file_path", t, 0)
    assert not list(sim.recorded_dir.glob("*.wav")) if sim.recorded_dir.exists() else True


def test_a_set_that_never_writes_its_takes(tmp_path: Path, demo_cache: Path) -> None:
    sim, osc = pair(tmp_path, demo_cache, record_files=False)
    try:
        t = resampling_track(osc)
        osc.send("/live/song/set/clip_trigger_quantization", 0)
        osc.send("/live/clip_slot/fire", t, 0)
        until_beat(osc, 1.0)
        osc.send("/live/song/stop_playing")
        path = Path(str(osc.query("/live/clip/get/file_path", t, 0)[2]))
        time.sleep(0.2)
        assert path.parent == sim.recorded_dir and not path.exists()
    finally:
        osc.close()
        sim.close()


def test_a_jump_while_recording_records_what_the_transport_played(rig: tuple[VirtualLive, OscClient]) -> None:
    sim, osc = rig
    t = resampling_track(osc)
    osc.send("/live/song/set/clip_trigger_quantization", 0)
    osc.send("/live/clip_slot/fire", t, 0)
    until_beat(osc, 1.0)
    osc.send("/live/song/set/current_song_time", 20.0)
    until_beat(osc, 21.0)
    osc.send("/live/song/stop_playing")
    clip = sim.song.tracks[t].slots[0].clip
    assert clip is not None and len(clip.segments) == 2
    assert clip.segments[0][0] == 0.0 and clip.segments[1][0] == 20.0
    audio, _ = take(osc, t, 0)
    first = round(clip.segments[0][1] * BEAT_S * SR)
    ref = export_audio(sim)
    np.testing.assert_array_equal(audio[:first], ref[:first])
    np.testing.assert_array_equal(audio[first : first + SR // 4], ref[20 * 24_000 : 20 * 24_000 + SR // 4])


def test_tracks_routing_monitoring_arm_and_slots_as_upstream_answers(
    rig: tuple[VirtualLive, OscClient],
) -> None:
    _, osc = rig
    assert osc.query("/live/song/get/num_tracks") == (4,)
    osc.send("/live/song/create_audio_track", -1)
    assert osc.query("/live/song/get/track_names")[-1] == "5-Audio"
    types = osc.query("/live/track/get/available_input_routing_types", 4)
    assert types[0] == 4 and "Resampling" in types and "Ext. In" in types
    assert osc.query("/live/track/get/input_routing_type", 4) == (4, "Ext. In")
    osc.send("/live/track/set/input_routing_type", 4, "Master Out")  # not in the list: ignored silently
    assert osc.query("/live/track/get/input_routing_type", 4, after_send=True) == (4, "Ext. In")
    assert osc.query("/live/track/get/current_monitoring_state", 4) == (4, 1)  # Auto, Live's default
    osc.send("/live/track/set/current_monitoring_state", 4, 7)
    with pytest.raises(LiveErrorReply, match="monitoring"):
        osc.query("/live/track/get/current_monitoring_state", 4, after_send=True)
    with pytest.raises(LiveErrorReply, match="cannot be armed"):
        osc.send("/live/track/set/arm", -1000, 1)  # the master
        osc.query("/live/track/get/arm", 4, after_send=True)
    assert osc.query("/live/song/get/num_scenes") == (8,)
    with pytest.raises(LiveErrorReply):
        osc.send("/live/clip_slot/delete_clip", 4, 0)  # an empty slot
        osc.query("/live/clip_slot/get/has_clip", 4, 0, after_send=True)
    osc.send("/live/song/delete_track", 4)
    assert osc.query("/live/song/get/num_tracks", after_send=True) == (4,)
    assert osc.query("/live/song/get/loop_start") == (0.0,) and osc.query("/live/song/get/loop_length") == (
        16.0,
    )
    with pytest.raises(LiveErrorReply):
        osc.send("/live/song/set/clip_trigger_quantization", 14)
        osc.query("/live/song/get/clip_trigger_quantization", after_send=True)


def test_song_time_runs_in_real_time_by_default(tmp_path: Path, demo_cache: Path) -> None:
    sim = VirtualLive(
        "127.0.0.1", 0, reply_port=0, export_root=tmp_path, options=SimOptions(cache_dir=demo_cache)
    )
    try:
        tr = sim.transport
        tr.start_playing()
        t0, b0 = time.monotonic(), tr.beat()
        time.sleep(0.2)
        rate = (tr.beat() - b0) / (time.monotonic() - t0)
        assert rate == pytest.approx(2.0, rel=0.05)  # 120 BPM: two beats a second
        assert not sim.set_dir.exists()  # its temporary Set is made by the first take only
    finally:
        sim.close()


def test_its_own_temporary_set_goes_with_it(tmp_path: Path, demo_cache: Path) -> None:
    sim = VirtualLive(
        "127.0.0.1", 0, reply_port=0, export_root=tmp_path, options=SimOptions(cache_dir=demo_cache)
    )
    with OscClient("127.0.0.1", sim.port, reply_port=0, timeout=2.0) as osc:
        sim.reply_port = osc.reply_port
        with sim:
            t = resampling_track(osc)
            osc.send("/live/song/set/clip_trigger_quantization", 0)
            osc.send("/live/clip_slot/fire", t, 0)
            assert osc.query("/live/clip_slot/get/has_clip", t, 0, after_send=True) == (t, 0, 1)
            osc.send("/live/song/stop_playing")
            assert Path(str(osc.query("/live/clip/get/file_path", t, 0)[2])).parent == sim.recorded_dir
            assert sim.recorded_dir.is_dir() and str(sim.set_dir).startswith(tempfile.gettempdir())
    assert not sim.set_dir.exists()


def test_next_boundary() -> None:
    assert next_boundary(0.0, 4.0) == 0.0
    assert next_boundary(0.5, 4.0) == 4.0
    assert next_boundary(8.0 - 1e-12, 4.0) == 8.0  # a float a hair before a bar line is on it
    assert next_boundary(3.3, 0.0) == 3.3
    assert next_boundary(1.1, 1.0 / 3.0) == pytest.approx(4.0 / 3.0)
