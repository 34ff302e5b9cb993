"""Memory on the work model: OOMKilled above the limit, node-pressure eviction in kubelet's
order (pods over their requests first), on the virtual clock."""

from __future__ import annotations

from pathlib import Path

from knet.control.recorder import events_for
from knet.fabric import virtual_time
from knet.runtime import run
from knet.runtime.pressure import rank

MEMORY = str(Path(__file__).resolve().parent / "data" / "controllers" / "memory.yaml")


def pod_of(c, prefix: str):
    return [p for p in c.state.pods("default") if p.name.startswith(prefix)
            and p.status.phase != "Failed"][0]


@virtual_time
async def test_memory_above_the_limit_is_oom_killed_and_restarted() -> None:
    async with run(MEMORY, wait=False) as c:
        await c.wait_for(lambda: pod_of(c, "steady-").status.ready, 60)
        steady = pod_of(c, "steady-")
        assert steady.status.qos_class == "Burstable"
        seen: list[tuple[str, int | None]] = []

        def watch(ev) -> None:
            cur = ev.current
            if cur is not None and cur.kind == "Pod" and cur.key == steady.key:
                seen.extend((cs.reason, cs.exit_code) for cs in cur.status.container_statuses
                            if cs.state == "terminated")

        c.state.subscribe(watch)
        c.work.set_memory(steady.key, "450Mi")  # limit 400Mi
        await c.wait_for(lambda: c.pod(steady.key).container_status().restart_count >= 1, 60)
        assert ("OOMKilled", 137) in seen
        # it keeps exceeding its limit at every start: back-off grows
        await c.wait_for(lambda: c.pod(steady.key).container_status().restart_count >= 3, 300)
        assert c.state.pod(steady.key).status.phase == "Running"


@virtual_time
async def test_node_memory_pressure_evicts_the_pod_over_its_request() -> None:
    async with run(MEMORY, wait=False) as c:
        await c.wait_for(lambda: pod_of(c, "hog-").status.ready
                         and pod_of(c, "steady-").status.ready, 60)
        hog, steady = pod_of(c, "hog-"), pod_of(c, "steady-")
        # 1Gi node: hog 300Mi + steady 200Mi; hog grows to 800Mi → available < 100Mi
        c.work.set_memory(hog.key, "800Mi")
        await c.wait_for(lambda: c.state.pod(hog.key).status.phase == "Failed", 30)
        evicted = c.state.pod(hog.key)
        assert evicted.status.reason == "Evicted"
        assert evicted.status.message.startswith(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: ")
        assert "Container hog was using 819200Ki, request is 100Mi" in evicted.status.message
        assert evicted.status.condition("DisruptionTarget").reason == "TerminationByKubelet"
        assert [e.reason for e in events_for(c.state, evicted)] == ["Evicted"]
        assert c.state.pod(steady.key).status.phase == "Running"  # within its request
        # the ReplicaSet replaces the evicted pod (Failed pods are not active)
        await c.wait_for(lambda: len([p for p in c.state.pods("default")
                                      if p.name.startswith("hog-")]) == 2, 30)


def test_eviction_rank() -> None:
    from knet.control import Cluster
    from knet.manifests import read_text

    state = Cluster.from_input(read_text(Path(MEMORY).read_text(), "m.yaml"), seed=0,
                               system_objects=False)
    hog = [p for p in state.pods("default") if p.name.startswith("hog-")][0]
    steady = [p for p in state.pods("default") if p.name.startswith("steady-")][0]
    mi = 1024 * 1024
    # hog is over its request (300 > 100), steady is not (200 < 300): hog goes first
    assert [p.name for p, _ in rank([(steady, 200 * mi), (hog, 300 * mi)])][0] == hog.name
    # both over: the larger excess first
    assert [p.name for p, _ in rank([(hog, 150 * mi), (steady, 390 * mi)])][0] == steady.name
