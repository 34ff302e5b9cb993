"""Gateway API objects (``gateway.networking.k8s.io``) as frozen model values.

Invariants: ``spec`` is the validated and defaulted spec as plain JSON-like data (the CRD
schema's defaults applied, as the API server stores it) and is never mutated; ``generation``
is ``metadata.generation`` (1 when not given), the value status conditions report as
``observedGeneration``. Decisions compile these specs into typed tables (knet.gateway.routes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from knet.model.meta import Named, ObjectMeta

GROUP = "gateway.networking.k8s.io"
CONTROLLER = "gateway.knet.dev/controller"


@dataclass(frozen=True, slots=True)
class GatewayObject(Named):
    metadata: ObjectMeta
    api_version: str = f"{GROUP}/v1"
    spec: Mapping[str, Any] = field(default_factory=dict, hash=False)
    generation: int = 1
    kind: ClassVar[str] = ""

    def __repr__(self) -> str:
        return f"<{self.kind} {self.metadata.key}>"


@dataclass(frozen=True, slots=True, repr=False)
class GatewayClass(GatewayObject):
    kind: ClassVar[str] = "GatewayClass"


@dataclass(frozen=True, slots=True, repr=False)
class Gateway(GatewayObject):
    kind: ClassVar[str] = "Gateway"


@dataclass(frozen=True, slots=True, repr=False)
class HTTPRoute(GatewayObject):
    kind: ClassVar[str] = "HTTPRoute"


@dataclass(frozen=True, slots=True, repr=False)
class GRPCRoute(GatewayObject):
    kind: ClassVar[str] = "GRPCRoute"


@dataclass(frozen=True, slots=True, repr=False)
class TLSRoute(GatewayObject):
    kind: ClassVar[str] = "TLSRoute"


@dataclass(frozen=True, slots=True, repr=False)
class TCPRoute(GatewayObject):
    kind: ClassVar[str] = "TCPRoute"


@dataclass(frozen=True, slots=True, repr=False)
class ReferenceGrant(GatewayObject):
    kind: ClassVar[str] = "ReferenceGrant"


ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute")
MODEL: dict[str, type[GatewayObject]] = {
    c.kind: c for c in (GatewayClass, Gateway, HTTPRoute, GRPCRoute, TLSRoute, TCPRoute,
                        ReferenceGrant)
}

V1 = f"{GROUP}/v1"
# kind → (preferred apiVersion, namespaced); the other served versions below
KINDS: dict[str, tuple[str, bool]] = {
    "GatewayClass": (V1, False), "Gateway": (V1, True), "HTTPRoute": (V1, True),
    "GRPCRoute": (V1, True), "TLSRoute": (V1, True), "TCPRoute": (V1, True),
    "ReferenceGrant": (V1, True),
}
SERVED_VERSIONS: frozenset[tuple[str, str]] = frozenset({
    (f"{GROUP}/v1beta1", "ReferenceGrant"), (f"{GROUP}/v1beta1", "Gateway"),
    (f"{GROUP}/v1beta1", "GatewayClass"), (f"{GROUP}/v1beta1", "HTTPRoute"),
    (f"{GROUP}/v1alpha2", "TLSRoute"), (f"{GROUP}/v1alpha3", "TLSRoute"),
    (f"{GROUP}/v1alpha2", "TCPRoute"), (f"{GROUP}/v1alpha2", "GRPCRoute"),
    (f"{GROUP}/v1alpha2", "ReferenceGrant"),
})

__all__ = ["KINDS", "SERVED_VERSIONS", "CONTROLLER", "GROUP", "GRPCRoute", "Gateway", "GatewayClass", "GatewayObject",
           "HTTPRoute", "MODEL", "ROUTE_KINDS", "ReferenceGrant", "TCPRoute", "TLSRoute"]
