"""Readiness failover: a pod whose readiness probe fails leaves the Service's endpoints.

The kubelet runs the exec probe every 2 s; after 2 failures (failureThreshold) the pod is
NotReady, the EndpointSlice controller marks the endpoint not ready, kube-proxy drops it from
the Service's chains, and new connections go to the remaining pod. When the probe passes
again, the pod comes back. All of it on virtual time: the test takes milliseconds.
"""

from __future__ import annotations

import pytest

from knet.testing import distribution, wait_for

pytestmark = pytest.mark.knet(topology="topologies/failover.yaml")


async def test_unready_pod_stops_receiving_traffic(knet_cluster):
    client = knet_cluster.pod("default/client")
    sick, healthy = knet_cluster.pods({"app": "web"})
    sick_name, healthy_name = (p.key.split("/")[1] for p in (sick, healthy))
    assert set(await distribution(client, "http://web/", n=20)) == {sick_name, healthy_name}

    await sick.exec(["touch", "/tmp/unready"])  # the probe's `test ! -f /tmp/unready` fails
    await wait_for(lambda: not sick.ready, timeout=10)
    await wait_for(lambda: all(knet_cluster.node(n).synced for n in ("knet-worker", "knet-worker2")))

    assert await distribution(client, "http://web/", n=20) == {healthy_name: 20}

    await sick.exec(["rm", "/tmp/unready"])
    await wait_for(lambda: sick.ready, timeout=10)
    await knet_cluster.wait_ready()
    assert set(await distribution(client, "http://web/", n=20)) == {sick_name, healthy_name}


@pytest.mark.knet_emulator("timing to the second (virtual time)")
async def test_failover_takes_the_probe_period_times_the_threshold(knet_cluster):
    sick = knet_cluster.pods({"app": "web"})[0]
    t0 = knet_cluster.now()

    await sick.exec(["touch", "/tmp/unready"])
    await wait_for(lambda: not sick.ready, timeout=10, interval=0.01)

    # Two failed probes, 2 s apart: NotReady within (failureThreshold × periodSeconds).
    assert 2 <= knet_cluster.now() - t0 <= 4
