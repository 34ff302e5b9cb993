"""v1 Endpoints → EndpointSlices, as the EndpointSliceMirroring controller does (v1.32,
pkg/controller/endpointslicemirroring).

Invariants: only Endpoints whose Service exists and has no selector are mirrored (a selector
means the EndpointSlice controller owns that Service's slices), and not those labelled
``endpointslice.kubernetes.io/skip-mirror: "true"``; one slice per (subset ports, address
family); addresses → ready true, notReadyAddresses → ready false; at most 1000 addresses per
subset; the slice's name is ``<endpoints-name>-<5 chars>`` (deterministic here), its labels
are the Endpoints' plus ``kubernetes.io/service-name`` and the mirroring controller's
``managed-by``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any
from collections.abc import Callable

from knet.manifests import names
from knet.manifests.fields import F, quote
from knet.manifests.pods import PROTOCOLS
from knet.model.core import Protocol
from knet.model.discovery import (
    MANAGED_BY_LABEL, SERVICE_NAME_LABEL, Endpoint, EndpointConditions, EndpointPort,
    EndpointSlice, ObjectReference,
)
from knet.model.meta import ObjectMeta, OwnerReference

MIRRORING_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
MAX_ENDPOINTS_PER_SUBSET = 1000
_DROPPED_ANNOTATIONS = ("endpoints.kubernetes.io/last-change-trigger-time",
                        "kubectl.kubernetes.io/last-applied-configuration")


@dataclass(slots=True)
class Subset:
    ports: tuple[EndpointPort, ...]
    endpoints: dict[int, list[Endpoint]] = field(default_factory=dict)  # family → endpoints


@dataclass(slots=True)
class Endpoints:
    """A parsed v1 Endpoints (not a model kind: it only feeds mirroring)."""

    metadata: ObjectMeta
    subsets: list[Subset]
    kind = "Endpoints"


def _address(a: F, ready: bool) -> tuple[int, Endpoint] | None:
    if not a.is_mapping():
        return None
    ip = a.str("ip", required=True)
    try:
        version = ip_address(ip).version
    except ValueError:
        if ip:
            a.child("ip").invalid(names.ip(ip)[0])  # type: ignore[union-attr]
        return None
    ref = a.map("targetRef")
    target = None
    if ref is not None:
        target = ObjectReference(kind=ref.str("kind"), name=ref.str("name"),
                                 namespace=ref.str("namespace"), uid=ref.str("uid"))
    hostname = a.str("hostname")
    if hostname:
        for m in names.dns1123_label(hostname):
            a.child("hostname").invalid(m)  # type: ignore[union-attr]
    return version, Endpoint(addresses=(ip,), conditions=EndpointConditions(ready=ready),
                             hostname=hostname, node_name=a.str("nodeName"), target_ref=target)


def parse_endpoints(doc: F, meta: ObjectMeta, scope: Any) -> Endpoints:
    subsets = []
    for sf in doc.list("subsets"):
        if not sf.is_mapping():
            continue
        ports = []
        for pf in sf.list("ports"):
            if not pf.is_mapping():
                continue
            port = pf.port("port", required=True) or 0
            proto = pf.str("protocol", "TCP")
            if proto not in PROTOCOLS:
                pf.child("protocol").unsupported(PROTOCOLS)  # type: ignore[union-attr]
                proto = "TCP"
            name = pf.str("name")
            if len(sf.list("ports")) > 1 and not name:
                pf.required("name")
            ports.append(EndpointPort(port=port, name=name, protocol=Protocol(proto),
                                      app_protocol=pf.str("appProtocol")))
        sub = Subset(ports=tuple(ports))
        count = 0
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for a in sf.list(key):
                got = _address(a, ready)
                if got is None or count >= MAX_ENDPOINTS_PER_SUBSET:
                    continue
                count += 1
                sub.endpoints.setdefault(got[0], []).append(got[1])
        subsets.append(sub)
    return Endpoints(metadata=meta, subsets=subsets)


def mirror(ep: Endpoints, name_for: Callable[[str, int], str],
           first_index: int) -> list[EndpointSlice]:
    """The slices the mirroring controller would create for ``ep`` (Service checks done by
    the caller)."""
    m = ep.metadata
    labels = {k: v for k, v in m.labels.items()}
    labels[SERVICE_NAME_LABEL] = m.name
    labels[MANAGED_BY_LABEL] = MIRRORING_CONTROLLER
    annotations = {k: v for k, v in m.annotations.items() if k not in _DROPPED_ANNOTATIONS}
    # Subsets with equal port sets share slices (the controller keys slices by ports hash).
    grouped: dict[tuple[tuple[EndpointPort, ...], int], list[Endpoint]] = {}
    for sub in ep.subsets:
        ports = tuple(sorted(sub.ports, key=lambda p: (p.name or "", p.port or 0, p.protocol)))
        for family in sorted(sub.endpoints):
            grouped.setdefault((ports, family), []).extend(sub.endpoints[family])
    out = []
    for i, ((ports, family), endpoints) in enumerate(grouped.items()):
        name = name_for(f"{m.name}-", first_index + i)
        meta = ObjectMeta(
            name=name, namespace=m.namespace, labels=labels, annotations=annotations,
            generate_name=f"{m.name}-", creation_timestamp=m.creation_timestamp,
            creation_index=m.creation_index,
            owner_references=(OwnerReference(kind="Endpoints", name=m.name, uid=m.uid,
                                             controller=True, api_version="v1"),),
            source=m.source)
        out.append(EndpointSlice(metadata=meta, address_type="IPv4" if family == 4 else "IPv6",
                                 endpoints=tuple(endpoints), ports=ports))
    return out


def mirroring_skip_reason(ep: Endpoints, services: dict[str, Any]) -> str | None:
    """Why the controller would not mirror ``ep`` ("" = silently skipped), None to mirror."""
    if ep.metadata.labels.get(SKIP_MIRROR_LABEL) == "true":
        return ""
    svc = services.get(ep.metadata.key)
    if svc is None:
        return (f"Endpoints {ep.metadata.key} not mirrored to EndpointSlices: no Service "
                f"{quote(ep.metadata.name)} in namespace {quote(ep.metadata.namespace)}")
    if svc.spec.selector is not None:
        return ""  # the EndpointSlice controller manages slices for Services with selectors
    return None
