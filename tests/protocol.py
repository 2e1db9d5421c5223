"""Protocol tests in memory, after pymeasure's `expected_protocol` (pymeasure.test): the test states the
exchange as a list of (sent, reply) pairs and the driver under test must produce exactly that, in order,
with no socket in between.

`ScriptedLive` is an `OscClient` transport (`autotune.live.client.Transport`). Each datagram the client
sends is decoded and compared with the next expected message: the same address and the same arguments,
each of the same OSC type (an int is not a float: AbletonOSC indexes `song.tracks[int(t)]`, but a float
value must go out as a float), floats within float32 precision. The scripted reply, if any, goes back as
real OSC datagrams from Live's address, so the client's own decoding, matching and `/live/error` handling
run as they do against Live. A message out of turn or past the end of the script fails the test at the
call that sent it (and again at the end, should the driver have swallowed the error); an expected message
left over fails it at the end.

The UDP end-to-end tests (test_client.py, test_tracks.py, test_resample.py) stay: they check the sockets
and the virtual Live; these check the conversation.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pythonosc.osc_message_builder import OscMessageBuilder

from autotune.live.client import OscClient
from autotune.vocabulary.osc import OscArg, parse_datagram

Message = tuple[str, tuple[OscArg, ...]]
#: What Live answers to one message: nothing (a setter, a method, or silence), one message or several.
Reply = Message | list[Message] | None
Pair = tuple[Message, Reply]

LIVE = ("127.0.0.1", 11000)  # AbletonOSC answers from its listening socket (osc_server.py, OSCServer)


def _same(want: OscArg, got: OscArg) -> bool:
    if type(want) is not type(got):
        return False
    if isinstance(want, float) and isinstance(got, float):
        return abs(want - got) <= 1e-6 * max(1.0, abs(want))  # the wire carries float32
    return want == got


def same_message(want: Message, got: Message) -> bool:
    return (
        want[0] == got[0]
        and len(want[1]) == len(got[1])
        and all(_same(w, g) for w, g in zip(want[1], got[1], strict=True))
    )


def reply_datagram(address: str, args: Sequence[OscArg]) -> bytes:
    """As AbletonOSC builds it (osc_server.py, `OSCServer.send`): python-osc's own type for each value, so
    a Live bool (`arm`, `has_clip`, `is_quantized`) travels as OSC True/False, not as an int."""
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return bytes(b.build().dgram)


def show(msg: Message) -> str:
    return f"{msg[0]} {list(msg[1])}"


class ScriptedLive:
    """An in-memory Live for one `OscClient`: checks what is sent against `pairs`, queues the replies."""

    def __init__(self, pairs: Sequence[Pair], live: tuple[str, int] = LIVE) -> None:
        self.todo: list[Pair] = list(pairs)
        self.live = live
        self.sent: list[Message] = []
        self.failures: list[str] = []
        self._replies: queue.Queue[bytes] = queue.Queue()
        self._closed = False

    # -- Transport ----------------------------------------------------------------------------------
    def sendto(self, data: bytes, address: tuple[str, int], /) -> int:
        if address != self.live:
            self._fail(f"a datagram went to {address}, not to Live at {self.live}")
        messages = [(m.address, m.args) for m in parse_datagram(data, address)]
        if len(messages) != 1:
            self._fail(f"a datagram held {len(messages)} messages, not one: {data!r}")
        got = messages[0]
        self.sent.append(got)
        if not self.todo:
            self._fail(f"message #{len(self.sent)} {show(got)} was sent after the expected protocol ended")
        want, reply = self.todo.pop(0)
        if not same_message(want, got):
            self._fail(f"message #{len(self.sent)} was {show(got)}, expected {show(want)}")
        replies = [] if reply is None else [reply] if isinstance(reply, tuple) else reply
        for address_, args in replies:
            self._replies.put(reply_datagram(address_, args))
        return len(data)

    def recvfrom(self, bufsize: int, /) -> tuple[bytes, tuple[str, int]]:
        if self._closed:
            raise OSError("closed")
        try:
            return self._replies.get(timeout=0.01), self.live
        except queue.Empty:
            raise TimeoutError from None

    def close(self) -> None:
        self._closed = True

    # -- checks -------------------------------------------------------------------------------------
    def _fail(self, why: str) -> None:
        self.failures.append(why)
        raise AssertionError(why)

    def check_done(self) -> None:
        problems = list(self.failures)
        if self.todo:
            left = "\n  ".join(show(want) for want, _ in self.todo)
            problems.append(f"{len(self.todo)} expected message(s) never sent:\n  {left}")
        assert not problems, "\n".join(problems)


@contextmanager
def expected_protocol(
    pairs: Sequence[Pair], *, timeout: float = 0.3, retries: int = 0
) -> Iterator[OscClient]:
    """An `OscClient` talking to a `ScriptedLive` that expects exactly `pairs`. A query whose pair has no
    reply times out after `timeout` s (retries are sent again, so each needs its own pair)."""
    live = ScriptedLive(pairs)
    client = OscClient(LIVE[0], LIVE[1], timeout=timeout, retries=retries, transport=live)
    try:
        yield client
    finally:
        client.close()
    live.check_done()
