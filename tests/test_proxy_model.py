"""The common kube-proxy model: service ports, endpoints, CategorizeEndpoints (kube-proxy.md §1)."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from knet.model.core import Protocol
from knet.proxy.endpoints import (
    EndpointInfo, build_endpoints_map, categorize_endpoints, endpoints_for_service,
)
from knet.proxy.serviceport import (
    ServicePortName, endpoint_chain_name, hash16, hash16_reference, port_proto_hash,
    service_ports,
)
from proxy_factories import ep, port, service, slice_


@pytest.mark.parametrize("spn,proto,suffix", [
    ("shop/cart:http", "tcp", "I5LIAMPLWKMBJ54B"),
    ("shop/web", "tcp", "E3PXEPMWAWIUT6ZV"),
    ("shop/storefront:https", "tcp", "Q3GZAQWEYVX6RMSR"),
    ("default/kubernetes:https", "tcp", "NPX46M4PTMTKRN6Y"),
    ("kube-system/kube-dns:dns", "udp", "TCOU7JCQXEZGVUNU"),
    ("kube-system/kube-dns:dns-tcp", "tcp", "ERIFXISQEP7F7OF4"),
])
def test_chain_hash_table(spn: str, proto: str, suffix: str) -> None:
    assert port_proto_hash(spn, proto.upper()) == suffix
    assert hash16_reference(spn + proto) == suffix


@pytest.mark.parametrize("ep_str,name", [
    ("10.244.1.5:8080", "KUBE-SEP-27VOFYQ7SVOL37XI"),
    ("10.244.1.12:8080", "KUBE-SEP-4O5AICOKW2EZK2IV"),
    ("10.244.2.7:8080", "KUBE-SEP-D6PPDDRHTZSFOGTV"),
])
def test_sep_names(ep_str: str, name: str) -> None:
    assert endpoint_chain_name("shop/cart:http", "TCP", ep_str) == name


def test_fast_hash_equals_formula() -> None:
    for s in ["", "a", "shop/cart:httptcp10.244.1.5:8080", "x" * 500, "ü/ß:é"]:
        assert hash16(s) == hash16_reference(s)


def test_service_port_name_string() -> None:
    assert str(ServicePortName("shop", "cart", "http", Protocol.TCP)) == "shop/cart:http"
    assert str(ServicePortName("shop", "web", "", Protocol.TCP)) == "shop/web"


def test_service_ports_sloppy_ips_and_ranges() -> None:
    svc = service("lb", "010.096.007.020", port(80, "http", node_port=30000),
                  type="LoadBalancer", lb_ips=("192.000.002.001",),
                  ranges=(" 198.51.100.7/24 ", "2001:db8::/32"),
                  external_ips=("203.0.113.009", "2001:db8::9"), cluster_ips=())
    (info,) = service_ports(svc, 4)
    assert info.cluster_ip == ip_address("10.96.7.20")
    assert info.load_balancer_vips == (ip_address("192.0.2.1"),)
    assert info.load_balancer_source_ranges == (ip_network("198.51.100.0/24"),)
    assert info.external_ips == (ip_address("203.0.113.9"),)
    assert info.externally_accessible and not info.external_policy_local
    assert info.uses_cluster_endpoints and not info.uses_local_endpoints


def test_service_ports_skip_and_policies() -> None:
    assert service_ports(service("h", "None", port(80)), 4) == ()
    assert service_ports(service("x", "", port(80), type="ExternalName"), 4) == ()
    assert service_ports(service("v4", "10.96.0.1", port(80)), 6) == ()
    proxied = service("p", "10.96.0.2", port(80), type="LoadBalancer", lb_ips=("1.2.3.4",),
                      lb_ip_mode="Proxy")
    assert service_ports(proxied, 4)[0].load_balancer_vips == ()
    local = service("l", "10.96.0.3", port(80, node_port=30001), type="NodePort", etp="Local",
                    hc=31000, itp="Local", affinity=True)
    info = service_ports(local, 4)[0]
    assert info.external_policy_local and info.internal_policy_local
    assert info.health_check_node_port == 31000
    assert info.sticky_max_age_seconds == 10800
    # eTP Local on a ClusterIP service without external IPs has no effect
    cip = service("c", "10.96.0.4", port(80), etp="Local", hc=31001)
    assert service_ports(cip, 4)[0].health_check_node_port == 0


def test_dual_stack_cluster_ip_by_family() -> None:
    svc = service("d", "10.96.0.5", port(80), cluster_ips=("10.96.0.5", "fd00::5"),
                  families=(4, 6))
    assert str(service_ports(svc, 6)[0].cluster_ip) == "fd00::5"
    assert str(service_ports(svc, 4)[0].cluster_ip) == "10.96.0.5"


def test_endpoints_sorted_lexicographically_and_deduped() -> None:
    s1 = slice_("cart", ep("10.244.1.5", "node-a"), ep("10.244.1.12", "node-b"),
                ports=(("http", 8080, "TCP"), (None, 9, "TCP"), ("zero", 0, "TCP")), name="a")
    s2 = slice_("cart", ep("10.244.1.5", "node-a", ready=False, terminating=True),
                ep("010.244.002.007"), ports=(("http", 8080, "TCP"),), name="b")
    m = build_endpoints_map([s1, s2], 4, "node-a")
    spn = ServicePortName("shop", "cart", "http", Protocol.TCP)
    assert list(m) == [spn]  # nil name and zero port ignored
    eps = m[spn]
    assert [e.endpoint for e in eps] == ["10.244.1.12:8080", "10.244.1.5:8080",
                                         "10.244.2.7:8080"]
    # the terminating duplicate (later slice) does not replace the ready one
    assert eps[1].ready and not eps[1].terminating and eps[1].is_local


def test_endpoint_port_match_by_protocol_and_family() -> None:
    s = slice_("dns", ep("10.244.0.3"), ep("fd00::3"), ports=(("dns", 53, "UDP"),))
    m = endpoints_for_service("shop/dns", [s], 4, "n")
    assert list(m) == [ServicePortName("shop", "dns", "dns", Protocol.UDP)]
    assert [e.endpoint for e in next(iter(m.values()))] == ["10.244.0.3:53"]
    m6 = endpoints_for_service("shop/dns", [slice_("dns", ep("fd00::3"),
                                                   ports=(("dns", 53, "UDP"),), family=6)],
                               6, "n")
    assert [e.endpoint for e in next(iter(m6.values()))] == ["[fd00::3]:53"]


def _e(ip: str, local: bool = False, ready: bool = True, serving: bool = True,
       terminating: bool = False, zones: tuple[str, ...] = (),
       nodes: tuple[str, ...] = ()) -> EndpointInfo:
    return EndpointInfo(ip, 80, local, ready, serving, terminating, frozenset(zones),
                        frozenset(nodes), f"{ip}:80")


def _svc(**kw: object):
    return service_ports(service("s", "10.96.0.9", port(80, node_port=kw.pop("np", 0)),
                                 **kw), 4)[0]  # type: ignore[arg-type]


def test_categorize_cluster_only() -> None:
    eps = [_e("10.0.0.1"), _e("10.0.0.2", ready=False), _e("10.0.0.3", local=True)]
    c = categorize_endpoints(eps, _svc(), "n", {})
    assert [e.ip for e in c.cluster] == ["10.0.0.1", "10.0.0.3"]
    assert c.local == () and c.all_reachable == c.cluster and c.has_any


def test_categorize_terminating_fallback_per_set() -> None:
    term = dict(ready=False, serving=True, terminating=True)
    eps = [_e("10.0.0.1", local=True, **term), _e("10.0.0.2"),
           _e("10.0.0.3", ready=False, serving=False, terminating=True)]
    svc = _svc(type="NodePort", etp="Local", np=30000)
    c = categorize_endpoints(eps, svc, "n", {})
    assert [e.ip for e in c.cluster] == ["10.0.0.2"]
    assert [e.ip for e in c.local] == ["10.0.0.1"]
    assert [e.ip for e in c.all_reachable] == ["10.0.0.1", "10.0.0.2"]
    only_dead = [_e("10.0.0.3", ready=False, serving=False, terminating=True)]
    assert not categorize_endpoints(only_dead, _svc(), "n", {}).has_any


def test_categorize_itp_local_only() -> None:
    eps = [_e("10.0.0.1"), _e("10.0.0.2", local=True)]
    c = categorize_endpoints(eps, _svc(itp="Local"), "n", {})
    assert c.cluster == () and [e.ip for e in c.local] == ["10.0.0.2"]
    assert c.all_reachable == c.local and c.has_any
    c2 = categorize_endpoints([_e("10.0.0.1")], _svc(itp="Local"), "n", {})
    assert c2.local == () and c2.has_any


def test_categorize_topology_zone_and_node() -> None:
    zone = {"topology.kubernetes.io/zone": "a"}
    eps = [_e("10.0.0.1", zones=("a",), nodes=("n",)), _e("10.0.0.2", zones=("b",),
                                                          nodes=("m",))]
    assert [e.ip for e in categorize_endpoints(eps, _svc(), "n", zone).cluster] == ["10.0.0.1"]
    # a missing hint disables topology
    eps2 = eps + [_e("10.0.0.3")]
    assert len(categorize_endpoints(eps2, _svc(), "n", zone).cluster) == 3
    # no endpoint for this zone: all endpoints
    assert len(categorize_endpoints(eps, _svc(), "n", {"topology.kubernetes.io/zone": "c"})
               .cluster) == 2
    # PreferSameNode only with the feature gate
    eps3 = [_e("10.0.0.1", zones=("b",), nodes=("n",)), _e("10.0.0.2", zones=("b",),
                                                           nodes=("m",))]
    assert len(categorize_endpoints(eps3, _svc(), "n", zone).cluster) == 2
    c = categorize_endpoints(eps3, _svc(), "n", zone, prefer_same_node=True)
    assert [e.ip for e in c.cluster] == ["10.0.0.1"]
    # topology in use + eTP Local: all_reachable is the sorted union
    svc = _svc(type="NodePort", etp="Local", np=30000)
    eps4 = [_e("10.0.0.1", zones=("b",)), _e("10.0.0.2", zones=("a",)),
            _e("10.0.0.0", local=True, zones=("b",))]
    c4 = categorize_endpoints(eps4, svc, "n", zone)
    assert [e.ip for e in c4.cluster] == ["10.0.0.2"]
    assert [e.ip for e in c4.all_reachable] == ["10.0.0.0", "10.0.0.2"]
