"""``knet convert ingress-to-gateway``: Gateway + HTTPRoutes for the Ingresses ingress-nginx
serves, and ``--check``: the same requests through both decisions, every difference explained.

Invariants:
- pure: Ingresses, IngressClasses and Services in; manifests (plain dicts), the list of what
  cannot be expressed, and check results out;
- nothing is dropped silently: every annotation or feature without a Gateway API equivalent is
  listed with the object it came from;
- the check routes each request through ``knet.ingress`` (ingress-nginx semantics) and through
  ``knet.gateway`` (the generated objects compiled like any others), with the same Services and
  EndpointSlices, and compares status, backend, upstream path and Host, and Location.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from knet.gateway.decision import GatewayRequest, decide
from knet.gateway.model import GROUP
from knet.gateway.objects import parse
from knet.gateway.routes import compile_tables
from knet.ingress.annotations import parse_annotations
from knet.ingress.decision import route_request
from knet.ingress.routes import ControllerConfig, claims
from knet.manifests.fields import Ctx, F
from knet.model.core import Service
from knet.model.meta import ObjectMeta
from knet.model.networking import Ingress, IngressBackend

V1 = f"{GROUP}/v1"
_REWRITE_GROUPS = re.compile(r"^(/[^()]*?)\(/\|\$\)\(\.\*\)$")  # /app(/|$)(.*) with /$2


@dataclass(slots=True)
class Conversion:
    objects: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be expressed

    def gateway_key(self) -> str:
        gw = next(o for o in self.objects if o["kind"] == "Gateway")
        return f"{gw['metadata']['namespace']}/{gw['metadata']['name']}"


def _slug(host: str) -> str:
    return (host.replace("*", "wildcard").replace(".", "-") or "default")[:50].strip("-")


def _port(backend: IngressBackend, ns: str, services: dict[str, Service]) -> int | None:
    if backend.service_port_number:
        return backend.service_port_number
    svc = services.get(f"{ns}/{backend.service_name}")
    if svc is None:
        return None
    return next((p.port for p in svc.spec.ports if p.name == backend.service_port_name), None)


def convert(ingresses: Iterable[Ingress], classes: Iterable[Any], services: Iterable[Service],
            *, gateway_class: str = "knet", config: ControllerConfig | None = None,
            gateway_name: str = "ingress-nginx") -> Conversion:
    """Gateway (one per namespace with Ingresses) and HTTPRoutes (one per Ingress and host)."""
    cfg = config or ControllerConfig()
    classes = list(classes)
    svc = {s.metadata.key: s for s in services}
    out = Conversion()
    served = sorted((i for i in ingresses if claims(i, classes, cfg)),
                    key=lambda i: (i.metadata.namespace, i.metadata.name))
    by_ns: dict[str, list[Ingress]] = {}
    for ing in served:
        by_ns.setdefault(ing.metadata.namespace, []).append(ing)
    canaries = _canaries([i for i in served if parse_annotations(
        i.metadata.annotations).canary.enabled], svc, out.notes)
    served = [i for i in served if not parse_annotations(i.metadata.annotations).canary.enabled]
    by_ns = {}
    for ing in served:
        by_ns.setdefault(ing.metadata.namespace, []).append(ing)
    for ns, ings in sorted(by_ns.items()):
        listeners: list[dict[str, Any]] = [{"name": "http", "port": 80, "protocol": "HTTP"}]
        tls_hosts: dict[str, str] = {}
        for ing in ings:
            for t in ing.tls:
                for h in t.hosts:
                    if t.secret_name:
                        tls_hosts.setdefault(h, t.secret_name)
                    else:
                        out.notes.append(f"Ingress {ing.key}: tls host {h} has no secretName "
                                         "(ingress-nginx serves its default certificate; a "
                                         "Gateway listener needs certificateRefs): not converted")
        for h, secret in sorted(tls_hosts.items()):
            listeners.append({"name": f"https-{_slug(h)}", "port": 443, "protocol": "HTTPS",
                              "hostname": h, "tls": {"mode": "Terminate", "certificateRefs": [
                                  {"group": "", "kind": "Secret", "name": secret}]}})
        out.objects.append({"apiVersion": V1, "kind": "Gateway",
                            "metadata": {"name": gateway_name, "namespace": ns},
                            "spec": {"gatewayClassName": gateway_class, "listeners": listeners}})
        for ing in ings:
            out.objects += _routes(ing, svc, tls_hosts, gateway_name, out.notes, canaries)
    return out


Canaries = dict[tuple[str, str, str], list[tuple[Any, str, int]]]


def _canaries(ings: list[Ingress], svc: dict[str, Service], notes: list[str]) -> Canaries:
    """(namespace, host, path) → [(canary annotations, service, port)] of canary Ingresses."""
    out: Canaries = {}
    for ing in ings:
        a = parse_annotations(ing.metadata.annotations).canary
        if a.cookie or a.header_pattern:
            notes.append(f"Ingress {ing.key}: canary-by-cookie/canary-by-header-pattern have no "
                         "Gateway API equivalent: not converted")
        for rule in ing.rules:
            for p in rule.paths:
                port = _port(p.backend, ing.metadata.namespace, svc)
                if port is None:
                    continue
                out.setdefault((ing.metadata.namespace, rule.host, p.path or "/"), []).append(
                    (a, p.backend.service_name, port))
    return out


def _routes(ing: Ingress, svc: dict[str, Service], tls_hosts: dict[str, str], gateway: str,
            notes: list[str], canaries: Canaries) -> list[dict[str, Any]]:
    a = parse_annotations(ing.metadata.annotations)
    ns = ing.metadata.namespace
    where = f"Ingress {ing.key}"
    for key in ing.metadata.annotations:
        short = key.removeprefix("nginx.ingress.kubernetes.io/")
        if key.startswith("nginx.ingress.kubernetes.io/") and short not in _HANDLED:
            notes.append(f"{where}: annotation {short} has no Gateway API equivalent: not "
                         "converted")
    out: list[dict[str, Any]] = []
    hosts: dict[str, list[Any]] = {}
    for ir in ing.rules:
        hosts.setdefault(ir.host, []).extend(ir.paths)
    if ing.default_backend is not None and not ing.rules:
        hosts.setdefault("", [])
    for host, paths in hosts.items():
        rules: list[dict[str, Any]] = []
        for p in paths:
            port = _port(p.backend, ns, svc)
            if p.backend.is_resource or port is None:
                notes.append(f"{where}: path {p.path or '/'}: backend "
                             f"{p.backend.resource_kind or p.backend.service_name} cannot be "
                             "resolved to a Service port: not converted")
                continue
            match, filters = _match_and_filters(ing, a, p.path or "/", p.path_type, notes)
            rr: dict[str, Any] = {"matches": [match]}
            if filters:
                rr["filters"] = filters
            main = {"name": p.backend.service_name, "port": port}
            rr["backendRefs"] = [main]
            for c, cname, cport in canaries.get((ns, host, p.path or "/"), ()):
                if c.header:  # by header: value, else the "always" keyword routes to the canary
                    hm = dict(match, headers=[{"type": "Exact", "name": c.header,
                                               "value": c.header_value or "always"}])
                    crule: dict[str, Any] = {"matches": [hm], "backendRefs": [
                        {"name": cname, "port": cport}]}
                    if filters:
                        crule["filters"] = filters
                    rules.append(crule)
                if c.weight:
                    main["weight"] = max(0, c.weight_total - c.weight)
                    rr["backendRefs"].append({"name": cname, "port": cport,
                                              "weight": c.weight})
            rules.append(rr)
        if ing.default_backend is not None:
            port = _port(ing.default_backend, ns, svc)
            if port is not None:
                rules.append({"backendRefs": [{"name": ing.default_backend.service_name,
                                               "port": port}]})
        if a.app_root:
            rules.insert(0, {"matches": [{"path": {"type": "Exact", "value": "/"}}],
                             "filters": [{"type": "RequestRedirect", "requestRedirect": {
                                 "path": {"type": "ReplaceFullPath",
                                          "replaceFullPath": a.app_root},
                                 "statusCode": 302}}]})
        if a.redirect_url:
            m = re.match(r"^(https?)://([^/:]+)(?::(\d+))?(/.*)?$", a.redirect_url)
            if m is None or a.redirect_code not in (0, 301, 302, 303, 307, 308):
                notes.append(f"{where}: redirect to {a.redirect_url!r} is not expressible")
            else:
                red: dict[str, Any] = {"scheme": m.group(1), "hostname": m.group(2),
                                       "statusCode": a.redirect_code or 301}
                if m.group(3):
                    red["port"] = int(m.group(3))
                red["path"] = {"type": "ReplaceFullPath", "replaceFullPath": m.group(4) or "/"}
                rules = [{"filters": [{"type": "RequestRedirect", "requestRedirect": red}]}]
        if not rules:
            continue
        base = f"{ing.metadata.name}-{_slug(host)}" if host else ing.metadata.name
        spec_hosts = [host] if host else []
        tls = host in tls_hosts
        redirect_http = tls and (a.ssl_redirect or a.force_ssl_redirect)
        if a.force_ssl_redirect and not tls:
            notes.append(f"{where}: force-ssl-redirect without a TLS host: converted as a "
                         "redirect to https")
            redirect_http = True
        http_rules = ([{"filters": [{"type": "RequestRedirect", "requestRedirect": {
            "scheme": "https", "statusCode": 308}}]}] if redirect_http else rules)
        out.append(_route(base, ns, gateway, "http", spec_hosts, http_rules))
        if tls:
            out.append(_route(f"{base}-https", ns, gateway, f"https-{_slug(host)}", spec_hosts,
                              rules))
    return out


_HANDLED = {"rewrite-target", "use-regex", "ssl-redirect", "force-ssl-redirect",
            "permanent-redirect", "permanent-redirect-code", "temporal-redirect", "app-root",
            "canary", "canary-weight", "canary-weight-total", "enable-cors", "cors-allow-origin",
            "cors-allow-methods", "cors-allow-headers", "cors-allow-credentials",
            "cors-max-age", "cors-expose-headers", "upstream-vhost"}


def _route(name: str, ns: str, gateway: str, section: str, hosts: list[str],
           rules: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {"parentRefs": [{"name": gateway, "sectionName": section}]}
    if hosts:
        spec["hostnames"] = hosts
    spec["rules"] = rules
    return {"apiVersion": V1, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


def _match_and_filters(ing: Ingress, a: Any, path: str, ptype: str,
                       notes: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    where = f"Ingress {ing.key}: path {path}"
    filters: list[dict[str, Any]] = []
    regex = a.use_regex or (a.rewrite_target and ptype == "ImplementationSpecific")
    m = _REWRITE_GROUPS.match(path) if regex else None
    if m is not None:
        match = {"path": {"type": "PathPrefix", "value": m.group(1)}}
        if a.rewrite_target == "/$2":
            filters.append({"type": "URLRewrite", "urlRewrite": {"path": {
                "type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}})
        elif a.rewrite_target:
            notes.append(f"{where}: rewrite-target {a.rewrite_target!r} with this regex is not "
                         "expressible: not converted")
    elif regex and re.search(r"[\^$()\[\]*+?{}|\\]", path):
        match = {"path": {"type": "RegularExpression", "value": path}}
        notes.append(f"{where}: regex path converted to RegularExpression (implementation-"
                     "specific: nginx matches it case-insensitively as a prefix)")
    else:
        match = {"path": {"type": "Exact" if ptype == "Exact" else "PathPrefix", "value": path}}
        if a.rewrite_target:
            if "$" in a.rewrite_target:
                notes.append(f"{where}: rewrite-target {a.rewrite_target!r} uses capture "
                             "groups: not converted")
            else:
                filters.append({"type": "URLRewrite", "urlRewrite": {"path": {
                    "type": "ReplaceFullPath", "replaceFullPath": a.rewrite_target}}})
    if a.upstream_vhost:
        for f in filters:
            if f["type"] == "URLRewrite":
                f["urlRewrite"]["hostname"] = a.upstream_vhost
                break
        else:
            filters.append({"type": "URLRewrite", "urlRewrite": {"hostname": a.upstream_vhost}})
    if a.cors.enabled:
        c = a.cors
        cors: dict[str, Any] = {"allowOrigins": list(c.allow_origin),
                                "allowMethods": [m.strip() for m in c.allow_methods.split(",")
                                                 if m.strip()],
                                "allowHeaders": [h.strip() for h in c.allow_headers.split(",")
                                                 if h.strip()],
                                "maxAge": c.max_age}
        if c.allow_credentials:
            cors["allowCredentials"] = True
        if c.expose_headers:
            cors["exposeHeaders"] = [h.strip() for h in c.expose_headers.split(",") if h.strip()]
        filters.append({"type": "CORS", "cors": cors})
    return match, filters


# --- the check ------------------------------------------------------------------------------

@dataclass(slots=True)
class Difference:
    request: str
    field: str
    ingress: Any
    gateway: Any
    why: str

    def render(self) -> str:
        return (f"{self.request}: {self.field}: ingress {self.ingress!r}, gateway "
                f"{self.gateway!r}: {self.why}")


def generated_requests(ingresses: Iterable[Ingress]) -> list[tuple[str, str, str]]:
    """(scheme, host, path) from every rule's hosts and paths plus the edge cases a migration
    meets: trailing slashes, deeper paths, prefixes that are not path elements, upper case,
    unknown hosts, the http side of TLS hosts."""
    out: list[tuple[str, str, str]] = []
    for ing in ingresses:
        tls = {h for t in ing.tls for h in t.hosts}
        for rule in ing.rules:
            host = rule.host.replace("*", "any") if rule.host else "unknown.test"
            for p in rule.paths:
                base = p.path or "/"
                plain = re.sub(r"[\^$()\[\]*+?{}|\\].*", "", base) or "/"
                cands = {plain, plain.rstrip("/") or "/", plain.rstrip("/") + "/",
                         plain.rstrip("/") + "/x", plain.rstrip("/") + "x",
                         plain.upper(), plain.rstrip("/") + "/x?q=1"}
                for c in sorted(x for x in cands if x.startswith("/")):
                    out.append(("http", host, c))
                    if rule.host in tls:
                        out.append(("https", host, c))
        out.append(("http", "unknown.invalid", "/"))
    return list(dict.fromkeys(out))


def check(ingresses: Sequence[Ingress], classes: Sequence[Any], services: Sequence[Service],
          slices: Sequence[Any], secrets: Sequence[Any], conversion: Conversion,
          requests: Sequence[tuple[str, str, str]] | None = None, *,
          config: ControllerConfig | None = None,
          seed: int = 0) -> tuple[list[Difference], int]:
    """Every request whose status, backend, upstream path/Host or Location differs."""
    ctx = Ctx("<converted>")
    objs = []
    for m in conversion.objects:
        meta = ObjectMeta(name=m["metadata"]["name"], namespace=m["metadata"]["namespace"],
                          creation_timestamp="1970-01-01T00:00:00Z")
        objs.append(parse(m["kind"], F(m, "", (0, 0), ctx), meta, m["apiVersion"]))
    tables = compile_tables(objs, services, slices, secrets,
                            addresses={conversion.gateway_key(): ["192.0.2.1"]}
                            if conversion.objects else {})
    reqs = list(requests) if requests is not None else generated_requests(ingresses)
    diffs: list[Difference] = []
    gws = [o for o in conversion.objects if o["kind"] == "Gateway"]
    for scheme, host, path in reqs:
        ing_d = route_request(ingresses, classes, services, slices, host, path, scheme=scheme,
                              sni=host if scheme == "https" else None, seed=seed,
                              config=config, pick=False)
        ns = _namespace_for(ingresses, host, gws)
        gkey = f"{ns}/{gws[0]['metadata']['name']}" if gws else ""
        gw_d = decide(tables, gkey, GatewayRequest("GET", path, host, (), scheme,
                                                   443 if scheme == "https" else 80,
                                                   host if scheme == "https" else None),
                      random.Random(seed))
        label = f"{scheme}://{host}{path}"
        ing_backend = ing_d.service if ing_d.status == 200 else None
        gw_backend = gw_d.backend if gw_d.status == 200 else None
        if ing_d.status != gw_d.status:
            diffs.append(Difference(label, "status", ing_d.status, gw_d.status,
                                    _why(ing_d, gw_d, path)))
            continue
        if ing_backend != gw_backend and not (gw_d.status == 200 and ing_backend in gw_d.backends):
            diffs.append(Difference(label, "backend", ing_backend, gw_backend,
                                    _why(ing_d, gw_d, path)))
            continue
        if ing_d.status == 200:
            up = gw_d.request.get("path")
            if ing_d.upstream_path != up:
                diffs.append(Difference(label, "upstream path", ing_d.upstream_path, up,
                                        "ingress-nginx rewrites with nginx's regex rules; the "
                                        "route uses Gateway API path modifiers"))
        elif ing_d.location != gw_d.location:
            diffs.append(Difference(label, "location", ing_d.location, gw_d.location,
                                    _why(ing_d, gw_d, path)))
    return diffs, len(reqs)


def _namespace_for(ingresses: Sequence[Ingress], host: str, gws: list[dict[str, Any]]) -> str:
    for ing in ingresses:
        if any(r.host == host for r in ing.rules):
            return ing.metadata.namespace
    return gws[0]["metadata"]["namespace"] if gws else "default"


def _why(ing: Any, gw: Any, path: str = "") -> str:
    """The known reasons a migrated request routes differently, else both decisions' own."""
    parts = []
    loc = (ing.nginx_location or "").removeprefix("location ")
    if ing.status == 200 and gw.status == 404 and path != path.lower() and (
            loc.startswith("~*") or ing.path_type == "ImplementationSpecific"):
        parts.append("ingress-nginx regex locations match case-insensitively (~*); Gateway API "
                     "paths are case-sensitive")
    if (ing.location and gw.location and ing.location.rstrip("/") == gw.location.rstrip("/")
            and ing.reason == "ssl-redirect"):
        parts.append("ingress-nginx's ssl-redirect drops a trailing slash unless "
                     "preserve-trailing-slash is set; a RequestRedirect keeps the path")
    if not parts:
        if ing.reason:
            parts.append(f"ingress: {ing.reason}")
        if gw.reason:
            parts.append(f"gateway: {gw.reason}")
    return "; ".join(parts) or "the decisions differ"


__all__ = ["Conversion", "Difference", "check", "convert", "generated_requests"]
