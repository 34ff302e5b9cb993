"""Small factories for Services, EndpointSlices and Nodes used by the proxy tests."""

from __future__ import annotations

from ipaddress import ip_network

from knet.model.config import ClusterConfig, KubeProxyConfig
from knet.model.core import (
    LoadBalancerIngress, Node, NodeAddress, Protocol, Service, ServicePort, ServiceSpec,
    ServiceType,
)
from knet.model.discovery import (
    SERVICE_NAME_LABEL, Endpoint, EndpointConditions, EndpointPort, EndpointSlice,
)
from knet.model.meta import ObjectMeta

CLUSTER = ClusterConfig(pod_subnets=(ip_network("10.244.0.0/16"),))
PROXY = KubeProxyConfig()


def node(name: str = "node-a", ip: str = "192.168.10.11", *, ip6: str = "",
         labels: dict[str, str] | None = None, pod_cidrs: tuple[str, ...] = ()) -> Node:
    addrs = [NodeAddress("InternalIP", ip)] if ip else []
    if ip6:
        addrs.append(NodeAddress("InternalIP", ip6))
    return Node(ObjectMeta(name, labels=labels or {}), addresses=tuple(addrs),
                pod_cidrs=tuple(ip_network(c) for c in pod_cidrs))


def port(port: int, name: str = "", *, proto: str = "TCP", target: int | str = 0,
         node_port: int = 0) -> ServicePort:
    return ServicePort(port=port, name=name, protocol=Protocol(proto),
                       target_port=target or port, node_port=node_port)


def service(name: str, cluster_ip: str, *ports: ServicePort, ns: str = "shop",
            type: str = "ClusterIP", etp: str = "", itp: str = "Cluster",
            hc: int = 0, lb_ips: tuple[str, ...] = (), lb_ip_mode: str = "",
            ranges: tuple[str, ...] = (), external_ips: tuple[str, ...] = (),
            affinity: bool = False, timeout: int = 0, cluster_ips: tuple[str, ...] = (),
            families: tuple[int, ...] = ()) -> Service:
    t = ServiceType(type)
    if not etp and t in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER):
        etp = "Cluster"
    spec = ServiceSpec(
        type=t, ports=tuple(ports), selector={"app": name}, cluster_ip=cluster_ip,
        cluster_ips=cluster_ips or ((cluster_ip,) if cluster_ip not in ("", "None") else ()),
        ip_families=families, session_affinity="ClientIP" if affinity else "None",
        session_affinity_timeout=(timeout or 10800) if affinity else 0,
        external_ips=external_ips, load_balancer_source_ranges=ranges,
        external_traffic_policy=etp, internal_traffic_policy=itp, health_check_node_port=hc)
    ing = tuple(LoadBalancerIngress(ip=i, ip_mode=lb_ip_mode) for i in lb_ips)
    return Service(ObjectMeta(name, ns), spec, ing)


def ep(ip: str, node: str = "", *, ready: bool | None = None, serving: bool | None = None,
       terminating: bool | None = None, zones: tuple[str, ...] = (),
       nodes: tuple[str, ...] = ()) -> Endpoint:
    return Endpoint(addresses=(ip,), conditions=EndpointConditions(ready, serving, terminating),
                    node_name=node, hints_zones=zones, hints_nodes=nodes)


def slice_(svc: str, *endpoints: Endpoint, ports: tuple[tuple[str | None, int, str], ...] = (),
           ns: str = "shop", name: str = "", family: int = 4) -> EndpointSlice:
    return EndpointSlice(
        ObjectMeta(name or f"{svc}-abc", ns, labels={SERVICE_NAME_LABEL: svc}),
        address_type="IPv6" if family == 6 else "IPv4", endpoints=tuple(endpoints),
        ports=tuple(EndpointPort(port=p, name=n, protocol=Protocol(pr)) for n, p, pr in ports))


def worked_example() -> tuple[Node, list[Service], list[EndpointSlice]]:
    """kube-proxy.md §2.13."""
    services = [
        service("cart", "10.96.7.20", port(80, "http", target=8080)),
        service("legacy", "10.96.7.40", port(80, "http")),
        service("storefront", "10.96.7.50", port(443, "https", target=8443, node_port=31443),
                type="LoadBalancer", etp="Local", hc=32100, lb_ips=("192.0.2.80",),
                ranges=("198.51.100.0/24",)),
        service("web", "10.96.7.30", port(80, target=8080, node_port=30080), type="NodePort"),
    ]
    slices = [
        slice_("cart", ep("10.244.1.5", "node-a"), ep("10.244.1.12", "node-a"),
               ep("10.244.2.7", "node-b"), ports=(("http", 8080, "TCP"),)),
        slice_("storefront", ep("10.244.1.20", "node-a"), ep("10.244.2.21", "node-b"),
               ports=(("https", 8443, "TCP"),)),
        slice_("web", ep("10.244.2.9", "node-b"), ports=(("", 8080, "TCP"),)),
    ]
    return node(), services, slices
