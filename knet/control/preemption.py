"""Pod priority and preemption (the Priority admission plugin and kube-scheduler's
DefaultPreemption PostFilter).

Invariants:
- Admission: ``spec.priorityClassName`` → ``spec.priority`` (and ``preemptionPolicy``) from
  the PriorityClass; without a name, the ``globalDefault`` class (the highest, if several),
  else 0. ``system-cluster-critical`` (2000000000) and ``system-node-critical`` (2000001000)
  always exist.
- Preemption runs only for a pod that did not fit, whose policy is PreemptLowerPriority, and
  that has no nominated node with victims still terminating. On each node that passes the
  pod's node affinity, taints and cordon, every lower-priority pod is a potential victim; if
  the pod fits without them, victims are reprieved highest priority first (pods whose
  eviction would break a PodDisruptionBudget are reprieved before the others). The node is
  chosen as upstream ``pickOneNodeForPreemption``: fewest PDB violations, then the lowest
  highest-victim priority, the smallest sum of priorities, the fewest victims, then name.
- Victims are deleted gracefully with the ``DisruptionTarget`` condition (reason
  ``PreemptionByScheduler``) and a ``Preempted`` event; the pod gets
  ``status.nominatedNodeName`` and is scheduled once the victims are gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from knet.control.recorder import record
from knet.control.scheduler import affinity_matches, node_allocatable, pod_requests, untolerated
from knet.control.store import evolve
from knet.model.core import Pod, PodCondition

if TYPE_CHECKING:
    from knet.control.cluster import Cluster

SYSTEM_CLASSES = {"system-cluster-critical": 2_000_000_000,
                  "system-node-critical": 2_000_001_000}
SCHEDULER = "default-scheduler"


def admit(c: Cluster, pod: Pod) -> Pod:
    """The Priority admission plugin (priority already given is kept, as the API does for
    a matching class)."""
    name = pod.spec.extra.get("priorityClassName") or ""
    value: int | None = None
    policy = pod.spec.extra.get("preemptionPolicy") or ""
    if name:
        if name in SYSTEM_CLASSES:
            value = SYSTEM_CLASSES[name]
        else:
            pc = c.store.get("PriorityClass", "", name)
            if pc is not None:
                value, policy = pc.value, policy or pc.preemption_policy
    else:
        defaults = [pc for pc in c.store.list("PriorityClass") if pc.global_default]
        if defaults:
            pc = max(defaults, key=lambda p: p.value)
            value, policy = pc.value, policy or pc.preemption_policy
            extra = {**pod.spec.extra, "priorityClassName": pc.metadata.name}
            pod = evolve(pod, spec=evolve(pod.spec, extra=extra))
    if value is None or (value == pod.spec.priority and
                         pod.spec.extra.get("preemptionPolicy") == (policy or None)):
        return pod
    extra = dict(pod.spec.extra)
    extra["preemptionPolicy"] = policy or "PreemptLowerPriority"
    return evolve(pod, spec=evolve(pod.spec, priority=value, extra=extra))


def _active(p: Pod) -> bool:
    return p.status.phase not in ("Succeeded", "Failed")


def _fits(need: Any, alloc: tuple[int, int, int, int], pods: list[Pod]) -> bool:
    cpu = sum(pod_requests(p).cpu for p in pods)
    mem = sum(pod_requests(p).memory for p in pods)
    return (cpu + need.cpu <= alloc[0] and mem + need.memory <= alloc[1]
            and len(pods) + 1 <= alloc[3])


def _violates(c: Cluster, victims: list[Pod]) -> set[str]:
    """Victims whose eviction the PDBs do not allow (filterPodsWithPDBViolation)."""
    from knet.control.disruption import matches

    left: dict[tuple[str, str], int] = {}
    out: set[str] = set()
    for v in victims:
        for pdb in c.store.list("PodDisruptionBudget", v.namespace):
            if not matches(pdb, v):
                continue
            k = (pdb.metadata.namespace, pdb.metadata.name)
            left.setdefault(k, pdb.status.disruptions_allowed)
            left[k] -= 1
            if left[k] < 0:
                out.add(v.key)
    return out


def _select_victims(c: Cluster, pod: Pod, node: Any) -> tuple[list[Pod], int] | None:
    alloc = node_allocatable(node)
    on_node = [p for p in c.store.pods_on_node(node.name) if _active(p)]
    lower = [p for p in on_node if p.spec.priority < pod.spec.priority and not p.terminating]
    if not lower:
        return None
    lower_keys = {p.key for p in lower}
    keep = [p for p in on_node if p.key not in lower_keys]
    need = pod_requests(pod)
    if not _fits(need, alloc, keep):
        return None
    # reprieve: most important first; PDB-protected pods get the first chance to stay
    lower.sort(key=lambda p: (-p.spec.priority, p.metadata.creation_index))
    bad = _violates(c, lower)
    victims: list[Pod] = []
    violations = 0
    for group in ([p for p in lower if p.key in bad], [p for p in lower if p.key not in bad]):
        for p in group:
            if _fits(need, alloc, keep + [p]):
                keep.append(p)
            else:
                victims.append(p)
                violations += p.key in bad
    return victims, violations


def preempt(c: Cluster, pod: Pod) -> str | None:
    """PostFilter for an unschedulable pod: the nominated node, or None."""
    from knet.control.cluster import timestamp

    if pod.spec.priority <= 0 or pod.spec.extra.get("preemptionPolicy") == "Never":
        return None
    nominated = pod.status.nominated_node_name
    if nominated and any(p.terminating and p.spec.priority < pod.spec.priority
                         for p in c.store.pods_on_node(nominated)):
        return nominated  # victims still leaving: wait for them
    best: tuple[tuple[Any, ...], Any, list[Pod]] | None = None
    for node in sorted(c.store.list("Node"), key=lambda n: n.name):
        if node.unschedulable or not affinity_matches(pod, node) or untolerated(
                node.taints, pod.spec.tolerations, ("NoSchedule", "NoExecute")) is not None:
            continue
        found = _select_victims(c, pod, node)
        if found is None or not found[0]:
            continue
        victims, violations = found
        key = (violations, max(v.spec.priority for v in victims),
               sum(v.spec.priority for v in victims), len(victims), node.name)
        if best is None or key < best[0]:
            best = (key, node, victims)
    if best is None:
        return None
    _, node, victims = best
    for v in victims:
        conds = tuple(x for x in v.status.conditions if x.type != "DisruptionTarget") + (
            PodCondition("DisruptionTarget", "True", "PreemptionByScheduler",
                         f"{SCHEDULER}: preempting to accommodate a higher priority pod",
                         timestamp(c.now)),)
        c.create(evolve(v, status=evolve(v.status, conditions=conds)))
        record(c, v, "Normal", "Preempted",
               f"Preempted by pod {pod.metadata.uid} on node {node.name}", SCHEDULER)
        c.delete_pod(v.key, c.now)
    cur = c.store.get("Pod", pod.namespace, pod.name)
    if cur is not None:
        c.create(evolve(cur, status=evolve(cur.status, nominated_node_name=node.name)))
    return str(node.name)
