"""asyncio adapters for the pure answer function: UDP and TCP (RFC 1035 §4.2.2 / RFC 7766).

Invariants: the protocols only move bytes; every decision is ``knet.dns.answer.answer``.
A bad packet never kills a server (answer() never raises; the adapters also guard their own
framing). They are plain asyncio protocol classes, so they run unchanged on a real loop
(``serve_loopback``, loopback addresses only) and on knet's virtual fabric, which offers the
same ``create_datagram_endpoint`` / ``create_server`` interface.
TCP: 2-byte length framing, many queries per connection, answered in order, connection closed
after ``idle_timeout`` seconds without a query (CoreDNS's default idle timeout is 10 s).
Deadlines, not idle timers (issue 13.8): a message must arrive whole within ``read_timeout``
seconds of its first byte (miekg/dns's readTimeout, 2 s), so a client trickling one byte at a
time is closed; more chunks of the same message never extend it. Flow control (issue 13.7):
while the transport's write buffer is above its high-water mark (``pause_writing``) the server
stops reading and answering; buffered queries are answered on ``resume_writing``, and a
client that does not read for ``read_timeout`` seconds is closed (miekg/dns's writeTimeout).
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

from knet.dns.answer import answer
from knet.dns.view import DnsView
from knet.errors import UsageError

Answerer = Callable[[bytes, Any, bool], "bytes | None"]


def _answerer(view: DnsView | Answerer) -> Answerer:
    if isinstance(view, DnsView):
        return lambda data, addr, tcp: answer(view, data, addr, tcp=tcp)
    return view


class DnsDatagramProtocol(asyncio.DatagramProtocol):
    """UDP: one datagram in, at most one datagram out."""

    def __init__(self, view: DnsView | Answerer) -> None:
        self._answer = _answerer(view)
        self.transport: asyncio.DatagramTransport | None = None
        self.served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            reply = self._answer(data, addr, False)
        except Exception:
            return
        if reply is not None and self.transport is not None:
            self.served += 1
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP errors etc.: keep serving
        pass


class DnsStreamProtocol(asyncio.Protocol):
    """TCP: length-prefixed messages; pipelined queries answered in order."""

    MAX_BUFFER = 1 << 20

    def __init__(self, view: DnsView | Answerer, idle_timeout: float = 10.0,
                 read_timeout: float = 2.0) -> None:
        self._answer = _answerer(view)
        self._idle_timeout = idle_timeout
        self._read_timeout = read_timeout
        self._buf = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        self._arm(self._idle_timeout)

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(delay, self._idle)

    def _idle(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > self.MAX_BUFFER:
            self.transport.close()  # type: ignore[union-attr]
            return
        if not self._paused:
            self._drain(started=len(self._buf) == len(data))

    def _drain(self, started: bool) -> None:
        """Answer every whole message buffered, then set the deadline: the idle timeout once
        the buffer is empty, the read timeout when a new message has begun (``started``: the
        buffer held no partial message before this call, or a message completed)."""
        t = self.transport
        while len(self._buf) >= 2 and t is not None and not self._paused:
            (n,) = struct.unpack_from("!H", self._buf, 0)
            if len(self._buf) < 2 + n:
                break
            msg = bytes(self._buf[2:2 + n])
            del self._buf[:2 + n]
            started = True
            try:
                reply = self._answer(msg, self.peer, True)
            except Exception:
                reply = None
            if reply is None:
                # miekg/dns closes a TCP connection after a message it will not answer.
                t.close()
                return
            t.write(struct.pack("!H", len(reply)) + reply)  # may call pause_writing
        if self._paused or t is None:
            return
        if not self._buf:
            if started:
                self._arm(self._idle_timeout)
        elif started:
            self._arm(self._read_timeout)

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its queries (RFC 7766 §6.2.2
        # lets a server apply back-pressure); nothing is answered until the buffer drains.
        self._paused = True
        self._arm(self._read_timeout)  # and a client that never reads is closed (writeTimeout)
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self.transport is None:
            return
        self.transport.resume_reading()
        self._drain(started=True)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.transport = None


@dataclass
class LoopbackServer:
    """Handle returned by ``serve_loopback``: same port for UDP and TCP."""

    host: str
    port: int
    udp: asyncio.DatagramTransport
    tcp: asyncio.base_events.Server
    protocols: list[Any] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    async def aclose(self) -> None:
        self.udp.close()
        self.tcp.close()
        await self.tcp.wait_closed()

    async def __aenter__(self) -> LoopbackServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def check_loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--dns address must be a loopback IP (127.0.0.0/8 or ::1), got {host!r}") from None
    if not ip.is_loopback:
        raise UsageError(f"refusing to bind DNS on non-loopback address {host}: knet only listens on loopback")
    return str(ip)


async def serve_loopback(view: DnsView | Answerer, host: str = "127.0.0.1", port: int = 0, *,
                         idle_timeout: float = 10.0) -> LoopbackServer:
    """Serve DNS on UDP and TCP at host:port (loopback only). Port 0 picks one free port for both."""
    host = check_loopback(host)
    loop = asyncio.get_running_loop()
    last: Exception | None = None
    for _ in range(20):
        udp, _proto = await loop.create_datagram_endpoint(lambda: DnsDatagramProtocol(view),
                                                          local_addr=(host, port))
        bound = udp.get_extra_info("sockname")[1]
        try:
            tcp = await loop.create_server(lambda: DnsStreamProtocol(view, idle_timeout), host, bound)
        except OSError as e:
            udp.close()
            last = e
            if port:
                break
            continue
        return LoopbackServer(host=host, port=bound, udp=udp, tcp=tcp)
    raise UsageError(f"cannot bind DNS on {host}:{port}: {last}")
