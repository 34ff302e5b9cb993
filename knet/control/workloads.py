"""Workload controllers: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job.

Each ``sync_*`` is one reconcile of one object against the store, like the controller's
``syncHandler``: it reads the store, then writes through the cluster (create/update/delete),
and is re-run whenever the object or one of its pods changes, until nothing changes.
Sources: pkg/controller/deployment (rolling.go, recreate.go, sync.go), replicaset,
statefulset (stateful_set_control.go), daemon (daemon_controller.go, util), job.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping

from knet.control import rollout, storage
from knet.control.store import evolve
from knet.control.naming import random_suffix, template_hash
from knet.control.scheduler import affinity_matches, untolerated
from knet.model.apps import DaemonSet, Deployment, Job, ReplicaSet, StatefulSet
from knet.model.core import Node, NodeSelectorTerm, Pod, Toleration
from knet.model.meta import LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference

if TYPE_CHECKING:
    from knet.control.cluster import Cluster

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
STS_POD_NAME = "statefulset.kubernetes.io/pod-name"
POD_INDEX = "apps.kubernetes.io/pod-index"
REVISION_HASH = "controller-revision-hash"


def owner_ref(obj: Any, api_version: str) -> OwnerReference:
    return OwnerReference(obj.kind, obj.metadata.name, obj.metadata.uid, True, api_version)


def with_labels(template: Mapping[str, Any], extra: Mapping[str, str]) -> dict[str, Any]:
    t = dict(template)
    meta = dict(t.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **extra}
    t["metadata"] = meta
    return t


def is_active(p: Pod) -> bool:
    return not p.terminating and p.status.phase not in ("Succeeded", "Failed")


def is_available(p: Pod) -> bool:
    return is_active(p) and p.status.ready


def owned_pods(c: Cluster, obj: Any) -> list[Pod]:
    return [o for o in c.store.owned_by(obj.metadata.uid) if o.kind == "Pod"]


def resolve_int_or_percent(v: int | str, total: int, round_up: bool) -> int:
    if isinstance(v, int):
        return v
    s = str(v)
    if s.endswith("%"):
        x = int(s[:-1]) * total / 100
        return math.ceil(x) if round_up else math.floor(x)
    return int(s)


# --- Deployment --------------------------------------------------------------------------------

def sync_deployment(c: Cluster, d: Deployment) -> None:
    _reconcile_deployment(c, d)
    cur = c.store.get("Deployment", d.metadata.namespace, d.metadata.name)
    if cur is None:
        return
    h = template_hash(cur.template)
    rss = sorted((o for o in c.store.owned_by(cur.metadata.uid) if o.kind == "ReplicaSet"),
                 key=lambda r: r.metadata.creation_index)
    new = next((r for r in rss if r.metadata.labels.get(POD_TEMPLATE_HASH) == h), None)
    if new is not None:  # a rollback makes an old ReplicaSet the newest revision again
        revs = [int(r.metadata.annotations.get(REVISION_ANNOTATION, "0") or 0) for r in rss
                if r is not new]
        mine = int(new.metadata.annotations.get(REVISION_ANNOTATION, "0") or 0)
        if revs and mine < max(revs):
            new = c.create(evolve(new, metadata=evolve(new.metadata, annotations={
                **new.metadata.annotations, REVISION_ANNOTATION: str(max(revs) + 1)})))
            rss = [new if r.metadata.name == new.metadata.name else r for r in rss]
    rollout.deployment_status(c, cur, new, rss)


def _reconcile_deployment(c: Cluster, d: Deployment) -> None:
    h = template_hash(d.template)
    rss = sorted((o for o in c.store.owned_by(d.metadata.uid) if o.kind == "ReplicaSet"),
                 key=lambda r: r.metadata.creation_index)
    new = next((r for r in rss if r.metadata.labels.get(POD_TEMPLATE_HASH) == h), None)
    olds = [r for r in rss if r is not new]
    desired = d.replicas
    if new is None:
        revision = 1 + max((int(r.metadata.annotations.get(REVISION_ANNOTATION, "0"))
                            for r in rss), default=0)
        labels = {**(d.template.get("metadata") or {}).get("labels", {}), POD_TEMPLATE_HASH: h}
        sel = LabelSelector({**d.selector.match_labels, POD_TEMPLATE_HASH: h},
                            d.selector.match_expressions)
        new = ReplicaSet(
            metadata=ObjectMeta(
                name=f"{d.metadata.name}-{h}", namespace=d.metadata.namespace,
                labels=labels,
                annotations={"deployment.kubernetes.io/desired-replicas": str(desired),
                             "deployment.kubernetes.io/max-replicas": str(desired),
                             REVISION_ANNOTATION: str(revision)},
                owner_references=(owner_ref(d, "apps/v1"),)),
            selector=sel, template=with_labels(d.template, {POD_TEMPLATE_HASH: h}),
            replicas=0)
        new = c.create(new)
    if d.paused:
        return
    if d.strategy_type == "Recreate":
        for r in olds:
            if r.replicas:
                c.scale_object(r, 0)
        if any(owned_pods(c, r) for r in olds):
            return  # wait for every old pod to be gone
        if new.replicas != desired:
            c.scale_object(new, desired)
        return
    surge = resolve_int_or_percent(d.max_surge, desired, True)
    unavailable = resolve_int_or_percent(d.max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    # reconcileNewReplicaSet
    total = sum(r.replicas for r in rss if r is not new) + new.replicas
    if new.replicas > desired:
        new = c.scale_object(new, desired)
    elif new.replicas < desired:
        max_total = desired + surge
        if total < max_total:
            new = c.scale_object(new, new.replicas + min(max_total - total, desired - new.replicas))
    # reconcileOldReplicaSets
    olds = [c.store.get("ReplicaSet", r.metadata.namespace, r.metadata.name) for r in olds]
    olds = [r for r in olds if r is not None]
    if not any(r.replicas for r in olds):
        return
    avail = {r.metadata.name: sum(1 for p in owned_pods(c, r) if is_available(p))
             for r in olds + [new]}
    all_count = sum(r.replicas for r in olds) + new.replicas
    min_available = desired - unavailable
    new_unavailable = new.replicas - avail[new.metadata.name]
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return
    # cleanupUnhealthyReplicas, oldest first
    cleaned = 0
    for r in olds:
        if cleaned >= max_scaled_down:
            break
        unhealthy = r.replicas - avail[r.metadata.name]
        if unhealthy <= 0 or not r.replicas:
            continue
        down = min(max_scaled_down - cleaned, unhealthy)
        c.scale_object(r, r.replicas - down)
        cleaned += down
    olds = [c.store.get("ReplicaSet", r.metadata.namespace, r.metadata.name) for r in olds]
    # scaleDownOldReplicaSetsForRollingUpdate
    available_total = sum(avail[r.metadata.name] for r in olds) + avail[new.metadata.name]
    budget = available_total - min_available
    for r in olds:
        if budget <= 0:
            break
        if not r.replicas:
            continue
        down = min(r.replicas, budget)
        c.scale_object(r, r.replicas - down)
        budget -= down


# --- ReplicaSet --------------------------------------------------------------------------------

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(p: Pod, colocated: int) -> tuple:
    # controller.ActivePodsWithRanks: unassigned < assigned, Pending < Unknown < Running,
    # not ready < ready, lower pod-deletion-cost, more pods on the same node first, newer first.
    try:
        cost = int(p.metadata.annotations.get("controller.kubernetes.io/pod-deletion-cost", "0"))
    except ValueError:
        cost = 0
    return (bool(p.spec.node_name), _PHASE_RANK.get(p.status.phase, 3), p.status.ready, cost,
            -colocated, -p.metadata.creation_index)


def sync_replicaset(c: Cluster, rs: ReplicaSet) -> None:
    pods = owned_pods(c, rs)
    active = [p for p in pods if is_active(p)]
    diff = len(active) - rs.replicas
    if diff < 0:
        for _ in range(-diff):
            c.create_pod_from_template(rs, rs.template, f"{rs.metadata.name}-")
    elif diff > 0:
        per_node: dict[str, int] = {}
        for p in active:
            per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
        victims = sorted(active, key=lambda p: deletion_rank(p, per_node.get(p.spec.node_name, 0)))
        for p in victims[:diff]:
            c.delete_pod(p.key, c.now)


def sync_replicationcontroller(c: Cluster, rc: Any) -> None:
    """The replication manager is the ReplicaSet controller with an equality selector."""
    sync_replicaset(c, rc)
    pods = [p for p in owned_pods(c, rc) if is_active(p)]
    from knet.model.controllers import ReplicationControllerStatus

    st = ReplicationControllerStatus(len(pods), sum(1 for p in pods if p.status.ready),
                                     sum(1 for p in pods if is_available(p)))
    if st != rc.status:
        c.create(evolve(rc, status=st))


# --- StatefulSet -------------------------------------------------------------------------------

def sync_statefulset(c: Cluster, ss: StatefulSet) -> None:
    name = ss.metadata.name
    rev = f"{name}-{template_hash(ss.template)}"
    start = ss.ordinals_start
    wanted = range(start, start + ss.replicas)
    pods = {p.name: p for p in owned_pods(c, ss)}
    parallel = ss.pod_management_policy == "Parallel"
    for i in wanted:
        pname = f"{name}-{i}"
        p = pods.get(pname)
        if p is None:
            extra = {STS_POD_NAME: pname, POD_INDEX: str(i), REVISION_HASH: rev}
            pod = c.pod_for(ss, with_labels(ss.template, {REVISION_HASH: rev}), pname,
                            cache_key=rev)
            pod = evolve(pod, metadata=evolve(pod.metadata, labels={
                **pod.metadata.labels, **extra}))
            pod = evolve(pod, spec=evolve(
                pod.spec, hostname=pname, subdomain=ss.service_name or pod.spec.subdomain))
            pod = storage.statefulset_claims(c, ss, i, pod)  # volumeClaimTemplates
            c.create_pod(pod)
            if not parallel:
                return  # OrderedReady: one at a time, the next once this one is Ready
            continue
        if not parallel and (p.terminating or not (p.status.phase == "Running" and p.status.ready)):
            return
    # scale down: highest ordinal first (one at a time for OrderedReady)
    surplus = sorted((p for p in pods.values()
                      if _ordinal(p.name, name) not in wanted and not p.terminating),
                     key=lambda p: -_ordinal(p.name, name))
    if surplus and not parallel and any(p.terminating for p in pods.values()):
        return
    for p in (surplus if parallel else surplus[:1]):
        c.delete_pod(p.key, c.now)
    if not surplus:
        rollout.statefulset_update(c, ss, list(pods.values()), rev, _ordinal)


def _ordinal(pod_name: str, sts: str) -> int:
    try:
        return int(pod_name[len(sts) + 1:])
    except ValueError:
        return -1


# --- DaemonSet ---------------------------------------------------------------------------------

def daemonset_tolerations(template_tolerations: tuple[Toleration, ...],
                          host_network: bool) -> tuple[Toleration, ...]:
    # pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations
    auto = [Toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute"),
            Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute"),
            Toleration("node.kubernetes.io/disk-pressure", "Exists", "", "NoSchedule"),
            Toleration("node.kubernetes.io/memory-pressure", "Exists", "", "NoSchedule"),
            Toleration("node.kubernetes.io/pid-pressure", "Exists", "", "NoSchedule"),
            Toleration("node.kubernetes.io/unschedulable", "Exists", "", "NoSchedule")]
    if host_network:
        auto.append(Toleration("node.kubernetes.io/network-unavailable", "Exists", "",
                               "NoSchedule"))
    out = list(template_tolerations)
    for t in auto:
        if not any(o.key == t.key and o.effect == t.effect for o in out):
            out.append(t)
    return tuple(out)


def should_run(pod: Pod, node: Node) -> bool:
    """daemon controller ``predicates``: node affinity/selector and NoSchedule/NoExecute taints."""
    if not affinity_matches(pod, node):
        return False
    return untolerated(node.taints, pod.spec.tolerations, ("NoSchedule", "NoExecute")) is None


def sync_daemonset(c: Cluster, ds: DaemonSet) -> None:
    h = template_hash(ds.template)
    template = with_labels(ds.template, {REVISION_HASH: h, "pod-template-generation": "1"})
    proto = c.pod_for(ds, template, ds.metadata.name + "-proto", cache_key=h)
    proto = evolve(proto, spec=evolve(
        proto.spec, tolerations=daemonset_tolerations(proto.spec.tolerations,
                                                      proto.spec.host_network)))
    by_node: dict[str, list[Pod]] = {}
    for p in owned_pods(c, ds):
        by_node.setdefault(_ds_node(p), []).append(p)
    eligible: dict[str, list[Pod]] = {}
    leaving: set[str] = set()  # nodes whose pod is still terminating: no new one yet
    for node in c.nodes():
        present = by_node.pop(node.name, [])
        pods = [p for p in present if is_active(p)]
        if any(p.terminating for p in present):
            leaving.add(node.name)
        if should_run(proto, node):
            eligible[node.name] = pods
        else:
            for p in pods:
                c.delete_pod(p.key, c.now)
    # rolling update (knet.control.rollout): which old pods go, which nodes surge
    delete, surge_nodes = rollout.daemonset_plan(ds, h, eligible)
    surging = bool(rollout.scaled_value(getattr(ds, "max_surge", 0), len(eligible), True))
    for node_name, pods in eligible.items():
        new = [p for p in pods if p.metadata.labels.get(REVISION_HASH) == h]
        old = [p for p in pods if p.metadata.labels.get(REVISION_HASH) != h]
        if (not pods and node_name not in leaving) or (node_name in surge_nodes and not new):
            term = NodeSelectorTerm(match_fields=(
                LabelSelectorRequirement("metadata.name", "In", (node_name,)),))
            pod = evolve(proto, spec=evolve(
                proto.spec, required_node_affinity=(term,)))
            c.create_pod(c.named_pod(ds, pod, f"{ds.metadata.name}-"))
        victims = new[1:] + [p for p in old if p.key in delete]
        if new and old and not surging:
            victims += [p for p in old if p.key not in delete]
        elif not new and len(old) > 1:
            victims += [p for p in old[1:] if p.key not in delete]
        for p in victims:
            c.delete_pod(p.key, c.now)
    for pods in by_node.values():  # nodes that are gone
        for p in pods:
            if is_active(p):
                c.delete_pod(p.key, c.now)


def _ds_node(p: Pod) -> str:
    if p.spec.node_name:
        return p.spec.node_name
    for term in p.spec.required_node_affinity:
        for r in term.match_fields:
            if r.key == "metadata.name" and r.values:
                return r.values[0]
    return ""


# --- Job ---------------------------------------------------------------------------------------

def sync_job(c: Cluster, job: Job) -> None:
    uid = job.metadata.uid
    name = job.metadata.name
    pods = owned_pods(c, job)
    succeeded = sum(1 for p in pods if p.status.phase == "Succeeded")
    failed = sum(1 for p in pods if p.status.phase == "Failed")
    active = [p for p in pods if is_active(p)]
    if failed > job.backoff_limit:
        for p in active:
            c.delete_pod(p.key, c.now)
        return
    if job.completions is None:
        want = 0 if succeeded else job.parallelism
    else:
        want = min(job.parallelism, job.completions - succeeded)
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
              "controller-uid": uid, "job-name": name}
    for _ in range(max(0, want - len(active))):
        c.create_pod_from_template(job, with_labels(job.template, labels), f"{name}-")


def job_selector(job: Job) -> LabelSelector:
    return job.selector or LabelSelector({"batch.kubernetes.io/controller-uid": job.metadata.uid})


__all__ = ["sync_deployment", "sync_replicaset", "sync_statefulset", "sync_daemonset",
           "sync_job", "random_suffix"]
