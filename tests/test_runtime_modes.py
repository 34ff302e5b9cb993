"""Runtime: the running emulation executes kube-proxy's IPVS and nftables modes (virtual time).

The demo cluster in each mode (topologies/ipvs.yaml, topologies/nftables.yaml): pod → Service
through the mode's own state (IPVS virtual servers behind the iptables glue; the nftables
table), readiness failover, NodePort with masquerade, IPVS graceful termination and the
nftables/IPVS rejection of an unused ClusterIP port.
"""

from __future__ import annotations

import asyncio
import json
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from knet.fabric import virtual_time
from knet.runtime import run
from knet.testing import distribution, wait_for

ROOT = Path(__file__).resolve().parent.parent
TOPO = {"ipvs": str(ROOT / "topologies" / "ipvs.yaml"),
        "nftables": str(ROOT / "topologies" / "nftables.yaml")}
FAILOVER = str(ROOT / "topologies" / "failover.yaml")
MODES = ("ipvs", "nftables")


def _mode_doc(tmp_path: Path, mode: str) -> str:
    p = tmp_path / f"{mode}.yaml"
    p.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
                 f"kind: KubeProxyConfiguration\nmode: {mode}\n")
    return str(p)


def _web_pods(c: Any) -> dict[str, str]:
    return {p.name: str(p.ip) for p in c.state.pods("default")
            if p.metadata.labels.get("app") == "web"}


async def _get(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as r:
        assert r.status == 200
        return json.loads(await r.text())


async def _fresh(client: Any, url: str) -> dict:
    """One request on a new connection (the scheduler decides again)."""
    async with client.new_session(connector_kwargs={"force_close": True}) as s:
        return await _get(s, url)


def _dests(c: Any, node: str, vip: str, port: int) -> dict[str, tuple[int, int, int]]:
    """IPVS real servers of one virtual server: endpoint → (weight, ActiveConn, InActConn)."""
    table = c.node(node).ipvs
    svc = table.service("TCP", ip_address(vip), port)
    return {d.endpoint: (d.weight, d.activeconns, d.inactconns) for d in svc.dest_list()}


async def _http_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict:
    """One HTTP/1.1 keep-alive request on an open connection."""
    writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return json.loads(await reader.readexactly(length))


# --- pod → Service, per mode --------------------------------------------------------------

@virtual_time
async def test_ipvs_rr_cycles_through_the_real_servers() -> None:
    async with run(TOPO["ipvs"]) as c:
        client = c.pod("default/client")
        node = c.node(client.node)
        assert node.mode == "ipvs" and node.datapath.mode == "ipvs"
        pods = _web_pods(c)
        seq = [(await _fresh(client, "http://web/"))["pod"] for _ in range(7)]
        # rr: each new connection takes the next real server, in table order.
        assert len(set(seq[:3])) == 3 and set(seq) == set(pods)
        assert seq[3:6] == seq[:3] and seq[6] == seq[0]
        body = await _fresh(client, "http://web/")
        assert body["clientIP"] == client.ip  # pod → ClusterIP from the pod CIDR: no masquerade
        # What runs is what users see: the ClusterIP is on kube-ipvs0 and has one virtual
        # server with the three pods as Masq real servers (live counters).
        vip = c.state.service("default/web").spec.cluster_ip
        text = node.rules()
        assert f"    inet {vip}/32 scope global kube-ipvs0" in text
        assert f"TCP  {vip}:80 rr\n" in text and "# ipset list (IPv4)" in text
        assert "-A KUBE-SERVICES -m comment --comment \"Kubernetes service cluster ip + port" in text
        dests = _dests(c, client.node, vip, 80)
        assert set(dests) == {f"{ip}:8080" for ip in pods.values()}
        assert all(w == 1 for w, _a, _i in dests.values())
        assert sum(i for _w, _a, i in dests.values()) >= 8  # closed connections: InActConn
        # The node's engine is the IPVS one, and the VIP is local to it (kube-ipvs0).
        assert node.datapath.engine.is_local(ip_address(vip))


@virtual_time
async def test_nftables_numgen_spreads_and_is_seeded() -> None:
    async def sequence() -> tuple[list[str], str]:
        async with run(TOPO["nftables"], seed=3) as c:
            client = c.pod("default/client")
            node = c.node(client.node)
            assert node.mode == "nftables"
            text = node.rules()
            out = [(await _fresh(client, "http://web/"))["pod"] for _ in range(24)]
            assert set(out) == set(_web_pods(c))
            return out, text

    first, text = await sequence()
    assert text.startswith("add table ip kube-proxy")
    assert "numgen random mod 3 vmap" in text
    assert max(first.count(p) for p in set(first)) <= 16  # random, not sticky
    assert (await sequence())[0] == first  # same seed ⇒ same draws


# --- readiness failover ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@virtual_time
async def test_readiness_failover_removes_the_endpoint(mode: str, tmp_path: Path) -> None:
    async with run([FAILOVER, _mode_doc(tmp_path, mode)]) as c:
        client = c.pod("default/client")
        assert c.node(client.node).mode == mode
        sick, healthy = c.pods({"app": "web"})
        sick_name, healthy_name = (p.key.split("/")[1] for p in (sick, healthy))
        assert set(await distribution(client, "http://web/", n=12)) == {sick_name, healthy_name}

        await sick.exec(["touch", "/tmp/unready"])
        await wait_for(lambda: not sick.ready, timeout=10)
        await c.wait_synced()
        assert await distribution(client, "http://web/", n=12) == {healthy_name: 12}
        node = c.node(client.node)
        if mode == "ipvs":
            vip = c.state.service("default/web").spec.cluster_ip
            dests = _dests(c, client.node, vip, 80)
            # gone, or draining at weight 0 while its closed connections time out
            assert dests.get(f"{sick.ip}:8080", (0, 0, 0))[0] == 0
            assert dests[f"{healthy.ip}:8080"][0] == 1
        else:
            assert f"{sick.ip}" not in node.rules() and f"{healthy.ip}" in node.rules()

        await sick.exec(["rm", "/tmp/unready"])
        await wait_for(lambda: sick.ready, timeout=10)
        await c.wait_ready()
        assert set(await distribution(client, "http://web/", n=12)) == {sick_name, healthy_name}


# --- NodePort from outside ------------------------------------------------------------------

NODEPORT = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web-np", "namespace": "default"},
            "spec": {"type": "NodePort", "selector": {"app": "web"},
                     "ports": [{"port": 80, "targetPort": "http", "nodePort": 30080}]}}


@pytest.mark.parametrize("mode", MODES)
@virtual_time
async def test_nodeport_from_outside_is_masqueraded(mode: str) -> None:
    async with run(TOPO[mode]) as c:
        c.apply(NODEPORT)

        def programmed() -> bool:
            slices = [s for s in c.state.endpoint_slices("default/web-np") if s.endpoints]
            return bool(slices) and all(c.node(n.name).synced for n in c.state.nodes())

        await c.wait_for(programmed, timeout=30)
        ext = c.external("203.0.113.10")
        pods = _web_pods(c)
        for n in c.state.nodes():
            ip = str(n.ips()[0])
            body = await _get(ext.http, f"http://{ip}:30080/")
            assert body["pod"] in pods
            # externalTrafficPolicy: Cluster → masqueraded to the entry node's address
            assert body["clientIP"] == ip
            if mode == "ipvs":
                node = c.node(n.name)
                assert node.ipvs.service("TCP", ip_address(ip), 30080) is not None
                assert f"TCP  {ip}:30080 rr" in node.ipvsadm()
            else:
                assert "30080" in c.node(n.name).rules()
        # No virtual server / no nodeport element for another port: nothing answers.
        with pytest.raises(aiohttp.ClientConnectorError):
            await ext.http.get(f"http://{c.node('knet-worker').ip}:30081/")


# --- IPVS graceful termination ----------------------------------------------------------------

async def stubborn_echo(ctx: Any) -> int:
    """An HTTP app that ignores SIGTERM: it serves until the kubelet kills it at the end of
    the grace period, so a connection to a deleted pod stays open meanwhile."""
    from knet.fabric.aio import KnetSite

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"pod": ctx.name})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await KnetSite(runner, ctx.netns, None, 8080).start()
        await asyncio.Event().wait()
        return 0
    finally:
        await runner.cleanup()


@virtual_time
async def test_ipvs_graceful_termination_keeps_a_weight_0_real_server_while_connected() -> None:
    async with run(TOPO["ipvs"], apps={"default/web": stubborn_echo}) as c:
        client = c.pod("default/client")
        vip = c.state.service("default/web").spec.cluster_ip
        reader, writer = await client.open_connection(vip, 80)
        victim = (await _http_on(reader, writer))["pod"]
        ep = f"{_web_pods(c)[victim]}:8080"
        assert _dests(c, client.node, vip, 80)[ep] == (1, 1, 0)  # ESTABLISHED: ActiveConn

        c.delete_pod(f"default/{victim}")  # terminationGracePeriodSeconds 30
        await c.wait_for(lambda: _dests(c, client.node, vip, 80)[ep][0] == 0, timeout=5)
        assert _dests(c, client.node, vip, 80)[ep] == (0, 1, 0)
        assert f"  -> {ep:<28} Masq    0      1          0" in c.node(client.node).ipvsadm()
        # The open connection keeps flowing to the terminating pod ...
        assert (await _http_on(reader, writer))["pod"] == victim
        # ... while new connections avoid the weight-0 server.
        fresh = {(await _fresh(client, "http://web/"))["pod"] for _ in range(4)}
        assert victim not in fresh and len(fresh) == 2

        writer.close()
        await c.advance(5)
        assert _dests(c, client.node, vip, 80)[ep] == (0, 0, 1)  # TIME_WAIT: InActConn
        # Drained once IPVS expires the connection (TIME_WAIT 120 s), at the next sync
        # (IPVS syncs at least every syncPeriod, 30 s, even without changes).
        await c.advance(160)
        assert ep not in _dests(c, client.node, vip, 80)
        assert ep not in c.node(client.node).ipvsadm()


# --- rejected ClusterIP ports, sync timing ------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@virtual_time
async def test_unused_cluster_ip_port_is_refused(mode: str) -> None:
    async with run(TOPO[mode]) as c:
        client = c.pod("default/client")
        vip = c.state.service("default/web").spec.cluster_ip
        t0 = c.now()
        # nftables: cluster-ips-check rejects an unused port of a ClusterIP (§5.4); IPVS: the
        # VIP is local on kube-ipvs0 and KUBE-IPVS-FILTER rejects new connections to ports
        # without a virtual server.
        with pytest.raises(ConnectionRefusedError):
            await client.open_connection(vip, 81)
        assert c.now() - t0 < 1.0
        if mode == "nftables":
            # An unallocated IP inside the service CIDR is dropped: the connect times out.
            with pytest.raises((asyncio.TimeoutError, TimeoutError)):
                await asyncio.wait_for(client.open_connection("10.96.200.200", 80), 3)


@pytest.mark.parametrize("mode,periodic", [("ipvs", True), ("nftables", False)])
@virtual_time
async def test_sync_timing_follows_the_mode(mode: str, periodic: bool) -> None:
    async with run(TOPO[mode]) as c:
        await c.wait_synced()
        p = c.node("knet-worker").proxy
        before = p.syncs
        await c.advance(31)
        # IPVS: syncPeriod (30 s) bounds the interval between syncs; nftables: 1 hour.
        assert (p.syncs > before) is periodic
        # A change is synced within minSyncPeriod.
        before = p.syncs
        c.apply(NODEPORT)
        assert p.needs_sync
        await c.advance(1.5)
        assert p.syncs > before and not p.needs_sync


# --- explanations, dual-stack ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@virtual_time
async def test_capture_explains_the_modes_decision(mode: str) -> None:
    async with run(TOPO[mode]) as c:
        client = c.pod("default/client")
        dp = c.node(client.node).datapath
        assert dp.explain is False  # hot path: nothing kept without a capture
        async with c.capture() as cap:
            assert dp.explain is True
            body = await _fresh(client, "http://web/")
        assert dp.explain is False
        story = cap.story(verbose=True)
        ep = f"{body['podIP']}:8080"
        if mode == "ipvs":
            assert f"ipvs: IPVS rr → {ep} (" in story
            assert "filter/KUBE-IPVS-FILTER" in story
        else:
            assert "kube-proxy/services#1 goto: ip daddr . meta l4proto . th dport vmap " \
                   "@service-ips" in story
            assert f"dnat to {ep}" in story


@pytest.mark.parametrize("mode", MODES)
@virtual_time
async def test_dual_stack_services_in_both_families(mode: str, tmp_path: Path) -> None:
    topo = str(ROOT / "topologies" / "dual-stack.yaml")
    async with run([topo, _mode_doc(tmp_path, mode)]) as c:
        client = c.pod("default/client")
        pods = {p.name for p in c.state.pods("default") if p.metadata.labels.get("app") == "web"}
        ips = c.state.service("default/web-dual").spec.cluster_ips
        assert {ip_address(a).version for a in ips} == {4, 6}
        for _ in range(2):  # IPVS: a later sync of one family keeps the other's servers
            for a in ips:
                host = f"[{a}]" if ":" in a else a
                body = await _fresh(client, f"http://{host}/")
                assert body["pod"] in pods
                assert ip_address(body["clientIP"]).version == ip_address(a).version
            await c.advance(31)
        text = c.node(client.node).rules()
        assert all(a in text for a in ips)


# --- stale UDP flows ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ("iptables", "nftables", "ipvs"))
@virtual_time
async def test_udp_flow_to_a_gone_endpoint_is_cleared_after_the_sync(mode: str,
                                                                     tmp_path: Path) -> None:
    topo = str(ROOT / "topologies" / "runtime-basic.yaml")
    async with run([topo, _mode_doc(tmp_path, mode)]) as c:
        client = c.pod("default/client")
        svc_ip = c.state.service("default/echo").spec.cluster_ip
        got: asyncio.Queue[bytes] = asyncio.Queue()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                got.put_nowait(data)

        t, _ = await client.netns.create_datagram_endpoint(P, remote_addr=(svc_ip, 9000))
        t.sendto(b"one")
        assert await asyncio.wait_for(got.get(), 2) == b"one"
        ct = c.node(client.node).conntrack
        flow = next(e for e in ct.entries() if e.proto == "udp" and str(e.orig.dst) == svc_ip
                    and e.orig.dport == 9000)
        backend = next(p for p in c.state.pods("default") if str(p.ip) == str(flow.reply.src))
        c.kill_pod(backend.key)  # gone at once: its endpoint leaves the slice
        await c.wait_for(lambda: flow not in list(ct.entries()), timeout=5)
        # The same socket (same 5-tuple) now reaches a live endpoint.
        t.sendto(b"two")
        assert await asyncio.wait_for(got.get(), 2) == b"two"
        again = next(e for e in ct.entries() if e.proto == "udp" and str(e.orig.dst) == svc_ip
                     and e.orig.dport == 9000 and e.orig.sport == flow.orig.sport)
        assert again is not flow
        serving = {str(p.ip) for p in c.state.pods("default") if p.status.ready
                   and p.metadata.labels.get("app") == "echo" and p.key != backend.key}
        assert str(again.reply.src) in serving
        if mode == "ipvs":  # expire_nodest_conn: no IPVS connection kept the gone server
            assert all(str(x.dest.address) != str(flow.reply.src) or x.dest.weight > 0
                       for x in c.node(client.node).ipvs.conns.values())
        t.close()
