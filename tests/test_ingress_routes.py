"""Ingress matching: the Kubernetes docs tables, hosts, precedence, merging, classes, fallbacks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingress_factory import NGINX_CLASS, World, backend, ingress, path
from knet.ingress import ControllerConfig, claims, normalize_uri
from knet.ingress.routes import BadRequest
from knet.model import IngressBackend, IngressClass, ObjectMeta

# K8S-DOC "Examples" (reference §4), verbatim. ``None`` = default backend (404).
# The rows "Prefix /foo/ vs /foo" and "/aaa/bbb/ vs /aaa/bbb" hold with the default
# (spec) setting; ingress-nginx's 301 is covered below.
DOC_EXAMPLES = [
    ("Prefix", ["/"], ["/", "/x", "/aaa/bbb", "/foo/"], "/"),
    ("Exact", ["/foo"], ["/foo"], "/foo"),
    ("Exact", ["/foo"], ["/bar"], None),
    ("Exact", ["/foo"], ["/foo/"], None),
    ("Exact", ["/foo/"], ["/foo"], None),
    ("Prefix", ["/foo"], ["/foo", "/foo/"], "/foo"),
    ("Prefix", ["/foo/"], ["/foo", "/foo/"], "/foo/"),
    ("Prefix", ["/aaa/bb"], ["/aaa/bbb"], None),
    ("Prefix", ["/aaa/bbb"], ["/aaa/bbb"], "/aaa/bbb"),
    ("Prefix", ["/aaa/bbb/"], ["/aaa/bbb"], "/aaa/bbb/"),
    ("Prefix", ["/aaa/bbb"], ["/aaa/bbb/"], "/aaa/bbb"),
    ("Prefix", ["/aaa/bbb"], ["/aaa/bbb/ccc"], "/aaa/bbb"),
    ("Prefix", ["/aaa/bbb"], ["/aaa/bbbxyz"], None),
    ("Prefix", ["/", "/aaa"], ["/aaa/ccc"], "/aaa"),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], ["/aaa/bbb"], "/aaa/bbb"),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], ["/ccc"], "/"),
    ("Prefix", ["/aaa"], ["/ccc"], None),
]


def _svc_name(p: str) -> str:
    return "s" + p.replace("/", "-").rstrip("-") if p != "/" else "root"


@pytest.mark.parametrize("kind,paths,requests,expected", DOC_EXAMPLES)
@pytest.mark.parametrize("pt_for_prefix", ["Prefix", "ImplementationSpecific"])
def test_doc_path_examples(kind, paths, requests, expected, pt_for_prefix):
    pt = pt_for_prefix if kind == "Prefix" else kind
    w = World(ingress("ing", [("foo.com", [path(p, _svc_name(p), 80, pt) for p in paths])]))
    for p in paths:
        w.svc(_svc_name(p))
    for r in requests:
        d = w.route("foo.com", r)
        if expected is None:
            assert d.status == 404 and d.service is None and d.ingress is None, (r, d)
        else:
            assert d.status == 200, (r, d)
            assert d.service == f"default/{_svc_name(expected)}:80", (r, d)
            assert d.path == expected and d.ingress == "default/ing"


def test_doc_mixed_prefers_exact():
    w = World(ingress("ing", [("foo.com", [path("/foo", "pre"), path("/foo", "ex", pt="Exact")])]))
    w.svc("pre").svc("ex")
    assert w.route("foo.com", "/foo").service == "default/ex:80"
    assert w.route("foo.com", "/foo/").service == "default/pre:80"
    assert w.route("foo.com", "/foo/x").service == "default/pre:80"


def test_nginx_trailing_slash_redirect_option():
    w = World(ingress("ing", [("foo.com", [path("/aaa/bbb/", "b")])]),
              config=ControllerConfig(nginx_trailing_slash_redirect=True))
    w.svc("b")
    d = w.route("foo.com:8080", "/aaa/bbb?x=1")
    assert d.status == 301 and d.location == "http://foo.com/aaa/bbb/?x=1"
    assert w.route("foo.com", "/aaa/bbb/").status == 200


WILDCARD = [
    ("bar.foo.com", 200),
    ("baz.bar.foo.com", 404),
    ("foo.com", 404),
    ("BAR.Foo.COM:443", 200),
    ("bar.foo.com.", 200),
]


@pytest.mark.parametrize("host,status", WILDCARD)
def test_wildcard_table(host, status):
    w = World(ingress("ing", [("*.foo.com", [path("/", "wild")])]))
    w.svc("wild")
    d = w.route(host, "/x")
    assert d.status == status
    if status == 200:
        assert d.service == "default/wild:80" and d.rule_host == "*.foo.com"


def _storefront() -> World:
    store = ingress("storefront", [
        ("shop.example.com", [path("/", "frontend"), path("/api", "api", "http"),
                              path("/api/v2/status", "status", 8080, "Exact")]),
        ("*.example.com", [path("/", "landing")]),
    ], ns="shop", created="2024-01-01T00:00:00Z")
    promo = ingress("promo", [("shop.example.com", [path("/api", "promo-api")])], ns="shop",
                    created="2024-02-01T00:00:00Z")
    w = World(promo, store)
    w.svc("frontend", ns="shop").svc("landing", ns="shop").svc("promo-api", ns="shop")
    w.svc("api", ns="shop", ports=[(8000, "http", 9000)])
    w.svc("status", ns="shop", ports=[(8080, "", 8080)])
    return w


WORKED = [
    ("shop.example.com", "/api/orders?id=7", "shop/api:8000"),
    ("shop.example.com", "/apiary", "shop/frontend:80"),
    ("shop.example.com", "/api/v2/status", "shop/status:8080"),
    ("shop.example.com", "/api/v2/status/", "shop/api:8000"),
    ("shop.example.com", "/API/orders", "shop/frontend:80"),
    ("SHOP.Example.COM:8443", "/api", "shop/api:8000"),
    ("blog.example.com", "/anything", "shop/landing:80"),
    ("a.blog.example.com", "/", None),
    ("example.com", "/", None),
]


@pytest.mark.parametrize("host,p,service", WORKED)
def test_worked_example(host, p, service):
    d = _storefront().route(host, p)
    if service is None:
        assert d.status == 404 and d.service is None
    else:
        assert (d.status, d.service) == (200, service)
        assert d.ingress == "shop/storefront"
        assert d.upstream_path == p


def test_named_port_resolves_to_number_and_endpoint():
    d = _storefront().route("shop.example.com", "/api")
    assert d.service == "shop/api:8000" and d.upstream == "10.244.0.5:9000"


def test_duplicate_path_oldest_wins_and_ties_by_name_descending():
    a = ingress("a", [("h.com", [path("/x", "sa")])], created="2024-01-01T00:00:00Z")
    b = ingress("b", [("h.com", [path("/x", "sb")])], created="2024-01-01T00:00:00Z")
    c = ingress("c", [("h.com", [path("/x", "sc")])], created="2023-01-01T00:00:00Z")
    w = World(a, b).svc("sa").svc("sb").svc("sc")
    assert w.route("h.com", "/x").service == "default/sb:80"  # namespace/name descending
    w = World(a, b, c).svc("sa").svc("sb").svc("sc")
    assert w.route("h.com", "/x").service == "default/sc:80"  # oldest
    # no timestamps: creation order (file order)
    a2 = ingress("a", [("h.com", [path("/x", "sa")])], index=2)
    b2 = ingress("b", [("h.com", [path("/x", "sb")])], index=1)
    assert World(a2, b2).svc("sa").svc("sb").route("h.com", "/x").service == "default/sb:80"


def test_merge_across_namespaces():
    one = ingress("one", [("h.com", [path("/a", "web")])], ns="ns1", index=0)
    two = ingress("two", [("h.com", [path("/b", "web")])], ns="ns2", index=1)
    w = World(one, two).svc("web", ns="ns1", ips=["10.0.0.1"]).svc("web", ns="ns2", ips=["10.0.0.2"])
    assert (w.route("h.com", "/a").service, w.route("h.com", "/a").upstream) == ("ns1/web:80", "10.0.0.1:8080")
    assert (w.route("h.com", "/b/c").ingress, w.route("h.com", "/b/c").upstream) == ("ns2/two", "10.0.0.2:8080")


def test_hostless_rules_catch_other_hosts_but_known_host_never_falls_through():
    w = World(ingress("i", [("first.bar.com", [path("/", "s1")]),
                            ("second.bar.com", [path("/only", "s2")]),
                            ("", [path("/", "s3")])]))
    w.svc("s1").svc("s2").svc("s3")
    assert w.route("first.bar.com", "/x").service == "default/s1:80"
    assert w.route("other.com", "/x").service == "default/s3:80"
    assert w.route("", "/x").service == "default/s3:80"
    d = w.route("second.bar.com", "/x")  # host matched, path not: no fall-through to "_"
    assert d.status == 404 and d.server == "second.bar.com"


def test_exact_host_beats_wildcard():
    w = World(ingress("i", [("*.foo.com", [path("/", "wild")]), ("a.foo.com", [path("/", "exact")])]))
    w.svc("wild").svc("exact")
    assert w.route("a.foo.com", "/").service == "default/exact:80"
    assert w.route("b.foo.com", "/").service == "default/wild:80"


def test_default_backend_scoped_to_own_hosts():
    with_rules = ingress("r", [("a.com", [path("/app", "app")])], default=backend("fallback"))
    w = World(with_rules).svc("app").svc("fallback")
    assert w.route("a.com", "/other").service == "default/fallback:80"
    assert w.route("a.com", "/other").status == 200
    assert w.route("b.com", "/other").status == 404  # issue #8823


def test_ruleless_default_backend_is_catch_all_oldest_wins():
    old = ingress("old", default=backend("d1"), created="2023-01-01T00:00:00Z")
    new = ingress("new", default=backend("d2"), created="2024-01-01T00:00:00Z")
    w = World(new, old, ingress("r", [("a.com", [path("/x", "x")])], created="2025-01-01T00:00:00Z"))
    w.svc("d1").svc("d2").svc("x")
    d = w.route("anything.org", "/q")
    assert (d.status, d.service, d.ingress) == (200, "default/d1:80", "default/old")
    assert w.route("a.com", "/y").status == 404  # a.com's own server: no defaultBackend


def test_missing_service_and_no_endpoints_are_503():
    w = World(ingress("i", [("h.com", [path("/gone", "gone"), path("/empty", "empty"),
                                       path("/badport", "bp", 9999)])]))
    w.svc("empty", ips=[]).svc("bp")
    d = w.route("h.com", "/gone")
    assert (d.status, d.service, d.reason) == (503, "default/gone:80", "service not found")
    assert w.route("h.com", "/empty").status == 503
    assert w.route("h.com", "/badport").status == 503


def test_not_ready_endpoints_excluded():
    from ingress_factory import slice_
    w = World(ingress("i", [("h.com", [path("/", "web")])]))
    w.svc("web", ips=[])
    w.slices.append(slice_("web", ["10.1.1.1"], ready=False))
    assert w.route("h.com", "/").status == 503


def test_resource_backend_is_skipped():
    res = IngressBackend(resource_api_group="k8s.example.com", resource_kind="StorageBucket",
                         resource_name="static")
    from knet.model import HTTPIngressPath
    w = World(ingress("i", [("h.com", [HTTPIngressPath("/static", "Prefix", res), path("/", "web")])]))
    w.svc("web")
    assert w.route("h.com", "/static/x").service == "default/web:80"


def test_query_never_takes_part_and_uri_normalisation():
    w = World(ingress("i", [("h.com", [path("/a/b", "ab", pt="Exact"), path("/", "root")])]))
    w.svc("ab").svc("root")
    assert w.route("h.com", "/a/b?x=/a/c").service == "default/ab:80"
    d = w.route("h.com", "/a//x/../b")
    assert d.service == "default/ab:80" and d.upstream_path == "/a//x/../b"  # raw URI forwarded
    assert w.route("h.com", "/a%2Fb").service == "default/ab:80"
    assert w.route("h.com", "/../etc").status == 400


def test_absolute_form_target_takes_host():
    w = World(ingress("i", [("h.com", [path("/", "web")])])).svc("web")
    d = w.route("other.com", "http://h.com/x?y=1")
    assert d.service == "default/web:80" and d.upstream_path == "/x?y=1"


@pytest.mark.parametrize("raw,norm", [
    ("/", "/"), ("//", "/"), ("/a/./b", "/a/b"), ("/a/b/..", "/a/"), ("/a/%2e%2e/b", "/b"),
    ("/a//b///c/", "/a/b/c/"), ("/%41", "/A"),
])
def test_normalize_uri(raw, norm):
    assert normalize_uri(raw) == norm


@given(st.lists(st.sampled_from(["a", "b", "..", ".", "", "%2F", "c%20d"]), max_size=8))
@settings(max_examples=150, deadline=None)
def test_normalize_uri_never_escapes_root(segs):
    raw = "/" + "/".join(segs)
    try:
        n = normalize_uri(raw)
    except BadRequest:
        return
    assert n.startswith("/") and "//" not in n and "/../" not in n and not n.endswith("/..")


# --- IngressClass ---------------------------------------------------------------------------

OTHER = IngressClass(ObjectMeta(name="traefik"), controller="traefik.io/ingress-controller")
DEFAULT_NGINX = IngressClass(ObjectMeta(name="nginx", annotations={
    "ingressclass.kubernetes.io/is-default-class": "true"}), controller="k8s.io/ingress-nginx")
DEFAULT_OTHER = IngressClass(ObjectMeta(name="traefik", annotations={
    "ingressclass.kubernetes.io/is-default-class": "true"}), controller="traefik.io/ingress-controller")
LEGACY = "kubernetes.io/ingress.class"


@pytest.mark.parametrize("cls,ann,classes,cfg,expected", [
    ("nginx", None, [NGINX_CLASS], {}, True),
    ("traefik", None, [NGINX_CLASS, OTHER], {}, False),
    ("missing", None, [NGINX_CLASS], {}, False),
    (None, "nginx", [NGINX_CLASS], {}, True),
    (None, "traefik", [NGINX_CLASS], {}, False),
    ("traefik", "nginx", [NGINX_CLASS, OTHER], {}, False),  # field first (ingress-nginx code)
    ("nginx", "traefik", [NGINX_CLASS, OTHER], {}, True),
    (None, None, [NGINX_CLASS], {}, False),
    (None, None, [DEFAULT_NGINX], {}, True),
    (None, None, [DEFAULT_OTHER, NGINX_CLASS], {}, False),
    (None, None, [DEFAULT_NGINX, DEFAULT_OTHER], {}, False),
    (None, None, [NGINX_CLASS], {"watch_ingress_without_class": True}, True),
])
def test_ingress_class_selection(cls, ann, classes, cfg, expected):
    ing = ingress("i", [("h.com", [path("/", "web")])], cls=cls,
                  annotations={LEGACY: ann} if ann else None)
    config = ControllerConfig(**cfg)
    assert claims(ing, classes, config) is expected
    w = World(ing, classes=tuple(classes), config=config).svc("web")
    assert (w.route("h.com", "/").status == 200) is expected


def test_other_class_does_not_affect_routing():
    mine = ingress("mine", [("h.com", [path("/", "web")])], created="2024-01-01T00:00:00Z")
    theirs = ingress("theirs", [("h.com", [path("/", "evil")])], cls="traefik",
                     created="2020-01-01T00:00:00Z")
    w = World(mine, theirs, classes=(NGINX_CLASS, OTHER)).svc("web").svc("evil")
    assert w.route("h.com", "/").service == "default/web:80"


# --- locations ------------------------------------------------------------------------------

def test_nginx_locations_rendered_like_ingress_nginx():
    w = _storefront()
    srv = w.router().table.server_for("shop.example.com")
    assert [loc.render() for loc in srv.locations] == [
        "location = /api/v2/status", "location /api/", "location = /api", "location /"]


def test_regex_mode_whole_host_first_match():
    rx = ingress("rx", [("h.com", [path("/foo/bar/[A-Z0-9]{3}", "regex", pt="ImplementationSpecific")])],
                 annotations={"nginx.ingress.kubernetes.io/use-regex": "true"}, index=0)
    plain = ingress("plain", [("h.com", [path("/foo/bar/bar", "plain"), path("/app", "app")])], index=1)
    w = World(rx, plain).svc("regex").svc("plain").svc("app")
    # the documented pitfall: the regex beats the longer-looking literal path
    assert w.route("h.com", "/foo/bar/bar").service == "default/regex:80"
    assert w.route("h.com", "/FOO/BAR/ABC").service == "default/regex:80"  # ~* is case-insensitive
    assert w.route("h.com", "/app").service == "default/app:80"
    # Prefix /app expands to "/app/" and "= /app", both become ~* "^/app…": a string prefix
    assert w.route("h.com", "/appx").service == "default/app:80"
    srv = w.router().table.server_for("h.com")
    assert srv.regex_mode and [loc.render() for loc in srv.locations][:2] == [
        'location ~* "^/foo/bar/[A-Z0-9]{3}"', 'location ~* "^/foo/bar/bar/"']
