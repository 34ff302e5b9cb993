"""The precompiled ingress routing table: Ingresses → per-host nginx-like servers and locations.

Invariants (ingress-nginx ``internal/ingress/controller/{controller.go,location.go}``):
- only Ingresses claimed by knet's controller (IngressClass ``spec.controller ==
  k8s.io/ingress-nginx``) contribute; they are processed oldest first, ties broken by
  ``namespace/name`` descending (``sortIngressSlice``); the first declaration of a
  host+path+pathType wins;
- one server per host (exact hosts, single-label wildcard hosts, and ``_`` for rules without a
  host); its root location ``/`` goes to the ``spec.defaultBackend`` of the Ingress that first
  declared the host, else to the controller's default backend (404);
- ImplementationSpecific (and a missing pathType) is Prefix (``SetDefaultNGINXPathType``);
- Prefix ``/p`` becomes the location ``/p/`` plus ``= /p`` (``updateServerLocations``);
  locations are ordered by path string descending, then by length descending;
- a host where any location uses ``rewrite-target``/``use-regex`` matches all its locations as
  case-insensitive regexes ``~* "^<path>"``, first match wins;
- per request, lookup is a dict hit for the host and at most one dict hit per path element
  (regex hosts: a scan over that host's locations only).

Nothing here does IO; the table is a value rebuilt whenever an input changes.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_to_bytes

from knet.ingress.annotations import Annotations, Canary, parse_annotations
from knet.model.core import Service, ServicePort, ServiceType
from knet.model.discovery import EndpointSlice
from knet.model.networking import (
    LEGACY_CLASS_ANNOTATION, Ingress, IngressBackend, IngressClass,
)

CONTROLLER_NAME = "k8s.io/ingress-nginx"
DEFAULT_CLASS_NAME = "nginx"  # --ingress-class, the value the legacy annotation must carry
CATCH_ALL = "_"  # ingress-nginx's defServerName


class PathType(enum.StrEnum):
    EXACT = "Exact"
    PREFIX = "Prefix"
    IMPLEMENTATION_SPECIFIC = "ImplementationSpecific"


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """Controller flags and ConfigMap settings that change routing."""

    controller: str = CONTROLLER_NAME
    ingress_class: str = DEFAULT_CLASS_NAME
    watch_ingress_without_class: bool = False
    # Known ambiguity #1: False routes Prefix "/p/" for "/p" (spec); True answers nginx's 301.
    nginx_trailing_slash_redirect: bool = False
    ssl_redirect: bool = True
    hsts: bool = True
    hsts_max_age: int = 31536000
    hsts_include_subdomains: bool = True
    http_redirect_code: int = 308
    generate_request_id: bool = True
    use_forwarded_headers: bool = False
    compute_full_forwarded_for: bool = False
    http_port: int = 80
    https_port: int = 443

    @classmethod
    def from_args(cls, args: Iterable[str]) -> ControllerConfig:
        """The flags of ``/nginx-ingress-controller`` that change which Ingresses are served
        (``--controller-class``, ``--ingress-class``, ``--watch-ingress-without-class``;
        ``internal/ingress/controller/flags.go``); other flags are ignored."""
        kw: dict[str, object] = {}
        for a in args:
            name, eq, value = a.partition("=")
            if name == "--controller-class" and eq:
                kw["controller"] = value
            elif name == "--ingress-class" and eq:
                kw["ingress_class"] = value
            elif name == "--watch-ingress-without-class":
                # a Go bool flag: bare, or =true/=1/=t… (strconv.ParseBool)
                kw["watch_ingress_without_class"] = (not eq) or value.lower() in (
                    "1", "t", "true")
        return cls(**kw)  # type: ignore[arg-type]  # keys are fields of this dataclass


# --- upstreams ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Alternative:
    """A canary backend merged into a primary upstream (``mergeAlternativeBackends``)."""

    upstream: Upstream
    policy: Canary
    annotations: Annotations
    ingress: Ingress


@dataclass(frozen=True, slots=True)
class Upstream:
    """An ingress-nginx backend: one Service port of one namespace (name ``ns-svc-port``)."""

    name: str
    namespace: str
    service_name: str
    port_ref: str  # the port as written in the Ingress (number or name)
    service: Service | None
    service_port: ServicePort | None
    endpoints: tuple[tuple[str, int], ...]  # ready endpoint (address, targetPort), sorted
    service_upstream: bool = False
    alternative: Alternative | None = None

    @property
    def port_number(self) -> int | None:
        return self.service_port.port if self.service_port is not None else None

    @property
    def service_key(self) -> str:
        """``ns/name:PORT`` with the Service port number when it resolves."""
        port = self.port_number if self.port_number is not None else self.port_ref
        return f"{self.namespace}/{self.service_name}:{port}"

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """What the balancer picks from: endpoints, or the ClusterIP with service-upstream."""
        if self.service is None or self.service_port is None:
            return ()
        spec = self.service.spec
        if spec.type == ServiceType.EXTERNAL_NAME:
            return ((spec.external_name, self.service_port.port),)
        if self.service_upstream and spec.cluster_ip and spec.cluster_ip != "None":
            return ((spec.cluster_ip, self.service_port.port),)
        return self.endpoints

    def __repr__(self) -> str:
        return f"<Upstream {self.name} {len(self.addresses)} addresses>"


# --- locations and servers ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Location:
    path: str  # the nginx location path
    path_type: PathType  # EXACT for "=" locations (also the ones added for Prefix)
    ingress_path: str  # the path as written in the Ingress
    ingress_path_type: PathType
    ingress: Ingress | None
    rule_host: str
    upstream: Upstream | None  # None: the controller's default backend (404)
    is_default_backend: bool
    annotations: Annotations
    regex: re.Pattern[str] | None = None
    rewrite: re.Pattern[str] | None = None
    auto_redirect: bool = False  # nginx's "prefix location ending in /" 301 rule

    @property
    def modifier(self) -> str:
        if self.regex is not None:
            return "~*"
        return "=" if self.path_type == PathType.EXACT else ""

    def render(self) -> str:
        if self.regex is not None:
            return f'location ~* "^{self.path}"'
        return f"location {self.modifier} {self.path}".replace("  ", " ")


@dataclass(frozen=True, slots=True)
class Server:
    hostname: str
    locations: tuple[Location, ...]  # nginx config order
    regex_mode: bool
    tls: bool  # a certificate is configured (ssl-redirect applies)
    tls_secret: str  # "ns/name" of the Secret, "" for the default certificate
    exact: Mapping[str, Location] = field(default_factory=dict, hash=False)
    prefix: Mapping[str, Location] = field(default_factory=dict, hash=False)

    def match(self, uri: str) -> tuple[Location, bool]:
        """nginx location selection for a normalised URI → (location, auto-redirect hit)."""
        if self.regex_mode:
            for rx_loc in self.locations:
                if rx_loc.regex is not None and rx_loc.regex.match(uri):
                    return rx_loc, False
            return self.prefix["/"], False
        loc = self.exact.get(uri)
        if loc is not None:
            return loc, False
        if not uri.endswith("/"):
            loc = self.prefix.get(uri + "/")
            if loc is not None and loc.auto_redirect:
                return loc, True
        j = len(uri)
        while j > 0:
            j = uri.rfind("/", 0, j)
            if j < 0:
                break
            loc = self.prefix.get(uri[:j + 1])
            if loc is not None:
                return loc, False
        return self.prefix["/"], False


@dataclass(frozen=True, slots=True)
class RoutingTable:
    servers: Mapping[str, Server]  # exact hostnames, lower case
    wildcards: Mapping[str, Server]  # "*.foo.com" keyed by "foo.com"
    catch_all: Server
    ingresses: tuple[Ingress, ...]  # the claimed Ingresses, in processing order
    config: ControllerConfig

    def server_for(self, host: str) -> Server:
        """nginx server_name selection: exact name, then the one-label wildcard, then ``_``."""
        s = self.servers.get(host)
        if s is not None:
            return s
        dot = host.find(".")
        if dot > 0 and _LABEL.match(host, 0, dot):
            s = self.wildcards.get(host[dot + 1:])
            if s is not None:
                return s
        return self.catch_all

    def all_servers(self) -> Iterable[Server]:
        yield from self.servers.values()
        yield from self.wildcards.values()
        yield self.catch_all


# buildServerName: "*.example.com" → "~^(?<subdomain>[\w-]+)\.example\.com$"
_LABEL = re.compile(r"[\w-]+\Z")


# --- IngressClass selection -----------------------------------------------------------------

def claims(ingress: Ingress, classes: Iterable[IngressClass],
           config: ControllerConfig = ControllerConfig()) -> bool:
    """Whether knet's controller serves this Ingress (ingress-nginx ``store.go`` order).

    ``spec.ingressClassName`` is checked first (it must name an IngressClass of our
    controller); the legacy annotation is read only when the field is empty and must equal
    ``--ingress-class``; a class-less Ingress is served when our class is the single default
    class (admission would have set it) or with ``--watch-ingress-without-class``.
    """
    classes = list(classes)
    if ingress.ingress_class_name:
        return any(c.metadata.name == ingress.ingress_class_name
                   and c.controller == config.controller for c in classes)
    legacy = ingress.metadata.annotations.get(LEGACY_CLASS_ANNOTATION)
    if legacy is not None:
        return legacy == config.ingress_class
    defaults = [c for c in classes if c.is_default]
    if len(defaults) == 1:
        return defaults[0].controller == config.controller
    if len(defaults) > 1:
        return False  # admission rejects class-less Ingresses when several defaults exist
    return config.watch_ingress_without_class


def _created(ing: Ingress) -> tuple[float, int]:
    ts = ing.metadata.creation_timestamp
    if ts:
        try:
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp(), ing.metadata.creation_index
        except ValueError:
            pass
    return float("inf"), ing.metadata.creation_index


def sort_ingresses(ingresses: Iterable[Ingress]) -> list[Ingress]:
    """``sortIngressSlice``: oldest first; equal timestamps by ``namespace/name`` descending."""
    out = sorted(ingresses, key=lambda i: i.key, reverse=True)
    out.sort(key=_created)
    return out


# --- endpoints ------------------------------------------------------------------------------

def _endpoints(service: Service, port: ServicePort,
               slices: Iterable[EndpointSlice]) -> tuple[tuple[str, int], ...]:
    """Ready endpoint addresses for one Service port (ingress-nginx ``getEndpointsFromSlices``)."""
    out: set[tuple[str, int]] = set()
    for sl in slices:
        if sl.address_type == "FQDN":
            continue
        tport: int | None = None
        for p in sl.ports:
            if (p.name or "") == port.name and p.protocol == port.protocol:
                tport = p.port
        if tport is None:
            continue
        for ep in sl.endpoints:
            if not ep.conditions.is_ready:
                continue
            for addr in ep.addresses:
                out.add((addr, tport))
    return tuple(sorted(out))


def _resolve_port(service: Service | None, backend: IngressBackend) -> ServicePort | None:
    if service is None:
        return None
    for p in service.spec.ports:
        if backend.service_port_name:
            if p.name == backend.service_port_name:
                return p
        elif p.port == backend.service_port_number:
            return p
    return None


# --- paths ----------------------------------------------------------------------------------

def normalize_path_type(pt: str) -> PathType:
    return PathType.EXACT if pt == PathType.EXACT else PathType.PREFIX


def nginx_regex(path: str) -> str:
    """PCRE named groups ``(?<n>…)`` → Python ``(?P<n>…)``; the rest is shared syntax."""
    return re.sub(r"\(\?<(?![=!])", "(?P<", path)


def _compile(pattern: str, flags: int = re.IGNORECASE) -> re.Pattern[str] | None:
    try:
        return re.compile(nginx_regex(pattern), flags)
    except re.error:
        return None


class BadRequest(ValueError):
    """The request URI cannot be normalised (nginx answers 400)."""


def normalize_uri(raw_path: str) -> str:
    """nginx ``ngx_http_parse_complex_uri``: decode ``%XX``, merge ``//``, resolve ``.``/``..``.

    The query string must already be removed. Raises BadRequest for a bad escape or ``..``
    above the root.
    """
    if "%" in raw_path:
        try:
            raw_path = unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape")
        except ValueError as e:  # pragma: no cover - unquote_to_bytes is lenient
            raise BadRequest(raw_path) from e
    if not raw_path.startswith("/"):
        raise BadRequest(raw_path)
    if "//" not in raw_path and "/." not in raw_path:
        return raw_path
    out: list[str] = []
    parts = raw_path.split("/")
    for i, seg in enumerate(parts[1:], 1):
        last = i == len(parts) - 1
        if seg == "" and not last:
            continue  # merge_slashes
        if seg == ".":
            if last:
                out.append("")
            continue
        if seg == "..":
            if not out:
                raise BadRequest(raw_path)
            out.pop()
            if last:
                out.append("")
            continue
        out.append(seg)
    return "/" + "/".join(out)


# --- building -------------------------------------------------------------------------------

@dataclass(slots=True)
class _MutLoc:
    path: str
    path_type: PathType
    ingress: Ingress | None
    rule_host: str
    upstream: str | None  # upstream name
    is_default_backend: bool
    annotations: Annotations
    ingress_path: str = ""
    ingress_path_type: PathType = PathType.PREFIX


@dataclass(slots=True)
class _MutServer:
    hostname: str
    locations: list[_MutLoc]
    tls: bool = False
    tls_secret: str = ""


def build_table(
    ingresses: Iterable[Ingress],
    classes: Iterable[IngressClass],
    services: Iterable[Service],
    slices: Iterable[EndpointSlice],
    config: ControllerConfig = ControllerConfig(),
) -> RoutingTable:
    """Compile the routing table from plain collections of model objects."""
    classes = list(classes)
    claimed = sort_ingresses(i for i in ingresses if claims(i, classes, config))
    svc_by_key = {s.key: s for s in services}
    slices_by_svc: dict[str, list[EndpointSlice]] = {}
    for sl in slices:
        if sl.service_name:
            slices_by_svc.setdefault(f"{sl.namespace}/{sl.service_name}", []).append(sl)
    anns = {i.key: parse_annotations(i.metadata.annotations) for i in claimed}

    # createUpstreams: one upstream per (namespace, service, port as written); first Ingress wins.
    ups: dict[str, Upstream] = {}

    def upstream_for(ing: Ingress, b: IngressBackend) -> str | None:
        if b.is_resource or not b.service_name:
            return None  # "does not contain a service backend, using default backend"
        port_ref = b.service_port_name or str(b.service_port_number)
        name = f"{ing.namespace}-{b.service_name}-{port_ref}"
        if name not in ups:
            svc = svc_by_key.get(f"{ing.namespace}/{b.service_name}")
            sp = _resolve_port(svc, b)
            eps = (_endpoints(svc, sp, slices_by_svc.get(svc.key, ()))
                   if svc is not None and sp is not None else ())
            ups[name] = Upstream(name=name, namespace=ing.namespace, service_name=b.service_name,
                                 port_ref=port_ref, service=svc, service_port=sp, endpoints=eps,
                                 service_upstream=anns[ing.key].service_upstream)
        return name

    for ing in claimed:
        if ing.default_backend is not None:
            upstream_for(ing, ing.default_backend)
        for rule in ing.rules:
            for p in rule.paths:
                upstream_for(ing, p.backend)

    def root(ing: Ingress | None, host: str, un: str | None, a: Annotations) -> _MutLoc:
        return _MutLoc("/", PathType.PREFIX, ing, host, un, True, a, "/", PathType.PREFIX)

    servers: dict[str, _MutServer] = {
        CATCH_ALL: _MutServer(CATCH_ALL, [root(None, "", None, Annotations())])}

    for ing in claimed:
        a = anns[ing.key]
        if a.canary.enabled:
            continue
        un: str | None = None
        if ing.default_backend is not None:
            un = upstream_for(ing, ing.default_backend)
            if un is not None and not ing.rules:
                # Ingress with a backend but no rule: the catch-all server's root.
                d = servers[CATCH_ALL].locations[0]
                if d.is_default_backend and d.upstream is None:
                    servers[CATCH_ALL].locations[0] = _MutLoc(
                        "/", PathType.PREFIX, ing, "", un, True, a, "/", PathType.PREFIX)
        for rule in ing.rules:
            host = rule.host.lower() or CATCH_ALL
            if host not in servers:
                servers[host] = _MutServer(host, [root(ing, rule.host, un, a)])

    # TLS: every host of an Ingress with spec.tls gets a certificate (clarifications).
    for ing in claimed:
        if anns[ing.key].canary.enabled or not ing.tls:
            continue
        for rule in ing.rules:
            host = rule.host.lower()
            if not host or servers[host].tls:
                continue
            servers[host].tls = True
            for t in ing.tls:
                if any(_tls_host_covers(h.lower(), host) for h in t.hosts) and t.secret_name:
                    servers[host].tls_secret = f"{ing.namespace}/{t.secret_name}"
                    break

    for ing in claimed:
        a = anns[ing.key]
        if a.canary.enabled:
            continue
        for rule in ing.rules:
            server = servers[rule.host.lower() or CATCH_ALL]
            for p in rule.paths:
                un = upstream_for(ing, p.backend)
                if un is None:
                    continue
                path = p.path or "/"
                pt = normalize_path_type(p.path_type)
                add = True
                for i, loc in enumerate(server.locations):
                    if loc.path != path or loc.path_type != pt:
                        continue
                    add = False
                    if loc.is_default_backend:  # "Replacing location"
                        server.locations[i] = _MutLoc(path, pt, ing, rule.host, un, False, a,
                                                      path, pt)
                    break  # else: "Location … already configured"; the older one wins
                if add:
                    server.locations.append(_MutLoc(path, pt, ing, rule.host, un, False, a, path, pt))

    # mergeAlternativeBackends: canaries attach to the primary upstream of an equal path.
    for ing in claimed:
        a = anns[ing.key]
        if not a.canary.enabled:
            continue
        for rule in ing.rules:
            target = servers.get(rule.host.lower() or CATCH_ALL)
            if target is None:
                continue  # "cannot merge alternative backend … hostname does not exist"
            for p in rule.paths:
                alt = upstream_for(ing, p.backend)
                if alt is None:
                    continue
                pt = normalize_path_type(p.path_type)
                for loc in target.locations:
                    pri = loc.upstream
                    if (pri is None or pri == alt or loc.path != (p.path or "/")
                            or loc.path_type != pt):
                        continue
                    if ups[pri].alternative is None:
                        ups[pri] = _with_alt(ups[pri], Alternative(ups[alt], a.canary, a, ing))

    config_servers: dict[str, Server] = {}
    wildcards: dict[str, Server] = {}
    catch_all: Server | None = None
    for host, ms in servers.items():
        srv = _compile_server(ms, ups)
        if host == CATCH_ALL:
            catch_all = srv
        elif host.startswith("*."):
            wildcards[host[2:]] = srv
        else:
            config_servers[host] = srv
    assert catch_all is not None
    return RoutingTable(config_servers, wildcards, catch_all, tuple(claimed), config)


def _with_alt(u: Upstream, alt: Alternative) -> Upstream:
    return Upstream(u.name, u.namespace, u.service_name, u.port_ref, u.service, u.service_port,
                    u.endpoints, u.service_upstream, alt)


def _tls_host_covers(tls_host: str, host: str) -> bool:
    if tls_host == host:
        return True
    if tls_host.startswith("*.") and "." in host:
        return host.split(".", 1)[1] == tls_host[2:]
    return False


def _needs_rewrite(loc: _MutLoc) -> bool:
    t = loc.annotations.rewrite_target
    return bool(t) and t != loc.path


def _compile_server(ms: _MutServer, ups: Mapping[str, Upstream]) -> Server:
    # updateServerLocations (location.go)
    exact_paths = {loc.path for loc in ms.locations if loc.path_type == PathType.EXACT}
    expanded: list[_MutLoc] = []
    for loc in ms.locations:
        if (loc.path == "/" or loc.path_type != PathType.PREFIX or _needs_rewrite(loc)
                or loc.annotations.use_regex):
            expanded.append(loc)
            continue
        norm = loc.path if loc.path.endswith("/") else loc.path + "/"
        expanded.append(_MutLoc(norm, PathType.PREFIX, loc.ingress, loc.rule_host, loc.upstream,
                                loc.is_default_backend, loc.annotations, loc.ingress_path,
                                loc.ingress_path_type))
        if loc.path not in exact_paths:
            expanded.append(_MutLoc(loc.path, PathType.EXACT, loc.ingress, loc.rule_host,
                                    loc.upstream, loc.is_default_backend, loc.annotations,
                                    loc.ingress_path, loc.ingress_path_type))
    # controller.go: sort by path descending, then (stable) by length descending.
    expanded.sort(key=lambda loc: loc.path, reverse=True)
    expanded.sort(key=lambda loc: len(loc.path), reverse=True)
    regex_mode = any(loc.annotations.regex for loc in expanded)

    locs: list[Location] = []
    exact: dict[str, Location] = {}
    prefix: dict[str, Location] = {}
    for m in expanded:
        rx = _compile("^" + m.path) if regex_mode else None
        rw = _compile(m.path) if _needs_rewrite(m) else None
        compiled = Location(
            path=m.path, path_type=m.path_type, ingress_path=m.ingress_path,
            ingress_path_type=m.ingress_path_type, ingress=m.ingress, rule_host=m.rule_host,
            upstream=ups[m.upstream] if m.upstream is not None else None,
            is_default_backend=m.is_default_backend, annotations=m.annotations, regex=rx,
            rewrite=rw, auto_redirect=m.path_type == PathType.PREFIX and m.path != "/")
        locs.append(compiled)
        if m.path_type == PathType.EXACT:
            exact.setdefault(m.path, compiled)
        else:
            prefix.setdefault(m.path, compiled)
    if regex_mode:
        # every location is a regex; keep the root reachable for the (impossible) no-match case
        prefix = {"/": prefix.get("/") or locs[-1]}
    return Server(ms.hostname, tuple(locs), regex_mode, ms.tls, ms.tls_secret, exact, prefix)
