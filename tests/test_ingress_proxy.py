"""The ingress proxy end to end on loopback: aiohttp upstreams, the proxy, aiohttp/curl clients."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import ssl
import subprocess

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from ingress_factory import NGINX_CLASS, ingress, path, service, slice_

from knet.errors import UsageError
from knet.ingress import Router, build_table
from knet.ingress.proxy import IngressProxy
from knet.ingress.responses import page
from knet.ingress.tls import FAKE_CN, issue_test_certificates

A = "nginx.ingress.kubernetes.io/"
NAME = web.AppKey("name", str)


async def echo(request: web.Request) -> web.StreamResponse:
    if request.path == "/big":
        resp = web.StreamResponse()
        await resp.prepare(request)  # chunked
        for _i in range(50):
            await resp.write(b"x" * 10000)
        await resp.write_eof()
        return resp
    body = await request.read()
    return web.json_response({
        "name": request.app[NAME], "method": request.method, "path": request.raw_path,
        "headers": {k: v for k, v in request.headers.items()}, "body_len": len(body),
        "cl": request.headers.get("Content-Length"), "te": request.headers.get("Transfer-Encoding"),
    }, headers={"Server": "upstream", "X-Up": request.app[NAME]})


async def start_upstream(name: str) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app[NAME] = name
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class Env:
    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []
        self.proxy: IngressProxy | None = None
        self.http = ""
        self.https = ""

    async def aclose(self) -> None:
        if self.proxy:
            await self.proxy.aclose()
        for r in self.runners:
            await r.cleanup()


@pytest_asyncio.fixture
async def env():
    e = Env()
    (r1, p1), (r2, p2) = await start_upstream("one"), await start_upstream("two")
    e.runners += [r1, r2]
    ca, secrets = issue_test_certificates(["one.test", "two.test"])
    e.ca = ca
    ings = [
        ingress("one", [("one.test", [path("/", "svc-one")])], tls=[(["one.test"], "one-test-tls")],
                annotations={A + "ssl-redirect": "false"}),
        ingress("two", [("two.test", [path("/", "svc-two", 8080), path("/gone", "nosuch")])],
                tls=[(["two.test"], "two-test-tls")]),
        ingress("rw", [("strip.test", [path("/app(/|$)(.*)", "svc-two", 8080, pt="ImplementationSpecific")])],
                annotations={A + "rewrite-target": "/$2", A + "x-forwarded-prefix": "/app"}),
        ingress("small", [("small.test", [path("/", "svc-one")])], annotations={A + "proxy-body-size": "1k"}),
    ]
    services = [service("svc-one", [(80, "http", p1)]), service("svc-two", [(8080, "web", p2)])]
    slices = [slice_("svc-one", ["127.0.0.1"], port=p1), slice_("svc-two", ["127.0.0.1"], port=p2, port_name="web")]
    table = build_table(ings, [NGINX_CLASS], services, slices)
    e.proxy = IngressProxy(Router(table, random.Random(5)), secrets=secrets.values())
    host, port = await e.proxy.listen("127.0.0.1", 0)
    e.http = f"http://{host}:{port}"
    host, port = await e.proxy.listen("127.0.0.1", 0, tls=True)
    e.https_port = port
    yield e
    await e.aclose()


@pytest.mark.asyncio
async def test_proxy_routes_two_hosts_and_sets_headers(env):
    async with aiohttp.ClientSession() as s:
        async with s.get(env.http + "/a/b?x=1", headers={"Host": "one.test", "X-Forwarded-For": "6.6.6.6"}) as r:
            assert r.status == 200 and r.headers["Server"] == "nginx" and r.headers["X-Up"] == "one"
            j = await r.json()
        assert j["name"] == "one" and j["path"] == "/a/b?x=1"
        h = j["headers"]
        assert h["Host"] == "one.test" and h["X-Real-IP"] == "127.0.0.1"
        assert h["X-Forwarded-For"] == "127.0.0.1" and h["X-Original-Forwarded-For"] == "6.6.6.6"
        assert h["X-Forwarded-Host"] == "one.test" and h["X-Forwarded-Proto"] == "http"
        assert h["X-Forwarded-Port"] == "80" and h["X-Scheme"] == "http"
        assert len(h["X-Request-ID"]) == 32
        for _ in range(3):  # keep-alive upstream reuse
            async with s.get(env.http + "/", headers={"Host": "one.test"}) as r:
                assert (await r.json())["name"] == "one"
        async with s.get(env.http + "/store", headers={"Host": "strip.test"}) as r:
            assert r.status == 404  # regex host: "^/" root location → default backend
        async with s.get(env.http + "/app/items/9?q=2", headers={"Host": "strip.test"}) as r:
            j = await r.json()
        assert j["name"] == "two" and j["path"] == "/items/9?q=2"
        assert j["headers"]["X-Forwarded-Prefix"] == "/app"


@pytest.mark.asyncio
async def test_proxy_local_responses(env):
    async with aiohttp.ClientSession() as s:
        async with s.get(env.http + "/", headers={"Host": "nobody.test"}) as r:
            assert r.status == 404 and r.headers["Server"] == "nginx"
            assert await r.read() == page(404)
            assert page(404).startswith(b"<html>\r\n<head><title>404 Not Found</title>")
        async with s.get(env.http + "/gone", headers={"Host": "two.test"}, allow_redirects=False) as r:
            assert r.status == 308 and r.headers["Location"] == "https://two.test/gone"
        async with s.post(env.http + "/", data=b"x" * 2048, headers={"Host": "small.test"}) as r:
            assert r.status == 413


@pytest.mark.asyncio
async def test_proxy_bodies_streaming(env):
    async with aiohttp.ClientSession() as s:
        async with s.post(env.http + "/p", data=b"y" * 300000, headers={"Host": "one.test"}) as r:
            j = await r.json()
        assert j["body_len"] == 300000 and j["cl"] == "300000"

        async def gen():
            for _ in range(5):
                yield b"z" * 1000
        async with s.post(env.http + "/p", data=gen(), headers={"Host": "one.test"}) as r:
            j = await r.json()
        assert j["body_len"] == 5000 and j["te"] == "chunked"
        async with s.get(env.http + "/big", headers={"Host": "one.test"}) as r:
            assert r.status == 200 and len(await r.read()) == 500000
        async with s.head(env.http + "/", headers={"Host": "one.test"}) as r:
            assert r.status == 200 and await r.read() == b""


@pytest.mark.asyncio
async def test_proxy_503_without_backend_and_502_dead_upstream(env):
    dead = build_table([ingress("d", [("d.test", [path("/", "dead")])])], [NGINX_CLASS],
                       [service("dead", [(80, "http", 1)])], [slice_("dead", ["127.0.0.1"], port=1)])
    async with aiohttp.ClientSession() as s:
        env.proxy.update(dead)
        async with s.get(env.http + "/", headers={"Host": "d.test"}) as r:
            assert r.status == 502 and await r.read() == page(502)
        empty = build_table([ingress("d", [("d.test", [path("/", "dead")])])], [NGINX_CLASS],
                            [service("dead")], [])
        env.proxy.update(empty)
        async with s.get(env.http + "/", headers={"Host": "d.test"}) as r:
            assert r.status == 503 and b"503 Service Temporarily Unavailable" in await r.read()


async def raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_hostile_clients(env):
    port = int(env.http.rsplit(":", 1)[1])
    assert (await raw(port, b"GARBAGE\r\n\r\n")).split(b"\r\n")[0].endswith(b" 400 Bad Request")
    big = b"GET / HTTP/1.1\r\nHost: one.test\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    assert (await raw(port, big)).split(b"\r\n")[0].endswith(b" 431 Request Header Fields Too Large")
    many = b"GET / HTTP/1.1\r\nHost: one.test\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n"
    assert b" 431 " in (await raw(port, many)).split(b"\r\n")[0]
    assert (await raw(port, b"GET /../x HTTP/1.1\r\nHost: one.test\r\n\r\n")).startswith(b"HTTP/1.1 400")
    # the server still works
    out = await raw(port, b"GET / HTTP/1.1\r\nHost: one.test\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")


@pytest.mark.asyncio
async def test_slow_client_times_out():
    table = build_table([], [NGINX_CLASS], [], [])
    async with IngressProxy(Router(table), client_header_timeout=0.2) as p:
        _, port = await p.listen()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x")  # never finishes
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed by the proxy
        writer.close()


@pytest.mark.asyncio
async def test_listen_refuses_non_loopback():
    async with IngressProxy(Router(build_table([], [], [], []))) as p:
        with pytest.raises(UsageError):
            await p.listen("0.0.0.0", 0)
        with pytest.raises(UsageError):
            await p.listen("8.8.8.8", 0)


async def _tls_get(env, sni: str, host_header: str, verify: bool = True) -> tuple[str, bytes, dict]:
    ctx = ssl.create_default_context()
    if verify:
        env.ca.configure_trust(ctx)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", env.https_port, ssl=ctx,
                                                   server_hostname=sni)
    cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    from cryptography import x509
    cn = x509.load_der_x509_certificate(cert).subject.rfc4514_string()
    writer.write(f"GET /x HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return cn, head, body


@pytest.mark.asyncio
async def test_tls_sni_two_hosts_two_certs(env):
    _, head, body = await _tls_get(env, "one.test", "one.test")
    assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["name"] == "one"
    assert json.loads(body)["headers"]["X-Forwarded-Proto"] == "https"
    assert json.loads(body)["headers"]["X-Forwarded-Port"] == "443"
    assert b"Strict-Transport-Security: max-age=31536000; includeSubDomains" in head
    _, head, body = await _tls_get(env, "two.test", "two.test")
    assert json.loads(body)["name"] == "two"  # the 308 applies only to plain HTTP
    # SNI picks the certificate, Host picks the route
    _, head, body = await _tls_get(env, "one.test", "two.test")
    assert json.loads(body)["name"] == "two"
    # unknown SNI: the fake certificate
    cn, head, _ = await _tls_get(env, "nobody.test", "nobody.test", verify=False)
    assert FAKE_CN in cn and head.startswith(b"HTTP/1.1 404")
    with pytest.raises(ssl.SSLCertVerificationError):
        await _tls_get(env, "nobody.test", "one.test")


@pytest.mark.asyncio
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_curl_two_hosts(env):
    port = int(env.http.rsplit(":", 1)[1])
    out = {}
    for host in ("one.test", "two.test"):
        proc = await asyncio.create_subprocess_exec(
            "curl", "-s", "-i", "--noproxy", "*", "--resolve", f"{host}:{port}:127.0.0.1",
            f"http://{host}:{port}/hello?x=1", stdout=subprocess.PIPE)
        out[host] = (await proc.communicate())[0]
    assert b"HTTP/1.1 200" in out["one.test"] and b'"name": "one"' in out["one.test"]
    assert b"HTTP/1.1 308" in out["two.test"] and b"Location: https://two.test/hello?x=1" in out["two.test"]
    pem = env.ca.cert_pem.bytes()
    import os
    import tempfile
    fd, capath = tempfile.mkstemp(suffix=".pem")
    os.write(fd, pem)
    os.close(fd)
    try:
        proc = await asyncio.create_subprocess_exec(
            "curl", "-s", "--noproxy", "*", "--cacert", capath, "--resolve",
            f"two.test:{env.https_port}:127.0.0.1", f"https://two.test:{env.https_port}/secure",
            stdout=subprocess.PIPE)
        body = (await proc.communicate())[0]
    finally:
        os.unlink(capath)
    assert json.loads(body)["name"] == "two" and json.loads(body)["path"] == "/secure"


# --- the TLS port: plain HTTP, failed and incomplete handshakes (issue 13 items 8, 9) -----------

@pytest.mark.asyncio
async def test_plain_http_on_the_tls_port_gets_nginx_400(env):
    reader, writer = await asyncio.open_connection("127.0.0.1", env.https_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: one.test\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 3)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Connection: close" in head
    assert b"The plain HTTP request was sent to HTTPS port" in body
    writer.close()
    ctx = ssl.create_default_context()  # and TLS on the same port still works
    env.ca.configure_trust(ctx)
    reader, writer = await asyncio.open_connection("127.0.0.1", env.https_port, ssl=ctx,
                                                   server_hostname="one.test")
    writer.write(b"GET / HTTP/1.1\r\nHost: one.test\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 3)
    assert data.startswith(b"HTTP/1.1 200 OK") and b'"name": "one"' in data
    writer.close()


def _fabric_tls_env(timeout: float):
    from knet.fabric import Fabric

    fabric = Fabric(seed=0)
    fabric.add_node("node-a", ["172.18.0.2"], ["10.244.0.0/24"])
    fabric.add_pod("default/client", "node-a", ["10.244.0.5"])
    fabric.add_pod("ingress-nginx/controller", "node-a", ["10.244.0.6"])
    table = build_table([ingress("one", [("one.test", [path("/", "svc-one")])])], [NGINX_CLASS],
                        [service("svc-one", [(80, "http", 8080)])], [])
    proxy = IngressProxy(Router(table), client_header_timeout=timeout)
    return fabric, proxy


async def _closed_or_reset(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except ConnectionResetError:
        return True


async def _fabric_tls_case(legacy_ssl: bool) -> list[dict]:
    """A bad handshake, an incomplete one and plain HTTP on a TLS port inside the fabric;
    returns what reached the loop's exception handler (tracebacks)."""
    loop = asyncio.get_running_loop()
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    fabric, proxy = _fabric_tls_env(10.0)
    ns = fabric.namespace("ingress-nginx/controller")
    if legacy_ssl:  # asyncio's own SSLProtocol on the fabric transport (server ssl=…)
        server = await ns.create_server(proxy.protocol_factory("https"), None, 443,
                                        ssl=proxy.sni.context, ssl_handshake_timeout=10.0)
    else:
        server = await ns.create_server(proxy.tls_protocol_factory(), None, 443)
    client = fabric.namespace("default/client")
    # 1. a handshake that fails (a TLS record that is no ClientHello)
    reader, writer = await client.open_connection("10.244.0.6", 443)
    writer.write(b"\x16\x03\x01\x00\x05hello")
    assert await _closed_or_reset(reader, 5)
    writer.close()
    # 2. an incomplete handshake: closed after the timeout (virtual time)
    start = loop.time()
    reader, writer = await client.open_connection("10.244.0.6", 443)
    writer.write(b"\x16\x03\x01")
    assert await _closed_or_reset(reader, 30)
    assert 9.9 <= loop.time() - start < 11
    writer.close()
    server.close()
    await proxy.aclose()
    await asyncio.sleep(0.1)
    return errors


def test_failed_and_incomplete_handshakes_on_the_fabric_close_quietly():
    from knet.fabric.clock import run_virtual

    for legacy in (False, True):
        errors = run_virtual(_fabric_tls_case(legacy))
        assert errors == [], (legacy, errors)
