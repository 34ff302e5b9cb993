"""Table-driven flows (kube-proxy.md §3.3) through the netfilter engine, on tables built here."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from knet.netfilter import Netfilter
from knet.netfilter.packet import Packet, Proto
from knet.proxy.iptables import build_ruleset
from proxy_factories import CLUSTER, PROXY, worked_example

NODE_IP = "192.168.10.11"


@pytest.fixture(scope="module")
def nf() -> Netfilter:
    n, svcs, sl = worked_example()
    rs = build_ruleset(n, svcs, sl, PROXY, CLUSTER)
    return Netfilter(rs, local_addresses=[ip_address(NODE_IP)],
                     masquerade_address={4: ip_address(NODE_IP)})


# (source, destination, port, hook) -> outcomes, masquerade
FLOWS = [
    ("10.244.1.9", "10.96.7.20", 80, "prerouting",
     ["10.244.1.12:8080", "10.244.1.5:8080", "10.244.2.7:8080"], False),
    (NODE_IP, "10.96.7.20", 80, "output",
     ["10.244.1.12:8080", "10.244.1.5:8080", "10.244.2.7:8080"], True),
    ("10.244.1.9", "10.96.7.40", 80, "prerouting", ["REJECT"], False),
    # eTP Local LB from outside, inside the source range: local endpoint only, no SNAT
    ("198.51.100.7", "192.0.2.80", 443, "prerouting", ["10.244.1.20:8443"], False),
    # outside the source range: dropped by KUBE-PROXY-FIREWALL
    ("203.0.113.7", "192.0.2.80", 443, "prerouting", ["DROP"], False),
    # a pod outside the source ranges → LB VIP: KUBE-FW comes before the short-circuit
    ("10.244.1.9", "192.0.2.80", 443, "prerouting", ["DROP"], False),
    # pod → NodePort (eTP Local): short-circuit to all cluster endpoints, no SNAT
    ("10.244.1.9", NODE_IP, 31443, "prerouting", ["10.244.1.20:8443", "10.244.2.21:8443"],
     False),
    # node process → NodePort (eTP Local): LOCAL source → masquerade + cluster endpoints
    (NODE_IP, NODE_IP, 31443, "output", ["10.244.1.20:8443", "10.244.2.21:8443"], True),
    # NodePort ignores source ranges; eTP Local → local endpoint, client IP kept
    ("203.0.113.7", NODE_IP, 31443, "prerouting", ["10.244.1.20:8443"], False),
    # eTP Cluster NodePort: always masqueraded
    ("203.0.113.7", NODE_IP, 30080, "prerouting", ["10.244.2.9:8080"], True),
    # health-check node port is accepted by the filter table
    ("203.0.113.7", NODE_IP, 32100, "prerouting", ["ACCEPT"], False),
]


@pytest.mark.parametrize("src,dst,port,hook,outcomes,masq", FLOWS)
def test_flow(nf: Netfilter, src: str, dst: str, port: int, hook: str, outcomes: list[str],
              masq: bool) -> None:
    pkt = Packet(ip_address(src), ip_address(dst), Proto.TCP, 40000, port, flags="S")
    res = nf.enumerate_outcomes(pkt, hook)
    assert res.outcomes == outcomes
    assert res.masquerade is masq
