"""Cluster-wide settings, gathered from the configuration kinds people already have.

Sources (docs/topology.md lists every honoured field): kind's ``Cluster``
(kind.x-k8s.io/v1alpha4), kubeadm's ``ClusterConfiguration`` (v1beta3/v1beta4),
``KubeProxyConfiguration`` (kubeproxy.config.k8s.io/v1alpha1), ``ServiceCIDR``
(networking.k8s.io/v1), MetalLB ``IPAddressPool`` (metallb.io/v1beta1), and the small knet
document (knet.dev/v1alpha1 ``Topology``) for what none of them covers.
Defaults are those of a kind cluster on Kubernetes v1.32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network

IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True)
class KubeProxyConfig:
    mode: str = "iptables"  # iptables, ipvs, nftables
    cluster_cidr: tuple[IPNetwork, ...] = ()  # "" → the cluster's pod subnets
    detect_local_mode: str = "ClusterCIDR"  # ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix
    masquerade_bit: int = 14
    masquerade_all: bool = False
    localhost_nodeports: bool = True
    node_port_addresses: tuple[str, ...] = ()  # CIDRs or "primary"; () = all local addresses
    ipvs_scheduler: str = ""  # "" → rr
    ipvs_strict_arp: bool = False
    ipvs_tcp_timeout: float = 0.0
    ipvs_tcp_fin_timeout: float = 0.0
    ipvs_udp_timeout: float = 0.0
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    bridge_interface: str = ""
    interface_name_prefix: str = ""

    @property
    def masquerade_mark(self) -> int:
        return 1 << self.masquerade_bit


@dataclass(frozen=True, slots=True)
class AddressPool:
    """A MetalLB IPAddressPool: LoadBalancer IPs are allocated from these, in order."""

    name: str
    addresses: tuple[str, ...]  # CIDRs or "a.b.c.d-a.b.c.e" ranges
    auto_assign: bool = True


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    name: str = "knet"
    seed: int = 0
    ip_family: str = "ipv4"  # ipv4, ipv6, dual
    pod_subnets: tuple[IPNetwork, ...] = (ip_network("10.244.0.0/16"),)
    service_subnets: tuple[IPNetwork, ...] = (ip_network("10.96.0.0/12"),)
    node_cidr_mask_v4: int = 24
    node_cidr_mask_v6: int = 64
    dns_domain: str = "cluster.local"
    node_port_range: tuple[int, int] = (30000, 32767)
    # Docker's "kind" network, where kind puts its node containers.
    node_subnets: tuple[IPNetwork, ...] = (ip_network("172.18.0.0/16"),)
    kube_proxy: KubeProxyConfig = KubeProxyConfig()
    address_pools: tuple[AddressPool, ...] = ()
    # Names outside the cluster that DNS may answer (knet Topology ``externalHosts``).
    external_hosts: tuple[tuple[str, str], ...] = ()
    # Whether the topology declared its nodes (kind Cluster nodes or v1 Node objects).
    nodes_declared: bool = False
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def families(self) -> tuple[int, ...]:
        return {"ipv4": (4,), "ipv6": (6,), "dual": (4, 6)}[self.ip_family]
