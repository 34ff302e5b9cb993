"""TLS passthrough (TLSRoute, by SNI) and TCPRoute: the SNI reader on real ClientHellos, the
backend choice, and a TCPRoute end to end in the emulation (virtual time)."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import textwrap

from gateway_factory import cluster, gateway, service
from knet.fabric import virtual_time
from knet.gateway.dataplane import l4_backend, server_name
from knet.gateway.view import tables_for
from knet.runtime import run


def client_hello(sni: str | None) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def test_server_name_from_real_client_hellos():
    assert server_name(client_hello("a.shop.test")) == "a.shop.test"
    assert server_name(client_hello("API.Shop.Test")) == "api.shop.test"
    assert server_name(client_hello(None)) is None
    hello = client_hello("x.test")
    assert server_name(hello[:20]) is None  # incomplete: wait for more
    assert server_name(b"GET / HTTP/1.1\r\n") is None


TLSROUTES = textwrap.dedent("""
    apiVersion: gateway.networking.k8s.io/v1
    kind: TLSRoute
    metadata: {name: a}
    spec:
      parentRefs: [{name: gw}]
      hostnames: ["*.shop.test"]
      rules: [{backendRefs: [{name: web, port: 80}]}]
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: TLSRoute
    metadata: {name: b}
    spec:
      parentRefs: [{name: gw}]
      hostnames: [api.shop.test]
      rules: [{backendRefs: [{name: api, port: 80, weight: 1}, {name: gone, port: 80, weight: 1}]}]
""")


def test_tls_passthrough_backend_by_sni_and_invalid_share_rejected():
    c = cluster(gateway("- {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}"),
                service("web"), service("api"), TLSROUTES)
    (ls,) = tables_for(c).gateway("default/gw").listeners
    web = {a for a in (l4_backend([ls], "x.shop.test", random.Random(s)) for s in range(20))}
    assert web and all(a is not None and a[1] == 8080 for a in web)
    picks = [l4_backend([ls], "api.shop.test", random.Random(s)) for s in range(200)]
    rejected = sum(p is None for p in picks)
    assert 60 < rejected < 140  # the invalid backend's share of connections is refused
    assert l4_backend([ls], "other.test", random.Random(0)) is None
    assert l4_backend([ls], None, random.Random(0)) is None


TCP_TOPOLOGY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tcp}
spec:
  gatewayClassName: knet
  listeners: [{name: raw, port: 9000, protocol: TCP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: raw}
spec:
  parentRefs: [{name: tcp}]
  rules: [{backendRefs: [{name: echo, port: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec: {containers: [{name: echo, image: knet/echo, ports: [{containerPort: 8080}]}]}
"""


@virtual_time
async def test_tcproute_relays_bytes_through_the_gateway(tmp_path) -> None:
    topo = tmp_path / "tcp.yaml"
    topo.write_text(TCP_TOPOLOGY)
    async with run(str(topo)) as c:
        lb = c.state.service("default/knet-gateway-tcp").load_balancer_ingress[0].ip
        reader, writer = await c.external().open_connection(lb, 9000)
        writer.write(b"GET /raw HTTP/1.1\r\nHost: anything\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 10)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(body)["path"] == "/raw" and json.loads(body)["pod"].startswith("echo-")
        writer.close()
