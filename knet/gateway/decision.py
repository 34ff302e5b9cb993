"""One request through a Gateway (pure): listener, route, rule, filters, backend, status.

Invariants (reference: shared/reference/gateway-api.md §2.2, §4, §5, §6, §9):
- matching always sees the original request; filters build what the backend receives
  (``request``) and what the client gets (``response_headers``, redirects, CORS preflights);
- rule filters run in listed order, then the chosen backend's own filters (ambiguity #13);
- the weighted choice covers valid and invalid backends together, so invalid shares answer 500
  in proportion; a valid Service with no ready endpoint answers 503; a rule without backends
  and without a redirect answers 500; all weights 0 answers 500 (ambiguity #9);
- randomness comes only from the injected ``random.Random`` (seeded: same seed, same picks).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from knet.gateway.routes import (
    Backend,
    CompiledGateway,
    Listener,
    Match,
    Rule,
    Tables,
    host_matches,
    request_host,
    select_listener,
)

_UNRESERVED = re.compile(r"%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])")


@dataclass(slots=True)
class GatewayRequest:
    method: str
    path: str  # with query
    host: str = ""
    headers: Sequence[tuple[str, str]] = ()
    scheme: str = "http"
    port: int | None = None
    sni: str | None = None
    grpc: bool = False


@dataclass(slots=True)
class GatewayDecision:
    status: int
    gateway: str
    listener: str | None = None
    route: str | None = None  # "HTTPRoute ns/name"
    rule: int | None = None
    backend: str | None = None
    backends: dict[str, int] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    location: str | None = None
    mirrors: list[str] = field(default_factory=list)
    reason: str = ""
    addresses: tuple[tuple[str, int], ...] = ()
    timeout: float | None = None
    backend_timeout: float | None = None
    filters: list[str] = field(default_factory=list)
    grpc_status: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "gateway": self.gateway, "listener": self.listener,
                "route": self.route, "rule": self.rule, "backend": self.backend,
                "backends": self.backends, "request": self.request,
                "response_headers": self.response_headers, "location": self.location,
                "mirrors": self.mirrors, "filters": self.filters, "reason": self.reason}

    def render(self) -> str:
        lines = [f"status:   {self.status}" + (f" ({self.reason})" if self.reason else ""),
                 f"gateway:  {self.gateway}",
                 f"listener: {self.listener or '<none>'}",
                 f"route:    {self.route or '<none>'}" + (f" rule {self.rule}"
                                                          if self.rule is not None else "")]
        if self.filters:
            lines.append(f"filters:  {', '.join(self.filters)}")
        if self.backends:
            lines.append("backends: " + ", ".join(f"{k} (weight {v})"
                                                  for k, v in self.backends.items()))
        if self.backend:
            lines.append(f"backend:  {self.backend}")
        if self.location:
            lines.append(f"location: {self.location}")
        if self.request:
            r = self.request
            lines.append(f"upstream: {r['method']} {r['path']} (Host: {r['host']})")
            for k, v in r["headers"].items():
                lines.append(f"  {k}: {v}")
        for k, v in self.response_headers.items():
            lines.append(f"response header: {k}: {v}")
        for m in self.mirrors:
            lines.append(f"mirror:   {m}")
        return "\n".join(lines)


# --- matching -------------------------------------------------------------------------------

def normalize_path(path: str) -> str:
    """Ambiguity #3: decode unreserved ``%XX`` only; never collapse ``//``."""
    return _UNRESERVED.sub(lambda m: chr(int(m.group(1), 16)), path) if "%" in path else path


def path_matches(m: Match, path: str) -> bool:
    if m.path_type == "Exact":
        return path == m.path
    if m.path_type == "PathPrefix":
        p = m.path.rstrip("/")
        if not p:
            return True
        return path == p or (path.startswith(p) and path[len(p)] == "/")
    return m.path_rx is not None and m.path_rx.fullmatch(path) is not None


def _value_matches(expected: str, rx: re.Pattern[str] | None, got: str | None) -> bool:
    """Exact when ``rx`` is None, else a RegularExpression match (fullmatch)."""
    if got is None:
        return False
    return got == expected if rx is None else rx.fullmatch(got) is not None


def match_http(m: Match, method: str, path: str, headers: Mapping[str, str],
               query: Mapping[str, str]) -> bool:
    if m.method and m.method != method:
        return False
    if not path_matches(m, path):
        return False
    if not all(_value_matches(v, rx, headers.get(n)) for n, v, rx in m.headers):
        return False
    return all(_value_matches(v, rx, query.get(n)) for n, v, rx in m.query)


def match_grpc(m: Match, service: str, method: str, headers: Mapping[str, str]) -> bool:
    if m.grpc_rx is not None:
        if m.grpc_rx.fullmatch(f"{service}/{method}") is None:
            return False
    else:
        if m.grpc_service and m.grpc_service != service:
            return False
        if m.grpc_method and m.grpc_method != method:
            return False
    return all(_value_matches(v, rx, headers.get(n)) for n, v, rx in m.headers)


def joined_headers(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Lower-case name → values joined with ``,`` (ambiguity #5)."""
    out: dict[str, str] = {}
    for k, v in headers:
        k = k.lower()
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


def first_query(query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        out.setdefault(k, v)
    return out


def find(ls: Listener, req: GatewayRequest, host: str) -> tuple[Rule, int] | None:
    """The winning (rule, match index) on a listener, or None (→ 404)."""
    raw_path, _, query = req.path.partition("?")
    path = normalize_path(raw_path)
    headers = joined_headers(req.headers)
    if req.grpc:
        service, _, method = path.lstrip("/").partition("/")
        for _, rule, mi in ls.candidates(host, grpc=True):
            if match_grpc(rule.matches[mi], service, method, headers):
                return rule, mi
        return None
    q = first_query(query) if query else {}
    for _, rule, mi in ls.candidates(host):
        if match_http(rule.matches[mi], req.method, path, headers, q):
            return rule, mi
    return None


# --- filters ----------------------------------------------------------------------------------

class _Headers:
    """An ordered header list with the modifier operations (names case-insensitive)."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self.items = list(items)

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.items.append((name, value))

    def add(self, name: str, value: str) -> None:
        self.items.append((name, value))

    def remove(self, name: str) -> None:
        low = name.lower()
        self.items = [(k, v) for k, v in self.items if k.lower() != low]

    def apply(self, mod: Mapping[str, Any]) -> None:
        for h in mod.get("set", ()):
            self.set(h["name"], h["value"])
        for h in mod.get("add", ()):
            self.add(h["name"], h["value"])
        for name in mod.get("remove", ()):
            self.remove(name)

    def joined(self) -> dict[str, str]:
        out: dict[str, str] = {}
        names: dict[str, str] = {}
        for k, v in self.items:
            low = k.lower()
            if low in names:
                out[names[low]] += "," + v
            else:
                names[low] = k
                out[k] = v
        return out


def replace_prefix(path: str, prefix: str, replacement: str) -> str:
    """§5.3's formula: ``replacement.rstrip('/') + rest``, ``/`` when empty."""
    p = prefix.rstrip("/")
    rest = path[len(p):] if path.startswith(p) else path
    out = replacement.rstrip("/") + rest
    return out or "/"


def _new_path(mod: Mapping[str, Any] | None, path: str, m: Match) -> str:
    if not mod:
        return path
    if mod.get("type") == "ReplaceFullPath":
        return mod.get("replaceFullPath", "/")
    return replace_prefix(path, m.path, mod.get("replacePrefixMatch", ""))


def _origin_allowed(origin: str, allowed: Sequence[str]) -> bool:
    for a in allowed:
        if a == "*":
            return True
        if "*" in a:
            rx = re.escape(a).replace(r"\*", ".+")
            if re.fullmatch(rx, origin):
                return True
        elif a == origin:
            return True
    return False


def _cors(cfg: Mapping[str, Any], req_headers: Mapping[str, str], method: str,
          out: dict[str, str]) -> bool:
    """Adds CORS response headers; True when the request is a preflight answered here."""
    origin = req_headers.get("origin")
    preflight = method == "OPTIONS" and origin is not None and \
        "access-control-request-method" in req_headers
    if origin is None:
        return False
    creds = bool(cfg.get("allowCredentials"))
    if not _origin_allowed(origin, cfg.get("allowOrigins", ())):
        return preflight
    allow_all = "*" in cfg.get("allowOrigins", ()) and not creds
    out["access-control-allow-origin"] = "*" if allow_all else origin
    if creds:
        out["access-control-allow-credentials"] = "true"
    if preflight:
        methods = list(cfg.get("allowMethods", ()))
        if "*" in methods:
            methods = [req_headers["access-control-request-method"]] if creds else ["*"]
        out["access-control-allow-methods"] = ", ".join(methods) if methods else \
            "GET, HEAD, POST"
        hdrs = list(cfg.get("allowHeaders", ()))
        if "*" in hdrs and creds:
            hdrs = [h.strip() for h in
                    req_headers.get("access-control-request-headers", "").split(",") if h.strip()]
        if hdrs:
            out["access-control-allow-headers"] = ", ".join(hdrs)
        out["access-control-max-age"] = str(cfg.get("maxAge", 5))
    elif cfg.get("exposeHeaders"):
        out["access-control-expose-headers"] = ", ".join(cfg["exposeHeaders"])
    return preflight


# --- the decision ---------------------------------------------------------------------------

def _fail(d: GatewayDecision, status: int, reason: str) -> GatewayDecision:
    d.status = status
    d.reason = reason
    return d


def decide(tables: Tables, gateway: str, req: GatewayRequest,
           rng: random.Random) -> GatewayDecision:
    """The answer of Gateway ``ns/name`` to ``req`` (a 404 when nothing is configured)."""
    d = GatewayDecision(404, gateway)
    cg = tables.gateway(gateway)
    if cg is None:
        return _fail(d, 404, "no such Gateway served by knet")
    host = request_host(req.host) if req.host else (cg.addresses[0] if cg.addresses else "")
    tls = req.scheme == "https"
    sel_host = (req.sni or host) if tls else host
    ls = select_listener(cg, req.port, sel_host, tls=tls if req.port is None else None)
    if ls is None:
        return _fail(d, 404, "no listener matches the port and hostname")
    d.listener = ls.name
    if tls and req.sni and ls.hostname and not host_matches(ls.hostname, host):
        # the Host does not match the SNI-selected listener (ambiguity #12): 421 when another
        # listener on the port would take it, else 404
        other = select_listener(cg, ls.port, host, tls=True)
        if other is not None and other is not ls:
            return _fail(d, 421, "misdirected request: another listener serves this Host")
        return _fail(d, 404, "the Host does not match the listener selected by SNI")
    if ls.protocol not in ("HTTP", "HTTPS"):
        return _fail(d, 404, f"listener protocol {ls.protocol} does not route HTTP requests")
    found = find(ls, req, host)
    if found is None:
        return _fail(d, 404, "no route rule matches on this listener")
    rule, mi = found
    return apply_rule(d, cg, ls, rule, mi, req, host, rng)


def apply_rule(d: GatewayDecision, cg: CompiledGateway, ls: Listener, rule: Rule, mi: int,
               req: GatewayRequest, host: str, rng: random.Random) -> GatewayDecision:
    d.route = rule.route.label
    d.rule = rule.index
    d.timeout = rule.timeout_request
    d.backend_timeout = rule.timeout_backend
    m = rule.matches[mi]
    raw_path, sep, query = req.path.partition("?")
    req_headers = joined_headers(req.headers)
    headers = _Headers(req.headers)
    up_host = req.host or host
    path = raw_path
    resp: dict[str, str] = {}
    d.backends = {b.ref: b.weight for b in rule.backends}
    preflight = False
    for f in rule.filters:
        t = f["type"]
        d.filters.append(t)
        if t == "RequestHeaderModifier":
            headers.apply(f["requestHeaderModifier"])
        elif t == "ResponseHeaderModifier":
            rh = _Headers(list(resp.items()))
            rh.apply(f["responseHeaderModifier"])
            resp = rh.joined()
        elif t == "URLRewrite":
            rw = f["urlRewrite"]
            if rw.get("hostname"):
                up_host = rw["hostname"]
            path = _new_path(rw.get("path"), path, m)
        elif t == "RequestRedirect":
            return _redirect(d, f["requestRedirect"], ls, req, host, raw_path, query, sep, m,
                             resp)
        elif t == "RequestMirror":
            continue
        elif t == "CORS":
            preflight = _cors(f["cors"], req_headers, req.method, resp) or preflight
        elif t == "ExtensionRef":
            d.response_headers = resp
            return _fail(d, 500, "ExtensionRef filter cannot be resolved")
    for mb, cfg in rule.mirrors:
        if not mb.valid or not _mirrored(cfg, rng):
            continue
        d.mirrors.append(mb.ref)
    d.response_headers = resp
    if preflight:
        d.status = 200
        d.reason = "CORS preflight answered by the gateway"
        return d
    if not rule.backends:
        return _fail(d, 500, "the rule has no backendRefs")
    backend = _pick(rule.backends, rng)
    if backend is None:
        return _fail(d, 500, "all backend weights are 0")
    d.backend = backend.ref
    for f in backend.filters:  # per-backend filters, after the rule's (ambiguity #13)
        t = f["type"]
        d.filters.append(f"{t} (backend)")
        if t == "RequestHeaderModifier":
            headers.apply(f["requestHeaderModifier"])
        elif t == "ResponseHeaderModifier":
            rh = _Headers(list(resp.items()))
            rh.apply(f["responseHeaderModifier"])
            resp = rh.joined()
            d.response_headers = resp
        elif t == "URLRewrite":
            rw = f["urlRewrite"]
            if rw.get("hostname"):
                up_host = rw["hostname"]
            path = _new_path(rw.get("path"), path, m)
    h = headers.joined()
    for k in list(h):
        if k.lower() == "host":
            del h[k]
    d.request = {"method": req.method, "path": path + sep + query, "host": up_host,
                 "headers": h}
    if not backend.valid:
        return _fail(d, 500, f"invalid backend: {backend.reason}")
    if not backend.addresses:
        return _fail(d, 503, "the backend Service has no ready endpoints")
    d.status = 200
    d.addresses = backend.addresses
    return d


def _pick(backends: Sequence[Backend], rng: random.Random) -> Backend | None:
    total = sum(b.weight for b in backends)
    if total <= 0:
        return None
    if len(backends) == 1:
        return backends[0]
    x = rng.randrange(total)
    for b in backends:
        if x < b.weight:
            return b
        x -= b.weight
    return backends[-1]


def _mirrored(cfg: Mapping[str, Any], rng: random.Random) -> bool:
    if "percent" in cfg:
        return rng.randrange(100) < cfg["percent"]
    if "fraction" in cfg:
        fr = cfg["fraction"]
        return rng.randrange(fr.get("denominator", 100)) < fr["numerator"]
    return True


def _redirect(d: GatewayDecision, cfg: Mapping[str, Any], ls: Listener, req: GatewayRequest,
              host: str, raw_path: str, query: str, sep: str, m: Match,
              resp: dict[str, str]) -> GatewayDecision:
    """§5.2: scheme, host without port, port rules, path, query kept (ambiguity #6)."""
    scheme = cfg.get("scheme") or ("https" if ls.protocol == "HTTPS" else "http")
    rhost = cfg.get("hostname") or host
    if "port" in cfg:
        port = cfg["port"]
    elif cfg.get("scheme"):
        port = 443 if scheme == "https" else 80
    else:
        port = ls.port
    default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    path = _new_path(cfg.get("path"), raw_path, m)
    d.location = f"{scheme}://{rhost}{'' if default else f':{port}'}{path}{sep}{query}"
    d.status = cfg.get("statusCode", 302)
    d.response_headers = resp
    d.reason = "RequestRedirect"
    return d


__all__ = ["GatewayDecision", "GatewayRequest", "apply_rule", "decide", "find", "match_grpc",
           "match_http", "normalize_path", "path_matches", "replace_prefix"]
