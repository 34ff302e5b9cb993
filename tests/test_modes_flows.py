"""Table-driven first-packet flows through the three modes (kube-proxy's proxier_test style),
including the behaviours where the modes differ, and the compare-modes report."""

from __future__ import annotations

import random
import sys
from ipaddress import ip_address

import pytest

from knet.netfilter.packet import Packet, Proto
from knet.proxy import modes

from modes_factory import rich

CART = ["10.244.1.12:8080", "10.244.1.5:8080", "10.244.2.7:8080"]
ALL = ("iptables", "ipvs", "nftables")
POD, OUT = ("10.244.1.99", "veth9"), ("203.0.113.10", "eth0")
INSIDE_RANGE = ("198.51.100.7", "eth0")


def same(outcomes, masq):
    return {m: (outcomes, masq) for m in ALL}


# (id, node, (src, iif), dst, port, proto, {mode: (sorted outcomes, masquerade)})
FLOWS = [
    ("pod→ClusterIP", "node-a", POD, "10.96.7.20", 80, "tcp", same(CART, False)),
    ("outside→ClusterIP", "node-a", OUT, "10.96.7.20", 80, "tcp", same(CART, True)),
    ("hairpin", "node-a", ("10.244.1.5", "veth5"), "10.96.7.20", 80, "tcp", same(CART, True)),
    ("no endpoints", "node-a", POD, "10.96.7.40", 80, "tcp", same(["REJECT"], False)),
    ("outside→NodePort eTP Cluster", "node-a", OUT, "192.168.10.11", 30080, "tcp",
     same(["10.244.2.9:8080"], True)),
    ("outside→LB eTP Local, in range", "node-a", INSIDE_RANGE, "192.0.2.80", 443, "tcp",
     same(["10.244.1.20:8443"], False)),
    ("outside→LB, not in source ranges", "node-a", OUT, "192.0.2.80", 443, "tcp",
     same(["DROP"], False)),
    ("pod→LB, pod not in source ranges", "node-a", POD, "192.0.2.80", 443, "tcp",
     {"iptables": (["DROP"], False), "ipvs": (["DROP"], False), "nftables": (["DROP"], False)}),
    ("outside→NodePort eTP Local, local endpoint", "node-a", OUT, "192.168.10.11", 31443,
     "tcp", same(["10.244.1.20:8443"], False)),
    ("outside→externalIP", "node-a", OUT, "198.51.100.50", 80, "tcp",
     same(["10.244.2.30:8080"], True)),
    ("pod→iTP Local ClusterIP", "node-a", POD, "10.96.7.80", 80, "tcp",
     same(["10.244.1.50:8080"], False)),
    ("UDP DNS", "node-b", ("10.244.2.99", "veth9"), "10.96.0.10", 53, "udp",
     same(["10.244.1.2:53", "10.244.2.3:53"], False)),
    # --- where the modes differ -------------------------------------------------------------
    ("eTP Local, no local endpoint (LB)", "node-a", OUT, "192.0.2.90", 80, "tcp",
     {"iptables": (["DROP"], False), "nftables": (["DROP"], False),
      "ipvs": (["10.244.2.60:8080"], False)}),  # IPVS falls back to cluster endpoints
    ("eTP Local, no local endpoint (NodePort)", "node-a", OUT, "192.168.10.11", 30090, "tcp",
     {"iptables": (["DROP"], False), "nftables": (["DROP"], False),
      "ipvs": (["10.244.2.60:8080"], False)}),
    ("iTP Local, no local endpoint", "node-b", ("10.244.2.99", "veth9"), "10.96.7.80", 80, "tcp",
     same(["10.244.2.51:8080"], False)),
    ("unused ClusterIP port", "node-a", POD, "10.96.7.20", 81, "tcp",
     {"iptables": ([], False), "ipvs": (["REJECT"], False), "nftables": (["REJECT"], False)}),
    ("unallocated service IP", "node-a", POD, "10.96.99.99", 80, "tcp",
     {"iptables": ([], False), "ipvs": ([], False), "nftables": (["DROP"], False)}),
]


@pytest.fixture(scope="module")
def cluster():
    return rich()


@pytest.fixture(scope="module")
def datapaths(cluster):
    return {(m, n.name): modes.node_datapath(cluster, n, random.Random(3), m)
            for m in ALL for n in cluster.nodes()}


@pytest.mark.parametrize("flow", FLOWS, ids=[f[0] for f in FLOWS])
def test_flow(flow, datapaths):
    _id, node, (src, iif), dst, port, proto, expect = flow
    pkt = Packet(ip_address(src), ip_address(dst), Proto(proto), 40000, port,
                 "S" if proto == "tcp" else "", iif=iif)
    for mode, (outcomes, masq) in expect.items():
        oc = datapaths[(mode, node)].enumerate_outcomes(pkt, "prerouting")
        assert sorted(oc.outcomes) == sorted(outcomes), mode
        if outcomes and outcomes[0] not in ("DROP", "REJECT"):
            assert oc.masquerade == masq, mode


@pytest.mark.parametrize("mode", ALL)
def test_forward_agrees_with_enumeration(mode, cluster):
    """Sampling (forward) only ever lands on an enumerated outcome, and replies come back
    un-NATed, in every mode."""
    dp = modes.node_datapath(cluster, cluster.node("node-a"), random.Random(5), mode)
    for i, (_id, node, (src, iif), dst, port, proto, expect) in enumerate(FLOWS):
        if node != "node-a":
            continue
        pkt = Packet(ip_address(src), ip_address(dst), Proto(proto), 30000 + i, port,
                     "S" if proto == "tcp" else "", iif=iif)
        outcomes = expect[mode][0]
        r = dp.forward(pkt, iif, float(i))
        if outcomes and outcomes[0] in ("DROP", "REJECT"):
            assert r.verdict == outcomes[0], _id
            continue
        assert r.verdict == "ACCEPT", _id
        if not outcomes:
            assert r.packet.dst == pkt.dst, _id
            continue
        assert r.packet.endpoint_str() in outcomes, _id
        back = Packet(r.packet.dst, r.packet.src, Proto(proto), r.packet.dport, r.packet.sport,
                      "SA" if proto == "tcp" else "", iif="vethx")
        rr = dp.forward(back, "vethx", float(i) + 0.5)
        assert (rr.packet.src, rr.packet.sport) == (pkt.dst, pkt.dport), _id
        assert (rr.packet.dst, rr.packet.sport and rr.packet.dport) == (pkt.src, pkt.sport), _id


def test_compare_report(cluster):
    rep = modes.compare(cluster)
    diff = {(f.flow.node, f.flow.kind, f.flow.service) for f in rep.differences}
    assert ("node-a", "LoadBalancer", "shop/lblocal:http") in diff
    assert ("node-a", "NodePort", "shop/lblocal:http") in diff
    assert ("node-a", "ClusterIP-unused-port", "shop/cart:http") in diff
    assert ("node-a", "ClusterIP", "shop/cart:http") not in diff
    js = modes.to_json(rep)
    assert js["flows"] == len(rep.flows) and js["differences"]
    assert js["cost"]["iptables"]["rules_walked_mean"] > 0
    text = modes.render_text(rep)
    assert "differ." in text and "first-packet cost" in text
    assert "  ipvs      10.244.2.60:8080" in text


def test_ipvs_and_nft_cost_stay_flat_while_iptables_grows():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_modes", Path(__file__).resolve().parents[1] / "bench" / "modes.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_modes"] = bench  # dataclasses resolve annotations through it
    spec.loader.exec_module(bench)
    synthetic_cluster, first_packet_cost = bench.synthetic_cluster, bench.first_packet_cost

    small, big = synthetic_cluster(20), synthetic_cluster(400)
    c_small = {m: first_packet_cost(small, m) for m in ALL}
    c_big = {m: first_packet_cost(big, m) for m in ALL}
    assert c_big["iptables"] > 5 * c_small["iptables"]
    assert c_big["nftables"] == c_small["nftables"]
    assert c_big["ipvs"] == c_small["ipvs"]
