"""The Gateway data plane: knet's HTTP/1 proxy core driven by Gateway API decisions.

Invariants:
- every decision comes from ``knet.gateway.decision.decide`` over tables compiled by
  ``knet.gateway.routes`` (recompiled on every cluster change, swapped atomically: a request
  sees the old tables or the new ones, never a mix);
- bytes move through ``knet.ingress.http1`` (the sans-IO-framed HTTP/1 client/upstream
  connections, upstream pool, timeouts, TLS port), so HTTP framing, limits and error handling
  are the ingress proxy's; what differs is the decision and the upstream head, which is exactly
  the decision's ``request`` (method, path, Host, headers after filters);
- one ``GatewayProxy`` per listener port; HTTPS listeners terminate TLS with the listener's
  certificate chosen by SNI; TLS passthrough and TCP listeners relay bytes to the backend
  chosen by the route (SNI peeked from the ClientHello for TLSRoute).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from knet.gateway.decision import GatewayRequest, decide
from knet.gateway.routes import Listener, Tables, host_matches
from knet.ingress.decision import Decision, Request, Router
from knet.ingress.http1 import RequestHead
from knet.ingress.proxy import IngressProxy
from knet.ingress.routes import build_table
from knet.ingress.tls import KeyPair, SNIContexts

log = logging.getLogger("knet.gateway")


def _addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class _Routes:
    """The ``RouteCache`` interface the HTTP/1 core asks (``lookup`` / ``route``)."""

    def __init__(self, proxy: GatewayProxy) -> None:
        self.proxy = proxy

    def lookup(self, *args: Any) -> None:
        return None  # no memo: every request is decided (cheap: pre-sorted candidates)

    def route(self, req: Request, now: float | None = None) -> Decision:
        return self.proxy.decide(req)


class GatewayProxy(IngressProxy):
    """The proxy of one Gateway listener port (``scheme`` http or https)."""

    def __init__(self, gateway: str, port: int, tables: Tables, *, seed: int = 0,
                 connect: Any = None, clock: Callable[[], float] | None = None,
                 **kw: Any) -> None:
        if clock is not None:
            kw["clock"] = clock
        super().__init__(Router(build_table([], [], [], []), random.Random(seed)),
                         connect=connect, **kw)
        self.gateway = gateway
        self.port = port
        self.tables = tables
        self.rng = random.Random(f"{seed}/{gateway}/{port}")
        self.routes = _Routes(self)  # type: ignore[assignment]
        self.sni = SNIContexts(certificates(tables, gateway, port))
        self._alpn()
        self._requests: dict[int, dict[str, Any]] = {}
        # called with (request, decision, "HTTP/1.1" | "HTTP/2") for every decided request
        self.observer: Callable[[GatewayRequest, Any, str], None] | None = None

    def update_tables(self, tables: Tables) -> None:
        self.tables = tables
        self.sni.update(certificates(tables, self.gateway, self.port))
        self._alpn()

    def _alpn(self) -> None:
        """HTTPS listeners offer HTTP/2 by ALPN (GRPCRoute needs it), then HTTP/1.1."""
        for ctx in (self.sni.default, *self.sni._by_host.values()):
            ctx.set_alpn_protocols(["h2", "http/1.1"])

    def protocol_factory(self, scheme: str = "http") -> Callable[[], asyncio.Protocol]:
        """HTTP/2 (h2c prior knowledge, or ALPN h2 on TLS) or HTTP/1.1, by the first bytes."""
        from knet.gateway.h2 import Sniff

        http1 = super().protocol_factory(scheme)
        return lambda: Sniff(self, scheme, http1)

    def decide(self, req: Request) -> Decision:
        gr = GatewayRequest(req.method, req.path,
                            req.host, list(req.headers.items()), req.scheme, self.port,
                            None)
        d = decide(self.tables, self.gateway, gr, self.rng)
        if self.observer is not None:
            self.observer(gr, d, "HTTP/1.1")
        if d.status == 200 and d.addresses:
            ip, port = d.addresses[self.rng.randrange(len(d.addresses))]
            up = _addr(ip, port)
        else:
            up = None
        timeout = d.backend_timeout or d.timeout or 60.0
        out = Decision(
            status=d.status, upstream_path=d.request.get("path"), location=d.location,
            reason=d.reason, upstream=up, response_headers=tuple(d.response_headers.items()),
            read_timeout=timeout, addresses=d.addresses,
            upstream_host=d.request.get("host", ""))
        if d.request:
            self._requests[id(out)] = d.request
        return out

    def upstream_head(self, head: RequestHead, req: Request, d: Any) -> bytes:
        """Exactly the decision's request: method, path, Host and the filtered headers."""
        r = self._requests.pop(id(d), None) or {"method": head.method, "path": head.target,
                                                "host": head.host, "headers": {}}
        lines = [f"{r['method']} {r['path']} HTTP/1.1", f"Host: {r['host']}"]
        for k, v in r["headers"].items():
            low = k.lower()
            if low in ("connection", "keep-alive", "transfer-encoding", "content-length",
                       "expect", "proxy-connection", "te", "upgrade", "trailer"):
                continue
            lines.append(f"{k}: {v}")
        if head.chunked:
            lines.append("Transfer-Encoding: chunked")
        elif head.has_length:
            lines.append(f"Content-Length: {head.length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def certificates(tables: Tables, gateway: str, port: int) -> dict[str, KeyPair]:
    """SNI name → key pair for the HTTPS listeners on ``port`` (``*`` names kept)."""
    out: dict[str, KeyPair] = {}
    cg = tables.gateway(gateway)
    if cg is None:
        return out
    for ls in cg.listeners:
        if ls.port != port or not ls.certificates:
            continue
        sec = ls.certificates[0]
        pair = KeyPair(bytes(sec.data["tls.crt"]), bytes(sec.data["tls.key"]))
        out[ls.hostname or "*"] = pair
    return out


# --- L4: TLS passthrough (TLSRoute) and TCPRoute --------------------------------------------

def server_name(hello: bytes) -> str | None:
    """The SNI host name of a TLS ClientHello record (None if absent or not parseable yet)."""
    try:
        if len(hello) < 5 or hello[0] != 0x16:
            return None
        end = 5 + int.from_bytes(hello[3:5], "big")
        body = hello[5:end]
        if len(body) < 4 or body[0] != 1:
            return None
        p = 4 + 2 + 32
        p += 1 + body[p]
        p += 2 + int.from_bytes(body[p:p + 2], "big")
        p += 1 + body[p]
        ext_end = p + 2 + int.from_bytes(body[p:p + 2], "big")
        p += 2
        while p + 4 <= ext_end:
            etype = int.from_bytes(body[p:p + 2], "big")
            elen = int.from_bytes(body[p + 2:p + 4], "big")
            if etype == 0:
                q = p + 4 + 2
                if body[q] == 0:
                    n = int.from_bytes(body[q + 1:q + 3], "big")
                    return body[q + 3:q + 3 + n].decode("ascii").lower()
            p += 4 + elen
    except (IndexError, UnicodeDecodeError):
        return None
    return None


def l4_backend(listeners: list[Listener], sni: str | None,
               rng: random.Random) -> tuple[str, int] | None:
    """The backend address for a TLS (by SNI) or TCP connection, or None (reject)."""
    for ls in listeners:
        if ls.protocol == "TLS" and (not sni or (ls.hostname and not host_matches(ls.hostname,
                                                                                  sni))):
            continue
        for hosts, rule in ls.l4:
            if ls.protocol == "TLS" and not any(h == "" or host_matches(h, sni or "")
                                                for h in hosts):
                continue
            total = sum(b.weight for b in rule.backends)
            if total <= 0:
                return None
            x = rng.randrange(total)
            for b in rule.backends:
                if x < b.weight:
                    if not b.valid or not b.addresses:
                        return None  # an invalid share rejects the connection
                    return b.addresses[rng.randrange(len(b.addresses))]
                x -= b.weight
    return None


class L4Relay(asyncio.Protocol):
    """One client connection of a TLS-passthrough or TCP listener: pick, connect, relay."""

    def __init__(self, owner: L4Port) -> None:
        self.owner = owner
        self.transport: Any = None
        self.buf = b""
        self.up: Any = None
        self.started = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if not self.owner.tls:
            self._start(None)

    def data_received(self, data: bytes) -> None:
        if self.up is not None:
            self.up.write(data)
            return
        self.buf += data
        if self.owner.tls and not self.started:
            name = server_name(self.buf)
            if name is None and len(self.buf) < 16384 and (len(self.buf) < 5 or len(self.buf) <
                                                           5 + int.from_bytes(self.buf[3:5],
                                                                              "big")):
                return
            self._start(name)

    def _start(self, sni: str | None) -> None:
        self.started = True
        target = l4_backend(self.owner.listeners(), sni, self.owner.rng)
        if target is None:
            self.transport.close()
            return
        task = asyncio.ensure_future(self._connect(target))
        self.owner.tasks.add(task)
        task.add_done_callback(self.owner.tasks.discard)

    async def _connect(self, target: tuple[str, int]) -> None:
        relay = self

        class Up(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                if relay.transport is not None and not relay.transport.is_closing():
                    relay.transport.write(data)

            def connection_lost(self, exc: Exception | None) -> None:
                if relay.transport is not None:
                    relay.transport.close()

        try:
            transport, _ = await asyncio.wait_for(self.owner.connect(Up, *target), 10)
        except Exception:  # noqa: BLE001 - any connect failure rejects the connection
            if self.transport is not None:
                self.transport.close()
            return
        if self.transport is None or self.transport.is_closing():
            transport.close()
            return
        self.up = transport
        if self.buf:
            transport.write(self.buf)
            self.buf = b""

    def eof_received(self) -> bool:
        if self.up is not None and self.up.can_write_eof():
            self.up.write_eof()
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.up is not None:
            self.up.close()


class L4Port:
    def __init__(self, gateway: str, port: int, tables: Tables, tls: bool, connect: Any,
                 seed: int = 0) -> None:
        self.gateway, self.port, self.tables, self.tls = gateway, port, tables, tls
        self.connect = connect
        self.rng = random.Random(f"{seed}/{gateway}/{port}/l4")
        self.tasks: set[asyncio.Future[None]] = set()

    def listeners(self) -> list[Listener]:
        cg = self.tables.gateway(self.gateway)
        if cg is None:
            return []
        return [ls for ls in cg.listeners if ls.port == self.port and ls.valid
                and ls.protocol in ("TLS", "TCP")]

    def protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        return lambda: L4Relay(self)


async def gateway_app(ctx: Any) -> int:
    """Built-in image ``knet/gateway``: the data plane of the Gateway named by ``--gateway``,
    serving every listener port of it (HTTP, HTTPS, TLS passthrough, TCP)."""
    from knet.gateway.view import tables_for
    from knet.runtime.apps import serve_until_stopped

    args = list(ctx.container.command) + list(ctx.container.args)
    key = args[args.index("--gateway") + 1] if "--gateway" in args else ""
    rt = ctx.runtime
    st = rt.state
    loop = asyncio.get_running_loop()
    tables = tables_for(st)
    http: dict[int, GatewayProxy] = {}
    l4: dict[int, L4Port] = {}
    servers: list[Any] = []
    cg = tables.gateway(key)
    protocols: dict[int, set[str]] = {}
    for ls in cg.listeners if cg is not None else ():
        protocols.setdefault(ls.port, set()).add(ls.protocol)
    for port, protos in sorted(protocols.items()):
        if protos & {"HTTP", "HTTPS"} and len(protos) == 1:
            proxy = GatewayProxy(key, port, tables, seed=rt.seed, connect=ctx.netns.create_connection,
                                 clock=loop.time)
            http[port] = proxy
            factory = (proxy.tls_protocol_factory() if "HTTPS" in protos
                       else proxy.protocol_factory("http"))
            servers.append(await ctx.netns.create_server(factory, None, port))
        elif protos <= {"TLS", "TCP"} and len(protos) == 1:
            lp = L4Port(key, port, tables, "TLS" in protos, ctx.netns.create_connection, rt.seed)
            l4[port] = lp
            servers.append(await ctx.netns.create_server(lp.protocol_factory(), None, port))

    def refresh() -> None:
        t = tables_for(st)
        for p in http.values():
            p.update_tables(t)
        for lp in l4.values():
            lp.tables = t

    from knet.gateway import l7

    def observe(req: GatewayRequest, d: Any, protocol: str) -> None:
        if l7.recording(rt):
            l7.record(rt, loop.time(), ctx.pod.key, req, d, protocol)

    for p in http.values():
        p.observer = observe
    unwatch = rt.watch(refresh)
    try:
        from aiohttp import web

        app = web.Application()
        return await serve_until_stopped(ctx, app, [19000])
    finally:
        unwatch()
        for s in servers:
            s.close()
        for p in http.values():
            await p.aclose()


__all__ = ["GatewayProxy", "gateway_app", "L4Port", "certificates", "l4_backend", "server_name"]
