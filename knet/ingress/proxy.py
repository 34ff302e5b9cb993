"""The ingress proxy adapter: aiohttp low-level server in front, raw HTTP/1.1 streams behind.

Invariants:
- every decision comes from ``knet.ingress.decision.Router``; this module only moves bytes;
- upstream connections come from the caller's ``open_upstream(host, port)`` (knet's virtual
  fabric, or real loopback sockets); idle keep-alive connections are pooled per address;
- request and response bodies are streamed in bounded chunks; a bad client or upstream ends
  that exchange (400/431/408/502/504), never the server;
- real listeners bind loopback addresses only (UsageError otherwise).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from typing import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

from knet.errors import UsageError
from knet.ingress.decision import Decision, Request, Router, upstream_headers
from knet.ingress.responses import SERVER, page
from knet.ingress.routes import RoutingTable
from knet.ingress.tls import SNIContexts, certificates
from knet.model import Secret

log = logging.getLogger("knet.ingress")

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
OpenUpstream = Callable[[str, int], Awaitable[Streams]]

CHUNK = 64 * 1024
MAX_IDLE_PER_UPSTREAM = 64  # ingress-nginx upstream-keepalive-connections is 320 per worker
MAX_TRIES = 3  # proxy-next-upstream-tries
INLINE_BODY = 256 * 1024  # responses up to this size are relayed in one write
_DROP_RESPONSE = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                            "server", "date", "x-pad", "proxy-connection", "trailer"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class UpstreamError(Exception):
    """Internal: the upstream failed (mapped to 502/504)."""

    def __init__(self, status: int, why: str, *, retry: bool = False) -> None:
        super().__init__(why)
        self.status = status
        self.retry = retry


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
    """Default upstream opener: real TCP, loopback destinations only."""
    check_loopback(host)
    return await asyncio.open_connection(host, port, limit=CHUNK)


def _local(d: Decision) -> web.Response:
    headers = CIMultiDict({"Server": SERVER})
    if d.status == 204:
        headers.update(d.response_headers)
        return web.Response(status=204, headers=headers)
    headers["Content-Type"] = "text/html"
    if d.location:
        headers["Location"] = d.location
    for k, v in d.response_headers:
        headers.add(k, v)
    return web.Response(status=d.status, body=page(d.status), headers=headers)


def _error(status: int) -> web.Response:
    return web.Response(status=status, body=page(status),
                        headers={"Server": SERVER, "Content-Type": "text/html"})


class _Handler(RequestHandler):
    """aiohttp's per-connection protocol with nginx-like error pages; oversized heads → 431."""

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        if isinstance(exc, LineTooLong) or (isinstance(exc, BadHttpMessage)
                                            and "Too many headers" in str(exc)):
            status = 431
        log.debug("ingress: bad request from %s: %s", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        resp = _error(status)
        resp.force_close()
        return resp


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class IngressProxy:
    """``async with IngressProxy(router, open_upstream) as p: await p.listen(...)``."""

    def __init__(self, router: Router, open_upstream: OpenUpstream = open_loopback, *,
                 secrets: Iterable[Secret] = (), clock: Callable[[], float] = time.time,
                 client_header_timeout: float = 60.0, client_body_timeout: float = 60.0,
                 keepalive_timeout: float = 75.0, max_line_size: int = 8190,
                 max_field_size: int = 8190, max_headers: int = 100) -> None:
        self.router = router
        self.open_upstream = open_upstream
        self.clock = clock
        self.client_header_timeout = client_header_timeout
        self.client_body_timeout = client_body_timeout
        self._idle: dict[tuple[str, int], list[Streams]] = {}
        self._listeners: list[asyncio.AbstractServer] = []
        self.sni = SNIContexts(certificates(router.table, secrets))
        limits = dict(max_line_size=max_line_size, max_field_size=max_field_size,
                      max_headers=max_headers, keepalive_timeout=keepalive_timeout,
                      access_log=None)
        self.servers = {
            scheme: _Server(self._handler(scheme), handler_cancellation=True, **limits)
            for scheme in ("http", "https")}

    @classmethod
    def from_table(cls, table: RoutingTable, open_upstream: OpenUpstream = open_loopback, *,
                   seed: int = 0, **kw: object) -> IngressProxy:
        return cls(Router(table, random.Random(seed)), open_upstream, **kw)  # type: ignore[arg-type]

    def update(self, table: RoutingTable, secrets: Iterable[Secret] | None = None) -> None:
        self.router.update(table)
        if secrets is not None:
            self.sni.update(certificates(table, secrets))

    # -- listeners -----------------------------------------------------------------------
    def protocol_factory(self, scheme: str = "http") -> Callable[[], asyncio.Protocol]:
        """aiohttp protocol factory (for the fabric's ``create_server``), with a header timeout."""
        server = self.servers[scheme]
        loop = asyncio.get_running_loop()

        def factory() -> asyncio.Protocol:
            proto = server()
            loop.call_later(self.client_header_timeout, self._watch, proto, -1)
            return proto
        return factory

    def _watch(self, proto: object, seen: int) -> None:
        # client_header_timeout: a connection must make progress (a new request) per period.
        transport = getattr(proto, "transport", None)
        if transport is None or transport.is_closing():
            return
        count = getattr(proto, "_request_count", 0)
        if getattr(proto, "_request_in_progress", False) or count != seen:
            asyncio.get_running_loop().call_later(self.client_header_timeout, self._watch, proto, count)
            return
        transport.close()

    async def listen(self, host: str = "127.0.0.1", port: int = 0, *,
                     tls: bool = False) -> tuple[str, int]:
        """Serve on a real loopback socket; returns the bound (host, port)."""
        host = check_loopback(host)
        ctx = self.sni.context if tls else None
        srv = await asyncio.get_running_loop().create_server(
            self.protocol_factory("https" if tls else "http"), host, port, ssl=ctx)
        self._listeners.append(srv)
        sock = srv.sockets[0].getsockname()
        return sock[0], sock[1]

    async def aclose(self) -> None:
        for srv in self._listeners:
            srv.close()
        for srv in self._listeners:
            await srv.wait_closed()
        self._listeners.clear()
        for s in self.servers.values():
            await s.shutdown(1.0)
        for conns in self._idle.values():
            for _, w in conns:
                w.close()
        self._idle.clear()

    async def __aenter__(self) -> IngressProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests ------------------------------------------------------------------------
    def _handler(self, scheme: str) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await self._handle(request, scheme)
            except (asyncio.CancelledError, ConnectionResetError):
                raise
            except Exception:  # the server never dies from one request
                log.exception("ingress: internal error")
                return _error(500)
        return handle

    async def _handle(self, request: web.BaseRequest, scheme: str) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client_ip = peer[0] if peer else "127.0.0.1"
        headers = request.headers
        req = Request(request.method, headers.get("Host", ""), request.raw_path, headers, scheme,
                      client_ip, None)
        d = self.router.route(req, now=self.clock())
        if d.status != 200:
            return _local(d)
        hdrs = upstream_headers(req, d, self.router.table.config)
        tries = 0
        addrs = d.addresses
        address = d.upstream or ""
        while True:
            tries += 1
            try:
                return await self._forward(request, d, hdrs, address)
            except UpstreamError as e:
                if e.retry and tries < min(MAX_TRIES, len(addrs)) + (1 if len(addrs) == 1 else 0):
                    if len(addrs) > 1:
                        address = _next_address(addrs, address)
                    continue
                return _error(e.status)

    async def _acquire(self, host: str, port: int, timeout: float) -> tuple[Streams, bool]:
        idle = self._idle.get((host, port))
        while idle:
            r, w = idle.pop()
            if not w.is_closing() and not r.at_eof():
                return (r, w), True
            w.close()
        try:
            async with asyncio.timeout(timeout):
                return await self.open_upstream(host, port), False
        except TimeoutError as e:
            raise UpstreamError(504, "upstream connect timed out", retry=True) from e
        except (OSError, UsageError) as e:
            raise UpstreamError(502, f"upstream connect failed: {e}", retry=True) from e

    def _release(self, key: tuple[str, int], conn: Streams) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < MAX_IDLE_PER_UPSTREAM:
            idle.append(conn)
        else:
            conn[1].close()

    async def _forward(self, request: web.BaseRequest, d: Decision,
                       hdrs: list[tuple[str, str]], address: str) -> web.StreamResponse:
        host, _, port_s = address.rpartition(":")
        host = host.strip("[]")
        key = (host, int(port_s))
        (reader, writer), reused = await self._acquire(host, key[1], d.connect_timeout)
        ok = False
        try:
            has_body = request.body_exists
            clen = request.content_length
            head = [f"{request.method} {d.upstream_path} HTTP/1.1\r\n"]
            head += [f"{k}: {v}\r\n" for k, v in hdrs]
            if has_body:
                head.append(f"Content-Length: {clen}\r\n" if clen is not None
                            else "Transfer-Encoding: chunked\r\n")
            head.append("\r\n")
            writer.write("".join(head).encode("latin-1", "replace"))
            if has_body:
                sent = 0
                while True:
                    try:
                        async with asyncio.timeout(self.client_body_timeout):
                            chunk = await request.content.readany()
                    except TimeoutError:
                        return _error(408)
                    if not chunk:
                        break
                    sent += len(chunk)
                    if d.body_limit is not None and sent > d.body_limit:
                        return _error(413)
                    writer.write(chunk if clen is not None else
                                 b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    await writer.drain()
                if clen is None:
                    writer.write(b"0\r\n\r\n")
            try:
                async with asyncio.timeout(d.read_timeout):
                    await writer.drain()
                    version, status, reason, rh = await _read_head(reader)
            except TimeoutError as e:
                raise UpstreamError(504, "upstream timed out") from e
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                # a reused keep-alive connection the upstream closed meanwhile: retry safely
                retry = reused and (not has_body) and request.method in _IDEMPOTENT
                raise UpstreamError(502, f"upstream closed: {e}", retry=retry) from e
            except (asyncio.LimitOverrunError, ValueError) as e:
                raise UpstreamError(502, f"bad upstream response: {e}") from e

            out = CIMultiDict()
            out["Server"] = SERVER
            for k, v in rh.items():
                if k.lower() not in _DROP_RESPONSE:
                    out.add(k, v)
            for k, v in d.response_headers:
                out.add(k, v)
            conn_hdr = rh.get("Connection", "").lower()
            keep = version == "HTTP/1.1" and "close" not in conn_hdr
            te = rh.get("Transfer-Encoding", "").lower()
            rclen = rh.get("Content-Length")
            no_body = request.method == "HEAD" or status in (204, 304) or 100 <= status < 200
            try:
                async with asyncio.timeout(d.read_timeout):
                    if no_body:
                        resp = web.StreamResponse(status=status, reason=reason, headers=out)
                        if rclen is not None and rclen.isdigit():
                            resp.content_length = int(rclen)
                        await resp.prepare(request)
                        await resp.write_eof()
                        ok = keep
                        return resp
                    if "chunked" not in te and rclen is not None and rclen.isdigit() and int(rclen) <= INLINE_BODY:
                        body = await reader.readexactly(int(rclen)) if rclen != "0" else b""
                        ok = keep
                        return web.Response(status=status, reason=reason, body=body, headers=out)
            except TimeoutError as e:
                raise UpstreamError(504, "upstream timed out") from e
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                raise UpstreamError(502, f"upstream closed: {e}") from e
            resp = web.StreamResponse(status=status, reason=reason, headers=out)
            if "chunked" not in te and rclen is not None and rclen.isdigit():
                resp.content_length = int(rclen)
            await resp.prepare(request)
            try:
                if "chunked" in te:
                    await _relay_chunked(reader, resp, d.read_timeout)
                    ok = keep
                elif rclen is not None and rclen.isdigit():
                    left = int(rclen)
                    while left:
                        async with asyncio.timeout(d.read_timeout):
                            data = await reader.read(min(left, CHUNK))
                        if not data:
                            raise ConnectionError("upstream closed mid-body")
                        left -= len(data)
                        await resp.write(data)
                    ok = keep
                else:
                    while True:
                        async with asyncio.timeout(d.read_timeout):
                            data = await reader.read(CHUNK)
                        if not data:
                            break
                        await resp.write(data)
                await resp.write_eof()
            except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                # headers are already sent: nginx closes the client connection as well
                request.transport and request.transport.close()  # type: ignore[func-returns-value]
            return resp
        finally:
            if ok:
                self._release(key, (reader, writer))
            else:
                writer.close()


def _next_address(addrs: tuple[tuple[str, int], ...], current: str) -> str:
    fmt = [f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in addrs]
    i = fmt.index(current) if current in fmt else -1
    return fmt[(i + 1) % len(fmt)]


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, int, str, CIMultiDict[str]]:
    while True:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        status = int(code)
        if not version.startswith("HTTP/1.") or not 100 <= status <= 999:
            raise ValueError(lines[0])
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if not sep or not k or k != k.strip():
                raise ValueError(f"bad header line {line!r}")
            headers.add(k, v.strip())
        if 100 <= status < 200 and status != 101:
            continue  # interim responses are not relayed
        return version, status, reason, headers


async def _relay_chunked(reader: asyncio.StreamReader, resp: web.StreamResponse,
                         timeout: float) -> None:
    while True:
        async with asyncio.timeout(timeout):
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers are dropped
                return
            data = await reader.readexactly(size)
            await reader.readexactly(2)
        await resp.write(data)


__all__ = ["IngressProxy", "OpenUpstream", "check_loopback", "open_loopback"]
