"""The OSC codec and the rules of an AbletonOSC exchange, apart from any socket.

Both ends of the conversation need them: the live client encodes queries and decodes replies, the virtual
Live decodes queries and encodes replies, and each must agree with the other and with AbletonOSC byte for
byte (a bool travels as an int, a reply echoes the query's ids, a failure answers on `/live/error`).
Keeping them here lets the virtual Live speak the protocol without importing the client it stands in for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

OscArg = int | float | str
#: Where AbletonOSC answers a message it cannot handle, instead of on the message's own address.
ERROR_ADDRESS = "/live/error"


@dataclass(frozen=True)
class OscMessage:
    """One message as it arrived, with the address it came from (a reply to the client, a query to the
    virtual Live)."""

    address: str
    args: tuple[OscArg, ...]
    source: tuple[str, int]


def build_message(address: str, args: Sequence[OscArg]) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        if isinstance(a, bool):  # a bool would go out as OSC True/False, which AbletonOSC does not expect
            a = int(a)
        b.add_arg(a)
    return bytes(b.build().dgram)


def parse_datagram(data: bytes, source: tuple[str, int]) -> list[OscMessage]:
    """Every message in a datagram (bundles included); garbage gives an empty list, never an exception."""
    try:
        packet = OscPacket(data)
    except (ParseError, ValueError, IndexError, TypeError, UnicodeDecodeError, OverflowError):
        return []
    out = []
    for timed in packet.messages:
        msg = timed.message
        if hasattr(msg, "address"):
            out.append(OscMessage(str(msg.address), tuple(msg.params), source))
    return out


def _same(a: OscArg, b: OscArg) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, str):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(a)))
    return a == b


def reply_matches(query_args: Sequence[OscArg], reply_args: Sequence[OscArg]) -> bool:
    """A reply echoes the query's ids first (track, device, parameter)."""
    if len(reply_args) < len(query_args):
        return False
    return all(_same(q, r) for q, r in zip(query_args, reply_args, strict=False))


class OscConnection(Protocol):
    """What a caller needs of a connection to an AbletonOSC peer: fire a setter, or query and get the
    reply's arguments. `autotune.live.client.OscClient` is one; the virtual Live's exporter asks for this
    rather than the client, so the sim need not import live to drive its own server."""

    timeout: float

    def send(self, address: str, *args: OscArg) -> None: ...

    def query(
        self, address: str, *args: OscArg, timeout: float | None = None, retries: int | None = None
    ) -> tuple[OscArg, ...]: ...
