"""Socket-shaped views of fabric endpoints, for ``get_extra_info('socket')`` and ``server.sockets``.

Invariants: a ``FabricSocket`` never owns a file descriptor (``fileno() == -1``); options are
accepted and ignored (``TCP_NODELAY`` is meaningless when segments are delivered at once), so
libraries that tune sockets (aiohttp's ``tcp_nodelay``) work unchanged.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address

IPAddress = IPv4Address | IPv6Address


def addr_key(ip: IPAddress) -> int | IPAddress:
    """A cheap dict key for an address on the hot path.

    ``IPv4Address.__hash__`` goes through ``hex()`` (~0.6 µs); the integer behind it hashes in
    C. IPv6 addresses stay objects, so v4 and v6 keys never collide. (``_ip``/``_version`` are
    the attributes ipaddress has stored since Python 3.3.)
    """
    return ip._ip if ip._version == 4 else ip  # type: ignore[union-attr]


def sockaddr(ip: IPAddress | None, port: int, family: int = socket.AF_INET) -> tuple:
    """The address tuple asyncio/socket use: ``(host, port)`` or ``(host, port, 0, 0)`` for v6."""
    if ip is None:
        return ("::", port, 0, 0) if family == socket.AF_INET6 else ("0.0.0.0", port)
    if ip.version == 6:
        return (str(ip), port, 0, 0)
    return (str(ip), port)


class FabricSocket:
    """Read-only stand-in for ``socket.socket`` describing a fabric endpoint."""

    __slots__ = ("family", "type", "proto", "_sockname", "_peername", "_options", "netns")

    def __init__(self, netns: str, kind: int, sockname: tuple, peername: tuple | None,
                 family: int) -> None:
        self.netns = netns
        self.family = family
        self.type = kind
        self.proto = socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP
        self._sockname = sockname
        self._peername = peername
        self._options: dict[tuple[int, int], object] = {}

    def getsockname(self) -> tuple:
        return self._sockname

    def getpeername(self) -> tuple:
        if self._peername is None:
            raise OSError(107, "Transport endpoint is not connected")
        return self._peername

    def setsockopt(self, level: int, option: int, value: object, *_: object) -> None:
        self._options[(level, option)] = value

    def getsockopt(self, level: int, option: int, *_: object) -> object:
        return self._options.get((level, option), 0)

    def fileno(self) -> int:
        return -1

    def setblocking(self, flag: bool) -> None:
        pass

    def __repr__(self) -> str:
        kind = "tcp" if self.type == socket.SOCK_STREAM else "udp"
        peer = f" → {self._peername}" if self._peername else ""
        return f"<FabricSocket {self.netns} {kind} {self._sockname}{peer}>"
