"""PodDisruptionBudgets: the disruption controller, the eviction subresource, node drain.

Invariants:
- ``sync_pdb`` computes the status as pkg/controller/disruption does: ``expectedPods`` and
  ``desiredHealthy`` from ``minAvailable`` / ``maxUnavailable`` (integers, or percentages of
  the owning controllers' scale, rounded up), ``currentHealthy`` = matching pods that are Ready
  and not being deleted, ``disruptionsAllowed = max(0, currentHealthy - desiredHealthy)`` less
  the pods just evicted (``disruptedPods``), and the ``DisruptionAllowed`` condition.
- ``evict`` is the API server's ``pods/eviction`` (registry/core/pod/storage/eviction.go): a
  value, never an exception — 201 when the pod is going, 429 with the real message when a
  budget forbids it, 404 for a missing pod, 500 for several budgets.
- ``drain_plan`` is ``kubectl drain``'s filter (DaemonSet pods ignored, mirror pods skipped,
  bare pods and emptyDir data refused unless forced); the runtime loops evictions on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from knet.control.recorder import record
from knet.control.store import evolve
from knet.model.controllers import JobCondition, PodDisruptionBudget, PodDisruptionBudgetStatus
from knet.model.core import Pod, PodCondition

if TYPE_CHECKING:
    from knet.control.cluster import Cluster

SOURCE = "controllermanager"
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
DISRUPTED_TIMEOUT = 120.0  # DeletionTimeout: an evicted pod not deleted within 2 min is healthy again
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def scaled_value(v: int | str, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(v, int):
        return v
    pct = int(v.rstrip("%"))
    x = pct * total / 100
    return math.ceil(x) if round_up else math.floor(x)


def matches(pdb: PodDisruptionBudget, pod: Pod) -> bool:
    if pdb.selector is None or pdb.metadata.namespace != pod.namespace:
        return False  # a nil selector selects nothing (policy/v1)
    return pdb.selector.matches(pod.metadata.labels)


def _selected(c: Cluster, pdb: PodDisruptionBudget) -> list[Pod]:
    if pdb.selector is None:
        return []
    sel = pdb.selector
    ns = pdb.metadata.namespace
    if not sel.match_expressions and sel.match_labels:
        pods = c.store.pods_matching(ns, dict(sel.match_labels))
    else:
        pods = [p for p in c.store.list("Pod", ns) if sel.matches(p.metadata.labels)]
    return list(pods)


def _healthy(p: Pod) -> bool:
    return not p.terminating and p.status.phase == "Running" and p.status.ready


def _scale_of(c: Cluster, pod: Pod) -> tuple[tuple[str, str], int] | None:
    """(controller key, its scale) through the owner chain, as getPodReplicaSet & co."""
    ref = pod.metadata.controller_ref
    ns = pod.namespace
    if ref is None:
        return None
    if ref.kind == "ReplicaSet":
        rs = c.store.get("ReplicaSet", ns, ref.name)
        if rs is None:
            return None
        dref = rs.metadata.controller_ref
        if dref is not None and dref.kind == "Deployment":
            d = c.store.get("Deployment", ns, dref.name)
            if d is not None:
                return ("Deployment", d.metadata.name), d.replicas
        return ("ReplicaSet", rs.metadata.name), rs.replicas
    if ref.kind in ("StatefulSet", "ReplicationController"):
        o = c.store.get(ref.kind, ns, ref.name)
        if o is not None:
            return (ref.kind, o.metadata.name), o.replicas
    return None


def budget(c: Cluster, pdb: PodDisruptionBudget, pods: list[Pod]) -> tuple[int, int, str]:
    """(expectedPods, desiredHealthy, error) — getExpectedPodCount."""
    if pdb.max_unavailable is not None or isinstance(pdb.min_available, str):
        scales: dict[tuple[str, str], int] = {}
        for p in pods:
            s = _scale_of(c, p)
            if s is None:
                return len(pods), 0, f"found no controllers for pod {p.name!r}"
            scales[s[0]] = s[1]
        expected = sum(scales.values())
        if pdb.max_unavailable is not None:
            mu = scaled_value(pdb.max_unavailable, expected, True)
            return expected, max(0, expected - mu), ""
        assert pdb.min_available is not None
        return expected, scaled_value(pdb.min_available, expected, True), ""
    if pdb.min_available is not None:
        return len(pods), int(pdb.min_available), ""
    return len(pods), 0, ""


def sync_pdb(c: Cluster, pdb: PodDisruptionBudget) -> None:
    from knet.control.cluster import timestamp

    pods = _selected(c, pdb)
    expected, desired, error = budget(c, pdb, pods)
    # disruptedPods: evicted pods stay there until deleted, or for 2 minutes
    disrupted = {}
    live = {p.name: p for p in pods}
    for name, when in pdb.status.disrupted_pods.items():
        p = live.get(name)
        t = _seconds(when)
        if p is not None and not p.terminating and t + DISRUPTED_TIMEOUT > c.now:
            disrupted[name] = when
            c.requeue_at(pdb, t + DISRUPTED_TIMEOUT)
    healthy = sum(1 for p in pods if _healthy(p) and p.name not in disrupted)
    allowed = max(0, healthy - desired) if not error else 0
    if expected <= 0 and not error:
        allowed = 0 if pdb.max_unavailable is None else allowed
    prev = pdb.status.conditions[0] if pdb.status.conditions else None
    ok = allowed > 0
    reason = "SyncFailed" if error else ("SufficientPods" if ok else "InsufficientPods")
    cond = JobCondition("DisruptionAllowed", "True" if ok else "False", reason, error,
                        prev.last_transition_time if prev is not None and prev.status == (
                            "True" if ok else "False") and prev.reason == reason
                        else timestamp(c.now))
    if error and (prev is None or prev.message != error):
        record(c, pdb, "Warning", "NoControllers", error, SOURCE)
    st = PodDisruptionBudgetStatus(healthy, desired, allowed, expected, 1, disrupted, (cond,))
    if st != pdb.status:
        c.create(evolve(pdb, status=st))


def _seconds(ts: str) -> float:
    from knet.control.batch import seconds

    return seconds(ts)


def on_pod(c: Cluster, pod: Pod) -> None:
    for pdb in c.store.list("PodDisruptionBudget", pod.namespace):
        if matches(pdb, pod):
            c.mark_dirty(pdb)


# --- eviction -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Eviction:
    """The API server's answer to ``POST pods/{name}/eviction``."""

    code: int  # 201 Created (pod deleting), 404, 429 TooManyRequests, 500
    message: str
    causes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.code == 201

    @property
    def reason(self) -> str:
        return {201: "", 404: "NotFound", 429: "TooManyRequests"}.get(self.code,
                                                                       "InternalError")


def _can_ignore_pdb(p: Pod) -> bool:
    return p.terminating or p.status.phase in ("Succeeded", "Failed", "Pending")


def evict(c: Cluster, key: str, grace: float | None = None) -> Eviction:
    """Evict one pod through its PodDisruptionBudget (one call = one API request)."""
    from knet.control.cluster import timestamp

    ns, name = key.split("/", 1) if "/" in key else ("default", key)
    pod = c.store.get("Pod", ns, name)
    if pod is None:
        return Eviction(404, f'pods "{name}" not found')
    if _can_ignore_pdb(pod):
        _delete(c, pod, grace)
        return Eviction(201, "")
    pdbs = [b for b in c.store.list("PodDisruptionBudget", ns) if matches(b, pod)]
    if len(pdbs) > 1:
        return Eviction(500, "This pod has more than one PodDisruptionBudget, which the "
                             "eviction subresource does not support.")
    if not pdbs:
        _delete(c, pod, grace)
        return Eviction(201, "")
    pdb = c.store.require("PodDisruptionBudget", ns, pdbs[0].metadata.name)
    st = pdb.status
    if not _healthy(pod) and (pdb.unhealthy_pod_eviction_policy == "AlwaysAllow" or (
            st.current_healthy >= st.desired_healthy and st.desired_healthy > 0)):
        _delete(c, pod, grace)  # an unhealthy pod may go without using the budget
        return Eviction(201, "")
    if st.disruptions_allowed <= 0:
        return Eviction(429, VIOLATION, (
            f"The disruption budget {pdb.metadata.name} needs {st.desired_healthy} healthy "
            f"pods and has {st.current_healthy} currently",))
    disrupted = {**st.disrupted_pods, pod.name: timestamp(c.now)}
    c.create(evolve(pdb, status=evolve(st, disruptions_allowed=st.disruptions_allowed - 1,
                                       disrupted_pods=disrupted)))
    _delete(c, pod, grace)
    return Eviction(201, "")


def _delete(c: Cluster, pod: Pod, grace: float | None) -> None:
    from knet.control.cluster import timestamp

    if not pod.terminating and pod.status.phase not in ("Succeeded", "Failed"):
        # PodDisruptionConditions (GA 1.31): the pod says why it goes
        conds = tuple(x for x in pod.status.conditions if x.type != "DisruptionTarget") + (
            PodCondition("DisruptionTarget", "True", "EvictionByEvictionAPI",
                         "Eviction API: evicting", timestamp(c.now)),)
        c.create(evolve(pod, status=evolve(pod.status, conditions=conds)))
    c.delete_pod(pod.key, c.now, grace)


# --- kubectl drain --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DrainPlan:
    evict: tuple[str, ...]  # pod keys, in kubectl's order
    ignored: tuple[str, ...]  # DaemonSet-managed pods (warned about)
    errors: tuple[str, ...]  # why the drain cannot proceed (bare pods, local storage)

    def warning(self) -> str:
        if not self.ignored:
            return ""
        return "Warning: ignoring DaemonSet-managed Pods: " + ", ".join(self.ignored)


def drain_plan(c: Cluster, node: str, *, force: bool = False, ignore_daemonsets: bool = True,
               delete_emptydir_data: bool = False) -> DrainPlan:
    """kubectl's pod filters (k8s.io/kubectl/pkg/drain/filters.go), in that order."""
    evict_: list[str] = []
    ignored: list[str] = []
    bare: list[str] = []
    local: list[str] = []
    daemon: list[str] = []
    for p in sorted(c.store.pods_on_node(node), key=lambda p: p.key):
        if p.status.phase in ("Succeeded", "Failed"):
            evict_.append(p.key)  # finished pods are deleted without question
            continue
        if MIRROR_ANNOTATION in p.metadata.annotations:
            continue  # static pods: the kubelet owns them
        ref = p.metadata.controller_ref
        if ref is not None and ref.kind == "DaemonSet":
            (ignored if ignore_daemonsets else daemon).append(p.key)
            continue
        if ref is None and not force:
            bare.append(p.key)
            continue
        if any("emptyDir" in v for v in _volumes(p)) and not delete_emptydir_data:
            local.append(p.key)
            continue
        evict_.append(p.key)
    errors: list[str] = []
    if bare:
        errors.append("cannot delete Pods that declare no controller (use --force to "
                      "override): " + ", ".join(bare))
    if daemon:
        errors.append("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to "
                      "ignore): " + ", ".join(daemon))
    if local:
        errors.append("cannot delete Pods with local storage (use --delete-emptydir-data to "
                      "override): " + ", ".join(local))
    return DrainPlan(tuple(evict_), tuple(ignored), tuple(errors))


def _volumes(p: Pod) -> list[Any]:
    return list(getattr(p.spec, "volumes", ()) or ())
