"""The Gateway API seen from a converged cluster: compiled tables, ``knet get``, ``knet route``.

Adapter between knet.control's Cluster (objects, Services, EndpointSlices, Secrets) and the
pure gateway modules; no IO besides returning text.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from knet.errors import NotFound, UsageError
from knet.gateway.decision import GatewayDecision, GatewayRequest, decide
from knet.gateway.model import MODEL, GatewayObject
from knet.gateway.routes import BUILTIN_CLASS, Tables, builtin_class, compile_tables
from knet.gateway.status import manifest

# resource (plural) → kind; kubectl's short names
RESOURCES = {"gatewayclasses": "GatewayClass", "gateways": "Gateway", "httproutes": "HTTPRoute",
             "grpcroutes": "GRPCRoute", "referencegrants": "ReferenceGrant",
             "tlsroutes": "TLSRoute", "tcproutes": "TCPRoute"}
ALIASES = {"gatewayclass": "gatewayclasses", "gc": "gatewayclasses", "gateway": "gateways",
           "gtw": "gateways", "httproute": "httproutes", "grpcroute": "grpcroutes",
           "referencegrant": "referencegrants", "refgrant": "referencegrants",
           "tlsroute": "tlsroutes", "tcproute": "tcproutes"}
GATEWAY_LABEL = "gateway.networking.k8s.io/gateway-name"


def gateway_objects(cluster: Any) -> list[GatewayObject]:
    out: list[GatewayObject] = []
    for kind in MODEL:
        out += cluster.objects(kind)
    if not any(o.kind == "GatewayClass" and o.metadata.name == BUILTIN_CLASS for o in out):
        out.insert(0, builtin_class())
    return out


def addresses(cluster: Any) -> dict[str, list[str]]:
    """Gateway ``ns/name`` → LoadBalancer addresses of its data-plane Service."""
    out: dict[str, list[str]] = {}
    for svc in cluster.services():
        gw = svc.metadata.labels.get(GATEWAY_LABEL)
        if gw and svc.metadata.labels.get("app.kubernetes.io/managed-by") == "knet-gateway":
            ips = [i.ip or i.hostname for i in svc.load_balancer_ingress]
            out.setdefault(f"{svc.metadata.namespace}/{gw}", []).extend(ips)
    return out


def exposed_service(cluster: Any, gateway: str, port: int | None) -> tuple[str, int]:
    """The data-plane Service of Gateway ``ns/name`` and the listener port to relay to
    (``port``, else the Gateway's first listener port)."""
    from knet.gateway.controller import service_name

    gw = next((o for o in cluster.objects("Gateway") if o.metadata.key == gateway), None)
    if gw is None or "/" not in gateway:
        raise UsageError(f"--gateway: no Gateway {gateway} (give NAMESPACE/NAME)")
    ports = [ls["port"] for ls in gw.spec.get("listeners", ())]
    if port is None:
        port = ports[0]
    elif port not in ports:
        raise UsageError(f"--gateway: Gateway {gateway} has no listener on port {port}")
    return f"{gw.metadata.namespace}/{service_name(gw.metadata.name)}", port


def loopback_addresses(cluster: Any, table: dict[str, Any]) -> list[tuple[str, str]]:
    """(``ns/name:port``, loopback ``IP:port``) of every served Gateway's listener ports,
    from ``knet up``'s LoadBalancer mapping (``--gateways``)."""
    from knet.gateway.controller import served, service_name

    out = []
    for gw in sorted(served(gateway_objects(cluster)), key=lambda g: g.metadata.key):
        svc = f"{gw.metadata.namespace}/{service_name(gw.metadata.name)}"
        for lb in table.get("loadBalancers", ()):
            if svc not in lb["services"]:
                continue
            for port in sorted({int(p.split("/")[0]) for p in lb["ports"]}):
                out.append((f"{gw.metadata.key}:{port}", f"{lb['loopback']}:{port}"))
    return out


def tables_for(cluster: Any) -> Tables:
    ns_labels = {n.metadata.name: {**n.metadata.labels,
                                   "kubernetes.io/metadata.name": n.metadata.name}
                 for n in cluster.namespaces()}
    return compile_tables(gateway_objects(cluster), cluster.services(),
                          cluster.endpoint_slices(), cluster.secrets(), ns_labels,
                          addresses(cluster))


def resolve_resource(kind: str) -> str | None:
    k = kind.lower()
    k = ALIASES.get(k, k)
    if k.endswith(".gateway.networking.k8s.io"):
        k = k.split(".", 1)[0]
    return k if k in RESOURCES else None


def _age(cluster: Any, obj: GatewayObject) -> str:
    from knet.printers import age

    return age(cluster, obj)


def _cond(status: dict[str, Any], type_: str) -> str:
    for c in status.get("conditions", ()):
        if c["type"] == type_:
            return str(c["status"])
    return "Unknown"


def run_get(cluster: Any, resource: str, name: str | None, namespace: str | None,
            all_namespaces: bool, output: str | None) -> str:
    """``kubectl get`` of Gateway API kinds, with the CRDs' printer columns."""
    from knet.printers import table
    from knet.gateway.status import status_of

    kind = RESOURCES[resource]
    namespaced = kind != "GatewayClass"
    ns = None if all_namespaces else (namespace or "default")
    tables = tables_for(cluster)
    objs = [o for o in gateway_objects(cluster) if o.kind == kind
            and (not namespaced or ns is None or o.metadata.namespace == ns)]
    if name is not None:
        objs = [o for o in objs if o.metadata.name == name]
        if not objs:
            raise NotFound(f'{resource}.gateway.networking.k8s.io "{name}" not found')
    objs.sort(key=lambda o: (o.metadata.namespace, o.metadata.name))
    if output in ("yaml", "json"):
        from knet.manifests import to_yaml

        items = [manifest(tables, o) for o in objs]
        data: Any = items[0] if name is not None and len(items) == 1 else {
            "apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
        return json.dumps(data, indent=4) + "\n" if output == "json" else to_yaml(data)
    if output == "name":
        return "".join(f"{resource[:-1] if resource.endswith('s') else resource}"
                       f".gateway.networking.k8s.io/{o.metadata.name}\n" for o in objs)
    if not objs:
        where = f" in {ns} namespace" if namespaced and ns is not None else ""
        raise NotFound(f"No resources found{where}.")
    rows: list[list[str]] = []
    if kind == "GatewayClass":
        cols = ["NAME", "CONTROLLER", "ACCEPTED", "AGE"]
        if output == "wide":
            cols.append("DESCRIPTION")
        for o in objs:
            st = status_of(tables, o)
            row = [o.metadata.name, o.spec.get("controllerName", ""), _cond(st, "Accepted"),
                   _age(cluster, o)]
            if output == "wide":
                row.append(o.spec.get("description", "<none>"))
            rows.append(row)
    elif kind == "Gateway":
        cols = ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
        for o in objs:
            st = status_of(tables, o)
            addr = ",".join(a["value"] for a in st.get("addresses", ()))
            rows.append([o.metadata.name, o.spec.get("gatewayClassName", ""), addr,
                         _cond(st, "Programmed"), _age(cluster, o)])
    elif kind in ("HTTPRoute", "GRPCRoute"):
        cols = ["NAME", "HOSTNAMES", "AGE"]
        for o in objs:
            hosts = o.spec.get("hostnames")
            rows.append([o.metadata.name, json.dumps(hosts, separators=(",", ":")) if hosts
                         else "", _age(cluster, o)])
    else:
        cols = ["NAME", "AGE"]
        for o in objs:
            rows.append([o.metadata.name, _age(cluster, o)])
    if namespaced and ns is None:
        cols.insert(0, "NAMESPACE")
        rows = [[o.metadata.namespace, *r] for o, r in zip(objs, rows)]
    return table(cols, rows)


def route(cluster: Any, gateway: str, *, path: str, host: str | None = None,
          method: str = "GET", headers: Sequence[tuple[str, str]] = (), port: int | None = None,
          scheme: str = "http", sni: str | None = None, grpc: bool = False,
          seed: int | None = None) -> GatewayDecision:
    """``knet route --gateway``: the decision for one request (``host`` defaults to the
    Gateway's address, as a request by IP has it)."""
    if "/" not in gateway:
        raise UsageError(f"--gateway must be NAMESPACE/NAME, got {gateway!r}")
    tables = tables_for(cluster)
    cg = tables.gateway(gateway)
    if cg is None:
        known = ", ".join(sorted(tables.gateways)) or "none"
        raise UsageError(f"Gateway {gateway} is not served by knet (Gateways of knet's "
                         f"GatewayClasses: {known})")
    if not path.startswith("/"):
        raise UsageError(f"--path must start with '/', got {path!r}")
    req = GatewayRequest(method.upper(), path, host or "", headers, scheme, port,
                         sni if sni is not None else (host if scheme == "https" else None), grpc)
    rng = random.Random(cluster.seed if seed is None else seed)
    return decide(tables, gateway, req, rng)


__all__ = ["RESOURCES", "addresses", "gateway_objects", "resolve_resource", "route", "run_get",
           "tables_for"]
