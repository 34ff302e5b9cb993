"""Gateway API CRD validation: the API server's words, located at file:line, nothing applied."""

from __future__ import annotations

import json

import pytest

from knet.cli import main
from knet.errors import ManifestError
from knet.manifests import read_text

GW = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: knet
  listeners:
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as e:
        read_text(text, "gw.yaml")
    return [str(p) for p in e.value.problems]


@pytest.mark.parametrize("listeners,message", [
    ("  - {name: a, port: 80, protocol: HTTP, tls: {mode: Passthrough}}",
     "gw.yaml:7:3: Gateway infra/gw: spec.listeners: Invalid value: \"array\": tls must not be "
     "specified for protocols ['HTTP', 'TCP', 'UDP']"),
    ("  - {name: a, port: 443, protocol: TLS}",
     "spec.listeners: Invalid value: \"array\": tls mode must be set for protocol TLS"),
    ("  - {name: a, port: 443, protocol: HTTPS, tls: {mode: Passthrough}}",
     "spec.listeners: Invalid value: \"array\": tls mode must be Terminate for protocol HTTPS"),
    ("  - {name: a, port: 9, protocol: TCP, hostname: a.test}",
     "hostname must not be specified for protocols ['TCP', 'UDP']"),
    ("  - {name: a, port: 80, protocol: HTTP}\n  - {name: a, port: 81, protocol: HTTP}",
     "Listener name must be unique within the Gateway"),
    ("  - {name: a, port: 80, protocol: HTTP}\n  - {name: b, port: 80, protocol: HTTP}",
     "Combination of port, protocol and hostname must be unique for each listener"),
    ("  - {name: a, port: 70000, protocol: HTTP}",
     "gw.yaml:7:21: Gateway infra/gw: spec.listeners[0].port: Invalid value: 70000: "
     "spec.listeners[0].port in body should be less than or equal to 65535"),
    ("  - {name: a, port: 80, protocol: HTTP, hostname: 1.2.3.4:80}",
     "spec.listeners[0].hostname in body should match"),
    ("  - {name: a, port: 443, protocol: HTTPS, tls: {mode: Terminate}}",
     "spec.listeners[0].tls: Invalid value: \"object\": certificateRefs or options must be "
     "specified when mode is Terminate"),
])
def test_gateway_cel_and_schema(listeners, message):
    got = problems(GW + listeners + "\n")
    assert any(message in p for p in got), got


ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
"""


@pytest.mark.parametrize("rules,message", [
    ("  - matches: [{path: {type: Exact, value: /a/../b}}]",
     "spec.rules[0].matches[0].path: Invalid value: \"object\": must not contain '/../' when "
     "type one of ['Exact', 'PathPrefix']"),
    ("  - matches: [{path: {value: a}}]",
     "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"),
    ("  - filters: [{type: RequestRedirect, requestRedirect: {}}]\n"
     "    backendRefs: [{name: web, port: 80}]",
     "RequestRedirect filter must not be used together with backendRefs"),
    ("  - matches: [{path: {value: /a}}, {path: {value: /b}}]\n"
     "    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, "
     "replacePrefixMatch: /x}}}]",
     "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match "
     "must be specified"),
    ("  - filters: [{type: RequestHeaderModifier}]",
     "filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type"),
    ("  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {}}, "
     "{type: RequestHeaderModifier, requestHeaderModifier: {}}]",
     "RequestHeaderModifier filter cannot be repeated"),
    ("  - backendRefs: [{name: web}]", "Must have port for Service reference"),
    ("  - backendRefs: [{name: web, port: 80, weight: 1000001}]",
     "should be less than or equal to 1000000"),
    ("  - filters: [{type: Retry}]", "Unsupported value: \"Retry\": supported values: "
     "\"RequestHeaderModifier\""),
    ("  - timeouts: {request: 10}", "spec.rules[0].timeouts.request in body must be of type "
     "string"),
    ("  - bogus: 1", "unknown field \"spec.rules[0].bogus\""),
])
def test_httproute_cel_and_schema(rules, message):
    got = problems(ROUTE + rules + "\n")
    assert any(message in p for p in got), got


def test_defaults_and_served_versions():
    inp = read_text("""
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: shop}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
""", "x.yaml")
    grant, route = [o for o in inp.objects if o.kind in ("ReferenceGrant", "HTTPRoute")]
    assert grant.api_version.endswith("/v1beta1")
    assert route.spec["rules"] == [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]
    assert route.spec["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                         "name": "gw"}]
    with pytest.raises(ManifestError) as e:
        read_text("apiVersion: gateway.networking.k8s.io/v9\nkind: HTTPRoute\nmetadata: {name: r}\n"
                  "spec: {}\n", "y.yaml")
    assert 'no matches for kind "HTTPRoute" in version' in str(e.value)


def test_validate_cli_exit_code(tmp_path, capsys):
    f = tmp_path / "gw.yaml"
    f.write_text(GW + "  - {name: a, port: 443, protocol: TLS}\n")
    assert main(["validate", "-f", str(f)]) == 1
    err = capsys.readouterr().err
    assert "tls mode must be set for protocol TLS" in err and "Traceback" not in err


def test_route_cli_json_keys(capsys):
    assert main(["route", "-f", "topologies/gateway.yaml", "--gateway", "infra/gw",
                 "--host", "www.shop.test", "--path", "/v1/x?q=1", "-H", "X-Canary: yes",
                 "-o", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"status", "gateway", "listener", "route", "rule", "backend", "backends", "request",
            "response_headers", "location", "mirrors"} <= d.keys()
    assert d["status"] == 200 and d["route"] == "HTTPRoute shop/web" and d["rule"] == 2
    assert d["backend"] == "shop/api:8080" and d["backends"] == {"shop/api:8080": 1}
    assert d["request"]["path"] == "/v2/x?q=1" and d["request"]["headers"]["X-Via"] == "knet"


def test_get_columns(capsys):
    f = "topologies/gateway.yaml"
    assert main(["get", "gateways", "-n", "infra", "-f", f]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    assert lines[1].split()[:4] == ["gw", "knet", "172.18.255.200", "True"]
    assert main(["get", "httproutes", "-A", "-f", f]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAMESPACE", "NAME", "HOSTNAMES", "AGE"]
    assert '["shop.test","*.shop.test"]' in out
    assert main(["get", "gatewayclasses", "-f", f]) == 0
    assert "gateway.knet.dev/controller   True" in capsys.readouterr().out
    assert main(["get", "httproute", "web", "-n", "shop", "-o", "json", "-f", f]) == 0
    obj = json.loads(capsys.readouterr().out)
    (parent,) = obj["status"]["parents"]
    assert parent["controllerName"] == "gateway.knet.dev/controller"
    assert [c["reason"] for c in parent["conditions"]] == ["Accepted", "ResolvedRefs"]
