"""A memo in front of ``Router.route`` for the proxy's hot path (pure, no IO).

Invariants:
- a cached answer is exactly what ``Router.route`` would return for the request: the memo
  holds only decisions that depend on nothing but ``(scheme, method, Host, request target)``
  and the table, and it replays the per-request parts in ``route``'s order with the same
  Router state: the request id (client ``X-Request-ID`` or 128 bits from the Router's rng),
  then the round-robin pick (``Router._round_robin``);
- which decisions qualify follows what ``decision.Router.route`` reads besides those four
  inputs: ``Content-Length`` (413, so requests with a body always take the full path),
  ``Origin`` (CORS), canary headers/cookies/weight, the affinity cookie and ``now``,
  the client address (source ranges) — locations using any of those are never memoised;
- the memo belongs to one RoutingTable: ``Router.update`` swapping the table empties it.
"""

from __future__ import annotations

from typing import Any

from knet.ingress.decision import Decision, Headers, Request, Router, split_host
from knet.ingress.routes import BadRequest, Location, RoutingTable, Upstream, normalize_uri

MAX_ENTRIES = 1024


class Routed:
    """The per-request view of a memoised decision (the attributes the proxy reads)."""

    __slots__ = ("template", "heads", "status", "location", "response_headers", "upstream",
                 "addresses", "upstream_path", "upstream_host", "request_id",
                 "x_forwarded_prefix", "read_timeout", "connect_timeout", "body_limit")

    def __init__(self, d: Decision, request_id: str, upstream: str | None,
                 heads: dict[Any, Any]) -> None:
        self.template = d
        self.heads = heads  # the proxy's memo of rendered upstream heads (RouteCache.heads)
        self.status = d.status
        self.location = d.location
        self.response_headers = d.response_headers
        self.upstream = upstream
        self.addresses = d.addresses
        self.upstream_path = d.upstream_path
        self.upstream_host = d.upstream_host
        self.request_id = request_id
        self.x_forwarded_prefix = d.x_forwarded_prefix
        self.read_timeout = d.read_timeout
        self.connect_timeout = d.connect_timeout
        self.body_limit = d.body_limit


class RouteCache:
    """``lookup(...)`` → a Routed for a memoised route, else None; then ``route(req, now)``
    runs ``Router.route`` and memoises the decision when it qualifies."""

    __slots__ = ("router", "_table", "_memo", "heads", "hits", "misses")

    def __init__(self, router: Router) -> None:
        self.router = router
        self._table: RoutingTable | None = None
        self._memo: dict[tuple[str, str, str, str],
                         tuple[Decision, Upstream | None]] = {}
        self.heads: dict[Any, Any] = {}  # the proxy's rendered upstream heads, per table
        self.hits = 0
        self.misses = 0

    def lookup(self, scheme: str, method: str, host: str, target: str,
               headers: Headers) -> Routed | None:
        """The memoised decision for a request without a body (None: call ``route``)."""
        router = self.router
        if router.table is not self._table:
            self._reset()
            return None
        entry = self._memo.get((scheme, method, host, target))
        if entry is None or "Content-Length" in headers or "Transfer-Encoding" in headers:
            return None
        self.hits += 1
        d, u = entry
        heads = self.heads
        # decision.Router.route: the request id first, then the balancer
        rid = headers.get("X-Request-ID") or (
            f"{router.rng.getrandbits(128):032x}" if router.table.config.generate_request_id else "")
        if u is None:
            return Routed(d, rid, None, heads)
        ip, port = router._round_robin(u, d.addresses)
        return Routed(d, rid, f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}", heads)

    def route(self, req: Request, *, now: float = 0.0) -> Decision:
        """``Router.route``, remembering the decision when it depends only on the key."""
        self.misses += 1
        router = self.router
        if router.table is not self._table:
            self._reset()
        d = router.route(req, now=now)
        key = (req.scheme, req.method, req.host, req.path)
        if key not in self._memo:
            self._remember(key, req, d)
        return d

    def _remember(self, key: tuple[str, str, str, str], req: Request, d: Decision) -> None:
        if d.status == 400 or "Content-Length" in req.headers or "Transfer-Encoding" in req.headers:
            return
        target = req.path or "/"
        if target.startswith(("http://", "https://")):
            return
        loc = _location(self.router.table, req.host, target)
        if loc is None or loc.render() != d.nginx_location or not _plain(loc):
            return
        u = loc.upstream if d.status == 200 else None
        if d.status == 200 and (u is None or u.name != d.upstream_name or d.canary):
            return
        if len(self._memo) >= MAX_ENTRIES:
            self._memo.clear()
        self._memo[key] = (d, u)

    def _reset(self) -> None:
        self._memo = {}
        self.heads = {}
        self._table = self.router.table


def _location(table: RoutingTable, host_header: str, target: str) -> Location | None:
    raw_uri = target.partition("?")[0].partition("#")[0]
    try:
        uri = normalize_uri(raw_uri)
    except BadRequest:
        return None
    return table.server_for(split_host(host_header)).match(uri)[0]


def _plain(loc: Location) -> bool:
    a = loc.annotations
    u: Any = loc.upstream
    return not (a.cors.enabled or a.allow_source or a.deny_source or a.affinity.kind
                or (u is not None and u.alternative is not None))


__all__ = ["RouteCache", "Routed"]
