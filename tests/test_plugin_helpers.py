"""knet.testing helpers, run through the plugin itself (virtual time, knet_cluster)."""

from __future__ import annotations

import asyncio

import aiohttp
from collections import Counter
from pathlib import Path

import pytest

from knet.fabric.clock import VirtualTimeLoop
from knet.testing import (assert_reachable, assert_unreachable, backend_name, distribution,
                          eventually, wait_for)

ECHO = str(Path(__file__).resolve().parent.parent / "topologies" / "echo.yaml")

pytestmark = pytest.mark.knet(topology=ECHO, seed=3)


def _echo_names(cluster) -> set[str]:
    return {p.key.split("/", 1)[1] for p in cluster.pods({"app": "echo"})}


async def test_reachable_through_the_service_and_to_a_pod(knet_cluster) -> None:
    client = knet_cluster.pod("default/client")
    await assert_reachable(client, "echo", port=80)
    await assert_reachable(client, "echo.default.svc.cluster.local", port=80)
    backend = knet_cluster.pods({"app": "echo"})[0]
    await assert_reachable(client, backend, port=8080)


async def test_unreachable_message_tells_the_story(knet_cluster) -> None:
    client = knet_cluster.pod("default/client")
    await assert_unreachable(client, "nobody", port=80)
    await assert_unreachable(client, "no-such-service", port=80)
    with pytest.raises(AssertionError) as info:
        await assert_reachable(client, "nobody", port=80)
    msg = str(info.value)
    assert msg.startswith("default/client cannot reach nobody:80: ConnectionRefusedError")
    assert "REJECT with icmp-port-unreachable" in msg  # kube-proxy's rule for no endpoints
    with pytest.raises(AssertionError) as info:
        await assert_unreachable(client, "echo", port=80)
    msg = str(info.value)
    assert "reached echo:80 (expected it to be unreachable)" in msg
    assert "DNAT 10." in msg and "delivered to default/echo-" in msg, msg


@pytest.mark.perf
async def test_unreachable_on_partition_times_out_on_virtual_time(knet_cluster, wall_budget) -> None:
    client = knet_cluster.pod("default/client")
    target = next(p for p in knet_cluster.pods({"app": "echo"}) if p.node != client.node)
    knet_cluster.partition(client.node, target.node)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with wall_budget(2), pytest.raises(AssertionError, match=r"no answer within 3s \(connect timed out\)"):
        await assert_reachable(client, target, port=8080, timeout=3)
    assert loop.time() - t0 == pytest.approx(3, abs=0.01)
    knet_cluster.heal()
    await assert_reachable(client, target, port=8080)


async def test_distribution_counts_backends_per_connection(knet_cluster) -> None:
    client = knet_cluster.pod("default/client")
    counts = await distribution(client, "http://echo/", n=60)
    assert set(counts) == _echo_names(knet_cluster)
    assert sum(counts.values()) == 60 and min(counts.values()) >= 8
    sticky = await distribution(client, "http://echo-sticky/", n=20)
    assert len(sticky) == 1  # sessionAffinity: ClientIP pins one backend
    assert await distribution(client, "http://echo/missing", n=3, key="nope") != Counter()


async def test_distribution_counts_errors_when_asked(knet_cluster) -> None:
    client = knet_cluster.pod("default/client")
    with pytest.raises(aiohttp.ClientConnectorError):  # the client's own error, re-raised as is
        await distribution(client, "http://nobody/", n=2)
    counts = await distribution(client, "http://nobody/", n=4, count_errors=True)
    assert counts == Counter({"ClientConnectorError": 4})


def test_backend_name() -> None:
    assert backend_name('{"pod": "web-1", "x": 1}') == "web-1"
    assert backend_name('{"name": "web-1"}', key="name") == "web-1"
    assert backend_name("hello from a\n") == "hello from a"
    assert backend_name("{not json") == "{not json"


async def test_wait_for_advances_virtual_time(knet_cluster) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    t0 = loop.time()
    assert await wait_for(lambda: loop.time() - t0 >= 25, timeout=30) is True
    assert 25 <= loop.time() - t0 < 25.2
    with pytest.raises(AssertionError, match=r"never not met within 5s \(last value False\)"):
        await wait_for(lambda: False, timeout=5, message="never")
    assert loop.time() - t0 == pytest.approx(30, abs=0.2)

    async def pod_count() -> int:
        return len(knet_cluster.pods({"app": "echo"}))

    knet_cluster.scale("default/echo", 5)
    assert await wait_for(lambda: sum(p.ready for p in knet_cluster.pods({"app": "echo"})) == 5,
                          timeout=60)
    assert await wait_for(pod_count) == 5


async def test_eventually_retries_until_assertions_hold(knet_cluster) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    calls = []

    async def check() -> str:
        calls.append(loop.time() - t0)
        assert loop.time() - t0 >= 1.999, "not yet"
        return "ok"

    assert await eventually(check, timeout=10, interval=0.5) == "ok"
    assert calls[0] == 0 and len(calls) == 5 and calls[-1] == pytest.approx(2)
    with pytest.raises(AssertionError, match="never") as info:
        await eventually(lambda: _fail("never"), timeout=3)
    assert "(still failing after 3s)" in info.value.__notes__


def _fail(msg: str) -> None:
    raise AssertionError(msg)
