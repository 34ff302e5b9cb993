"""The nftables evaluator: transaction semantics and packet semantics (jump/goto, vmap miss,
numgen, affinity timeouts, reject/drop, conntrack un-NAT, masquerade)."""

from __future__ import annotations

import random
from collections import Counter
from ipaddress import ip_address

import pytest

from knet.errors import RulesError
from knet.netfilter.nft import Nftables, NftTable
from knet.netfilter.packet import Packet, Proto
from knet.proxy import modes

from modes_factory import rich

A = ip_address


def dp(node="node-a", seed=1, c=None):
    c = c or rich()
    return modes.node_datapath(c, c.node(node), random.Random(seed), "nftables")


def syn(src, dst, dport, sport=40000, proto=Proto.TCP, iif="eth0"):
    return Packet(A(src), A(dst), proto, sport, dport, "S" if proto == Proto.TCP else "", iif=iif)


def test_transaction_semantics():
    t = NftTable()
    t.apply("""add table ip kube-proxy { comment "x" ; }
add chain ip kube-proxy a
add rule ip kube-proxy a jump b""".replace("jump b", "return"))
    assert t.comment == "x" and len(t.chains["a"].rules) == 1
    t.apply("add chain ip kube-proxy a\nflush chain ip kube-proxy a")
    assert t.chains["a"].rules == []
    with pytest.raises(RulesError, match="line 1"):
        t.apply("add rule ip kube-proxy a tcp dport 80 accept")
    with pytest.raises(RulesError):
        t.apply("add rule ip other a return")


def _table(rules: str) -> Nftables:
    t = NftTable()
    t.apply("add table ip kube-proxy\n"
            "add chain ip kube-proxy pre { type filter hook prerouting priority -110 ; }\n"
            "add chain ip kube-proxy b\nadd chain ip kube-proxy c\n"
            "add map ip kube-proxy m { type ipv4_addr . inet_proto . inet_service : verdict ; }\n"
            + rules)
    return Nftables({4: t}, local_addresses=[A("192.168.0.1")])


def test_jump_returns_goto_does_not_and_vmap_miss_continues():
    n = _table("add rule ip kube-proxy pre jump b\n"
               "add rule ip kube-proxy pre ip daddr . meta l4proto . th dport vmap @m\n"
               "add rule ip kube-proxy pre drop\n"
               "add rule ip kube-proxy b goto c\n"
               "add rule ip kube-proxy b drop\n"
               "add rule ip kube-proxy c return\n"
               "add element ip kube-proxy m { 10.0.0.1 . tcp . 80 : accept }\n")
    # jump b → goto c → return from c returns to pre (skipping b's drop); vmap miss → drop
    assert n.process(syn("1.1.1.1", "10.0.0.2", 80), "prerouting", 0).verdict == "DROP"
    assert n.process(syn("1.1.1.1", "10.0.0.1", 80, sport=2), "prerouting", 0).verdict == "ACCEPT"


def test_numgen_is_uniform_and_affinity_sticks_until_timeout():
    c = rich()
    d = dp(c=c)
    seen = Counter()
    for i in range(300):
        r = d.forward(syn("10.244.1.99", "10.96.7.20", 80, sport=1000 + i, iif="veth"), "veth", 0.0)
        seen[r.packet.endpoint_str()] += 1
    assert set(seen) == {"10.244.1.5:8080", "10.244.1.12:8080", "10.244.2.7:8080"}
    assert min(seen.values()) > 70
    first = d.forward(syn("10.244.1.98", "10.96.7.70", 80, sport=1, iif="veth"), "veth", 0.0)
    for i in range(2, 12):
        r = d.forward(syn("10.244.1.98", "10.96.7.70", 80, sport=i, iif="veth"), "veth", 100.0)
        assert r.packet.dst == first.packet.dst
    later = {d.forward(syn("10.244.1.98", "10.96.7.70", 80, sport=100 + i, iif="veth"), "veth",
                       2000.0 + i * 700).packet.dst for i in range(12)}
    assert len(later) == 2  # affinity expired (600 s) between connections


def test_reply_is_unnatted_and_masquerade_for_outside():
    d = dp()
    r = d.forward(syn("203.0.113.10", "10.96.7.20", 80), "eth0", 0.0)
    assert r.verdict == "ACCEPT" and str(r.packet.src) == "192.168.10.11"
    assert r.masqueraded and r.packet.sport != 40000
    back = Packet(r.packet.dst, r.packet.src, Proto.TCP, r.packet.dport, r.packet.sport, "SA")
    rr = d.forward(back, "veth", 0.1)
    assert (str(rr.packet.src), rr.packet.sport) == ("10.96.7.20", 80)
    assert (str(rr.packet.dst), rr.packet.dport) == ("203.0.113.10", 40000)


def test_reject_drop_and_firewall():
    d = dp()
    assert d.forward(syn("203.0.113.10", "10.96.7.40", 80), "eth0", 0).verdict == "REJECT"
    assert d.forward(syn("203.0.113.10", "10.96.7.20", 81), "eth0", 0).verdict == "REJECT"
    assert d.forward(syn("203.0.113.10", "10.96.99.99", 80), "eth0", 0).verdict == "DROP"
    # LB source ranges: outside the range dropped pre-DNAT, inside accepted
    r = d.forward(syn("203.0.113.10", "192.0.2.80", 443), "eth0", 0)
    assert r.verdict == "DROP" and r.steps[-1].chain.startswith("firewall-")
    ok = d.forward(syn("198.51.100.7", "192.0.2.80", 443), "eth0", 0)
    assert ok.verdict == "ACCEPT" and ok.packet.endpoint_str() == "10.244.1.20:8443"
    assert str(ok.packet.src) == "198.51.100.7"  # eTP Local: client IP preserved


def test_nodeport_only_on_nodeport_ips():
    d = dp()
    r = d.forward(syn("203.0.113.10", "192.168.10.11", 30080), "eth0", 0)
    assert r.packet.endpoint_str() == "10.244.2.9:8080" and r.masqueraded
    lo = d.process(syn("127.0.0.1", "127.0.0.1", 30080), "output", 0)
    assert lo.verdict == "ACCEPT" and lo.local and lo.packet.dport == 30080  # not a NodePort


def test_enumerate_is_stateless():
    d = dp()
    before = d.rng.getstate()
    oc = d.enumerate_outcomes(syn("10.244.1.5", "10.96.7.20", 80, iif="veth"), "prerouting",
                              affinity=True)
    assert d.rng.getstate() == before and len(d.conntrack) == 0
    assert {o.target: o.masquerade for o in oc.items} == {
        "10.244.1.12:8080": False, "10.244.1.5:8080": True, "10.244.2.7:8080": False}
