"""HTTP/2 on Gateway listeners with a real client: curl with h2c prior knowledge and with ALPN
h2 over TLS (SNI picks the listener's certificate), forwarded to an HTTP/1.1 backend."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess

import pytest
from aiohttp import web

from knet.control import Cluster
from knet.gateway.dataplane import GatewayProxy
from knet.gateway.view import tables_for
from knet.ingress.tls import issue_test_certificates
from knet.manifests import read_text

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="curl is needed")


def topology(backend_port: int, crt: bytes, key: bytes) -> str:
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: knet
  listeners:
  - {{name: http, port: 80, protocol: HTTP}}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: secure.test
    tls: {{certificateRefs: [{{name: secure-tls}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{path: {{value: /v1}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{add: [{{name: X-Gw, value: h2}}]}}
    backendRefs: [{{name: backend, port: 80}}]
  - matches: [{{path: {{type: Exact, value: /moved}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{hostname: other.test}}}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: secure-tls}}
type: kubernetes.io/tls
data: {{tls.crt: {b64(crt)}, tls.key: {b64(key)}}}
---
apiVersion: v1
kind: Service
metadata: {{name: backend}}
spec:
  ports: [{{name: http, port: 80, targetPort: {backend_port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: backend-1, labels: {{kubernetes.io/service-name: backend}}}}
addressType: IPv4
ports: [{{name: http, port: {backend_port}, protocol: TCP}}]
endpoints: [{{addresses: ["127.0.0.1"], conditions: {{ready: true}}}}]
"""


async def curl(*args: str) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-m", "10", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())


@pytest.mark.asyncio
async def test_curl_http2_prior_knowledge_and_alpn(tmp_path):
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        if request.path == "/v2/big":
            return web.Response(body=b"y" * 300000)
        return web.json_response({"path": request.raw_path, "host": request.host,
                                  "method": request.method, "len": len(body),
                                  "version": f"{request.version.major}.{request.version.minor}"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bport = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ca, secrets = issue_test_certificates(["secure.test"])
    sec = secrets["secure.test"]
    cluster = Cluster.from_input(read_text(topology(bport, sec.data["tls.crt"],
                                                    sec.data["tls.key"]), "h2.yaml"))
    tables = tables_for(cluster)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    async with GatewayProxy("default/gw", 80, tables, clock=loop.time) as plain, \
            GatewayProxy("default/gw", 443, tables, clock=loop.time) as tls:
        _, port = await plain.listen("127.0.0.1", 0)
        _, tport = await tls.listen("127.0.0.1", 0, tls=True)
        r = await curl("--http2-prior-knowledge", "-i", "-H", "Host: shop.test",
                       f"http://127.0.0.1:{port}/v1/items?x=1")
        head, _, body = r.stdout.partition("\r\n\r\n")
        assert head.startswith("HTTP/2 200") and "x-gw: h2" in head.lower(), r
        assert json.loads(body) == {"path": "/v2/items?x=1", "host": "shop.test",
                                    "method": "GET", "len": 0, "version": "1.1"}
        r = await curl("--http2-prior-knowledge", "-o", "/dev/null", "-w",
                       "%{http_version} %{http_code} %{redirect_url}",
                       f"http://127.0.0.1:{port}/moved")
        assert r.stdout == "2 302 http://other.test/moved", r
        big = tmp_path / "big"
        big.write_bytes(b"x" * 200000)
        r = await curl("--http2-prior-knowledge", "--data-binary", f"@{big}",
                       f"http://127.0.0.1:{port}/v1/post")
        assert json.loads(r.stdout)["len"] == 200000, r  # beyond the initial flow-control window
        r = await curl("--http2-prior-knowledge", "-o", str(big), "-w", "%{size_download}",
                       f"http://127.0.0.1:{port}/v1/big")
        assert r.stdout == "300000", r  # the response waits for WINDOW_UPDATEs
        # HTTP/1.1 still works on the same port
        r = await curl("-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                       f"http://127.0.0.1:{port}/v1/x")
        assert r.stdout == "1.1 200", r
        # TLS: ALPN h2, certificate by SNI
        r = await curl("--http2", "--cacert", str(cafile), "--resolve",
                       f"secure.test:{tport}:127.0.0.1", "-w", "\\n%{http_version}",
                       f"https://secure.test:{tport}/v1/tls")
        body, _, version = r.stdout.rpartition("\n")
        assert version == "2" and json.loads(body)["path"] == "/v2/tls", r
        r = await curl("--http1.1", "--cacert", str(cafile), "--resolve",
                       f"secure.test:{tport}:127.0.0.1", "-o", "/dev/null", "-w",
                       "%{http_version} %{http_code}", f"https://secure.test:{tport}/v1/tls")
        assert r.stdout == "1.1 200", r
    await runner.cleanup()
