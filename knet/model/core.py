"""Core v1 kinds: Namespace, Node, Pod, Service, ConfigMap, Secret.

Field names are snake_case mirrors of the API fields. Values are already validated and
defaulted (knet.manifests does that, like the API server); addresses are ``ipaddress`` types.
Structures knet does not interpret are kept as plain mappings in ``extra`` so that ``-o yaml``
round-trips them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any
from collections.abc import Mapping

from knet.model.meta import LabelSelectorRequirement, Named, ObjectMeta

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


class Protocol(enum.StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


@dataclass(frozen=True, slots=True)
class Namespace:
    metadata: ObjectMeta
    kind = "Namespace"


# --- Node -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: str  # NoSchedule, PreferNoSchedule, NoExecute
    value: str = ""
    time_added: str = ""


@dataclass(frozen=True, slots=True)
class NodeAddress:
    type: str  # InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS
    address: str


@dataclass(frozen=True, slots=True)
class Node(Named):
    metadata: ObjectMeta
    pod_cidrs: tuple[IPNetwork, ...] = ()
    addresses: tuple[NodeAddress, ...] = ()
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    # resource name -> quantity string ("4", "8Gi", "110")
    capacity: Mapping[str, str] = field(default_factory=dict, hash=False)
    allocatable: Mapping[str, str] = field(default_factory=dict, hash=False)
    ready: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    kind = "Node"

    @property
    def labels(self) -> Mapping[str, str]:
        return self.metadata.labels

    def ips(self, family: int | None = None) -> tuple[IPAddress, ...]:
        """InternalIP then ExternalIP addresses, parsed, optionally of one family."""
        out: list[IPAddress] = []
        for kind in ("InternalIP", "ExternalIP"):
            for a in self.addresses:
                if a.type == kind:
                    ip = _parse_ip(a.address)
                    if ip is not None and (family is None or ip.version == family):
                        out.append(ip)
        return tuple(out)

    @property
    def zone(self) -> str:
        return self.metadata.labels.get("topology.kubernetes.io/zone", "")


def _parse_ip(text: str) -> IPAddress | None:
    from ipaddress import ip_address

    try:
        return ip_address(text)
    except ValueError:
        return None


# --- Pod --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: Protocol = Protocol.TCP
    host_port: int = 0


@dataclass(frozen=True, slots=True)
class Probe:
    """One of http_get / tcp_socket / exec / grpc is set (as the API's handler mappings)."""

    http_get: Mapping[str, Any] | None = field(default=None, hash=False)
    tcp_socket: Mapping[str, Any] | None = field(default=None, hash=False)
    exec: Mapping[str, Any] | None = field(default=None, hash=False)
    grpc: Mapping[str, Any] | None = field(default=None, hash=False)
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    env: tuple[Mapping[str, Any], ...] = ()        # EnvVar mappings, as in the API
    env_from: tuple[Mapping[str, Any], ...] = ()   # EnvFromSource mappings
    requests: Mapping[str, str] = field(default_factory=dict, hash=False)
    limits: Mapping[str, str] = field(default_factory=dict, hash=False)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    restart_policy: str = ""  # native sidecar init containers: "Always"
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()  # operators also Gt, Lt
    match_fields: tuple[LabelSelectorRequirement, ...] = ()        # metadata.name only


@dataclass(frozen=True, slots=True)
class PreferredSchedulingTerm:
    weight: int
    preference: NodeSelectorTerm


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"  # Equal, Exists
    value: str = ""
    effect: str = ""  # "" matches every effect
    toleration_seconds: int | None = None

    def tolerates(self, taint: Taint) -> bool:
        # k8s.io/api/core/v1 Toleration.ToleratesTaint
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.value == taint.value  # Equal (also the default)


@dataclass(frozen=True, slots=True)
class PodSpec:
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    node_name: str = ""
    node_selector: Mapping[str, str] = field(default_factory=dict, hash=False)
    required_node_affinity: tuple[NodeSelectorTerm, ...] = ()  # ORed terms
    preferred_node_affinity: tuple[PreferredSchedulingTerm, ...] = ()
    # podAffinity / podAntiAffinity kept as API mappings
    pod_affinity: Mapping[str, Any] | None = field(default=None, hash=False)
    pod_anti_affinity: Mapping[str, Any] | None = field(default=None, hash=False)
    tolerations: tuple[Toleration, ...] = ()
    hostname: str = ""
    subdomain: str = ""
    host_network: bool = False
    restart_policy: str = "Always"
    termination_grace_period_seconds: int = 30
    dns_policy: str = "ClusterFirst"
    dns_config: Mapping[str, Any] | None = field(default=None, hash=False)
    host_aliases: tuple[Mapping[str, Any], ...] = ()
    scheduler_name: str = "default-scheduler"
    priority: int = 0
    readiness_gates: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class PodCondition:
    type: str     # PodScheduled, Initialized, ContainersReady, Ready
    status: str   # "True", "False", "Unknown"
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    name: str
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    state: str = "waiting"  # waiting, running, terminated
    reason: str = ""
    image: str = ""
    exit_code: int | None = None  # state.terminated.exitCode (or lastState's while waiting)


@dataclass(frozen=True, slots=True)
class PodStatus:
    phase: str = "Pending"  # Pending, Running, Succeeded, Failed, Unknown
    pod_ips: tuple[IPAddress, ...] = ()
    host_ip: IPAddress | None = None
    conditions: tuple[PodCondition, ...] = ()
    container_statuses: tuple[ContainerStatus, ...] = ()
    init_container_statuses: tuple[ContainerStatus, ...] = ()
    reason: str = ""
    message: str = ""
    start_time: str = ""
    nominated_node_name: str = ""
    qos_class: str = ""  # Guaranteed, Burstable, BestEffort (set at admission)

    def condition(self, type_: str) -> PodCondition | None:
        for c in self.conditions:
            if c.type == type_:
                return c
        return None

    @property
    def ready(self) -> bool:
        c = self.condition("Ready")
        return c is not None and c.status == "True"


@dataclass(frozen=True, slots=True)
class Pod(Named):
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus = PodStatus()
    kind = "Pod"

    @property
    def ip(self) -> IPAddress | None:
        return self.status.pod_ips[0] if self.status.pod_ips else None

    @property
    def terminating(self) -> bool:
        return bool(self.metadata.deletion_timestamp)

    def __repr__(self) -> str:
        return f"<Pod {self.key} {self.status.phase} {self.ip or '-'} on {self.spec.node_name or '-'}>"


# --- Service ----------------------------------------------------------------------------------

class ServiceType(enum.StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"
    EXTERNAL_NAME = "ExternalName"


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int
    protocol: Protocol = Protocol.TCP
    name: str = ""
    target_port: int | str = 0  # defaulted to ``port``; a string names a container port
    node_port: int = 0
    app_protocol: str = ""


@dataclass(frozen=True, slots=True)
class LoadBalancerIngress:
    ip: str = ""
    hostname: str = ""
    ip_mode: str = ""  # "VIP" (default when ip is set) or "Proxy"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    type: ServiceType = ServiceType.CLUSTER_IP
    ports: tuple[ServicePort, ...] = ()
    selector: Mapping[str, str] | None = field(default=None, hash=False)
    cluster_ip: str = ""  # "None" for headless; "" until allocated / for ExternalName
    cluster_ips: tuple[str, ...] = ()
    ip_families: tuple[int, ...] = ()  # 4 / 6, primary first
    ip_family_policy: str = ""  # SingleStack, PreferDualStack, RequireDualStack
    session_affinity: str = "None"  # None, ClientIP
    session_affinity_timeout: int = 0  # seconds, 10800 defaulted for ClientIP
    external_ips: tuple[str, ...] = ()
    load_balancer_ip: str = ""
    load_balancer_source_ranges: tuple[str, ...] = ()
    load_balancer_class: str = ""
    allocate_load_balancer_node_ports: bool = True
    external_traffic_policy: str = ""  # Cluster / Local for NodePort+LB; "" otherwise
    internal_traffic_policy: str = "Cluster"
    health_check_node_port: int = 0
    external_name: str = ""
    publish_not_ready_addresses: bool = False
    traffic_distribution: str = ""


@dataclass(frozen=True, slots=True)
class Service(Named):
    metadata: ObjectMeta
    spec: ServiceSpec
    load_balancer_ingress: tuple[LoadBalancerIngress, ...] = ()  # status.loadBalancer.ingress
    kind = "Service"

    @property
    def headless(self) -> bool:
        return self.spec.cluster_ip == "None"

    def __repr__(self) -> str:
        ports = ",".join(
            f"{p.port}→{p.target_port}/{p.protocol}" for p in self.spec.ports)
        return f"<Service {self.key} {self.spec.type} {self.spec.cluster_ip or '-'} {ports}>"


# --- ConfigMap / Secret -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConfigMap:
    metadata: ObjectMeta
    data: Mapping[str, str] = field(default_factory=dict, hash=False)
    binary_data: Mapping[str, bytes] = field(default_factory=dict, hash=False)
    kind = "ConfigMap"


@dataclass(frozen=True, slots=True)
class Secret:
    metadata: ObjectMeta
    type: str = "Opaque"
    data: Mapping[str, bytes] = field(default_factory=dict, hash=False)  # decoded
    kind = "Secret"
