"""EndpointSlice controller (pkg/controller/endpointslice, k8s.io/endpointslice), pure.

Invariants (staging/src/k8s.io/endpointslice ``reconciler.go``, ``utils.go``):
- Only Services with a selector get managed slices; ExternalName Services get none. Slices of
  selectorless Services (user-given) are never touched.
- One endpoint per pod that has an IP of the slice's family and is not Succeeded/Failed;
  ``ready = publishNotReadyAddresses || (podReady && !terminating)``, ``serving = podReady``,
  ``terminating = deletionTimestamp != nil``; ``hostname`` only when ``pod.spec.hostname`` is
  set and ``pod.spec.subdomain`` equals the Service name (``ShouldSetHostname``).
- Ports: one per Service port, ``name`` = the Service port's name, the port number is the
  targetPort resolved on that pod (a named targetPort is looked up by container port name and
  protocol; when it does not resolve the port is left out for that pod). Endpoints are
  grouped by (addressType, port list) — one "endpointMeta" — and each group is packed into
  slices of at most 100 endpoints.
- Stable reconciliation: an endpoint stays in the slice that already holds it; new endpoints
  fill existing slices of the same group before a new slice is created; slices left empty are
  deleted, except that a Service with no endpoints of a family keeps one placeholder slice
  (no endpoints, no ports), as the real controller does.
- Names: ``generateName: <service>-`` (5 random characters from the injected rng).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence

from knet.control.store import evolve
from knet.control.naming import random_suffix
from knet.model.core import Pod, Service, ServicePort, ServiceType
from knet.model.discovery import (
    MANAGED_BY_CONTROLLER, MANAGED_BY_LABEL, MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME_LABEL,
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, ObjectReference,
)
from knet.model.meta import ObjectMeta, OwnerReference

HEADLESS_LABEL = "service.kubernetes.io/headless"
ADDRESS_TYPE = {4: "IPv4", 6: "IPv6"}

PortKey = tuple[EndpointPort, ...]


def is_managed(slice_: EndpointSlice) -> bool:
    return slice_.metadata.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_CONTROLLER


def wants_slices(svc: Service) -> bool:
    return svc.spec.selector is not None and svc.spec.type != ServiceType.EXTERNAL_NAME


def find_port(pod: Pod, sp: ServicePort) -> int | None:
    """podutil.FindPort: an int targetPort as is; a name by container port name + protocol."""
    tp = sp.target_port
    if isinstance(tp, int):
        return tp or sp.port
    if tp.isdigit():
        return int(tp)
    for c in pod.spec.containers:
        for p in c.ports:
            if p.name == tp and p.protocol == sp.protocol:
                return p.container_port
    return None


def endpoint_ports(svc: Service, pod: Pod) -> PortKey:
    out = []
    for sp in svc.spec.ports:
        n = find_port(pod, sp)
        if n is None:
            continue
        out.append(EndpointPort(port=n, name=sp.name, protocol=sp.protocol,
                                app_protocol=sp.app_protocol))
    return tuple(out)


def pod_endpoint(svc: Service, pod: Pod, family: int, zone: str) -> Endpoint | None:
    if pod.status.phase in ("Succeeded", "Failed"):
        return None
    addrs = [ip_text(ip) for ip in pod.status.pod_ips if ip.version == family]
    if not addrs:
        return None
    terminating = pod.terminating
    pod_ready = pod.status.ready
    ready = svc.spec.publish_not_ready_addresses or (pod_ready and not terminating)
    hostname = ""
    if pod.spec.hostname and pod.spec.subdomain == svc.name and pod.namespace == svc.namespace:
        hostname = pod.spec.hostname
    return Endpoint(
        addresses=(addrs[0],),
        conditions=EndpointConditions(ready=ready, serving=pod_ready, terminating=terminating),
        hostname=hostname,
        node_name=pod.spec.node_name,
        zone=zone,
        target_ref=ObjectReference("Pod", pod.name, pod.namespace, pod.metadata.uid),
    )


def ip_text(ip: Any) -> str:
    """str(ip), several times faster for IPv4 (ipaddress.__str__ is slow at scale)."""
    if ip.version == 4:
        i = int(ip)
        return f"{i >> 24}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    return str(ip)


def _with_hints(svc: Service, eps: list[Endpoint]) -> list[Endpoint]:
    # KEP-4444 trafficDistribution: hints only when every endpoint has a zone.
    mode = svc.spec.traffic_distribution
    if mode not in ("PreferClose", "PreferSameZone", "PreferSameNode") or not eps:
        return eps
    if any(not e.zone for e in eps):
        return eps
    if mode == "PreferSameNode":
        return [evolve(e, hints_zones=(e.zone,), hints_nodes=(e.node_name,) if e.node_name else ())
                for e in eps]
    return [evolve(e, hints_zones=(e.zone,)) for e in eps]


def slice_labels(svc: Service) -> dict[str, str]:
    labels = dict(svc.metadata.labels)
    labels[SERVICE_NAME_LABEL] = svc.name
    labels[MANAGED_BY_LABEL] = MANAGED_BY_CONTROLLER
    if svc.headless:
        labels[HEADLESS_LABEL] = ""
    return dict(sorted(labels.items()))


def _ep_id(e: Endpoint) -> tuple:
    ref = e.target_ref
    return (ref.namespace, ref.name) if ref else ("", e.addresses[0])


@dataclass(frozen=True, slots=True)
class SliceChanges:
    apply: tuple[EndpointSlice, ...]
    delete: tuple[str, ...]  # slice names


def reconcile(svc: Service, pods: Iterable[Pod], existing: Sequence[EndpointSlice],
              node_zone: Callable[[str], str], rng: random.Random,
              families: Sequence[int], now_index: Callable[[], int] | None = None
              ) -> SliceChanges:
    """Desired slices for ``svc`` given its selected ``pods`` and its current managed slices."""
    ordered = sorted(pods, key=lambda p: (p.metadata.creation_index, p.name))
    owner = OwnerReference("Service", svc.name, svc.metadata.uid, True, "v1")
    labels = slice_labels(svc)
    apply: list[EndpointSlice] = []
    keep: set[str] = set()
    taken = {s.metadata.name for s in existing}

    def new_name() -> str:
        while True:
            name = f"{svc.name[:58]}-{random_suffix(rng)}"
            if name not in taken:
                taken.add(name)
                return name

    for family in families:
        atype = ADDRESS_TYPE[family]
        groups: dict[PortKey, list[Endpoint]] = {}
        for pod in ordered:
            ep = pod_endpoint(svc, pod, family, node_zone(pod.spec.node_name))
            if ep is None:
                continue
            groups.setdefault(endpoint_ports(svc, pod), []).append(ep)
        mine = [s for s in existing if s.address_type == atype]
        if not groups:
            placeholder = next((s for s in mine if not s.endpoints and not s.ports),
                               mine[0] if mine else None)
            name = placeholder.metadata.name if placeholder else new_name()
            keep.add(name)
            apply.append(_slice(svc, name, atype, (), (), labels, owner, placeholder))
            continue
        for ports, eps in groups.items():
            eps = _with_hints(svc, eps)
            same = [s for s in mine if s.ports == ports]
            where: dict[tuple, str] = {}
            for s in same:
                for e in s.endpoints:
                    where.setdefault(_ep_id(e), s.metadata.name)
            buckets: dict[str, list[Endpoint]] = {s.metadata.name: [] for s in same}
            fresh: list[Endpoint] = []
            for e in eps:
                home = where.get(_ep_id(e))
                if home is not None and len(buckets[home]) < MAX_ENDPOINTS_PER_SLICE:
                    buckets[home].append(e)
                else:
                    fresh.append(e)
            for s in same:  # fill existing slices with room
                b = buckets[s.metadata.name]
                while fresh and len(b) < MAX_ENDPOINTS_PER_SLICE:
                    b.append(fresh.pop(0))
            while fresh:
                name = new_name()
                buckets[name], fresh = fresh[:MAX_ENDPOINTS_PER_SLICE], fresh[MAX_ENDPOINTS_PER_SLICE:]
            by_name = {s.metadata.name: s for s in same}
            for name, b in buckets.items():
                if not b:
                    continue
                keep.add(name)
                apply.append(_slice(svc, name, atype, tuple(b), ports, labels, owner,
                                    by_name.get(name)))
    delete = tuple(s.metadata.name for s in existing if s.metadata.name not in keep)
    # Only changed slices are written (the real controller skips no-op updates).
    changed = tuple(s for s in apply if s != _previous(existing, s.metadata.name))
    return SliceChanges(changed, delete)


def _previous(existing: Sequence[EndpointSlice], name: str) -> EndpointSlice | None:
    for s in existing:
        if s.metadata.name == name:
            return s
    return None


def _slice(svc: Service, name: str, atype: str, eps: tuple[Endpoint, ...], ports: PortKey,
           labels: Mapping[str, str], owner: OwnerReference,
           previous: EndpointSlice | None) -> EndpointSlice:
    if previous is not None:
        meta = previous.metadata
        if meta.labels != labels:
                    meta = evolve(meta, labels=labels)
    else:
        meta = ObjectMeta(name=name, namespace=svc.namespace, labels=labels,
                          generate_name=f"{svc.name[:58]}-", owner_references=(owner,))
    return EndpointSlice(metadata=meta, address_type=atype, endpoints=eps, ports=ports)


def slice_families(svc: Service, default: Sequence[int]) -> tuple[int, ...]:
    return tuple(svc.spec.ip_families) or tuple(default[:1])
