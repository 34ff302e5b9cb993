"""Memory limits and node memory pressure on the work model (kubelet's OOM and eviction
manager).

Invariants:
- A container whose share of its pod's emulated memory (``knet.runtime.work``: the
  ``knet.dev/memory`` annotation or ``cluster.work.set_memory``) exceeds its memory limit is
  OOM-killed: exit code 137, reason ``OOMKilled``; restartPolicy decides what follows (and
  CrashLoopBackOff if it keeps happening).
- A node whose pods use more than its allocatable memory minus the hard eviction threshold
  (``memory.available<100Mi``, kubelet's default) evicts pods one at a time in kubelet's
  order (rankMemoryPressure): pods using more than their requests first, then lower
  priority, then the largest use above the request. An evicted pod is killed at once (hard
  threshold: no grace) and ends Failed with reason ``Evicted``, the kubelet's message, the
  ``DisruptionTarget`` condition (``TerminationByKubelet``) and an ``Evicted`` event; its
  controller replaces it elsewhere. The node gets the ``node.kubernetes.io/memory-pressure``
  NoSchedule taint while under pressure.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from knet.control.quantity import amount
from knet.control.recorder import record
from knet.control.store import evolve
from knet.model.core import Pod, PodCondition, Taint

if TYPE_CHECKING:
    from knet.runtime.cluster import RuntimeCluster

THRESHOLD = 100 * 1024 * 1024  # evictionHard memory.available<100Mi
PRESSURE_TAINT = "node.kubernetes.io/memory-pressure"
OOM_EXIT = 137


def _mi(v: float) -> str:
    return f"{int(v // (1024 * 1024))}Mi"


def _limit(c: Any) -> int | None:
    v = c.limits.get("memory")
    return amount("memory", v) if v is not None else None


def _request(p: Pod) -> int:
    return sum(amount("memory", c.requests["memory"]) for c in p.spec.containers
               if "memory" in c.requests)


def check(rt: RuntimeCluster, key: str) -> None:
    """Re-evaluate one pod's containers and its node after a memory change."""
    if getattr(rt, "_closed", False):
        return
    w = rt.work.pods.get(key)
    worker = rt._worker(key)
    if w is None or worker is None:
        return
    share = w.memory / max(1, len(w.containers))
    for c in worker.containers:
        lim = _limit(c.spec)
        if lim is not None and share > lim and c.state == "running" and not c.killing:
            c.oom = True
            c.kill(OOM_EXIT)
    node = worker.pod.spec.node_name
    if node:
        node_pressure(rt, node)


def rank(pods: list[tuple[Pod, float]]) -> list[tuple[Pod, float]]:
    """kubelet's rankMemoryPressure: exceeds requests, priority, usage above requests."""
    def key(item: tuple[Pod, float]) -> tuple[Any, ...]:
        p, used = item
        req = _request(p)
        return (not used > req, p.spec.priority, -(used - req), p.key)
    return sorted(pods, key=key)


def node_pressure(rt: RuntimeCluster, node: str) -> None:
    state = rt.state
    n = state.store.get("Node", "", node)
    if n is None:
        return
    alloc = n.allocatable or n.capacity
    if "memory" not in alloc:
        return
    capacity = amount("memory", alloc["memory"])
    live: list[tuple[Pod, float]] = []
    for p in state.store.pods_on_node(node):
        w = rt.work.pods.get(p.key)
        if w is not None and p.status.phase == "Running" and not getattr(
                rt._worker(p.key), "done", True):
            live.append((p, w.memory))
    available = capacity - sum(m for _, m in live)
    pressured = any(t.key == PRESSURE_TAINT for t in n.taints)
    if available >= THRESHOLD:
        if pressured:
            state.apply(evolve(n, taints=tuple(t for t in n.taints if t.key != PRESSURE_TAINT)),
                        rt.now())
        return
    if not pressured:
        state.apply(evolve(n, taints=n.taints + (Taint(PRESSURE_TAINT, "NoSchedule"),)),
                    rt.now())
    victim, used = rank(live)[0]
    c = victim.spec.containers[0]
    req = c.requests.get("memory", "0")
    msg = (f"The node was low on resource: memory. Threshold quantity: {_mi(THRESHOLD)}, "
           f"available: {max(0, int(available // 1024))}Ki. Container {c.name} was using "
           f"{int(used // 1024)}Ki, request is {req}, has larger consumption of memory. ")
    rt.loop.create_task(_evict(rt, victim.key, msg))


async def _evict(rt: RuntimeCluster, key: str, message: str) -> None:
    from knet.control.cluster import timestamp

    worker = rt._worker(key)
    if worker is None or worker.done:
        return
    worker.done = True  # stop publishing: the eviction manager writes the final status
    await worker.terminate(0)
    rt.work.pod_gone(key)
    cur = rt.state.store.get("Pod", *key.split("/", 1))
    if cur is None:
        return
    t = timestamp(rt.now())
    conds = [x for x in cur.status.conditions if x.type not in ("Ready", "ContainersReady",
                                                              "DisruptionTarget")]
    conds += [PodCondition("Ready", "False", "PodFailed", "", t),
              PodCondition("ContainersReady", "False", "PodFailed", "", t),
              PodCondition("DisruptionTarget", "True", "TerminationByKubelet", message, t)]
    st = evolve(cur.status, phase="Failed", reason="Evicted", message=message,
                conditions=tuple(conds), container_statuses=tuple(
                    evolve(cs, ready=False, state="terminated", reason="Error",
                           exit_code=OOM_EXIT) for cs in cur.status.container_statuses))
    rt.state.apply(evolve(cur, status=st), rt.now())
    record(rt.state, cur, "Warning", "Evicted", message, "kubelet")
    await asyncio.sleep(0)
    node = cur.spec.node_name
    if node:
        node_pressure(rt, node)
