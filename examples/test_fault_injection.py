"""Faults: a node goes NotReady (pods evicted, traffic moves) and a network partition.

When a node's Ready condition turns False, the node-lifecycle controller marks its pods
NotReady at once (they leave every Service's endpoints) and taints the node
`node.kubernetes.io/not-ready:NoExecute`; pods tolerate that for 300 s (the default
tolerationSeconds), then are evicted and their Deployment replaces them on healthy nodes.
"""

from __future__ import annotations

import pytest

from knet.testing import assert_reachable, assert_unreachable, distribution, wait_for

pytestmark = pytest.mark.knet(topology="topologies/echo.yaml", seed=1)


def running_on(cluster, node: str) -> list:
    return [p for p in cluster.pods({"app": "echo"}) if p.node == node and not p.model.terminating]


async def test_node_not_ready_moves_traffic_then_evicts(knet_cluster):
    client = knet_cluster.pod("default/client")
    victim = next(n for n in ("knet-worker", "knet-worker2") if n != client.node
                  and running_on(knet_cluster, n))
    lost = {p.key.split("/")[1] for p in running_on(knet_cluster, victim)}

    knet_cluster.set_node_ready(victim, False)
    await wait_for(lambda: knet_cluster.node(client.node).synced)

    # Immediately: the victim's pods are NotReady, so no new connection lands on them.
    counts = await distribution(client, "http://echo/", n=30)
    assert not lost & set(counts) and sum(counts.values()) == 30

    # After tolerationSeconds (300 s) they are evicted and replaced elsewhere.
    await knet_cluster.advance(301)
    await wait_for(lambda: len([p for p in knet_cluster.pods({"app": "echo"})
                                if p.ready and p.node != victim]) == 3, timeout=60)
    assert running_on(knet_cluster, victim) == []
    counts = await distribution(client, "http://echo/", n=30)
    assert len(counts) == 3 and not lost & set(counts)


async def test_partition_between_nodes(knet_cluster):
    client = knet_cluster.pod("default/client")
    far = next(p for p in knet_cluster.pods({"app": "echo"}) if p.node != client.node)
    near = [p for p in knet_cluster.pods({"app": "echo"}) if p.node == client.node]

    knet_cluster.partition(client.node, far.node)

    await assert_unreachable(client, far, port=8080, timeout=3)  # SYNs lost: times out
    for pod in near:
        await assert_reachable(client, pod, port=8080)

    knet_cluster.heal()
    await assert_reachable(client, far, port=8080)
