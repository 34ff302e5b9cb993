"""Gateway API decisions and status from the reference's tables (shared/reference/gateway-api.md)."""

from __future__ import annotations

from collections import Counter

import pytest
from gateway_factory import ask, cluster, gateway, httproute, namespace, service

from knet.gateway.decision import replace_prefix
from knet.gateway.routes import effective_hostnames, intersect
from knet.gateway.status import status_of
from knet.gateway.view import gateway_objects, tables_for

HTTP = "- {name: http, port: 80, protocol: HTTP}"


def route_status(c, kind, key):
    t = tables_for(c)
    obj = next(o for o in gateway_objects(c) if o.kind == kind and o.metadata.key == key)
    return status_of(t, obj)


def conds(entry):
    return {c["type"]: (c["status"], c["reason"]) for c in entry["conditions"]}


# --- §3 hostname intersection ----------------------------------------------------------------

@pytest.mark.parametrize("listener,routes,served", [
    ("", (), ("",)),
    ("", ("api.shop.test",), ("api.shop.test",)),
    ("api.shop.test", (), ("api.shop.test",)),
    ("api.shop.test", ("*.shop.test",), ("api.shop.test",)),
    ("api.shop.test", ("web.shop.test",), None),
    ("*.shop.test", ("api.shop.test", "x.other.test"), ("api.shop.test",)),
    ("*.shop.test", ("a.b.shop.test",), ("a.b.shop.test",)),
    ("*.shop.test", ("shop.test",), None),
    ("*.shop.test", ("*.shop.test",), ("*.shop.test",)),
    ("*.shop.test", ("*.eu.shop.test",), ("*.eu.shop.test",)),
    ("*.eu.shop.test", ("*.shop.test",), ("*.eu.shop.test",)),
])
def test_hostname_intersection_table(listener, routes, served):
    assert effective_hostnames(listener, routes) == served
    if len(routes) == 1 and listener:
        assert intersect(listener, routes[0]) == (served[0] if served else None)


# --- §5.3 ReplacePrefixMatch ---------------------------------------------------------------

@pytest.mark.parametrize("path,prefix,repl,result", [
    ("/foo/bar", "/foo", "/xyz", "/xyz/bar"), ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
    ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"), ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
    ("/foo", "/foo", "/xyz", "/xyz"), ("/foo/", "/foo", "/xyz", "/xyz/"),
    ("/foo/bar", "/foo", "", "/bar"), ("/foo/", "/foo", "", "/"), ("/foo", "/foo", "", "/"),
    ("/foo/", "/foo", "/", "/"), ("/foo", "/foo", "/", "/"),
])
def test_replace_prefix_match_table(path, prefix, repl, result):
    assert replace_prefix(path, prefix, repl) == result


# --- §4 matching and precedence -----------------------------------------------------------

@pytest.fixture(scope="module")
def shop():
    return cluster(
        gateway(HTTP), service("web"), service("api"), service("exact"), service("hdr"),
        httproute("a-prefix", """
          parentRefs: [{name: gw}]
          rules:
          - matches: [{path: {type: PathPrefix, value: /abc}}]
            backendRefs: [{name: web, port: 80}]
          - matches: [{path: {type: PathPrefix, value: /}}]
            backendRefs: [{name: web, port: 80}]
        """, created="2026-01-01T00:00:00Z"),
        httproute("b-exact", """
          parentRefs: [{name: gw}]
          rules:
          - matches: [{path: {type: Exact, value: /abc}}]
            backendRefs: [{name: exact, port: 80}]
          - matches: [{path: {value: /abc/def}, method: POST}]
            backendRefs: [{name: api, port: 80}]
          - matches: [{path: {value: /abc/def}, headers: [{name: x-v, value: "2"}]}]
            backendRefs: [{name: hdr, port: 80}]
          - matches: [{path: {value: /q}, queryParams: [{name: v, value: "1"}]}]
            backendRefs: [{name: hdr, port: 80}]
        """, created="2026-01-01T00:00:00Z"),
        httproute("c-host", """
          parentRefs: [{name: gw}]
          hostnames: [api.shop.test]
          rules:
          - matches: [{path: {value: /}}]
            backendRefs: [{name: api, port: 80}]
        """, created="2026-01-02T00:00:00Z"),
    )


@pytest.mark.parametrize("path,host,method,headers,route,backend", [
    ("/abc", "x.test", "GET", (), "HTTPRoute default/b-exact", "default/exact:80"),  # 2. Exact
    ("/abc/", "x.test", "GET", (), "HTTPRoute default/a-prefix", "default/web:80"),
    ("/abcd", "x.test", "GET", (), "HTTPRoute default/a-prefix", "default/web:80"),  # element-wise
    ("/abc/def", "x.test", "POST", (("X-V", "2"),), "HTTPRoute default/b-exact", "default/api:80"),  # 4. method
    ("/abc/def", "x.test", "GET", (("X-V", "2"),), "HTTPRoute default/b-exact", "default/hdr:80"),  # 5.
    ("/abc/def", "x.test", "GET", (("X-V", "3"),), "HTTPRoute default/a-prefix", "default/web:80"),
    ("/q?v=1&v=2", "x.test", "GET", (), "HTTPRoute default/b-exact", "default/hdr:80"),  # first value
    ("/q?v=2&v=1", "x.test", "GET", (), "HTTPRoute default/a-prefix", "default/web:80"),
    ("/abc", "API.shop.test:8080", "GET", (), "HTTPRoute default/c-host", "default/api:80"),  # 1.
])
def test_precedence(shop, path, host, method, headers, route, backend):
    d = ask(shop, path, host, method, headers)
    assert (d.status, d.route, d.backend) == (200, route, backend), d.to_json()
    assert d.request["path"] == path and d.request["host"] == host


def test_age_then_name_break_ties_and_hostname_less_route_ties_listener_hostname():
    listener = "- {name: a, port: 80, protocol: HTTP, hostname: a.test}"
    for older, name_first in ((None, "r-a"), ("r-b", "r-b")):
        ts = {"r-a": "2026-01-02T00:00:00Z", "r-b": "2026-01-02T00:00:00Z"}
        if older:
            ts[older] = "2026-01-01T00:00:00Z"
        c = cluster(gateway(listener), service("one"), service("two"),
                    httproute("r-b", "parentRefs: [{name: gw}]\nrules: [{backendRefs: "
                                     "[{name: two, port: 80}]}]", created=ts["r-b"]),
                    httproute("r-a", "parentRefs: [{name: gw}]\nhostnames: [a.test]\nrules: "
                                     "[{backendRefs: [{name: one, port: 80}]}]", created=ts["r-a"]))
        assert ask(c, "/", "a.test").route == f"HTTPRoute default/{name_first}"


def test_listener_selection_and_isolation():
    c = cluster(gateway("""
      - {name: exact, port: 80, protocol: HTTP, hostname: api.shop.test}
      - {name: wild, port: 80, protocol: HTTP, hostname: "*.shop.test"}
      - {name: any, port: 80, protocol: HTTP}
    """), service("web"),
        httproute("wild", "parentRefs: [{name: gw, sectionName: wild}]\n"
                          "rules: [{backendRefs: [{name: web, port: 80}]}]"),
        httproute("exact", "parentRefs: [{name: gw, sectionName: exact}]\nrules: "
                           "[{matches: [{path: {value: /only}}], backendRefs: [{name: web, port: 80}]}]"))
    assert ask(c, "/only", "api.shop.test").listener == "exact"
    d = ask(c, "/other", "api.shop.test")  # no fall-through to the wildcard listener
    assert (d.status, d.listener) == (404, "exact")
    assert ask(c, "/x", "a.b.shop.test").route == "HTTPRoute default/wild"
    d = ask(c, "/x", "shop.test")  # the wildcard needs one more label: the catch-all listener
    assert (d.status, d.listener) == (404, "any")


# --- §5 filters -----------------------------------------------------------------------------

@pytest.mark.parametrize("cfg,port,location", [
    ("{}", 80, "http://shop.test/p?q=1"),
    ("{}", 8080, "http://shop.test:8080/p?q=1"),
    ("{scheme: https}", 8080, "https://shop.test/p?q=1"),
    ("{scheme: https, port: 8443}", 80, "https://shop.test:8443/p?q=1"),
    ("{hostname: x.test, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /n}}",
     80, "http://x.test/n?q=1"),
])
def test_redirect_location(cfg, port, location):
    c = cluster(gateway(f"- {{name: l, port: {port}, protocol: HTTP}}"),
                httproute("r", f"parentRefs: [{{name: gw}}]\nrules: [{{filters: [{{type: "
                               f"RequestRedirect, requestRedirect: {cfg}}}]}}]"))
    d = ask(c, "/p?q=1", f"shop.test:{port}")
    assert d.location == location and d.status in (301, 302) and d.backend is None


def test_header_modifiers_rewrite_mirror_and_backend_filters():
    c = cluster(gateway(HTTP), service("web"), service("shadow"), httproute("r", """
      parentRefs: [{name: gw}]
      rules:
      - matches: [{path: {value: /app}}]
        filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: X-Set, value: s}]
            add: [{name: X-Add, value: b}]
            remove: [X-Gone]
        - type: ResponseHeaderModifier
          responseHeaderModifier: {add: [{name: X-Resp, value: r}]}
        - type: URLRewrite
          urlRewrite: {hostname: internal.test, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
        - type: RequestMirror
          requestMirror: {backendRef: {name: shadow, port: 80}}
        backendRefs:
        - name: web
          port: 80
          filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: X-Backend, value: web}]}}]
    """))
    d = ask(c, "/app/x?y=1", "shop.test", headers=[("X-Set", "old"), ("X-Add", "a"), ("X-Gone", "1")])
    assert d.status == 200 and d.mirrors == ["default/shadow:80"]
    assert d.request == {"method": "GET", "path": "/x?y=1", "host": "internal.test",
                         "headers": {"X-Add": "a,b", "X-Set": "s", "X-Backend": "web"}}
    assert d.response_headers == {"X-Resp": "r"}


def test_cors_preflight_answered_by_the_gateway():
    c = cluster(gateway(HTTP), service("web"), httproute("r", """
      parentRefs: [{name: gw}]
      rules:
      - filters:
        - type: CORS
          cors: {allowOrigins: ["https://*.shop.test"], allowMethods: [GET, PUT], allowCredentials: true}
        backendRefs: [{name: web, port: 80}]
    """))
    pre = [("Origin", "https://a.shop.test"), ("Access-Control-Request-Method", "PUT")]
    d = ask(c, "/", "shop.test", "OPTIONS", pre)
    assert d.status == 200 and d.backend is None
    assert d.response_headers["access-control-allow-origin"] == "https://a.shop.test"
    assert d.response_headers["access-control-allow-credentials"] == "true"
    assert d.response_headers["access-control-allow-methods"] == "GET, PUT"
    d = ask(c, "/", "shop.test", "OPTIONS", [("Origin", "https://evil.test"),
                                             ("Access-Control-Request-Method", "PUT")])
    assert d.status == 200 and "access-control-allow-origin" not in d.response_headers
    d = ask(c, "/", "shop.test", "GET", [("Origin", "https://a.shop.test")])
    assert d.status == 200 and d.backend == "default/web:80"


# --- §6 backends and failure codes --------------------------------------------------------------

def test_weights_invalid_share_500_and_no_endpoints_503():
    c = cluster(gateway(HTTP), service("web"), service("idle", replicas=0), httproute("r", """
      parentRefs: [{name: gw}]
      rules:
      - matches: [{path: {value: /w}}]
        backendRefs: [{name: web, port: 80, weight: 3}, {name: missing, port: 80, weight: 1}]
      - matches: [{path: {value: /idle}}]
        backendRefs: [{name: idle, port: 80}]
      - matches: [{path: {value: /none}}]
      - matches: [{path: {value: /zero}}]
        backendRefs: [{name: web, port: 80, weight: 0}]
    """))
    t = tables_for(c)
    codes = Counter(ask(c, "/w", "a", tables=t, seed=s).status for s in range(2000))
    assert codes.keys() == {200, 500} and 0.2 < codes[500] / 2000 < 0.3
    assert [ask(c, p, "a", tables=t).status for p in ("/idle", "/none", "/zero")] == [503, 500, 500]
    # deterministic: the same seed picks the same backends
    assert [ask(c, "/w", "a", tables=t, seed=s).backend for s in range(20)] == \
        [ask(c, "/w", "a", tables=t, seed=s).backend for s in range(20)]
    st = route_status(c, "HTTPRoute", "default/r")["parents"][0]
    assert conds(st) == {"Accepted": ("True", "Accepted"),
                         "ResolvedRefs": ("False", "BackendNotFound")}


# --- §3, §7, §8 attachment, ReferenceGrant and status -------------------------------------------

def test_route_status_reasons():
    c = cluster(
        namespace("shop", team="shop"), namespace("other"),
        gateway("""
          - {name: same, port: 80, protocol: HTTP, hostname: a.test}
          - name: sel
            port: 8080
            protocol: HTTP
            allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: shop}}}}
        """),
        httproute("host", "parentRefs: [{name: gw, sectionName: same}]\nhostnames: [b.test]"),
        httproute("nosection", "parentRefs: [{name: gw, sectionName: nope}]"),
        httproute("notallowed", "parentRefs: [{name: gw, namespace: default, sectionName: same}]",
                  ns="other"),
        httproute("selected", "parentRefs: [{name: gw, namespace: default}]", ns="shop"),
        httproute("kind", "parentRefs: [{name: gw}]\nrules: [{backendRefs: [{group: example.com, "
                          "kind: Thing, name: t}]}]"),
        httproute("xns", "parentRefs: [{name: gw}]\nrules: [{backendRefs: [{name: web, namespace: "
                         "shop, port: 80}]}]"),
        service("web", ns="shop"),
    )
    want = {
        "default/host": ("Accepted", "False", "NoMatchingListenerHostname"),
        "default/nosection": ("Accepted", "False", "NoMatchingParent"),
        "other/notallowed": ("Accepted", "False", "NotAllowedByListeners"),
        "shop/selected": ("Accepted", "True", "Accepted"),
        "default/kind": ("ResolvedRefs", "False", "InvalidKind"),
        "default/xns": ("ResolvedRefs", "False", "RefNotPermitted"),
    }
    for key, (ctype, status, reason) in want.items():
        (parent,) = route_status(c, "HTTPRoute", key)["parents"]
        assert conds(parent)[ctype] == (status, reason), key
        assert all(x["observedGeneration"] == 1 for x in parent["conditions"])
    gw = next(o for o in gateway_objects(c) if o.kind == "Gateway")
    st = status_of(tables_for(c), gw)
    attached = {ls["name"]: ls["attachedRoutes"] for ls in st["listeners"]}
    assert attached == {"same": 2, "sel": 1}  # default is not selected by sel: kind, xns on same


def test_reference_grant_allows_and_revocation_is_a_500():
    grant = """
    apiVersion: gateway.networking.k8s.io/v1beta1
    kind: ReferenceGrant
    metadata: {name: allow, namespace: shop}
    spec:
      from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
      to: [{group: "", kind: Service}]
    """
    docs = [gateway(HTTP), service("web", ns="shop"), namespace("shop"),
            httproute("r", "parentRefs: [{name: gw}]\nrules: [{backendRefs: [{name: web, "
                           "namespace: shop, port: 80}]}]")]
    with_grant = cluster(*docs, grant)
    assert ask(with_grant, "/", "a").status == 200
    (p,) = route_status(with_grant, "HTTPRoute", "default/r")["parents"]
    assert conds(p)["ResolvedRefs"] == ("True", "ResolvedRefs")
    without = cluster(*docs)
    assert ask(without, "/", "a").status == 500


def test_gateway_and_listener_conditions():
    c = cluster(
        gateway("""
          - {name: a, port: 80, protocol: HTTP}
          - {name: b, port: 80, protocol: HTTPS, tls: {certificateRefs: [{name: nope}]}}
          - {name: c, port: 9000, protocol: UDP}
          - {name: d, port: 8081, protocol: HTTP, allowedRoutes: {kinds: [{kind: TLSRoute}]}}
        """))
    gw = next(o for o in gateway_objects(c) if o.kind == "Gateway")
    st = status_of(tables_for(c), gw)
    assert conds(st)["Accepted"] == ("True", "ListenersNotValid")
    assert conds(st)["Programmed"] == ("True", "Programmed") and st["addresses"]
    by = {ls["name"]: (conds(ls), ls["supportedKinds"]) for ls in st["listeners"]}
    assert by["a"][0]["Conflicted"] == ("True", "ProtocolConflict")
    assert by["b"][0]["ResolvedRefs"] == ("False", "InvalidCertificateRef")
    assert by["c"][0]["Accepted"] == ("False", "UnsupportedProtocol")
    assert by["d"][0]["ResolvedRefs"] == ("False", "InvalidRouteKinds") and by["d"][1] == []
    assert by["d"][0]["Programmed"] == ("False", "Invalid")
