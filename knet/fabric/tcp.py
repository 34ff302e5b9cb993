"""TCP over the fabric: a connection is both the state machine and the asyncio Transport.

Invariants:
- Every byte crosses the fabric as a ``Packet``: SYN / SYN-ACK / ACK, data (``PA``), FIN, RST,
  with RFC 793 sequence numbers (mod 2**32): SYN and FIN consume one, data its length; every
  segment after the SYN carries ``ack = rcv_nxt``. A capture of a connection is a valid stream.
- One ``write`` is one segment (no MSS splitting). Segments of a connection are delivered in
  order. Loss is known to the sender when the fabric drops its segment (the fabric is the
  wire); the sender then retransmits the same segment after its RTO and holds later segments
  behind it (go-back-N), so the receiver never sees a gap and pcap shows the retransmissions.
- Timers follow Linux defaults (net.ipv4.*): SYN retransmits after 1, 2, 4 … s with
  tcp_syn_retries=6 (connect fails with ETIMEDOUT after 127 s); data RTO starts at
  TCP_RTO_MIN=200 ms, doubles, caps at TCP_RTO_MAX=120 s, gives up after tcp_retries2=15;
  tcp_fin_timeout=60 s for orphaned FIN-WAIT connections.
- Errors surface as asyncio's do: RST or ICMP port-unreachable during connect →
  ``ConnectionRefusedError``; RST later → ``connection_lost(ConnectionResetError)``.
- Protocol callbacks run from loop callbacks (never inside the peer's ``write``); an exception
  in a protocol callback aborts that connection and goes to the loop's exception handler, as
  asyncio's selector transports do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import socket
from collections import deque
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from knet.codegen import define
from knet.fabric.datapath import RejectWith
from knet.fabric.transport import FabricSocket, addr_key, sockaddr
from knet.netfilter.packet import Packet, Proto

if TYPE_CHECKING:
    from knet.fabric.network import IPAddress, Namespace

M32 = 1 << 32
SYN_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # tcp_syn_retries=6
RTO_MIN = 0.2
RTO_MAX = 120.0
RETRIES2 = 15
FIN_TIMEOUT = 60.0
TCP = Proto.TCP

SYN_SENT = 1
SYN_RECV = 2
ESTABLISHED = 3
CLOSED = 4

_EOF = object()


def _tcp_packet_maker() -> Callable[..., Packet]:
    """``tcp_packet(src, dst, sport, dport, flags, seq, ack, payload)`` == ``Packet(src, dst,
    TCP, sport, dport, flags, seq, ack, payload)``, at half the cost: a frozen dataclass's
    ``__init__`` goes through ``object.__setattr__`` per field; this fills the slots directly
    (generated from Packet's fields, so fields added later get their defaults; Packet's own
    constructor is used if it ever needs a ``__post_init__`` or a default factory)."""
    fields = dataclasses.fields(Packet)
    given = ("src", "dst", "sport", "dport", "flags", "seq", "ack", "payload")
    if hasattr(Packet, "__post_init__") or any(
            f.name not in given and f.name != "proto" and f.default is dataclasses.MISSING
            for f in fields):
        def make(src: Any, dst: Any, sport: int, dport: int, flags: str, seq: int, ack: int,
                 payload: bytes = b"") -> Packet:
            return Packet(src, dst, TCP, sport, dport, flags, seq, ack, payload)
        return make
    g: dict[str, object] = {"P": Packet, "_new": object.__new__}
    body = ["o = _new(P)"]
    for f in fields:
        g["s_" + f.name] = Packet.__dict__[f.name].__set__
        if f.name in given:
            value = f.name
        else:
            g["d_" + f.name] = TCP if f.name == "proto" else f.default
            value = "d_" + f.name
        body.append(f"s_{f.name}(o, {value})")
    body.append("return o")
    return define("tcp_packet", ["src", "dst", "sport", "dport", "flags", "seq", "ack",
                                 "payload=b''"], body, g)


tcp_packet = _tcp_packet_maker()

ICMP_ERRNO = {
    RejectWith.ICMP_PORT_UNREACHABLE: (errno.ECONNREFUSED, ConnectionRefusedError),
    RejectWith.ICMP_HOST_UNREACHABLE: (errno.EHOSTUNREACH, OSError),
    RejectWith.ICMP_NET_UNREACHABLE: (errno.ENETUNREACH, OSError),
    RejectWith.ICMP_ADMIN_PROHIBITED: (errno.EHOSTUNREACH, OSError),
}


class FabricTransport(asyncio.Transport):
    """One end of a TCP connection in a namespace (``asyncio.Transport``)."""

    __slots__ = (
        "_ns", "_loop", "_key", "_lip", "_lport", "_rip", "_rport", "_protocol", "_state",
        "_iss", "_snd_nxt", "_rcv_nxt", "_closing", "_fin_sent", "_eof_rcvd", "_paused", "_rx",
        "_rtx", "_rto", "_retries", "_timer", "_waiter", "_lost", "_listener", "_ephemeral",
        "_socket", "_fin_acked", "_peername", "_sockname",
    )

    _start_tls_compatible = True

    def __init__(self, ns: Namespace, lip: IPAddress, lport: int, rip: IPAddress, rport: int,
                 iss: int, state: int) -> None:
        super().__init__()
        self._ns = ns
        self._loop = ns.loop
        self._key = (addr_key(lip), lport, addr_key(rip), rport)
        self._lip, self._lport, self._rip, self._rport = lip, lport, rip, rport
        self._protocol: asyncio.BaseProtocol | None = None
        self._state = state
        self._iss = iss
        self._snd_nxt = iss
        self._rcv_nxt = 0
        self._closing = False  # close()/abort() called locally: the protocol is done
        self._fin_sent = False
        self._fin_acked = False
        self._eof_rcvd = False
        self._paused = False
        self._rx: deque[object] | None = None  # data/_EOF waiting for the protocol
        self._rtx: deque[Packet] | None = None  # segments waiting for retransmission
        self._rto = RTO_MIN
        self._retries = 0
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._lost = False
        self._listener: Any = None
        self._ephemeral = False
        self._socket: FabricSocket | None = None
        self._peername: tuple | None = None  # sockaddr()s, made on first request
        self._sockname: tuple | None = None

    # ----------------------------------------------------------------- asyncio.Transport API

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            if self._peername is None:
                self._peername = sockaddr(self._rip, self._rport)
            return self._peername
        if name == "sockname":
            if self._sockname is None:
                self._sockname = sockaddr(self._lip, self._lport)
            return self._sockname
        if name == "socket":
            if self._socket is None:
                fam = socket.AF_INET6 if self._lip.version == 6 else socket.AF_INET
                self._socket = FabricSocket(self._ns.name, socket.SOCK_STREAM,
                                            sockaddr(self._lip, self._lport),
                                            sockaddr(self._rip, self._rport), fam)
            return self._socket
        if name == "netns":
            return self._ns.name
        return default

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[return-value]

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def is_closing(self) -> bool:
        return self._closing

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if self._rx:
                self._loop.call_soon(self._drain_rx)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._fin_sent:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data or self._closing or self._state == CLOSED:
            return
        payload = bytes(data)
        seq = self._snd_nxt
        self._snd_nxt = (seq + len(payload)) % M32
        pkt = tcp_packet(self._lip, self._rip, self._lport, self._rport, "PA", seq,
                         self._rcv_nxt, payload)
        if self._rtx:
            self._rtx.append(pkt)
        elif not self._ns.send(pkt):
            self._queue_rtx(pkt)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if self._fin_sent or self._closing:
            return
        self._send_fin()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._state == CLOSED:
            self._loop.call_soon(self._connection_lost, None)
            return
        if not self._fin_sent:
            self._send_fin()
        elif self._eof_rcvd and self._fin_acked:
            self._finish()
            self._loop.call_soon(self._connection_lost, None)
            return
        # FIN-WAIT / LAST-ACK: stay in the table until the peer's FIN (or its ACK of ours)
        # arrives, at most tcp_fin_timeout.
        if self._timer is None:
            self._timer = self._loop.call_at(self._loop.time() + FIN_TIMEOUT, self._finish)
        self._loop.call_soon(self._connection_lost, None)

    def abort(self) -> None:
        if self._state != CLOSED:
            self._emit("RA", self._snd_nxt)
            self._finish()
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._connection_lost, None)

    def _force_close(self, exc: BaseException | None) -> None:
        """What asyncio's SSLProtocol calls on a fatal TLS error or timeout (like
        ``_SelectorTransport._force_close``): reset the connection, report ``exc``."""
        if self._state != CLOSED:
            self._emit("RA", self._snd_nxt)
            self._finish()
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._connection_lost, exc)

    def __repr__(self) -> str:
        return (f"<FabricTransport {self._ns.name} {sockaddr(self._lip, self._lport)} → "
                f"{sockaddr(self._rip, self._rport)} state={self._state}>")

    # ----------------------------------------------------------------- segments out

    def _emit(self, flags: str, seq: int, payload: bytes = b"") -> bool:
        return self._ns.send(tcp_packet(self._lip, self._rip, self._lport, self._rport, flags,
                                        seq, self._rcv_nxt, payload))

    def _send_fin(self) -> None:
        self._fin_sent = True
        seq = self._snd_nxt
        self._snd_nxt = (seq + 1) % M32
        pkt = tcp_packet(self._lip, self._rip, self._lport, self._rport, "FA", seq,
                         self._rcv_nxt)
        if self._rtx:
            self._rtx.append(pkt)
        elif not self._ns.send(pkt):
            self._queue_rtx(pkt)

    def _queue_rtx(self, pkt: Packet) -> None:
        if self._rtx is None:
            self._rtx = deque()
        self._rtx.append(pkt)
        self._rto = RTO_MIN
        self._retries = 0
        self._arm(self._rto, self._retransmit)

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(self._loop.time() + delay, callback)

    def _retransmit(self) -> None:
        self._timer = None
        rtx = self._rtx
        if self._state == CLOSED or not rtx:
            return
        while rtx:
            head = rtx[0]
            # A retransmission carries the current ack (Linux refreshes it).
            if head.ack != self._rcv_nxt:
                head = head.replace(ack=self._rcv_nxt)
            if not self._ns.send(head):
                self._retries += 1
                if self._retries > RETRIES2:
                    self._fail(TimeoutError(errno.ETIMEDOUT, "Connection timed out"))
                    return
                self._rto = min(self._rto * 2, RTO_MAX)
                self._arm(self._rto, self._retransmit)
                return
            rtx.popleft()
            # Forward progress resets the backoff (tcp_ack clears icsk_backoff).
            self._rto = RTO_MIN
            self._retries = 0
        if self._closing and self._timer is None:
            self._timer = self._loop.call_at(self._loop.time() + FIN_TIMEOUT, self._finish)

    # ----------------------------------------------------------------- connect / accept

    def _send_syn(self, attempt: int) -> None:
        self._timer = None
        if self._state != SYN_SENT:
            return
        if attempt >= len(SYN_RETRY_DELAYS):
            self._fail(TimeoutError(errno.ETIMEDOUT,
                                    f"Connect call failed {sockaddr(self._rip, self._rport)}"))
            return
        self._ns.send(tcp_packet(self._lip, self._rip, self._lport, self._rport, "S",
                                 self._iss, 0))
        self._timer = self._loop.call_at(self._loop.time() + SYN_RETRY_DELAYS[attempt],
                                         self._send_syn, attempt + 1)

    def _fail(self, exc: Exception) -> None:
        """The connection is dead: report ``exc`` to whoever is waiting, drop all state."""
        waiter = self._waiter
        self._finish()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        elif not self._closing:
            self._closing = True
            self._loop.call_soon(self._connection_lost, exc)

    def _finish(self) -> None:
        """Forget the connection (CLOSED): timers off, out of the socket table."""
        if self._state == CLOSED:
            return
        self._state = CLOSED
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._rtx = None
        self._ns._tcp_forget(self)

    def _established(self) -> None:
        """SYN_RECV → ESTABLISHED on the server side: the listener's protocol takes over."""
        self._state = ESTABLISHED
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        listener = self._listener
        self._listener = None
        if listener is None or listener.closed:
            self._emit("RA", self._snd_nxt)
            self._finish()
            return
        try:
            protocol = listener.protocol_factory()
            self._protocol = protocol
            protocol.connection_made(self)
        except Exception as exc:  # a server never dies from one connection
            self._fatal(exc, "protocol factory or connection_made() failed")

    # ----------------------------------------------------------------- segments in

    def _segment(self, pkt: Packet) -> None:
        flags = pkt.flags
        if "R" in flags:
            self._on_rst()
            return
        state = self._state
        if state == SYN_SENT:
            if "S" in flags and "A" in flags and pkt.ack == (self._iss + 1) % M32:
                self._state = ESTABLISHED
                self._rcv_nxt = (pkt.seq + 1) % M32
                self._snd_nxt = pkt.ack
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                self._emit("A", self._snd_nxt)
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(None)
            return
        if state == SYN_RECV:
            if "S" in flags:  # our SYN-ACK was lost: the client retransmitted its SYN
                self._emit("SA", self._iss)
                return
            if "A" not in flags or pkt.ack != self._snd_nxt:
                return
            self._established()
            if self._state == CLOSED:
                return
        elif state == CLOSED:
            return
        payload = pkt.payload
        if self._fin_sent and pkt.ack == self._snd_nxt and not self._rtx:
            self._fin_acked = True
            if self._closing and self._eof_rcvd:
                self._finish()  # LAST-ACK → CLOSED: the peer acknowledged our FIN
                return
        if payload:
            if pkt.seq != self._rcv_nxt:
                return  # duplicate; the fabric never reorders
            if self._closing:
                # Data for a socket the application closed: Linux answers RST (tcp_rcv_state_process).
                self._emit("RA", self._snd_nxt)
                self._finish()
                return
            self._rcv_nxt = (self._rcv_nxt + len(payload)) % M32
            self._deliver(payload)
        if "F" in flags and not self._eof_rcvd:
            self._eof_rcvd = True
            self._rcv_nxt = (self._rcv_nxt + 1) % M32
            self._emit("A", self._snd_nxt)
            if self._closing:
                # FIN-WAIT-2 → (TIME-WAIT) → gone. In a simultaneous close our FIN is not
                # acked yet (CLOSING, RFC 9293 3.6): stay until the peer's ACK arrives, so
                # it finds the socket (Linux absorbs it in TIME-WAIT) instead of a RST.
                if not self._rtx and self._fin_acked:
                    self._finish()
            else:
                self._deliver(_EOF)

    def _on_rst(self) -> None:
        if self._state == SYN_SENT:
            self._fail(ConnectionRefusedError(
                errno.ECONNREFUSED, f"Connect call failed {sockaddr(self._rip, self._rport)}"))
        else:
            self._fail(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))

    def _icmp(self, kind: RejectWith) -> None:
        """An ICMP error about one of our segments (REJECT on the path)."""
        if self._state == SYN_SENT:
            code, cls = ICMP_ERRNO.get(kind, (errno.ECONNREFUSED, ConnectionRefusedError))
            self._fail(cls(code, f"Connect call failed {sockaddr(self._rip, self._rport)}"))
        # Established: a soft error (tcp_v4_err); retransmission continues and times out.

    # ----------------------------------------------------------------- to the protocol

    def _deliver(self, item: object) -> None:
        if self._paused or self._protocol is None or self._rx:
            if self._rx is None:
                self._rx = deque()
            self._rx.append(item)
            return
        self._dispatch(item)

    def _dispatch(self, item: object) -> None:
        protocol = self._protocol
        try:
            if item is _EOF:
                keep_open = protocol.eof_received()  # type: ignore[union-attr]
                if not keep_open:
                    self.close()
            elif isinstance(protocol, asyncio.BufferedProtocol):
                # e.g. asyncio's SSLProtocol: fill the buffers it hands out.
                view = memoryview(item)  # type: ignore[arg-type]
                while view:
                    buf = memoryview(protocol.get_buffer(len(view))).cast("B")
                    n = min(len(buf), len(view))
                    if n == 0:
                        raise RuntimeError("get_buffer() returned an empty buffer")
                    buf[:n] = view[:n]
                    protocol.buffer_updated(n)
                    view = view[n:]
            else:
                protocol.data_received(item)  # type: ignore[union-attr]
        except Exception as exc:
            self._fatal(exc, "protocol.data_received() call failed")

    def _drain_rx(self) -> None:
        rx = self._rx
        while rx and not self._paused and self._protocol is not None and not self._closing:
            self._dispatch(rx.popleft())

    def _attach(self, protocol: asyncio.BaseProtocol) -> None:
        """Client side: the protocol is made once the handshake completed."""
        self._protocol = protocol
        protocol.connection_made(self)
        if self._rx:
            self._loop.call_soon(self._drain_rx)

    def _fatal(self, exc: Exception, message: str) -> None:
        self._loop.call_exception_handler({
            "message": f"Fatal error: {message}", "exception": exc,
            "transport": self, "protocol": self._protocol})
        self.abort()

    def _connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        protocol = self._protocol
        if protocol is not None:
            protocol.connection_lost(exc)  # type: ignore[arg-type]  # as asyncio's transports: any BaseException


class Listener:
    """A listening TCP socket: ``(ip | None, port)`` in a namespace's table."""

    __slots__ = ("ns", "ip", "port", "protocol_factory", "closed", "family")

    def __init__(self, ns: Namespace, ip: IPAddress | None, port: int,
                 protocol_factory: Callable[[], asyncio.BaseProtocol], family: int) -> None:
        self.ns = ns
        self.ip = ip
        self.port = port
        self.protocol_factory = protocol_factory
        self.closed = False
        self.family = family

    def socket(self) -> FabricSocket:
        return FabricSocket(self.ns.name, socket.SOCK_STREAM,
                            sockaddr(self.ip, self.port, self.family), None, self.family)

    def __repr__(self) -> str:
        return f"<Listener {self.ns.name} {sockaddr(self.ip, self.port, self.family)}>"


class FabricServer(asyncio.AbstractServer):
    """What ``Namespace.create_server`` returns (mirrors ``asyncio.Server``)."""

    def __init__(self, ns: Namespace, listeners: list[Listener]) -> None:
        self._ns = ns
        self._listeners = listeners
        self._closed: asyncio.Future[None] | None = None

    @property
    def sockets(self) -> tuple[FabricSocket, ...]:
        return tuple(lst.socket() for lst in self._listeners if not lst.closed)

    def close(self) -> None:
        for lst in self._listeners:
            if not lst.closed:
                lst.closed = True
                self._ns._tcp_unlisten(lst)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._ns.loop

    def is_serving(self) -> bool:
        return any(not lst.closed for lst in self._listeners)

    async def start_serving(self) -> None:
        return None

    async def serve_forever(self) -> None:
        if self._closed is None:
            self._closed = self._ns.loop.create_future()
        try:
            await self._closed
        finally:
            self.close()

    async def wait_closed(self) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def close_clients(self) -> None:
        pass

    def abort_clients(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<FabricServer sockets={self.sockets!r}>"
