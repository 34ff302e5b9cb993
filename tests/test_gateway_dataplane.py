"""The Gateway data plane in the running emulation: LoadBalancer address → kube-proxy →
data-plane pod → route → backend pod, with filters applied (virtual time)."""

from __future__ import annotations

import json
from pathlib import Path

from knet.fabric import virtual_time
from knet.gateway.l7 import story_lines
from knet.runtime import run

SHOP = str(Path(__file__).resolve().parents[1] / "topologies" / "gateway.yaml")


CONFORMANCE_ECHO = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: conformance, namespace: shop}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: http}]
  hostnames: [echo.shop.test]
  rules:
  - backendRefs: [{name: infra-backend-v1, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v1, namespace: shop}
spec:
  selector: {app: infra-backend-v1}
  ports: [{port: 8080, targetPort: 3000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: infra-backend-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: infra-backend-v1}}
  template:
    metadata: {labels: {app: infra-backend-v1}}
    spec:
      containers:
      - name: infra-backend-v1
        image: gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd
        env: [{name: NAMESPACE, value: shop}]
"""


@virtual_time
async def test_http_through_the_gateway_service(tmp_path) -> None:
    extra = tmp_path / "echo.yaml"
    extra.write_text(CONFORMANCE_ECHO)
    async with run([SHOP, str(extra)]) as c:
        svc = c.state.service("infra/knet-gateway-gw")
        lb = svc.load_balancer_ingress[0].ip
        ext = c.external()
        async with ext.http.get(f"http://{lb}/v1/items?x=1",
                                headers={"Host": "www.shop.test", "X-Canary": "yes",
                                         "X-Debug": "1"}) as r:
            assert r.status == 200
            body = json.loads(await r.text())
        assert body["namespace"] == "shop" and body["pod"].startswith("api-")
        assert body["path"] == "/v2/items" and body["query"] == {"x": "1"}
        assert body["headers"]["X-Via"] == "knet" and "X-Debug" not in body["headers"]
        assert body["host"] == "www.shop.test"
        # a capture sees the Gateway's decision as an L7 step and a Hubble L7 record
        cap = c.capture()
        async with cap, ext.http.get(f"http://{lb}/v1/x", headers={
                "Host": "www.shop.test", "X-Canary": "yes"}) as r:
            assert r.status == 200
        (entry,) = cap.l7
        assert (entry["gateway"], entry["listener"], entry["route"], entry["rule"]) == (
            "infra/gw", "http", "HTTPRoute shop/web", 2)
        assert entry["filters"] == ["URLRewrite", "RequestHeaderModifier"]
        assert entry["backend"] == "shop/api:8080" and entry["upstream_path"] == "/v2/x"
        (line,) = story_lines(cap.l7)
        assert line == (f"L7 HTTP/1.1 GET www.shop.test/v1/x: gateway infra/gw ({entry['pod']}) → "
                        "listener http → HTTPRoute shop/web rule 2 → filters URLRewrite, "
                        "RequestHeaderModifier → backend shop/api:8080: 200 (upstream path /v2/x)")
        (rec,) = [r for r in cap.hubble() if r["flow"].get("Type") == "L7"]
        assert rec["flow"]["l7"]["http"] == {"code": 200, "method": "GET",
                                             "url": "http://www.shop.test/v1/x",
                                             "protocol": "HTTP/1.1"}
        assert '"Type":"L7"' in cap.to_jsonl()
        async with ext.http.get(f"http://{lb}/login", headers={"Host": "shop.test"},
                                allow_redirects=False) as r:
            assert r.status == 301 and r.headers["Location"] == "https://shop.test/login"
        async with ext.http.get(f"http://{lb}/", headers={"Host": "nobody.test"}) as r:
            assert r.status == 404
        async with ext.http.get(f"http://{lb}/", headers={"Host": "api.shop.test"}) as r:
            body = json.loads(await r.text())
            assert r.status == 200 and body["pod"].startswith("api-")
        # the conformance echo server: its JSON, and X-Echo-Set-Header
        async with ext.http.get(f"http://{lb}/a/b?c=d", headers={
                "Host": "echo.shop.test", "X-Echo-Set-Header": "X-Foo: 1, X-Bar: two",
                "x-multi": "a"}) as r:
            assert r.status == 200 and r.headers["X-Foo"] == "1" and r.headers["X-Bar"] == "two"
            body = json.loads(await r.text())
        assert body["path"] == "/a/b?c=d" and body["host"] == "echo.shop.test"
        assert body["method"] == "GET" and body["namespace"] == "shop"
        assert body["pod"].startswith("infra-backend-v1-") and body["headers"]["X-Multi"] == ["a"]
