"""Per-request ingress decision: request + routing table → Decision (pure, deterministic).

Invariants:
- the order of checks is nginx's phase order as ingress-nginx configures it: server and
  location selection, body size (413), then the rewrite phase (``permanent-/temporal-redirect``,
  ``app-root``, CORS preflight, ``rewrite``), then ``lua_ingress`` (ssl-redirect 308), then the
  access phase (source ranges 403), then the balancer (canary, affinity, round robin);
- 404 is the controller's default backend, 503 a backend without a Service, port or address;
- all randomness (canary weight, request ids, round-robin start) comes from the Router's
  injected ``random.Random``; time arrives as ``now``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from multidict import CIMultiDict, CIMultiDictProxy

from knet.ingress.responses import http_date
from knet.ingress.annotations import Annotations, Canary
from knet.ingress.routes import (
    BadRequest, ControllerConfig, Location, RoutingTable, Server, Upstream, build_table,
    normalize_uri,
)
from knet.model.core import Service
from knet.model.discovery import EndpointSlice
from knet.model.networking import Ingress, IngressClass

Headers = Mapping[str, str]  # case-insensitive (multidict.CIMultiDict / aiohttp headers)


@dataclass(frozen=True, slots=True)
class Request:
    method: str = "GET"
    host: str = ""  # the Host header as sent ("" when absent)
    path: str = "/"  # the raw request target, query included
    headers: Headers = field(default_factory=CIMultiDict, hash=False, compare=False)
    scheme: str = "http"
    client_ip: str = "127.0.0.1"
    sni: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    status: int  # 200 = proxy to the backend; anything else is answered locally
    ingress: str | None = None
    service: str | None = None  # ns/name:PORT
    upstream_path: str | None = None
    location: str | None = None  # Location header of a redirect
    reason: str = ""
    host: str = ""  # the normalised Host (lower case, no port)
    server: str = ""  # the nginx server that took the request ("_" = catch-all)
    rule_host: str | None = None
    path: str | None = None  # the Ingress path that matched
    path_type: str | None = None
    nginx_location: str | None = None
    canary: bool = False
    upstream: str | None = None  # chosen address "ip:port" ("[v6]:port")
    upstream_name: str | None = None
    backend_protocol: str = "HTTP"
    request_id: str = ""
    upstream_host: str = ""  # Host header sent upstream
    x_forwarded_prefix: str = ""
    response_headers: tuple[tuple[str, str], ...] = ()  # added to the client response
    body_limit: int | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    send_timeout: float = 60.0
    addresses: tuple[tuple[str, int], ...] = field(default=(), compare=False, repr=False)

    @property
    def proxied(self) -> bool:
        return self.status == 200

    def to_json(self) -> dict[str, object]:
        """The ``knet route -o json`` form (INTERFACES.md); the first five keys are stable."""
        return {
            "status": self.status, "ingress": self.ingress, "service": self.service,
            "upstream_path": self.upstream_path, "location": self.location,
            "reason": self.reason, "host": self.host, "server": self.server,
            "rule_host": self.rule_host, "path": self.path, "pathType": self.path_type,
            "nginx_location": self.nginx_location, "canary": self.canary,
            "upstream": self.upstream, "backend_protocol": self.backend_protocol,
            "response_headers": [list(h) for h in self.response_headers],
        }

    def render(self) -> str:
        """Human text form for ``knet route``."""
        lines = [f"status:    {self.status} ({self.reason})" if self.reason else f"status:    {self.status}"]
        lines.append(f"server:    {self.server}" + (f"  (Host {self.host})" if self.host else ""))
        if self.nginx_location:
            lines.append(f"location:  {self.nginx_location}")
        if self.ingress:
            lines.append(f"ingress:   {self.ingress}  rule host={self.rule_host or '*'} "
                         f"path={self.path} pathType={self.path_type}")
        if self.service:
            lines.append(f"service:   {self.service}" + ("  (canary)" if self.canary else ""))
        if self.upstream:
            lines.append(f"upstream:  {self.backend_protocol} {self.upstream}"
                         f"  path {self.upstream_path or '/'}")
        elif self.upstream_path is not None:
            lines.append(f"path:      {self.upstream_path}")
        if self.location:
            lines.append(f"redirect:  {self.location}")
        for k, v in self.response_headers:
            lines.append(f"header:    {k}: {v}")
        return "\n".join(lines)


# --- helpers --------------------------------------------------------------------------------

def split_host(host_header: str) -> str:
    """nginx ``$host`` from the Host header: lower case, port and trailing dot removed."""
    h = host_header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[:end + 1] if end > 0 else h
    colon = h.rfind(":")
    if colon >= 0:
        h = h[:colon]
    return h.rstrip(".")


_VALID_HOST = re.compile(r"^[a-z0-9._\-\[\]:]*$")

# NGX_ESCAPE_URI: space, '#', '%', '?', control and non-ASCII characters are escaped.
_URI_SAFE = "".join(chr(c) for c in range(0x21, 0x7f) if chr(c) not in "#%?")


def _addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _expand(target: str, m: re.Match[str] | None, var: Mapping[str, str]) -> str:
    """nginx script variables in a replacement: ``$1``…``$9`` and a few named variables."""
    def sub(mm: re.Match[str]) -> str:
        name = mm.group(1) or mm.group(2)
        if name.isdigit():
            if m is None:
                return ""
            idx = int(name)
            return (m.group(idx) or "") if idx <= (m.re.groups or 0) else ""
        return var.get(name, "")
    return _VAR.sub(sub, target)


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\d|[A-Za-z_]\w*))")


def cookie_value(upstream: Upstream, address: tuple[str, int]) -> str:
    """Sticky cookie value ``<hash>|<backend key>`` (``balancer/sticky.lua``)."""
    digest = hashlib.md5(_addr(*address).encode()).hexdigest()
    return f"{digest}|{upstream.name}"


# --- the router -----------------------------------------------------------------------------

class Router:
    """Holds a RoutingTable plus the balancer state (round-robin counters) and the rng."""

    __slots__ = ("table", "rng", "_rr")

    def __init__(self, table: RoutingTable, rng: random.Random | None = None) -> None:
        self.table = table
        self.rng = rng if rng is not None else random.Random(0)
        self._rr: dict[str, int] = {}

    def update(self, table: RoutingTable) -> None:
        """Swap in a rebuilt table; round-robin positions are kept per upstream."""
        self.table = table

    # -- balancer --
    def _round_robin(self, u: Upstream, addrs: tuple[tuple[str, int], ...]) -> tuple[str, int]:
        i = self._rr.get(u.name)
        if i is None:
            i = self.rng.randrange(len(addrs))  # resty.roundrobin starts at a random peer
        self._rr[u.name] = i + 1
        return addrs[i % len(addrs)]

    def route(self, req: Request, *, now: float = 0.0, pick: bool = True) -> Decision:
        cfg = self.table.config
        h = req.headers
        target = req.path or "/"
        host_header = req.host
        if target.startswith(("http://", "https://")):
            # absolute-form request target: nginx takes the host from it
            rest = target.split("://", 1)[1]
            slash = rest.find("/")
            host_header, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
        raw_uri, _, args = target.partition("?")
        raw_uri = raw_uri.partition("#")[0]
        host = split_host(host_header)
        rid = h.get("X-Request-ID") or (
            f"{self.rng.getrandbits(128):032x}" if cfg.generate_request_id else "")
        if not _VALID_HOST.match(host):
            return Decision(400, reason="invalid Host header", host=host, request_id=rid)
        try:
            uri = normalize_uri(raw_uri)
        except BadRequest:
            return Decision(400, reason="bad request URI", host=host, request_id=rid)

        server = self.table.server_for(host)
        loc, auto_redirect = server.match(uri)
        a = loc.annotations
        base: dict[str, Any] = dict(host=host, server=server.hostname, nginx_location=loc.render(),
                    request_id=rid)
        if not loc.is_default_backend and loc.ingress is not None:
            base.update(rule_host=loc.rule_host or None, path=loc.ingress_path,
                        path_type=str(loc.ingress_path_type))
        resp_headers: list[tuple[str, str]] = []
        https = req.scheme == "https"
        if https and server.tls and cfg.hsts:
            hsts = f"max-age={cfg.hsts_max_age}"
            if cfg.hsts_include_subdomains:
                hsts += "; includeSubDomains"
            resp_headers.append(("Strict-Transport-Security", hsts))

        def local(status: int, why: str, location: str | None = None,
                  extra: Iterable[tuple[str, str]] = ()) -> Decision:
            return Decision(status, ingress=_ing(loc), location=location, reason=why,
                            response_headers=tuple(resp_headers) + tuple(extra), **base)

        # client_max_body_size is checked when the location is found (find-config phase)
        clen = h.get("Content-Length")
        if a.proxy_body_size is not None and clen and clen.isdigit() and int(clen) > a.proxy_body_size:
            return local(413, "request body larger than proxy-body-size")

        if auto_redirect and cfg.nginx_trailing_slash_redirect:
            q = f"?{args}" if args else ""
            return local(301, "prefix location ends in '/'",
                         f"{req.scheme}://{host}{uri}/{q}")

        # rewrite phase
        if a.redirect_url:
            return local(a.redirect_code, "redirect annotation", a.redirect_url)
        if a.app_root and uri == "/":
            return local(302, "app-root", f"{req.scheme}://{host_header}{a.app_root}")
        cors = a.cors
        origin = h.get("Origin", "")
        if cors.enabled:
            allow = "*" if "*" in cors.allow_origin else (origin if origin in cors.allow_origin else "")
            cors_headers: list[tuple[str, str]] = []
            if allow:
                cors_headers.append(("Access-Control-Allow-Origin", allow))
            if cors.allow_credentials:
                cors_headers.append(("Access-Control-Allow-Credentials", "true"))
            if req.method == "OPTIONS":
                cors_headers += [
                    ("Access-Control-Allow-Methods", cors.allow_methods),
                    ("Access-Control-Allow-Headers", cors.allow_headers),
                    ("Access-Control-Max-Age", str(cors.max_age)),
                    ("Content-Type", "text/plain charset=UTF-8"),
                    ("Content-Length", "0"),
                ]
                return local(204, "CORS preflight", extra=cors_headers)
            if cors.expose_headers:
                cors_headers.append(("Access-Control-Expose-Headers", cors.expose_headers))
            resp_headers += cors_headers

        upstream_path = target if target.startswith("/") else (raw_uri + (f"?{args}" if args else ""))
        if loc.rewrite is not None:
            m = loc.rewrite.search(uri)
            if m is not None:
                new = _expand(a.rewrite_target, m, {
                    "host": host, "http_host": host_header, "scheme": req.scheme, "uri": uri,
                    "request_uri": target, "args": args})
                if new.startswith(("http://", "https://")):
                    return local(302, "rewrite to an absolute URL", new)
                path_part, qmark, new_args = new.partition("?")
                path_part = quote(path_part, safe=_URI_SAFE)
                if qmark:
                    if new_args == "" and new.endswith("?"):
                        upstream_path = path_part
                    else:
                        upstream_path = path_part + "?" + new_args + (f"&{args}" if args else "")
                else:
                    upstream_path = path_part + (f"?{args}" if args else "")

        # lua_ingress.lua redirect_to_https
        if not https and (a.force_ssl_redirect or (cfg.ssl_redirect and a.ssl_redirect and server.tls)):
            ruri = target
            if not a.preserve_trailing_slash and ruri.endswith("/"):
                ruri = ruri[:-1]
            return local(cfg.http_redirect_code, "ssl-redirect", f"https://{host}{ruri}")

        # access phase
        if a.allow_source or a.deny_source:
            try:
                cip = ipaddress.ip_address(req.client_ip)
            except ValueError:
                cip = None
            if cip is not None and any(cip in n for n in a.deny_source):
                return local(403, "denylist-source-range")
            if a.allow_source and (cip is None or not any(cip in n for n in a.allow_source)):
                return local(403, "whitelist-source-range")

        u = loc.upstream
        if u is None:
            return Decision(404, reason="default backend", upstream_path=upstream_path,
                            response_headers=tuple(resp_headers),
                            **{k: v for k, v in base.items()
                               if k in ("host", "server", "nginx_location", "request_id")})

        canary = False
        ann = a
        alt = u.alternative
        if alt is not None and self._to_canary(alt.policy, h):
            u, ann, canary = alt.upstream, alt.annotations, True

        common: dict[str, Any] = dict(ingress=_ing(loc) if not canary else alt.ingress.key,  # type: ignore[union-attr]
                      service=u.service_key, upstream_path=upstream_path, canary=canary,
                      upstream_name=u.name, backend_protocol=a.backend_protocol,
                      upstream_host=a.upstream_vhost or host_header,
                      x_forwarded_prefix=a.x_forwarded_prefix, body_limit=a.proxy_body_size,
                      connect_timeout=a.proxy_connect_timeout, read_timeout=a.proxy_read_timeout,
                      send_timeout=a.proxy_send_timeout, **base)
        if u.service is None:
            return Decision(503, reason="service not found",
                            response_headers=tuple(resp_headers), **common)
        if u.service_port is None:
            return Decision(503, reason="service port not found",
                            response_headers=tuple(resp_headers), **common)
        addrs = u.addresses
        if not addrs:
            return Decision(503, reason="no endpoints",
                            response_headers=tuple(resp_headers), **common)
        chosen: str | None = None
        if pick:
            address = None
            aff = ann.affinity
            if aff.kind == "cookie":
                address, cookie = self._sticky(u, addrs, ann, loc, req, now)
                if cookie:
                    resp_headers.append(("Set-Cookie", cookie))
            if address is None:
                address = self._round_robin(u, addrs)
            chosen = _addr(*address)
        return Decision(200, upstream=chosen, addresses=addrs, response_headers=tuple(resp_headers),
                        **common)

    # balancer.lua route_to_alternative_balancer: header → cookie → weight
    def _to_canary(self, p: Canary, h: Headers) -> bool:
        if p.header:
            v = h.get(p.header)
            if v is not None:
                if p.header_value:
                    if v == p.header_value:
                        return True
                elif p.header_pattern:
                    # ngx.re.match(header, pattern) without the "a" flag: unanchored, so the
                    # pattern may match anywhere in the value (a PCRE search)
                    try:
                        if re.search(p.header_pattern, v):
                            return True
                    except re.error:
                        pass
                elif v == "always":
                    return True
                elif v == "never":
                    return False
        if p.cookie:
            v = _cookie(h, p.cookie)
            if v == "always":
                return True
            if v == "never":
                return False
        total = p.weight_total if p.weight_total > 0 else 100
        return p.weight > 0 and self.rng.randint(1, total) <= p.weight

    def _sticky(self, u: Upstream, addrs: tuple[tuple[str, int], ...], a: Annotations,
                loc: Location, req: Request, now: float) -> tuple[tuple[str, int] | None, str]:
        aff = a.affinity
        have = _cookie(req.headers, aff.cookie_name)
        if have:
            for ad in addrs:
                if cookie_value(u, ad) == have:
                    return ad, ""
        address = self._round_robin(u, addrs)
        parts = [f"{aff.cookie_name}={cookie_value(u, address)}"]
        if aff.cookie_expires.isdigit():
            parts.append("Expires=" + http_date(now + int(aff.cookie_expires)))
        if aff.cookie_max_age.isdigit():
            parts.append(f"Max-Age={aff.cookie_max_age}")
        if aff.cookie_domain:
            parts.append(f"Domain={aff.cookie_domain}")
        parts.append(f"Path={aff.cookie_path or loc.ingress_path or '/'}")
        if req.scheme == "https" or aff.cookie_secure:
            parts.append("Secure")
        parts.append("HttpOnly")
        if aff.cookie_samesite:
            parts.append(f"SameSite={aff.cookie_samesite}")
        return address, "; ".join(parts)


def _ing(loc: Location) -> str | None:
    return loc.ingress.key if loc.ingress is not None and not (
        loc.is_default_backend and loc.upstream is None) else None


def _cookie(h: Headers, name: str) -> str | None:
    getall = getattr(h, "getall", None)
    values = getall("Cookie", ()) if getall is not None else ([h["Cookie"]] if "Cookie" in h else [])
    for header in values:
        for part in header.split(";"):
            k, eq, v = part.strip().partition("=")
            if eq and k == name:
                return v
    return None


# --- headers sent upstream (nginx.tmpl proxy_set_header, ingress-nginx defaults) ------------

_HOP = frozenset({
    "host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
    "trailer", "content-length", "x-request-id", "x-real-ip", "x-forwarded-for",
    "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto", "x-forwarded-scheme",
    "x-scheme", "x-original-forwarded-for", "x-original-forwarded-host", "x-forwarded-prefix",
    "proxy", "upgrade",
})


def upstream_headers(req: Request, d: Decision, config: ControllerConfig,
                     server_port: int | None = None) -> list[tuple[str, str]]:
    """The request headers nginx sends to the upstream, in nginx's order."""
    h = req.headers
    https = req.scheme == "https"
    port = str(server_port or (config.https_port if https else config.http_port))
    remote = req.client_ip
    client_xff = h.get("X-Forwarded-For")
    if config.use_forwarded_headers:
        xff = client_xff or remote
        if config.compute_full_forwarded_for and client_xff:
            xff = f"{client_xff}, {remote}"
        fwd_host = h.get("X-Forwarded-Host") or req.host
        fwd_port = h.get("X-Forwarded-Port") or port
        proto = h.get("X-Forwarded-Proto") or req.scheme
    else:
        xff, fwd_host, fwd_port, proto = remote, req.host, port, req.scheme
    out = [("Host", d.upstream_host or req.host)]
    if d.request_id:
        out.append(("X-Request-ID", d.request_id))
    out += [("X-Real-IP", remote), ("X-Forwarded-For", xff), ("X-Forwarded-Host", fwd_host),
            ("X-Forwarded-Port", fwd_port), ("X-Forwarded-Proto", proto),
            ("X-Forwarded-Scheme", proto), ("X-Scheme", proto)]
    if client_xff and not config.use_forwarded_headers:
        out.append(("X-Original-Forwarded-For", client_xff))
    if h.get("X-Forwarded-Host") and not config.use_forwarded_headers:
        out.append(("X-Original-Forwarded-Host", h["X-Forwarded-Host"]))
    if d.x_forwarded_prefix:
        out.append(("X-Forwarded-Prefix", d.x_forwarded_prefix))
    upgrade = h.get("Upgrade")
    if upgrade:
        out += [("Upgrade", upgrade), ("Connection", "upgrade")]
    for k, v in h.items():
        if k.lower() not in _HOP:
            out.append((k, v))
    return out


# --- convenience for the CLI ----------------------------------------------------------------

def route_request(
    ingresses: Iterable[Ingress],
    classes: Iterable[IngressClass],
    services: Iterable[Service],
    slices: Iterable[EndpointSlice],
    host: str,
    path: str,
    method: str = "GET",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    *,
    scheme: str = "http",
    client_ip: str = "127.0.0.1",
    sni: str | None = None,
    seed: int = 0,
    now: float = 0.0,
    pick: bool = True,
    config: ControllerConfig | None = None,
) -> Decision:
    """Build the table and route one request (``knet route``)."""
    table = build_table(ingresses, classes, services, slices, config or ControllerConfig())
    hdrs: CIMultiDict[str] = CIMultiDict(headers or ())
    return Router(table, random.Random(seed)).route(
        make_request(method, host, path, hdrs, scheme=scheme, client_ip=client_ip, sni=sni),
        now=now, pick=pick)


def make_request(method: str, host: str, path: str,
                 headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None, *,
                 scheme: str = "http", client_ip: str = "127.0.0.1",
                 sni: str | None = None) -> Request:
    hdrs = headers if isinstance(headers, (CIMultiDict, CIMultiDictProxy)) else CIMultiDict(headers or ())
    if host and "Host" not in hdrs:
        hdrs = CIMultiDict(hdrs)
        hdrs["Host"] = host
    return Request(method.upper(), host, path, hdrs, scheme, client_ip, sni)


__all__ = ["Decision", "Request", "Router", "Server", "make_request", "route_request",
           "upstream_headers", "cookie_value", "split_host"]
