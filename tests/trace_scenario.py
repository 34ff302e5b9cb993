"""A two-node cluster for the trace tests: kube-proxy iptables rules built by knet.proxy for
model objects, executed by knet.netfilter on each node of a knet.fabric network.

node-a 192.168.10.11 (pods 10.244.1.0/24): shop/client 10.244.1.9
node-b 192.168.10.12 (pods 10.244.2.0/24): shop/web-1 10.244.2.9 (HTTP :8080),
                                           kube-system/coredns-1 10.244.2.3 (DNS :53/udp)
outside: client 203.0.113.9
Services: shop/web 10.96.7.30:80→8080 NodePort 30080; kube-system/kube-dns 10.96.0.10:53/udp;
shop/empty 10.96.7.40:80 (no endpoints → REJECT).
"""

from __future__ import annotations

import asyncio
import random

from aiohttp import web
from dnslib import QTYPE, RR, A, DNSRecord

from knet.fabric import Fabric, Hop, RejectWith, Verdict
from knet.fabric.aio import serve_app
from knet.netfilter.engine import Netfilter
from knet.proxy.iptables import build_ruleset
from knet.trace import PodInfo
from tests.proxy_factories import CLUSTER, PROXY, ep, node, port, service, slice_

CLIENT, WEB, DNS, OUTSIDE_IP = "10.244.1.9", "10.244.2.9", "10.244.2.3", "203.0.113.9"
NODE_A, NODE_B = "192.168.10.11", "192.168.10.12"
WEB_VIP, DNS_VIP, EMPTY_VIP = "10.96.7.30", "10.96.0.10", "10.96.7.40"

SERVICES = [
    service("web", WEB_VIP, port(80, "http", target=8080, node_port=30080), type="NodePort"),
    service("kube-dns", DNS_VIP, port(53, "dns", proto="UDP"), ns="kube-system"),
    service("empty", EMPTY_VIP, port(80, "http")),
]
SLICES = [
    slice_("web", ep(WEB, "node-b"), ports=(("http", 8080, "TCP"),)),
    slice_("kube-dns", ep(DNS, "node-b"), ports=(("dns", 53, "UDP"),), ns="kube-system"),
]
NODES = [node("node-a", NODE_A, pod_cidrs=("10.244.1.0/24",)),
         node("node-b", NODE_B, pod_cidrs=("10.244.2.0/24",))]
PODS = {
    CLIENT: PodInfo("shop", "client", {"app": "client"}, "node-a"),
    WEB: PodInfo("shop", "web-1", {"app": "web"}, "node-b"),
    DNS: PodInfo("kube-system", "coredns-1", {"k8s-app": "kube-dns"}, "node-b"),
}


class NetfilterDatapath:
    """The fabric's Datapath over a node's Netfilter (the runtime's job; local to the tests)."""

    def __init__(self, nf: Netfilter) -> None:
        self.nf = nf

    def forward(self, packet, entered_from, now):  # type: ignore[no-untyped-def]
        r = self.nf.forward(packet, entered_from, now)
        rw = RejectWith(r.reject_with) if r.reject_with in RejectWith._value2member_map_ \
            else RejectWith.ICMP_PORT_UNREACHABLE
        return Hop(Verdict(r.verdict), r.packet, r.local, rw, r)


def resolve_pod(ip: object) -> PodInfo | None:
    return PODS.get(str(ip))


def service_of(ip: object, port_: int, proto: str) -> str | None:
    for s in SERVICES:
        for p in s.spec.ports:
            if str(ip) == s.spec.cluster_ip and p.port == port_ and \
                    str(p.protocol).lower() == proto:
                return f"{s.metadata.namespace}/{s.metadata.name}:{p.name}" if p.name else \
                    f"{s.metadata.namespace}/{s.metadata.name}"
    return None


def build_fabric(seed: int = 1) -> Fabric:
    fabric = Fabric(seed=seed)
    for n in NODES:
        ip = n.ips(4)[0]
        nf = Netfilter(build_ruleset(n, SERVICES, SLICES, PROXY, CLUSTER), local_addresses=[ip],
                       masquerade_address={4: ip}, rng=random.Random(seed))
        fabric.add_node(n.name, [ip], [str(c) for c in n.pod_cidrs],
                        datapath=NetfilterDatapath(nf))
    fabric.add_pod("shop/client", "node-a", [CLIENT])
    fabric.add_pod("shop/web-1", "node-b", [WEB])
    fabric.add_pod("kube-system/coredns-1", "node-b", [DNS])
    fabric.add_external("outside-client", [OUTSIDE_IP])
    return fabric


def web_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello from web-1, you are {request.remote}\n")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    return app


async def serve_web(fabric: Fabric) -> web.AppRunner:
    return await serve_app(web_app(), fabric.namespace("shop/web-1"), 8080)


class DnsServer(asyncio.DatagramProtocol):
    """Answers A queries for web.shop.svc.cluster.local with the web Service's ClusterIP."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        q = DNSRecord.parse(data)
        reply = q.reply()
        if str(q.q.qname).rstrip(".") == "web.shop.svc.cluster.local" and q.q.qtype == QTYPE.A:
            reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(WEB_VIP), ttl=30))
        self.transport.sendto(reply.pack(), addr)  # type: ignore[attr-defined]


async def serve_dns(fabric: Fabric) -> asyncio.DatagramTransport:
    t, _ = await fabric.namespace("kube-system/coredns-1").create_datagram_endpoint(
        DnsServer, local_addr=("0.0.0.0", 53))
    return t  # type: ignore[return-value]


async def dns_query(fabric: Fabric, name: str) -> DNSRecord:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if not done.done():
                done.set_result(data)

        def error_received(self, exc: Exception) -> None:
            if not done.done():
                done.set_exception(exc)

    t, _ = await fabric.namespace("shop/client").create_datagram_endpoint(
        Client, remote_addr=(DNS_VIP, 53))
    try:
        t.sendto(DNSRecord.question(name, "A").pack())
        return DNSRecord.parse(await asyncio.wait_for(done, 5))
    finally:
        t.close()



