"""The AbletonOSC client against the virtual Live and against scripted peers, over real UDP sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from autotune.live.client import OscClient
from autotune.live.devices import LiveSet, MasterChain, ParameterNotFound, ValueOutOfRange
from autotune.live.errors import LiveErrorReply, LiveTimeout, LiveWriteError
from autotune.live.tracks import Track
from autotune.sim import VirtualLive
from autotune.vocabulary.fader import FADER_0DB
from autotune.vocabulary.osc import OscArg, build_message, parse_datagram

MASTER = -1000
MASTER_TRACK = Track("-1000", -1000, "minus-1000")
NAMES = {"glue": "Glue Compressor", "limiter": "Limiter"}

Exchange = tuple[tuple[str, tuple[OscArg, ...]], tuple[str, tuple[OscArg, ...]] | None]


class ScriptedPeer:
    """A fake Live that expects exactly `exchanges` (sent -> reply) in order, like pymeasure's
    expected_protocol, and answers to the client's reply port; `problems` collects every mismatch."""

    def __init__(self, exchanges: Sequence[Exchange], *, drop_first: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.todo = list(exchanges)
        self.drop_next = drop_first
        self.problems: list[object] = []
        self.reply_port = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self, reply_port: int) -> None:
        self.reply_port = reply_port
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set() and self.todo:
            try:
                data, src = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            for msg in parse_datagram(data, src):
                if self.drop_next:
                    self.drop_next = False
                    continue
                (want_addr, want_args), reply = self.todo.pop(0)
                if (msg.address, msg.args) != (want_addr, want_args):
                    self.problems.append(((msg.address, msg.args), (want_addr, want_args)))
                if reply is not None:
                    self.sock.sendto(build_message(reply[0], reply[1]), (src[0], self.reply_port))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)
        self.sock.close()
        if self.todo:
            self.problems.append(("never sent", self.todo))


@contextmanager
def scripted_peer(exchanges: Sequence[Exchange], *, drop_first: bool = False) -> Iterator[ScriptedPeer]:
    peer = ScriptedPeer(exchanges, drop_first=drop_first)
    try:
        yield peer
    finally:
        peer.close()


def test_ping_and_track_names(live_pair: tuple[VirtualLive, OscClient]) -> None:
    _, client = live_pair
    assert client.ping()
    assert client.query("/live/song/get/track_names") == ("Drums", "Bass", "Chords", "Mix Bus")


def test_master_devices_and_parameter_tables(live_pair: tuple[VirtualLive, OscClient]) -> None:
    _, client = live_pair
    live = LiveSet(client)
    assert live.device_names(MASTER_TRACK) == ["Utility", "Glue Compressor", "Limiter"]
    glue = live.parameters(MASTER_TRACK, 1)
    limiter = live.parameters(MASTER_TRACK, 2)
    assert len(glue) == 12 and len(limiter) == 9
    threshold = next(p for p in glue if p.name == "Threshold")
    assert (threshold.min, threshold.max, threshold.is_quantized) == (-40.0, 0.0, False)
    makeup = next(p for p in glue if p.name == "Makeup")
    assert (makeup.min, makeup.max) == (0.0, 1.0)  # raw 0..1, displayed in dB: not "raw = dB"
    assert [p.name for p in limiter][:4] == ["Device On", "Input Gain", "Release", "Ceiling"]


def test_replies_echo_ids_and_floats_are_32_bit(live_pair: tuple[VirtualLive, OscClient]) -> None:
    _, client = live_pair
    client.send("/live/device/set/parameter/value", MASTER, 1, 8, 0.3)  # Dry/Wet
    reply = client.query("/live/device/get/parameter/value", MASTER, 1, 8)
    assert reply[:3] == (MASTER, 1, 8)
    assert reply[3] != 0.3 and reply[3] == pytest.approx(0.3, abs=1e-7)


def test_setters_never_reply(live_pair: tuple[VirtualLive, OscClient]) -> None:
    sim, client = live_pair
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.3)
    sim.reply_port = listener.getsockname()[1]
    try:
        client.send("/live/device/set/parameter/value", MASTER, 1, 1, -12.0)
        client.send("/live/track/set/volume", MASTER, 0.85)
        with pytest.raises(TimeoutError):
            listener.recvfrom(65536)
        client.send("/live/test")  # a getter to the same port does answer
        data, _ = listener.recvfrom(65536)
        assert parse_datagram(data, ("127.0.0.1", 0))[0].args == ("ok",)
    finally:
        listener.close()


def test_unknown_address_fails_fast_with_live_error_text(live_pair: tuple[VirtualLive, OscClient]) -> None:
    _, client = live_pair
    t0 = time.monotonic()
    with pytest.raises(LiveErrorReply, match="Unknown OSC address: /live/nope"):
        client.query("/live/nope", timeout=2.0)
    assert time.monotonic() - t0 < 0.5


def test_bad_track_and_device_index_are_live_errors(live_pair: tuple[VirtualLive, OscClient]) -> None:
    _, client = live_pair
    with pytest.raises(LiveErrorReply, match="list index out of range"):
        client.query("/live/track/get/devices/name", 99)
    with pytest.raises(LiveErrorReply, match="list index out of range"):
        client.query("/live/device/get/parameters/name", MASTER, 7)


def test_timeout_is_bounded_by_retries() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        with OscClient("127.0.0.1", silent.getsockname()[1], reply_port=0, timeout=0.2, retries=2) as client:
            t0 = time.monotonic()
            with pytest.raises(LiveTimeout, match=r"3 tries"):
                client.ping()
            assert 0.55 < time.monotonic() - t0 < 1.5
    finally:
        silent.close()


def test_a_dropped_query_is_retried() -> None:
    with scripted_peer([(("/live/test", ()), ("/live/test", ("ok",)))], drop_first=True) as peer:
        with OscClient("127.0.0.1", peer.port, reply_port=0, timeout=0.2, retries=2) as client:
            peer.start(client.reply_port)
            assert client.ping()
    assert peer.problems == []


def test_parameter_table_protocol_is_exactly_five_queries() -> None:
    """pymeasure-style: the exact messages the client sends, and the replies it gets."""
    q = "/live/device/get/parameters/"
    script: list[Exchange] = [
        ((q + "name", (3, 0)), (q + "name", (3, 0, "Device On", "Gain"))),
        ((q + "min", (3, 0)), (q + "min", (3, 0, 0.0, -35.0))),
        ((q + "max", (3, 0)), (q + "max", (3, 0, 1.0, 35.0))),
        ((q + "is_quantized", (3, 0)), (q + "is_quantized", (3, 0, 1, 0))),
        ((q + "value", (3, 0)), (q + "value", (3, 0, 1.0, 0.0))),
    ]
    with scripted_peer(script) as peer:
        with OscClient("127.0.0.1", peer.port, reply_port=0, timeout=0.5, retries=0) as client:
            peer.start(client.reply_port)
            params = LiveSet(client).parameters(Track("3", 3, "index"), 0)
    assert peer.problems == []
    assert [(p.name, p.min, p.max, p.is_quantized) for p in params] == [
        ("Device On", 0.0, 1.0, True),
        ("Gain", -35.0, 35.0, False),
    ]


def test_unasked_messages_and_garbage_are_ignored() -> None:
    script: list[Exchange] = [(("/live/test", ()), ("/live/test", ("ok",)))]
    with scripted_peer(script) as peer:
        with OscClient("127.0.0.1", peer.port, reply_port=0, timeout=0.5, retries=0) as client:
            noise = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            noise.sendto(b"\x00garbage\xff", ("127.0.0.1", client.reply_port))
            noise.sendto(build_message("/live/startup", ()), ("127.0.0.1", client.reply_port))
            noise.close()
            time.sleep(0.05)
            peer.start(client.reply_port)
            assert client.ping()
            assert client.ignored >= 1
    assert peer.problems == []


def _chain(client: OscClient) -> MasterChain:
    lines: list[str] = []
    chain = MasterChain(LiveSet(client), MASTER_TRACK, NAMES, lines.append)
    chain.resolve()
    assert lines[:3] == [
        "Resolving devices on track -1000...",
        "  Glue Compressor: device 1",
        "  Limiter: device 2",
    ]
    return chain


def test_physical_writes_land_as_raw_values(live_pair: tuple[VirtualLive, OscClient]) -> None:
    sim, client = live_pair
    chain = _chain(client)
    glue = sim.song.master.devices[1]
    limiter = sim.song.master.devices[2]
    a = chain.write("glue", "makeup_db", 15.0)
    assert a.raw == pytest.approx(0.75) and a.display == "15.00 dB"  # never (15 - 0) / (1 - 0)
    assert glue.param("Makeup").value == pytest.approx(0.75)
    chain.write("glue", "threshold_db", -30.0)
    assert glue.param("Threshold").display == "-30.0 dB"
    chain.write("glue", "ratio", 4.0)
    assert glue.param("Ratio").display == "4.00 : 1"
    chain.write("limiter", "gain_db", 28.0)  # resolves to Live 12.1's "Input Gain"
    assert limiter.param("Input Gain").display == "28.00 dB"
    chain.write("limiter", "release", 0.1)  # seconds, on a log law shown in ms
    assert limiter.param("Release").display == "100 ms"
    chain.write("limiter", "release_ms", 30)
    assert limiter.param("Release").display == "30.0 ms"


def test_second_write_to_a_parameter_is_cheap(live_pair: tuple[VirtualLive, OscClient]) -> None:
    sim, client = live_pair
    chain = _chain(client)
    chain.write("limiter", "ceiling_db", -6.5)
    before = len(sim.received)
    chain.write("limiter", "ceiling_db", -6.2)
    assert len(sim.received) - before <= 4  # set + value_string read-back + raw read-back


def test_out_of_range_value_names_the_range(live_pair: tuple[VirtualLive, OscClient]) -> None:
    _, client = live_pair
    chain = _chain(client)
    with pytest.raises(ValueOutOfRange, match=r"range -40 dB \.\. 0 dB"):
        chain.check("glue", "threshold_db", -80.0, "runs[0]")
    with pytest.raises(ValueOutOfRange, match=r"cannot show 3:1.*2.00 : 1, 4.00 : 1"):
        chain.write("glue", "ratio", 3.0)


def test_unknown_parameter_lists_the_device_names(live_pair: tuple[VirtualLive, OscClient]) -> None:
    _, client = live_pair
    chain = _chain(client)
    with pytest.raises(ParameterNotFound, match=r"Limiter: no parameter matches 'knee_db'.*Input Gain"):
        chain.slot("limiter", "knee_db")


def test_live_refusing_a_write_is_a_write_error(live_pair: tuple[VirtualLive, OscClient]) -> None:
    _, client = live_pair
    chain = _chain(client)
    probe = chain._probe(1, 1)
    with pytest.raises(LiveWriteError, match="Live refused /live/device/set/parameter/value"):
        probe(999.0)


def test_fader_is_set_to_unity_and_read_back(live_pair: tuple[VirtualLive, OscClient]) -> None:
    sim, client = live_pair
    sim.song.master.volume = 1.0  # +6 dB, the lesson of the real sessions
    chain = _chain(client)
    chain.set_fader_0db()
    assert sim.song.master.volume == pytest.approx(FADER_0DB)


def test_live_11_limiter_names_resolve_through_aliases(tmp_path, demo_cache) -> None:  # type: ignore[no-untyped-def]
    from autotune.sim import SimOptions

    sim = VirtualLive(
        "127.0.0.1",
        0,
        reply_port=0,
        export_root=tmp_path,
        options=SimOptions(names="live11", cache_dir=demo_cache),
    )
    with OscClient("127.0.0.1", sim.port, reply_port=0, timeout=0.5, retries=1) as client:
        sim.reply_port = client.reply_port
        with sim:
            chain = _chain(client)
            assert chain.write("limiter", "gain_db", 12.0).param == "Gain"
            assert chain.write("limiter", "release", 0.05).param == "Release time"
            assert sim.song.master.devices[2].param("Release time").display == "50.0 ms"
