"""The IPVS table: schedulers over live connection counts, persistence, graceful
termination, connection states, and IPVS-mode execution through the glue netfilter."""

from __future__ import annotations

import random
from collections import Counter
from ipaddress import ip_address

import pytest

from knet.netfilter.ipvs import IPVS, RealServer, VirtualServer
from knet.netfilter.packet import Packet, Proto
from knet.proxy import modes

from modes_factory import rich

VIP = ip_address("10.96.7.20")


def vs(*weights: int, sched: str = "rr", proto: str = "TCP", flags=(), timeout=0):
    rs = tuple(RealServer(ip_address(f"10.244.1.{i + 1}"), 8080, w) for i, w in enumerate(weights))
    return VirtualServer(VIP, 80, proto, sched, flags, timeout, rs)


def syn(i: int, src: str = "10.244.9.9", proto: str = "tcp", flags: str = "S") -> Packet:
    return Packet(ip_address(src), VIP, Proto(proto), 10000 + i, 80, flags if proto == "tcp" else "")


def picks(t: IPVS, n: int, **kw) -> list[str]:
    return [str(t.schedule(syn(i, **kw), 0.0).dest.address) for i in range(n)]


def test_rr_cycles_and_skips_quiescent():
    t = IPVS()
    t.apply([vs(1, 0, 1)])
    assert picks(t, 4) == ["10.244.1.1", "10.244.1.3", "10.244.1.1", "10.244.1.3"]


def test_wrr_proportions():
    t = IPVS()
    t.apply([vs(3, 1, sched="wrr")])
    c = Counter(picks(t, 40))
    assert c == {"10.244.1.1": 30, "10.244.1.2": 10}


def test_lc_and_wlc_follow_connection_counts():
    t = IPVS()
    t.apply([vs(1, 1, sched="lc")])
    d1 = t.schedule(syn(100), 0.0)
    t.observe(d1.conn, syn(100, flags="A"), "original", 0.0)  # established → active
    assert d1.dest.activeconns == 1 and d1.dest.inactconns == 0
    # the other server has fewer connections: chosen until the overhead evens out
    assert picks(t, 3) == ["10.244.1.2"] * 3  # overhead 3 < 256
    t2 = IPVS()
    t2.apply([vs(3, 1, sched="wlc")])
    got = Counter()
    for i in range(8):
        d = t2.schedule(syn(i), 0.0)
        t2.observe(d.conn, syn(i, flags="A"), "original", 0.0)
        got[str(d.dest.address)] += 1
    assert got == {"10.244.1.1": 6, "10.244.1.2": 2}


def test_sed_and_nq():
    t = IPVS()
    t.apply([vs(1, 1, sched="nq")])
    d = t.schedule(syn(0), 0.0)
    t.observe(d.conn, syn(0, flags="A"), "original", 0.0)
    assert str(t.schedule(syn(1), 0.0).dest.address) == "10.244.1.2"  # the idle one


@pytest.mark.parametrize("sched", ["sh", "dh", "mh", "lblc", "lblcr"])
def test_hashing_schedulers_are_stable(sched):
    t = IPVS()
    t.apply([vs(1, 1, 1, sched=sched)])
    first = {src: t.schedule(syn(0, src=src), 0.0).dest for src in ("10.0.0.1", "10.0.0.2")}
    for i in range(1, 5):
        for src, d in first.items():
            assert t.schedule(syn(i, src=src), 0.0).dest is d


def test_sh_spreads_sources():
    t = IPVS()
    t.apply([vs(1, 1, 1, sched="sh")])
    seen = {t.schedule(syn(0, src=f"10.0.{i}.1"), 0.0).dest.endpoint for i in range(60)}
    assert len(seen) == 3


def test_persistence_template_pins_and_expires():
    t = IPVS()
    t.apply([vs(1, 1, 1, flags=("persistent",), timeout=600)])
    d0 = t.schedule(syn(0), 0.0)
    for i in range(1, 4):
        d = t.schedule(syn(i), 10.0 * i)
        assert d.dest is d0.dest and d.how == "persistent"
    assert "persistence template" in d.explain()
    # other clients are scheduled normally
    assert t.schedule(syn(9, src="10.0.0.7"), 0.0).how == "scheduled"
    for c in list(t.conns):
        t._drop_conn(c, t.conns[c])
    assert t.schedule(syn(20), 700.0).how == "scheduled"


def test_graceful_termination_tcp_and_udp():
    t = IPVS()
    t.apply([vs(1, 1)])
    d = t.schedule(syn(0), 0.0)
    assert str(d.dest.address) == "10.244.1.1"
    t.apply([vs(0, 1).__class__(VIP, 80, "TCP", "rr", (), 0,
                                (RealServer(ip_address("10.244.1.2"), 8080),))], 1.0)
    svc = t.services[vs().key]
    dests = {x.endpoint: x.weight for x in svc.dest_list()}
    assert dests == {"10.244.1.1:8080": 0, "10.244.1.2:8080": 1}  # draining with weight 0
    assert all(str(t.schedule(syn(i), 2.0).dest.address) == "10.244.1.2" for i in range(1, 4))
    # the old connection still maps to its server
    assert t.schedule(syn(0), 3.0).dest.endpoint == "10.244.1.1:8080"
    t.sweep(10_000.0)  # connections expired → deleted
    assert [x.endpoint for x in svc.dest_list()] == ["10.244.1.2:8080"]
    # UDP real servers are deleted at once (IsRsGracefulTerminationNeeded)
    u = IPVS()
    u.apply([vs(1, 1, proto="UDP")])
    u.schedule(syn(0, proto="udp"), 0.0)
    u.apply([VirtualServer(VIP, 80, "UDP", "rr", (), 0,
                           (RealServer(ip_address("10.244.1.2"), 8080),))], 1.0)
    assert len(next(iter(u.services.values())).dests) == 1


def test_terminating_server_comes_back():
    t = IPVS()
    t.apply([vs(1, 1)])
    t.schedule(syn(0), 0.0)
    t.apply([VirtualServer(VIP, 80, "TCP", "rr", (), 0,
                           (RealServer(ip_address("10.244.1.2"), 8080),))], 1.0)
    t.apply([vs(1, 1)], 2.0)
    assert [x.weight for x in next(iter(t.services.values())).dest_list()] == [1, 1]


def test_no_real_server_means_port_unreachable():
    t = IPVS()
    t.apply([vs()])
    d = t.schedule(syn(0), 0.0)
    assert d.dest is None and "ICMP port unreachable" in d.explain()


def test_ipvsadm_shows_live_counters():
    from knet.netfilter.ipvs import render_ipvsadm
    t = IPVS()
    t.apply([vs(1, 1)])
    d = t.schedule(syn(0), 0.0)
    t.observe(d.conn, syn(0, flags="A"), "original", 0.0)
    t.schedule(syn(1), 0.0)
    text = render_ipvsadm((s.spec, s.dest_list()) for s in t.services.values())
    assert "  -> 10.244.1.1:8080              Masq    1      1          0         " in text
    assert "  -> 10.244.1.2:8080              Masq    1      0          1         " in text


# --- execution through the glue -----------------------------------------------------------

def _dp(node="node-a"):
    c = rich()
    return c, modes.node_datapath(c, c.node(node), random.Random(1), "ipvs")


def test_forward_schedules_dnat_and_unnats_replies():
    _c, dp = _dp()
    pod = ip_address("10.244.1.99")
    p = Packet(pod, VIP, Proto.TCP, 40000, 80, "S", iif="veth1")
    r = dp.forward(p, "veth1", 0.0)
    assert r.verdict == "ACCEPT" and not r.local
    assert r.packet.dport == 8080 and str(r.packet.src) == "10.244.1.99"  # pod: no SNAT
    assert any(s.note.startswith("IPVS rr → ") and "of 3)" in s.note for s in r.steps)
    reply = Packet(r.packet.dst, pod, Proto.TCP, 8080, 40000, "SA", iif="veth2")
    rr = dp.forward(reply, "veth2", 0.1)
    assert rr.verdict == "ACCEPT" and rr.packet.src == VIP and rr.packet.sport == 80
    ack = dp.forward(p.replace(flags="A"), "veth1", 0.2)
    assert ack.packet.dst == r.packet.dst
    vsrv = dp.ipvs.services[("TCP", 4, int(VIP), 80)]
    assert sum(d.activeconns for d in vsrv.dest_list()) == 1


def test_outside_client_to_clusterip_is_masqueraded_and_rr_rotates():
    _c, dp = _dp()
    out = ip_address("203.0.113.10")
    dsts = []
    for i in range(3):
        r = dp.forward(Packet(out, VIP, Proto.TCP, 41000 + i, 80, "S", iif="eth0"), "eth0", 0.0)
        assert str(r.packet.src) == "192.168.10.11"
        dsts.append(r.packet.endpoint_str())
    assert sorted(dsts) == ["10.244.1.12:8080", "10.244.1.5:8080", "10.244.2.7:8080"]


def test_vip_without_real_servers_and_unused_port_reject():
    _c, dp = _dp()
    out = ip_address("203.0.113.10")
    r = dp.forward(Packet(out, ip_address("10.96.7.40"), Proto.TCP, 1, 80, "S", iif="eth0"),
                   "eth0", 0.0)
    assert r.verdict == "REJECT" and r.reject_with == "icmp-port-unreachable"
    r = dp.forward(Packet(out, VIP, Proto.TCP, 1, 81, "S", iif="eth0"), "eth0", 0.0)
    assert r.verdict == "REJECT"
    assert any(s.chain == "KUBE-IPVS-FILTER" for s in r.steps)


def test_hairpin_is_masqueraded_by_loop_back_set():
    _c, dp = _dp()
    ep = ip_address("10.244.1.5")
    oc = dp.enumerate_outcomes(Packet(ep, VIP, Proto.TCP, 1, 80, "S", iif="veth"), "prerouting")
    hair = {o.target: o.masquerade for o in oc.items}
    assert hair == {"10.244.1.5:8080": True, "10.244.1.12:8080": False, "10.244.2.7:8080": False}


@pytest.mark.parametrize("kw,proto,flags,default", [
    ({"tcp_timeout": 30.0}, "tcp", "A", 900.0),       # ipvsadm --set 30 …: ESTABLISHED
    ({"udp_timeout": 7.0}, "udp", "", 300.0),         # … … 7: UDP
])
def test_configured_timeouts_expire_connections(kw, proto, flags, default):
    """KubeProxyConfiguration ipvs.tcpTimeout / udpTimeout replace the kernel defaults."""
    for table, life in ((IPVS(**kw), next(iter(kw.values()))), (IPVS(), default)):
        table.apply([vs(1, proto=proto.upper())])
        d = table.schedule(syn(1, proto=proto), 0.0)
        if proto == "tcp":
            table.observe(d.conn, syn(1, flags=flags), "original", 0.0)
        assert d.conn.expires == pytest.approx(life)
