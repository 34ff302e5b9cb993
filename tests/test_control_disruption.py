"""PodDisruptionBudgets: status arithmetic, the eviction subresource, kubectl drain."""

from __future__ import annotations

import pytest

from knet.control import Cluster
from knet.control.disruption import VIOLATION, drain_plan, scaled_value
from knet.errors import ManifestError
from knet.fabric import virtual_time
from knet.manifests import read_text
from knet.runtime.cluster import RuntimeCluster

NODES = """
apiVersion: v1
kind: Node
metadata: {name: w1}
---
apiVersion: v1
kind: Node
metadata: {name: w2}
"""


def deploy(replicas: int) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: c, image: knet/echo}}]}}
"""


def pdb(field: str, value: object) -> str:
    return f"""
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web}}
spec:
  {field}: {value!r}
  selector: {{matchLabels: {{app: web}}}}
""".replace("'", '"')


def make(*docs: str) -> Cluster:
    return Cluster.from_input(read_text("---\n".join((NODES,) + docs), "t.yaml"), seed=0,
                              system_objects=False)


@pytest.mark.parametrize("value,total,up,expected", [
    (2, 10, True, 2), ("50%", 5, True, 3), ("50%", 5, False, 2), ("25%", 3, True, 1),
    ("25%", 3, False, 0), ("100%", 7, True, 7), ("0%", 7, True, 0), ("1%", 1, True, 1),
    ("33%", 100, True, 33), ("34%", 3, True, 2),
])
def test_scaled_value_rounding(value, total, up, expected) -> None:
    assert scaled_value(value, total, up) == expected


# (field, value, replicas) → (expectedPods, desiredHealthy, disruptionsAllowed)
@pytest.mark.parametrize("field,value,replicas,status", [
    ("minAvailable", 2, 5, (5, 2, 3)),
    ("minAvailable", 5, 5, (5, 5, 0)),
    ("minAvailable", 7, 5, (5, 7, 0)),
    ("minAvailable", "50%", 5, (5, 3, 2)),  # 2.5 rounds up to 3
    ("minAvailable", "100%", 4, (4, 4, 0)),
    ("minAvailable", "0%", 4, (4, 0, 4)),
    ("maxUnavailable", 1, 5, (5, 4, 1)),
    ("maxUnavailable", 0, 5, (5, 5, 0)),
    ("maxUnavailable", "30%", 5, (5, 3, 2)),  # 1.5 rounds up to 2 unavailable
    ("maxUnavailable", "10%", 3, (3, 2, 1)),  # 0.3 rounds up to 1
    ("maxUnavailable", "100%", 3, (3, 0, 3)),
])
def test_pdb_status(field, value, replicas, status) -> None:
    c = make(deploy(replicas), pdb(field, value))
    st = c.get("PodDisruptionBudget", "default/web").status
    assert (st.expected_pods, st.desired_healthy, st.disruptions_allowed) == status
    assert st.current_healthy == replicas
    cond = st.conditions[0]
    assert cond.type == "DisruptionAllowed"
    assert (cond.status, cond.reason) == (("True", "SufficientPods") if status[2] else
                                          ("False", "InsufficientPods"))


def test_eviction_honours_the_budget_with_the_real_message() -> None:
    c = make(deploy(3), pdb("minAvailable", 2))
    pods = sorted(p.key for p in c.pods("default"))
    first = c.evict(pods[0], now=1)
    assert first.code == 201
    p0 = c.pod(pods[0])
    assert p0.terminating
    assert p0.status.condition("DisruptionTarget").reason == "EvictionByEvictionAPI"
    st = c.get("PodDisruptionBudget", "default/web").status
    # the evicted pod is being deleted (so no longer tracked in disruptedPods); its
    # replacement is Ready at once in the pure core
    assert dict(st.disrupted_pods) == {}
    assert (st.current_healthy, st.disruptions_allowed) == (3, 1)
    # the Deployment's replacement is Ready at once in the pure core: the budget recovers
    c2 = make(deploy(3), pdb("minAvailable", 3))
    victim = sorted(p.key for p in c2.pods("default"))[0]
    refused = c2.evict(victim, now=1)
    assert (refused.code, refused.message) == (429, VIOLATION)
    assert refused.message == "Cannot evict pod as it would violate the pod's disruption budget."
    assert refused.causes == ("The disruption budget web needs 3 healthy pods and has 3 "
                              "currently",)
    assert not c2.pod(victim).terminating
    assert c2.evict("default/nope").code == 404


def test_unhealthy_pods_and_several_budgets() -> None:
    c = make(deploy(2), pdb("minAvailable", 2))
    victim = sorted(p.key for p in c.pods("default"))[0]
    c.set_pod_ready(victim, False, now=1)
    # not ready, budget not met (1 < 2): IfHealthyBudget refuses
    assert c.evict(victim, now=2).code == 429
    c = make(deploy(2), pdb("minAvailable", 2).replace("spec:", "spec:\n  "
                                                          "unhealthyPodEvictionPolicy: AlwaysAllow"))
    victim = sorted(p.key for p in c.pods("default"))[0]
    c.set_pod_ready(victim, False, now=1)
    assert c.evict(victim, now=2).code == 201
    c = make(deploy(2), pdb("minAvailable", 1), pdb("minAvailable", 1).replace(
        "name: web}", "name: other}"))
    r = c.evict(sorted(p.key for p in c.pods("default"))[0], now=1)
    assert r.code == 500 and "more than one PodDisruptionBudget" in r.message


def test_pdb_validation() -> None:
    with pytest.raises(ManifestError, match="minAvailable and maxUnavailable cannot be both set"):
        read_text(pdb("minAvailable", 1).replace("spec:", "spec:\n  maxUnavailable: 1"), "p.yaml")
    with pytest.raises(ManifestError, match="spec.maxUnavailable: Invalid value"):
        read_text(pdb("maxUnavailable", "ten%"), "p.yaml")


def test_drain_plan_filters_like_kubectl() -> None:
    bare = """
apiVersion: v1
kind: Pod
metadata: {name: bare}
spec: {nodeName: w1, containers: [{name: c, image: knet/echo}]}
"""
    ds = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c, image: knet/echo}]}
"""
    c = make(deploy(2), ds, bare)
    plan = drain_plan(c, "w1")
    assert plan.errors == ("cannot delete Pods that declare no controller (use --force to "
                           "override): default/bare",)
    assert len(plan.ignored) == 1 and plan.ignored[0].startswith("default/agent-")
    assert plan.warning().startswith("Warning: ignoring DaemonSet-managed Pods: default/agent-")
    forced = drain_plan(c, "w1", force=True)
    assert forced.errors == () and "default/bare" in forced.evict
    strict = drain_plan(c, "w1", force=True, ignore_daemonsets=False)
    assert "cannot delete DaemonSet-managed Pods" in strict.errors[0]


@virtual_time
async def test_drain_waits_for_the_budget_and_moves_pods() -> None:
    # both replicas start on w1 (w2 cordoned), then w2 opens and w1 is drained
    nodes = NODES.replace("metadata: {name: w2}", "metadata: {name: w2}\nspec: {unschedulable: "
                                                  "true}")
    text = "---\n".join((nodes, deploy(2), pdb("maxUnavailable", 1)))
    state = Cluster.from_input(read_text(text, "d.yaml"), seed=0, system_objects=False,
                               ready_on_start=False)
    async with RuntimeCluster(state) as rt:
        await rt.wait_ready()
        on_w1 = sorted(p.name for p in state.pods_on_node("w1"))
        assert len(on_w1) == 2
        state.uncordon("w2", rt.now())
        t0 = rt.now()
        log = await rt.drain("w1")
        assert log[0] == "node/w1 cordoned"
        assert log[1:3] == [f"evicting pod default/{n}" for n in on_w1]
        # the budget lets one go; the other waits for a replacement to be Ready on w2
        assert log[3] == (f'error when evicting pods/"{on_w1[1]}" -n "default" (will retry '
                          "after 5s): Cannot evict pod as it would violate the pod's "
                          "disruption budget.")
        assert log[-3:] == [f"pod/{on_w1[0]} evicted", f"pod/{on_w1[1]} evicted",
                            "node/w1 drained"]
        assert rt.now() - t0 >= 5
        assert state.node("w1").unschedulable
        assert state.pods_on_node("w1") == []
        assert [p.spec.node_name for p in state.pods("default")] == ["w2", "w2"]


def test_scheduling_after_cordon_and_uncordon() -> None:
    # upsert_node left an empty bucket behind when a node changed class: IndexError
    c = make(deploy(1))
    c.cordon("w2", now=1)
    c.uncordon("w2", now=2)
    c.scale("Deployment", "default/web", 4, now=3)
    assert {p.spec.node_name for p in c.pods("default")} == {"w1", "w2"}
