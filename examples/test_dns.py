"""DNS as pods see it: search paths, other namespaces, headless StatefulSet pod names.

A pod's /etc/resolv.conf searches `<ns>.svc.cluster.local svc.cluster.local cluster.local`,
so `web` only resolves in the Service's own namespace; `web.shop` works from anywhere. A
headless Service answers with its pods' IPs, and a StatefulSet pod is `<pod>.<service>`.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.knet(topology="topologies/dns.yaml")


async def test_service_name_resolves_to_its_cluster_ip(knet_cluster):
    client = knet_cluster.pod("shop/client")
    cluster_ip = knet_cluster.state.service("shop/web").spec.cluster_ip

    assert await client.resolve("web") == [cluster_ip]
    assert await client.resolve("web.shop.svc.cluster.local") == [cluster_ip]


async def test_other_namespace_needs_the_namespace_in_the_name(knet_cluster):
    db0 = knet_cluster.pod("data/db-0")
    cluster_ip = knet_cluster.state.service("shop/web").spec.cluster_ip

    assert await db0.resolve("web") == []  # NXDOMAIN under data.svc.cluster.local, …
    assert await db0.resolve("web.shop") == [cluster_ip]


async def test_headless_service_and_statefulset_pod_names(knet_cluster):
    client = knet_cluster.pod("shop/client")
    db0, db1 = knet_cluster.pod("data/db-0"), knet_cluster.pod("data/db-1")

    assert sorted(await client.resolve("db.data")) == sorted([db0.ip, db1.ip])
    assert await client.resolve("db-0.db.data") == [db0.ip]
    assert await client.resolve("db-1.db.data.svc.cluster.local") == [db1.ip]


async def test_http_by_name_through_the_service(knet_cluster):
    client = knet_cluster.pod("shop/client")
    async with client.http.get("http://web.shop/") as r:
        body = await r.json()
    assert body["namespace"] == "shop" and body["pod"].startswith("web-")
    assert body["host"] == "web.shop"
