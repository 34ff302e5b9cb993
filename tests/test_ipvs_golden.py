"""IPVS mode state: virtual/real servers, the 17 ipsets, glue rules — the reference's worked
example byte for byte, and goldens for a rich (dual-stack) topology.

Goldens live in tests/data/ipvs/ and are rewritten only with KNET_UPDATE_GOLDEN=1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from knet.model.config import KubeProxyConfig
from knet.proxy import modes
from knet.proxy.ipvs import IPSETS, build_state, set_name

from modes_factory import rich
from proxy_factories import CLUSTER, PROXY, worked_example

DATA = Path(__file__).parent / "data" / "ipvs"

# kube-proxy.md §4.3, verbatim.
REFERENCE_GLUE = """\
*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN
-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE
-A KUBE-SERVICES -m comment --comment "Kubernetes service lb portal" -m set --match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER
-A KUBE-LOAD-BALANCER -m comment --comment "Kubernetes service load balancer ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN
-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port with externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN
-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-SERVICES -m set --match-set KUBE-LOAD-BALANCER dst,dst -j ACCEPT
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
COMMIT
*filter
:KUBE-FORWARD - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SOURCE-RANGES-FIREWALL - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
-A KUBE-PROXY-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port for load balancer with sourceRange" -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL
-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source cidr for packet filter purpose" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP
-A KUBE-IPVS-OUT-FILTER -s 192.0.2.80 -m ipvs --vaddr 192.0.2.80 --vproto tcp --vport 443 -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT
-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN
-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT
COMMIT
"""

# kube-proxy.md §4.1 listing (ipvsadm prints trailing blanks; the reference strips them).
REFERENCE_IPVSADM = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.7.20:80 rr
  -> 10.244.1.5:8080              Masq    1      0          0
  -> 10.244.1.12:8080             Masq    1      0          0
  -> 10.244.2.7:8080              Masq    1      0          0
TCP  10.96.7.30:80 rr
  -> 10.244.2.9:8080              Masq    1      0          0
TCP  10.96.7.40:80 rr
TCP  10.96.7.50:443 rr
  -> 10.244.1.20:8443             Masq    1      0          0
  -> 10.244.2.21:8443             Masq    1      0          0
TCP  192.0.2.80:443 rr
  -> 10.244.1.20:8443             Masq    1      0          0
TCP  192.168.10.11:30080 rr
  -> 10.244.2.9:8080              Masq    1      0          0
TCP  192.168.10.11:31443 rr
  -> 10.244.1.20:8443             Masq    1      0          0
"""


def _state():
    n, svcs, sl = worked_example()
    return build_state(n, svcs, sl, PROXY, CLUSTER, 4)


def test_worked_example_glue_is_byte_exact():
    assert _state().restore_text == REFERENCE_GLUE


def test_worked_example_ipvsadm():
    text = _state().ipvsadm()
    assert "\n".join(line.rstrip() for line in text.splitlines()) + "\n" == REFERENCE_IPVSADM
    # ipvsadm's printf widths: "  -> %-28s %-7s %-6d %-10u %-10u"
    assert "  -> 10.244.1.5:8080              Masq    1      0          0         \n" in text


def test_worked_example_sets():
    sets = {s.name: s.entries for s in _state().ipsets}
    assert len(sets) == 17
    assert sets["KUBE-CLUSTER-IP"] == ("10.96.7.20,tcp:80", "10.96.7.30,tcp:80",
                                       "10.96.7.40,tcp:80", "10.96.7.50,tcp:443")
    assert set(sets["KUBE-LOOP-BACK"]) == {"10.244.1.5,tcp:8080,10.244.1.5",
                                           "10.244.1.12,tcp:8080,10.244.1.12",
                                           "10.244.1.20,tcp:8443,10.244.1.20"}
    for name in ("KUBE-LOAD-BALANCER", "KUBE-LOAD-BALANCER-LOCAL", "KUBE-LOAD-BALANCER-FW"):
        assert sets[name] == ("192.0.2.80,tcp:443",)
    assert sets["KUBE-LOAD-BALANCER-SOURCE-CIDR"] == ("192.0.2.80,tcp:443,198.51.100.0/24",)
    assert sets["KUBE-LOAD-BALANCER-SOURCE-IP"] == ()
    assert sets["KUBE-NODE-PORT-TCP"] == ("30080", "31443")
    assert sets["KUBE-NODE-PORT-LOCAL-TCP"] == ("31443",)
    assert sets["KUBE-HEALTH-CHECK-NODE-PORT"] == ("32100",)
    assert sets["KUBE-IPVS-IPS"] == ("10.96.7.20", "10.96.7.30", "10.96.7.40", "10.96.7.50",
                                     "192.0.2.80")


def test_ipset_list_format():
    text = _state().ipset_list()
    block = text.split("\n\n")[1]
    lines = block.splitlines()
    assert lines[:3] == ["Name: KUBE-CLUSTER-IP", "Type: hash:ip,port", "Revision: 7"]
    assert lines[3].startswith("Header: family inet hashsize 1024 maxelem 65536 comment ")
    assert lines[5:7] == ["Number of entries: 4", "Members:"]
    assert "Header: range 0-65535 comment" in text


def test_ipv6_set_names():
    assert set_name("KUBE-LOAD-BALANCER-SOURCE-CIDR", 6) == "KUBE-6-LOAD-BALANCER-SOURCE-CID"
    assert set_name("KUBE-CLUSTER-IP", 6) == "KUBE-6-CLUSTER-IP"
    assert all(len(set_name(n, 6)) <= 31 for n, _t, _c in IPSETS)


def _vs(state, addr, port, proto="TCP"):
    return next(v for v in state.virtual_servers
                if str(v.address) == addr and v.port == port and v.protocol == proto)


def test_rich_topology_behaviours():
    c = rich()
    st = build_state(c.node("node-a"), c.services(), c.endpoint_slices(), c.config.kube_proxy,
                     c.config, 4)
    # affinity → persistent with the service's timeout
    sticky = _vs(st, "10.96.7.70", 80)
    assert sticky.flags == ("persistent",) and sticky.timeout == 600
    # eTP Local with no local endpoint: the LB and NodePort virtual servers fall back to the
    # cluster endpoints (PR #97081), unlike iptables/nftables.
    assert [str(r.address) for r in _vs(st, "192.0.2.90", 80).real_servers] == ["10.244.2.60"]
    assert [str(r.address) for r in _vs(st, "192.168.10.11", 30090).real_servers] == ["10.244.2.60"]
    # eTP Local with a local endpoint: local only; ClusterIP: all
    assert [str(r.address) for r in _vs(st, "192.0.2.80", 443).real_servers] == ["10.244.1.20"]
    assert len(_vs(st, "10.96.7.50", 443).real_servers) == 2
    # iTP Local: local only on the ClusterIP
    assert [str(r.address) for r in _vs(st, "10.96.7.80", 80).real_servers] == ["10.244.1.50"]
    # no endpoints: the virtual server exists without real servers
    assert _vs(st, "10.96.7.40", 80).real_servers == ()
    # externalIPs are virtual servers and bound to kube-ipvs0; node IPs are not bound
    assert _vs(st, "198.51.100.50", 80).real_servers
    assert "198.51.100.50" in {str(a) for a in st.dummy_addresses}
    assert "192.168.10.11" not in {str(a) for a in st.dummy_addresses}
    sets = {s.name: s.entries for s in st.ipsets}
    assert sets["KUBE-EXTERNAL-IP"] == ("198.51.100.50,tcp:80",)
    assert sets["KUBE-NODE-PORT-SCTP-HASH"] == ("192.168.10.11,sctp:30900",)
    assert sets["KUBE-NODE-PORT-UDP"] == ()
    assert _vs(st, "10.96.0.10", 53, "UDP").real_servers
    # external IP glue rules (§4.3 step 4)
    assert ('-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for '
            'masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -m physdev '
            '! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT') in st.restore_text
    assert "-p sctp -m comment --comment \"Kubernetes nodeport SCTP port for masquerade purpose " \
           "with type 'hash ip:port'\" -m set --match-set KUBE-NODE-PORT-SCTP-HASH dst,dst " \
           "-j KUBE-MARK-MASQ" in st.restore_text


def test_scheduler_and_mh_flag_and_no_detector():
    c = rich()
    kp = KubeProxyConfig(ipvs_scheduler="mh", detect_local_mode="ClusterCIDR",
                         cluster_cidr=())
    st = build_state(c.node("node-a"), c.services(), c.endpoint_slices(), kp,
                     type(c.config)(pod_subnets=(), kube_proxy=kp), 4)
    vs = _vs(st, "10.96.7.20", 80)
    assert vs.scheduler == "mh" and "mh-port" in vs.flags
    assert "TCP  10.96.7.20:80 mh (mh-port)" in st.ipvsadm()
    assert "--match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ" in st.restore_text


@pytest.mark.parametrize("dual", [False, True])
def test_rich_golden(dual):
    c = rich(dual=dual)
    fams = [4, 6] if dual else [4]
    got = {
        "json": modes.render(c, c.node("node-a"), "ipvs", fams, None, "restore", "json"),
        "text": modes.render(c, c.node("node-a"), "ipvs", fams, None, "restore", "text"),
    }
    name = "rich-dual" if dual else "rich"
    jpath, tpath = DATA / f"{name}.json", DATA / f"{name}.txt"
    if os.environ.get("KNET_UPDATE_GOLDEN") == "1":
        jpath.write_text(json.dumps(got["json"], indent=1) + "\n")
        tpath.write_text(got["text"])
    assert jpath.exists(), f"missing golden {jpath}; run with KNET_UPDATE_GOLDEN=1 and review"
    assert json.loads(jpath.read_text()) == got["json"]
    assert tpath.read_text() == got["text"]
    js = got["json"]
    assert {"virtualServers", "ipsets", "dummyAddresses", "iptables"} <= set(js)
    vs0 = js["virtualServers"][0]
    assert set(vs0) == {"address", "port", "protocol", "scheduler", "flags", "timeout",
                        "realServers"}
    if dual:
        assert "KUBE-6-CLUSTER-IP" in js["ipsets"]
        assert "fd00:96::110" in js["dummyAddresses"]
        assert js["ip6tables"].startswith("*nat\n")
        assert "-A KUBE-SERVICES -s ::1/128 -j RETURN" in js["ip6tables"]
