"""ingress-nginx annotations: rewrite, redirects, ssl-redirect, canary, affinity, CORS, ranges…"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from ingress_factory import World, ingress, path
from knet.ingress import ControllerConfig, route_request, upstream_headers, make_request
from knet.ingress.annotations import parse_annotations

A = "nginx.ingress.kubernetes.io/"


def one(annotations: dict[str, str], paths=None, host="h.com", tls=None, **kw) -> World:
    ing = ingress("i", [(host, paths or [path("/", "web")])],
                  annotations={A + k: v for k, v in annotations.items()}, tls=tls, **kw)
    return World(ing).svc("web", ips=["10.0.0.1", "10.0.0.2", "10.0.0.3"])


@pytest.mark.parametrize("p,target,request_path,upstream", [
    ("/store(/|$)(.*)", "/$2", "/store", "/"),
    ("/store(/|$)(.*)", "/$2", "/store/", "/"),
    ("/store(/|$)(.*)", "/$2", "/store/items/9?x=1", "/items/9?x=1"),
    ("/app", "/", "/app/x", "/"),
    ("/legacy/api/(.+)", "/v2/$1", "/legacy/api/cart", "/v2/cart"),
    ("/legacy/api/(.+)", "/v2/$1?", "/legacy/api/cart?a=1", "/v2/cart"),
    ("/legacy/api/(.+)", "/v2/$1?b=2", "/legacy/api/cart?a=1", "/v2/cart?b=2&a=1"),
    ("/s/(?<rest>.*)", "/x/$1", "/S/abc", "/x/abc"),
    ("/sp/(.*)", "/$1", "/sp/a%20b", "/a%20b"),
])
def test_rewrite_target(p, target, request_path, upstream):
    w = one({"rewrite-target": target, "use-regex": "true"},
            [path(p, "web", pt="ImplementationSpecific")])
    d = w.route("h.com", request_path)
    assert (d.status, d.upstream_path) == (200, upstream)


def test_rewrite_to_absolute_url_redirects():
    w = one({"rewrite-target": "https://new.example.com/$1"}, [path("/old/(.*)", "web", pt="ImplementationSpecific")])
    d = w.route("h.com", "/old/page")
    assert (d.status, d.location) == (302, "https://new.example.com/page")


def test_x_forwarded_prefix_header():
    w = one({"rewrite-target": "/$2", "x-forwarded-prefix": "/store"},
            [path("/store(/|$)(.*)", "web", pt="ImplementationSpecific")])
    req = make_request("GET", "h.com", "/store/a", {"X-Forwarded-For": "1.2.3.4"}, client_ip="10.9.9.9")
    d = w.router().route(req)
    hdrs = dict(upstream_headers(req, d, ControllerConfig()))
    assert hdrs["X-Forwarded-Prefix"] == "/store"
    assert hdrs["X-Forwarded-For"] == "10.9.9.9" and hdrs["X-Original-Forwarded-For"] == "1.2.3.4"
    assert hdrs["X-Real-IP"] == "10.9.9.9" and hdrs["Host"] == "h.com"
    assert hdrs["X-Forwarded-Port"] == "80" and hdrs["X-Forwarded-Proto"] == "http"
    assert len(hdrs["X-Request-ID"]) == 32 and int(hdrs["X-Request-ID"], 16) >= 0


def test_client_request_id_kept_and_upstream_vhost():
    w = one({"upstream-vhost": "internal.svc"})
    req = make_request("GET", "h.com:8080", "/", {"X-Request-ID": "abc"})
    d = w.router().route(req)
    hdrs = dict(upstream_headers(req, d, ControllerConfig()))
    assert hdrs["X-Request-ID"] == "abc" and hdrs["Host"] == "internal.svc"
    assert hdrs["X-Forwarded-Host"] == "h.com:8080"


def test_request_id_deterministic_with_seed():
    ids = [one({}).route("h.com", "/").request_id for _ in range(2)]
    assert ids[0] == ids[1] and len(ids[0]) == 32


def test_ssl_redirect_when_tls_configured():
    w = World(ingress("i", [("h.com", [path("/", "web")]), ("other.com", [path("/", "web")])],
                      tls=[(["h.com"], "h-tls")]),
              ingress("plain", [("plain.com", [path("/", "web")])])).svc("web")
    d = w.route("h.com", "/")
    assert (d.status, d.location) == (308, "https://h.com")  # trailing slash stripped
    assert w.route("H.com:80", "/a/b/?q=1").location == "https://h.com/a/b/?q=1"
    assert w.route("h.com", "/a/").location == "https://h.com/a"
    # every host of an Ingress with spec.tls gets a (default) certificate, hence the redirect
    assert w.route("other.com", "/").status == 308
    assert w.route("plain.com", "/").status == 200
    d = w.route("h.com", "/", scheme="https")
    assert d.status == 200
    assert ("Strict-Transport-Security", "max-age=31536000; includeSubDomains") in d.response_headers
    # unmatched paths of a TLS host redirect too (the root location carries the annotations)


def test_ssl_redirect_disabled_and_forced_and_preserve_slash():
    assert one({"ssl-redirect": "false"}, tls=[(["h.com"], "s")]).route("h.com", "/").status == 200
    d = one({"force-ssl-redirect": "true"}).route("h.com", "/x/")
    assert (d.status, d.location) == (308, "https://h.com/x")
    d = one({"force-ssl-redirect": "true", "preserve-trailing-slash": "true"}).route("h.com", "/x/")
    assert d.location == "https://h.com/x/"
    assert one({"force-ssl-redirect": "true"}).route("h.com", "/", scheme="https").status == 200


def test_app_root():
    w = one({"app-root": "/web"})
    for method in ("GET", "POST"):
        d = w.route("h.com:8080", "/", method=method)
        assert (d.status, d.location) == (302, "http://h.com:8080/web")
    assert w.route("h.com", "/x").status == 200


def test_redirect_annotations_and_order():
    d = one({"permanent-redirect": "https://x.io/p"}).route("h.com", "/any")
    assert (d.status, d.location) == (301, "https://x.io/p")
    redirect = {"permanent-redirect": "https://x.io"}
    assert one({**redirect, "permanent-redirect-code": "308"}).route("h.com", "/").status == 308
    assert one({**redirect, "permanent-redirect-code": "999"}).route("h.com", "/").status == 301
    assert one({"temporal-redirect": "https://t.io"}).route("h.com", "/").status == 302
    # redirect annotations run before the ssl-redirect
    d = one({"permanent-redirect": "https://x.io/p"}, tls=[(["h.com"], "s")]).route("h.com", "/")
    assert d.status == 301


def test_proxy_body_size():
    w = one({"proxy-body-size": "8k"})
    assert w.route("h.com", "/", "POST", {"Content-Length": "9000"}).status == 413
    assert w.route("h.com", "/", "POST", {"Content-Length": "8192"}).status == 200
    assert one({}).route("h.com", "/", "POST", {"Content-Length": str(2 * 1024 * 1024)}).status == 413
    assert one({"proxy-body-size": "0"}).route("h.com", "/", "POST", {"Content-Length": "99999999"}).status == 200


def test_source_ranges():
    w = one({"whitelist-source-range": "10.0.0.0/8, 192.168.1.1/32"})
    assert w.route("h.com", "/", client_ip="10.1.2.3").status == 200
    assert w.route("h.com", "/", client_ip="172.16.0.1").status == 403
    w = one({"denylist-source-range": "172.16.0.0/12"})
    assert w.route("h.com", "/", client_ip="172.16.0.1").status == 403
    assert w.route("h.com", "/", client_ip="10.1.2.3").status == 200


def test_cors():
    w = one({"enable-cors": "true"})
    d = w.route("h.com", "/", "OPTIONS", {"Origin": "https://a.io"})
    hdrs = dict(d.response_headers)
    assert d.status == 204 and hdrs["Access-Control-Allow-Origin"] == "*"
    assert hdrs["Access-Control-Allow-Methods"] == "GET, PUT, POST, DELETE, PATCH, OPTIONS"
    assert hdrs["Access-Control-Max-Age"] == "1728000"
    d = w.route("h.com", "/", "GET", {"Origin": "https://a.io"})
    assert d.status == 200 and ("Access-Control-Allow-Origin", "*") in d.response_headers
    w = one({"enable-cors": "true", "cors-allow-origin": "https://a.io, https://b.io"})
    assert ("Access-Control-Allow-Origin", "https://b.io") in w.route(
        "h.com", "/", headers={"Origin": "https://b.io"}).response_headers


def canary_world(canary_ann: dict[str, str], seed: int = 1) -> World:
    main = ingress("main", [("h.com", [path("/", "web")])], index=0)
    can = ingress("can", [("h.com", [path("/", "web-canary")])], index=1,
                  annotations={A + "canary": "true", **{A + k: v for k, v in canary_ann.items()}})
    return World(main, can, seed=seed).svc("web", ips=["10.0.0.1"]).svc("web-canary", ips=["10.0.9.9"])


@pytest.mark.parametrize("ann,headers,expect_canary", [
    ({"canary-by-header": "X-Canary"}, {"X-Canary": "always"}, True),
    ({"canary-by-header": "X-Canary"}, {"X-Canary": "never"}, False),
    ({"canary-by-header": "X-Canary"}, {"X-Canary": "maybe"}, False),
    ({"canary-by-header": "X-Canary", "canary-by-header-value": "blue"}, {"X-Canary": "blue"}, True),
    ({"canary-by-header": "X-Canary", "canary-by-header-value": "blue"}, {"X-Canary": "always"}, False),
    ({"canary-by-header": "X-Canary", "canary-by-header-pattern": "^b.*"}, {"X-Canary": "bob"}, True),
    ({"canary-by-header": "X-Canary", "canary-by-header-pattern": "(("}, {"X-Canary": "bob"}, False),
    ({"canary-by-cookie": "cc"}, {"Cookie": "a=1; cc=always"}, True),
    ({"canary-by-cookie": "cc"}, {"Cookie": "cc=never"}, False),
    # header beats cookie beats weight
    ({"canary-by-header": "X-C", "canary-by-cookie": "cc"}, {"X-C": "never", "Cookie": "cc=always"}, False),
    ({"canary-by-cookie": "cc", "canary-weight": "100"}, {"Cookie": "cc=never"}, False),
    ({"canary-weight": "100"}, {}, True),
    ({"canary-weight": "0"}, {}, False),
    ({"canary-weight": "5", "canary-weight-total": "5"}, {}, True),
])
def test_canary_rules(ann, headers, expect_canary):
    d = canary_world(ann).route("h.com", "/x", headers=headers)
    assert d.status == 200 and d.canary is expect_canary
    assert d.service == ("default/web-canary:80" if expect_canary else "default/web:80")
    assert d.upstream == ("10.0.9.9:8080" if expect_canary else "10.0.0.1:8080")


def test_canary_weight_distribution_is_seeded():
    w = canary_world({"canary-weight": "30"}, seed=7)
    picks = Counter(w.route("h.com", "/").canary for _ in range(2000))
    assert 500 < picks[True] < 700
    a = canary_world({"canary-weight": "30"}, seed=3)
    b = canary_world({"canary-weight": "30"}, seed=3)
    assert [a.route("h.com", "/").canary for _ in range(50)] == [
        b.route("h.com", "/").canary for _ in range(50)]


def test_canary_alone_is_404_and_canary_without_endpoints_503():
    can = ingress("can", [("h.com", [path("/", "web-canary")])],
                  annotations={A + "canary": "true", A + "canary-weight": "100"})
    assert World(can).svc("web-canary").route("h.com", "/").status == 404
    w = canary_world({"canary-weight": "100"})
    w.slices = [s for s in w.slices if s.service_name != "web-canary"]
    w._router = None
    assert w.route("h.com", "/").status == 503


def test_round_robin_deterministic_and_even():
    w = one({})
    seq = [w.route("h.com", "/").upstream for _ in range(6)]
    assert Counter(seq) == Counter({"10.0.0.1:8080": 2, "10.0.0.2:8080": 2, "10.0.0.3:8080": 2})
    assert seq[:3] == seq[3:]
    assert [one({}).route("h.com", "/").upstream for _ in range(1)] == seq[:1]


def test_cookie_affinity():
    w = one({"affinity": "cookie", "session-cookie-max-age": "172800",
             "session-cookie-expires": "60"})
    d = w.router().route(make_request("GET", "h.com", "/"), now=0.0)
    cookie = dict(d.response_headers)["Set-Cookie"]
    assert cookie.startswith("INGRESSCOOKIE=") and "Path=/" in cookie and "HttpOnly" in cookie
    assert "Max-Age=172800" in cookie and "Expires=Thu, 01 Jan 1970 00:01:00 GMT" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert value.endswith("|default-web-80")
    for _ in range(5):
        again = w.route("h.com", "/", headers={"Cookie": f"INGRESSCOOKIE={value}"})
        assert again.upstream == d.upstream and not any(k == "Set-Cookie" for k, _ in again.response_headers)
    named = one({"affinity": "cookie", "session-cookie-name": "route", "session-cookie-path": "/app"})
    c = dict(named.route("h.com", "/", scheme="https").response_headers)["Set-Cookie"]
    assert c.startswith("route=") and "Path=/app" in c and "Secure" in c


def test_service_upstream_uses_cluster_ip():
    w = one({"service-upstream": "true"})
    assert {w.route("h.com", "/").upstream for _ in range(3)} == {"10.96.0.10:80"}


def test_backend_protocol_recorded():
    assert one({"backend-protocol": "grpc"}).route("h.com", "/").backend_protocol == "GRPC"
    assert one({"backend-protocol": "bogus"}).route("h.com", "/").backend_protocol == "HTTP"


def test_parse_annotations_defaults():
    a = parse_annotations({})
    assert a.ssl_redirect and not a.force_ssl_redirect and a.proxy_body_size == 1024 * 1024
    assert a.affinity.cookie_name == "INGRESSCOOKIE" and a.canary.weight_total == 100
    assert parse_annotations({A + "ssl-redirect": "nonsense"}).ssl_redirect is True


def test_route_request_json_shape():
    w = one({})
    d = route_request(w.ingresses, w.classes, w.services, w.slices, "h.com", "/x?q=1")
    j = json.loads(json.dumps(d.to_json()))
    assert {k: j[k] for k in ("status", "ingress", "service", "upstream_path", "location")} == {
        "status": 200, "ingress": "default/i", "service": "default/web:80",
        "upstream_path": "/x?q=1", "location": None}
    nf = route_request(w.ingresses, w.classes, w.services, w.slices, "nope.com", "/").to_json()
    assert (nf["status"], nf["ingress"], nf["service"]) == (404, None, None)
    assert "status:    200" in d.render() and "default/web:80" in d.render()
