"""ingress-nginx annotations (``nginx.ingress.kubernetes.io/*``) parsed into one typed value.

Invariants: parsing never raises; an invalid value falls back to the annotation's default, as
ingress-nginx's parsers do (``internal/ingress/annotations/*``, ``parser.GetBoolAnnotation`` uses
Go's ``strconv.ParseBool``). Defaults are ingress-nginx's (``internal/ingress/controller/config``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from collections.abc import Mapping

PREFIX = "nginx.ingress.kubernetes.io/"

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

# Access-Control defaults (annotations/cors/main.go)
CORS_DEFAULT_METHODS = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
CORS_DEFAULT_HEADERS = ("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,"
                        "Cache-Control,Content-Type,Range,Authorization")
CORS_DEFAULT_MAX_AGE = 1728000

BACKEND_PROTOCOLS = ("HTTP", "HTTPS", "AUTO_HTTP", "GRPC", "GRPCS", "FCGI")


@dataclass(frozen=True, slots=True)
class Canary:
    enabled: bool = False
    header: str = ""
    header_value: str = ""
    header_pattern: str = ""
    cookie: str = ""
    weight: int = 0
    weight_total: int = 100


@dataclass(frozen=True, slots=True)
class Affinity:
    kind: str = ""  # "" or "cookie"
    mode: str = "balanced"  # balanced | persistent
    cookie_name: str = "INGRESSCOOKIE"
    cookie_path: str = ""  # "" = the location path
    cookie_max_age: str = ""
    cookie_expires: str = ""
    cookie_samesite: str = ""
    cookie_domain: str = ""
    cookie_secure: bool = False


@dataclass(frozen=True, slots=True)
class Cors:
    enabled: bool = False
    allow_origin: tuple[str, ...] = ("*",)
    allow_methods: str = CORS_DEFAULT_METHODS
    allow_headers: str = CORS_DEFAULT_HEADERS
    allow_credentials: bool = True
    expose_headers: str = ""
    max_age: int = CORS_DEFAULT_MAX_AGE


@dataclass(frozen=True, slots=True)
class Annotations:
    rewrite_target: str = ""
    use_regex: bool = False
    app_root: str = ""
    x_forwarded_prefix: str = ""
    ssl_redirect: bool = True
    force_ssl_redirect: bool = False
    preserve_trailing_slash: bool = False
    redirect_url: str = ""  # permanent-redirect / temporal-redirect
    redirect_code: int = 0
    canary: Canary = Canary()
    affinity: Affinity = Affinity()
    service_upstream: bool = False
    backend_protocol: str = "HTTP"
    upstream_vhost: str = ""
    proxy_body_size: int | None = 1024 * 1024  # bytes; None = unlimited ("0")
    proxy_connect_timeout: float = 5.0
    proxy_read_timeout: float = 60.0
    proxy_send_timeout: float = 60.0
    cors: Cors = Cors()
    allow_source: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    deny_source: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    load_balance: str = "round_robin"
    upstream_hash_by: str = ""
    # Recorded but not enforced by knet (documented in docs/ingress.md).
    recorded: tuple[tuple[str, str], ...] = ()

    @property
    def regex(self) -> bool:
        """The location uses nginx regex matching (``enforceRegexModifier``)."""
        return self.use_regex or bool(self.rewrite_target)


def _bool(v: str | None, default: bool) -> bool:
    if v is None:
        return default
    v = v.strip()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    return default


def _int(v: str | None, default: int) -> int:
    if v is None:
        return default
    try:
        return int(v.strip())
    except ValueError:
        return default


_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)\s*$")


def parse_size(v: str) -> int | None:
    """nginx size syntax (``1m``, ``8k``, ``512``); ``0`` disables the check (None)."""
    m = _SIZE.match(v)
    if m is None:
        raise ValueError(v)
    n = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[m.group(2).lower()]
    return None if n == 0 else n


def _seconds(v: str | None, default: float) -> float:
    if v is None:
        return default
    v = v.strip().rstrip("s")
    try:
        return float(v)
    except ValueError:
        return default


def _ranges(v: str | None) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not v:
        return ()
    out = []
    for part in v.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            return ()  # ingress-nginx rejects the whole annotation on a bad CIDR
    return tuple(out)


def parse_annotations(annotations: Mapping[str, str]) -> Annotations:
    """Parse every ingress-nginx annotation knet understands from an Ingress's annotations."""
    a: dict[str, str] = {k[len(PREFIX):]: v for k, v in annotations.items() if k.startswith(PREFIX)}
    if not a:
        return _DEFAULT
    g = a.get

    redirect_url, redirect_code = "", 0
    # redirect/redirect.go: temporal-redirect is checked before permanent-redirect.
    if g("temporal-redirect"):
        redirect_url = g("temporal-redirect", "")
        redirect_code = _int(g("temporal-redirect-code"), 302)
        if not 300 <= redirect_code <= 308:
            redirect_code = 302
    elif g("permanent-redirect"):
        redirect_url = g("permanent-redirect", "")
        redirect_code = _int(g("permanent-redirect-code"), 301)
        if not 300 <= redirect_code <= 308:
            redirect_code = 301

    weight_total = _int(g("canary-weight-total"), 100)
    canary = Canary(
        enabled=_bool(g("canary"), False),
        header=g("canary-by-header", ""),
        header_value=g("canary-by-header-value", ""),
        header_pattern=g("canary-by-header-pattern", ""),
        cookie=g("canary-by-cookie", ""),
        weight=max(0, _int(g("canary-weight"), 0)),
        weight_total=weight_total if weight_total > 0 else 100,
    )
    affinity = Affinity(
        kind=g("affinity", "").strip(),
        mode=g("affinity-mode", "balanced").strip() or "balanced",
        cookie_name=g("session-cookie-name", "") or "INGRESSCOOKIE",
        cookie_path=g("session-cookie-path", ""),
        cookie_max_age=g("session-cookie-max-age", ""),
        cookie_expires=g("session-cookie-expires", ""),
        cookie_samesite=g("session-cookie-samesite", ""),
        cookie_domain=g("session-cookie-domain", ""),
        cookie_secure=_bool(g("session-cookie-secure"), False),
    )
    origins = tuple(o.strip() for o in g("cors-allow-origin", "*").split(",") if o.strip())
    cors = Cors(
        enabled=_bool(g("enable-cors"), False),
        allow_origin=origins or ("*",),
        allow_methods=g("cors-allow-methods", CORS_DEFAULT_METHODS) or CORS_DEFAULT_METHODS,
        allow_headers=g("cors-allow-headers", CORS_DEFAULT_HEADERS) or CORS_DEFAULT_HEADERS,
        allow_credentials=_bool(g("cors-allow-credentials"), True),
        expose_headers=g("cors-expose-headers", ""),
        max_age=_int(g("cors-max-age"), CORS_DEFAULT_MAX_AGE),
    )
    proto = g("backend-protocol", "HTTP").strip().upper()
    body_size: int | None = 1024 * 1024
    if g("proxy-body-size") is not None:
        try:
            body_size = parse_size(g("proxy-body-size", ""))
        except ValueError:
            pass
    recorded = tuple(sorted((k, v) for k, v in a.items() if k in _RECORDED_ONLY))
    return Annotations(
        rewrite_target=g("rewrite-target", ""),
        use_regex=_bool(g("use-regex"), False),
        app_root=g("app-root", ""),
        x_forwarded_prefix=g("x-forwarded-prefix", ""),
        ssl_redirect=_bool(g("ssl-redirect"), True),
        force_ssl_redirect=_bool(g("force-ssl-redirect"), False),
        preserve_trailing_slash=_bool(g("preserve-trailing-slash"), False),
        redirect_url=redirect_url,
        redirect_code=redirect_code,
        canary=canary,
        affinity=affinity,
        service_upstream=_bool(g("service-upstream"), False),
        backend_protocol=proto if proto in BACKEND_PROTOCOLS else "HTTP",
        upstream_vhost=g("upstream-vhost", ""),
        proxy_body_size=body_size,
        proxy_connect_timeout=_seconds(g("proxy-connect-timeout"), 5.0),
        proxy_read_timeout=_seconds(g("proxy-read-timeout"), 60.0),
        proxy_send_timeout=_seconds(g("proxy-send-timeout"), 60.0),
        cors=cors,
        allow_source=_ranges(g("whitelist-source-range") or g("allowlist-source-range")),
        deny_source=_ranges(g("denylist-source-range")),
        load_balance=g("load-balance", "round_robin").strip() or "round_robin",
        upstream_hash_by=g("upstream-hash-by", ""),
        recorded=recorded,
    )


_RECORDED_ONLY = frozenset({
    "auth-url", "auth-type", "auth-secret", "auth-realm", "limit-rps", "limit-rpm",
    "limit-connections", "configuration-snippet", "server-snippet", "proxy-buffering",
    "client-body-buffer-size", "from-to-www-redirect", "auth-tls-secret",
})

_DEFAULT = Annotations()
