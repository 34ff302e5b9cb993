"""Golden restore texts for iptables mode, one per service type / option combination.

Goldens live in tests/data/proxy/*.restore and are rewritten only with KNET_UPDATE_GOLDEN=1;
each was reviewed by hand against kube-proxy.md §2 before being committed. The §2.13 worked
example is the reference document's own text (never regenerated).
"""

from __future__ import annotations

import os
from dataclasses import replace
from ipaddress import ip_network
from pathlib import Path
from collections.abc import Callable

import pytest

from knet.model.config import ClusterConfig, KubeProxyConfig
from knet.netfilter.rules import parse_rules, render_restore
from knet.proxy.iptables import HostOptions, build
from proxy_factories import CLUSTER, PROXY, ep, node, port, service, slice_, worked_example

DATA = Path(__file__).parent / "data" / "proxy"
NO_NFACCT = HostOptions(nfacct=False)

Scenario = tuple  # (node, services, slices, proxy, cluster, family, host)


def s_worked_example() -> Scenario:
    n, svcs, sl = worked_example()
    return n, svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_worked_example_defaults() -> Scenario:
    """knet's default host options: nfacct counters available (Known ambiguity 4)."""
    n, svcs, sl = worked_example()
    return n, svcs, sl, PROXY, CLUSTER, 4, HostOptions()


def s_clusterip_multiport() -> Scenario:
    svcs = [service("kube-dns", "10.96.0.10", port(53, "dns", proto="UDP"),
                    port(53, "dns-tcp"), port(9153, "metrics"), ns="kube-system"),
            service("sctp", "10.96.0.77", port(3868, "diameter", proto="SCTP"), ns="shop")]
    sl = [slice_("kube-dns", ep("10.244.0.3", "node-a"), ep("10.244.0.4", "node-b"),
                 ports=(("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")),
                 ns="kube-system"),
          slice_("sctp", ep("10.244.3.3", "node-b"), ports=(("diameter", 3868, "SCTP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_nodeport() -> Scenario:
    svcs = [service("web", "10.96.7.30", port(80, target=8080, node_port=30080),
                    type="NodePort")]
    sl = [slice_("web", ep("10.244.2.9", "node-b"), ep("10.244.1.9", "node-a"),
                 ports=(("", 8080, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, HostOptions()


def s_lb_no_ranges() -> Scenario:
    svcs = [service("shop-lb", "10.96.8.1", port(80, "http", target=8080, node_port=31080),
                    type="LoadBalancer", lb_ips=("192.0.2.10",)),
            # ipMode: Proxy VIPs are ignored; hostname-only ingress has no VIP.
            service("proxied", "10.96.8.2", port(80, "http", node_port=31081),
                    type="LoadBalancer", lb_ips=("192.0.2.11",), lb_ip_mode="Proxy")]
    sl = [slice_("shop-lb", ep("10.244.1.7", "node-a"), ports=(("http", 8080, "TCP"),)),
          slice_("proxied", ep("10.244.2.8", "node-b"), ports=(("http", 80, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_lb_ranges_node_inside() -> Scenario:
    svcs = [service("secure", "10.96.8.5", port(443, "https", node_port=31443),
                    type="LoadBalancer", lb_ips=("192.0.2.20", "192.0.2.21"),
                    ranges=(" 198.51.100.000/24", "192.168.10.0/24", "2001:db8::/64"))]
    sl = [slice_("secure", ep("10.244.1.2", "node-a"), ep("10.244.2.2", "node-b"),
                 ports=(("https", 8443, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_external_ips() -> Scenario:
    svcs = [service("ext", "10.96.9.1", port(80, "http"), external_ips=("203.0.113.5",
                                                                        "2001:db8::5")),
            service("ext-empty", "10.96.9.2", port(80, "http"),
                    external_ips=("203.0.113.6",))]
    sl = [slice_("ext", ep("10.244.2.3", "node-b"), ports=(("http", 80, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_affinity() -> Scenario:
    svcs = [service("cart", "10.96.7.20", port(80, "http", target=8080), affinity=True,
                    timeout=600)]
    sl = [slice_("cart", ep("10.244.1.5", "node-a"), ep("10.244.1.12", "node-a"),
                 ep("10.244.2.7", "node-b"), ports=(("http", 8080, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_etp_local_with_local() -> Scenario:
    svcs = [service("local-np", "10.96.10.1", port(80, "http", node_port=30100),
                    type="NodePort", etp="Local", hc=30200)]
    sl = [slice_("local-np", ep("10.244.1.30", "node-a"), ep("10.244.2.30", "node-b"),
                 ep("10.244.2.31", "node-b"), ports=(("http", 80, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, HostOptions()


def s_etp_local_no_local() -> Scenario:
    svcs = [service("far", "10.96.10.2", port(80, "http", node_port=30101),
                    type="LoadBalancer", etp="Local", hc=30201, lb_ips=("192.0.2.30",),
                    external_ips=("203.0.113.30",))]
    sl = [slice_("far", ep("10.244.2.40", "node-b"), ports=(("http", 80, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_itp_local() -> Scenario:
    svcs = [service("near", "10.96.11.1", port(80, "http"), itp="Local"),
            service("nowhere", "10.96.11.2", port(80, "http"), itp="Local"),
            service("near-np", "10.96.11.3", port(80, "http", node_port=30300),
                    type="NodePort", itp="Local")]
    sl = [slice_("near", ep("10.244.1.50", "node-a"), ep("10.244.2.50", "node-b"),
                 ports=(("http", 80, "TCP"),)),
          slice_("nowhere", ep("10.244.2.51", "node-b"), ports=(("http", 80, "TCP"),)),
          slice_("near-np", ep("10.244.2.52", "node-b"), ports=(("http", 80, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_terminating() -> Scenario:
    svcs = [service("draining", "10.96.12.1", port(80, "http")),
            service("gone", "10.96.12.2", port(80, "http")),
            service("draining-local", "10.96.12.3", port(80, "http", node_port=30400),
                    type="NodePort", etp="Local", hc=30401)]
    term = dict(ready=False, serving=True, terminating=True)
    dead = dict(ready=False, serving=False, terminating=True)
    sl = [slice_("draining", ep("10.244.1.60", "node-a", **term),
                 ep("10.244.2.60", "node-b", **term), ep("10.244.2.61", "node-b", **dead),
                 ports=(("http", 80, "TCP"),)),
          slice_("gone", ep("10.244.2.62", "node-b", **dead), ports=(("http", 80, "TCP"),)),
          # ready remote endpoint, only a terminating local one: the local set falls back
          slice_("draining-local", ep("10.244.1.63", "node-a", **term),
                 ep("10.244.2.63", "node-b"), ports=(("http", 80, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_no_endpoints() -> Scenario:
    svcs = [service("empty", "10.96.13.1", port(80, "http", node_port=30500),
                    type="LoadBalancer", lb_ips=("192.0.2.50",), external_ips=("203.0.113.50",),
                    ranges=("198.51.100.0/24",)),
            service("headless", "None", port(80, "http")),
            service("extname", "", port(80, "http"), type="ExternalName")]
    sl = [slice_("headless", ep("10.244.1.70", "node-a"), ports=(("http", 80, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


DUAL = ClusterConfig(ip_family="dual", pod_subnets=(ip_network("10.244.0.0/16"),
                                                    ip_network("fd00:10::/64")))


def _dual_objects():
    svcs = [service("web", "10.96.7.30", port(80, "http", target=8080, node_port=30080),
                    type="NodePort", cluster_ips=("10.96.7.30", "fd00:96::7:30"),
                    families=(4, 6)),
            service("v6only", "fd00:96::99", port(53, "dns", proto="UDP"), families=(6,),
                    cluster_ips=("fd00:96::99",))]
    sl = [slice_("web", ep("10.244.1.5", "node-a"), ports=(("http", 8080, "TCP"),)),
          slice_("web", ep("fd00:10::1:5", "node-a"), ep("fd00:10::2:5", "node-b"),
                 ports=(("http", 8080, "TCP"),), name="web-v6", family=6),
          slice_("v6only", ep("fd00:10::2:9", "node-b"), ports=(("dns", 53, "UDP"),),
                 name="v6only-1", family=6)]
    return node(ip6="fd00:192::11"), svcs, sl


def s_ipv6() -> Scenario:
    n, svcs, sl = _dual_objects()
    return n, svcs, sl, PROXY, DUAL, 6, HostOptions()


def s_dual_ipv4() -> Scenario:
    n, svcs, sl = _dual_objects()
    return n, svcs, sl, PROXY, DUAL, 4, NO_NFACCT


def s_large_cluster() -> Scenario:
    eps = [ep(f"10.244.{i // 200}.{i % 200 + 1}", f"node-{'a' if i % 2 else 'b'}")
           for i in range(1001)]
    svcs = [service("big", "10.96.14.1", port(80, "http"), affinity=True),
            service("small", "10.96.14.2", port(80, "http", node_port=30600), type="NodePort")]
    sl = [slice_("big", *eps, ports=(("http", 80, "TCP"),)),
          slice_("small", ep("10.244.9.9", "node-b"), ports=(("http", 80, "TCP"),))]
    return node(), svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_localhost_off() -> Scenario:
    n, svcs, sl = worked_example()
    return n, svcs, sl, replace(PROXY, localhost_nodeports=False), CLUSTER, 4, HostOptions()


def s_masquerade_all() -> Scenario:
    n, svcs, sl = worked_example()
    return n, svcs, sl, replace(PROXY, masquerade_all=True), CLUSTER, 4, NO_NFACCT


def s_nodeport_addresses() -> Scenario:
    n, svcs, sl = worked_example()
    cfg = replace(PROXY, node_port_addresses=("192.168.10.0/24", "127.0.0.0/8", "fd00::/8"))
    return n, svcs, sl, cfg, CLUSTER, 4, HostOptions()


def s_nodeport_addresses_primary() -> Scenario:
    n, svcs, sl = worked_example()
    return n, svcs, sl, replace(PROXY, node_port_addresses=("primary",)), CLUSTER, 4, \
        HostOptions()


def s_detect_nodecidr() -> Scenario:
    _, svcs, sl = worked_example()
    n = node(pod_cidrs=("10.244.1.0/24",))
    return n, svcs, sl, replace(PROXY, detect_local_mode="NodeCIDR"), CLUSTER, 4, NO_NFACCT


def s_detect_ifprefix() -> Scenario:
    n, svcs, sl = worked_example()
    cfg = replace(PROXY, detect_local_mode="InterfaceNamePrefix", interface_name_prefix="veth")
    return n, svcs, sl, cfg, CLUSTER, 4, NO_NFACCT


def s_no_detector() -> Scenario:
    n, svcs, sl = worked_example()
    return n, svcs, sl, PROXY, ClusterConfig(pod_subnets=()), 4, \
        HostOptions(random_fully=False, tcp_be_liberal=True)


def s_topology_zone() -> Scenario:
    svcs = [service("zonal", "10.96.15.1", port(80, "http"))]
    sl = [slice_("zonal", ep("10.244.1.80", "node-a", zones=("zone-a",)),
                 ep("10.244.2.80", "node-b", zones=("zone-b",)),
                 ep("10.244.3.80", "node-c", zones=("zone-a",)),
                 ports=(("http", 80, "TCP"),))]
    n = node(labels={"topology.kubernetes.io/zone": "zone-a"})
    return n, svcs, sl, PROXY, CLUSTER, 4, NO_NFACCT


def s_mark_bit() -> Scenario:
    n, svcs, sl = worked_example()
    return n, svcs[:1], sl[:1], replace(PROXY, masquerade_bit=5), CLUSTER, 4, NO_NFACCT


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    name[2:]: fn for name, fn in dict(globals()).items() if name.startswith("s_")
}


def render(name: str) -> str:
    n, svcs, sl, proxy, cluster, family, host = SCENARIOS[name]()
    rs, ri = build(n, svcs, sl, proxy, cluster, family, host=host)
    text = ri.text
    assert render_restore(rs) == text  # the live tables render back to the same input
    return text


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden(name: str) -> None:
    path = DATA / f"{name}.restore"
    text = render(name)
    if os.environ.get("KNET_UPDATE_GOLDEN") == "1" and name != "worked_example":
        path.write_text(text)
    assert path.exists(), f"missing golden {path}; run with KNET_UPDATE_GOLDEN=1 and review"
    assert text == path.read_text()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_parses_back(name: str) -> None:
    """Every restore text is valid input for the netfilter parser (jumps resolve)."""
    rs = parse_rules(render(name), 6 if name == "ipv6" else 4)
    assert "nat" in rs and "filter" in rs


def test_worked_example_is_the_reference_text() -> None:
    # tests/data/proxy/worked_example.restore is copied verbatim from kube-proxy.md §2.13.
    assert render("worked_example").startswith("*filter\n:KUBE-SERVICES - [0:0]\n")


def test_default_proxy_config_is_kube_proxy_default() -> None:
    assert KubeProxyConfig().masquerade_bit == 14
