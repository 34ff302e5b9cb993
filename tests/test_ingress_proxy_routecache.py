"""The proxy's route memo answers exactly like Router.route, request after request (same rng)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from ingress_factory import NGINX_CLASS, ingress, path, service, slice_
from multidict import CIMultiDict

from knet.ingress import Router, build_table, make_request, upstream_headers
from knet.ingress.routecache import RouteCache

A = "nginx.ingress.kubernetes.io/"


def table():
    ings = [
        ingress("plain", [("a.test", [path("/", "web"), path("/api", "api", pt="Exact")])]),
        ingress("tls", [("s.test", [path("/", "web")])], tls=[(["s.test"], "s-tls")]),
        ingress("rw", [("rw.test", [path("/app(/|$)(.*)", "api", pt="ImplementationSpecific")])],
                annotations={A + "rewrite-target": "/$2", A + "x-forwarded-prefix": "/app"}),
        ingress("redir", [("r.test", [path("/", "web")])],
                annotations={A + "permanent-redirect": "https://elsewhere.test/x"}),
        ingress("root", [("root.test", [path("/", "web")])], annotations={A + "app-root": "/home"}),
        ingress("cors", [("c.test", [path("/", "web")])], annotations={A + "enable-cors": "true"}),
        ingress("sticky", [("k.test", [path("/", "web")])],
                annotations={A + "affinity": "cookie"}),
        ingress("allow", [("ip.test", [path("/", "web")])],
                annotations={A + "whitelist-source-range": "10.0.0.0/8"}),
        ingress("main", [("cn.test", [path("/", "cmain")])]),
        ingress("canary", [("cn.test", [path("/", "api")])],
                annotations={A + "canary": "true", A + "canary-by-header": "X-Canary",
                             A + "canary-weight": "30"}),
        ingress("gone", [("g.test", [path("/", "nosuch"), path("/empty", "empty")])]),
        ingress("small", [("b.test", [path("/", "web")])], annotations={A + "proxy-body-size": "10"}),
    ]
    services = [service("web", [(80, "http", 8080)]), service("api", [(80, "http", 9090)]),
                service("empty", [(80, "http", 7070)]), service("cmain", [(80, "http", 8080)])]
    slices = [slice_("web", ["10.244.0.5", "10.244.1.5", "10.244.2.5"], port=8080),
              slice_("api", ["10.244.0.9", "10.244.1.9"], port=9090),
              slice_("cmain", ["10.244.3.5"], port=8080)]
    return build_table(ings, [NGINX_CLASS], services, slices)


TABLE = table()
HOSTS = ["a.test", "A.test:80", "s.test", "rw.test", "r.test", "root.test", "c.test", "k.test",
         "ip.test", "cn.test", "g.test", "b.test", "nobody.test", "bad host", ""]
PATHS = ["/", "/api", "/api/", "/x?q=1", "/app/items/9?z=2", "/app", "/empty", "/../x", "/a%2Fb",
         "http://a.test/abs", "/home"]
HEADERS = [("X-Request-ID", "client-id"), ("Origin", "https://o.test"), ("X-Canary", "always"),
           ("X-Canary", "never"), ("Cookie", "INGRESSCOOKIE=nope"), ("Content-Length", "20"),
           ("Content-Length", "5"), ("X-Forwarded-For", "6.6.6.6"), ("Upgrade", "websocket")]

request = st.tuples(
    st.sampled_from(["GET", "HEAD", "OPTIONS", "POST"]), st.sampled_from(HOSTS),
    st.sampled_from(PATHS), st.sampled_from(["http", "https"]),
    st.sampled_from(["127.0.0.1", "10.1.2.3"]),
    st.lists(st.sampled_from(HEADERS), max_size=3, unique_by=lambda kv: kv[0]))

FIELDS = ("status", "location", "response_headers", "upstream", "addresses", "upstream_path",
          "upstream_host", "request_id", "x_forwarded_prefix", "read_timeout",
          "connect_timeout", "body_limit")


@settings(max_examples=150, deadline=None)
@given(st.lists(request, min_size=1, max_size=40), st.integers(0, 5))
def test_memo_equals_router(reqs, seed):
    ref = Router(TABLE, random.Random(seed))
    memo = RouteCache(Router(TABLE, random.Random(seed)))
    for method, host, target, scheme, ip, hdrs in reqs + reqs:  # the second pass hits the memo
        headers = CIMultiDict(hdrs)
        if host:
            headers["Host"] = host
        req = make_request(method, host, target, headers, scheme=scheme, client_ip=ip)
        want = ref.route(req, now=100.0)
        got = memo.lookup(scheme, method, host, target, headers) or memo.route(req, now=100.0)
        for f in FIELDS:
            assert getattr(got, f) == getattr(want, f), (f, req)
        if want.status == 200:
            assert upstream_headers(req, got, TABLE.config) == upstream_headers(req, want, TABLE.config)
    assert ref.rng.getstate() == memo.router.rng.getstate()
    assert ref._rr == memo.router._rr
    assert memo.hits or not any(
        r[:3] in (("GET", "a.test", "/"), ("GET", "r.test", "/x?q=1"), ("GET", "rw.test", "/app"))
        and "Content-Length" not in dict(r[5]) for r in reqs)


def test_memo_hits_plain_routes_only_and_follows_table_updates():
    memo = RouteCache(Router(TABLE, random.Random(1)))
    for host in ("a.test", "c.test", "k.test", "ip.test", "cn.test"):
        h = CIMultiDict(Host=host)
        assert memo.lookup("http", "GET", host, "/", h) is None
        memo.route(make_request("GET", host, "/", h))
    hits = {host for host in ("a.test", "c.test", "k.test", "ip.test", "cn.test")
            if memo.lookup("http", "GET", host, "/", CIMultiDict(Host=host)) is not None}
    assert hits == {"a.test"}  # CORS, affinity, source ranges, canary: always the full path
    assert memo.lookup("http", "GET", "a.test", "/", CIMultiDict(Host="a.test", **{"Content-Length": "1"})) is None
    memo.router.update(table())
    assert memo.lookup("http", "GET", "a.test", "/", CIMultiDict(Host="a.test")) is None
