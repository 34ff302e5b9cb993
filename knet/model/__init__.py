"""Frozen typed Kubernetes objects (knet's own view of the API types)."""

from knet.model.apps import DaemonSet, Deployment, Job, ReplicaSet, StatefulSet
from knet.model.config import AddressPool, ClusterConfig, KubeProxyConfig
from knet.model.core import (
    ConfigMap, Container, ContainerPort, ContainerStatus, LoadBalancerIngress, Namespace, Node,
    NodeAddress, NodeSelectorTerm, Pod, PodCondition, PodSpec, PodStatus,
    PreferredSchedulingTerm, Probe, Protocol, Secret, Service, ServicePort, ServiceSpec,
    ServiceType, Taint, Toleration,
)
from knet.model.discovery import (
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, ObjectReference,
)
from knet.model.meta import (
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference, Source, selector_matches,
)
from knet.model.networking import (
    HTTPIngressPath, Ingress, IngressBackend, IngressClass, IngressRule, IngressTLS,
)

__all__ = [
    "AddressPool", "ClusterConfig", "ConfigMap", "Container", "ContainerPort",
    "ContainerStatus", "DaemonSet", "Deployment", "Endpoint", "EndpointConditions",
    "EndpointPort", "EndpointSlice", "HTTPIngressPath", "Ingress", "IngressBackend",
    "IngressClass", "IngressRule", "IngressTLS", "Job", "KubeProxyConfig", "LabelSelector",
    "LabelSelectorRequirement", "LoadBalancerIngress", "Namespace", "Node", "NodeAddress",
    "NodeSelectorTerm", "ObjectMeta", "ObjectReference", "OwnerReference", "Pod",
    "PodCondition", "PodSpec", "PodStatus", "PreferredSchedulingTerm", "Probe", "Protocol",
    "ReplicaSet", "Secret", "Service", "ServicePort", "ServiceSpec", "ServiceType", "Source",
    "StatefulSet", "Taint", "Toleration", "selector_matches",
]
