"""Runtime: the node datapath adapter — every packet crosses the engines, taps see ``Hop``s."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from knet.fabric import WIRE, Fabric, Hop, RejectWith, Verdict, virtual_time
from knet.fabric.aio import client_session, serve_app
from knet.fabric.network import veth_name
from knet.runtime import run
from knet.runtime.apps import echo_application

TOPO = str(Path(__file__).resolve().parent.parent / "topologies" / "runtime-basic.yaml")


@virtual_time
async def test_every_packet_crosses_both_nodes_and_taps_see_hops() -> None:
    async with run(TOPO) as c:
        client = c.pod("default/client")
        svc_ip = c.state.service("default/echo").spec.cluster_ip
        async with client.new_session() as s:
            async with s.get("http://echo/") as r:  # connection + DNS warm
                body = json.loads(await r.text())
            events: list = []
            remove = c.fabric.add_tap(events.append)
            try:
                for _ in range(3):  # keep-alive: the same connection, conntrack fast path
                    async with s.get("http://echo/") as r:
                        assert json.loads(await r.text())["pod"] == body["pod"]
            finally:
                remove()
        hops = [e for e in events if str(e.kind) == "hop"]
        assert hops and all(type(e.hop) is Hop for e in hops)
        assert all(e.hop.verdict is Verdict.ACCEPT for e in hops)
        backend_node = next(p.spec.node_name for p in c.state.pods("default")
                            if p.name == body["pod"])
        out = [e for e in hops if e.packet.sport != 80 and e.packet.sport != 8080]
        back = [e for e in hops if e.packet.sport == 8080]
        # Request segments: DNAT at the client's node (entered from the pod's veth, the
        # translated packet carries that iif), then the backend's node when it is another one.
        first = [e for e in out if e.node == client.node and e.entered_from == veth_name(
            "default/client")]
        assert first and all(str(e.packet.dst) == svc_ip for e in first)
        assert all(str(e.hop.packet.dst) == body["podIP"] and e.hop.packet.dport == 8080
                   and e.hop.packet.iif == e.entered_from for e in first)
        assert all(e.hop.explanation.ctstate == "ESTABLISHED" for e in first)
        if backend_node != client.node:
            assert [e for e in out if e.node == backend_node and e.entered_from == WIRE]
        # Replies are un-DNATed by the client node's conntrack: the pod sees the ClusterIP.
        to_client = [e for e in back if e.node == client.node]
        assert to_client and all(str(e.hop.packet.src) == svc_ip and e.hop.packet.sport == 80
                                 for e in to_client)


@virtual_time
async def test_reject_reaches_taps_as_the_fabric_enum_and_the_client_as_refused() -> None:
    async with run(TOPO) as c:
        client = c.pod("default/client")
        events: list = []
        remove = c.fabric.add_tap(events.append)
        try:
            async with client.new_session() as s:
                with pytest.raises(aiohttp.ClientConnectorError) as info:
                    await s.get("http://nobody/")
        finally:
            remove()
        assert isinstance(info.value.os_error, ConnectionRefusedError)
        rejected = [e for e in events if str(e.kind) == "hop" and e.hop.verdict is Verdict.REJECT]
        assert rejected and rejected[0].hop.reject_with is RejectWith.ICMP_PORT_UNREACHABLE
        assert rejected[0].node == client.node and rejected[0].packet.dport == 80


@virtual_time
async def test_capture_names_the_rules_while_it_runs_only() -> None:
    async with run(TOPO) as c:
        client = c.pod("default/client")
        dps = list(c.datapaths.values())
        assert not any(dp.explain for dp in dps)
        with c.capture() as cap:
            assert all(dp.explain for dp in dps)
            async with client.new_session() as s, s.get("http://echo/") as r:
                assert r.status == 200
        assert not any(dp.explain for dp in dps)
        stories = "".join(cap.explain(f, verbose=True) for f in cap.flows())
        assert "KUBE-SVC-" in stories and "KUBE-SEP-" in stories


@virtual_time
async def test_echo_application_answers_over_the_fabric() -> None:
    f = Fabric(seed=0)
    f.add_node("node-a", ["172.18.0.2"], ["10.244.0.0/24"])
    server = f.add_pod("default/echo", "node-a", ["10.244.0.9"])
    client = f.add_pod("default/client", "node-a", ["10.244.0.10"])
    runner = await serve_app(echo_application("echo", "default", "node-a", "10.244.0.9"),
                             server, 8080)
    try:
        async with client_session(client) as s, \
                s.post("http://10.244.0.9:8080/a/b?x=1", headers={"X-T": "v"}) as r:
            body = await r.json()
    finally:
        await runner.cleanup()
    assert body["pod"] == "echo" and body["node"] == "node-a" and body["podIP"] == "10.244.0.9"
    assert body["method"] == "POST" and body["path"] == "/a/b" and body["query"] == {"x": "1"}
    assert body["headers"]["X-T"] == "v" and body["clientIP"] == "10.244.0.10"
