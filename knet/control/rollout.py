"""Rolling updates of StatefulSets and DaemonSets (Deployments roll in workloads.py).

Invariants:
- StatefulSet ``RollingUpdate`` (stateful_set_control.go): once every pod is Running and
  Ready and none is terminating, the pod with the highest ordinal ≥ ``partition`` whose
  ``controller-revision-hash`` is not the current revision is deleted; the controller
  recreates it from the current template; the next waits for it to be Ready. ``OnDelete``
  never deletes: pods pick the new template when the user deletes them. (maxUnavailable is
  alpha in v1.32, gate off: one pod at a time.)
- DaemonSet ``RollingUpdate`` (daemon/update.go rollingUpdate): ``maxUnavailable`` (default
  1) and ``maxSurge`` (default 0) are resolved against the number of nodes that should run
  the daemon, percentages rounded up. Without surge, old pods are deleted — unavailable ones
  first and freely, then available ones while fewer than maxUnavailable nodes lack an
  available pod — and the daemon controller creates the new pod. With surge, a new pod is
  started next to the old one on up to maxSurge nodes, and the old one goes once the new one
  is available. ``OnDelete`` waits for the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from knet.control.disruption import scaled_value
from knet.model.core import Pod

if TYPE_CHECKING:
    from knet.control.cluster import Cluster

REVISION_HASH = "controller-revision-hash"


def _ready(p: Pod) -> bool:
    return not p.terminating and p.status.phase == "Running" and p.status.ready


def statefulset_update(c: Cluster, ss: Any, pods: list[Pod], rev: str, ordinal: Any) -> None:
    if ss.update_strategy_type != "RollingUpdate":
        return
    name = ss.metadata.name
    start = ss.ordinals_start
    wanted = range(start, start + ss.replicas)
    mine = [p for p in pods if ordinal(p.name, name) in wanted]
    if len(mine) < ss.replicas or not all(_ready(p) for p in mine):
        return  # scaling or a pod not Ready yet: the update waits
    partition = getattr(ss, "partition", 0)
    for p in sorted(mine, key=lambda p: -ordinal(p.name, name)):
        if ordinal(p.name, name) < start + partition:
            break
        if p.metadata.labels.get(REVISION_HASH) != rev:
            c.delete_pod(p.key, c.now)
            return  # one at a time, highest ordinal first


def daemonset_plan(ds: Any, h: str, nodes: dict[str, list[Pod]]) -> tuple[set[str], set[str]]:
    """(old pod keys to delete, nodes that get a surge pod) for one sync.

    ``nodes`` maps each node that should run the daemon to its active daemon pods."""
    if getattr(ds, "update_strategy_type", "RollingUpdate") != "RollingUpdate":
        return set(), set()
    total = len(nodes)
    surge = scaled_value(getattr(ds, "max_surge", 0), total, True)
    max_un = scaled_value(getattr(ds, "max_unavailable", 1), total, True)
    if surge == 0 and max_un == 0:
        max_un = 1
    delete: set[str] = set()
    surge_nodes: set[str] = set()
    if surge == 0:
        unavailable = sum(1 for pods in nodes.values() if not any(_ready(p) for p in pods))
        budget = max_un - unavailable
        for node in sorted(nodes):
            old = [p for p in nodes[node] if p.metadata.labels.get(REVISION_HASH) != h]
            if not old:
                continue
            if not any(_ready(p) for p in nodes[node]):
                delete.update(p.key for p in old)  # unavailable already: free to replace
            elif budget > 0:
                delete.update(p.key for p in old)
                budget -= 1
        return delete, surge_nodes
    surging = 0
    for node in sorted(nodes):
        new = [p for p in nodes[node] if p.metadata.labels.get(REVISION_HASH) == h]
        old = [p for p in nodes[node] if p.metadata.labels.get(REVISION_HASH) != h]
        if new and old:
            if any(_ready(p) for p in new):
                delete.update(p.key for p in old)
            else:
                surging += 1
    for node in sorted(nodes):
        new = [p for p in nodes[node] if p.metadata.labels.get(REVISION_HASH) == h]
        old = [p for p in nodes[node] if p.metadata.labels.get(REVISION_HASH) != h]
        if old and not new and surging < surge:
            surge_nodes.add(node)
            surging += 1
    return delete, surge_nodes


# --- Deployment status, progress deadline, history, undo -----------------------------------

REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"


@dataclass(frozen=True, slots=True)
class DeploymentCondition:
    type: str  # Available, Progressing, ReplicaFailure
    status: str
    reason: str
    message: str
    last_update_time: str = ""
    last_transition_time: str = ""


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    observed_generation: int = 1
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    unavailable_replicas: int = 0
    conditions: tuple[DeploymentCondition, ...] = ()

    def condition(self, type: str) -> DeploymentCondition | None:
        return next((c for c in self.conditions if c.type == type), None)


def _available(p: Pod, min_ready: int, now: float) -> tuple[bool, float | None]:
    """(available, when it becomes available) — podutil.IsPodAvailable."""
    from knet.control.batch import seconds

    if not _ready(p):
        return False, None
    if min_ready <= 0:
        return True, None
    cond = p.status.condition("Ready")
    since = seconds(cond.last_transition_time) if cond is not None and \
        cond.last_transition_time else now
    if since + min_ready <= now:
        return True, None
    return False, since + min_ready


def deployment_status(c: Cluster, d: Any, new: Any, rss: list[Any]) -> None:
    """syncRolloutStatus: counts, Available/Progressing conditions, progress deadline,
    revision annotation, and cleanupDeployment (revisionHistoryLimit)."""
    from knet.control.batch import seconds
    from knet.control.cluster import timestamp
    from knet.control.workloads import is_active, owned_pods, resolve_int_or_percent

    now = c.now
    ts = timestamp(now)
    pods_of = {r.metadata.name: [p for p in owned_pods(c, r) if is_active(p)] for r in rss}
    all_pods = [p for ps in pods_of.values() for p in ps]
    available = 0
    for p in all_pods:
        ok, when = _available(p, d.min_ready_seconds, now)
        available += ok
        if when is not None:
            c.requeue_at(d, when)
    updated = len(pods_of.get(new.metadata.name, [])) if new is not None else 0
    st = DeploymentStatus(1, len(all_pods), updated, sum(1 for p in all_pods if _ready(p)),
                          available, max(0, d.replicas - available))
    prev: DeploymentStatus = d.status or DeploymentStatus(conditions=())
    max_un = resolve_int_or_percent(d.max_unavailable, d.replicas, False) \
        if d.strategy_type == "RollingUpdate" else 0
    conds: list[DeploymentCondition] = []

    def cond(type: str, status: str, reason: str, message: str, touch: bool = True
             ) -> DeploymentCondition:
        old = prev.condition(type)
        same = old is not None and old.status == status
        changed = old is None or old.reason != reason or old.status != status
        return DeploymentCondition(
            type, status, reason, message,
            ts if (touch and changed) or old is None else old.last_update_time,
            old.last_transition_time if same and old is not None else ts)

    if available >= d.replicas - max_un:
        conds.append(cond("Available", "True", "MinimumReplicasAvailable",
                          "Deployment has minimum availability."))
    else:
        conds.append(cond("Available", "False", "MinimumReplicasUnavailable",
                          "Deployment does not have minimum availability."))
    name = new.metadata.name if new is not None else ""
    complete = (new is not None and updated == d.replicas and len(all_pods) == d.replicas
                and available == d.replicas)
    old_prog = prev.condition("Progressing")
    if d.paused:
        conds.append(cond("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused"))
    elif complete:
        conds.append(cond("Progressing", "True", "NewReplicaSetAvailable",
                          f'ReplicaSet "{name}" has successfully progressed.'))
        c.cancel_requeue(d)  # nothing left to time out
    elif old_prog is not None and old_prog.reason == "ProgressDeadlineExceeded":
        conds.append(old_prog)
    else:
        moved = (st.replicas, st.updated_replicas, st.ready_replicas, st.available_replicas) != (
            prev.replicas, prev.updated_replicas, prev.ready_replicas, prev.available_replicas)
        if old_prog is None or moved or old_prog.reason == "NewReplicaSetAvailable":
            reason = "NewReplicaSetCreated" if old_prog is None else "ReplicaSetUpdated"
            msg = (f'Created new replica set "{name}"' if old_prog is None
                   else f'ReplicaSet "{name}" is progressing.')
            p_cond = DeploymentCondition("Progressing", "True", reason, msg, ts,
                                         old_prog.last_transition_time if old_prog is not None
                                         and old_prog.status == "True" else ts)
        else:
            p_cond = old_prog
        deadline = d.progress_deadline_seconds
        if deadline is not None:
            due = seconds(p_cond.last_update_time) + deadline
            if now >= due:
                p_cond = DeploymentCondition(
                    "Progressing", "False", "ProgressDeadlineExceeded",
                    f'ReplicaSet "{name}" has timed out progressing.', ts, ts)
                from knet.control.recorder import record
                record(c, d, "Warning", "ProgressDeadlineExceeded",
                       f'Deployment "{d.metadata.name}" has timed out progressing.',
                       "deployment-controller")
            else:
                c.requeue_at(d, due)
        conds.append(p_cond)
    st = DeploymentStatus(1, st.replicas, st.updated_replicas, st.ready_replicas,
                          st.available_replicas, st.unavailable_replicas, tuple(conds))
    cur = c.store.get("Deployment", d.metadata.namespace, d.metadata.name)
    if cur is None:
        return
    rev = new.metadata.annotations.get(REVISION, "") if new is not None else ""
    changes: dict[str, Any] = {}
    if st != cur.status:
        changes["status"] = st
    if rev and cur.metadata.annotations.get(REVISION) != rev:
        from knet.control.store import evolve

        changes["metadata"] = evolve(cur.metadata,
                                     annotations={**cur.metadata.annotations, REVISION: rev})
    if changes:
        from knet.control.store import evolve

        c.create(evolve(cur, **changes))
    _cleanup_history(c, d, new, rss, pods_of)


def _cleanup_history(c: Cluster, d: Any, new: Any, rss: list[Any],
                     pods_of: dict[str, list[Pod]]) -> None:
    limit = d.revision_history_limit
    old = [r for r in rss if r is not new and r.replicas == 0
           and not pods_of.get(r.metadata.name)]
    old.sort(key=lambda r: int(r.metadata.annotations.get(REVISION, "0") or 0))
    for r in old[:max(0, len(old) - limit)]:
        c.delete_object(r)


def undo(c: Cluster, key: str, to_revision: int = 0, now: float | None = None) -> int:
    """``kubectl rollout undo``: the Deployment's template becomes that of revision
    ``to_revision`` (default: the previous one); returns the revision rolled back to."""
    from knet.control.store import evolve
    from knet.errors import UsageError

    d = c.get("Deployment", key)
    rss = [o for o in c.store.owned_by(d.metadata.uid) if o.kind == "ReplicaSet"]
    by_rev = {int(r.metadata.annotations.get(REVISION, "0") or 0): r for r in rss}
    current = int(d.metadata.annotations.get(REVISION, "0") or 0) or max(by_rev, default=0)
    if to_revision == 0:
        older = [r for r in by_rev if r < current]
        if not older:
            raise UsageError("no rollout history found for deployment "
                             f'"{d.metadata.name}"')
        to_revision = max(older)
    rs = by_rev.get(to_revision)
    if rs is None:
        raise UsageError(f"unable to find specified revision {to_revision} in history")
    tpl = dict(rs.template)
    meta = dict(tpl.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items()
                      if k != POD_TEMPLATE_HASH}
    tpl["metadata"] = meta
    c.apply(evolve(d, template=tpl), now=now)
    return to_revision
