"""Runtime: pod lifecycle, probes, restarts, deletion and node failure (virtual time)."""

from __future__ import annotations

import json
from pathlib import Path

from knet.fabric import virtual_time
from knet.runtime import run

ROOT = Path(__file__).resolve().parent.parent / "topologies"
BASIC = str(ROOT / "runtime-basic.yaml")
LIVENESS = str(ROOT / "liveness.yaml")


def _ready_endpoints(c, svc: str) -> set[str]:
    return {a for s in c.state.endpoint_slices(svc) for e in s.endpoints
            if e.conditions.ready for a in e.addresses}


async def _hit(c, n: int = 12) -> set[str]:
    client = c.pod("default/client")
    seen = set()
    for _ in range(n):
        async with client.new_session(connector_kwargs={"force_close": True}) as s, s.get("http://echo/") as r:
            seen.add(json.loads(await r.text())["pod"])
    return seen


@virtual_time
async def test_readiness_failover_moves_traffic() -> None:
    async with run(BASIC) as c:
        victim = sorted(p.name for p in c.state.pods("default")
                        if p.metadata.labels.get("app") == "echo")[0]
        assert victim in await _hit(c)
        await c.pod(f"default/{victim}").exec(["touch", "/tmp/unready"])
        t0 = c.now()
        await c.wait_for(lambda: not c.state.pod(f"default/{victim}").status.ready, 30)
        # periodSeconds 2 × failureThreshold 2: unready within ~4 s (+ first-tick offset).
        assert c.now() - t0 <= 6
        assert c.state.pod(f"default/{victim}").ip is not None
        assert str(c.state.pod(f"default/{victim}").ip) not in _ready_endpoints(c, "default/echo")
        await c.wait_synced()  # every kube-proxy saw the slice change
        assert victim not in await _hit(c, 20)
        await c.pod(f"default/{victim}").exec(["rm", "/tmp/unready"])
        await c.wait_for(lambda: c.state.pod(f"default/{victim}").status.ready, 30)
        await c.wait_synced()
        assert victim in await _hit(c, 30)


@virtual_time
async def test_crash_loop_backoff_doubles() -> None:
    async with run(LIVENESS, wait=False) as c:
        crash = "default/crasher"  # sleep 1; exit 3 — forever
        times = []
        for n in (1, 2, 3, 4):
            await c.wait_for(lambda n=n: c.pod(crash).container_status().restart_count >= n, 200)
            times.append(c.now())
        # First restart immediate, then back-off 10 s, 20 s, 40 s after each exit (runs 1 s).
        gaps = [round(b - a - 1) for a, b in zip(times, times[1:])]
        assert gaps == [10, 20, 40]
        await c.advance(1.5)
        st = c.pod(crash).container_status()
        assert st.state == "waiting" and st.reason == "CrashLoopBackOff"
        assert c.state.pod(crash).status.phase == "Running"  # restartPolicy Always


@virtual_time
async def test_liveness_failure_restarts_the_container() -> None:
    async with run(LIVENESS, wait=False) as c:
        key = "default/liveness-exec"
        await c.wait_for(lambda: c.state.pod(key).status.phase == "Running", 30)
        await c.advance(30)
        assert c.pod(key).container_status().restart_count == 0
        # The file goes at 30 s; after 3 failures × 5 s the kubelet kills the container: the
        # shell (PID 1) ignores SIGTERM, so SIGKILL comes after the 30 s grace period.
        await c.wait_for(lambda: c.pod(key).container_status().restart_count == 1, 100)
        assert 70 <= c.now() <= 80
        assert c.pod(key).fs().exists("/tmp/healthy")  # a fresh container ran its command


@virtual_time
async def test_init_containers_then_completion_with_restart_never() -> None:
    async with run(LIVENESS, wait=False) as c:
        key = "default/job-like"
        await c.advance(1)
        st = c.state.pod(key).status
        assert st.phase == "Pending" and st.condition("Initialized").status == "False"
        await c.advance(2)
        assert c.state.pod(key).status.condition("Initialized").status == "True"
        await c.wait_for(lambda: c.state.pod(key).status.phase == "Succeeded", 30)
        assert c.state.pod(key).status.condition("Ready").reason == "PodCompleted"


@virtual_time
async def test_graceful_deletion_keeps_terminating_endpoint_until_containers_exit() -> None:
    async with run(BASIC) as c:
        victim = sorted(p.key for p in c.state.pods("default") if p.metadata.labels.get("app") == "echo")[0]
        ip = c.pod(victim).ip
        c.delete_pod(victim)
        eps = [e for s in c.state.endpoint_slices("default/echo") for e in s.endpoints if ip in e.addresses]
        assert eps and eps[0].conditions.terminating and not eps[0].conditions.ready
        await c.advance(1)  # the echo server exits on SIGTERM: the pod goes at once
        assert c.state.store.get("Pod", *victim.split("/")) is None
        # The client (sleep as PID 1) ignores SIGTERM: it stays for its 30 s grace period.
        c.delete_pod("default/client")
        await c.advance(29)
        assert c.state.store.get("Pod", "default", "client") is not None
        await c.advance(2)
        assert c.state.store.get("Pod", "default", "client") is None
        assert "default/client" not in c.fabric.namespaces


@virtual_time
async def test_node_not_ready_removes_endpoints_then_evicts() -> None:
    async with run(BASIC) as c:
        node = "knet-worker"
        on_node = [p.key for p in c.state.pods("default") if p.spec.node_name == node
                   and p.metadata.labels.get("app") == "echo"]
        assert on_node
        c.set_node_ready(node, False)
        ips = {str(c.state.pod(k).ip) for k in on_node}
        assert not ips & _ready_endpoints(c, "default/echo")
        await c.advance(299)
        assert all(c.state.store.get("Pod", *k.split("/")) is not None for k in on_node)
        await c.advance(2)  # tolerationSeconds 300 for node.kubernetes.io/not-ready
        for k in on_node:
            p = c.state.store.get("Pod", *k.split("/"))
            assert p is None or p.terminating
        # The Deployment replaced them on schedulable nodes; traffic flows again.
        await c.wait_for(lambda: len(_ready_endpoints(c, "default/echo")) == 3, 120)
        assert all(c.state.pod(p.key).spec.node_name != node for p in c.state.pods("default")
                   if p.metadata.labels.get("app") == "echo" and not p.terminating)
