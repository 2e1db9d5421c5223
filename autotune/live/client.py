"""AbletonOSC transport: queries with matched replies, silent setters, `/live/error` fail-fast.

Facts this code is built on (see the AbletonOSC facts file): Live listens on UDP 11000 and answers to port
11001 of the sender's address on the query's own address, echoing the query's ids; setters never answer;
a failed query answers only `/live/error`; unasked messages also arrive on 11001. So the client owns a
listener on the reply port, sends one query at a time, and reads replies until one matches or an error or
a timeout ends the wait. The messages themselves (encoding, decoding, what counts as a reply) are the
protocol's, shared with the virtual Live: `autotune.vocabulary.osc`.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from typing import Protocol

from autotune.live.errors import LiveErrorReply, LiveReadError, LiveTimeout
from autotune.vocabulary.osc import (
    ERROR_ADDRESS,
    OscArg,
    OscMessage,
    build_message,
    parse_datagram,
    reply_matches,
)


class Transport(Protocol):
    """The datagram I/O a client runs on: its UDP sockets by default. Injectable so that protocol tests
    (tests/protocol.py) can script Live's side in memory, checking each message without a socket, a port
    or a timing race. `recvfrom` raises `TimeoutError` when nothing came within a short wait (the reader
    then looks at its stop flag) and `OSError` once closed."""

    def sendto(self, data: bytes, address: tuple[str, int], /) -> object: ...

    def recvfrom(self, bufsize: int, /) -> tuple[bytes, tuple[str, int]]: ...

    def close(self) -> None: ...


class OscClient:
    """One connection to an AbletonOSC peer (a real Live or the virtual one)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11000,
        *,
        reply_host: str = "127.0.0.1",
        reply_port: int = 11001,
        timeout: float = 1.0,
        retries: int = 2,
        transport: Transport | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.retries = retries
        try:
            self._addr = (socket.gethostbyname(host), port)
        except OSError as e:
            raise LiveReadError(f"cannot resolve Live's host {host!r}: {e.strerror or e}") from None
        self._rx: Transport
        self._tx: Transport
        if transport is not None:
            self._rx = self._tx = transport
            self.reply_port = reply_port
        else:
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rx.bind((reply_host, reply_port))
            except OSError as e:
                rx.close()
                raise LiveReadError(
                    f"cannot listen for Live's replies on {reply_host}:{reply_port}: {e.strerror or e} "
                    "(is another autotune running? set AUTOTUNE_REPLY_PORT or --reply-port)"
                ) from None
            rx.settimeout(0.05)
            self.reply_port = int(rx.getsockname()[1])
            self._rx, self._tx = rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._inbox: queue.Queue[OscMessage] = queue.Queue()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.ignored = 0  # datagrams dropped: garbage or from an address other than Live's
        self._thread = threading.Thread(target=self._read, name="osc-replies", daemon=True)
        self._thread.start()

    # -- plumbing -----------------------------------------------------------------------------------
    def _accepts(self, source: tuple[str, int]) -> bool:
        """Only Live's own address may answer: anything else on the reply port is ignored."""
        return source[0] == self._addr[0]

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self._rx.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._accepts(source):
                self.ignored += 1
                continue
            replies = parse_datagram(data, source)
            if not replies:
                self.ignored += 1
            for r in replies:
                self._inbox.put(r)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._rx.close()
        self._tx.close()

    def __enter__(self) -> OscClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drain(self, keep_errors: bool = False) -> None:
        """Drop what is queued: nothing that arrived before a query is sent can be its reply (a late
        duplicate of an earlier retry would otherwise pass for it). A setter's error is kept on request."""
        kept = []
        while True:
            try:
                msg = self._inbox.get_nowait()
            except queue.Empty:
                break
            if keep_errors and msg.address == ERROR_ADDRESS:
                kept.append(msg)
        for msg in kept:
            self._inbox.put(msg)

    # -- API ----------------------------------------------------------------------------------------
    def send(self, address: str, *args: OscArg) -> None:
        """Fire and forget (AbletonOSC setters never answer)."""
        self._tx.sendto(build_message(address, args), self._addr)

    def query(
        self,
        address: str,
        *args: OscArg,
        timeout: float | None = None,
        retries: int | None = None,
        after_send: bool = False,
    ) -> tuple[OscArg, ...]:
        """Send a getter and return the reply's arguments (ids included).

        `after_send=True` keeps what arrived since the last `send`, so a `/live/error` caused by a setter
        is reported by the read-back that follows it (Live handles messages in order).
        """
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        with self._lock:
            self._drain(keep_errors=after_send)
            for _attempt in range(retries + 1):
                self._tx.sendto(build_message(address, args), self._addr)
                deadline = time.monotonic() + timeout
                error: LiveErrorReply | None = None
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        reply = self._inbox.get(timeout=left)
                    except queue.Empty:
                        break
                    if reply.address == ERROR_ADDRESS and error is None:
                        text = " ".join(str(a) for a in reply.args) or "(no message)"
                        error = LiveErrorReply(
                            f"Live answered {address} {list(args)} with /live/error: {text}"
                        )
                        if not after_send:
                            raise error
                        # The error is the setter's; this getter's own reply still comes: take it off the
                        # queue so it cannot pass for the reply to a later query.
                        deadline = min(deadline, time.monotonic() + max(timeout, 0.5))
                    elif reply.address == address and reply_matches(args, reply.args):
                        if error is not None:
                            raise error
                        return reply.args
                if error is not None:
                    raise error
        raise LiveTimeout(
            f"no reply from Live at {self.host}:{self.port} to {address} {list(args)} "
            f"({retries + 1} tries, {timeout:g} s each; replies expected on port {self.reply_port})"
        )

    def ping(self, timeout: float | None = None) -> bool:
        return self.query("/live/test", timeout=timeout)[:1] == ("ok",)
