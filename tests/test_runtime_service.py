"""Runtime: pod → Service → pod through every node's kube-proxy tables (virtual time)."""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path

import aiohttp
import pytest

from knet.fabric import virtual_time
from knet.runtime import run

TOPO = str(Path(__file__).resolve().parent.parent / "topologies" / "runtime-basic.yaml")


async def _get(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as r:
        assert r.status == 200
        return json.loads(await r.text())


def _echo_pods(c) -> dict[str, str]:
    return {p.name: str(p.ip) for p in c.state.pods("default") if p.metadata.labels.get("app") == "echo"}


@virtual_time
async def test_pod_to_service_http_through_tables() -> None:
    async with run(TOPO) as c:
        client = c.pod("default/client")
        body = await _get(client.http, "http://echo/hello?x=1")
        pods = _echo_pods(c)
        assert body["pod"] in pods and body["podIP"] == pods[body["pod"]]
        assert body["path"] == "/hello" and body["query"] == {"x": "1"}
        # Pod → ClusterIP from inside the cluster CIDR: no masquerade.
        assert body["clientIP"] == client.ip
        assert body["host"] == "echo"
        # The DNAT really happened in the client's node's conntrack.
        ct = c.node(client.node).conntrack
        svc_ip = c.state.service("default/echo").spec.cluster_ip
        entry = next(e for e in ct.entries() if str(e.orig.dst) == svc_ip and e.orig.dport == 80)
        assert entry.dnat and str(entry.reply.src) == body["podIP"] and entry.reply.sport == 8080


@virtual_time
async def test_load_spread_follows_seeded_statistic_and_is_deterministic() -> None:
    async def sequence() -> list[str]:
        async with run(TOPO, seed=5) as c:
            client = c.pod("default/client")
            out = []
            for _ in range(45):
                async with client.new_session(connector_kwargs={"force_close": True}) as s:
                    out.append((await _get(s, "http://echo/"))["pod"])
            return out

    first = await sequence()
    counts = collections.Counter(first)
    assert len(counts) == 3 and min(counts.values()) >= 7  # 1/3 each, seeded draws
    assert await sequence() == first  # same seed ⇒ same run


@virtual_time
async def test_connection_refused_without_endpoints_and_timeout_on_partition() -> None:
    async with run(TOPO) as c:
        client = c.pod("default/client")
        # KUBE-SERVICES rejects a ClusterIP without endpoints (icmp-port-unreachable).
        with pytest.raises(ConnectionRefusedError):
            await client.open_connection("nobody", 80)
        # A partitioned node: the SYN is lost; the connect times out.
        target = next(p for p in c.state.pods("default") if p.metadata.labels.get("app") == "echo"
                      and p.spec.node_name != client.node)
        c.partition(client.node, target.spec.node_name)
        t0 = c.now()
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            await asyncio.wait_for(client.open_connection(str(target.ip), 8080), 3)
        assert 2.9 < c.now() - t0 < 3.5
        c.heal()
        r, w = await client.open_connection(str(target.ip), 8080)
        w.close()


@virtual_time
async def test_session_affinity_pins_client_to_one_backend() -> None:
    async with run(TOPO) as c:
        client = c.pod("default/client")
        seen = set()
        for _ in range(10):
            async with client.new_session(connector_kwargs={"force_close": True}) as s:
                seen.add((await _get(s, "http://echo-sticky/"))["pod"])
        assert len(seen) == 1


@virtual_time
async def test_nodeport_from_outside_is_masqueraded_to_the_node_ip() -> None:
    async with run(TOPO) as c:
        ext = c.external("203.0.113.10")
        for node in c.state.nodes():
            ip = str(node.ips()[0])
            body = await _get(ext.http, f"http://{ip}:30080/")
            assert body["pod"] in _echo_pods(c)
            # externalTrafficPolicy: Cluster → KUBE-MARK-MASQ → SNAT to the entry node's IP.
            assert body["clientIP"] == ip
        # Not a NodePort: nothing listens on the node itself → refused.
        with pytest.raises(aiohttp.ClientConnectorError):
            await ext.http.get(f"http://{c.node('knet-worker').ip}:30081/")


@virtual_time
async def test_udp_service_echo() -> None:
    async with run(TOPO) as c:
        client = c.pod("default/client")
        svc_ip = c.state.service("default/echo").spec.cluster_ip
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                got.set_result(data)

        t, _ = await client.netns.create_datagram_endpoint(P, remote_addr=(svc_ip, 9000))
        t.sendto(b"ping")
        assert await asyncio.wait_for(got, 2) == b"ping"
        t.close()


@virtual_time
async def test_dns_goes_through_the_coredns_pods() -> None:
    async with run(TOPO) as c:
        client = c.pod("default/client")
        svc_ip = c.state.service("default/echo").spec.cluster_ip
        assert await client.resolve("echo") == [svc_ip]
        assert await client.resolve("echo.default.svc.cluster.local") == [svc_ip]
        res = client.dns.last
        assert res is not None and res.queries[0].name.startswith("echo.default.svc.cluster.local")
        assert await client.resolve("no-such-service") == []
        assert client.dns.last.status == "NXDOMAIN" or str(client.dns.last.status) != "SUCCESS"
        # The queries were UDP packets that the kube-dns ClusterIP DNAT sent to a CoreDNS pod.
        dns_nodes = {p.spec.node_name for p in c.state.pods("kube-system") if "coredns" in p.name}
        hops: list = []
        c.fabric.add_tap(lambda e: hops.append(e))
        client.dns.cache_enabled = False
        await client.resolve("kubernetes.default")
        delivered = [e for e in hops if str(e.kind) == "delivered" and e.netns.startswith("kube-system/coredns")]
        assert delivered and delivered[0].packet.dport == 53 and delivered[0].node in dns_nodes


@virtual_time
async def test_env_from_configmap_and_downward_api() -> None:
    async with run(TOPO) as c:
        env = c.pod("default/client").env()
        assert env["COLOR"] == "blue" and env["CFG_size"] == "large"
        assert env["GREETING"] == "hello blue"
        assert env["MY_POD_IP"] == c.pod("default/client").ip
        assert env["MY_NODE"] == c.pod("default/client").node
        svc = c.state.service("default/echo")
        assert env["ECHO_SERVICE_HOST"] == svc.spec.cluster_ip
        assert env["ECHO_SERVICE_PORT_HTTP"] == "80"
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
