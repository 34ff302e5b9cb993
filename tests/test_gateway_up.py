"""``knet up --gateway NS/NAME=127.0.0.1:P`` with a real client (curl) on loopback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from test_up_e2e import Up, curl

SHOP = str(Path(__file__).resolve().parents[1] / "topologies" / "gateway.yaml")


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is needed")
def test_curl_through_knet_up_gateway(tmp_path: Path) -> None:
    up = Up(["-f", SHOP, "--gateway", "infra/gw=127.0.0.1:0", "--gateways", "--no-control"],
            tmp_path)
    try:
        up.wait_up()
        host, port = up.address("GATEWAY")
        r = curl("-H", "X-Canary: yes", "--resolve", f"www.shop.test:{port}:{host}",
                 f"http://www.shop.test:{port}/v1/a?b=1")
        body = json.loads(r.stdout)
        assert body["namespace"] == "shop" and body["pod"].startswith("api-"), r
        assert body["path"] == "/v2/a" and body["headers"]["X-Via"] == "knet"
        r = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: shop.test",
                 f"http://{host}:{port}/login")
        assert r.stdout == "301 https://shop.test/login"
        # --gateways: every Gateway listener at its LoadBalancer loopback address
        rows = [line.split() for line in up.out if line.startswith("GATEWAY")]
        lb = next(r[1] for r in rows if r[2] == "infra/gw:80")
        r = curl("-H", "Host: api.shop.test", f"http://{lb}/x")
        assert json.loads(r.stdout)["pod"].startswith("api-"), r
    finally:
        assert up.stop() == 0
