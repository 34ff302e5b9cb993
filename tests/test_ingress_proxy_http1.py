"""The proxy's HTTP/1.1 on the wire: framing both ways, keep-alive, pipelining, errors, timeouts,
upgrades, backpressure, and the same proxy on knet's virtual fabric."""

from __future__ import annotations

import asyncio
import random

import pytest
import pytest_asyncio
from ingress_factory import NGINX_CLASS, ingress, path, service, slice_

from knet.fabric import Fabric, virtual_time
from knet.ingress import Router, build_table
from knet.ingress.http1 import PIPELINE_LIMIT, Chunked, ClientConnection, FramingError
from knet.ingress.proxy import IngressProxy, open_loopback
from knet.ingress.responses import page

A = "nginx.ingress.kubernetes.io/"


# --- a scripted upstream ----------------------------------------------------------------------

class Upstream:
    """Raw asyncio HTTP/1.1 server whose answer depends on the path (see ``respond``)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, ns: object = None) -> None:
        if ns is None:
            self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
        else:
            self.port = 8080
            self.server = await ns.start_server(self.handle, None, 8080)  # type: ignore[attr-defined]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lower = head.lower()
                body = b""
                if head.startswith(b"POST /early "):  # answers before reading the body
                    writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
                    self.requests.append((head, b""))
                    continue
                if b"transfer-encoding: chunked" in lower:
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        if not size:
                            await reader.readuntil(b"\r\n")
                            break
                        body += await reader.readexactly(size)
                        await reader.readexactly(2)
                elif b"content-length:" in lower:
                    n = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(n)
                self.requests.append((head, body))
                served += 1
                target = head.split(b" ")[1]
                if not await self.respond(target, served, head, body, reader, writer):
                    writer.close()
                    return
        finally:
            writer.close()

    async def respond(self, target: bytes, served: int, head: bytes, body: bytes,
                      reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        p = target.split(b"?")[0]
        if p == b"/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: up\r\n\r\n"
                         b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        elif p == b"/eof":
            writer.write(b"HTTP/1.1 200 OK\r\nX-Kind: eof\r\n\r\ntill-")
            await writer.drain()
            writer.write(b"close")
            return False
        elif p == b"/garbage":
            writer.write(b"garbage\r\n\r\n")
        elif p == b"/dupcl":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!")
        elif p == b"/silent":
            await asyncio.sleep(30)
        elif p == b"/interim":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif p == b"/ws":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\n\r\n")
            while data := await reader.read(1024):
                writer.write(data.upper())
            return False
        elif p == b"/once" and served > 1:
            return False  # a keep-alive connection closed by the upstream before answering
        elif p == b"/big":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            for _ in range(100):
                writer.write(b"b" * 10000)
                await writer.drain()
        else:
            out = b"%s|%d|%s" % (target, len(body), head.split(b"\r\n")[0])
            writer.write(b"HTTP/1.1 200 OK\r\nServer: up\r\nDate: then\r\nX-Up: 1\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(out), out))
        await writer.drain()
        return True

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()


def routing(port: int, ip: str = "127.0.0.1"):
    ings = [
        ingress("web", [("web.test", [path("/", "web")])]),
        ingress("slow", [("slow.test", [path("/", "web")])],
                annotations={A + "proxy-read-timeout": "1"}),
        ingress("small", [("small.test", [path("/", "web")])], annotations={A + "proxy-body-size": "1k"}),
    ]
    return build_table(ings, [NGINX_CLASS], [service("web", [(80, "http", port)])],
                       [slice_("web", [ip], port=port)])


@pytest_asyncio.fixture
async def env():
    up = Upstream()
    await up.start()
    proxy = IngressProxy(Router(routing(up.port), random.Random(3)), client_body_timeout=0.3,
                         keepalive_requests=50)
    _, port = await proxy.listen()
    yield up, proxy, port
    await proxy.aclose()
    await up.aclose()


# --- a raw client -----------------------------------------------------------------------------

async def read_response(reader: asyncio.StreamReader, head_only: bool = False):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), v.strip())
    body = b""
    if head_only or status in (100, 101, 204, 304):
        pass
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int(await reader.readuntil(b"\r\n"), 16)
            if not size:
                assert await reader.readuntil(b"\r\n") == b"\r\n"  # no trailers relayed
                break
            body += await reader.readexactly(size)
            assert await reader.readexactly(2) == b"\r\n"
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return status, headers, body, head


async def connect(port: int):
    return await asyncio.open_connection("127.0.0.1", port)


def get(path: str, host: str = "web.test", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 3) == b""


# --- tests ------------------------------------------------------------------------------------

def test_chunked_framer_reframes_and_decodes():
    body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT"
    relay, dec = Chunked(), Chunked(decode=True)
    out_r, out_d = [], []
    for i in range(len(body)):  # byte by byte: every split point
        if not relay.done:
            p, used = relay.feed(body[i:i + 1])
            out_r += p
        if not dec.done:
            p, used = dec.feed(body[i:i + 1])
            out_d += p
    assert b"".join(out_r) == b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert b"".join(out_d) == b"hello world" and dec.total == 11
    p, used = Chunked().feed(body)
    assert body[used:] == b"NEXT"
    for bad in (b"zz\r\n", b"5\r\nhelloXX", b"-1\r\n", b"1" * 5000):
        with pytest.raises(FramingError):
            Chunked().feed(bad)


@pytest.mark.asyncio
async def test_keepalive_both_sides_and_pipelining(env):
    up, proxy, port = env
    reader, writer = await connect(port)
    for i in range(10):
        writer.write(get(f"/n{i}"))
        status, h, body, _ = await read_response(reader)
        assert status == 200 and body.startswith(b"/n%d|" % i)
        assert h["server"] == "nginx" and h["connection"] == "keep-alive" and h["x-up"] == "1"
        assert h["date"] != "then"
    assert up.connections == 1  # one upstream keep-alive connection for all of them
    writer.write(get("/p1") + get("/p2", extra="X-Request-ID: mine\r\n") + get("/p3"))
    bodies = [(await read_response(reader))[2] for _ in range(3)]
    assert [b.split(b"|")[0] for b in bodies] == [b"/p1", b"/p2", b"/p3"]
    assert b"X-Request-ID: mine\r\n" in up.requests[-2][0]
    head = up.requests[-1][0]
    assert head.startswith(b"GET /p3 HTTP/1.1\r\nHost: web.test\r\nX-Request-ID: ")
    assert b"X-Forwarded-For: 127.0.0.1\r\n" in head and b"X-Forwarded-Proto: http\r\n" in head
    writer.write(get("/last", extra="Connection: close\r\n"))
    status, h, _, _ = await read_response(reader)
    assert status == 200 and h["connection"] == "close" and await closed(reader)
    writer.close()


@pytest.mark.asyncio
async def test_keepalive_requests_limit(env):
    _, proxy, port = env
    reader, writer = await connect(port)
    for _i in range(50):
        writer.write(get("/k"))
        status, h, _, _ = await read_response(reader)
    assert h["connection"] == "close" and await closed(reader)  # keep-alive-requests reached
    writer.close()


@pytest.mark.asyncio
async def test_response_framings(env):
    up, _, port = env
    reader, writer = await connect(port)
    writer.write(get("/chunked"))
    status, h, body, head = await read_response(reader)
    assert body == b"hello world" and h["transfer-encoding"] == "chunked"
    assert b"X-Trailer" not in head and b"ext=1" not in head and h["server"] == "nginx"
    writer.write(get("/eof"))  # EOF-delimited upstream body: chunked to an HTTP/1.1 client
    status, h, body, _ = await read_response(reader)
    assert body == b"till-close" and h["transfer-encoding"] == "chunked"
    assert h["connection"] == "keep-alive" and h["x-kind"] == "eof"
    writer.write(get("/interim"))  # 1xx from the upstream is not relayed
    status, _, body, _ = await read_response(reader)
    assert (status, body) == (200, b"ok")
    writer.write(b"HEAD /x HTTP/1.1\r\nHost: web.test\r\n\r\n")
    status, h, body, _ = await read_response(reader, head_only=True)
    assert status == 200 and h["content-length"] == str(len(b"/x|0|HEAD /x HTTP/1.1"))
    writer.write(get("/big"))
    status, h, body, _ = await read_response(reader)
    assert len(body) == 1000000
    writer.close()
    # HTTP/1.0 client: chunked upstream body decoded, then close
    reader, writer = await connect(port)
    writer.write(b"GET /chunked HTTP/1.0\r\nHost: web.test\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 3)
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == b"hello world" and b"Connection: close" in head and b"chunked" not in head
    writer.close()


@pytest.mark.asyncio
async def test_bad_upstreams(env):
    _, _, port = env
    for p in ("/garbage", "/dupcl"):
        reader, writer = await connect(port)
        writer.write(get(p))
        status, h, body, _ = await read_response(reader)
        assert status == 502 and body == page(502)
        writer.close()
    reader, writer = await connect(port)
    writer.write(get("/silent", host="slow.test"))  # proxy-read-timeout: 1
    status, _, body, _ = await read_response(reader)
    assert status == 504 and body == page(504)
    writer.close()


@pytest.mark.asyncio
async def test_reused_connection_closed_by_upstream(env):
    up, _, port = env
    reader, writer = await connect(port)
    writer.write(get("/once"))
    assert (await read_response(reader))[0] == 200
    writer.write(get("/once"))  # the pooled connection dies: replayed on a new one (GET)
    status, _, body, _ = await read_response(reader)
    assert status == 200 and up.connections == 2
    writer.write(b"POST /once HTTP/1.1\r\nHost: web.test\r\nContent-Length: 3\r\n\r\nabc")
    status, _, _, _ = await read_response(reader)
    assert status == 502  # a request with a body is never replayed
    writer.close()


@pytest.mark.asyncio
async def test_request_bodies(env):
    up, _, port = env
    reader, writer = await connect(port)
    writer.write(b"POST /b HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3;x=y\r\nabc\r\n")
    await asyncio.sleep(0.05)
    writer.write(b"2\r\nde\r\n0\r\nT: 1\r\n\r\n")
    status, _, body, _ = await read_response(reader)
    assert body.startswith(b"/b|5|POST") and b"chunked" in up.requests[-1][0].lower()
    writer.write(b"PUT /c HTTP/1.1\r\nHost: web.test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"wxyz")
    status, _, body, _ = await read_response(reader)
    assert body.startswith(b"/c|4|PUT") and b"expect" not in up.requests[-1][0].lower()
    # a body larger than proxy-body-size: by Content-Length before proxying, chunked mid-stream
    writer.write(b"POST / HTTP/1.1\r\nHost: small.test\r\nContent-Length: 2000\r\n\r\n")
    status, h, _, _ = await read_response(reader)
    assert status == 413 and h["connection"] == "close" and await closed(reader)
    writer.close()
    reader, writer = await connect(port)
    writer.write(b"POST / HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + b"400\r\n" + b"a" * 1024 + b"\r\n" + b"400\r\n" + b"a" * 1024 + b"\r\n")
    status, _, _, _ = await read_response(reader)
    assert status == 413 and await closed(reader)
    writer.close()


@pytest.mark.asyncio
async def test_upstream_answering_before_the_body_ends(env):
    up, _, port = env
    reader, writer = await connect(port)
    writer.write(b"POST /early HTTP/1.1\r\nHost: web.test\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    status, h, body, _ = await read_response(reader)
    assert (status, body) == (403, b"no") and h["connection"] == "close" and await closed(reader)
    writer.close()
    reader, writer = await connect(port)
    writer.write(get("/fresh"))
    status, _, body, _ = await read_response(reader)
    assert status == 200 and body.startswith(b"/fresh|0|GET")
    assert up.connections == 2  # the half-sent upstream connection was not reused
    writer.close()


@pytest.mark.asyncio
async def test_local_answers_keep_alive_and_discard_bodies(env):
    _, _, port = env
    reader, writer = await connect(port)
    writer.write(b"POST / HTTP/1.1\r\nHost: nobody.test\r\nContent-Length: 5\r\n\r\nhello" + get("/after"))
    status, h, body, _ = await read_response(reader)
    assert status == 404 and body == page(404) and h["connection"] == "keep-alive"
    status, _, body, _ = await read_response(reader)
    assert status == 200 and body.startswith(b"/after|0|")
    writer.close()


@pytest.mark.parametrize("raw,status", [
    (b"GET / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: web.test\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET / HTTP/2.0\r\nHost: web.test\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: web.test\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nBad Name: x\r\nHost: web.test\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: web.test\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 1\xb2\r\n\r\n", 400),  # "1²" (latin-1)
    (b"GET / HTTP/1.1\r\nHost: web.test\r\nContent-Length: \xb9\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.0\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: ..\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a..test\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: web/test\r\n\r\n", 400),
])
@pytest.mark.asyncio
async def test_malformed_requests(env, raw, status):
    _, _, port = env
    reader, writer = await connect(port)
    writer.write(raw)
    got, h, body, _ = await read_response(reader)
    assert got == status and h["connection"] == "close" and await closed(reader)
    writer.close()


@pytest.mark.asyncio
async def test_body_timeout_and_header_timeout():
    up = Upstream()
    await up.start()
    async with IngressProxy(Router(routing(up.port)), client_body_timeout=0.2,
                            client_header_timeout=0.3) as proxy:
        _, port = await proxy.listen()
        reader, writer = await connect(port)
        writer.write(b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 10\r\n\r\nabc")
        status, _, _, _ = await read_response(reader)
        assert status == 408 and await closed(reader)
        writer.close()
        reader, writer = await connect(port)  # never sends anything
        assert await closed(reader)
        writer.close()
    await up.aclose()


@pytest.mark.asyncio
async def test_upgrade_tunnel(env):
    _, _, port = env
    reader, writer = await connect(port)
    writer.write(get("/ws", extra="Upgrade: websocket\r\nConnection: Upgrade\r\n"))
    status, h, _, _ = await read_response(reader)
    assert status == 101 and h["upgrade"] == "websocket" and h["connection"] == "upgrade"
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"PING"
    writer.close()


@pytest.mark.asyncio
async def test_pipeline_flood_is_bounded(env):
    up, proxy, port = env
    reader, writer = await connect(port)
    flood = get("/silent", host="slow.test") + get("/x") * 20000  # ~500 KB behind a slow answer
    writer.write(flood)
    await asyncio.sleep(0.3)
    (conn,) = [c for c in proxy._conns if isinstance(c, ClientConnection)]
    assert conn.paused and len(conn.buf) <= PIPELINE_LIMIT + 256 * 1024
    assert len(up.requests) == 1  # nothing behind the first request was forwarded
    writer.close()


@pytest.mark.asyncio
async def test_stream_opener_compatibility():
    up = Upstream()
    await up.start()
    async with IngressProxy(Router(routing(up.port)), open_loopback) as proxy:
        _, port = await proxy.listen()
        reader, writer = await connect(port)
        for _ in range(3):
            writer.write(get("/s"))
            status, _, body, _ = await read_response(reader)
            assert status == 200 and body.startswith(b"/s|0|")
        assert up.connections == 1
        writer.close()
    await up.aclose()


@virtual_time
async def test_on_the_virtual_fabric() -> None:
    fabric = Fabric(seed=0)
    fabric.add_node("node-a", ["172.18.0.2"], ["10.244.0.0/24"])
    fabric.add_pod("default/client", "node-a", ["10.244.0.5"])
    fabric.add_pod("ingress-nginx/controller", "node-a", ["10.244.0.6"])
    fabric.add_pod("default/web", "node-a", ["10.244.0.7"])
    up = Upstream()
    await up.start(fabric.namespace("default/web"))
    ns = fabric.namespace("ingress-nginx/controller")
    proxy = IngressProxy(Router(routing(8080, "10.244.0.7")), connect=ns.create_connection)
    server = await ns.create_server(proxy.protocol_factory("http"), None, 80)
    reader, writer = await fabric.namespace("default/client").open_connection("10.244.0.6", 80)
    for i in range(3):
        writer.write(get(f"/f{i}"))
        status, h, body, _ = await read_response(reader)
        assert status == 200 and body.startswith(b"/f%d|0|" % i)
    writer.write(get("/chunked"))
    assert (await read_response(reader))[2] == b"hello world"
    assert up.connections == 1
    assert b"X-Real-IP: 10.244.0.5\r\n" in up.requests[0][0]
    writer.close()
    server.close()
    await proxy.aclose()
    await up.aclose()


# --- nginx's edges (issue 13 item 14; issue 12 items 10, 11) ------------------------------

@pytest.mark.asyncio
async def test_bare_lf_heads_are_accepted_like_nginx(env):
    _, _, port = env
    reader, writer = await connect(port)
    writer.write(b"GET /lf HTTP/1.1\nHost: web.test\n\n" + b"GET /mix HTTP/1.1\r\nHost: web.test\n\r\n")
    status, h, body, _ = await read_response(reader)
    assert status == 200 and body.startswith(b"/lf|0|GET /lf HTTP/1.1")
    status, h, body, _ = await read_response(reader)
    assert status == 200 and body.startswith(b"/mix|0|") and h["connection"] == "keep-alive"
    writer.close()


@pytest.mark.asyncio
async def test_http09_simple_request_gets_a_body_only_answer(env):
    _, _, port = env
    reader, writer = await connect(port)
    writer.write(b"GET /\r\n")  # no Host: the default server, which has no backend here
    data = await asyncio.wait_for(reader.read(), 3)
    assert data == page(404)  # no status line, no headers (ngx_http_header_filter), then close
    writer.close()


@pytest.mark.asyncio
async def test_half_closed_partial_head_closes_at_once(env):
    _, _, port = env
    reader, writer = await connect(port)
    writer.write(b"GET / HTTP/1.1\r\nHost: web")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 1) == b""  # not after client_header_timeout
    writer.close()


@virtual_time
async def test_header_timeout_covers_the_whole_head() -> None:
    """client_header_timeout is a deadline for the whole head (nginx), on the virtual clock."""
    fabric = Fabric(seed=0)
    fabric.add_node("node-a", ["172.18.0.2"], ["10.244.0.0/24"])
    fabric.add_pod("default/client", "node-a", ["10.244.0.5"])
    fabric.add_pod("ingress-nginx/controller", "node-a", ["10.244.0.6"])
    fabric.add_pod("default/web", "node-a", ["10.244.0.7"])
    up = Upstream()
    await up.start(fabric.namespace("default/web"))
    ns = fabric.namespace("ingress-nginx/controller")
    proxy = IngressProxy(Router(routing(8080, "10.244.0.7")), connect=ns.create_connection,
                         client_header_timeout=0.4)
    server = await ns.create_server(proxy.protocol_factory("http"), None, 80)
    client = fabric.namespace("default/client")
    loop = asyncio.get_running_loop()
    reader, writer = await client.open_connection("10.244.0.6", 80)
    start = loop.time()
    trickle = b"GET / HTTP/1.1\r\nHost: web.test\r\nX-Slow: " + b"a" * 40
    for byte in trickle:  # slowloris: one byte every 50 ms never re-arms the deadline
        if reader.at_eof() or reader.exception() is not None:
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.05)
    try:
        closed = await asyncio.wait_for(reader.read(), 2) == b""
    except ConnectionResetError:  # our next byte met the closed socket
        closed = True
    assert closed and 0.4 <= loop.time() - start <= 0.6
    writer.close()
    # a keep-alive connection: the next head's deadline starts with its first byte
    reader, writer = await client.open_connection("10.244.0.6", 80)
    writer.write(get("/one"))
    assert (await read_response(reader))[0] == 200
    await asyncio.sleep(0.5)  # idle longer than client_header_timeout: keepalive_timeout
    writer.write(get("/two"))
    assert (await read_response(reader))[0] == 200
    writer.close()
    server.close()
    await proxy.aclose()
    await up.aclose()
