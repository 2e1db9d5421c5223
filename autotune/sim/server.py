"""The virtual Live: a UDP server speaking the AbletonOSC subset this project uses, exactly as upstream does.

Replies go to port `reply_port` (11001) of the sender's address on the query's own address with the ids
echoed; setters are silent; unknown addresses and failing handlers answer `/live/error`; after an error the
next message waits one processing tick, as in Live. `/autotune/sim/export <path>` is the virtual Live's
stand-in for Live's Export dialog: it renders the demo song through the master chain and writes a WAV the
way a DAW does (header first with placeholder sizes, audio in chunks, sizes patched last).

It also has Live's transport and Session recording (`autotune.sim.transport`): song time running in real
time, clip trigger quantization, tracks that arm, monitor and take "Resampling" as their input, clip slots
that record the main output into a take in a `Samples/Recorded` folder of the virtual Live's own Set, and
the clip getters and slot methods AbletonOSC has for them, with upstream's replies and silences (their
handlers are `autotune.sim.transport_osc`'s).

The song is a synthesised demo (`autotune.dsp.SONGS`) or a real recording (`autotune.sim.recordings`); the
plant that renders it is `autotune.sim.plants`' (the model's physics, a variant, or third-party DSP), with
the options' `Stress` on top.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import soundfile as sf

from autotune.dsp import demo_track
from autotune.dsp.chain import Physics
from autotune.dsp.demo import DemoSpec
from autotune.sim.liveset import (
    Addressing,
    ChainOn,
    Names,
    SimDevice,
    SimParameter,
    SimSong,
    SimStage,
    SimTrack,
)
from autotune.sim.plants import Stress, make_plant
from autotune.sim.recordings import RecordingSpec, build_recording
from autotune.sim.transport import RecordingOptions, Transport
from autotune.sim.transport_osc import transport_handlers
from autotune.vocabulary.osc import ERROR_ADDRESS, OscArg, build_message, parse_datagram

EXPORT_ADDRESS = "/autotune/sim/export"
Handler = Callable[[tuple[Any, ...]], tuple[OscArg, ...] | None]


@dataclass
class SimOptions:
    names: Names = "live12"
    addressing: Addressing = "minus-1000"
    chain_on: ChainOn = "master"
    error_tick_s: float = 0.1
    export_chunks: int = 8
    export_chunk_delay_s: float = 0.005
    #: The song the set plays: a synthesised demo, or a real recording (`autotune.sim.recordings`).
    demo: DemoSpec | RecordingSpec = field(default_factory=DemoSpec)
    cache_dir: Path | None = None
    #: How the devices behave: the model's physics by default, a `Physics` plant the model does not know, or
    #: a plant's name ("pedalboard": third-party DSP; `autotune.sim.plants.make_plant`).
    physics: Physics | str = field(default_factory=Physics)
    #: Deliberate disagreements with the model (input offset, drive slope, gain after the chain).
    stress: Stress = field(default_factory=Stress)
    #: The transport runs this many times faster than real time (1: real time, as Live does).
    clock_speed: float = 1.0
    #: The virtual Live's Set folder: takes go to its `Samples/Recorded`. None: a temporary folder of its
    #: own, removed when the virtual Live closes (Live keeps an unsaved Set's takes in its Temporary Folder).
    set_dir: Path | None = None
    #: False: a Set that never writes its takes' files (the clip names a file that never appears).
    record_files: bool = True
    #: Emulated latency a take starts with (s): 0 in Live, which compensates it.
    record_latency_s: float = 0.0
    #: A recording that begins this many beats after its launch while the song plays on (0 in Live).
    record_late_beats: float = 0.0
    #: The display name of the main-output input type: "Resampling" in Live; anything else emulates a Live
    #: whose list does not have it under that name.
    resampling_name: str = "Resampling"
    #: The arrangement loop (beats), as a new Live Set has it: 4 bars from the start.
    loop_start: float = 0.0
    loop_length: float = 16.0


class DemoSource:
    """The song (demo or recording), made once per process and cached on disk under the cache folder."""

    _memo: ClassVar[dict[str, np.ndarray]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def get(cls, spec: DemoSpec | RecordingSpec, cache_dir: Path | None) -> np.ndarray:
        key = spec.cache_key()
        with cls._lock:
            if key in cls._memo:
                return cls._memo[key]
            audio: np.ndarray | None = None
            path = cache_dir / f"{key}.npy" if cache_dir is not None else None
            if path is not None and path.is_file():
                try:
                    audio = np.load(path)
                except (OSError, ValueError):
                    audio = None
            if audio is None:
                made = build_recording(spec) if isinstance(spec, RecordingSpec) else demo_track(spec)
                audio = made.astype(np.float32)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(
                        f".{os.getpid()}.{threading.get_ident()}.tmp.npy"
                    )  # workers race here
                    np.save(tmp, audio)
                    tmp.replace(path)
            cls._memo[key] = audio
            return audio


class VirtualLive:
    """Wrap a `SimSong` in a UDP server. Thin: state lives in the song, physics in `autotune.dsp`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11000,
        *,
        reply_port: int = 11001,
        export_root: Path,
        options: SimOptions | None = None,
    ) -> None:
        self.options = options or SimOptions()
        # A missing plant package or recording is one line now, not an error at the first export.
        self.plant = make_plant(self.options.physics)
        if isinstance(self.options.demo, RecordingSpec):
            self.options.demo.check()
        self.song = SimSong(
            names=self.options.names, addressing=self.options.addressing, chain_on=self.options.chain_on
        )
        self.reply_port = reply_port
        self.export_root = export_root.resolve()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._sock.settimeout(0.05)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renders: OrderedDict[tuple[tuple[SimStage, ...], float], bytes] = OrderedDict()
        self._decoded: OrderedDict[tuple[tuple[SimStage, ...], float], np.ndarray] = OrderedDict()
        self._render_lock = threading.RLock()
        self._own_set = self.options.set_dir is None
        # Its own temporary Set, named now and made by the first take: a virtual Live that never records
        # writes nothing.
        self.set_dir = (
            Path(tempfile.gettempdir()) / f"virtual-live-set-{os.getpid()}-{id(self):x}-{self.port}"
            if self.options.set_dir is None
            else self.options.set_dir
        )
        self.recorded_dir = self.set_dir / "Samples" / "Recorded"
        self.loop = [float(self.options.loop_start), float(self.options.loop_length)]
        self.transport = Transport(
            self.song,
            tempo_bpm=float(self.options.demo.tempo_bpm),
            render=self.render_audio,
            recorded_dir=self.recorded_dir,
            options=RecordingOptions(
                speed=self.options.clock_speed,
                write_files=self.options.record_files,
                latency_s=self.options.record_latency_s,
                late_beats=self.options.record_late_beats,
            ),
        )
        self._exports: list[threading.Thread] = []
        self.received: list[tuple[str, tuple[Any, ...]]] = []
        self.export_done: dict[str, float] = {}  # path -> time.monotonic() when its last byte was written
        self.handlers: dict[str, Handler] = self._handlers()

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> VirtualLive:
        self._thread = threading.Thread(target=self.serve_forever, name="virtual-live", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            self.transport.advance()  # quantized starts and stops land on their boundaries between messages
            try:
                data, source = self._sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            for msg in parse_datagram(data, source):
                self.received.append((msg.address, msg.args))
                self._handle(msg.address, msg.args, source[0])

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        for t in self._exports:
            t.join(timeout=10.0)
        self.transport.close()
        self._sock.close()
        if self._own_set:
            shutil.rmtree(self.set_dir, ignore_errors=True)

    def __enter__(self) -> VirtualLive:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- protocol -----------------------------------------------------------------------------------
    def _reply(self, ip: str, address: str, args: tuple[OscArg, ...]) -> None:
        self._sock.sendto(build_message(address, args), (ip, self.reply_port))

    def _handle(self, address: str, args: tuple[Any, ...], ip: str) -> None:
        handler = self.handlers.get(address)
        if handler is None:
            self._reply(ip, ERROR_ADDRESS, (f"Unknown OSC address: {address}",))
            time.sleep(self.options.error_tick_s)
            return
        try:
            out = handler(args)
        except Exception as e:  # Live reports any handler failure the same way
            self._reply(ip, ERROR_ADDRESS, (f"Error handling OSC message: {e or type(e).__name__}",))
            time.sleep(self.options.error_tick_s)
            return
        if out is not None:
            self._reply(ip, address, out)

    def _handlers(self) -> dict[str, Handler]:
        song = self.song

        def device_handlers(
            base: str, ids: int, locate: Callable[[tuple[Any, ...]], SimDevice]
        ) -> dict[str, Handler]:
            """The device getters and setter under `base`; the first `ids` arguments locate the device."""

            def column(what: str) -> Handler:
                def h(a: tuple[Any, ...]) -> tuple[OscArg, ...]:
                    dev = locate(a)
                    if what == "name":
                        col: list[OscArg] = [p.name for p in dev.parameters]
                    elif what == "is_quantized":
                        col = [int(p.is_quantized) for p in dev.parameters]
                    else:
                        col = [float(getattr(p, what)) for p in dev.parameters]
                    return (*a[:ids], *col)

                return h

            def param(a: tuple[Any, ...]) -> SimParameter:
                return locate(a).parameters[int(a[ids])]

            def set_param(a: tuple[Any, ...]) -> None:
                param(a).set(float(a[ids + 1]))

            handlers: dict[str, Handler] = {
                f"{base}/get/parameters/{what}": column(what)
                for what in ("name", "min", "max", "is_quantized", "value")
            }
            handlers[f"{base}/get/num_parameters"] = lambda a: (*a[:ids], len(locate(a).parameters))
            handlers[f"{base}/get/parameter/value"] = lambda a: (*a[: ids + 1], param(a).value)
            handlers[f"{base}/get/parameter/value_string"] = lambda a: (*a[: ids + 1], param(a).display)
            handlers[f"{base}/set/parameter/value"] = set_param
            return handlers

        def set_volume(track: SimTrack, v: float) -> None:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"Invalid value {v:g} for volume (allowed 0..1)")
            track.volume = float(np.float32(v))

        handlers: dict[str, Handler] = {
            "/live/test": lambda a: ("ok",),
            "/live/application/get/version": lambda a: (12, 1),
            "/live/song/get/track_names": lambda a: tuple(t.name for t in song.tracks),
            "/live/song/get/num_tracks": lambda a: (len(song.tracks),),
            "/live/song/get/tempo": lambda a: (float(self.options.demo.tempo_bpm),),
            "/live/song/get/song_length": lambda a: (
                float(self.options.demo.seconds * self.options.demo.tempo_bpm / 60.0),
            ),
            "/live/track/get/name": lambda a: (a[0], song.track(a[0]).name),
            "/live/track/get/num_devices": lambda a: (a[0], len(song.track(a[0]).devices)),
            "/live/track/get/devices/name": lambda a: (a[0], *(d.name for d in song.track(a[0]).devices)),
            "/live/track/get/volume": lambda a: (a[0], song.track(a[0]).volume),
            "/live/track/set/volume": lambda a: set_volume(song.track(a[0]), float(a[1])),
            EXPORT_ADDRESS: self._export,
            **device_handlers("/live/device", 2, lambda a: song.device(a[0], a[1])),
            **transport_handlers(self),
        }
        if song.addressing == "namespace":
            handlers.update(
                {
                    "/live/master/get/devices/name": lambda a: tuple(d.name for d in song.master.devices),
                    "/live/master/get/volume": lambda a: (song.master.volume,),
                    "/live/master/set/volume": lambda a: set_volume(song.master, float(a[0])),
                    **device_handlers("/live/master/device", 1, lambda a: song.master_device(a[0])),
                }
            )
        return handlers

    # -- export -------------------------------------------------------------------------------------
    def render_wav(self, stages_key: tuple[tuple[SimStage, ...], float] | None = None) -> bytes:
        """The chain's export as WAV bytes (24-bit, the song's rate), rendered by the plant; memoised by
        settings. `stages_key` renders the chain as it was when a recording began (default: as it is now)."""
        key = self.song.stages() if stages_key is None else stages_key
        stages, fader = key
        with self._render_lock:  # the export handler and the takes' writers share the memo
            if key in self._renders:
                self._renders.move_to_end(key)
                return self._renders[key]
            source = DemoSource.get(self.options.demo, self.options.cache_dir)
            y = self.plant.render(source, self.options.demo.sample_rate, stages, fader, self.options.stress)
            buf = io.BytesIO()
            sf.write(
                buf, np.clip(y, -1.0, 1.0), self.options.demo.sample_rate, subtype="PCM_24", format="WAV"
            )
            data = buf.getvalue()
            self._renders[key] = data
            while len(self._renders) > 4:
                self._renders.popitem(last=False)
            return data

    def render_audio(self, stages_key: tuple[tuple[SimStage, ...], float]) -> tuple[np.ndarray, int]:
        """The export's render as samples (frames x channels, float32): the very values its 24-bit WAV
        holds, so a take cut from it measures as the export of the same span does."""
        with self._render_lock:
            if stages_key not in self._decoded:
                audio, _ = sf.read(io.BytesIO(self.render_wav(stages_key)), dtype="float32", always_2d=True)
                self._decoded[stages_key] = audio
                while len(self._decoded) > 2:
                    self._decoded.popitem(last=False)
            self._decoded.move_to_end(stages_key)
            return self._decoded[stages_key], int(self.options.demo.sample_rate)

    def _export(self, a: tuple[Any, ...]) -> tuple[OscArg, ...]:
        target = Path(str(a[0])).resolve()
        if not target.is_relative_to(self.export_root):
            raise ValueError(f"export path {target} is outside {self.export_root}")
        if target.suffix.lower() != ".wav":
            raise ValueError(f"export path {target} is not a .wav file")
        data = self.render_wav()
        t = threading.Thread(target=self._write_like_a_daw, args=(target, data), daemon=True)
        self._exports = [x for x in self._exports if x.is_alive()] + [t]
        t.start()
        return (str(a[0]), "started")

    def _write_like_a_daw(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        data_pos = data.find(b"data", 12)
        header_len = data_pos + 8
        header = bytearray(data[:header_len])
        struct.pack_into("<I", header, 4, 0)  # sizes unknown until the render ends
        struct.pack_into("<I", header, data_pos + 4, 0)
        n = max(1, self.options.export_chunks)
        body = data[header_len:]
        step = -(-len(body) // n)
        with target.open("wb") as f:
            f.write(header)
            for i in range(n):
                f.write(body[i * step : (i + 1) * step])
                f.flush()
                time.sleep(self.options.export_chunk_delay_s)
            f.seek(0)
            f.write(data[:header_len])
        self.export_done[str(target)] = time.monotonic()
