"""The Gateway data plane in the running emulation: LoadBalancer address → kube-proxy →
data-plane pod → route → backend pod, with filters applied (virtual time)."""

from __future__ import annotations

import json
from pathlib import Path

from knet.fabric import virtual_time
from knet.runtime import run

SHOP = str(Path(__file__).resolve().parents[1] / "topologies" / "gateway.yaml")


@virtual_time
async def test_http_through_the_gateway_service() -> None:
    async with run(SHOP) as c:
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
        async with ext.http.get(f"http://{lb}/login", headers={"Host": "shop.test"},
                                allow_redirects=False) as r:
            assert r.status == 301 and r.headers["Location"] == "https://shop.test/login"
        async with ext.http.get(f"http://{lb}/", headers={"Host": "nobody.test"}) as r:
            assert r.status == 404
        async with ext.http.get(f"http://{lb}/", headers={"Host": "api.shop.test"}) as r:
            body = json.loads(await r.text())
            assert r.status == 200 and body["pod"].startswith("api-")
