"""DNS on loopback for ``knet up --dns``: a minimal UDP path plus knet.dns's TCP protocol.

Invariants:
- Every reply is ``knet.dns.answer(view, query, client)``: this module only moves bytes.
- UDP bypasses asyncio's datagram transport: the socket is non-blocking, registered with
  ``loop.add_reader``, and each wake-up drains up to ``BATCH`` datagrams (recvfrom → answer →
  sendto) before returning to the loop. Under load that is one selector round per batch instead
  of one per query. A reply that would block is dropped (UDP; the client retries), a query that
  makes ``answer`` fail is dropped: the server never dies of one packet.
- TCP (RFC 7766 framing, pipelining, idle timeout) is ``knet.dns.server.DnsStreamProtocol`` on
  the same port number.
- Binds loopback only.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from knet.dns.answer import answer
from knet.dns.server import DnsStreamProtocol
from knet.errors import UsageError
from knet.expose.plan import check_loopback

BATCH = 256
MAX_UDP = 65535


class LoopbackDns:
    """UDP + TCP DNS server over a live ``DnsView`` on one loopback address and port."""

    def __init__(self, view: Any) -> None:
        self.view = view
        self.sock: socket.socket | None = None
        self.tcp: asyncio.base_events.Server | None = None
        self.host = ""
        self.port = 0
        self.served = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, host: str, port: int) -> int:
        host = check_loopback(host, "--dns")
        loop = asyncio.get_running_loop()
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        last: OSError | None = None
        for _ in range(20):
            sock = socket.socket(fam, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError as e:
                sock.close()
                from knet.expose.control import in_use

                raise UsageError(in_use("--dns", host, port, e)) from None
            bound = sock.getsockname()[1]
            try:
                tcp = await loop.create_server(lambda: DnsStreamProtocol(self.view), host, bound,
                                               reuse_address=True)
            except OSError as e:
                sock.close()
                last = e
                if port:
                    break
                continue
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            except OSError:
                pass
            self.sock, self.tcp, self.host, self.port = sock, tcp, host, bound
            self._loop = loop
            loop.add_reader(sock.fileno(), self._readable)
            return bound
        raise UsageError(f"--dns: cannot listen on {host}:{port}/tcp: "
                         f"{last.strerror if last else 'no free port'}")

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        recv, send, view = sock.recvfrom, sock.sendto, self.view
        n = 0
        for n in range(BATCH):  # noqa: B007 - n is read after the loop
            try:
                data, addr = recv(MAX_UDP)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # e.g. ICMP port unreachable reported on the socket
            try:
                reply = answer(view, data, addr)
            except Exception:  # noqa: BLE001 - answer() never raises; belt and braces
                continue
            if reply is not None:
                try:
                    send(reply, addr)
                except OSError:
                    pass  # would block / client gone: UDP drops it
        self.served += n

    async def aclose(self) -> None:
        if self.sock is not None and self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.tcp is not None:
            self.tcp.close()
            await self.tcp.wait_closed()
            self.tcp = None
