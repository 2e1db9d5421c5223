"""`--export resample` on the virtual Live over real UDP: the capture route, the Set left as it was found
(also after errors, Ctrl-C and a kill), alignment and loudness against an export of the same span, the
doctor's checks, and `autotune optimize --export resample` end to end."""

from __future__ import annotations

import io
import json
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from autotune import backends
from autotune.audio import analyze_file
from autotune.cli import main
from autotune.config import CaptureSpan, load_config
from autotune.dsp.demo import DemoSpec
from autotune.live import resample
from autotune.live.client import OscClient
from autotune.live.errors import ExportFailed
from autotune.live.resample import CAPTURE_TRACK, CaptureSetupError, ResampleSession, Span
from autotune.settings import load_settings
from autotune.sim import SimOptions, VirtualLive
from autotune.sim.liveset import SimTrack
from tests.conftest import free_udp_port

SPEED = 20.0  # the virtual Live's transport, times real time: a capture here takes a twentieth of its span
BEAT_S, SR = 0.5, 48_000  # the demo song: 120 BPM, 48 kHz
SONG_BEATS = 24.0


def make_sim(tmp_path: Path, demo_cache: Path, reply_port: int = 0, **options: Any) -> VirtualLive:
    """A virtual Live on a free port with a fast transport and a 12 s song (24 beats: cheap to render)."""
    options.setdefault("clock_speed", SPEED)
    options.setdefault("demo", DemoSpec(seconds=SONG_BEATS * BEAT_S))
    return VirtualLive(
        "127.0.0.1",
        0,
        reply_port=reply_port,
        export_root=tmp_path,
        options=SimOptions(cache_dir=demo_cache, set_dir=tmp_path / "Set", **options),
    )


@pytest.fixture
def rig(tmp_path: Path, demo_cache: Path) -> Iterator[tuple[VirtualLive, OscClient]]:
    sim = make_sim(tmp_path, demo_cache)
    osc = OscClient("127.0.0.1", sim.port, reply_port=0, timeout=1.0, retries=1)
    sim.reply_port = osc.reply_port
    sim.start()
    try:
        yield sim, osc
    finally:
        osc.close()
        sim.close()


def session(osc: OscClient, tmp_path: Path, **kw: Any) -> tuple[ResampleSession, list[str]]:
    lines: list[str] = []
    kw.setdefault("capture", CaptureSpan(start_beats=4.0, length_beats=4.0))
    kw.setdefault("keep_takes", False)
    kw.setdefault("timeout_s", 5.0)
    return ResampleSession(
        osc, marker_dir=tmp_path / "markers", log=lines.append, progress=False, **kw
    ), lines


def user_set(sim: VirtualLive) -> None:
    """The producer's Set as they left it: one track armed, quantization 1 Bar, the position at beat 3."""
    sim.song.tracks[1].arm = True
    sim.transport.set_quantization(4)
    sim.transport.set_song_time(3.0)


def state(sim: VirtualLive) -> dict[str, Any]:
    """Everything `--export resample` may touch in the Set."""
    return {
        "tracks": [(t.name, t.arm, t.monitoring, t.input_routing) for t in sim.song.tracks],
        "quantization": sim.transport.quantization,
        "song_time": round(sim.transport.beat(), 6),
        "playing": sim.transport.playing,
        "clips": sum(s.clip is not None or s.record_at is not None for t in sim.song.tracks for s in t.slots),
    }


def takes(sim: VirtualLive) -> list[Path]:
    return sorted(sim.recorded_dir.glob("*.wav")) if sim.recorded_dir.exists() else []


def export_span(sim: VirtualLive, start_beats: float, length_beats: float, path: Path) -> Path:
    """What the virtual Live's export gives for the span: the export's samples between its beats."""
    audio, sr = sf.read(io.BytesIO(sim.render_wav()), dtype="float32", always_2d=True)
    i = round(start_beats * BEAT_S * sr)
    sf.write(path, audio[i : i + round(length_beats * BEAT_S * sr)], sr, subtype="FLOAT")
    return path


def test_captures_leave_the_set_as_found(rig: tuple[VirtualLive, OscClient], tmp_path: Path) -> None:
    sim, osc = rig
    user_set(sim)
    found = state(sim)
    s, lines = session(osc, tmp_path)
    s.prepare()
    t = len(found["tracks"])
    capture = sim.song.tracks[t]
    assert (capture.name, capture.arm, capture.monitoring, capture.input_routing) == (
        CAPTURE_TRACK,
        True,
        2,
        "Resampling",
    )
    assert sim.transport.quantization == 0 and not sim.song.tracks[1].arm  # None; Bass would sound through
    assert "disarmed for the run: Bass" in lines[0] and "(was 1 Bar)" in lines[0]
    assert "the target applies to this span, not to the whole song" in lines[1]
    for n in range(2):
        out = tmp_path / f"capture-{n}.wav"
        got = s.capture(out)
        assert got.length_beats == 4.0 and got.sample_rate == SR and not got.take_kept
        info = sf.info(str(out))
        assert info.frames == 4 * round(BEAT_S * SR) and info.subtype == "FLOAT"  # exactly the span
        assert state(sim)["clips"] == 0 and takes(sim) == []  # every clip and take goes at once
    s.restore()
    assert state(sim) == found
    assert not s.marker.exists()


def test_kept_takes_stay_and_their_clips_go(rig: tuple[VirtualLive, OscClient], tmp_path: Path) -> None:
    sim, osc = rig
    s, _ = session(osc, tmp_path, keep_takes=True)
    got = s.capture(tmp_path / "a.wav")
    s.restore()
    assert [p.name for p in takes(sim)] == [Path(got.take_file).name] and got.take_kept
    assert state(sim)["clips"] == 0


def test_a_capture_track_found_by_name_keeps_its_place_and_settings(
    rig: tuple[VirtualLive, OscClient], tmp_path: Path
) -> None:
    sim, osc = rig
    sim.song.tracks.insert(1, SimTrack(CAPTURE_TRACK))  # left by the producer, monitoring Auto, Ext. In
    found = state(sim)
    s, lines = session(osc, tmp_path)
    s.capture(tmp_path / "a.wav")
    assert "(found)" in lines[0]
    s.restore()
    assert state(sim) == found


def test_quantization_1_bar_is_set_to_none_for_the_capture_and_back(
    rig: tuple[VirtualLive, OscClient], tmp_path: Path
) -> None:
    sim, osc = rig
    assert sim.transport.quantization == 4  # a new Set's 1 Bar
    sim.transport.set_song_time(1.5)  # mid-bar: a 1 Bar launch would wait for beat 4
    s, _ = session(osc, tmp_path, capture=CaptureSpan(start_beats=1.5, length_beats=2.0))
    out = tmp_path / "a.wav"
    s.capture(out)
    # None: the take started at once at beat 1.5, so it is the export's beats 1.5-3.5, sample for sample
    ref, _ = sf.read(str(export_span(sim, 1.5, 2.0, tmp_path / "ref.wav")), dtype="float32")
    got, _ = sf.read(str(out), dtype="float32")
    np.testing.assert_array_equal(got, ref)
    s.restore()
    assert sim.transport.quantization == 4 and sim.transport.beat() == 1.5


def test_the_loop_and_the_whole_song_as_spans(rig: tuple[VirtualLive, OscClient], tmp_path: Path) -> None:
    sim, osc = rig
    sim.loop[:] = [8.0, 2.0]
    s, _ = session(osc, tmp_path, capture="loop")
    s.prepare()
    assert s.span == Span(8.0, 2.0, "the Set's loop")
    s.restore()
    s, lines = session(osc, tmp_path, capture="song")
    s.prepare()
    assert s.span == Span(0.0, SONG_BEATS, "the whole song")
    assert "the target applies" not in lines[1]
    s.restore()


def test_an_unarmed_track_is_a_clear_failed_export(
    rig: tuple[VirtualLive, OscClient], tmp_path: Path
) -> None:
    sim, osc = rig
    found = state(sim)
    s, _ = session(osc, tmp_path)
    s.prepare()
    sim.song.tracks[-1].arm = False  # disarmed in Live between two trials
    with pytest.raises(ExportFailed, match="'autotune capture' is not armed, so Live records nothing"):
        s.capture(tmp_path / "a.wav")
    assert not (tmp_path / "a.wav").exists() and state(sim)["clips"] == 0
    s.restore()
    assert state(sim) == found


def test_a_track_that_will_not_arm_stops_the_set_up(tmp_path: Path, demo_cache: Path) -> None:
    sim = make_sim(tmp_path, demo_cache)
    sim.song.tracks.append(SimTrack(CAPTURE_TRACK, can_be_armed=False))  # e.g. a frozen track
    found = state(sim)
    with OscClient("127.0.0.1", sim.port, reply_port=0, timeout=1.0) as osc:
        sim.reply_port = osc.reply_port
        with sim:
            s, _ = session(osc, tmp_path)
            with pytest.raises(CaptureSetupError, match="cannot be armed") as e:
                s.prepare()
            assert e.value.check == "capture arm"
            assert state(sim) == found and not s.marker.exists()


def test_a_set_that_never_writes_the_take_times_out(tmp_path: Path, demo_cache: Path) -> None:
    sim = make_sim(tmp_path, demo_cache, record_files=False)
    with OscClient("127.0.0.1", sim.port, reply_port=0, timeout=1.0) as osc:
        sim.reply_port = osc.reply_port
        with sim:
            s, _ = session(osc, tmp_path, timeout_s=0.5)
            t0 = time.monotonic()
            with pytest.raises(ExportFailed, match=r"the take .* did not appear within 0.5 s"):
                s.capture(tmp_path / "a.wav")
            assert time.monotonic() - t0 < 5.0
            assert state(sim)["clips"] == 0
            s.restore()


def test_a_recording_that_starts_late_is_a_failed_export(tmp_path: Path, demo_cache: Path) -> None:
    # One second (2 beats) after the span's start, in real time: the late start shows whatever the load.
    sim = make_sim(tmp_path, demo_cache, record_late_beats=2.0, clock_speed=1.0)
    with OscClient("127.0.0.1", sim.port, reply_port=0, timeout=1.0) as osc:
        sim.reply_port = osc.reply_port
        with sim:
            s, _ = session(osc, tmp_path, capture=CaptureSpan(start_beats=4.0, length_beats=2.0))
            with pytest.raises(
                ExportFailed, match=r"started at least \d\.\d\d s after the span's start .* Count-In"
            ) as e:
                s.capture(tmp_path / "a.wav")
            late = float(str(e.value).split("at least ")[1].split(" s")[0])
            assert 0.3 < late <= 1.0  # at most the true lateness: less by the stop's own lag
            s.restore()
            assert state(sim)["clips"] == 0 and takes(sim) == []


def test_a_launch_that_plays_from_elsewhere_is_a_failed_export(
    rig: tuple[VirtualLive, OscClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, osc = rig
    fire = sim.transport.fire

    def from_the_top(*args: Any) -> None:  # a Live that starts the song from its beginning instead
        fire(*args)
        sim.transport.set_song_time(0.0)

    monkeypatch.setattr(sim.transport, "fire", from_the_top)
    s, _ = session(osc, tmp_path)
    with pytest.raises(ExportFailed, match="before the span's start at 4: the take would not be the span"):
        s.capture(tmp_path / "a.wav")
    s.restore()
    assert state(sim)["clips"] == 0


def test_ctrl_c_while_recording_leaves_the_set_as_found(
    rig: tuple[VirtualLive, OscClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, osc = rig
    user_set(sim)
    found = state(sim)
    s, _ = session(osc, tmp_path)
    s.prepare()
    sim.transport.options.speed = 1.0  # real time: the recording is surely still running at the first wait
    real = time.sleep

    def sleep(seconds: float) -> None:
        if sim.transport.playing:  # recording: the producer presses Ctrl-C
            raise KeyboardInterrupt
        real(seconds)

    monkeypatch.setattr(resample, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    with pytest.raises(KeyboardInterrupt):
        s.capture(tmp_path / "a.wav")
    monkeypatch.undo()
    assert state(sim)["clips"] == 0
    time.sleep(0.2)  # the take's writer finishes the file the stop ended
    assert takes(sim) == []  # its file asked for and deleted, though the capture never got to it
    s.restore()
    assert state(sim) == found


def test_a_killed_run_is_put_right_by_the_next(rig: tuple[VirtualLive, OscClient], tmp_path: Path) -> None:
    sim, osc = rig
    user_set(sim)
    found = state(sim)
    killed, _ = session(osc, tmp_path)
    killed.prepare()
    assert killed.saved is not None
    killed.saved.take_slot = 0  # killed mid-capture, as `capture` marks it: a clip left recording
    killed._write_marker()
    osc.send("/live/clip_slot/fire", len(found["tracks"]), 0)
    assert killed.marker.exists() and state(sim) != found
    s, lines = session(osc, tmp_path)  # the next run, on the same Live
    s.prepare()
    assert "an interrupted capture had left the Set changed: put back as it was" in lines[0]
    assert [t.name for t in sim.song.tracks].count(CAPTURE_TRACK) == 1  # the killed run's one went
    assert takes(sim) == []  # the killed capture's take went with its clip
    s.capture(tmp_path / "a.wav")
    s.restore()
    assert state(sim) == found and not s.marker.exists()


@pytest.mark.parametrize(
    ("latency_ms", "start", "beats"), [(0.0, 4.0, 4.0), (6.0, 4.0, 4.0), (6.0, 17.0, 3.0)]
)
def test_capture_loudness_agrees_with_an_export_of_the_span(
    tmp_path: Path, demo_cache: Path, latency_ms: float, start: float, beats: float
) -> None:
    """Alignment: with no latency the capture is the export's span sample for sample; with a Limiter's
    largest look-ahead (6 ms) left uncompensated it still measures within 0.1 LU, so no leading trim is
    needed. The tail is cut: the take runs past the span's end (the stop is late on purpose)."""
    sim = make_sim(tmp_path, demo_cache, record_latency_s=latency_ms / 1000.0)
    with OscClient("127.0.0.1", sim.port, reply_port=0, timeout=1.0) as osc:
        sim.reply_port = osc.reply_port
        with sim:
            sim.song.master.devices[2].param("Input Gain").set(9.0)  # a limiter working hard: transients
            s, _ = session(
                osc, tmp_path, capture=CaptureSpan(start_beats=start, length_beats=beats), keep_takes=True
            )
            got = s.capture(tmp_path / "capture.wav")
            s.restore()
            take = sf.info(got.take_file)
            assert take.duration > beats * BEAT_S + 0.2  # recorded past the end: cut to the span
            ref = analyze_file(export_span(sim, start, beats, tmp_path / "export.wav"))
    cap = analyze_file(tmp_path / "capture.wav")
    diff = abs(cap.lufs_i - ref.lufs_i)
    assert diff < 0.1
    if latency_ms == 0.0:
        assert diff < 1e-6 and cap.peak_dbfs == ref.peak_dbfs


def test_the_exporter_states_its_span_for_receipts_and_the_reference_cache(
    rig: tuple[VirtualLive, OscClient], tmp_path: Path
) -> None:
    _, osc = rig
    s, _ = session(osc, tmp_path)
    exporter = resample.ResampleExporter(s, log=lambda _: None)
    assert exporter.capture_span is None and exporter.capture_info is None
    exporter.prepare()
    assert exporter.capture_span == {"start_beats": 4.0, "length_beats": 4.0}
    exporter.trigger(tmp_path / "a.wav", "a.wav")
    info = exporter.capture_info
    assert info is not None and info["seconds"] == 2.0 and info["song_beats"] == SONG_BEATS
    assert info["span_source"] == "the config's capture span" and info["tempo"] == 120.0
    exporter.finish()
    assert exporter.capture_span is None


def test_export_method_honours_the_configs_method(project: Path) -> None:
    config = load_config("configs/streaming.json")
    resampling = config.model_copy(
        update={"auto_export": config.auto_export.model_copy(update={"method": "resample"})}
    )
    assert backends.export_method(load_settings(), config) == "sim"
    assert backends.export_method(load_settings(), resampling) == "resample"
    assert backends.export_method(load_settings(export="sim"), resampling) == "sim"  # the flag wins
    assert backends.export_method(load_settings(backend="live"), resampling) == "resample"


def live_resample_flags(port: int, reply: int) -> list[str]:
    """The command line of a run against a Live on `port` (the virtual one here), capturing by resampling."""
    return ["--backend", "live", "--port", str(port), "--reply-port", str(reply), "--export", "resample"]


def capture_config(project: Path, **auto_export: Any) -> str:
    config = json.loads((project / "configs" / "streaming.json").read_text())
    config["auto_export"] = {
        "capture": {"start_beats": 8.0, "length_beats": 6.0},
        "timeout_s": 10.0,
        **auto_export,
    }
    (project / "configs" / "capture.json").write_text(json.dumps(config))
    return "configs/capture.json"


def test_optimize_with_resample_reaches_the_target(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOTUNE_SIM_CLOCK", str(SPEED))
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(project / ".cache"))  # its own reference cache and Set
    cfg = capture_config(project)
    assert main(["optimize", cfg, "--backend", "sim", "--export", "resample", "--trials", "6"]) == 0
    out = capsys.readouterr().out
    assert "✅ TARGET HIT" in out and "📤 CAPTURING (resampling): dry-reference.wav" in out
    assert "EXPORT NOW" not in out and "AUTO-EXPORTING" not in out and "EXPORTING WITH" not in out
    assert "the target applies to this span, not to the whole song" in out
    rows = [json.loads(line) for line in (project / "output" / "experiments.jsonl").read_text().splitlines()]
    assert rows[0]["id"] == "dry-reference" and all(r["status"] == "ok" for r in rows)
    for r in rows:  # receipts and files as for any export
        m = analyze_file(project / r["export_file"])
        assert r["sha256"] == m.sha256 and m.duration_s == pytest.approx(3.0, abs=1e-4)
    assert rows[-1]["results"]["pass_lufs"] and rows[-1]["results"]["pass_peak"]
    assert not list((project / ".cache" / "virtual-live").rglob("*.wav"))  # no takes left behind
    assert not list((project / ".cache" / "resample").glob("*.json"))  # no marker


def test_sweep_against_a_standalone_live_leaves_its_set_as_found(
    project: Path, demo_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI as a real Live is driven; the one Set that never writes its takes: every export
    is an `export_failed` receipt after the timeout, the run goes on, and the Set is left as it was."""
    reply = free_udp_port()
    for writes in (True, False):
        sim = make_sim(project / "output", demo_cache, reply_port=reply, record_files=writes)
        user_set(sim)
        found = state(sim)
        cfg = capture_config(project, timeout_s=1.0)
        flags = live_resample_flags(sim.port, reply)
        with sim:
            assert main(["sweep", cfg, *flags, "--restart"]) == 0
            assert state(sim) == found
        rows = [
            json.loads(line) for line in (project / "output" / "experiments.jsonl").read_text().splitlines()
        ]
        if writes:
            assert rows[-1]["status"] == "ok"
        else:
            assert rows[-1]["status"] == "export_failed" and "did not appear within 1 s" in rows[-1]["error"]
    assert "✗ Export failed: the take" in capsys.readouterr().out


def test_ctrl_c_in_a_run_exits_130_with_the_set_as_found(
    project: Path, demo_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reply = free_udp_port()
    sim = make_sim(project / "output", demo_cache, reply_port=reply)
    user_set(sim)
    found = state(sim)
    real = ResampleSession._record

    def interrupted(self: ResampleSession, *args: Any) -> float:
        real(self, *args)
        raise KeyboardInterrupt  # the producer presses Ctrl-C as the first capture ends

    monkeypatch.setattr(ResampleSession, "_record", interrupted)
    flags = live_resample_flags(sim.port, reply)
    with sim:
        assert main(["sweep", capture_config(project), *flags]) == 130
        assert state(sim) == found and takes(sim) == []
    assert "interrupted" in capsys.readouterr().err


def test_doctor_checks_the_capture_route(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOTUNE_SIM_CLOCK", str(SPEED))
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(project / ".cache"))
    cfg = capture_config(project)
    assert main(["doctor", cfg, "--backend", "sim", "--export", "resample"]) == 0
    out = capsys.readouterr().out
    for name in ("capture routing", "capture arm", "capture test"):
        assert any(line.strip().startswith(f"✓ {name}") for line in out.splitlines()), name
    assert "1 s test recording from beat 8 appeared" in out
    assert not list((project / "output").glob(".doctor-capture*"))


def test_doctor_names_a_missing_resampling_input(
    project: Path, demo_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reply = free_udp_port()
    sim = make_sim(project / "output", demo_cache, reply_port=reply, resampling_name="Resample (localised)")
    found = state(sim)
    with sim:
        flags = live_resample_flags(sim.port, reply)
        code = main(["doctor", capture_config(project), *flags])
        assert state(sim) == found
    out = capsys.readouterr().out
    assert code == 20
    assert "✗ capture routing" in out and "offers no input type 'Resampling'" in out
