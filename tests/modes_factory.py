"""A rich static cluster for the IPVS / nftables / mode-comparison tests: every service type
on one node pair, optionally dual-stack. ``StaticCluster`` offers the part of
``knet.control.Cluster``'s read API that knet.proxy.modes uses, over fixed objects."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import ip_address, ip_network

from knet.model.config import ClusterConfig, KubeProxyConfig
from knet.model.core import Node, Service

from proxy_factories import ep, node, port, service, slice_


@dataclass
class StaticCluster:
    config: ClusterConfig
    _nodes: list[Node]
    _services: list[Service]
    _slices: list
    _pods: list = field(default_factory=list)

    def services(self):
        return list(self._services)

    def endpoint_slices(self):
        return list(self._slices)

    def nodes(self):
        return list(self._nodes)

    def node(self, name):
        return next(n for n in self._nodes if n.name == name)

    def pods(self):
        return list(self._pods)


def rich(dual: bool = False, proxy: KubeProxyConfig | None = None) -> StaticCluster:
    services = [
        service("cart", "10.96.7.20", port(80, "http", target=8080)),
        service("legacy", "10.96.7.40", port(80, "http")),
        service("storefront", "10.96.7.50", port(443, "https", target=8443, node_port=31443),
                type="LoadBalancer", etp="Local", hc=32100, lb_ips=("192.0.2.80",),
                ranges=("198.51.100.0/24",)),
        service("web", "10.96.7.30", port(80, target=8080, node_port=30080), type="NodePort"),
        service("ext", "10.96.7.60", port(80, "http", target=8080),
                external_ips=("198.51.100.50",)),
        service("sticky", "10.96.7.70", port(80, "http", target=8080), affinity=True,
                timeout=600),
        service("internal", "10.96.7.80", port(80, "http", target=8080), itp="Local"),
        service("lblocal", "10.96.7.90", port(80, "http", target=8080, node_port=30090),
                type="LoadBalancer", etp="Local", hc=32101, lb_ips=("192.0.2.90",)),
        service("dns", "10.96.0.10", port(53, "dns", proto="UDP"), port(53, "dns-tcp"),
                ns="kube-system"),
        service("sctp", "10.96.7.100", port(9000, "s", proto="SCTP", node_port=30900),
                type="NodePort"),
    ]
    if dual:
        services.append(service("dual", "10.96.7.110", port(80, "http", target=8080),
                                cluster_ips=("10.96.7.110", "fd00:96::110"), families=(4, 6)))
    slices = [
        slice_("cart", ep("10.244.1.5", "node-a"), ep("10.244.1.12", "node-a"),
               ep("10.244.2.7", "node-b"), ports=(("http", 8080, "TCP"),)),
        slice_("storefront", ep("10.244.1.20", "node-a"), ep("10.244.2.21", "node-b"),
               ports=(("https", 8443, "TCP"),)),
        slice_("web", ep("10.244.2.9", "node-b"), ports=(("", 8080, "TCP"),)),
        slice_("ext", ep("10.244.2.30", "node-b"), ports=(("http", 8080, "TCP"),)),
        slice_("sticky", ep("10.244.1.40", "node-a"), ep("10.244.2.41", "node-b"),
               ports=(("http", 8080, "TCP"),)),
        slice_("internal", ep("10.244.1.50", "node-a"), ep("10.244.2.51", "node-b"),
               ports=(("http", 8080, "TCP"),)),
        slice_("lblocal", ep("10.244.2.60", "node-b"), ports=(("http", 8080, "TCP"),)),
        slice_("dns", ep("10.244.1.2", "node-a"), ep("10.244.2.3", "node-b"),
               ports=(("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")), ns="kube-system"),
        slice_("sctp", ep("10.244.2.70", "node-b"), ports=(("s", 9000, "SCTP"),)),
    ]
    if dual:
        slices.append(slice_("dual", ep("10.244.1.80", "node-a"), ports=(("http", 8080, "TCP"),),
                             name="dual-v4"))
        slices.append(slice_("dual", ep("fd00:10:1::80", "node-a"), ep("fd00:10:2::81", "node-b"),
                             ports=(("http", 8080, "TCP"),), name="dual-v6", family=6))
    cfg = ClusterConfig(
        ip_family="dual" if dual else "ipv4",
        pod_subnets=(ip_network("10.244.0.0/16"),) + ((ip_network("fd00:10::/48"),) if dual else ()),
        service_subnets=(ip_network("10.96.0.0/12"),) + ((ip_network("fd00:96::/112"),) if dual else ()),
        kube_proxy=proxy or KubeProxyConfig())
    nodes = [node("node-a", "192.168.10.11", ip6="fd00:1::11" if dual else "",
                  pod_cidrs=("10.244.1.0/24",) + (("fd00:10:1::/64",) if dual else ())),
             node("node-b", "192.168.10.12", ip6="fd00:1::12" if dual else "",
                  pod_cidrs=("10.244.2.0/24",) + (("fd00:10:2::/64",) if dual else ()))]
    return StaticCluster(cfg, nodes, services, slices)


def with_proxy(c: StaticCluster, **kw) -> StaticCluster:
    return replace(c, config=replace(c.config, kube_proxy=replace(c.config.kube_proxy, **kw)))


__all__ = ["StaticCluster", "rich", "with_proxy", "ip_address"]
