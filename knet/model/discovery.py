"""discovery.k8s.io/v1 EndpointSlice.

Conditions keep the API's tri-state (``None`` = unset): kube-proxy and CoreDNS read an unset
``ready``/``serving`` as true and an unset ``terminating`` as false (kube-proxy.md §1.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from knet.model.core import Protocol
from knet.model.meta import Named, ObjectMeta

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY_CONTROLLER = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100


@dataclass(frozen=True, slots=True)
class EndpointConditions:
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None

    @property
    def is_ready(self) -> bool:
        return self.ready is None or self.ready

    @property
    def is_serving(self) -> bool:
        return self.serving is None or self.serving

    @property
    def is_terminating(self) -> bool:
        return bool(self.terminating)


@dataclass(frozen=True, slots=True)
class ObjectReference:
    kind: str
    name: str
    namespace: str = ""
    uid: str = ""


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    conditions: EndpointConditions = EndpointConditions()
    hostname: str = ""
    node_name: str = ""
    zone: str = ""
    target_ref: ObjectReference | None = None
    hints_zones: tuple[str, ...] = ()  # hints.forZones[].name
    hints_nodes: tuple[str, ...] = ()  # hints.forNodes[].name


@dataclass(frozen=True, slots=True)
class EndpointPort:
    port: int | None = None
    name: str | None = None  # None and "" differ in the API; kube-proxy treats nil name as ""
    protocol: Protocol = Protocol.TCP
    app_protocol: str = ""


@dataclass(frozen=True, slots=True)
class EndpointSlice(Named):
    metadata: ObjectMeta
    address_type: str = "IPv4"  # IPv4, IPv6, FQDN
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    kind = "EndpointSlice"

    @property
    def service_name(self) -> str:
        return self.metadata.labels.get(SERVICE_NAME_LABEL, "")

