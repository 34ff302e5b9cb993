"""The ingress proxy adapter: HTTP/1.1 asyncio Protocols (``knet.ingress.http1``) both sides.

Invariants:
- every decision comes from ``knet.ingress.decision.Router``; this module only moves bytes;
- upstream connections come from the caller's ``connect(protocol_factory, host, port)``
  (``loop.create_connection``'s shape: knet's virtual fabric ``Namespace.create_connection``,
  or real loopback sockets); idle keep-alive connections are pooled per address;
- request and response bodies are streamed with backpressure; a bad client or upstream ends
  that exchange (400/408/413/414/431/502/504), never the server;
- real listeners bind loopback addresses only (UsageError otherwise);
- timeouts are deadlines on the connections, checked by one sweeper per proxy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from typing import Any
from collections.abc import Awaitable, Callable, Iterable

from knet.errors import KnetError, UsageError
from knet.ingress.decision import Request, Router, upstream_headers
from knet.ingress.http1 import (
    ClientConnection, RequestHead, ResponseHead, UpstreamConnection, http_date,
    render_upstream_head,
)
from knet.ingress.routecache import RouteCache
from knet.ingress.routes import RoutingTable
from knet.ingress.tls import SNIContexts, certificates
from knet.ingress.tlsport import TLSPort
from knet.model import Secret

log = logging.getLogger("knet.ingress")

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
OpenUpstream = Callable[[str, int], Awaitable[Streams]]
Connect = Callable[..., Awaitable[tuple[Any, Any]]]  # (protocol_factory, host, port)

CHUNK = 64 * 1024
MAX_IDLE_PER_UPSTREAM = 320  # ingress-nginx upstream-keepalive-connections
UPSTREAM_KEEPALIVE_TIMEOUT = 60.0  # ingress-nginx upstream-keepalive-timeout
MAX_TRIES = 3  # proxy-next-upstream-tries


def check_loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError as e:
        raise UsageError(f"listen address must be a loopback IP, got {host!r}") from e
    if not ip.is_loopback:
        raise UsageError(f"refusing to bind {host}: knet listens on loopback addresses only")
    return str(ip)


async def open_loopback(host: str, port: int) -> Streams:
    """Streams opener over real TCP, loopback destinations only (kept for callers of the
    stream interface; the proxy itself uses ``connect_loopback``)."""
    check_loopback(host)
    return await asyncio.open_connection(host, port, limit=CHUNK)


async def connect_loopback(protocol_factory: Callable[[], asyncio.Protocol], host: str,
                           port: int) -> tuple[Any, Any]:
    """Default upstream connector: real TCP, loopback destinations only."""
    host = check_loopback(host)
    return await asyncio.get_running_loop().create_connection(protocol_factory, host, port)


def streams_connector(open_upstream: OpenUpstream) -> Connect:
    """Adapt a stream opener (``(host, port) -> (reader, writer)``) to a connector: the
    protocol takes over the stream's transport."""
    async def connect(protocol_factory: Callable[[], asyncio.Protocol], host: str,
                      port: int) -> tuple[Any, Any]:
        reader, writer = await open_upstream(host, port)
        transport = writer.transport
        proto = protocol_factory()
        proto.owner = writer  # type: ignore[attr-defined]  # StreamWriter.__del__ closes
        transport.set_protocol(proto)
        proto.connection_made(transport)
        pending = bytes(getattr(reader, "_buffer", b""))
        if pending:
            proto.data_received(pending)
        if reader.at_eof():
            transport.close()
        return transport, proto
    return connect


class IngressProxy:
    """``async with IngressProxy(router, connect=…) as p: await p.listen(...)``."""

    def __init__(self, router: Router, open_upstream: OpenUpstream | None = None, *,
                 connect: Connect | None = None,
                 secrets: Iterable[Secret] = (), clock: Callable[[], float] = time.time,
                 client_header_timeout: float = 60.0, client_body_timeout: float = 60.0,
                 keepalive_timeout: float = 75.0, send_timeout: float = 60.0,
                 keepalive_requests: int = 1000, max_line_size: int = 8190,
                 max_field_size: int = 8190, max_headers: int = 100) -> None:
        self.router = router
        self.routes = RouteCache(router)
        if connect is None:
            connect = streams_connector(open_upstream) if open_upstream is not None else connect_loopback
        self.connect = connect
        self.clock = clock
        self.client_header_timeout = client_header_timeout
        self.client_body_timeout = client_body_timeout
        self.keepalive_timeout = keepalive_timeout  # ingress-nginx keep-alive: 75
        self.send_timeout = send_timeout
        self.keepalive_requests = keepalive_requests  # ingress-nginx keep-alive-requests: 1000
        self.max_line_size = max_line_size
        self.max_field_size = max_field_size
        self.max_headers = max_headers
        self.head_limit = max_line_size + max_headers * max_field_size // 4 + 4
        self.max_tries = MAX_TRIES
        # called once per answered request: (client connection, status, decision); the
        # runtime counts ingress-nginx's request metrics with it (None: nothing to call)
        self.observe: Callable[[Any, int, Any], None] | None = None
        self._conns: set[Any] = set()
        self._heads: dict[bytes, RequestHead] = {}  # request head bytes → parsed head
        self._responses: dict[bytes, ResponseHead] = {}  # upstream head bytes → parsed head
        self._idle: dict[str, list[UpstreamConnection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._tick = max(0.01, min(0.5, client_header_timeout / 4, client_body_timeout / 4,
                                   keepalive_timeout / 4, send_timeout / 4))
        self.sni = SNIContexts(certificates(router.table, secrets))

    @classmethod
    def from_table(cls, table: RoutingTable, open_upstream: OpenUpstream | None = None, *,
                   seed: int = 0, **kw: Any) -> IngressProxy:
        return cls(Router(table, random.Random(seed)), open_upstream, **kw)

    def update(self, table: RoutingTable, secrets: Iterable[Secret] | None = None) -> None:
        self.router.update(table)
        if secrets is not None:
            self.sni.update(certificates(table, secrets))

    def upstream_head(self, head: RequestHead, req: Request, d: Any) -> bytes:
        """The request head sent upstream for a routed request (ingress-nginx's headers)."""
        return render_upstream_head(head, d, upstream_headers(req, d, self.router.table.config))

    # -- listeners -----------------------------------------------------------------------
    def protocol_factory(self, scheme: str = "http") -> Callable[[], asyncio.Protocol]:
        """Per-connection protocol factory (for ``loop.create_server`` or the fabric's)."""
        if scheme not in ("http", "https"):
            raise UsageError(f"scheme must be http or https, got {scheme!r}")
        self._start()

        def factory() -> asyncio.Protocol:
            return ClientConnection(self, scheme)
        return factory

    def tls_protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        """Protocol factory of the TLS port (no ``ssl=`` on the server: ``TLSPort`` starts TLS,
        bounds the handshake by client_header_timeout, answers plain HTTP with nginx's 400)."""
        app = self.protocol_factory("https")

        def factory() -> asyncio.Protocol:
            return TLSPort(app, self.sni.context, self.client_header_timeout, http_date)
        return factory

    async def listen(self, host: str = "127.0.0.1", port: int = 0, *,
                     tls: bool = False) -> tuple[str, int]:
        """Serve on a real loopback socket; returns the bound (host, port)."""
        host = check_loopback(host)
        srv = await asyncio.get_running_loop().create_server(
            self.tls_protocol_factory() if tls else self.protocol_factory("http"), host, port)
        self._listeners.append(srv)
        sock = srv.sockets[0].getsockname()
        return sock[0], sock[1]

    async def aclose(self) -> None:
        for srv in self._listeners:
            srv.close()
        for srv in self._listeners:
            await srv.wait_closed()
        self._listeners.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._conns):
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let connection_lost callbacks run

    async def __aenter__(self) -> IngressProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- time ----------------------------------------------------------------------------
    def _start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(self._tick, self._sweep)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for conn in [c for c in self._conns if c.deadline and c.deadline <= now]:
            try:
                conn.expire(now)
            except Exception:  # one broken connection never stops the sweeper
                log.exception("ingress: timeout handling failed")
        self._sweeper = self._loop.call_later(self._tick, self._sweep)

    # -- upstream pool -------------------------------------------------------------------
    def _idle_conn(self, address: str) -> UpstreamConnection | None:
        idle = self._idle.get(address)
        while idle:
            up = idle.pop()
            if not up.transport.is_closing():
                up.reused = True
                return up
        return None

    def _release(self, up: UpstreamConnection) -> None:
        idle = self._idle.get(up.address)
        if idle is None:
            idle = self._idle[up.address] = []
        if len(idle) < MAX_IDLE_PER_UPSTREAM and not up.transport.is_closing():
            up.deadline = self._now() + UPSTREAM_KEEPALIVE_TIMEOUT
            idle.append(up)
        else:
            up.abort()

    def _forget(self, up: UpstreamConnection) -> None:
        idle = self._idle.get(up.address)
        if idle and up in idle:
            idle.remove(up)

    def _connect(self, client: ClientConnection, address: str) -> None:
        task = asyncio.ensure_future(self._open(client, address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, client: ClientConnection, address: str) -> None:
        host, _, port_s = address.rpartition(":")
        host = host.strip("[]")
        d = client.decision
        timeout = d.connect_timeout if d is not None else 5.0
        try:
            async with asyncio.timeout(timeout):
                _, up = await self.connect(lambda: UpstreamConnection(self, address), host,
                                           int(port_s))
        except TimeoutError:
            log.debug("ingress: connect to %s timed out", address)
            client.connect_failed(504, retry=True, sent=False)
        except (OSError, KnetError, ValueError) as e:
            log.debug("ingress: connect to %s failed: %s", address, e)
            client.connect_failed(502, retry=True, sent=False)
        else:
            up.reused = False
            client._attach(up)


__all__ = ["IngressProxy", "OpenUpstream", "check_loopback", "connect_loopback",
           "open_loopback", "streams_connector"]
