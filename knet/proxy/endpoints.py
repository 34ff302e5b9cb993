"""kube-proxy's endpoints per service port, and how they are categorised.

Invariants (``pkg/proxy/endpointslicecache.go``, ``pkg/proxy/topology.go``, v1.33):
- Slices belong to the Service named by their ``kubernetes.io/service-name`` label. A slice
  port matches a service port by (name, protocol); nil names and nil/zero ports are ignored.
- Only ``addresses[0]`` is used, canonicalised; endpoints of the other family are ignored.
- Endpoints are de-duplicated by their ``IP:port`` string over all slices of the Service (a
  later copy replaces an earlier one unless the later copy is terminating), then sorted by
  that string, lexicographically.
- ``categorize_endpoints`` is ``CategorizeEndpoints`` (kube-proxy.md §1.3); the union case
  (Go map order upstream) is sorted by the ``IP:port`` string (Known ambiguity 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable, Mapping, Sequence

from knet.model.core import Protocol
from knet.model.discovery import EndpointSlice
from knet.proxy.serviceport import ServicePortInfo, ServicePortName, canonical_ip, ip_family_of

ZONE_LABEL = "topology.kubernetes.io/zone"
PREFER_SAME_NODE = "PreferSameNode"
PREFER_SAME_ZONE = "PreferSameZone"
_EMPTY: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """``BaseEndpointInfo``: one endpoint of one service port, as seen from one node."""

    ip: str  # canonical
    port: int
    is_local: bool = False
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    zone_hints: frozenset[str] = frozenset()
    node_hints: frozenset[str] = frozenset()
    endpoint: str = ""  # "IP:port" / "[IPv6]:port" (net.JoinHostPort), precomputed

    def __str__(self) -> str:
        return self.endpoint

    @property
    def family(self) -> int:
        return ip_family_of(self.ip)


def join_host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def slice_info(es: EndpointSlice) -> tuple:
    """What kube-proxy keeps of a slice (``newEndpointSliceInfo``); equal ⇒ no change."""
    ports = tuple(sorted(((p.name is None, p.name or ""), p.port or 0, str(p.protocol))
                         for p in es.ports))
    eps = tuple(sorted(
        (e.addresses, e.node_name, e.zone, e.hints_zones, e.hints_nodes,
         e.conditions.is_ready, e.conditions.is_serving, e.conditions.is_terminating)
        for e in es.endpoints if e.addresses))
    return (es.address_type, ports, eps)


def endpoints_for_service(
    service_key: str,
    slices: Iterable[EndpointSlice],
    family: int,
    node_name: str,
) -> dict[ServicePortName, tuple[EndpointInfo, ...]]:
    """``endpointInfoByServicePort`` + ``endpointsMapFromEndpointInfo`` for one Service:
    service port name → sorted endpoints. Slices are taken in name order."""
    namespace, _, name = service_key.partition("/")
    by_port: dict[ServicePortName, dict[str, EndpointInfo]] = {}
    for es in sorted(slices, key=lambda s: s.metadata.name):
        if es.address_type == "FQDN":
            continue
        for p in es.ports:
            if p.name is None or not p.port:
                continue
            spn = ServicePortName(namespace, name, p.name, p.protocol or Protocol.TCP)
            eps = by_port.setdefault(spn, {})
            port_num = p.port
            for e in es.endpoints:
                if not e.addresses:
                    continue
                addr0 = e.addresses[0]
                if ip_family_of(addr0) != family:
                    continue
                ip = canonical_ip(addr0)
                if ip is None:
                    continue
                cond = e.conditions
                terminating = cond.is_terminating
                key = f"[{ip}]:{port_num}" if family == 6 else f"{ip}:{port_num}"
                if key in eps and terminating:
                    continue
                eps[key] = EndpointInfo(
                    ip=ip, port=port_num,
                    is_local=bool(node_name) and e.node_name == node_name,
                    ready=cond.is_ready, serving=cond.is_serving, terminating=terminating,
                    zone_hints=frozenset(e.hints_zones) if e.hints_zones else _EMPTY,
                    node_hints=frozenset(e.hints_nodes) if e.hints_nodes else _EMPTY,
                    endpoint=key)
    return {spn: tuple(eps[k] for k in sorted(eps)) for spn, eps in by_port.items() if eps}


def build_endpoints_map(
    slices: Iterable[EndpointSlice], family: int, node_name: str,
) -> dict[ServicePortName, tuple[EndpointInfo, ...]]:
    """``EndpointsMap`` for one family and node, from every slice of every Service."""
    by_service: dict[str, list[EndpointSlice]] = {}
    for es in slices:
        svc = es.service_name
        if svc:
            by_service.setdefault(f"{es.namespace}/{svc}", []).append(es)
    out: dict[ServicePortName, tuple[EndpointInfo, ...]] = {}
    for key, group in by_service.items():
        out.update(endpoints_for_service(key, group, family, node_name))
    return out


# --- CategorizeEndpoints ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Categorized:
    cluster: tuple[EndpointInfo, ...]
    local: tuple[EndpointInfo, ...]
    all_reachable: tuple[EndpointInfo, ...]
    has_any: bool


def topology_mode(endpoints: Sequence[EndpointInfo], node_name: str, zone: str,
                  prefer_same_node: bool = False) -> str:
    """``topologyModeFromHints`` (ready endpoints only)."""
    has_node = False
    all_node = True
    has_zone = False
    all_zone = True
    for e in endpoints:
        if not e.ready:
            continue
        if not e.zone_hints:
            all_zone = False
        elif zone in e.zone_hints:
            has_zone = True
        if not e.node_hints:
            all_node = False
        elif node_name in e.node_hints:
            has_node = True
    if prefer_same_node and all_node and has_node:
        return PREFER_SAME_NODE
    if all_zone and has_zone:
        return PREFER_SAME_ZONE
    return ""


def _available(e: EndpointInfo, mode: str, node_name: str, zone: str) -> bool:
    if mode == "":
        return True
    if mode == PREFER_SAME_NODE:
        return node_name in e.node_hints
    if mode == PREFER_SAME_ZONE:
        return zone in e.zone_hints
    return False


def categorize_endpoints(
    endpoints: Sequence[EndpointInfo],
    svc: ServicePortInfo,
    node_name: str,
    node_labels: Mapping[str, str],
    *,
    prefer_same_node: bool = False,
) -> Categorized:
    """``CategorizeEndpoints`` (kube-proxy.md §1.3). ``prefer_same_node`` is the
    PreferSameTrafficDistribution feature gate (alpha in v1.33, off by default)."""
    cluster: tuple[EndpointInfo, ...] = ()
    mode = ""
    has_any = False
    if svc.uses_cluster_endpoints:
        zone = node_labels.get(ZONE_LABEL, "")
        mode = topology_mode(endpoints, node_name, zone, prefer_same_node)
        if mode:
            cluster = tuple(e for e in endpoints
                            if e.ready and _available(e, mode, node_name, zone))
        else:
            cluster = tuple(e for e in endpoints if e.ready)
        if not cluster:
            cluster = tuple(e for e in endpoints if e.serving and e.terminating)
        has_any = bool(cluster)
    if not svc.uses_local_endpoints:
        return Categorized(cluster, (), cluster, has_any)
    local_ready = False
    local_term = False
    for e in endpoints:
        if e.ready:
            has_any = True
            if e.is_local:
                local_ready = True
        elif e.serving and e.terminating:
            has_any = True
            if e.is_local:
                local_term = True
    local: tuple[EndpointInfo, ...] = ()
    used_terminating = False
    if local_ready:
        local = tuple(e for e in endpoints if e.is_local and e.ready)
    elif local_term:
        used_terminating = True
        local = tuple(e for e in endpoints if e.is_local and e.serving and e.terminating)
    if not svc.uses_cluster_endpoints:
        return Categorized(cluster, local, local, has_any)
    if mode == "" and not used_terminating:
        return Categorized(cluster, local, cluster, has_any)
    merged = {e.endpoint: e for e in cluster}
    for e in local:
        merged[e.endpoint] = e
    return Categorized(cluster, local, tuple(merged[k] for k in sorted(merged)), has_any)
