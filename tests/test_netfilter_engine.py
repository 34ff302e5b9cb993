"""Evaluator: NAT through conntrack, masquerade, statistic, recent, REJECT/DROP, addrtype,
rules_walked, enumeration (reference §2.13 worked example on node-a, §3, §9)."""

from __future__ import annotations

import random
from collections import Counter
from ipaddress import ip_address as A
from pathlib import Path

import pytest

from knet.netfilter.engine import Netfilter
from knet.netfilter.ipset import IPSet
from knet.netfilter.packet import Packet, Proto
from knet.netfilter.rules import Rule, RuleSet, parse_rules, split_tokens

DATA = Path(__file__).parent / "data" / "netfilter"
NODE = A("192.168.10.11")

# reference §2.2, inserted (prepended) in this order by kube-proxy on a fresh node
JUMPS = [
    ("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),  # noqa: E501
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),  # noqa: E501
    ("filter", "INPUT", '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS'),  # noqa: E501
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),  # noqa: E501
    ("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),  # noqa: E501
    ("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    ("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'),  # noqa: E501
    ("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'),  # noqa: E501
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'),  # noqa: E501
    ("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "POSTROUTING", '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'),  # noqa: E501
    ("filter", "INPUT", "-j KUBE-FIREWALL"),
    ("filter", "OUTPUT", "-j KUBE-FIREWALL"),
]


def node_a(text: str | None = None) -> RuleSet:
    rs = parse_rules(text or (DATA / "worked-example.restore").read_text())
    for table, chain, args in JUMPS:
        rs.table(table).insert(Rule(chain, tuple(split_tokens(args))), 1)
    return rs


class Scripted(random.Random):
    """An rng whose random() returns scripted values (then 0.99), counting draws."""

    def __init__(self, values: list[float]) -> None:
        super().__init__(0)
        self.values = list(values)
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return self.values.pop(0) if self.values else 0.99


def nf_for(rs: RuleSet, rng: random.Random | None = None, **kw: object) -> Netfilter:
    return Netfilter(rs, local_addresses=[NODE], masquerade_address={4: NODE},
                     rng=rng or random.Random(7), **kw)  # type: ignore[arg-type]


def syn(src: str, dst: str, dport: int, sport: int = 40000, proto: Proto = Proto.TCP) -> Packet:
    return Packet(A(src), A(dst), proto, sport, dport, flags="S" if proto == Proto.TCP else "")


def reply_to(p: Packet, flags: str = "SA") -> Packet:
    return Packet(p.dst, p.src, p.proto, p.dport, p.sport, flags=flags)


def test_clusterip_dnat_and_reply_undnat_through_conntrack() -> None:
    nf = nf_for(node_a(), Scripted([0.9, 0.9]))  # skip 1.12 and 1.5 → 2.7
    r = nf.process(syn("10.244.1.9", "10.96.7.20", 80), "prerouting", 0.0)
    assert (r.verdict, str(r.packet.dst), r.packet.dport, r.local) == (
        "ACCEPT", "10.244.2.7", 8080, False)
    assert str(r.packet.src) == "10.244.1.9"  # pod source: no masquerade
    dn = [s for s in r.steps if s.action == "dnat"]
    assert dn[0].chain == "KUBE-SEP-D6PPDDRHTZSFOGTV" and dn[0].index == 2
    assert dn[0].before is not None and str(dn[0].before.dst) == "10.96.7.20"
    assert r.ctstates == {"NEW", "DNAT"}
    back = nf.process(reply_to(r.packet), "prerouting", 0.1)
    assert (str(back.packet.src), back.packet.sport, str(back.packet.dst)) == (
        "10.96.7.20", 80, "10.244.1.9")
    assert back.ctstate == "ESTABLISHED" and back.direction == "reply"
    assert not any(s.table == "nat" for s in back.steps)  # nat is not consulted again
    again = nf.process(Packet(A("10.244.1.9"), A("10.96.7.20"), Proto.TCP, 40000, 80, flags="A"),
                       "prerouting", 0.2)
    assert str(again.packet.dst) == "10.244.2.7" and again.ctstate == "ESTABLISHED"
    assert nf.rng.draws == 2  # type: ignore[attr-defined]


def test_nodeport_from_outside_is_masqueraded_and_reply_restored() -> None:
    nf = nf_for(node_a())
    p = syn("203.0.113.9", "192.168.10.11", 30080, sport=5555)
    r = nf.process(p, "prerouting", 0.0)
    assert str(r.packet.dst) == "10.244.2.9" and r.packet.dport == 8080
    assert r.packet.src == NODE and r.masqueraded
    assert [s.chain for s in r.steps if s.action == "mark"] == ["KUBE-MARK-MASQ",
                                                                 "KUBE-POSTROUTING"]
    back = nf.process(reply_to(r.packet), "prerouting", 1.0)
    assert (str(back.packet.src), back.packet.sport) == ("192.168.10.11", 30080)
    assert (str(back.packet.dst), back.packet.dport) == ("203.0.113.9", 5555)


def test_hairpin_masquerade_when_endpoint_is_the_client() -> None:
    nf = nf_for(node_a(), Scripted([0.9, 0.1]))  # second endpoint: 10.244.1.5
    r = nf.process(syn("10.244.1.5", "10.96.7.20", 80), "prerouting", 0.0)
    assert str(r.packet.dst) == "10.244.1.5" and r.packet.src == NODE


def test_node_process_to_clusterip_is_masqueraded_on_output_path() -> None:
    nf = nf_for(node_a())
    r = nf.process(syn("192.168.10.11", "10.96.7.30", 80), "output", 0.0)
    assert str(r.packet.dst) == "10.244.2.9" and r.masqueraded and not r.local


def test_statistic_distribution_is_uniform_and_reproducible() -> None:
    def run(seed: int) -> Counter[str]:
        nf = nf_for(node_a(), random.Random(seed))
        return Counter(str(nf.process(syn("10.244.3.3", "10.96.7.20", 80, sport=1000 + i),
                                      "prerouting", 0.0).packet.dst) for i in range(3000))
    c = run(42)
    assert set(c) == {"10.244.1.12", "10.244.1.5", "10.244.2.7"}
    assert all(900 < n < 1100 for n in c.values()), c
    assert run(42) == c


def test_one_rng_draw_per_statistic_evaluation() -> None:
    rng = Scripted([0.1])
    nf = nf_for(node_a(), rng)
    nf.process(syn("10.244.3.3", "10.96.7.20", 80, sport=1), "prerouting", 0.0)
    assert rng.draws == 1
    nf.process(syn("10.244.3.3", "10.96.7.20", 80, sport=2), "prerouting", 0.0)  # 0.99, 0.99
    assert rng.draws == 3


AFFINITY = (DATA / "worked-example.restore").read_text().replace(
    '-A KUBE-SVC-I5LIAMPLWKMBJ54B -m comment --comment "shop/cart:http -> 10.244.1.12:8080" -m statistic',  # noqa: E501
    '-A KUBE-SVC-I5LIAMPLWKMBJ54B -m comment --comment "shop/cart:http -> 10.244.1.12:8080" -m recent --name KUBE-SEP-4O5AICOKW2EZK2IV --rcheck --seconds 10800 --reap -j KUBE-SEP-4O5AICOKW2EZK2IV\n'  # noqa: E501
    '-A KUBE-SVC-I5LIAMPLWKMBJ54B -m comment --comment "shop/cart:http -> 10.244.1.5:8080" -m recent --name KUBE-SEP-27VOFYQ7SVOL37XI --rcheck --seconds 10800 --reap -j KUBE-SEP-27VOFYQ7SVOL37XI\n'  # noqa: E501
    '-A KUBE-SVC-I5LIAMPLWKMBJ54B -m comment --comment "shop/cart:http -> 10.244.2.7:8080" -m recent --name KUBE-SEP-D6PPDDRHTZSFOGTV --rcheck --seconds 10800 --reap -j KUBE-SEP-D6PPDDRHTZSFOGTV\n'  # noqa: E501
    '-A KUBE-SVC-I5LIAMPLWKMBJ54B -m comment --comment "shop/cart:http -> 10.244.1.12:8080" -m statistic'  # noqa: E501
).replace("-m comment --comment shop/cart:http -m tcp -p tcp -j DNAT --to-destination 10.244.2.7",
          "-m comment --comment shop/cart:http -m recent --name KUBE-SEP-D6PPDDRHTZSFOGTV --set -m tcp -p tcp -j DNAT --to-destination 10.244.2.7")  # noqa: E501


def test_session_affinity_sticks_then_expires_on_the_clock() -> None:
    nf = nf_for(node_a(AFFINITY), Scripted([0.9, 0.9, 0.0, 0.0]))
    first = nf.process(syn("10.244.3.3", "10.96.7.20", 80, sport=1), "prerouting", 0.0)
    assert str(first.packet.dst) == "10.244.2.7"
    for t, sport in ((100.0, 2), (10_000.0, 3)):
        r = nf.process(syn("10.244.3.3", "10.96.7.20", 80, sport=sport), "prerouting", t)
        assert str(r.packet.dst) == "10.244.2.7"
        assert any("--rcheck" in s.rule for s in r.steps)
    # 10800 s after the last --set (t=10000) the entry is stale: the statistic picks anew
    later = nf.process(syn("10.244.3.3", "10.96.7.20", 80, sport=4), "prerouting", 20_801.0)
    assert str(later.packet.dst) == "10.244.1.12"
    other = nf_for(node_a(AFFINITY), Scripted([0.0]))
    assert str(other.process(syn("10.244.3.4", "10.96.7.20", 80), "prerouting", 1.0)
               .packet.dst) == "10.244.1.12"


def test_reject_without_endpoints_and_drop_outside_source_ranges() -> None:
    nf = nf_for(node_a())
    r = nf.process(syn("10.244.3.3", "10.96.7.40", 80), "prerouting", 0.0)
    assert (r.verdict, r.reject_with) == ("REJECT", "icmp-port-unreachable")
    assert r.steps[-1].chain == "KUBE-SERVICES" and r.steps[-1].table == "filter"
    d = nf.process(syn("203.0.113.9", "192.0.2.80", 443), "prerouting", 0.0)
    assert d.verdict == "DROP" and d.reject_with == ""
    assert any(s.rule.startswith("-A KUBE-FW-") and s.action == "continue" for s in d.steps)
    ok = nf.process(syn("198.51.100.7", "192.0.2.80", 443), "prerouting", 0.0)
    assert ok.verdict == "ACCEPT" and str(ok.packet.dst) == "10.244.1.20"
    assert ok.packet.src == A("198.51.100.7")  # eTP Local: client IP preserved
    assert len(nf.conntrack) == 1  # dropped/rejected first packets leave no entry


def test_addrtype_local_decides_nodeports() -> None:
    nf = nf_for(node_a())
    to_node = nf.process(syn("203.0.113.9", "192.168.10.11", 30080), "prerouting", 0.0)
    assert str(to_node.packet.dst) == "10.244.2.9"
    elsewhere = nf.process(syn("203.0.113.9", "192.168.10.99", 30080), "prerouting", 0.0)
    assert str(elsewhere.packet.dst) == "192.168.10.99" and not elsewhere.local
    loop = nf.process(syn("127.0.0.1", "127.0.0.1", 30080), "output", 0.0)
    assert str(loop.packet.dst) == "10.244.2.9"


def test_local_delivery_and_health_check_accept() -> None:
    nf = nf_for(node_a())
    r = nf.process(syn("203.0.113.9", "192.168.10.11", 32100), "prerouting", 0.0)
    assert r.verdict == "ACCEPT" and r.local
    assert any(s.chain == "KUBE-NODEPORTS" and s.action == "accept" for s in r.steps)


def test_kube_firewall_uses_ctstate_dnat() -> None:
    nf = nf_for(node_a())
    r = nf.process(syn("10.0.0.9", "127.0.0.1", 9999), "prerouting", 0.0)
    assert r.verdict == "DROP" and r.steps[-1].chain == "KUBE-FIREWALL"


def test_invalid_packets_are_dropped_by_kube_forward() -> None:
    nf = nf_for(node_a())
    r = nf.process(Packet(A("10.244.1.9"), A("10.244.2.7"), Proto.TCP, 1, 2, flags="R"),
                   "prerouting", 0.0)
    assert r.ctstate == "INVALID" and r.verdict == "DROP"
    assert len(nf.conntrack) == 0


def test_conntrack_timeouts_on_the_clock() -> None:
    nf = nf_for(node_a())
    q = syn("10.244.1.9", "10.96.7.30", 80, proto=Proto.UDP)
    nf.process(q, "prerouting", 0.0)
    assert nf.process(q, "prerouting", 29.0).ctstate == "NEW"  # unreplied, still tracked
    assert len(nf.conntrack) == 1 and nf.conntrack.next_deadline() == 59.0
    assert nf.conntrack.expire(59.0) == 1
    r = nf.process(q, "prerouting", 60.0)
    nf.process(reply_to(r.packet, ""), "prerouting", 61.0)
    assert nf.conntrack.next_deadline() == 181.0  # udp stream timeout after a reply
    t = syn("10.244.1.9", "10.96.7.30", 80, sport=7)
    r = nf.process(t, "prerouting", 0.0)
    nf.process(reply_to(r.packet, "SA"), "prerouting", 0.0)
    est = nf.process(t.replace(flags="A"), "prerouting", 0.0)
    assert est.entry is not None and est.entry.tcp_state == "ESTABLISHED"
    assert est.entry.expires == 86400.0


def test_rules_walked_counts_the_sequential_cost() -> None:
    rs = RuleSet(4)
    nat = rs.table("nat")
    nat.declare("KUBE-SERVICES")
    nat.append(Rule("PREROUTING", ("-j", "KUBE-SERVICES")))
    for i in range(1000):
        nat.append(Rule("KUBE-SERVICES", ("-m", "tcp", "-p", "tcp", "-d", f"10.96.{i // 250}.{i % 250}",
                                          "--dport", "80", "-j", "DNAT", "--to-destination",
                                          f"10.244.0.{i % 250}:8080")))
    nf = nf_for(rs)
    r = nf.process(syn("10.244.9.9", "10.96.2.10", 80), "prerouting", 0.0)
    assert str(r.packet.dst) == "10.244.0.10"
    # PREROUTING rule 1 + 511 rules of KUBE-SERVICES (match at #511); POSTROUTING: empty
    assert r.rules_walked == 1 + 511
    miss = nf.process(syn("10.244.9.9", "10.96.9.9", 80), "prerouting", 0.0)
    assert miss.rules_walked == 1 + 1000 and str(miss.packet.dst) == "10.96.9.9"
    naive = nf_for(rs, index_threshold=1 << 30)
    assert naive.process(syn("10.244.9.9", "10.96.2.10", 80), "prerouting", 0.0).rules_walked \
        == 512


def test_index_follows_chain_changes() -> None:
    rs = node_a()
    nf = nf_for(rs, index_threshold=2)
    assert nf.process(syn("10.244.3.3", "10.96.7.99", 80), "prerouting", 0.0).packet.dst == \
        A("10.96.7.99")
    nat = rs["nat"]
    nat.declare("KUBE-SVC-NEW")
    nat.append(Rule("KUBE-SVC-NEW", ("-m", "tcp", "-p", "tcp", "-j", "DNAT", "--to-destination",
                                     "10.244.9.9:80")))
    nat.insert(Rule("KUBE-SERVICES", ("-m", "tcp", "-p", "tcp", "-d", "10.96.7.99", "--dport",
                                      "80", "-j", "KUBE-SVC-NEW")), 1)
    assert str(nf.process(syn("10.244.3.3", "10.96.7.99", 80, sport=2), "prerouting", 0.0)
               .packet.dst) == "10.244.9.9"
    nat.replace_chain("KUBE-SVC-NEW", [Rule("KUBE-SVC-NEW", ("-j", "DNAT", "--to-destination",
                                                             "10.244.9.10:80"))])
    assert str(nf.process(syn("10.244.3.3", "10.96.7.99", 80, sport=3), "prerouting", 0.0)
               .packet.dst) == "10.244.9.10"


@pytest.mark.parametrize(("src", "dst", "port", "hook", "outcomes", "masq"), [
    ("10.244.3.3", "10.96.7.20", 80, "prerouting",
     ["10.244.1.12:8080", "10.244.1.5:8080", "10.244.2.7:8080"], False),
    ("10.244.1.5", "10.96.7.20", 80, "prerouting",
     ["10.244.1.12:8080", "10.244.1.5:8080", "10.244.2.7:8080"], True),  # hairpin branch
    ("192.168.10.11", "10.96.7.20", 80, "output",
     ["10.244.1.12:8080", "10.244.1.5:8080", "10.244.2.7:8080"], True),
    ("10.244.3.3", "10.96.7.40", 80, "prerouting", ["REJECT"], False),
    ("203.0.113.9", "192.0.2.80", 443, "prerouting", ["DROP"], False),
    ("198.51.100.7", "192.0.2.80", 443, "prerouting", ["10.244.1.20:8443"], False),
    ("203.0.113.9", "192.168.10.11", 31443, "prerouting", ["10.244.1.20:8443"], False),
    ("10.244.2.2", "192.168.10.11", 31443, "prerouting",
     ["10.244.1.20:8443", "10.244.2.21:8443"], False),  # pod short-circuit to SVC
    ("192.168.10.11", "192.168.10.11", 31443, "output",
     ["10.244.1.20:8443", "10.244.2.21:8443"], True),
    ("203.0.113.9", "192.168.10.11", 30080, "prerouting", ["10.244.2.9:8080"], True),
    ("203.0.113.9", "192.168.10.11", 32100, "prerouting", ["ACCEPT"], False),
    ("10.244.3.3", "10.96.7.20", 81, "prerouting", [], False),
])
def test_enumerate_outcomes(src: str, dst: str, port: int, hook: str, outcomes: list[str],
                            masq: bool) -> None:
    for rs in (node_a(), parse_rules((DATA / "worked-example.restore").read_text())):
        nf = nf_for(rs, Scripted([]))
        o = nf.enumerate_outcomes(syn(src, dst, port), hook)
        assert (o.outcomes, o.masquerade) == (outcomes, masq)
        assert nf.rng.draws == 0 and len(nf.conntrack) == 0  # type: ignore[attr-defined]


def test_enumerate_affinity_both_ways() -> None:
    nf = nf_for(node_a(AFFINITY))
    p = syn("10.244.3.3", "10.96.7.20", 80)
    assert nf.enumerate_outcomes(p).outcomes == [
        "10.244.1.12:8080", "10.244.1.5:8080", "10.244.2.7:8080"]
    items = nf.enumerate_outcomes(p, affinity=True).items
    assert len(items) == 6 and items[0].chains[-1] == "KUBE-SEP-4O5AICOKW2EZK2IV"


def test_ipv6_dnat_and_enumeration() -> None:
    text = """*nat
:KUBE-SERVICES - [0:0]
:KUBE-SEP-A - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -m comment --comment "ns/s cluster IP" -m tcp -p tcp -d fd00:96::10 --dport 80 -j KUBE-SEP-A
-A KUBE-SEP-A -m comment --comment ns/s -m tcp -p tcp -j DNAT --to-destination [fd00:10::5]:8080
COMMIT
"""  # noqa: E501
    rs = parse_rules(text)
    assert rs.family == 6
    nf = Netfilter(None, rs, local_addresses=[A("fd00::1")])
    p = syn("fd00:10::9", "fd00:96::10", 80)
    r = nf.process(p, "prerouting", 0.0)
    assert r.packet.dst == A("fd00:10::5") and r.packet.dport == 8080
    assert nf.enumerate_outcomes(p).outcomes == ["[fd00:10::5]:8080"]


def test_ipset_matches_and_unknown_matches_are_reported() -> None:
    text = """*nat
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m owner --uid-owner 0 -j ACCEPT
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
COMMIT
"""  # noqa: E501
    sets = {"KUBE-CLUSTER-IP": IPSet.of("KUBE-CLUSTER-IP", "hash:ip,port",
                                        ["10.96.7.20,tcp:80"])}
    nf = Netfilter(parse_rules(text), local_addresses=[NODE], ipsets=sets)
    r = nf.process(syn("192.168.10.11", "10.96.7.20", 80), "prerouting", 0.0)
    assert r.packet.mark == 0x4000
    assert any("-m owner" in u for u in r.unknown)
    r2 = nf.process(syn("192.168.10.11", "10.96.7.20", 81), "prerouting", 0.0)
    assert r2.packet.mark == 0


def test_forward_adapter_matches_the_fabric_datapath_protocol() -> None:
    nf = nf_for(node_a())
    hop = nf.forward(syn("10.244.1.9", "10.96.7.30", 80), "veth1234", 0.0)
    assert hop.verdict == "ACCEPT" and hop.packet.iif == "veth1234" and not hop.local
    assert hop.explanation == hop.steps
    out = nf.forward(syn("192.168.10.11", "192.168.10.11", 32100, sport=9), "", 0.0)
    assert out.local
