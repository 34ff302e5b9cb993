"""aiohttp unchanged on the fabric: an Application served in one pod, a ClientSession in another."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Sequence

import aiohttp
import pytest
from aiohttp import web

from knet.fabric import Verdict, clock_of, virtual_time
from knet.fabric.aio import KnetConnector, KnetResolver, client_session, serve_app
from tests.test_fabric_tcp import POD_A, POD_B, two_nodes


def make_app() -> web.Application:
    async def info(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "client": request.remote,
                                  "host": request.host})

    async def upload(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"size": len(body), "chunked": request.headers.get(
            "Transfer-Encoding") == "chunked"})

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(5):
            await resp.write(f"part{i};".encode())
            await asyncio.sleep(0.5)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/upload", upload)
    app.router.add_get("/stream", stream)
    app.router.add_get("/{tail:.*}", info)
    return app


async def resolve(host: str, port: int, family: int) -> Sequence[str]:
    if host == "web.default.svc.cluster.local":
        return [POD_B]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@virtual_time
async def test_json_keepalive_and_concurrency() -> None:
    fabric, dp_a, _ = two_nodes()
    runner = await serve_app(make_app(), fabric.namespace("default/server"), 8080)
    try:
        async with client_session(fabric.namespace("default/client"), resolve) as session:
            async with session.get("http://web.default.svc.cluster.local:8080/hello") as resp:
                assert resp.status == 200
                assert await resp.json() == {"path": "/hello", "client": POD_A,
                                             "host": "web.default.svc.cluster.local:8080"}
            for i in range(3):  # keep-alive: the same connection
                url = f"http://web.default.svc.cluster.local:8080/again/{i}"
                async with session.get(url) as resp:
                    assert (await resp.json())["path"] == f"/again/{i}"
            syns = [p for _, p in dp_a.seen if p.flags == "S"]
            assert len(syns) == 1

            async def one(i: int) -> str:
                async with session.get(f"http://{POD_B}:8080/c/{i}") as resp:
                    return (await resp.json())["path"]

            paths = await asyncio.gather(*(one(i) for i in range(32)))
            assert paths == [f"/c/{i}" for i in range(32)]
            assert len([p for _, p in dp_a.seen if p.flags == "S"]) == 33
    finally:
        await runner.cleanup()


@virtual_time
async def test_chunked_request_and_response_bodies() -> None:
    fabric, _, _ = two_nodes()
    runner = await serve_app(make_app(), fabric.namespace("default/server"), 80)
    clock = clock_of()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    try:
        async with client_session(fabric.namespace("default/client")) as session:
            async with session.post(f"http://{POD_B}/upload", data=body()) as resp:
                assert await resp.json() == {"size": 10_000, "chunked": True}
            start = clock.now()
            async with session.get(f"http://{POD_B}/stream") as resp:
                assert resp.headers["Transfer-Encoding"] == "chunked"
                chunks = [c async for c in resp.content.iter_any()]
            assert b"".join(chunks) == b"part0;part1;part2;part3;part4;"
            assert clock.now() - start == pytest.approx(2.5)
    finally:
        await runner.cleanup()


@pytest.mark.perf
@virtual_time
async def test_errors_surface_as_aiohttp_errors(wall_budget) -> None:
    fabric, dp_a, _ = two_nodes()
    client = fabric.namespace("default/client")
    async with client_session(client, resolve) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await session.get(f"http://{POD_B}:81/")
        assert isinstance(refused.value.os_error, ConnectionRefusedError)
        with pytest.raises(aiohttp.ClientConnectorDNSError):
            await session.get("http://nope.default.svc.cluster.local/")
        dp_a.verdicts[80] = Verdict.DROP
        with wall_budget(1), pytest.raises(asyncio.TimeoutError):
            await session.get(f"http://{POD_B}/", timeout=aiohttp.ClientTimeout(total=10))
        assert clock_of().now() == pytest.approx(10, abs=1)
        dp_a.verdicts[80] = Verdict.REJECT
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"http://{POD_B}/")


@virtual_time
async def test_connector_uses_explicit_resolver_object() -> None:
    fabric, _, _ = two_nodes()
    runner = await serve_app(make_app(), fabric.namespace("default/server"), 80)
    connector = KnetConnector(fabric.namespace("default/client"), KnetResolver(resolve))
    try:
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.get("http://web.default.svc.cluster.local/x") as resp:
            assert json.loads(await resp.text())["client"] == POD_A
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_works_on_an_ordinary_event_loop() -> None:
    fabric, _, _ = two_nodes()
    runner = await serve_app(make_app(), fabric.namespace("default/server"), 80)
    try:
        async with client_session(fabric.namespace("default/client")) as session, \
                session.get(f"http://{POD_B}/real") as resp:
            assert (await resp.json())["path"] == "/real"
    finally:
        await runner.cleanup()


@virtual_time
async def test_https_inside_the_fabric() -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("web.default.svc.cluster.local")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    fabric, _, dp_b = two_nodes()
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    from knet.fabric.aio import KnetSite

    site = KnetSite(runner, fabric.namespace("default/server"), None, 443, ssl_context=server_ctx)
    await site.start()
    try:
        async with client_session(fabric.namespace("default/client"), resolve) as session:
            url = "https://web.default.svc.cluster.local/tls"
            async with session.get(url, ssl=client_ctx) as resp:
                assert (await resp.json())["path"] == "/tls"
        to_server = [p.payload for _, p in dp_b.seen if p.dport == 443 and p.payload]
        assert to_server[0][:2] == b"\x16\x03"  # a TLS handshake record on the wire
        assert not any(b"GET /tls" in payload for payload in to_server)
    finally:
        await runner.cleanup()
