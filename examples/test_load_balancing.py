"""Load balancing: a ClusterIP Service spreads *connections* over its ready endpoints.

kube-proxy (iptables mode) picks a backend per new connection with `statistic --mode random`
rules, so a keep-alive connection stays on one pod; `sessionAffinity: ClientIP` pins a client.
"""

from __future__ import annotations

import pytest

from knet.testing import distribution

pytestmark = pytest.mark.knet(topology="topologies/echo.yaml", seed=1)


def echo_pods(cluster) -> set[str]:
    return {p.key.split("/")[1] for p in cluster.pods({"app": "echo"})}


async def test_requests_spread_over_three_pods(knet_cluster):
    client = knet_cluster.pod("default/client")

    counts = await distribution(client, "http://echo/", n=90)  # a new connection each

    assert set(counts) == echo_pods(knet_cluster)
    assert all(15 <= n <= 45 for n in counts.values()), counts


@pytest.mark.knet_emulator("one connection held across requests (on a real cluster pod.http "
                           "runs each request as its own curl in the pod)")
async def test_keepalive_connection_stays_on_one_pod(knet_cluster):
    client = knet_cluster.pod("default/client")
    answered = set()
    for _ in range(10):  # one aiohttp session: the connection is reused
        async with client.http.get("http://echo/") as r:
            answered.add((await r.json())["pod"])
    assert len(answered) == 1


async def test_session_affinity_pins_the_client(knet_cluster):
    client = knet_cluster.pod("default/client")
    counts = await distribution(client, "http://echo-sticky/", n=30)
    assert len(counts) == 1 and sum(counts.values()) == 30


@pytest.mark.knet_emulator("seeded endpoint choices (a real kernel draws its own)")
async def test_same_seed_same_choices(knet_factory):
    async def spread(seed: int):
        cluster = await knet_factory("topologies/echo.yaml", seed=seed)
        counts = await distribution(cluster.pod("default/client"), "http://echo/", n=30)
        return sorted(counts.values())

    assert await spread(7) == await spread(7)
