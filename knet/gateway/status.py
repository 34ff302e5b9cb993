"""Status stanzas of Gateway API objects, written through one function per kind from the
compiled tables (reference §8, §12: every condition carries the current observedGeneration).

Invariants: deterministic — ``lastTransitionTime`` is the object's creationTimestamp (knet has
no history of transitions); conditions appear in the order the reference lists them; route
parents keep the order of ``spec.parentRefs``.
"""

from __future__ import annotations

from typing import Any

from knet.gateway.model import CONTROLLER, GROUP, GatewayObject
from knet.gateway.routes import Condition, Tables

_EPOCH = "1970-01-01T00:00:00Z"


def _conds(obj: GatewayObject, conds: list[Condition]) -> list[dict[str, Any]]:
    t = obj.metadata.creation_timestamp or _EPOCH
    return [{"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
             "observedGeneration": obj.generation, "lastTransitionTime": t} for c in conds]


def _pending(obj: GatewayObject, *types: str) -> dict[str, Any]:
    """The CRD's default status (no controller has written one)."""
    return {"conditions": _conds(obj, [Condition(t, "Unknown", "Pending",
                                                 "Waiting for controller") for t in types])}


def status_of(tables: Tables, obj: GatewayObject) -> dict[str, Any]:
    kind = obj.kind
    if kind == "GatewayClass":
        entry = tables.classes.get(obj.metadata.name)
        if entry is None or not entry[1]:
            return _pending(obj, "Accepted")
        return {"conditions": _conds(obj, entry[1])}
    if kind == "Gateway":
        cg = tables.gateways.get(obj.metadata.key)
        if cg is None:
            return _pending(obj, "Accepted", "Programmed")
        out: dict[str, Any] = {}
        if cg.addresses:
            out["addresses"] = [{"type": "IPAddress", "value": a} for a in cg.addresses]
        out["conditions"] = _conds(obj, cg.conditions)
        out["listeners"] = [{
            "name": ls.name,
            "supportedKinds": [{"group": GROUP, "kind": k} for k in ls.supported_kinds],
            "attachedRoutes": ls.attached,
            "conditions": _conds(obj, ls.conditions),
        } for ls in cg.listeners]
        return out
    if kind in ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute"):
        parents = tables.route_status.get((kind, obj.metadata.key), [])
        return {"parents": [{"parentRef": p.ref, "controllerName": CONTROLLER,
                             "conditions": _conds(obj, p.conditions)} for p in parents]}
    return {}


def manifest(tables: Tables, obj: GatewayObject) -> dict[str, Any]:
    """The object as ``kubectl get -o yaml`` shows it: defaulted spec and status."""
    m = obj.metadata
    meta: dict[str, Any] = {"name": m.name}
    if m.namespace:
        meta["namespace"] = m.namespace
    if m.labels:
        meta["labels"] = dict(m.labels)
    if m.annotations:
        meta["annotations"] = dict(m.annotations)
    meta["generation"] = obj.generation
    if m.uid:
        meta["uid"] = m.uid
    if m.creation_timestamp:
        meta["creationTimestamp"] = m.creation_timestamp
    out: dict[str, Any] = {"apiVersion": obj.api_version, "kind": obj.kind, "metadata": meta,
                           "spec": dict(obj.spec)}
    st = status_of(tables, obj)
    if st:
        out["status"] = st
    return out


__all__ = ["manifest", "status_of"]
