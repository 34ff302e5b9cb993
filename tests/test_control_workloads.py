"""Workload controllers: names, labels, owner refs, counts, scale, rolling update."""

from __future__ import annotations

import re
from collections import Counter

from control_factories import daemonset, deployment, job, node, replicaset, statefulset
from knet.control import Cluster
from knet.control.naming import ALPHABET, fnv32a, safe_encode, template_hash
from knet.model import ClusterConfig, Taint

SUFFIX = f"[{ALPHABET}]{{5}}"


def cluster(*objs, seed: int = 0, **kw) -> Cluster:
    nodes = [o for o in objs if o.kind == "Node"] or [node("a"), node("b"), node("c")]
    rest = [o for o in objs if o.kind != "Node"]
    return Cluster(ClusterConfig(nodes_declared=True), nodes + rest, seed=seed,
                   system_objects=False, **kw)


def test_fnv_and_safe_encode_match_kubernetes():
    assert fnv32a(b"") == 0x811C9DC5 and fnv32a(b"a") == 0xE40C292C
    assert safe_encode("0123456789") == "".join(ALPHABET[ord(c) % 27] for c in "0123456789")
    h = template_hash({"metadata": {"labels": {"app": "x"}}})
    assert re.fullmatch(f"[{ALPHABET}]{{1,10}}", h)
    assert h == template_hash({"metadata": {"labels": {"app": "x"}}})


def test_deployment_makes_replicaset_and_pods():
    d = deployment("web", replicas=3)
    c = cluster(d)
    dep = c.get("Deployment", "default/web")
    (rs,) = c.replica_sets("default")
    h = template_hash(d.template)
    assert rs.metadata.name == f"web-{h}"
    assert rs.metadata.labels == {"app": "web", "pod-template-hash": h}
    assert rs.selector.match_labels == {"app": "web", "pod-template-hash": h}
    assert rs.metadata.owner_references[0].kind == "Deployment"
    assert rs.metadata.owner_references[0].uid == dep.metadata.uid
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    pods = c.pods("default")
    assert len(pods) == 3
    for p in pods:
        assert re.fullmatch(f"web-{h}-{SUFFIX}", p.name)
        assert p.metadata.generate_name == f"web-{h}-"
        assert p.metadata.labels == {"app": "web", "pod-template-hash": h}
        ref = p.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller) == (
            "ReplicaSet", rs.metadata.name, rs.metadata.uid, True)
        assert p.status.phase == "Running" and p.status.ready and p.ip is not None


def test_scale_up_and_down_deletes_newest_first():
    c = cluster(node("a"), node("b"), node("c"), node("d"), replicaset("rs", replicas=2))
    before = {p.name for p in c.pods()}
    c.scale("ReplicaSet", "default/rs", 4)
    assert len(c.pods()) == 4
    added = {p.name for p in c.pods()} - before
    c.scale("ReplicaSet", "default/rs", 2, now=10.0)
    terminating = {p.name for p in c.pods() if p.terminating}
    assert terminating == added  # one pod per node, all ready: newest go first
    c.sync(10.0 + 30)
    assert {p.name for p in c.pods()} == before


def test_scale_down_prefers_pending_pods():
    c = cluster(node("a", cpu="1"), replicaset("rs", replicas=1))
    from control_factories import template
    from knet.model import LabelSelector, ObjectMeta, ReplicaSet
    rs = ReplicaSet(ObjectMeta("rs", "default"), LabelSelector({"app": "rs"}),
                    template({"app": "rs"}, cpu="600m"), replicas=2)
    c.apply(rs)  # template change on an RS does not touch existing pods
    first0 = {p.name for p in c.pods()}
    c.scale("ReplicaSet", "default/rs", 3)
    pending = [p for p in c.pods() if not p.spec.node_name]
    assert len(pending) == 1  # 1 cpu: the old pod (no request) + one 600m pod fit
    c.scale("ReplicaSet", "default/rs", 1)
    # the pending pod goes at once, then the newest bound one; the oldest stays
    left = [p for p in c.pods() if not p.terminating]
    assert len(left) == 1 and left[0].name in first0 and left[0].spec.node_name
    assert pending[0].key not in {p.key for p in c.pods()}


def test_rolling_update_honours_surge_and_unavailable():
    d = deployment("web", replicas=4, max_surge=1, max_unavailable=0)
    seen: list[tuple[int, int]] = []
    c = cluster(d, ready_on_start=False)

    def ready_all():
        for p in c.pods():
            if not p.status.ready and not p.terminating:
                c.set_pod_ready(p.key, True)

    ready_all()
    d2 = deployment("web", replicas=4, max_surge=1, max_unavailable=0, image="knet/echo:2")
    c.apply(d2)
    for _ in range(20):
        active = [p for p in c.pods() if not p.terminating]
        ready = [p for p in active if p.status.ready]
        seen.append((len(active), len(ready)))
        assert len(active) <= 5 and len(ready) >= 4 - 0
        ready_all()
        for p in c.pods():
            if p.terminating:
                c.finalize_pod_deletion(p.key)
    new_hash = template_hash(d2.template)
    assert {p.metadata.labels["pod-template-hash"] for p in c.pods()} == {new_hash}
    assert len(c.pods()) == 4
    rss = {r.metadata.name: r.replicas for r in c.replica_sets()}
    assert rss == {f"web-{template_hash(d.template)}": 0, f"web-{new_hash}": 4}
    revs = {r.metadata.annotations["deployment.kubernetes.io/revision"] for r in c.replica_sets()}
    assert revs == {"1", "2"}


def test_recreate_strategy_waits_for_old_pods():
    c = cluster(deployment("db", replicas=2, strategy_type="Recreate"))
    c.apply(deployment("db", replicas=2, strategy_type="Recreate", image="x:2"), now=1.0)
    assert all(p.terminating for p in c.pods())  # old ones terminating, no new yet
    c.sync(40.0)
    pods = c.pods()
    assert len(pods) == 2 and not any(p.terminating for p in pods)


def test_statefulset_names_labels_hostname():
    c = cluster(statefulset("db", replicas=3, service_name="db-hl"))
    pods = c.pods()
    assert [p.name for p in pods] == ["db-0", "db-1", "db-2"]
    for i, p in enumerate(pods):
        assert p.spec.hostname == p.name and p.spec.subdomain == "db-hl"
        assert p.metadata.labels["statefulset.kubernetes.io/pod-name"] == p.name
        assert p.metadata.labels["apps.kubernetes.io/pod-index"] == str(i)
        assert p.metadata.labels["controller-revision-hash"].startswith("db-")
        assert p.metadata.owner_references[0].kind == "StatefulSet"
    c.scale("StatefulSet", "default/db", 1, now=1.0)
    assert [p.name for p in c.pods() if p.terminating] == ["db-2"]  # highest first, one at a time
    while (t := c.next_deadline()) is not None:
        c.sync(t)
    assert [p.name for p in c.pods()] == ["db-0"]


def test_statefulset_ordered_ready_waits_and_ordinals_start():
    c = cluster(statefulset("q", replicas=3, start=5), ready_on_start=False)
    assert [p.name for p in c.pods()] == ["q-5"]
    c.set_pod_ready("default/q-5", True)
    assert [p.name for p in c.pods()] == ["q-5", "q-6"]
    c2 = cluster(statefulset("q", replicas=3, policy="Parallel"), ready_on_start=False)
    assert len(c2.pods()) == 3


def test_daemonset_one_pod_per_eligible_node():
    tainted = node("cp", taints=(Taint("node-role.kubernetes.io/control-plane", "NoSchedule"),))
    c = cluster(tainted, node("w1"), node("w2"), daemonset("agent"))
    by_node = Counter(p.spec.node_name for p in c.pods())
    assert by_node == {"w1": 1, "w2": 1}
    p = c.pods()[0]
    assert re.fullmatch(f"agent-{SUFFIX}", p.name)
    assert p.spec.required_node_affinity[0].match_fields[0].values == (p.spec.node_name,)
    keys = {t.key for t in p.spec.tolerations}
    assert {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
            "node.kubernetes.io/unschedulable", "node.kubernetes.io/disk-pressure"} <= keys
    c.apply(node("w3"))
    assert Counter(p.spec.node_name for p in c.pods())["w3"] == 1
    # cordoned nodes still run daemon pods (they tolerate unschedulable)
    c.cordon("w3")
    assert Counter(p.spec.node_name for p in c.pods())["w3"] == 1


def test_job_pods_and_completion():
    c = cluster(job("batch", completions=2, parallelism=1))
    (p,) = c.pods()
    assert re.fullmatch(f"batch-{SUFFIX}", p.name)
    uid = c.get("Job", "default/batch").metadata.uid
    assert p.metadata.labels == {"batch.kubernetes.io/controller-uid": uid,
                                 "batch.kubernetes.io/job-name": "batch",
                                 "controller-uid": uid, "job-name": "batch"}
    assert p.spec.restart_policy == "Never"
    c.set_pod_phase(p.key, "Succeeded", now=5.0)
    active = [q for q in c.pods() if q.status.phase == "Running"]
    assert len(active) == 1 and active[0].name != p.name
    c.set_pod_phase(active[0].key, "Succeeded", now=6.0)
    assert not [q for q in c.pods() if q.status.phase == "Running"]


def test_deleting_owner_collects_dependents():
    c = cluster(deployment("web", replicas=2))
    c.delete("Deployment", "default/web", now=1.0)
    assert not c.replica_sets()
    assert all(p.terminating for p in c.pods())
    c.sync(100.0)
    assert not c.pods()
