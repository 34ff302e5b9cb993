"""PriorityClass admission and kube-scheduler's preemption."""

from __future__ import annotations

from knet.control import Cluster
from knet.control.recorder import events_for
from knet.manifests import read_text

BASE = """
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {capacity: {cpu: "2", memory: 4Gi, pods: "110"}}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
status: {capacity: {cpu: "2", memory: 4Gi, pods: "110"}}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: low}
value: 10
globalDefault: true
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: filler}
spec:
  replicas: 4
  selector: {matchLabels: {app: filler}}
  template:
    metadata: {labels: {app: filler}}
    spec:
      containers: [{name: c, image: knet/echo, resources: {requests: {cpu: 900m}}}]
"""

IMPORTANT = """
apiVersion: v1
kind: Pod
metadata: {name: important}
spec:
  priorityClassName: high
  containers: [{name: c, image: knet/echo, resources: {requests: {cpu: "1"}}}]
"""


def make(*docs: str) -> Cluster:
    return Cluster.from_input(read_text("---\n".join((BASE,) + docs), "p.yaml"), seed=0,
                              system_objects=False)


def test_priority_admission_and_global_default() -> None:
    c = make(IMPORTANT)
    assert c.pod("default/important").spec.priority == 1000
    filler = [p for p in c.pods("default") if p.name.startswith("filler-")]
    assert {p.spec.priority for p in filler} == {10}  # the globalDefault class
    assert filler[0].spec.extra["priorityClassName"] == "low"


def test_preemption_evicts_one_lower_priority_pod_and_nominates_the_node() -> None:
    c = make()
    assert all(p.spec.node_name for p in c.pods("default"))  # 2 × 900m per node
    for doc in read_text(IMPORTANT, "i.yaml").objects:
        c.apply(doc, now=10)
    pod = c.pod("default/important")
    assert not pod.spec.node_name
    node = pod.status.nominated_node_name
    assert node in ("n1", "n2")
    victims = [p for p in c.pods("default") if p.terminating]
    assert len(victims) == 1 and victims[0].spec.node_name == node  # one 900m pod is enough
    cond = victims[0].status.condition("DisruptionTarget")
    assert (cond.reason, cond.message) == (
        "PreemptionByScheduler",
        "default-scheduler: preempting to accommodate a higher priority pod")
    ev = events_for(c, victims[0])[-1]
    assert (ev.reason, ev.message) == (
        "Preempted", f"Preempted by pod {pod.metadata.uid} on node {node}")
    # the victim's replacement (priority 10) cannot take the room back; after the grace
    # period the important pod is bound to the nominated node
    c.sync(40)
    pod = c.pod("default/important")
    assert pod.spec.node_name == node
    pending = [p for p in c.pods("default") if not p.spec.node_name]
    assert len(pending) == 1 and pending[0].name.startswith("filler-")


def test_preemption_prefers_the_node_without_pdb_violation() -> None:
    pdb = """
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: keep}
spec:
  maxUnavailable: 0
  selector: {matchLabels: {app: guarded}}
---
apiVersion: v1
kind: Pod
metadata: {name: guarded, labels: {app: guarded}}
spec:
  nodeName: n1
  containers: [{name: c, image: knet/echo, resources: {requests: {cpu: 1000m}}}]
"""
    c = make(pdb)
    assert len([p for p in c.pods_on_node("n1")]) == 2  # guarded + one filler
    assert len([p for p in c.pods_on_node("n2")]) == 2  # two fillers
    for doc in read_text(IMPORTANT.replace('cpu: "1"', "cpu: 1100m"), "i.yaml").objects:
        c.apply(doc, now=10)
    # on n1 only evicting the guarded pod makes room (its PDB allows no disruption); on n2
    # one filler does: same victim count and priorities, so the PDB decides (not the name)
    assert c.pod("default/important").status.nominated_node_name == "n2"
    assert not c.pod("default/guarded").terminating
    assert [p.spec.node_name for p in c.pods("default") if p.terminating] == ["n2"]


def test_never_policy_does_not_preempt() -> None:
    never = IMPORTANT.replace("  priorityClassName: high\n",
                              "  priorityClassName: high\n  preemptionPolicy: Never\n")
    c = make()
    for doc in read_text(never, "i.yaml").objects:
        c.apply(doc, now=10)
    assert not any(p.terminating for p in c.pods("default"))
    assert not c.pod("default/important").status.nominated_node_name
