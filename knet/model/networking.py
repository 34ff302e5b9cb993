"""networking.k8s.io/v1 Ingress and IngressClass."""

from __future__ import annotations

from dataclasses import dataclass

from knet.model.core import LoadBalancerIngress
from knet.model.meta import Named, ObjectMeta

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


@dataclass(frozen=True, slots=True)
class IngressBackend:
    """Exactly one of service_name / resource is set."""

    service_name: str = ""
    service_port_name: str = ""
    service_port_number: int = 0
    resource_api_group: str = ""
    resource_kind: str = ""
    resource_name: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource_kind)


@dataclass(frozen=True, slots=True)
class HTTPIngressPath:
    path: str
    path_type: str  # Exact, Prefix, ImplementationSpecific
    backend: IngressBackend


@dataclass(frozen=True, slots=True)
class IngressRule:
    host: str = ""
    paths: tuple[HTTPIngressPath, ...] = ()


@dataclass(frozen=True, slots=True)
class IngressTLS:
    hosts: tuple[str, ...] = ()
    secret_name: str = ""


@dataclass(frozen=True, slots=True)
class Ingress(Named):
    metadata: ObjectMeta
    ingress_class_name: str = ""  # "" when unset
    default_backend: IngressBackend | None = None
    rules: tuple[IngressRule, ...] = ()
    tls: tuple[IngressTLS, ...] = ()
    load_balancer_ingress: tuple[LoadBalancerIngress, ...] = ()
    kind = "Ingress"



@dataclass(frozen=True, slots=True)
class IngressClass:
    metadata: ObjectMeta
    controller: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    kind = "IngressClass"

    @property
    def is_default(self) -> bool:
        return self.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"
