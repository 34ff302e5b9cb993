"""Fast paths must not change meaning: fast compile == full compile, fast save == full save,
the per-flow conntrack cache == full evaluation (and follows rule changes), lazy
explanations, bulk_build, and the IPVS hook (with a trivial test scheduler)."""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass
from ipaddress import ip_address as A
from pathlib import Path

from hypothesis import given, settings

from knet.netfilter.compiler import _compile_fast, _compile_full
from knet.netfilter.engine import IPVSDecision, Netfilter, RealServer, _Walk
from knet.netfilter.packet import Packet, Proto
from knet.netfilter.rules import Rule, RuleSet, _fast_save, bulk_build, parse_rules, split_tokens

from test_netfilter_engine import node_a, nf_for, reply_to, syn
from test_netfilter_index import rule_args

DATA = Path(__file__).parent / "data"
NODE = A("192.168.10.11")


def data_rules() -> list[tuple[Rule, int]]:
    out = []
    for f in sorted((DATA / "netfilter").glob("*")) + sorted((DATA / "proxy").glob("*.restore")):
        try:
            rs = parse_rules(f.read_text())
        except Exception:  # noqa: BLE001 - some files are not rule dumps
            continue
        out += [(r, rs.family) for t in rs.tables.values() for c in t.chains.values()
                for r in c.rules]
    return out


PACKETS = [Packet(A(s), A(d), p, sp, dp, iif=i)
           for s in ("10.244.1.5", "10.244.2.7", "192.168.10.11", "127.0.0.1")
           for d in ("10.96.7.20", "10.244.2.7", "192.168.10.11", "10.96.0.1")
           for p in (Proto.TCP, Proto.UDP) for sp, dp in ((40000, 80), (53, 8080), (1, 443))
           for i in ("", "veth1")]


def same_compile(rule: Rule, family: int) -> bool:
    fast = _compile_fast(rule, family)
    if fast is None:
        return False
    full = _compile_full(rule, family)
    assert (fast.key, fast.target, fast.kind, fast.stat, fast.unknown) == (
        full.key, full.target, full.kind, full.stat, full.unknown), rule
    nf = Netfilter(None, local_addresses=[NODE])
    for p in PACKETS:
        if p.src.version != family:
            continue
        for mode in ("enum", "dry"):  # statistic: matches / does not (no rng draw)
            w = _Walk(nf, p, 0.0, False)
            w.mode = mode
            assert all(pr(w) for pr in fast.preds) == all(pr(w) for pr in full.preds), (rule, p)
    return True


def test_fast_compile_and_save_agree_with_the_parser_on_real_rules() -> None:
    rules = data_rules()
    assert len(rules) > 1000
    compiled = saved = 0
    for r, fam in rules:
        compiled += same_compile(r, fam)
        fast = _fast_save(r.args, fam)
        if fast is not None:
            saved += 1
            assert fast == " ".join(r.parsed(fam).save_tokens()), r
    assert compiled > len(rules) // 3 and saved > len(rules) // 3  # the shapes are covered


@settings(max_examples=150, deadline=None)
@given(rule_args())
def test_fast_compile_and_save_agree_with_the_parser(args: tuple[str, ...]) -> None:
    r = Rule("KUBE-X", args)
    same_compile(r, 4)
    fast = _fast_save(args, 4)
    if fast is not None:
        assert fast == " ".join(r.parsed(4).save_tokens())


def _view(r: object) -> tuple:
    return (r.verdict, r.packet, r.original, r.local, r.reject_with, r.steps,  # type: ignore[attr-defined]
            r.rules_walked, r.ctstate, r.ctstates, r.direction, r.unknown)  # type: ignore[attr-defined]


def test_flow_cache_equals_full_evaluation_and_follows_rule_changes() -> None:
    rs = node_a()
    fast, slow = nf_for(rs, random.Random(3)), nf_for(rs, random.Random(3))
    flows = [syn(f"10.244.1.{9 + i}", "10.96.7.20", 80, sport=41000 + i) for i in range(6)]
    script: list[tuple[Packet, str]] = []
    for p in flows:
        script.append((p, "veth1"))
    for rnd in range(3):
        for p in flows:
            script.append((p.replace(flags="A", seq=rnd), "veth1"))
    for step, (p, iif) in enumerate(script):
        a = fast.forward(p, iif, float(step))
        for e in slow.conntrack.entries():
            e.flows = e.fast_o = e.fast_r = None  # no cache: always the full evaluation
        b = slow.forward(p, iif, float(step))
        assert _view(a) == _view(b)
    assert all(e.flows for e in fast.conntrack.entries())  # the cached path was taken
    # replies (un-DNAT), explain off and on
    for p in flows:
        r = fast.conntrack.lookup(Packet(p.src, A("10.96.7.20"), Proto.TCP, p.sport, 80), 30.0)
        assert r is not None
        e = r[0]
        rep = Packet(e.reply.src, e.reply.dst, Proto.TCP, e.reply.sport, e.reply.dport, "A")
        for explain in (False, True, True):
            a = fast.process(rep.replace(iif="eth0"), "prerouting", 31.0, explain=explain)
            for x in slow.conntrack.entries():
                x.flows = x.fast_o = x.fast_r = None
            b = slow.process(rep.replace(iif="eth0"), "prerouting", 31.0, explain=explain)
            assert _view(a) == _view(b)
            assert (a.packet.src, a.packet.sport) == (A("10.96.7.20"), 80)
    # a rule change (generation bump) is seen by established flows at once
    p = flows[0].replace(flags="A")
    assert fast.forward(p, "veth1", 40.0).verdict == "ACCEPT"
    gen = rs.generation
    rs.table("filter").insert(Rule("FORWARD", ("-s", str(p.src), "-j", "DROP")), 1)
    assert rs.generation > gen
    r = fast.forward(p, "veth1", 41.0)
    assert r.verdict == "DROP" and r.steps[-1].action == "drop"
    rs.table("filter").delete_rule("FORWARD", 1)
    assert fast.forward(p, "veth1", 42.0).verdict == "ACCEPT"
    rs.table("filter").chain("FORWARD").policy = "DROP"  # policies too
    assert fast.forward(p, "veth1", 43.0).verdict == "ACCEPT"  # KUBE-FORWARD accepts it
    fast.set_local_addresses([NODE, A("10.244.2.7"), A("10.244.1.5"), A("10.244.1.12")])
    r = fast.forward(p, "veth1", 44.0)
    assert r.local  # the endpoint became local: the cached "forward" outcome is not reused


def test_cached_outcome_is_not_used_across_stateful_matches() -> None:
    rs = RuleSet(4)
    f = rs.table("filter")
    f.append(Rule("FORWARD", tuple(split_tokens(
        "-m statistic --mode random --probability 0.5 -j DROP"))))
    nf = Netfilter(rs, local_addresses=[NODE], rng=random.Random(5))
    p = syn("10.244.1.9", "10.244.2.7", 80)
    verdicts = set()
    for i in range(40):
        nf.conntrack.flush()
        first = nf.forward(p, "veth1", float(i))
        if first.verdict == "ACCEPT":
            verdicts.add(nf.forward(p.replace(flags="A"), "veth1", float(i)).verdict)
            verdicts.add(nf.forward(p.replace(flags="A"), "veth1", float(i)).verdict)
    assert verdicts == {"ACCEPT", "DROP"}  # every packet draws again, as in the kernel


def test_explanations_are_lazy_and_complete() -> None:
    nf = nf_for(node_a(), random.Random(1))
    r = nf.process(syn("10.244.1.9", "10.96.7.20", 80), "prerouting", 0.0)
    assert r[5] == () and r.steps  # rendered on access
    assert any(s.action == "dnat" and s.rule.startswith("-A KUBE-SEP-") for s in r.steps)
    quiet = nf.process(syn("10.244.1.9", "10.96.7.20", 80, sport=40001), "prerouting", 0.0,
                       explain=False)
    assert quiet.steps == () and quiet.rules_walked > 0


def test_local_reply_is_un_dnatted_at_nat_input() -> None:
    """A node-local client of a ClusterIP sees the reply come from the ClusterIP (the kernel
    un-DNATs at NF_INET_LOCAL_IN)."""
    nf = nf_for(node_a(), random.Random(2))
    out = nf.process(syn(str(NODE), "10.96.7.20", 80), "output", 0.0)
    assert out.verdict == "ACCEPT" and not out.local and out.packet.dst != A("10.96.7.20")
    back = reply_to(out.packet)
    r = nf.process(back.replace(iif="eth0"), "prerouting", 0.1)
    assert r.local and (r.packet.src, r.packet.sport) == (A("10.96.7.20"), 80)
    assert any(s.hook == "INPUT" and s.note == "un-DNAT" for s in r.steps)


def test_bulk_build_pauses_gc_without_freezing() -> None:
    was = gc.isenabled()
    before = gc.get_freeze_count()
    with bulk_build():
        assert not gc.isenabled()
        with bulk_build():  # nested: only the outermost restores the collector
            rules = [Rule("KUBE-X", ("-j", "ACCEPT")) for _ in range(1000)]
        assert not gc.isenabled()
    assert gc.isenabled() == was
    assert gc.get_freeze_count() == before  # freezing is an entry point's choice (knet.heap)
    assert not hasattr(rules[0], "__dict__")


def test_two_rulesets_do_not_invalidate_each_others_flow_caches() -> None:
    """Two clusters in one process: a rule change in one keeps the other's cached outcomes."""
    rs1, rs2 = node_a(), node_a()
    nf1, nf2 = nf_for(rs1), nf_for(rs2)
    p = syn("10.244.1.9", "10.96.7.20", 80, sport=41000)
    for nf in (nf1, nf2):
        nf.forward(p, "veth1", 0.0)
        nf.forward(p.replace(flags="A", seq=1), "veth1", 1.0)
    (entry,) = nf1.conntrack.entries()
    cached = entry.fast_o
    assert cached is not None
    assert nf1.forward(p.replace(flags="A", seq=2), "veth1", 2.0).verdict == "ACCEPT"
    assert entry.fast_o is cached  # the cached outcome served the packet

    gen1 = rs1.generation
    rs2.table("filter").insert(Rule("FORWARD", ("-s", str(p.src), "-j", "DROP")), 1)
    assert rs1.generation == gen1
    assert nf1.forward(p.replace(flags="A", seq=3), "veth1", 3.0).verdict == "ACCEPT"
    assert entry.fast_o is cached  # still valid: the change was the other cluster's
    assert nf2.forward(p.replace(flags="A", seq=3), "veth1", 3.0).verdict == "DROP"

    rs1.table("filter").insert(Rule("FORWARD", ("-s", str(p.src), "-j", "DROP")), 1)
    assert rs1.generation > gen1
    assert nf1.forward(p.replace(flags="A", seq=4), "veth1", 4.0).verdict == "DROP"
    assert entry.fast_o is not cached  # its own change: evaluated again


# --------------------------------------------------------------------------------------------
# IPVS extension point

VIP = A("10.96.50.1")
REAL = [RealServer(A("10.244.2.7"), 8080), RealServer(A("10.244.3.8"), 8080)]


@dataclass
class RoundRobin:
    """A trivial scheduler: one virtual server, real servers in turn."""
    servers: list[RealServer]
    calls: int = 0

    def schedule(self, packet: Packet, now: float) -> IPVSDecision | None:
        if (packet.dst, packet.dport) != (VIP, 80):
            return None
        if not self.servers:
            return IPVSDecision(None, "no real server")
        d = self.servers[self.calls % len(self.servers)]
        self.calls += 1
        return IPVSDecision(d, f"rr → {d.endpoint}")


def ipvs_node(servers: list[RealServer]) -> Netfilter:
    rs = parse_rules("""*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING ! -s 10.244.0.0/16 -d 10.96.50.1/32 -j KUBE-MARK-MASQ
-A OUTPUT -d 10.96.50.1/32 -j KUBE-MARK-MASQ
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -d 10.96.50.1/32 -p tcp -m tcp --dport 81 -j REJECT
COMMIT
""")
    return Netfilter(rs, local_addresses=[NODE, VIP], masquerade_address={4: NODE},
                     rng=random.Random(1), ipvs=RoundRobin(servers))


def test_ipvs_schedules_at_local_in_and_conntrack_un_nats_replies() -> None:
    nf = ipvs_node(list(REAL))
    client = Packet(A("172.18.0.1"), VIP, Proto.TCP, 5000, 80, "S")
    r = nf.forward(client, "eth0", 0.0)
    assert r.verdict == "ACCEPT" and not r.local
    assert (r.packet.dst, r.packet.dport) == (A("10.244.2.7"), 8080)
    assert r.packet.src == NODE and r.masqueraded  # KUBE-POSTROUTING still applies
    hooks = [(s.hook, s.action) for s in r.steps]
    assert ("INPUT", "ipvs") in hooks and ("POSTROUTING", "masquerade") in hooks
    assert hooks.index(("INPUT", "ipvs")) < hooks.index(("POSTROUTING", "masquerade"))
    ipvs_step = next(s for s in r.steps if s.action == "ipvs")
    assert ipvs_step.note == "rr → 10.244.2.7:8080" and ipvs_step.after.dst == A("10.244.2.7")
    assert r.entry is not None and r.entry.ipvs is not None and "DNAT" in r.ctstates
    # the reply: un-SNAT (to the client) and un-DNAT (from the VIP)
    rep = Packet(A("10.244.2.7"), NODE, Proto.TCP, 8080, r.packet.sport, "SA")
    back = nf.forward(rep, "eth0", 0.1)
    assert (back.packet.src, back.packet.sport, back.packet.dst, back.packet.dport) == (
        VIP, 80, A("172.18.0.1"), 5000)
    # later packets: translated where IPVS runs, no new scheduling
    for i in range(3):
        again = nf.forward(client.replace(flags="A", seq=i), "eth0", 0.2 + i)
        assert (again.packet.dst, again.packet.src) == (A("10.244.2.7"), NODE)
        assert any(s.hook == "INPUT" and s.note == "DNAT" for s in again.steps)
    assert nf.ipvs.calls == 1  # type: ignore[union-attr]
    # a second connection goes to the next real server
    r2 = nf.forward(client.replace(sport=5001), "eth0", 1.0)
    assert r2.packet.dst == A("10.244.3.8")


def test_ipvs_at_local_out_and_fallthroughs() -> None:
    nf = ipvs_node(list(REAL))
    out = nf.process(Packet(NODE, VIP, Proto.TCP, 6000, 80, "S"), "output", 0.0)
    assert out.verdict == "ACCEPT" and out.packet.dst == A("10.244.2.7") and not out.local
    assert any(s.hook == "OUTPUT" and s.action == "ipvs" for s in out.steps)
    # not a virtual service: delivered locally; filter INPUT still runs before IPVS
    other = nf.forward(Packet(A("172.18.0.1"), VIP, Proto.TCP, 5000, 81, "S"), "eth0", 0.0)
    assert other.verdict == "REJECT" and nf.ipvs.calls == 1  # type: ignore[union-attr]
    local = nf.forward(Packet(A("172.18.0.1"), NODE, Proto.TCP, 5000, 22, "S"), "eth0", 0.0)
    assert local.verdict == "ACCEPT" and local.local
    # a virtual server without real servers: ICMP port unreachable
    empty = ipvs_node([])
    r = empty.forward(Packet(A("172.18.0.1"), VIP, Proto.TCP, 5000, 80, "S"), "eth0", 0.0)
    assert (r.verdict, r.reject_with) == ("REJECT", "icmp-port-unreachable")
    assert len(empty.conntrack) == 0


def test_rebuilt_packets_and_conntrack_tuples_are_the_real_values() -> None:
    """The engine builds packets and conntrack tuples through mutable twins of the frozen
    dataclasses: the results are ordinary, equal, hashable, frozen instances."""
    import dataclasses

    import pytest

    from knet.netfilter import conntrack as ct
    from knet.netfilter.engine import _rebuild, _rebuild_iif, _with_iif
    p = Packet(A("10.244.1.9"), A("10.96.7.20"), Proto.TCP, 40000, 80, "PA", seq=7,
               payload=b"x", mark=3, iif="veth1", oif="eth0")
    q = _rebuild(p, A("10.244.1.9"), 40001, A("10.244.2.7"), 8080, 0x4000)
    assert type(q) is Packet and q == p.replace(sport=40001, dst=A("10.244.2.7"), dport=8080,
                                                mark=0x4000)
    assert hash(q) == hash(p.replace(sport=40001, dst=A("10.244.2.7"), dport=8080, mark=0x4000))
    assert _with_iif(p, "eth1") == p.replace(iif="eth1")
    assert _rebuild_iif(p, p.src, 1, p.dst, 2, 0, "x") == p.replace(sport=1, dport=2, mark=0,
                                                                    iif="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.dport = 1  # type: ignore[misc]
    t = ct._tuple(p.src, 1, p.dst, 2)
    assert type(t) is ct.Tuple and t == ct.Tuple(p.src, 1, p.dst, 2) and hash(t) == hash(
        ct.Tuple(p.src, 1, p.dst, 2))
    assert ct.twin(Packet) is not None  # the fast path is the one in use


def _same_shape(rule: Rule, family: int) -> bool:
    from knet.netfilter.compiler import _compile_shape
    shaped = _compile_shape(rule, family)
    if shaped is None:
        return False
    fast = _compile_fast(rule, family)
    assert fast is not None, rule
    assert (shaped.preds, shaped.target, shaped.key, shaped.kind, shaped.stat, shaped.reads,
            shaped.rand, shaped.unknown) == (fast.preds, fast.target, fast.key, fast.kind,
                                             fast.stat, fast.reads, fast.rand, fast.unknown), rule
    return True


def test_exact_shapes_compile_like_the_fast_compiler() -> None:
    """kube-proxy's rules recognised by layout == the token compiler (same shared predicates,
    target, key, fields read, inline statistic)."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import netfilter as bench  # the benchmark's cluster: every kube-proxy ClusterIP shape

    from knet.proxy import iptables
    rules = []
    for n in (40, 120):  # 1,200 endpoints: kube-proxy's large-cluster mode drops comments
        nodes, services, slices = bench.cluster(n)
        rs, _ = iptables.build(nodes[0], services, slices, bench.PROXY, bench.CLUSTER)
        rules += [(r, 4) for t in rs.tables.values() for c in t.chains.values()
                  for r in c.rules]
    shaped = sum(_same_shape(r, fam) for r, fam in rules)
    assert shaped > len(rules) * 9 // 10
    for r, fam in data_rules():
        _same_shape(r, fam)
    for args in (("-m", "comment", "--comment", "x", "-j", "ACCEPT"),
                 ("-m", "comment", "--comment", "x", "-j", "MARK"),
                 ("-s", "10.0.0.0/8", "-m", "comment", "--comment", "x", "-j", "KUBE-X"),
                 ("-p", "tcp", "-m", "comment", "--comment", "x", "-m", "udp", "-j", "DNAT",
                  "--to-destination", "10.1.1.1:80"),
                 ("-d", "10.1.1.1/32", "-p", "tcp", "-m", "comment", "--comment", "x", "-m",
                  "tcp", "--dport", "99999", "-j", "KUBE-X"),
                 ("-m", "tcp", "-p", "tcp", "-d", "10.1.1.1", "--dport", "80", "!", "-s",
                  "10.0.0.0/33", "-j", "KUBE-X"),
                 ("-m", "tcp", "-p", "tcp", "-d", "10.1.1.1", "--dport", "80", "!", "-s",
                  "10.1.2.3/8", "-j", "KUBE-X"),
                 ("-m", "udp", "-p", "udp", "-j", "DNAT", "--to-destination", "10.1.1.1"),
                 ("-j", "KUBE-MARK-MASQ"), ("-j", "DNAT"), ("-s", "::1", "-j", "KUBE-X")):
        _same_shape(Rule("KUBE-X", args), 4)


@settings(max_examples=150, deadline=None)
@given(rule_args())
def test_exact_shapes_on_random_rules(args: tuple[str, ...]) -> None:
    _same_shape(Rule("KUBE-X", args), 4)
