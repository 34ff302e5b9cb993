"""The chain memo must not change meaning: a Netfilter with it == the reference without it
(``nf._memo = False``: every chain evaluated rule by rule), packet for packet, on random
kube-proxy tables (built by knet.proxy) and random generic tables: verdict, packets, steps
(explain on and off), rules_walked, ctstates, unknown, the conntrack entry, rng streams."""

from __future__ import annotations

import random
from ipaddress import ip_address as A

from hypothesis import given, settings
from hypothesis import strategies as st

from knet.netfilter.engine import Netfilter
from knet.netfilter.packet import Packet, Proto
from knet.netfilter.rules import Rule, RuleSet
from knet.proxy.iptables import build_ruleset
from proxy_factories import CLUSTER, PROXY, ep, node, port, service, slice_

from test_netfilter_index import build as generic_ruleset
from test_netfilter_index import rule_args

NODE_IP = "192.168.10.11"
NODE = A(NODE_IP)


def view(r: object) -> tuple:
    e = r.entry  # type: ignore[attr-defined]
    ent = None if e is None else (e.orig, e.reply, e.tcp_state, e.expires, e.seen_reply,
                                  e.packets)
    return (r.verdict, r.packet, r.original, r.local, r.reject_with, r.steps,  # type: ignore[attr-defined]
            r.rules_walked, r.ctstate, r.ctstates, r.direction, r.unknown, ent,  # type: ignore[attr-defined]
            r.masqueraded)  # type: ignore[attr-defined]


def pair(rs: RuleSet, seed: int, **kw: object) -> tuple[Netfilter, Netfilter]:
    kw = {"local_addresses": [NODE], "masquerade_address": {4: NODE}, **kw}
    fast = Netfilter(rs, rng=random.Random(seed), **kw)  # type: ignore[arg-type]
    ref = Netfilter(rs, rng=random.Random(seed), **kw)  # type: ignore[arg-type]
    ref._memo = False
    return fast, ref


def same(fast: Netfilter, ref: Netfilter, p: Packet, hook: str, now: float, explain: bool,
         iif: str | None) -> object:
    a = fast.process(p, hook, now, explain=explain, iif=iif)
    b = ref.process(p, hook, now, explain=explain, iif=iif)
    assert view(a) == view(b), (p, hook)
    assert fast.rng.getstate() == ref.rng.getstate()
    assert fast._port_rng.getstate() == ref._port_rng.getstate()
    assert len(fast.conntrack) == len(ref.conntrack)
    return a


# --------------------------------------------------------------------------------------------
# kube-proxy tables

@st.composite
def clusters(draw: st.DrawFn) -> RuleSet:
    services, slices = [], []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["ClusterIP", "ClusterIP", "NodePort", "LoadBalancer"]))
        etp = draw(st.sampled_from(["Cluster", "Local"])) if kind != "ClusterIP" else ""
        np_ = 30000 + i if kind != "ClusterIP" else 0
        lb = (f"192.0.2.{80 + i}",) if kind == "LoadBalancer" else ()
        ranges = ("198.51.100.0/24",) if lb and draw(st.booleans()) else ()
        svc = service(f"s{i}", f"10.96.0.{10 + i}", port(80, "http", target=8080, node_port=np_),
                      type=kind, etp=etp, lb_ips=lb, ranges=ranges,
                      hc=32000 + i if etp == "Local" else 0,
                      affinity=draw(st.integers(0, 4)) == 0)
        services.append(svc)
        eps = [ep(f"10.244.{draw(st.sampled_from([1, 2]))}.{20 + 10 * i + k + i % 2}",
                  draw(st.sampled_from(["node-a", "node-b"])))
               for k in range(draw(st.integers(0, 4)))]
        slices.append(slice_(f"s{i}", *eps, ports=(("http", 8080, "TCP"),)))
    return build_ruleset(node(pod_cidrs=("10.244.1.0/24",)), services, slices, PROXY, CLUSTER)


# pods (10.244.1.20/10.244.2.21/10.244.1.31: endpoints too, for hairpin), outside, the node
SOURCES = ["10.244.1.9", "10.244.2.9", "10.244.1.20", "10.244.2.21", "10.244.1.31",
           "198.51.100.7", "203.0.113.7", NODE_IP]
DESTS = ["10.96.0.10", "10.96.0.11", "10.96.0.12", "192.0.2.81", "192.0.2.83", NODE_IP,
         "10.244.1.20"]
first_packets = st.tuples(st.sampled_from(SOURCES), st.sampled_from(DESTS),
                          st.sampled_from([80, 30001, 30002, 30003, 8080]),
                          st.sampled_from([Proto.TCP, Proto.TCP, Proto.UDP]),
                          st.sampled_from([0, 0, 0x4000, 0x1]), st.integers(0, 3))


@settings(max_examples=60, deadline=None)
@given(clusters(), st.lists(first_packets, min_size=4, max_size=30), st.integers(0, 2**32),
       st.booleans(), st.sampled_from([1, 16]))
def test_memo_equals_reference_on_kube_proxy_tables(rs: RuleSet, script: list, seed: int,
                                                    explain_first: bool, threshold: int) -> None:
    fast, ref = pair(rs, seed, index_threshold=threshold)
    for i, (src, dst, dport, proto, mark, sport) in enumerate(script):
        p = Packet(A(src), A(dst), proto, 40000 + sport, dport,
                   flags="S" if proto == Proto.TCP else "", mark=mark)
        hook = "output" if src == NODE_IP else "prerouting"
        iif = None if hook == "output" else ("veth1" if src.startswith("10.244.") else "eth0")
        explain = explain_first if i % 3 else not explain_first
        r = same(fast, ref, p, hook, float(i), explain, iif)
        if r.verdict == "ACCEPT" and r.entry is not None and i % 2:  # type: ignore[attr-defined]
            # the reply and the next packet of the connection
            q = r.packet  # type: ignore[attr-defined]
            back = Packet(q.dst, q.src, q.proto, q.dport, q.sport,
                          flags="SA" if proto == Proto.TCP else "")
            same(fast, ref, back, "output" if r.local else "prerouting", i + 0.1,  # type: ignore[attr-defined]
                 explain, None if r.local else "eth0")  # type: ignore[attr-defined]
            same(fast, ref, p.replace(flags="A" if proto == Proto.TCP else ""), hook, i + 0.2,
                 explain, iif)


# --------------------------------------------------------------------------------------------
# generic tables (the index test's random rules) with marks, REJECT, MARK, unknown chains

generic_packets = st.builds(
    lambda s, d, p, port, mark, iif: (Packet(A(s), A(d), p, 1234, port,
                                             flags="S" if p == "tcp" else "", mark=mark), iif),
    st.sampled_from(["10.244.1.7", "10.244.2.7", "172.16.0.5"]),
    st.sampled_from(["10.96.0.1", "10.96.0.2", "10.96.0.3", "192.168.1.1"]),
    st.sampled_from([Proto.TCP, Proto.UDP]), st.sampled_from([53, 80, 443, 8080]),
    st.sampled_from([0, 0x4000, 0x1]), st.sampled_from(["veth1", "eth0"]))


rules = st.one_of(rule_args(), rule_args(stat=False), rule_args(stat=False))


@settings(max_examples=150, deadline=None)
@given(st.lists(rules, min_size=0, max_size=30), st.lists(rules, max_size=6),
       st.lists(generic_packets, min_size=4, max_size=16), st.integers(0, 2**32),
       st.sampled_from([1, 4, 16, 1 << 30]))
def test_memo_equals_reference_on_generic_tables(main: list, sub: list, pkts: list,
                                                 seed: int, threshold: int) -> None:
    rs = generic_ruleset(main, sub)
    fast, ref = pair(rs, seed, local_addresses=[A("192.168.1.1")],
                     masquerade_address={4: A("192.168.1.1")}, index_threshold=threshold)
    for i, (p, iif) in enumerate(pkts):
        p = p.replace(sport=1000 + i % 3)  # repeated tuples: conntrack hits too
        same(fast, ref, p, "prerouting", float(i), i % 2 == 0, iif)


# --------------------------------------------------------------------------------------------
# the memo is used, and follows changes

def test_memo_serves_fixed_chains_and_follows_rule_and_locality_changes() -> None:
    from proxy_factories import worked_example
    n, svcs, sl = worked_example()
    rs = build_ruleset(n, svcs, sl, PROXY, CLUSTER)
    fast, ref = pair(rs, 3)
    for i in range(20):
        same(fast, ref, Packet(A("10.244.1.9"), A("10.96.7.20"), Proto.TCP, 40000 + i, 80, "S"),
             "prerouting", float(i), i % 2 == 0, "veth1")
    memoised = {c.name for t in rs.tables.values() for c in t.chains.values()
                if c._index is not None and c._index.memo_nf is fast and c._index.memo}
    assert {"FORWARD", "KUBE-FORWARD"} <= memoised
    # nat POSTROUTING (with KUBE-POSTROUTING) is replayed by the hook memo as a whole
    assert any(k[0] == "POSTROUTING" and slot[1][0] for k, slot in fast._hook_memo.items())
    assert not {"KUBE-SVC-" in c for c in memoised} - {False}  # statistic chains never are
    # a rule change is seen at once
    p = Packet(A("10.244.1.9"), A("10.96.7.20"), Proto.TCP, 50000, 80, "S")
    rs.table("filter").insert(Rule("FORWARD", ("-s", "10.244.1.9", "-j", "DROP")), 1)
    assert same(fast, ref, p, "prerouting", 30.0, True, "veth1").verdict == "DROP"  # type: ignore[attr-defined]
    rs.table("filter").delete_rule("FORWARD", 1)
    assert same(fast, ref, p.replace(sport=50001), "prerouting", 31.0, True,
                "veth1").verdict == "ACCEPT"  # type: ignore[attr-defined]
    # so is a locality change (addrtype LOCAL in KUBE-SERVICES)
    q = Packet(A("10.244.1.9"), A("10.244.1.50"), Proto.TCP, 50002, 30080, "S")
    assert not same(fast, ref, q, "prerouting", 32.0, True, "veth1").local  # type: ignore[attr-defined]
    for nf in (fast, ref):
        nf.set_local_addresses([NODE, A("10.244.1.50")])
    r = same(fast, ref, q.replace(sport=50003), "prerouting", 33.0, True, "veth1")
    assert r.packet.dst == A("10.244.2.9")  # type: ignore[attr-defined]  # now a NodePort


def test_memo_replays_dnat_with_kept_and_constant_fields() -> None:
    rs = RuleSet(4)
    nat = rs.table("nat")
    nat.declare("KUBE-X")
    nat.append(Rule("PREROUTING", ("-j", "KUBE-X")))
    nat.append(Rule("KUBE-X", ("-p", "tcp", "-d", "10.96.0.1", "-j", "DNAT", "--to-destination",
                               "10.244.1.5")))  # address only: the port is kept
    nat.append(Rule("KUBE-X", ("-p", "udp", "-j", "DNAT", "--to-destination",
                               "10.244.1.6:53")))
    fast, ref = pair(rs, 1)
    for i, (dst, proto, dport) in enumerate([("10.96.0.1", Proto.TCP, 80), ("10.96.0.1", Proto.TCP, 443),
                                             ("10.96.0.9", Proto.UDP, 5353), ("10.96.0.8", Proto.UDP, 53)]):
        for k in range(2):
            p = Packet(A("10.244.2.2"), A(dst), proto, 1000 + 2 * i + k, dport,
                       "S" if proto == Proto.TCP else "")
            r = same(fast, ref, p, "prerouting", float(i), k == 1, "veth1")
            assert r.packet.dport == (dport if proto == Proto.TCP else 53)  # type: ignore[attr-defined]


def test_masquerade_follows_the_callers_address() -> None:
    """MASQUERADE reads the caller's egress address (which the runtime replaces without a
    rule change): never replayed from the memo."""
    rs = RuleSet(4)
    rs.table("nat").append(Rule("POSTROUTING", ("-s", "10.244.0.0/16", "-j", "MASQUERADE")))
    fast, ref = pair(rs, 1)
    p = Packet(A("10.244.1.9"), A("203.0.113.9"), Proto.TCP, 1000, 443, "S")
    assert same(fast, ref, p, "prerouting", 0.0, True, "veth1").packet.src == NODE  # type: ignore[attr-defined]
    for nf in (fast, ref):
        nf.masquerade_address = {4: A("192.168.10.99")}
    r = same(fast, ref, p.replace(sport=1001), "prerouting", 1.0, True, "veth1")
    assert r.packet.src == A("192.168.10.99")  # type: ignore[attr-defined]
