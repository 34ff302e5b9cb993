"""Checks across objects: duplicates and the allocators' view of user-given values.

Invariants: objects are visited in input order, as a sequence of creates would be; a value is
rejected exactly when the API server's allocator would reject that create (the first Service
to claim a ClusterIP or NodePort keeps it). ClusterIPs: inside a service CIDR of their family,
not the network address (nor, for IPv4, the broadcast address), not already allocated; the
first address of the primary range belongs to ``default/kubernetes``. NodePorts (and
healthCheckNodePorts) share one protocol-agnostic allocator over the node-port range; a
Service may reuse its own NodePort number for another protocol.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from knet.manifests.fields import F, quote
from knet.model.config import ClusterConfig
from knet.model.core import Service, ServiceType


def duplicates(entries: list[tuple[Any, F]]) -> None:
    seen: dict[tuple[str, str, str], F] = {}
    for obj, doc in entries:
        meta = obj.metadata
        if not meta.name:
            continue
        key = (obj.kind, meta.namespace, meta.name)
        if key in seen:
            first = seen[key]
            where = doc.child("metadata")
            target = (where.child("name") if where is not None else None) or doc
            target.error(f"Duplicate value: {obj.kind} {quote(meta.key)} already defined at "
                         f"{first.ctx.file}:{first.loc[0]}:{first.loc[1]}")
        else:
            seen[key] = doc


def _ip_field(doc: F, index: int) -> F:
    spec = doc.child("spec")
    if spec is not None:
        cips = spec.child("clusterIPs")
        if cips is not None and isinstance(cips.value, list) and index < len(cips.value):
            return cips.items_of_list()[index]
        if index == 0 and spec.child("clusterIP") is not None:
            return spec.child("clusterIP")  # type: ignore[return-value]
        return spec
    return doc


def cluster_ips(entries: list[tuple[Service, F]], config: ClusterConfig) -> None:
    taken: dict[Any, str] = {}
    primary = config.service_subnets[0]
    kubernetes_ip = primary.network_address + 1
    users = {s.metadata.key for s, _ in entries}
    if "default/kubernetes" not in users:
        taken[kubernetes_ip] = "default/kubernetes"
    for svc, doc in entries:
        if svc.spec.type is ServiceType.EXTERNAL_NAME or svc.headless:
            continue
        for i, text in enumerate(svc.spec.cluster_ips):
            try:
                ip = ip_address(text)
            except ValueError:
                continue  # reported by the Service's own validation
            ranges = [n for n in config.service_subnets if n.version == ip.version]
            valid = [n for n in ranges if ip in n and ip != n.network_address
                     and not (n.version == 4 and ip == n.broadcast_address)]
            f = _ip_field(doc, i)
            if not valid:
                shown = ",".join(str(n) for n in ranges) or "(no range of this IP family)"
                f.error(f"Invalid value: {quote(text)}: failed to allocate IP {text}: provided "
                        f"IP is not in the valid range. The range of valid IPs is {shown}")
                continue
            owner = taken.get(ip)
            if owner is not None and owner != svc.metadata.key:
                f.error(f"Invalid value: {quote(text)}: failed to allocate IP {text}: provided "
                        f"IP is already allocated")
                continue
            taken[ip] = svc.metadata.key


def node_ports(entries: list[tuple[Service, F]], config: ClusterConfig) -> None:
    lo, hi = config.node_port_range
    taken: dict[int, str] = {}
    for svc, doc in entries:
        if svc.spec.type not in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER):
            continue
        spec = doc.child("spec")
        port_fs = spec.list("ports") if spec is not None else []
        wanted: list[tuple[int, F]] = []
        for i, p in enumerate(svc.spec.ports):
            if p.node_port and i < len(port_fs):
                wanted.append((p.node_port, port_fs[i].child("nodePort") or port_fs[i]))
        if svc.spec.health_check_node_port and spec is not None:
            wanted.append((svc.spec.health_check_node_port,
                           spec.child("healthCheckNodePort") or spec))
        mine: set[int] = set()
        for port, f in wanted:
            if not lo <= port <= hi:
                f.error(f"Invalid value: {port}: provided port is not in the valid range. The "
                        f"range of valid ports is {lo}-{hi}")
                continue
            if port in mine:
                continue  # same number for another protocol of the same Service
            owner = taken.get(port)
            if owner is not None:
                f.error(f"Invalid value: {port}: provided port is already allocated")
                continue
            taken[port] = svc.metadata.key
            mine.add(port)


# Kubernetes' documented limit for one cluster ("Considerations for large clusters": no more
# than 150,000 total pods); knet's control plane is benchmarked at that size (bench/scale.py).
MAX_PODS = 150_000


def pod_budget(entries: list[tuple[Any, F]], nodes: int) -> None:
    """Refuse an input whose workloads ask for more than ``MAX_PODS`` pods in total, at the
    object that crosses the limit (nothing is materialised: no multi-gigabyte hang)."""
    total = 0
    for obj, doc in entries:
        kind = obj.kind
        if kind in ("Deployment", "ReplicaSet", "StatefulSet"):
            n, field = obj.replicas, "replicas"
        elif kind == "Job":
            n, field = min(obj.parallelism, obj.completions if obj.completions is not None
                           else obj.parallelism), "parallelism"
        elif kind == "DaemonSet":
            n, field = nodes, ""
        elif kind == "Pod":
            n, field = 1, ""
        else:
            continue
        total += max(n, 0)
        if total > MAX_PODS:
            spec = doc.child("spec")
            where = (spec.child(field) if spec is not None and field else None) or spec or doc
            where.error(f"Forbidden: the input asks for {total} pods or more; knet runs at most "
                        f"{MAX_PODS} (Kubernetes' documented limit for one cluster)")
            return
