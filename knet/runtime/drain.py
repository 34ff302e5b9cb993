"""``kubectl drain`` on the running emulation: cordon, then evict through the PDBs.

Thin asyncio loop over the pure control plane (knet.control.disruption): every pod is
evicted; a 429 (a budget forbids it) is retried every 5 s, as kubectl does, until the pod
goes or the timeout passes; the drain ends when every evicted pod is gone. The lines it
returns are the ones kubectl prints.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from knet.control.disruption import drain_plan
from knet.errors import KnetError

if TYPE_CHECKING:
    from knet.runtime.cluster import RuntimeCluster

RETRY = 5.0  # kubectl drain: "will retry after 5s"


class DrainError(KnetError):
    pass


async def drain(rt: RuntimeCluster, node: str, *, force: bool = False,
                ignore_daemonsets: bool = True, delete_emptydir_data: bool = False,
                grace: float | None = None, timeout: float | None = None) -> list[str]:
    state = rt.state
    state.node(node)  # NotFound for an unknown node
    log: list[str] = []
    was = state.node(node).unschedulable
    state.cordon(node, rt.now())
    log.append(f"node/{node} {'already cordoned' if was else 'cordoned'}")
    plan = drain_plan(state, node, force=force, ignore_daemonsets=ignore_daemonsets,
                      delete_emptydir_data=delete_emptydir_data)
    if plan.errors:
        raise DrainError("error: unable to drain node \"" + node + "\" due to error: "
                         + ", ".join(plan.errors) + ", continuing command...")
    if plan.ignored:
        log.append(plan.warning())
    deadline = None if timeout is None else rt.now() + timeout
    pending = list(plan.evict)
    for key in pending:
        log.append(f"evicting pod {key}")
    uids = {k: state.pod(k).metadata.uid for k in pending}
    while pending:
        retry = []
        for key in pending:
            result = state.evict(key, rt.now(), grace)
            if result.code == 429:
                ns, name = key.split("/", 1)
                log.append(f'error when evicting pods/"{name}" -n "{ns}" (will retry after '
                           f"5s): {result.message}")
                retry.append(key)
            elif not result.ok and result.code != 404:
                raise DrainError(f"error when evicting pods/{key}: {result.message}")
        pending = retry
        if pending:
            if deadline is not None and rt.now() + RETRY > deadline:
                raise DrainError(f"error: unable to drain node \"{node}\": global timeout "
                                 "reached")
            await asyncio.sleep(RETRY)  # virtual seconds under knet.run's clock

    def gone() -> bool:
        for k, uid in uids.items():
            p = state.store.get("Pod", *k.split("/", 1))
            if p is not None and p.metadata.uid == uid:
                return False
        return True

    left = None if deadline is None else max(0.0, deadline - rt.now())
    try:
        await rt.wait_for(gone, left if left is not None else 3600.0)
    except KnetError as e:
        raise DrainError(f"error: unable to drain node \"{node}\": global timeout reached") \
            from e
    for k in plan.evict:
        log.append(f"pod/{k.split('/', 1)[1]} evicted")
    log.append(f"node/{node} drained")
    return log

