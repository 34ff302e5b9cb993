"""IPAM: node IPs, pod CIDRs, host-local pod IPs, ClusterIPs, NodePorts, LoadBalancer IPs."""

from __future__ import annotations

import random
from ipaddress import ip_address, ip_network

from control_factories import node, pod, service
from knet.control import Cluster
from knet.control.ipam import ClusterIPAllocator, HostLocal, NodePortAllocator
from knet.model import AddressPool, ClusterConfig, LoadBalancerIngress, ServicePort, ServiceType
from knet.model.core import Protocol

DUAL = ClusterConfig(ip_family="dual",
                     pod_subnets=(ip_network("10.244.0.0/16"), ip_network("fd00:10:244::/56")),
                     service_subnets=(ip_network("10.96.0.0/16"), ip_network("fd00:10:96::/112")))


def test_default_cluster_addresses_like_kind():
    c = Cluster()
    nodes = c.nodes()
    assert [n.name for n in nodes] == ["knet-control-plane", "knet-worker", "knet-worker2"]
    assert [str(n.ips()[0]) for n in nodes] == ["172.18.0.2", "172.18.0.3", "172.18.0.4"]
    assert [str(n.pod_cidrs[0]) for n in nodes] == ["10.244.0.0/24", "10.244.1.0/24",
                                                    "10.244.2.0/24"]
    assert c.service("default/kubernetes").spec.cluster_ip == "10.96.0.1"
    assert c.service("kube-system/kube-dns").spec.cluster_ip == "10.96.0.10"
    coredns = [p for p in c.pods("kube-system") if p.name.startswith("coredns-")]
    assert sorted(str(p.ip) for p in coredns) == ["10.244.0.2", "10.244.0.3"]
    assert {p.spec.node_name for p in coredns} == {"knet-control-plane"}


def test_dual_stack_nodes_and_pods():
    c = Cluster(DUAL, [service("web", selector={"app": "w"}, policy="PreferDualStack"),
                       pod("w", labels={"app": "w"})])
    n = c.node("knet-worker")
    assert [str(ip) for ip in n.ips()] == ["172.18.0.3", "fc00:f853:ccd:e793::3"]
    assert [str(x) for x in n.pod_cidrs] == ["10.244.1.0/24", "fd00:10:244:1::/64"]
    p = c.pod("default/w")
    assert [ip.version for ip in p.status.pod_ips] == [4, 6]
    assert str(p.status.pod_ips[1]).startswith("fd00:10:244:")
    svc = c.service("default/web")
    assert svc.spec.ip_families == (4, 6) and len(svc.spec.cluster_ips) == 2
    types = sorted(s.address_type for s in c.endpoint_slices("default/web"))
    assert types == ["IPv4", "IPv6"]


def test_node_manifest_pod_cidr_and_ip_respected():
    from dataclasses import replace
    from knet.model import NodeAddress
    a = replace(node("a"), pod_cidrs=(ip_network("10.244.1.0/24"),),
                addresses=(NodeAddress("InternalIP", "172.18.0.3"),))
    c = Cluster(ClusterConfig(nodes_declared=True), [a, node("b"), node("c")],
                system_objects=False)
    cidrs = {n.name: str(n.pod_cidrs[0]) for n in c.nodes()}
    assert cidrs == {"a": "10.244.1.0/24", "b": "10.244.2.0/24", "c": "10.244.3.0/24"} or \
        cidrs["a"] == "10.244.1.0/24" and len(set(cidrs.values())) == 3
    ips = {n.name: str(n.ips()[0]) for n in c.nodes()}
    assert ips["a"] == "172.18.0.3" and len(set(ips.values())) == 3


def test_host_local_sequential_wraps_and_skips_used():
    h = HostLocal(ip_network("10.244.1.0/29"))  # .2 .. .6 usable
    got = [str(h.allocate()) for _ in range(5)]
    assert got == ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"]
    assert h.allocate() is None
    h.release(ip_address("10.244.1.3"))
    assert str(h.allocate()) == "10.244.1.3"


def test_cluster_ip_allocator_bands_and_determinism():
    a = ClusterIPAllocator(ip_network("10.96.0.0/12"), random.Random(1))
    b = ClusterIPAllocator(ip_network("10.96.0.0/12"), random.Random(1))
    xs = [a.allocate() for _ in range(50)]
    assert xs == [b.allocate() for _ in range(50)]
    assert len(set(xs)) == 50
    # dynamic allocations avoid the static band (first 256 addresses)
    assert all(int(x) >= int(ip_address("10.96.0.1")) + 256 for x in xs)
    assert all(x in ip_network("10.96.0.0/12") for x in xs)
    assert str(a.nth(1)) == "10.96.0.1" and str(a.nth(10)) == "10.96.0.10"
    small = ClusterIPAllocator(ip_network("10.0.0.0/28"), random.Random(0))  # 14 usable
    got = {small.allocate() for _ in range(14)}
    assert len(got) == 14 and small.allocate() is None


def test_node_port_allocator_range():
    a = NodePortAllocator(30000, 32767, random.Random(3))
    ports = [a.allocate() for _ in range(200)]
    assert len(set(ports)) == 200 and all(30086 <= p <= 32767 for p in ports)
    assert not a.reserve(ports[0]) and a.reserve(30000)


def _svc_cluster(*objs, config=None) -> Cluster:
    return Cluster(config or ClusterConfig(), list(objs))


def test_service_allocation_nodeports_and_user_values():
    np_svc = service("np", type=ServiceType.NODE_PORT, ports=(
        ServicePort(53, Protocol.TCP, "dns-tcp", 53), ServicePort(53, Protocol.UDP, "dns", 53),
        ServicePort(80, Protocol.TCP, "http", 80, node_port=30080)))
    fixed = service("fixed", cluster_ip="10.96.100.100")
    c = _svc_cluster(np_svc, fixed)
    ports = c.service("default/np").spec.ports
    assert ports[0].node_port == ports[1].node_port != 0  # same number, both protocols
    assert ports[2].node_port == 30080
    assert c.service("default/fixed").spec.cluster_ip == "10.96.100.100"
    assert c.service("default/np").spec.external_traffic_policy == "Cluster"


def test_load_balancer_ips_pools_and_health_check():
    pools = (AddressPool("manual", ("192.0.2.10-192.0.2.20",), auto_assign=False),
             AddressPool("main", ("198.51.100.0/30",)))
    cfg = ClusterConfig(address_pools=pools)
    lb = lambda name, **kw: service(name, type=ServiceType.LOAD_BALANCER, **kw)  # noqa: E731
    c = _svc_cluster(lb("a"), lb("b", etp="Local"), lb("c", lb_ip="192.0.2.15"),
                     lb("d", annotations={"metallb.universe.tf/address-pool": "manual"}),
                     lb("e", lb_ip="203.0.113.1"), config=cfg)
    ing = {s.name: [i.ip for i in s.load_balancer_ingress] for s in c.services("default")}
    assert ing["a"] == ["198.51.100.0"] and ing["b"] == ["198.51.100.1"]
    assert ing["c"] == ["192.0.2.15"] and ing["d"] == ["192.0.2.10"]
    assert ing["e"] == []  # requested IP outside every pool: stays pending
    b = c.service("default/b")
    assert b.spec.health_check_node_port and b.spec.ports[0].node_port
    assert c.service("default/a").spec.health_check_node_port == 0


def test_load_balancer_default_pool_and_existing_status():
    from dataclasses import replace
    given = replace(service("g", type=ServiceType.LOAD_BALANCER),
                    load_balancer_ingress=(LoadBalancerIngress(ip="203.0.113.9"),))
    c = _svc_cluster(service("a", type=ServiceType.LOAD_BALANCER), given)
    assert c.service("default/a").load_balancer_ingress[0].ip == "172.18.255.200"
    assert c.service("default/g").load_balancer_ingress[0].ip == "203.0.113.9"


def test_host_network_pod_takes_node_ip():
    c = Cluster(ClusterConfig(nodes_declared=True),
                [node("a"), pod("h", host_network=True)], system_objects=False)
    p = c.pod("default/h")
    assert p.ip == c.node("a").ips()[0] == p.status.host_ip


def test_pod_ips_released_and_not_reused_immediately():
    c = Cluster(ClusterConfig(nodes_declared=True),
                [node("a"), pod("p1", node_name="a"), pod("p2", node_name="a")],
                system_objects=False)
    assert [str(p.ip) for p in c.pods()] == ["10.244.0.2", "10.244.0.3"]
    c.delete_pod("default/p1", grace=0)
    c.apply(pod("p3", node_name="a"))
    assert str(c.pod("default/p3").ip) == "10.244.0.4"  # host-local continues after the last
    assert _unique_ips(c)


def _unique_ips(c: Cluster) -> bool:
    ips = [ip for p in c.pods() if not p.spec.host_network for ip in p.status.pod_ips]
    return len(ips) == len(set(ips))
