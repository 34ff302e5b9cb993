"""Ingress: host-based fanout through the ingress-nginx controller pod.

topologies/demo.yaml routes a.example.com to Service app-a and b.example.com to app-b
(hashicorp/http-echo pods answering "hello from a|b"). knet runs an ingress-nginx controller
(kind's manifest) when a topology has Ingresses but no controller; requests reach it through
its pod IP, its Service, or a NodePort from outside the cluster.
"""

from __future__ import annotations

import pytest

from knet.testing import distribution

pytestmark = pytest.mark.knet(topology="topologies/demo.yaml", seed=7)

CONTROLLER = "ingress-nginx-controller.ingress-nginx"


async def get(session, url, host):
    async with session.get(url, headers={"Host": host}) as r:
        return r.status, (await r.text()).strip()


async def test_hosts_fan_out_to_their_services(knet_cluster):
    client = knet_cluster.pod("default/client")

    assert await get(client.http, f"http://{CONTROLLER}/", "a.example.com") == (200, "hello from a")
    assert await get(client.http, f"http://{CONTROLLER}/x", "b.example.com") == (200, "hello from b")


async def test_unknown_host_gets_the_default_backend_404(knet_cluster):
    client = knet_cluster.pod("default/client")
    status, _ = await get(client.http, f"http://{CONTROLLER}/", "c.example.com")
    assert status == 404


async def test_controller_balances_over_the_service_endpoints(knet_cluster):
    client = knet_cluster.pod("default/client")
    controller = knet_cluster.pods(namespace="ingress-nginx")[0]

    counts = await distribution(client, f"http://{controller.ip}/", n=20,
                                headers={"Host": "a.example.com"})

    assert counts == {"hello from a": 20}


async def test_from_outside_through_a_node_port(knet_cluster):
    svc = knet_cluster.state.service("ingress-nginx/ingress-nginx-controller")
    node_port = next(p.node_port for p in svc.spec.ports if p.name == "http")
    node_ip = knet_cluster.node("knet-worker").ip
    outside = knet_cluster.external()

    status, body = await get(outside.http, f"http://{node_ip}:{node_port}/", "b.example.com")

    assert (status, body) == (200, "hello from b")
