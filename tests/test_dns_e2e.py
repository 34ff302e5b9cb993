"""Real ``dig`` against serve_loopback on 127.0.0.1 (UDP and +tcp); knet's renderer matches dig."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from dns_factory import ep, eps, shop_objects, svc
from knet.dns import DnsView, make_query
from knet.dns.answer import answer
from knet.dns.dig import render
from knet.dns.server import serve_loopback
from knet.errors import UsageError

DIG = shutil.which("dig")
needs_dig = pytest.mark.skipif(DIG is None, reason="dig (dnsutils) is not installed")


def make_view() -> DnsView:
    s, e, n = shop_objects()
    s.append(svc("shop", "big", headless=True, ports=[(80, "http")]))
    e.append(eps("shop", "big", [ep(f"10.244.3.{i + 1}") for i in range(60)], [(80, "http")]))
    return DnsView(services=s, endpoint_slices=e, namespaces=n, now=1700000000, shuffle=False)


async def run_dig(port: int, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        DIG, "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return out.decode()


@needs_dig
@pytest.mark.asyncio
async def test_dig_udp_and_tcp_against_loopback_server():
    v = make_view()
    async with await serve_loopback(v, "127.0.0.1", 0) as srv:
        out = await run_dig(srv.port, "+short", "cart.shop.svc.cluster.local")
        assert out.split() == ["10.96.7.20"]
        out = await run_dig(srv.port, "+tcp", "+short", "_pg._tcp.cart-db.shop.svc.cluster.local", "SRV")
        assert out.splitlines() == ["0 50 5432 cart-db-0.cart-db.shop.svc.cluster.local.",
                                    "0 50 5432 cart-db-1.cart-db.shop.svc.cluster.local."]
        out = await run_dig(srv.port, "nosuch.shop.svc.cluster.local")
        assert "status: NXDOMAIN" in out and "flags: qr aa rd;" in out
        # 60 A records do not fit 512 bytes: dig sees TC and retries over TCP by itself
        out = await run_dig(srv.port, "+noedns", "+short", "big.shop.svc.cluster.local")
        assert len(out.split()) == 60
        out = await run_dig(srv.port, "+noedns", "+ignore", "big.shop.svc.cluster.local")
        assert "flags: qr aa tc rd;" in out
        out = await run_dig(srv.port, "-x", "10.96.7.20", "+short")
        assert out.split() == ["cart.shop.svc.cluster.local."]
        # many concurrent clients, and a garbage datagram does not kill the server
        loop = asyncio.get_running_loop()
        t, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=("127.0.0.1", srv.port))
        t.sendto(b"\xff" * 7)
        t.close()
        outs = await asyncio.gather(*(run_dig(srv.port, "+short", "cart.shop.svc.cluster.local") for _ in range(10)))
        assert all(o.split() == ["10.96.7.20"] for o in outs)


@needs_dig
@pytest.mark.asyncio
async def test_render_matches_dig_sections():
    v = make_view()
    async with await serve_loopback(v, "127.0.0.1", 0) as srv:
        for name, qtype in [("_pg._tcp.cart-db.shop.svc.cluster.local", "SRV"), ("cart.shop.svc.cluster.local", "AAAA"),
                            ("10-244-1-5.cart.shop.svc.cluster.local", "A"), ("cluster.local", "NS")]:
            out = await run_dig(srv.port, "+nocookie", "+noall", "+answer", "+authority", "+additional", name, qtype)
            reply = answer(v, make_query(name, qtype, id=1))
            ours = [line for line in render(reply).splitlines()
                    if line and not line.startswith(";")]
            assert ours == out.splitlines(), name


@pytest.mark.asyncio
async def test_tcp_pipelining_and_refuse_non_loopback():
    v = make_view()
    async with await serve_loopback(v, "127.0.0.1", 0) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        q1 = make_query("cart.shop.svc.cluster.local.", "A", id=1)
        q2 = make_query("cart-db.shop.svc.cluster.local.", "A", id=2)
        writer.write(len(q1).to_bytes(2, "big") + q1 + len(q2).to_bytes(2, "big") + q2)
        await writer.drain()
        ids = []
        for _ in range(2):
            n = int.from_bytes(await reader.readexactly(2), "big")
            ids.append((await reader.readexactly(n))[:2])
        assert ids == [b"\x00\x01", b"\x00\x02"]
        writer.close()
        await writer.wait_closed()
    with pytest.raises(UsageError):
        await serve_loopback(v, "0.0.0.0", 0)
