"""The engine's value types read by name: ``Result`` is a named tuple, the per-flow cache
entries are ``FlowOutcome``s (stored as plain tuples in that field order, for speed), and the
three modes' engines share ``forward(packet, iif, now, *, explain)``."""

from __future__ import annotations

import random

from knet.netfilter.engine import FlowOutcome, Result
from knet.proxy import modes

from policy_factory import cluster
from test_netfilter_engine import nf_for, node_a, reply_to, syn


def test_result_is_a_named_tuple() -> None:
    nf = nf_for(node_a())
    r = nf.forward(syn("10.244.1.9", "10.96.7.20", 80).replace(iif="veth1"), "veth1", 0.0)
    assert isinstance(r, Result) and r._fields[:4] == ("verdict", "packet", "arrived", "local")
    d = r._asdict()
    assert d["verdict"] == r.verdict == "ACCEPT" and d["entry"] is r.entry
    assert r.original.iif == "veth1"


def test_flow_cache_entries_read_as_flow_outcomes() -> None:
    nf = nf_for(node_a())
    p = syn("10.244.1.9", "10.96.7.20", 80).replace(iif="veth1")
    first = nf.forward(p, "veth1", 0.0, explain=False)
    back = reply_to(first.packet).replace(iif="eth0")
    nf.forward(back, "eth0", 0.1, explain=False)
    ack = p.replace(flags="A")
    nf.forward(ack, "veth1", 0.2, explain=False)
    again = nf.forward(ack, "veth1", 0.3, explain=False)  # served from the cache
    fo = FlowOutcome._make(first.entry.fast_o)
    assert type(first.entry.fast_o) is tuple  # exact tuple: the hot path's indexing
    assert (fo.verdict, fo.dst, fo.dport, fo.translated, fo.flags) == (
        "ACCEPT", first.packet.dst, first.packet.dport, True, "A")
    assert (again.packet.dst, again.packet.dport) == (fo.dst, fo.dport)


def test_every_mode_engine_takes_the_same_forward_call() -> None:
    c = cluster()
    node = c.node("knet-worker")
    svc = c.service("x/s-x-a").spec.cluster_ip
    src = c.pod("y/a")
    outs = set()
    for mode in modes.MODES:
        eng = modes.node_datapath(c, node, random.Random(0), mode)
        p = syn(str(src.ip), svc, 80).replace(iif="veth-y-a")
        r = eng.forward(p, "veth-y-a", 0.0, explain=False)
        assert isinstance(r, Result) and r.verdict == "ACCEPT" and r.direction == "original"
        outs.add((str(r.packet.dst), r.packet.dport))
    assert outs == {(str(c.pod("x/a").ip), 80)}
