"""Index equivalence: indexed dispatch == naive sequential evaluation, same rng consumption."""

from __future__ import annotations

import random
from ipaddress import ip_address as A

from hypothesis import given, settings
from hypothesis import strategies as st

from knet.netfilter.engine import Netfilter
from knet.netfilter.packet import Packet, Proto
from knet.netfilter.rules import Rule, RuleSet

DSTS = ["10.96.0.1", "10.96.0.2", "10.96.0.3", "192.168.1.1"]
PORTS = [53, 80, 443]


@st.composite
def rule_args(draw: st.DrawFn, stat: bool = True) -> tuple[str, ...]:
    args: list[str] = []
    if draw(st.booleans()):
        args += ["-m", "comment", "--comment", '"x y"']
    if draw(st.integers(0, 3)) == 0:
        args += ["!", "-s", "10.244.0.0/16"] if draw(st.booleans()) else ["-s", "10.244.1.0/24"]
    proto = draw(st.sampled_from(["", "tcp", "udp"]))
    if proto:
        args += ["-m", proto, "-p", proto]
    if draw(st.booleans()):
        args += (["!"] if draw(st.integers(0, 5)) == 0 else []) + ["-d", draw(st.sampled_from(DSTS))]
    if proto and draw(st.booleans()):
        args += (["!"] if draw(st.integers(0, 5)) == 0 else []) + [
            "--dport", str(draw(st.sampled_from(PORTS)))]
    if stat and draw(st.integers(0, 4)) == 0:
        args += ["-m", "statistic", "--mode", "random", "--probability",
                 f"{draw(st.sampled_from([0.25, 0.5, 0.75])):.10f}"]
    if draw(st.integers(0, 5)) == 0:
        args += ["-m", "addrtype", "--dst-type", "LOCAL"]
    if draw(st.integers(0, 5)) == 0:
        args += ["-m", "mark", "--mark", "0x4000/0x4000"]
    target = draw(st.sampled_from(["SUB", "MARK", "DNAT", "RETURN", "ACCEPT", "DROP", "REJECT",
                                   "", "GOTO"]))
    if target == "SUB":
        args += ["-j", "KUBE-SUB"]
    elif target == "GOTO":
        args += ["-g", "KUBE-SUB"]
    elif target == "MARK":
        args += ["-j", "MARK", "--or-mark", "0x00004000"]
    elif target == "DNAT":
        args += ["-j", "DNAT", "--to-destination", f"10.244.0.{draw(st.integers(1, 9))}:8080"]
    elif target:
        args += ["-j", target]
    return tuple(args)


def build(main: list[tuple[str, ...]], sub: list[tuple[str, ...]]) -> RuleSet:
    rs = RuleSet(4)
    for tname in ("nat", "filter"):
        t = rs.table(tname)
        t.declare("KUBE-MAIN")
        t.declare("KUBE-SUB")
        first = "PREROUTING" if tname == "nat" else "FORWARD"
        t.append(Rule(first, ("-j", "KUBE-MAIN")))
        if tname == "filter":
            t.append(Rule("INPUT", ("-j", "KUBE-MAIN")))
        for a in main:
            if tname == "filter" and "DNAT" in a:
                continue
            t.append(Rule("KUBE-MAIN", a))
        for a in sub:
            if "KUBE-SUB" in a or (tname == "filter" and "DNAT" in a):
                continue
            t.append(Rule("KUBE-SUB", a))
    return rs


packets = st.builds(
    lambda s, d, p, port, mark: Packet(A(s), A(d), p, 1234, port, flags="S" if p == "tcp" else "",
                                       mark=mark),
    st.sampled_from(["10.244.1.7", "10.244.2.7", "172.16.0.5"]), st.sampled_from(DSTS),
    st.sampled_from([Proto.TCP, Proto.UDP]), st.sampled_from(PORTS + [8080]),
    st.sampled_from([0, 0x4000]))


@settings(max_examples=120, deadline=None)
@given(st.lists(rule_args(), min_size=0, max_size=40), st.lists(rule_args(), max_size=6),
       st.lists(packets, min_size=1, max_size=5), st.integers(0, 2**32))
def test_indexed_equals_sequential(main: list, sub: list, pkts: list[Packet], seed: int) -> None:
    rs = build(main, sub)
    kw = dict(local_addresses=[A("192.168.1.1")], masquerade_address={4: A("192.168.1.1")})
    fast = Netfilter(rs, rng=random.Random(seed), index_threshold=1, **kw)  # type: ignore[arg-type]
    slow = Netfilter(rs, rng=random.Random(seed), index_threshold=1 << 30, **kw)  # type: ignore[arg-type]
    for i, p in enumerate(pkts):
        p = p.replace(sport=1000 + i)
        a, b = fast.process(p, "prerouting", float(i)), slow.process(p, "prerouting", float(i))
        assert (a.verdict, a.packet, a.local, a.rules_walked, a.steps, a.reject_with) == \
            (b.verdict, b.packet, b.local, b.rules_walked, b.steps, b.reject_with)
        assert fast.rng.getstate() == slow.rng.getstate()


def _scan_agrees(r: Rule) -> bool:
    """index_key's token scan gives the compiled key (or defers to the compiler)."""
    from knet.netfilter.compiler import _UNSURE, _compile_fast, _compile_full, _scan_key
    k = _scan_key(r.args)
    if k is _UNSURE:
        return False
    fast = _compile_fast(r, 4)
    assert fast is not None, r  # the scan accepts only what the fast compiler accepts
    assert k == fast.key == _compile_full(r, 4).key, r
    return True


@settings(max_examples=200, deadline=None)
@given(rule_args())
def test_index_key_scan_equals_the_compiled_key(args: tuple[str, ...]) -> None:
    _scan_agrees(Rule("KUBE-MAIN", args))


def test_index_key_scan_on_real_rules() -> None:
    from test_netfilter_fastpath import data_rules
    scanned = sum(_scan_agrees(r) for r, fam in data_rules() if fam == 4)
    assert scanned > 500  # kube-proxy's shapes are scanned, not compiled
