"""Which node announces a LoadBalancer IP: MetalLB layer-2 mode's leader election, pure.

MetalLB's speaker (``speaker/layer2_controller.go`` ``ShouldAnnounce``) considers the Ready
nodes not labelled ``node.kubernetes.io/exclude-from-external-load-balancers`` (kind labels its
control plane so), only nodes with a ready endpoint when ``externalTrafficPolicy: Local``, and
picks the first by ``sha256(node + "#" + ip)``. That node answers ARP/NDP for the IP, so the
network delivers the IP's traffic to it and its kube-proxy tables take over.
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from collections.abc import Iterable

IPAddress = IPv4Address | IPv6Address
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


def lb_ips(svc: Any) -> list[IPAddress]:
    out: list[IPAddress] = []
    for ing in svc.load_balancer_ingress:
        if ing.ip:
            try:
                out.append(ip_address(ing.ip))
            except ValueError:
                pass
    return out


def _ready_nodes(svc: Any, slices: Iterable[Any]) -> set[str]:
    key = svc.metadata.name
    out: set[str] = set()
    for es in slices:
        if es.namespace != svc.namespace or es.service_name != key:
            continue
        for ep in es.endpoints:
            if ep.conditions.is_ready and ep.node_name:
                out.add(ep.node_name)
    return out


def announcer(ip: IPAddress, svc: Any, nodes: Iterable[Any], slices: Iterable[Any]) -> str | None:
    """The node that announces ``ip`` (MetalLB layer2 ``ShouldAnnounce``), or None."""
    cands = [n.name for n in nodes if n.ready and EXCLUDE_LB_LABEL not in n.labels]
    if svc.spec.external_traffic_policy == "Local":
        ready = _ready_nodes(svc, slices)
        cands = [n for n in cands if n in ready]
    if not cands:
        return None
    text = str(ip)
    return min(cands, key=lambda n: hashlib.sha256(f"{n}#{text}".encode()).digest())
