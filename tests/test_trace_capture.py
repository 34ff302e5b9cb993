"""Traces over a real two-node fabric whose nodes run kube-proxy's iptables rules in the
netfilter engine: hop sequences (ClusterIP DNAT/un-DNAT, NodePort with masquerade, DNS over a
ClusterIP, REJECT), filters, stories, Hubble JSON shape, and free-when-off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from ipaddress import ip_address

import pytest

from knet.errors import UsageError
from knet.fabric import virtual_time
from knet.fabric.aio import client_session
from knet.trace import Capture, TraceVerdict, render_story
from tests.trace_scenario import (CLIENT, DNS, DNS_VIP, EMPTY_VIP, NODE_A, OUTSIDE_IP, WEB,
                                  WEB_VIP, build_fabric, dns_query, resolve_pod, serve_dns,
                                  serve_web, service_of)


async def _http_get(fabric, url: str) -> str:  # type: ignore[no-untyped-def]
    async with client_session(fabric.namespace("shop/client")) as s, s.get(url) as r:
        assert r.status == 200
        return await r.text()


@virtual_time
async def test_pod_to_clusterip_dnat_delivery_and_undnat_reply() -> None:
    fabric = build_fabric()
    runner = await serve_web(fabric)
    async with Capture(fabric, resolve_pod=resolve_pod, service_of=service_of) as cap:
        body = await _http_get(fabric, f"http://{WEB_VIP}/hello")
        assert "you are 10.244.1.9" in body
    await runner.cleanup()
    flows = cap.flows()
    assert len(flows) == 1
    flow = flows[0]
    assert flow.service == "shop/web:http" and flow.verdict is TraceVerdict.FORWARDED
    assert (str(flow.original.dst), flow.original.dport) == (WEB_VIP, 80)
    assert (str(flow.translated.dst), flow.translated.dport) == (WEB, 8080)
    assert flow.dnat and not flow.snat
    syn, synack = flow.packets[0], flow.packets[1]
    assert (syn.packet.flags, synack.packet.flags) == ("S", "SA")
    assert not syn.is_reply and synack.is_reply
    # SYN: leaves the client's veth, node-a DNATs (KUBE-SERVICES → KUBE-SVC → KUBE-SEP), wire to
    # node-b, delivered to web-1.
    assert [h.node for h in syn.hops] == ["node-a", "node-b"]
    assert syn.hops[0].entered_from == fabric.namespace("shop/client").veth
    chains = [s.chain for s in syn.hops[0].steps if s.table == "nat"]
    assert chains[1] == "KUBE-SERVICES" and chains[2].startswith("KUBE-SVC-")
    dnat = [s for s in syn.hops[0].steps if s.action == "dnat"]
    assert len(dnat) == 1 and dnat[0].chain.startswith("KUBE-SEP-")
    assert syn.delivered_to == "shop/web-1" and str(syn.delivered.dst) == WEB
    # SYN-ACK: sent by web-1 from its own address, un-DNATed by conntrack on node-a.
    assert str(synack.packet.src) == WEB and synack.delivered_to == "shop/client"
    assert (str(synack.delivered.src), synack.delivered.sport) == (WEB_VIP, 80)
    undnat = [s for s in synack.hops[-1].steps if s.action == "conntrack" and s.before]
    assert [s.note for s in undnat] == ["un-DNAT"]
    # Sequence numbers are one consistent stream in each direction.
    isn = syn.packet.seq
    for tp in flow.packets:
        if not tp.is_reply and "S" not in tp.packet.flags:
            assert (tp.packet.seq - isn) % 2**32 >= 1
    assert {tp.packet.flags for tp in flow.packets} >= {"S", "SA", "A", "PA", "FA"}
    story = cap.explain(flow)
    assert 'KUBE-SERVICES rule' in story and '"shop/web:http cluster IP"' in story
    assert f"DNAT {WEB_VIP}:80 → {WEB}:8080" in story
    assert f"conntrack un-DNAT: source {WEB}:8080 → {WEB_VIP}:80" in story
    assert "delivered to shop/web-1" in story and "same path as" in story
    verbose = cap.explain(flow, verbose=True)
    assert "-A KUBE-SERVICES" in verbose and "-j KUBE-SVC-" in verbose


@virtual_time
async def test_nodeport_from_outside_is_masqueraded_and_unnated() -> None:
    fabric = build_fabric()
    runner = await serve_web(fabric)
    async with Capture(fabric, resolve_pod=resolve_pod, service_of=service_of) as cap:
        reader, writer = await fabric.namespace("outside-client").open_connection(NODE_A, 30080)
        writer.write(b"GET /np HTTP/1.1\r\nHost: node-a:30080\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        await asyncio.sleep(1)
    await runner.cleanup()
    assert data.startswith(b"HTTP/1.1 200") and b"you are 192.168.10.11" in data
    [flow] = cap.flows()
    assert flow.client == "outside-client" and flow.snat and flow.dnat
    syn = flow.packets[0]
    assert syn.hops[0].entered_from == "eth0"
    actions = [s.action for s in syn.hops[0].steps]
    assert "mark" in actions and "dnat" in actions and "masquerade" in actions
    assert actions.index("dnat") < actions.index("masquerade")
    masq = next(s for s in syn.hops[0].steps if s.action == "masquerade")
    assert masq.chain == "KUBE-POSTROUTING" and str(masq.after.src) == NODE_A
    assert str(syn.delivered.src) == NODE_A and str(syn.delivered.dst) == WEB
    reply = flow.packets[1]
    assert reply.is_reply and reply.delivered_to == "outside-client"
    assert (str(reply.delivered.src), reply.delivered.sport) == (NODE_A, 30080)
    assert str(reply.delivered.dst) == OUTSIDE_IP
    notes = [s.note for s in reply.hops[-1].steps if s.action == "conntrack" and s.before]
    assert notes == ["un-SNAT", "un-DNAT"]
    story = cap.explain(flow)
    assert "KUBE-NODEPORTS" in story and "KUBE-MARK-MASQ rule 1 MARK 0x4000" in story
    assert f"MASQUERADE {OUTSIDE_IP}:" in story and "arrives at node-a eth0" in story


@virtual_time
async def test_dns_query_through_the_kube_dns_clusterip() -> None:
    fabric = build_fabric()
    await serve_dns(fabric)
    async with Capture(fabric, protocol="udp", resolve_pod=resolve_pod,
                       service_of=service_of) as cap:
        answer = await dns_query(fabric, "web.shop.svc.cluster.local")
    assert [str(r.rdata) for r in answer.rr] == [WEB_VIP]
    [flow] = cap.flows()
    assert flow.proto == "udp" and flow.service == "kube-system/kube-dns:dns"
    query, response = flow.packets
    assert str(query.delivered.dst) == DNS and query.delivered.dport == 53
    assert response.is_reply and str(response.delivered.src) == DNS_VIP
    assert b"\x03web\x04shop" in query.packet.payload


@virtual_time
async def test_reject_for_a_service_without_endpoints() -> None:
    fabric = build_fabric()
    async with Capture(fabric, verdict="rejected", resolve_pod=resolve_pod) as cap:
        with pytest.raises(ConnectionRefusedError):
            await fabric.namespace("shop/client").open_connection(EMPTY_VIP, 80)
    [flow] = cap.flows()
    [tp] = flow.packets
    assert tp.verdict is TraceVerdict.REJECTED and flow.verdict is TraceVerdict.REJECTED
    assert flow.service == "shop/empty:http"  # from the rule comment (no service_of given)
    assert "has no endpoints" in tp.reason and "filter/KUBE-SERVICES rule 1" in tp.reason
    assert tp.hops[-1].reject_with == "icmp-port-unreachable"
    err = tp.error
    assert err is not None and (err.icmp_type, err.icmp_code) == (3, 3)
    assert str(err.src) == NODE_A and str(err.dst) == CLIENT and err.orig == tp.packet
    story = cap.explain(flow)
    assert '"shop/empty:http has no endpoints" REJECT' in story
    assert "ICMP type 3 code 3" in story
    [rec] = cap.hubble()
    f = rec["flow"]
    assert f["verdict"] == "DROPPED" and f["drop_reason_desc"] == "NO_SERVICE"
    assert f["knet"]["verdict"] == "rejected" and f["node_name"] == "node-a"


@virtual_time
async def test_filters_like_hubble_observe() -> None:
    fabric = build_fabric()
    runner = await serve_web(fabric)
    await serve_dns(fabric)

    async def traffic() -> None:
        await dns_query(fabric, "web.shop.svc.cluster.local")
        await _http_get(fabric, f"http://{WEB_VIP}/")
        with pytest.raises(ConnectionRefusedError):
            await fabric.namespace("shop/client").open_connection(EMPTY_VIP, 80)

    cases = {
        (): 3,
        (("port", 8080),): 1,             # matches the DNATed header version
        (("port", 53),): 1,
        (("protocol", "udp"),): 1,
        (("pod", "shop/web-"),): 1,        # name prefix
        (("pod", "web-1"),): 0,            # namespace defaults to "default"
        (("to_pod", "kube-system/coredns"),): 1,
        (("namespace", "kube-system"),): 1,
        (("ip", "10.244.2.0/24"),): 2,
        (("to_ip", DNS_VIP),): 1,
        (("verdict", "dropped"),): 1,      # a REJECT is a drop for Hubble
        (("verdict", "forwarded"),): 2,
        (("service", "shop/web"),): 1,
        (("service", "kube-system/kube-dns:dns"),): 1,
        (("node", "node-b"),): 2,
        (("node", "node-*"),): 3,
        (("label", "k8s-app=kube-dns"),): 1,
        (("pod", "shop/client"), ("protocol", "tcp")): 2,
    }
    caps = {k: Capture(fabric, dict(k), resolve_pod=resolve_pod, service_of=service_of)
            for k in cases}
    for c in caps.values():
        c.start()
    await traffic()
    for c in caps.values():
        c.stop()
    await runner.cleanup()
    got = {k: len(c.flows()) for k, c in caps.items()}
    assert got == cases
    assert fabric.tap_count == 0
    with pytest.raises(UsageError):
        Capture(fabric, prot="tcp")
    with pytest.raises(UsageError):
        Capture(fabric, verdict="lost")


@virtual_time
async def test_hubble_json_shape() -> None:
    fabric = build_fabric()
    runner = await serve_web(fabric)
    async with Capture(fabric, resolve_pod=resolve_pod, service_of=service_of) as cap:
        await _http_get(fabric, f"http://{WEB_VIP}/")
    await runner.cleanup()
    lines = cap.to_jsonl().splitlines()
    assert len(lines) == len(cap.packets()) >= 8
    recs = [json.loads(line) for line in lines]
    first = recs[0]
    assert set(first) == {"flow", "node_name", "time"}
    f = first["flow"]
    assert f["Type"] == "L3_L4" and f["verdict"] == "FORWARDED" and "drop_reason_desc" not in f
    assert f["IP"] == {"source": CLIENT, "destination": WEB, "ipVersion": "IPv4"}
    assert f["l4"] == {"TCP": {"source_port": 32768, "destination_port": 8080,
                               "flags": {"SYN": True}}}
    assert f["source"] == {"namespace": "shop", "pod_name": "client", "labels": [
        "k8s:app=client", "k8s:io.kubernetes.pod.namespace=shop"]}
    assert f["destination"]["pod_name"] == "web-1"
    assert f["destination_service"] == {"name": "web", "namespace": "shop"}
    assert f["traffic_direction"] == "EGRESS" and f["is_reply"] is False
    assert f["node_name"] == first["node_name"] == "node-b"
    assert f["trace_observation_point"] == "TO_ENDPOINT"
    assert f["time"].startswith("1970-01-01T00:00:00") and f["time"].endswith("Z")
    assert f["Summary"] == "TCP Flags: SYN"
    assert f["knet"]["sent"] == {"source": f"{CLIENT}:32768", "destination": f"{WEB_VIP}:80"}
    reply = recs[1]["flow"]
    assert reply["is_reply"] is True and reply["IP"]["source"] == WEB
    assert reply["l4"]["TCP"]["flags"] == {"SYN": True, "ACK": True}
    assert reply["node_name"] == "node-a" and reply["destination"]["pod_name"] == "client"


@virtual_time
async def test_render_story_from_raw_tap_events() -> None:
    fabric = build_fabric()
    runner = await serve_web(fabric)
    events: list[object] = []
    remove = fabric.add_tap(events.append)
    await _http_get(fabric, f"http://{WEB_VIP}/")
    remove()
    await runner.cleanup()
    text = render_story(events)  # type: ignore[arg-type]
    assert text.startswith(f"flow 1: TCP {CLIENT}:32768 → {WEB_VIP}:80 [service shop/web:http]")
    assert f"DNAT {WEB_VIP}:80 → {WEB}:8080" in text


@virtual_time
async def test_free_when_off() -> None:
    fabric = build_fabric()
    runner = await serve_web(fabric)
    calls: list[str] = []

    def profiler(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and "/knet/trace/" in frame.f_code.co_filename:
            calls.append(frame.f_code.co_name)

    sys.setprofile(profiler)
    try:
        await _http_get(fabric, f"http://{WEB_VIP}/")
    finally:
        sys.setprofile(None)
    assert fabric.tap_count == 0 and calls == []
    async with Capture(fabric) as cap:
        assert fabric.tap_count == 1
        sys.setprofile(profiler)
        try:
            await _http_get(fabric, f"http://{WEB_VIP}/")
        finally:
            sys.setprofile(None)
    # While on, recording is list.append (a C call): no Python code of knet.trace runs.
    assert calls == [] and fabric.tap_count == 0
    assert len(cap.events) > 0
    await runner.cleanup()


def test_importing_trace_does_not_import_scapy() -> None:
    code = ("import sys, knet.fabric, knet.trace; "
            "print(any(m == 'scapy' or m.startswith('scapy.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_names_without_fabric_are_ip_only() -> None:
    from knet.trace import Names
    assert Names(None).label(ip_address(CLIENT)) == ""


@virtual_time
async def test_partition_drop_and_closed_udp_port() -> None:
    fabric = build_fabric()
    async with Capture(fabric, resolve_pod=resolve_pod, service_of=service_of) as cap:
        # No DNS server listening: coredns-1's namespace answers ICMP port unreachable.
        with pytest.raises(OSError):
            await dns_query(fabric, "web.shop.svc.cluster.local")
        fabric.partition("node-a", "node-b")
        with pytest.raises((OSError, asyncio.TimeoutError)):
            await asyncio.wait_for(
                fabric.namespace("shop/client").open_connection(WEB_VIP, 80), 2)
        fabric.heal()
    udp, tcp = cap.flows()
    assert udp.service == "kube-system/kube-dns:dns"
    query, icmp = udp.packets
    assert query.delivered_to == "kube-system/coredns-1"
    assert icmp.icmp_for is query and icmp.is_reply
    assert (icmp.packet.icmp_type, icmp.packet.icmp_code) == (3, 3)
    assert str(icmp.packet.src) == DNS_VIP  # as the client sees it
    assert icmp.observations[0].iface == f"node-a/{fabric.namespace('shop/client').veth}"
    syns = tcp.packets
    assert len(syns) >= 2 and all(p.packet.flags == "S" for p in syns)  # SYN retransmits
    assert all(p.verdict is TraceVerdict.DROPPED and p.reason == "partition" for p in syns)
    assert syns[1].time > syns[0].time
    assert "lost on the wire (partition)" in syns[0].observations[-1].comment
    assert "DROPPED: partition" in cap.explain(tcp)
    [rec] = [r for r in cap.hubble() if r["flow"]["knet"]["packet"] == syns[0].index]
    assert rec["flow"]["verdict"] == "DROPPED" and rec["flow"]["node_name"] == "node-a"
