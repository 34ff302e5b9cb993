"""Network policy objects: networking.k8s.io/v1 NetworkPolicy and the SIG Network Policy API's
cluster-scoped policies (policy.networking.k8s.io v1alpha2 ClusterNetworkPolicy; v1alpha1
AdminNetworkPolicy and BaselineAdminNetworkPolicy, held here in ClusterNetworkPolicy form).

Invariants: objects are stored defaulted, as the API server stores them (``policyTypes``
filled in, every port's ``protocol`` set); ``manifest_spec`` is that defaulted spec as the API
returns it (``get -o yaml``). A cluster-scoped policy keeps the API it was written in
(``api_version``/``kind``); its rules use the v1alpha2 vocabulary (Accept/Deny/Pass).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import Any, ClassVar

from knet.model.meta import LabelSelector, Named, ObjectMeta

IPNetwork = IPv4Network | IPv6Network

INGRESS, EGRESS = "Ingress", "Egress"
ADMIN, BASELINE = "Admin", "Baseline"
ACCEPT, DENY, PASS = "Accept", "Deny", "Pass"


@dataclass(frozen=True, slots=True)
class IPBlock:
    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def __str__(self) -> str:
        ex = f" except {', '.join(map(str, self.excepts))}" if self.excepts else ""
        return f"ipBlock {self.cidr}{ex}"


@dataclass(frozen=True, slots=True)
class NetworkPolicyPeer:
    """One ``from``/``to`` entry: selectors (None = absent) or an ipBlock."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True)
class NetworkPolicyPort:
    protocol: str = "TCP"
    port: int | str | None = None  # None: every port of the protocol
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class NetworkPolicyRule:
    """An ingress or egress rule: ports AND peers (empty = any)."""

    ports: tuple[NetworkPolicyPort, ...] = ()
    peers: tuple[NetworkPolicyPeer, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPolicy(Named):
    metadata: ObjectMeta
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    policy_types: tuple[str, ...] = (INGRESS,)
    ingress: tuple[NetworkPolicyRule, ...] = ()
    egress: tuple[NetworkPolicyRule, ...] = ()
    manifest_spec: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    kind = "NetworkPolicy"
    api_version = "networking.k8s.io/v1"


# --- ClusterNetworkPolicy (and the v1alpha1 kinds mapped onto it) ---------------------------

@dataclass(frozen=True, slots=True)
class CNPPeer:
    """Exactly one kind of peer; ``kind`` "" = a field this API version does not know (fail
    closed: matches nothing in an Accept rule, everything in a Deny or Pass rule)."""

    kind: str  # namespaces | pods | networks | nodes | ""
    namespace_selector: LabelSelector | None = None  # namespaces, pods
    pod_selector: LabelSelector | None = None  # pods
    node_selector: LabelSelector | None = None  # nodes
    networks: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class CNPPort:
    """One protocols/ports entry: a protocol with a port or inclusive range, or a named port."""

    protocol: str = ""  # TCP | UDP | SCTP ("" with a named port)
    start: int = 0  # 0: any port of the protocol
    end: int = 0
    named: str = ""


@dataclass(frozen=True, slots=True)
class CNPRule:
    name: str
    action: str  # Accept | Deny | Pass
    peers: tuple[CNPPeer, ...]
    ports: tuple[CNPPort, ...] | None = None  # None: any protocol and port


@dataclass(frozen=True, slots=True)
class ClusterNetworkPolicy(Named):
    metadata: ObjectMeta
    tier: str = ADMIN
    priority: int = 0
    subject_namespaces: LabelSelector | None = None  # subject.namespaces
    subject_pod_namespaces: LabelSelector | None = None  # subject.pods.namespaceSelector
    subject_pods: LabelSelector | None = None  # subject.pods.podSelector
    ingress: tuple[CNPRule, ...] = ()
    egress: tuple[CNPRule, ...] = ()
    manifest_spec: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    kind: ClassVar[str] = "ClusterNetworkPolicy"
    api_version: ClassVar[str] = "policy.networking.k8s.io/v1alpha2"


@dataclass(frozen=True, slots=True)
class AdminNetworkPolicy(ClusterNetworkPolicy):
    kind: ClassVar[str] = "AdminNetworkPolicy"
    api_version: ClassVar[str] = "policy.networking.k8s.io/v1alpha1"


@dataclass(frozen=True, slots=True)
class BaselineAdminNetworkPolicy(ClusterNetworkPolicy):
    tier: str = BASELINE
    kind: ClassVar[str] = "BaselineAdminNetworkPolicy"
    api_version: ClassVar[str] = "policy.networking.k8s.io/v1alpha1"


CLUSTER_POLICY_KINDS = ("ClusterNetworkPolicy", "AdminNetworkPolicy",
                        "BaselineAdminNetworkPolicy")
POLICY_KINDS = ("NetworkPolicy", *CLUSTER_POLICY_KINDS)
