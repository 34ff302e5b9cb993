"""``knet up``'s pure parts (addresses, MetalLB-style announcer, listener plan, watch diff) and
its asyncio parts on real loopback sockets (relay half-close, DNS fast path, boot-warp loop)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest

from knet.dns import DnsView, make_query
from knet.errors import UsageError
from knet.fabric import Fabric
from knet.expose import plan
from knet.expose.dnsloop import LoopbackDns
from knet.expose.loop import BootWarpLoop
from knet.expose.relay import RealTcpRelay, RealUdpRelay
from knet.expose.watch import diff
from knet.model import ObjectMeta, Service
from knet.model.config import ClusterConfig
from knet.model.core import (LoadBalancerIngress, Node, NodeAddress, Protocol, ServicePort,
                             ServiceSpec, ServiceType)
from knet.model.discovery import Endpoint, EndpointConditions, EndpointSlice


def node(name: str, ip: str, *, ready: bool = True, labels: dict[str, str] | None = None) -> Node:
    return Node(metadata=ObjectMeta(name=name, labels=labels or {}),
                addresses=(NodeAddress("InternalIP", ip),), ready=ready)


def lb_service(name: str, ip: str, *, etp: str = "Cluster", node_port: int = 31000,
               proto: Protocol = Protocol.TCP) -> Service:
    return Service(
        metadata=ObjectMeta(name=name, namespace="default"),
        spec=ServiceSpec(type=ServiceType.LOAD_BALANCER, cluster_ip="10.96.0.50",
                         ports=(ServicePort(80, proto, "http", 8080, node_port),),
                         external_traffic_policy=etp),
        load_balancer_ingress=(LoadBalancerIngress(ip=ip),))


def slice_on(svc: str, *nodes_ready: tuple[str, bool]) -> EndpointSlice:
    return EndpointSlice(
        metadata=ObjectMeta(name=f"{svc}-abc", namespace="default",
                            labels={"kubernetes.io/service-name": svc}),
        endpoints=tuple(Endpoint(addresses=(f"10.244.{i}.5",), node_name=n,
                                 conditions=EndpointConditions(ready=r))
                        for i, (n, r) in enumerate(nodes_ready)))


def metallb_order(names: list[str], ip: str) -> list[str]:
    return sorted(names, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


# --- addresses ------------------------------------------------------------------------------------

def test_loopback_address_ranges() -> None:
    assert plan.node_loopback(0) == IPv4Address("127.0.1.2")
    assert plan.node_loopback(253) == IPv4Address("127.0.1.255")
    assert plan.node_loopback(254) == IPv4Address("127.1.0.1")
    assert plan.lb_loopback(0) == IPv4Address("127.0.2.1")
    assert plan.lb_loopback(253) == IPv4Address("127.0.2.254")
    assert plan.lb_loopback(254) == IPv4Address("127.2.0.1")
    assert all(plan.node_loopback(i).is_loopback and plan.lb_loopback(i).is_loopback
               for i in range(0, 70000, 997))


def test_outside_address_of_a_real_client() -> None:
    assert plan.outside_ips("127.0.0.1") == (IPv4Address("203.0.113.1"), IPv6Address("2001:db8::1"))
    assert plan.outside_ips("127.0.0.7")[0] == IPv4Address("203.0.113.7")
    assert plan.outside_ips("::1")[0] == IPv4Address("203.0.113.1")
    assert plan.outside_ips("::ffff:127.0.0.9")[0] == IPv4Address("203.0.113.9")
    assert plan.outside_ips("127.0.0.255")[0] == IPv4Address("203.0.113.1")
    assert plan.outside_ips("127.0.0.0")[0] == IPv4Address("203.0.113.1")


@pytest.mark.parametrize("text,expect", [
    ("127.0.0.1:53", ("127.0.0.1", 53)), ("5353", ("127.0.0.1", 5353)),
    ("localhost:0", ("127.0.0.1", 0)), ("[::1]:8080", ("::1", 8080)),
    ("127.9.8.7:80", ("127.9.8.7", 80)),
])
def test_parse_listen(text: str, expect: tuple[str, int]) -> None:
    assert plan.parse_listen(text, "--dns") == expect


@pytest.mark.parametrize("text", ["0.0.0.0:53", "[::]:53", "10.0.0.1:80", "example.com:80",
                                  "127.0.0.1:99999", "127.0.0.1", "::1"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(UsageError) as e:
        plan.parse_listen(text, "--ingress")
    assert "--ingress" in str(e.value)


def test_address_book_is_stable() -> None:
    book = plan.AddressBook()
    book.update(["b", "a", "c"], [ip_address("172.18.255.201"), ip_address("172.18.255.200")])
    assert book.nodes == {"a": IPv4Address("127.0.1.2"), "b": IPv4Address("127.0.1.3"),
                          "c": IPv4Address("127.0.1.4")}
    assert book.lbs[ip_address("172.18.255.200")] == IPv4Address("127.0.2.1")
    book.update(["a", "0-new"], [ip_address("172.18.255.199")])
    assert book.nodes["0-new"] == IPv4Address("127.0.1.5")  # appended, nobody shifts
    assert book.nodes["a"] == IPv4Address("127.0.1.2")
    assert book.lbs[ip_address("172.18.255.199")] == IPv4Address("127.0.2.3")


# --- announcer (MetalLB layer2) -------------------------------------------------------------------

def test_announcer_follows_metallb_ordering() -> None:
    nodes = [node(f"w{i}", f"172.18.0.{i + 2}") for i in range(5)]
    for ip in ("172.18.255.200", "172.18.255.201", "10.0.0.7"):
        svc = lb_service("web", ip)
        assert plan.announcer(ip_address(ip), svc, nodes, []) == \
            metallb_order([n.name for n in nodes], ip)[0]


def test_announcer_skips_excluded_and_not_ready_nodes() -> None:
    ip = "172.18.255.200"
    names = [f"w{i}" for i in range(4)]
    first, second = metallb_order(names, ip)[:2]
    nodes = [node(n, f"172.18.0.{i + 2}",
                  labels={plan.EXCLUDE_LB_LABEL: ""} if n == first else None)
             for i, n in enumerate(names)]
    assert plan.announcer(ip_address(ip), lb_service("web", ip), nodes, []) == second
    nodes = [node(n, f"172.18.0.{i + 2}", ready=n != first) for i, n in enumerate(names)]
    assert plan.announcer(ip_address(ip), lb_service("web", ip), nodes, []) == second


def test_announcer_local_policy_needs_a_ready_endpoint() -> None:
    ip = "172.18.255.200"
    names = ["w0", "w1", "w2"]
    nodes = [node(n, f"172.18.0.{i + 2}") for i, n in enumerate(names)]
    svc = lb_service("web", ip, etp="Local")
    only = metallb_order(names, ip)[-1]
    es = slice_on("web", (only, True), (metallb_order(names, ip)[0], False))
    assert plan.announcer(ip_address(ip), svc, nodes, [es]) == only
    assert plan.announcer(ip_address(ip), svc, nodes, []) is None


def test_listener_plan() -> None:
    nodes = [node("b", "172.18.0.3"), node("a", "172.18.0.2")]
    svc = lb_service("web", "172.18.255.200", node_port=30080)
    udp = lb_service("dns", "172.18.255.201", node_port=30053, proto=Protocol.UDP)
    book = plan.AddressBook()
    want = plan.listeners(book, nodes, [svc, udp], [])
    assert want[("127.0.1.2", 30080, "tcp")] == plan.Target(
        "nodeport", "default/web", ip_address("172.18.0.2"), 30080, "a")
    assert want[("127.0.1.3", 30080, "tcp")].dst == ip_address("172.18.0.3")
    assert want[("127.0.2.1", 80, "tcp")].kind == "loadbalancer"
    assert want[("127.0.2.1", 80, "tcp")].dst == ip_address("172.18.255.200")
    assert want[("127.0.2.2", 80, "udp")].service == "default/dns"
    assert len(want) == 6


# --- watch diff -----------------------------------------------------------------------------------

def test_watch_diff_is_kubectl_apply_like() -> None:
    a = lb_service("a", "172.18.255.200")
    b = lb_service("b", "172.18.255.201")
    b2 = lb_service("b", "172.18.255.202")
    c = lb_service("c", "172.18.255.203")
    d = diff([a, b], [b2, c])
    assert d.apply == (b2, c)
    assert d.delete == (("Service", "default", "a"),)
    assert diff([a, b], [a, b]).empty


# --- the boot-warp loop ---------------------------------------------------------------------------

def test_boot_warp_then_real_time() -> None:
    async def main() -> tuple[float, float, float, float]:
        loop = asyncio.get_running_loop()
        w0 = time.monotonic()
        await asyncio.sleep(30)  # virtual: instant
        warped = time.monotonic() - w0
        t_switch = loop.time()
        loop.go_real()  # type: ignore[attr-defined]
        w1 = time.monotonic()
        await asyncio.sleep(0.05)  # real
        return warped, t_switch, loop.time() - t_switch, time.monotonic() - w1

    with asyncio.Runner(loop_factory=BootWarpLoop) as r:
        warped, t_switch, dt, wall = r.run(main())
    assert warped < 1.0 and t_switch >= 30.0
    assert 0.05 <= dt < 1.0 and wall >= 0.05


# --- relays and DNS on real loopback sockets ------------------------------------------------------

def _real_loop() -> asyncio.Runner:
    return asyncio.Runner()


def test_tcp_relay_half_close_and_outside_source() -> None:
    """A real client sends, shuts down its write side, then reads the whole reply: the virtual
    server sees EOF only after all bytes, and its reply still reaches the client."""

    async def main() -> tuple[bytes, list[Any]]:
        fab = Fabric(seed=1)
        fab.add_node("n1", ["172.18.0.2"], ["10.244.0.0/24"])
        ext = fab.add_external("client", ["203.0.113.1"])
        seen: list[Any] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read()  # until EOF
            seen.append(writer.get_extra_info("peername"))
            writer.write(b"got %d bytes" % len(data))
            await writer.drain()
            writer.close()

        await fab.node("n1").netns.start_server(handle, None, 9000)

        async def dial(peer: tuple[str, int], factory: Any) -> Any:
            tr, _ = await ext.create_connection(factory, "172.18.0.2", 9000)
            return tr

        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: RealTcpRelay(dial), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x" * 100_000)
        writer.write_eof()
        reply = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        server.close()
        return reply, seen

    with _real_loop() as r:
        reply, seen = r.run(main())
    assert reply == b"got 100000 bytes"
    assert seen[0][0] == "203.0.113.1"


def test_tcp_relay_resets_when_the_fabric_refuses() -> None:
    async def main() -> bytes | Exception:
        fab = Fabric(seed=1)
        fab.add_node("n1", ["172.18.0.2"], ["10.244.0.0/24"])
        ext = fab.add_external("client", ["203.0.113.1"])

        async def dial(peer: tuple[str, int], factory: Any) -> Any:
            tr, _ = await ext.create_connection(factory, "172.18.0.2", 9999)  # closed port
            return tr

        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: RealTcpRelay(dial), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            out: bytes | Exception = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError as e:
            out = e
        writer.close()
        server.close()
        return out

    with _real_loop() as r:
        out = r.run(main())
    assert isinstance(out, ConnectionResetError) or out == b""


def test_udp_relay_flow_per_client() -> None:
    async def main() -> list[bytes]:
        fab = Fabric(seed=1)
        fab.add_node("n1", ["172.18.0.2"], ["10.244.0.0/24"])
        ext = fab.add_external("client", ["203.0.113.1"])

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, t: Any) -> None:
                self.t = t

            def datagram_received(self, data: bytes, addr: Any) -> None:
                self.t.sendto(data.upper() + b" from " + str(addr[0]).encode(), addr)

        await fab.node("n1").netns.create_datagram_endpoint(Echo, local_addr=(None, 5000))

        async def dial(peer: tuple[str, int], factory: Any) -> Any:
            tr, _ = await ext.create_datagram_endpoint(factory, remote_addr=("172.18.0.2", 5000))
            return tr

        loop = asyncio.get_running_loop()
        relay, _ = await loop.create_datagram_endpoint(lambda: RealUdpRelay(dial),
                                                       local_addr=("127.0.0.1", 0))
        port = relay.get_extra_info("sockname")[1]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.sendto(b"hello", ("127.0.0.1", port))
        s.sendto(b"again", ("127.0.0.1", port))
        got = [await asyncio.wait_for(loop.sock_recv(s, 100), 5) for _ in range(2)]
        s.close()
        relay.close()
        return got

    with _real_loop() as r:
        got = r.run(main())
    assert got == [b"HELLO from 203.0.113.1", b"AGAIN from 203.0.113.1"]


def test_loopback_dns_udp_and_tcp() -> None:
    svc = Service(metadata=ObjectMeta(name="web", namespace="default"),
                  spec=ServiceSpec(cluster_ip="10.96.7.7", cluster_ips=("10.96.7.7",),
                                   ip_families=(4,), ports=(ServicePort(80, Protocol.TCP, "http", 80),)))
    view = DnsView(services=[svc], endpoint_slices=[], pods=[], namespaces=[],
                   cluster=ClusterConfig())

    async def main() -> tuple[bytes, bytes]:
        srv = LoopbackDns(view)
        port = await srv.start("127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        q = make_query("web.default.svc.cluster.local", "A", id=0x1234)
        await loop.sock_sendto(s, b"\x00garbage", ("127.0.0.1", port))  # dropped, not fatal
        await loop.sock_sendto(s, q, ("127.0.0.1", port))
        udp = await asyncio.wait_for(loop.sock_recv(s, 1500), 5)
        s.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(len(q).to_bytes(2, "big") + q)
        n = int.from_bytes(await reader.readexactly(2), "big")
        tcp = await asyncio.wait_for(reader.readexactly(n), 5)
        writer.close()
        await srv.aclose()
        return udp, tcp

    with _real_loop() as r:
        udp, tcp = r.run(main())
    from dnslib import DNSRecord

    for raw in (udp, tcp):
        rec = DNSRecord.parse(raw)
        assert rec.header.id == 0x1234 and rec.header.rcode == 0
        assert [str(a.rdata) for a in rec.rr] == ["10.96.7.7"]


def test_loopback_dns_refuses_other_addresses() -> None:
    async def main() -> None:
        await LoopbackDns(None).start("0.0.0.0", 0)

    with _real_loop() as r, pytest.raises(UsageError):
        r.run(main())
