"""Gateway API attachment and compiled listener tables (pure): the controller's whole view.

Invariants (reference: shared/reference/gateway-api.md):
- only GatewayClasses whose ``controllerName`` is knet's are served, and only their Gateways;
  the built-in GatewayClass ``knet`` exists unless the input defines one of that name;
- a listener accepts a route when the namespace is allowed, the kind is allowed and the
  hostnames intersect (§3); status reasons are the spec's (§8);
- per listener, HTTPRoute matches are sorted once by the §4.2 precedence key in buckets by
  route hostname (exact name, wildcard suffix, any): a request scans candidates in key order
  and stops at the first full match (ambiguities #2, #4, #15, #16 as the reference's defaults);
- every backend reference is resolved here (kind, ReferenceGrant, Service, port, ready
  endpoints), so a decision needs no look-ups.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from knet.gateway.model import (
    CONTROLLER,
    GROUP,
    GatewayClass,
    GatewayObject,
    ReferenceGrant,
)
from knet.model.core import Secret, Service
from knet.model.discovery import EndpointSlice
from knet.model.meta import LabelSelector, LabelSelectorRequirement, ObjectMeta

BUILTIN_CLASS = "knet"
SUPPORTED_PROTOCOLS = ("HTTP", "HTTPS", "TLS", "TCP")
DEFAULT_KINDS = {"HTTP": ("HTTPRoute", "GRPCRoute"), "HTTPS": ("HTTPRoute", "GRPCRoute"),
                 "TLS": ("TLSRoute",), "TCP": ("TCPRoute",), "UDP": ("UDPRoute",)}
_PORT_GROUP = {"HTTP": "http", "HTTPS": "tls", "TLS": "tls", "TCP": "tcp", "UDP": "udp"}


def builtin_class() -> GatewayClass:
    return GatewayClass(metadata=ObjectMeta(name=BUILTIN_CLASS, uid="knet-gatewayclass"),
                        spec={"controllerName": CONTROLLER,
                              "description": "knet's built-in Gateway API controller"})


# --- hostnames ------------------------------------------------------------------------------

def host_matches(pattern: str, host: str) -> bool:
    """A (listener or route) hostname covers a request host: wildcards cover one or more
    labels (``*.a`` covers ``x.a`` and ``x.y.a``, not ``a``)."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return pattern == host


def intersect(listener: str, route: str) -> str | None:
    """The more specific of two intersecting hostnames (§3 table), else None."""
    if not listener:
        return route
    if not route:
        return listener
    if listener == route:
        return route
    if route.startswith("*.") and listener.startswith("*."):
        if route.endswith(listener[1:]):
            return route
        if listener.endswith(route[1:]):
            return listener
        return None
    if route.startswith("*."):
        return listener if host_matches(route, listener) else None
    if listener.startswith("*."):
        return route if host_matches(listener, route) else None
    return None


def effective_hostnames(listener: str, route_hosts: Sequence[str]) -> tuple[str, ...] | None:
    """Hostnames a route serves on a listener; ``("",)`` for any; None: no intersection."""
    if not route_hosts:
        return (listener,)
    out = [h for h in (intersect(listener, r) for r in route_hosts) if h is not None]
    return tuple(dict.fromkeys(out)) if out else None


def request_host(host_header: str) -> str:
    """Ambiguity #1: lower-case, port and one trailing dot removed."""
    h = host_header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[:end + 1] if end > 0 else h
    colon = h.rfind(":")
    if colon >= 0:
        h = h[:colon]
    return h[:-1] if h.endswith(".") else h


# --- compiled values ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""


@dataclass(slots=True)
class Backend:
    """One backendRef, resolved."""

    ref: str  # ns/name:port
    weight: int
    valid: bool
    reason: str = ""  # ResolvedRefs reason when invalid
    message: str = ""
    addresses: tuple[tuple[str, int], ...] = ()  # ready endpoints
    filters: tuple[dict[str, Any], ...] = ()
    app_protocol: str = ""


@dataclass(slots=True)
class Match:
    path_type: str = "PathPrefix"
    path: str = "/"
    path_rx: re.Pattern[str] | None = None
    headers: tuple[tuple[str, str, re.Pattern[str] | None], ...] = ()  # (lower name, value, rx)
    query: tuple[tuple[str, str, re.Pattern[str] | None], ...] = ()
    method: str = ""
    grpc_service: str = ""
    grpc_method: str = ""
    grpc_rx: re.Pattern[str] | None = None


@dataclass(slots=True)
class Rule:
    route: Any  # CompiledRoute
    index: int
    name: str
    matches: tuple[Match, ...]
    filters: tuple[dict[str, Any], ...]
    backends: tuple[Backend, ...]
    mirrors: tuple[tuple[Backend, dict[str, Any]], ...]
    timeout_request: float | None = None
    timeout_backend: float | None = None


@dataclass(slots=True)
class CompiledRoute:
    obj: GatewayObject
    kind: str
    key: str  # ns/name
    rules: tuple[Rule, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.kind} {self.key}"


@dataclass(slots=True)
class Listener:
    gateway: str  # ns/name
    name: str
    port: int
    protocol: str
    hostname: str
    tls_mode: str
    index: int
    supported_kinds: tuple[str, ...] = ()
    conditions: list[Condition] = field(default_factory=list)
    attached: int = 0
    valid: bool = True  # Accepted, not conflicted
    programmed: bool = True
    certificates: tuple[Secret, ...] = ()
    # compiled tables: (key, rule, match index) lists by hostname bucket
    exact: dict[str, list[tuple[tuple[Any, ...], Rule, int]]] = field(default_factory=dict)
    wildcard: dict[str, list[tuple[tuple[Any, ...], Rule, int]]] = field(default_factory=dict)
    any_host: list[tuple[tuple[Any, ...], Rule, int]] = field(default_factory=list)
    grpc_exact: dict[str, list[tuple[tuple[Any, ...], Rule, int]]] = field(default_factory=dict)
    grpc_wildcard: dict[str, list[tuple[tuple[Any, ...], Rule, int]]] = field(default_factory=dict)
    grpc_any: list[tuple[tuple[Any, ...], Rule, int]] = field(default_factory=list)
    l4: list[tuple[tuple[str, ...], Rule]] = field(default_factory=list)  # (hostnames, rule)

    def candidates(self, host: str, grpc: bool = False) -> Iterable[tuple[tuple[Any, ...], Rule,
                                                                           int]]:
        """Entries whose route hostnames cover ``host``, in precedence order."""
        exact, wild, any_ = ((self.grpc_exact, self.grpc_wildcard, self.grpc_any) if grpc
                             else (self.exact, self.wildcard, self.any_host))
        lists = []
        e = exact.get(host)
        if e:
            lists.append(e)
        if wild:
            i = host.find(".")
            while i >= 0:
                w = wild.get(host[i:])
                if w:
                    lists.append(w)
                i = host.find(".", i + 1)
        if any_:
            lists.append(any_)
        if len(lists) == 1:
            return lists[0]
        return heapq.merge(*lists, key=lambda t: t[0])


@dataclass(slots=True)
class CompiledGateway:
    obj: GatewayObject
    key: str
    class_name: str
    listeners: list[Listener]
    addresses: tuple[str, ...]
    conditions: list[Condition] = field(default_factory=list)


@dataclass(slots=True)
class ParentStatus:
    ref: dict[str, Any]
    conditions: list[Condition]


@dataclass(slots=True)
class Tables:
    """Everything the controller knows: classes, gateways, routes' parent status."""

    classes: dict[str, tuple[GatewayObject, list[Condition]]]
    gateways: dict[str, CompiledGateway]
    route_status: dict[tuple[str, str], list[ParentStatus]]  # (kind, ns/name) → parents
    routes: dict[tuple[str, str], CompiledRoute]

    def gateway(self, key: str) -> CompiledGateway | None:
        return self.gateways.get(key)


# --- references -----------------------------------------------------------------------------

class Grants:
    def __init__(self, grants: Iterable[ReferenceGrant]) -> None:
        self.by_ns: dict[str, list[ReferenceGrant]] = {}
        for g in grants:
            self.by_ns.setdefault(g.metadata.namespace, []).append(g)

    def allows(self, from_group: str, from_kind: str, from_ns: str, to_group: str, to_kind: str,
               to_ns: str, to_name: str) -> bool:
        if from_ns == to_ns:
            return True
        for g in self.by_ns.get(to_ns, ()):
            if not any(f.get("group") == from_group and f.get("kind") == from_kind
                       and f.get("namespace") == from_ns for f in g.spec.get("from", ())):
                continue
            if any(t.get("group") == to_group and t.get("kind") == to_kind
                   and (not t.get("name") or t.get("name") == to_name)
                   for t in g.spec.get("to", ())):
                return True
        return False


def _selector(spec: Mapping[str, Any] | None) -> LabelSelector:
    spec = spec or {}
    exprs = tuple(LabelSelectorRequirement(e["key"], e["operator"], tuple(e.get("values", ())))
                  for e in spec.get("matchExpressions", ()))
    return LabelSelector(dict(spec.get("matchLabels", {})), exprs)


_DURATION = re.compile(r"([0-9]{1,5})(h|ms|m|s)")


def parse_duration(text: str) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(int(n) * units[u] for n, u in _DURATION.findall(text))


class _Resolver:
    def __init__(self, services: Iterable[Service], slices: Iterable[EndpointSlice],
                 grants: Grants) -> None:
        self.services = {s.metadata.key: s for s in services}
        self.slices: dict[str, list[EndpointSlice]] = {}
        for sl in slices:
            owner = sl.metadata.labels.get("kubernetes.io/service-name")
            if owner:
                self.slices.setdefault(f"{sl.metadata.namespace}/{owner}", []).append(sl)
        self.grants = grants

    def backend(self, route: GatewayObject, ref: Mapping[str, Any], *,
                filters: Sequence[dict[str, Any]] = ()) -> Backend:
        ns = ref.get("namespace") or route.metadata.namespace
        name = ref.get("name", "")
        port = ref.get("port", 0)
        label = f"{ns}/{name}:{port}"
        weight = int(ref.get("weight", 1))
        group, kind = ref.get("group", ""), ref.get("kind", "Service")
        if group != "" or kind != "Service":
            return Backend(label, weight, False, "InvalidKind",
                           f'Unsupported backend kind "{kind}" in group "{group}"')
        if not self.grants.allows(GROUP, route.kind, route.metadata.namespace, "", "Service", ns,
                                  name):
            return Backend(label, weight, False, "RefNotPermitted",
                           f"Backend ref to Service {ns}/{name} not permitted by any "
                           f"ReferenceGrant")
        svc = self.services.get(f"{ns}/{name}")
        if svc is None:
            return Backend(label, weight, False, "BackendNotFound",
                           f'Service "{ns}/{name}" not found')
        sp = next((p for p in svc.spec.ports if p.port == port), None)
        if sp is None:
            return Backend(label, weight, False, "BackendNotFound",
                           f'Service "{ns}/{name}" has no port {port}')
        addrs: set[tuple[str, int]] = set()
        for sl in self.slices.get(f"{ns}/{name}", ()):
            if sl.address_type == "FQDN":
                continue
            tport = next((p.port for p in sl.ports if (p.name or "") == sp.name
                          and p.protocol == sp.protocol), None)
            if tport is None:
                continue
            for ep in sl.endpoints:
                if ep.conditions.is_ready:
                    for a in ep.addresses:
                        addrs.add((str(a), tport))
        return Backend(label, weight, True, addresses=tuple(sorted(addrs)),
                       filters=tuple(filters), app_protocol=sp.app_protocol or "")


# --- matches and keys -----------------------------------------------------------------------

_NEVER = re.compile(r"(?!)")


def _rx(pattern: str) -> re.Pattern[str]:
    """A RegularExpression match (Python ``re``, ambiguity #4); an invalid one never matches."""
    try:
        return re.compile(pattern)
    except re.error:
        return _NEVER


def _http_match(m: Mapping[str, Any]) -> Match:
    p = m.get("path") or {"type": "PathPrefix", "value": "/"}
    ptype, pval = p.get("type", "PathPrefix"), p.get("value", "/")
    seen: set[str] = set()
    headers = []
    for h in m.get("headers", ()):
        n = h["name"].lower()
        if n in seen:
            continue  # only the first entry of a name counts
        seen.add(n)
        headers.append((n, h["value"], _rx(h["value"]) if h.get("type") == "RegularExpression"
                        else None))
    qseen: set[str] = set()
    query = []
    for q in m.get("queryParams", ()):
        if q["name"] in qseen:
            continue
        qseen.add(q["name"])
        query.append((q["name"], q["value"], _rx(q["value"]) if q.get("type") ==
                      "RegularExpression" else None))
    return Match(ptype, pval, _rx(pval) if ptype == "RegularExpression" else None,
                 tuple(headers), tuple(query), m.get("method", ""))


def _grpc_match(m: Mapping[str, Any]) -> Match:
    meth = m.get("method") or {}
    headers = []
    for h in m.get("headers", ()):
        headers.append((h["name"].lower(), h["value"],
                        _rx(h["value"]) if h.get("type") == "RegularExpression" else None))
    svc, name = meth.get("service", ""), meth.get("method", "")
    rx = None
    if meth.get("type") == "RegularExpression":
        rx = _rx(f"(?:{svc or '.+'})/(?:{name or '.+'})")
    return Match("PathPrefix", "/", None, tuple(headers), (), "", svc, name, rx)


def prefix_length(value: str) -> int:
    """Ambiguity #2: characters after removing one trailing ``/`` (``/abc`` ties ``/abc/``)."""
    return len(value[:-1]) if value.endswith("/") and len(value) > 1 else len(value)


def _age(obj: GatewayObject) -> str:
    return obj.metadata.creation_timestamp or ""


def http_key(hostname: str, route: CompiledRoute, rule_index: int, m: Match,
             match_index: int) -> tuple[Any, ...]:
    """§4.2 precedence, ascending (hostname = the effective route hostname of the bucket)."""
    exact = hostname if hostname and not hostname.startswith("*.") else ""
    return (
        -len(exact), -len(hostname),
        0 if m.path_type == "Exact" else 1 if m.path_type == "PathPrefix" else 2,
        -prefix_length(m.path) if m.path_type == "PathPrefix" else 0,
        0 if m.method else 1, -len(m.headers), -len(m.query),
        _age(route.obj), route.key, rule_index, match_index,
    )


def grpc_key(hostname: str, route: CompiledRoute, rule_index: int, m: Match,
             match_index: int) -> tuple[Any, ...]:
    """§9 precedence: hostnames, service, method, headers, age, name, rule."""
    exact = hostname if hostname and not hostname.startswith("*.") else ""
    return (-len(exact), -len(hostname), -len(m.grpc_service), -len(m.grpc_method),
            -len(m.headers), _age(route.obj), route.key, rule_index, match_index)


# --- compile ---------------------------------------------------------------------------------

def _listener_kinds(ls: Mapping[str, Any]) -> tuple[tuple[str, ...], bool]:
    proto = ls["protocol"]
    allowed = DEFAULT_KINDS.get(proto, ())
    kinds = (ls.get("allowedRoutes") or {}).get("kinds")
    if not kinds:
        return allowed, True
    out, ok = [], True
    for k in kinds:
        if k.get("group", GROUP) == GROUP and k["kind"] in allowed:
            out.append(k["kind"])
        else:
            ok = False
    return tuple(dict.fromkeys(out)), ok


def _ns_allowed(ls: Mapping[str, Any], gw_ns: str, route_ns: str,
                ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
    nsf = ((ls.get("allowedRoutes") or {}).get("namespaces") or {})
    frm = nsf.get("from", "Same")
    if frm == "All":
        return True
    if frm == "Same":
        return route_ns == gw_ns
    if frm == "Selector":
        return _selector(nsf.get("selector")).matches(ns_labels.get(route_ns, {}))
    return False


def _tls_secret_ok(secret: Secret | None) -> bool:
    return secret is not None and "tls.crt" in secret.data and "tls.key" in secret.data


def compile_tables(objects: Iterable[Any], services: Iterable[Service],
                   slices: Iterable[EndpointSlice], secrets: Iterable[Secret],
                   namespaces: Mapping[str, Mapping[str, str]] | None = None,
                   addresses: Mapping[str, Sequence[str]] | None = None) -> Tables:
    """The controller's view of the Gateway API objects in ``objects`` (others ignored).

    ``namespaces``: namespace → labels (for ``allowedRoutes`` selectors; missing namespaces
    get ``kubernetes.io/metadata.name`` only). ``addresses``: Gateway ``ns/name`` → the
    addresses its data-plane Service got (else ``spec.addresses``).
    """
    objs = [o for o in objects if isinstance(o, GatewayObject)]
    classes_in = [o for o in objs if o.kind == "GatewayClass"]
    if not any(c.metadata.name == BUILTIN_CLASS for c in classes_in):
        classes_in.insert(0, builtin_class())
    grants = Grants([o for o in objs if isinstance(o, ReferenceGrant)])
    resolver = _Resolver(services, slices, grants)
    secret_by_key = {s.metadata.key: s for s in secrets}
    addresses = addresses or {}
    ns_labels: dict[str, Mapping[str, str]] = dict(namespaces or {})

    def labels_of(ns: str) -> Mapping[str, str]:
        if ns not in ns_labels:
            ns_labels[ns] = {"kubernetes.io/metadata.name": ns}
        return ns_labels[ns]

    classes: dict[str, tuple[GatewayObject, list[Condition]]] = {}
    ours: set[str] = set()
    for c in classes_in:
        if c.spec.get("controllerName") == CONTROLLER:
            ours.add(c.metadata.name)
            classes[c.metadata.name] = (c, [
                Condition("Accepted", "True", "Accepted", "GatewayClass is accepted by knet"),
                Condition("SupportedVersion", "True", "SupportedVersion",
                          "Gateway API v1.6 CRDs are supported")])
        else:
            classes[c.metadata.name] = (c, [])

    gateways: dict[str, CompiledGateway] = {}
    for gw in sorted((o for o in objs if o.kind == "Gateway"), key=lambda g: g.metadata.key):
        cls = gw.spec.get("gatewayClassName", "")
        if cls not in ours:
            continue
        gateways[gw.metadata.key] = _compile_gateway(gw, cls, grants, secret_by_key,
                                                     tuple(addresses.get(gw.metadata.key, ())))

    routes: dict[tuple[str, str], CompiledRoute] = {}
    route_status: dict[tuple[str, str], list[ParentStatus]] = {}
    route_objs = sorted((o for o in objs if o.kind in ("HTTPRoute", "GRPCRoute", "TLSRoute",
                                                       "TCPRoute")),
                        key=lambda r: (r.kind, _age(r), r.metadata.key))
    for r in route_objs:
        cr = _compile_route(r, resolver)
        routes[(r.kind, r.metadata.key)] = cr
        parents: list[ParentStatus] = []
        for ref in r.spec.get("parentRefs", ()):
            if ref.get("group", GROUP) != GROUP or ref.get("kind", "Gateway") != "Gateway":
                continue
            gkey = f"{ref.get('namespace') or r.metadata.namespace}/{ref['name']}"
            cg = gateways.get(gkey)
            if cg is None:
                continue  # not a Gateway of ours: another controller reports (or nobody)
            parents.append(_attach(cr, ref, cg, labels_of(r.metadata.namespace)))
        route_status[(r.kind, r.metadata.key)] = parents
    for cg in gateways.values():
        for ls in cg.listeners:
            _sort(ls)
    return Tables(classes, gateways, route_status, routes)


def _compile_gateway(gw: GatewayObject, cls: str, grants: Grants,
                     secrets: Mapping[str, Secret], addresses: tuple[str, ...]) -> CompiledGateway:
    key = gw.metadata.key
    specs = list(gw.spec.get("listeners", ()))
    listeners: list[Listener] = []
    by_port: dict[int, list[int]] = {}
    for i, ls in enumerate(specs):
        by_port.setdefault(ls["port"], []).append(i)
    for i, ls in enumerate(specs):
        proto = ls["protocol"]
        mode = (ls.get("tls") or {}).get("mode", "Terminate" if proto == "HTTPS" else "")
        L = Listener(key, ls["name"], ls["port"], proto, ls.get("hostname", ""), mode, i)
        kinds, kinds_ok = _listener_kinds(ls)
        L.supported_kinds = kinds if proto in SUPPORTED_PROTOCOLS else ()
        accepted = Condition("Accepted", "True", "Accepted", "Listener is accepted")
        conflicted = Condition("Conflicted", "False", "NoConflicts", "No conflicts")
        resolved = Condition("ResolvedRefs", "True", "ResolvedRefs", "All references resolved")
        if proto not in SUPPORTED_PROTOCOLS:
            accepted = Condition("Accepted", "False", "UnsupportedProtocol",
                                 f"Protocol {proto} is not supported by knet")
            L.valid = False
        else:
            others = [specs[j] for j in by_port[ls["port"]] if j != i]
            group = _PORT_GROUP[proto]
            if any(_PORT_GROUP.get(o["protocol"], o["protocol"]) != group for o in others):
                conflicted = Condition("Conflicted", "True", "ProtocolConflict",
                                       f"Another listener uses port {ls['port']} with another "
                                       f"protocol")
            elif any(o.get("hostname", "") == L.hostname for o in others):
                conflicted = Condition("Conflicted", "True", "HostnameConflict",
                                       f"Another listener on port {ls['port']} has the same "
                                       f"hostname")
            if conflicted.status == "True":
                accepted = Condition("Accepted", "False", conflicted.reason,
                                     "Listener conflicts with another listener")
                L.valid = False
        if not kinds_ok:
            resolved = Condition("ResolvedRefs", "False", "InvalidRouteKinds",
                                 "Some route kinds are not supported by this listener")
        if proto in ("HTTPS", "TLS") and mode == "Terminate":
            certs: list[Secret] = []
            for ref in (ls.get("tls") or {}).get("certificateRefs", ()):
                ns = ref.get("namespace") or gw.metadata.namespace
                name = ref["name"]
                if ref.get("group", "") != "" or ref.get("kind", "Secret") != "Secret":
                    resolved = Condition("ResolvedRefs", "False", "InvalidCertificateRef",
                                         f"Unsupported certificate kind {ref.get('kind')}")
                    break
                if not grants.allows(GROUP, "Gateway", gw.metadata.namespace, "", "Secret", ns,
                                     name):
                    resolved = Condition("ResolvedRefs", "False", "RefNotPermitted",
                                         f"Certificate ref to Secret {ns}/{name} not permitted "
                                         f"by any ReferenceGrant")
                    break
                sec = secrets.get(f"{ns}/{name}")
                if not _tls_secret_ok(sec):
                    resolved = Condition("ResolvedRefs", "False", "InvalidCertificateRef",
                                         f"Secret {ns}/{name} does not exist or is not a TLS "
                                         f"key pair")
                    break
                assert sec is not None
                certs.append(sec)
            L.certificates = tuple(certs)
        L.programmed = L.valid and resolved.status == "True"
        programmed = (Condition("Programmed", "True", "Programmed", "Listener is programmed")
                      if L.programmed else
                      Condition("Programmed", "False", "Invalid", "Listener is invalid"))
        L.conditions = [accepted, programmed, resolved, conflicted]
        listeners.append(L)
    cg = CompiledGateway(gw, key, cls, listeners, addresses or tuple(
        a["value"] for a in gw.spec.get("addresses", ()) if a.get("value")))
    valid = [ls for ls in listeners if ls.valid]
    if len(valid) == len(listeners):
        acc = Condition("Accepted", "True", "Accepted", "Gateway is accepted")
    elif valid:
        acc = Condition("Accepted", "True", "ListenersNotValid", "Some listeners are invalid")
    else:
        acc = Condition("Accepted", "False", "ListenersNotValid", "No listener is valid")
    if not valid:
        prog = Condition("Programmed", "False", "Invalid", "No listener is valid")
    elif not cg.addresses:
        prog = Condition("Programmed", "False", "AddressNotAssigned",
                         "No address assigned to the Gateway yet")
    else:
        prog = Condition("Programmed", "True", "Programmed", "Gateway is programmed")
    cg.conditions = [acc, prog]
    return cg


def _compile_route(r: GatewayObject, resolver: _Resolver) -> CompiledRoute:
    cr = CompiledRoute(r, r.kind, r.metadata.key)
    rules: list[Rule] = []
    for i, rs in enumerate(r.spec.get("rules", ())):
        backends = []
        for b in rs.get("backendRefs", ()):
            backends.append(resolver.backend(r, b, filters=b.get("filters", ())))
        mirrors = []
        for f in rs.get("filters", ()):
            if f.get("type") == "RequestMirror":
                mb = resolver.backend(r, f["requestMirror"]["backendRef"])
                mirrors.append((mb, f["requestMirror"]))
        if r.kind == "HTTPRoute":
            matches = tuple(_http_match(m) for m in rs.get("matches", ()))
        elif r.kind == "GRPCRoute":
            matches = tuple(_grpc_match(m) for m in rs.get("matches", ())) or (Match(),)
        else:
            matches = ()
        t = rs.get("timeouts") or {}
        rules.append(Rule(cr, i, rs.get("name", ""), matches, tuple(rs.get("filters", ())),
                          tuple(backends), tuple(mirrors),
                          parse_duration(t["request"]) if "request" in t else None,
                          parse_duration(t["backendRequest"]) if "backendRequest" in t
                          else None))
    cr.rules = tuple(rules)
    return cr


def _attach(cr: CompiledRoute, ref: Mapping[str, Any], cg: CompiledGateway,
            ns_labels: Mapping[str, str]) -> ParentStatus:
    r = cr.obj
    section, port = ref.get("sectionName"), ref.get("port")
    cands = [ls for ls in cg.listeners
             if (section is None or ls.name == section) and (port is None or ls.port == port)]
    pref = {"group": ref.get("group", GROUP), "kind": ref.get("kind", "Gateway"),
            "name": ref["name"]}
    if ref.get("namespace"):
        pref["namespace"] = ref["namespace"]
    if section is not None:
        pref["sectionName"] = section
    if port is not None:
        pref["port"] = port
    resolved = _resolved_refs(cr)
    if not cands:
        return ParentStatus(pref, [
            Condition("Accepted", "False", "NoMatchingParent",
                      "No listener matches the parentRef's sectionName/port"), resolved])
    accepted: list[tuple[Listener, tuple[str, ...]]] = []
    reasons: list[str] = []
    gw_ns = cg.obj.metadata.namespace
    for ls in cands:
        if cr.kind not in ls.supported_kinds:
            reasons.append("NotAllowedByListeners")
            continue
        if not _ns_allowed(cg.obj.spec["listeners"][ls.index], gw_ns, r.metadata.namespace,
                           {r.metadata.namespace: ns_labels}):
            reasons.append("NotAllowedByListeners")
            continue
        if cr.kind == "TCPRoute":
            hosts: tuple[str, ...] | None = ("",)
        else:
            hosts = effective_hostnames(ls.hostname, tuple(r.spec.get("hostnames", ())))
        if hosts is None:
            reasons.append("NoMatchingListenerHostname")
            continue
        accepted.append((ls, hosts))
    if not accepted:
        reason = ("NoMatchingListenerHostname" if "NoMatchingListenerHostname" in reasons
                  else "NotAllowedByListeners")
        msg = ("No listener hostname intersects the route's hostnames"
               if reason == "NoMatchingListenerHostname"
               else "The route is not allowed by any listener (namespace or kind)")
        return ParentStatus(pref, [Condition("Accepted", "False", reason, msg), resolved])
    for ls, hosts in accepted:
        ls.attached += 1
        _index(ls, cr, hosts)
    return ParentStatus(pref, [Condition("Accepted", "True", "Accepted", "Route is accepted"),
                               resolved])


def _resolved_refs(cr: CompiledRoute) -> Condition:
    for rule in cr.rules:
        for b in (*rule.backends, *(m for m, _ in rule.mirrors)):
            if not b.valid:
                return Condition("ResolvedRefs", "False", b.reason, b.message)
    return Condition("ResolvedRefs", "True", "ResolvedRefs", "All references resolved")


def _index(ls: Listener, cr: CompiledRoute, hosts: tuple[str, ...]) -> None:
    if cr.kind in ("TLSRoute", "TCPRoute"):
        if cr.rules:
            ls.l4.append((hosts, cr.rules[0]))
        return
    grpc = cr.kind == "GRPCRoute"
    exact, wild, any_ = ((ls.grpc_exact, ls.grpc_wildcard, ls.grpc_any) if grpc
                         else (ls.exact, ls.wildcard, ls.any_host))
    keyfn = grpc_key if grpc else http_key
    for h in hosts:
        entries = [(keyfn(h, cr, rule.index, m, mi), rule, mi)
                   for rule in cr.rules for mi, m in enumerate(rule.matches)]
        if not h:
            any_.extend(entries)
        elif h.startswith("*."):
            wild.setdefault(h[1:], []).extend(entries)
        else:
            exact.setdefault(h, []).extend(entries)


def _sort(ls: Listener) -> None:
    for table in (ls.exact, ls.wildcard, ls.grpc_exact, ls.grpc_wildcard):
        for v in table.values():
            v.sort(key=lambda t: t[0])
    ls.any_host.sort(key=lambda t: t[0])
    ls.grpc_any.sort(key=lambda t: t[0])
    ls.l4.sort(key=lambda t: (-max(len(h) for h in t[0]), _age(t[1].route.obj),
                              t[1].route.key))


def select_listener(cg: CompiledGateway, port: int | None, host: str,
                    tls: bool | None = None) -> Listener | None:
    """§2.2: listeners on the port (and scheme), then exact hostname, longer wildcard, none."""
    best: tuple[tuple[int, int], Listener] | None = None
    for ls in cg.listeners:
        if not ls.valid or (port is not None and ls.port != port):
            continue
        if tls is not None and (ls.protocol in ("HTTPS", "TLS")) != tls:
            continue
        if ls.hostname:
            if not host_matches(ls.hostname, host):
                continue
            rank = (0, -len(ls.hostname)) if not ls.hostname.startswith("*.") else \
                (1, -len(ls.hostname))
        else:
            rank = (2, 0)
        if best is None or rank < best[0]:
            best = (rank, ls)
    return best[1] if best else None


__all__ = ["Backend", "CompiledGateway", "CompiledRoute", "Condition", "Listener", "Match",
           "ParentStatus", "Rule", "Tables", "builtin_class", "compile_tables",
           "effective_hostnames", "grpc_key", "host_matches", "http_key", "intersect",
           "parse_duration", "prefix_length", "request_host", "select_listener"]
