"""Byte relays between real loopback sockets and virtual connections in the fabric.

Invariants:
- TCP: one real connection ↔ one virtual connection from the client's outside host. Bytes the
  real client sends before the virtual handshake completes are buffered, never lost. A FIN on
  either side becomes ``write_eof`` on the other (half-close); the pair is closed once both
  directions are done. A virtual connect that fails (REJECT → RST/ICMP, or SYN timeout after a
  DROP) resets the real connection (the client sees "connection reset"), as the accept had
  already happened on loopback.
- Back-pressure: when the real socket's write buffer is above its high-water mark, reading of
  the virtual side pauses. While the virtual connection is still being dialled (a SYN that is
  dropped retries for two minutes), the relay keeps at most ``PENDING_LIMIT`` bytes of the
  client's data and pauses reading the real socket past it, so a client cannot make the relay
  buffer without bound (issue 13.6); reading resumes once the bytes are handed on.
- UDP is bounded too: at most ``PENDING_DATAGRAMS`` datagrams wait for a flow's virtual socket,
  and the flow table holds at most ``MAX_UDP_FLOWS`` flows; past either, datagrams are dropped
  and counted (``stats["udp_dropped"]``), as conntrack drops new flows when its table is full.
- UDP: per real client address, one virtual UDP socket in the outside host (a NAT-like flow);
  flows idle for ``UDP_IDLE`` seconds are closed (conntrack's nf_conntrack_udp_timeout_stream
  is 120 s).
- The virtual source port is the real client's source port when it is free in the outside
  host, else an ephemeral one — so a capture lines up with the real client's socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

UDP_IDLE = 120.0
PENDING_LIMIT = 64 * 1024
PENDING_DATAGRAMS = 64
MAX_UDP_FLOWS = 4096

# (real client (host, port)) -> (fabric namespace, source address, dst ip, dst port) or None
Connect = Callable[[tuple[str, int]], Any]


class _VirtualSide(asyncio.Protocol):
    def __init__(self, real: RealTcpRelay) -> None:
        self.real = real

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        t = self.real.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def eof_received(self) -> bool:
        self.real.virtual_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.real.virtual_lost(exc)


class RealTcpRelay(asyncio.Protocol):
    """Protocol of a real accepted loopback connection; dials the fabric on accept."""

    def __init__(self, open_virtual: Callable[[tuple[str, int], Callable[[], asyncio.Protocol]],
                                              Awaitable[asyncio.Transport]],
                 stats: dict[str, int] | None = None) -> None:
        self._open = open_virtual
        self.transport: asyncio.Transport | None = None
        self.virtual: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._reading_paused = False
        self._pending_eof = False
        self._real_eof = False
        self._virtual_eof = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.stats = stats if stats is not None else {}

    # -- real side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("127.0.0.1", 0)
        self.stats["accepted"] = self.stats.get("accepted", 0) + 1
        self._task = asyncio.get_running_loop().create_task(self._dial((peer[0], peer[1])))

    async def _dial(self, peer: tuple[str, int]) -> None:
        try:
            vt = await self._open(peer, lambda: _VirtualSide(self))
        except asyncio.CancelledError:
            self._reset()
            raise
        except Exception:  # noqa: BLE001 - REJECT, timeout, no route: the client sees a reset
            self.stats["failed"] = self.stats.get("failed", 0) + 1
            self._reset()
            return
        if self._closed:
            vt.abort()
            return
        self.virtual = vt
        for chunk in self._pending:
            vt.write(chunk)
        self._pending.clear()
        self._pending_size = 0
        if self._pending_eof:
            vt.write_eof()
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    @property
    def pending_bytes(self) -> int:
        return self._pending_size

    def data_received(self, data: bytes) -> None:
        if self.virtual is None:
            self._pending.append(data)
            self._pending_size += len(data)
            if (self._pending_size > PENDING_LIMIT and not self._reading_paused
                    and self.transport is not None):
                self._reading_paused = True
                self.transport.pause_reading()  # the kernel's buffers push back on the client
        else:
            self.virtual.write(data)

    def eof_received(self) -> bool:
        self._real_eof = True
        if self.virtual is None:
            self._pending_eof = True
        else:
            try:
                self.virtual.write_eof()
            except (OSError, RuntimeError):
                pass
            self._maybe_done()
        return True

    def pause_writing(self) -> None:
        if self.virtual is not None:
            self.virtual.pause_reading()

    def resume_writing(self) -> None:
        if self.virtual is not None:
            self.virtual.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.transport = None
        if self.virtual is not None:
            if exc is not None:
                self.virtual.abort()
            else:
                self.virtual.close()
        elif self._task is not None and not self._task.done():
            self._task.cancel()

    # -- virtual side
    def virtual_eof(self) -> None:
        self._virtual_eof = True
        t = self.transport
        if t is not None and not t.is_closing() and t.can_write_eof():
            try:
                t.write_eof()
            except OSError:  # the real client is already gone
                t.abort()
                if self.virtual is not None:
                    self.virtual.abort()
                return
        self._maybe_done()

    def virtual_lost(self, exc: Exception | None) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if exc is not None or not self._virtual_eof:
            t.abort()  # a reset in the fabric is a reset on loopback
        else:
            t.close()

    def _maybe_done(self) -> None:
        if self._real_eof and self._virtual_eof:
            if self.virtual is not None:
                self.virtual.close()
            if self.transport is not None:
                self.transport.close()

    def _reset(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.abort()


class _VirtualUdp(asyncio.DatagramProtocol):
    def __init__(self, flow: _UdpFlow) -> None:
        self.flow = flow

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.flow.from_virtual(data)

    def error_received(self, exc: Exception) -> None:
        pass


class _UdpFlow:
    def __init__(self, relay: RealUdpRelay, client: tuple[str, int]) -> None:
        self.relay = relay
        self.client = client
        self.virtual: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []
        self.last = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def from_virtual(self, data: bytes) -> None:
        t = self.relay.transport
        self.last = asyncio.get_running_loop().time()
        if t is not None and not t.is_closing():
            t.sendto(data, self.client)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.virtual is not None:
            self.virtual.close()


class RealUdpRelay(asyncio.DatagramProtocol):
    """Protocol of a real loopback UDP socket; one virtual flow per client address."""

    def __init__(self, open_virtual: Callable[..., Any], idle: float = UDP_IDLE, *,
                 max_flows: int = MAX_UDP_FLOWS, stats: dict[str, int] | None = None) -> None:
        self._open = open_virtual
        self.idle = idle
        self.max_flows = max_flows
        self.stats = stats if stats is not None else {}
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple[str, int], _UdpFlow] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _drop(self) -> None:
        self.stats["udp_dropped"] = self.stats.get("udp_dropped", 0) + 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        client = (addr[0], addr[1])
        loop = asyncio.get_running_loop()
        flow = self.flows.get(client)
        if flow is None:
            if len(self.flows) >= self.max_flows:
                self._drop()  # table full: conntrack drops new flows the same way
                return
            flow = self.flows[client] = _UdpFlow(self, client)
            flow.pending.append(data)
            loop.create_task(self._start(flow))
        elif flow.virtual is None:
            if len(flow.pending) >= PENDING_DATAGRAMS:
                self._drop()
                return
            flow.pending.append(data)
        else:
            flow.virtual.sendto(data)
        flow.last = loop.time()

    async def _start(self, flow: _UdpFlow) -> None:
        try:
            vt = await self._open(flow.client, lambda: _VirtualUdp(flow))
        except Exception:  # noqa: BLE001 - no route: the datagrams are lost, as on a network
            self.flows.pop(flow.client, None)
            return
        if self.flows.get(flow.client) is not flow:
            vt.close()
            return
        flow.virtual = vt
        for d in flow.pending:
            vt.sendto(d)
        flow.pending.clear()
        self._arm(flow)

    def _arm(self, flow: _UdpFlow) -> None:
        loop = asyncio.get_running_loop()
        flow.timer = loop.call_at(flow.last + self.idle, self._expire, flow)

    def _expire(self, flow: _UdpFlow) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < flow.last + self.idle:
            self._arm(flow)
            return
        if self.flows.get(flow.client) is flow:
            del self.flows[flow.client]
        flow.close()

    def error_received(self, exc: Exception) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        for f in self.flows.values():
            f.close()
        self.flows.clear()
        self.transport = None
