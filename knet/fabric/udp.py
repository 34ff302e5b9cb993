"""UDP over the fabric: one ``FabricDatagramTransport`` per bound socket.

Invariants:
- One ``sendto`` is one ``Packet`` (proto UDP); delivery is best effort (DROP loses it silently).
- A datagram to a port with no socket, or a REJECT on the path, produces ICMP port unreachable;
  as on Linux only a *connected* socket sees it, as ``error_received(ConnectionRefusedError)``
  (asyncio's report of ECONNREFUSED from the next recv); unconnected sockets ignore it.
- A connected socket only receives datagrams from its peer (Linux udp4_lib_lookup scoring).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING, Any

from knet.fabric.datapath import RejectWith
from knet.fabric.tcp import ICMP_ERRNO
from knet.fabric.transport import FabricSocket, sockaddr
from knet.netfilter.packet import Packet, Proto

if TYPE_CHECKING:
    from knet.fabric.network import IPAddress, Namespace

UDP = Proto.UDP


class FabricDatagramTransport(asyncio.DatagramTransport):
    __slots__ = ("_ns", "_loop", "_lip", "_lport", "_remote", "_protocol", "_closing",
                 "_family", "_socket")

    def __init__(self, ns: Namespace, lip: IPAddress | None, lport: int,
                 remote: tuple[IPAddress, int] | None, family: int) -> None:
        super().__init__()
        self._ns = ns
        self._loop = ns.loop
        self._lip = lip
        self._lport = lport
        self._remote = remote
        self._family = family
        self._protocol: asyncio.DatagramProtocol | None = None
        self._closing = False
        self._socket: FabricSocket | None = None

    @property
    def key(self) -> tuple[IPAddress | None, int]:
        return (self._lip, self._lport)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return sockaddr(self._lip, self._lport, self._family)
        if name == "peername":
            return sockaddr(*self._remote) if self._remote else default
        if name == "socket":
            if self._socket is None:
                self._socket = FabricSocket(
                    self._ns.name, socket.SOCK_DGRAM, sockaddr(self._lip, self._lport, self._family),
                    sockaddr(*self._remote) if self._remote else None, self._family)
            return self._socket
        if name == "netns":
            return self._ns.name
        return default

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[return-value]

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def is_closing(self) -> bool:
        return self._closing

    def get_write_buffer_size(self) -> int:
        return 0

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        if self._closing:
            return
        if self._remote is not None:
            if addr is not None and self._ns.parse_addr(addr) != self._remote:
                raise ValueError(f"Invalid address: must be None or {sockaddr(*self._remote)}")
            dst, dport = self._remote
        else:
            if addr is None:
                raise ValueError("Invalid address: must be a (host, port) tuple")
            dst, dport = self._ns.parse_addr(addr)
        src = self._lip if self._lip is not None else self._ns.source_for(dst)
        self._ns.send(Packet(src, dst, UDP, self._lport, dport, "", 0, 0, bytes(data)))

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._ns._udp_forget(self)
        self._loop.call_soon(self._connection_lost)

    def abort(self) -> None:
        self.close()

    def _connection_lost(self) -> None:
        if self._protocol is not None:
            self._protocol.connection_lost(None)

    def _datagram(self, pkt: Packet) -> None:
        if self._closing or self._protocol is None:
            return
        if self._remote is not None and (pkt.src, pkt.sport) != self._remote:
            return
        try:
            self._protocol.datagram_received(pkt.payload, sockaddr(pkt.src, pkt.sport))
        except Exception as exc:
            self._loop.call_exception_handler({
                "message": "Fatal error: protocol.datagram_received() call failed.",
                "exception": exc, "transport": self, "protocol": self._protocol})
            self.close()

    def _icmp(self, kind: RejectWith) -> None:
        if self._closing or self._protocol is None or self._remote is None:
            return
        code, cls = ICMP_ERRNO.get(kind, (errno.ECONNREFUSED, ConnectionRefusedError))
        self._protocol.error_received(cls(code, "Connection refused" if
                                          code == errno.ECONNREFUSED else "No route to host"))

    def __repr__(self) -> str:
        peer = f" → {sockaddr(*self._remote)}" if self._remote else ""
        return f"<FabricDatagramTransport {self._ns.name} {sockaddr(self._lip, self._lport)}{peer}>"
