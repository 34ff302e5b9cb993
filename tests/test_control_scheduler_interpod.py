"""Scheduler: PodTopologySpread (user constraints) and InterPodAffinity (required affinity,
anti-affinity on any topology key, existing pods' anti-affinity), with kube-scheduler's
failure reasons."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest

from control_factories import node, pod
from knet.control import Cluster
from knet.manifests import read_text
from knet.model import ClusterConfig

ZONE = "topology.kubernetes.io/zone"


def cluster(*objs: Any, seed: int = 0) -> Cluster:
    return Cluster(ClusterConfig(nodes_declared=True), list(objs), seed=seed,
                   system_objects=False)


def zn(name: str, zone: str | None, **kw: Any):
    return node(name, labels={ZONE: zone} if zone else {}, **kw)


def with_spec(p, **changes: Any):
    return dataclasses.replace(p, spec=dataclasses.replace(p.spec, **changes))


def spread(p, *constraints: dict[str, Any]):
    return with_spec(p, extra={**p.spec.extra, "topologySpreadConstraints": list(constraints)})


def tsc(key: str = ZONE, skew: int = 1, when: str = "DoNotSchedule",
        sel: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    return {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": sel or {"app": "web"}}, **kw}


def req(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}


def pterm(key: str, **labels: str) -> dict[str, Any]:
    return {"topologyKey": key, "labelSelector": {"matchLabels": labels}}


def web(name: str, node_name: str = "", **kw: Any):
    return pod(name, labels={"app": "web", **kw.pop("labels", {})}, node_name=node_name, **kw)


def placed(c: Cluster, key: str) -> str:
    return c.pod(key).spec.node_name


def message(c: Cluster, key: str) -> str:
    p = c.pod(key)
    assert not p.spec.node_name
    cond = p.status.condition("PodScheduled")
    assert cond is not None and cond.reason == "Unschedulable"
    return cond.message


# --- PodTopologySpread -------------------------------------------------------------------------

def test_spread_do_not_schedule_picks_the_emptier_zone():
    for seed in range(8):
        c = cluster(zn("a1", "a"), zn("a2", "a"), zn("b1", "b"),
                    web("w0", "a1"), web("w1", "a2"),
                    spread(web("new"), tsc()), seed=seed)
        assert placed(c, "default/new") == "b1"


def test_spread_violation_message_is_resolvable_by_preemption():
    c = cluster(zn("a1", "a"), zn("b1", "b", unschedulable=True),
                web("w0", "a1"), spread(web("new"), tsc()))
    assert message(c, "default/new") == (
        "0/2 nodes are available: 1 node(s) didn't match pod topology spread constraints, "
        "1 node(s) were unschedulable. preemption: 0/2 nodes are available: "
        "1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling.")


def test_spread_missing_topology_label_is_unresolvable():
    c = cluster(zn("a1", "a"), zn("x", None), web("w0", "a1"), web("w1", "a1"),
                spread(web("new"), tsc(skew=2)))
    assert placed(c, "default/new") == "a1"  # only the zone-labelled node is a domain
    c = cluster(zn("a1", "a", unschedulable=True), zn("x", None), spread(web("new"), tsc()))
    assert message(c, "default/new") == (
        "0/2 nodes are available: 1 node(s) didn't match pod topology spread constraints "
        "(missing required label), 1 node(s) were unschedulable. preemption: 0/2 nodes are "
        "available: 2 Preemption is not helpful for scheduling.")


def test_spread_node_affinity_policy_honor_and_ignore():
    base = [zn("a1", "a"), zn("b1", "b"), web("w0", "a1"), web("w1", "a1")]
    honor = spread(web("new", node_selector={ZONE: "a"}), tsc())
    c = cluster(*base, honor)
    # Honor (default): only zone a is a domain, so its own count is the minimum.
    assert placed(c, "default/new") == "a1"
    ignore = spread(web("new", node_selector={ZONE: "a"}), tsc(nodeAffinityPolicy="Ignore"))
    c = cluster(*base, ignore)
    assert message(c, "default/new").startswith(
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) didn't match pod topology spread constraints.")


def test_spread_counts_only_matching_pods_in_the_same_namespace():
    c = cluster(zn("a1", "a"), zn("b1", "b", unschedulable=True),
                web("o0", "a1", ns="other"), pod("db", labels={"app": "db"}, node_name="a1"),
                spread(web("new"), tsc()))
    assert placed(c, "default/new") == "a1"


def test_spread_min_domains_treats_global_minimum_as_zero():
    base = [zn("a1", "a"), zn("b1", "b"), web("w0", "a1"), web("w1", "b1")]
    c = cluster(*base, spread(web("new"), tsc()))
    assert placed(c, "default/new") in ("a1", "b1")
    c = cluster(*base, spread(web("new"), tsc(minDomains=3)))
    assert "2 node(s) didn't match pod topology spread constraints." in message(c, "default/new")


def test_spread_match_label_keys():
    base = [zn("a1", "a"), zn("b1", "b", unschedulable=True),
            web("w0", "a1", labels={"ver": "1"})]
    c = cluster(*base, spread(web("new", labels={"ver": "2"}), tsc()))
    assert "1 node(s) didn't match pod topology spread constraints" in message(c, "default/new")
    c = cluster(*base, spread(web("new", labels={"ver": "2"}), tsc(matchLabelKeys=["ver"])))
    assert placed(c, "default/new") == "a1"


def test_spread_nil_selector_matches_nothing():
    c = cluster(zn("a1", "a"), zn("b1", "b", unschedulable=True), web("w0", "a1"),
                spread(web("new"), {"maxSkew": 1, "topologyKey": ZONE,
                                    "whenUnsatisfiable": "DoNotSchedule"}))
    assert placed(c, "default/new") == "a1"


def test_schedule_anyway_scores_toward_the_emptier_zone():
    got = Counter()
    for seed in range(20):
        c = cluster(zn("a1", "a"), zn("a2", "a"), zn("b1", "b"), web("w0", "a1"),
                    spread(web("new"), tsc(when="ScheduleAnyway")), seed=seed)
        got[placed(c, "default/new")] += 1
    assert got == {"b1": 20}


def test_deployment_with_zone_spread_is_balanced_and_deterministic():
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule,
         labelSelector: {matchLabels: {app: web}}}
      containers: [{name: app, image: nginx}]
"""
    inp = read_text(text)
    nodes = [zn("a1", "a"), zn("a2", "a"), zn("a3", "a"), zn("b1", "b"), zn("c1", "c")]

    def run(seed: int) -> list[str]:
        c = cluster(*nodes, *inp.objects, seed=seed)
        return sorted((p.name, p.spec.node_name) for p in c.pods()
                      if p.metadata.labels.get("app") == "web")

    first = run(3)
    assert first == run(3)
    zones = Counter({"a1": "a", "a2": "a", "a3": "a", "b1": "b", "c1": "c"}[n] for _, n in first)
    assert zones == {"a": 2, "b": 2, "c": 2}


# --- InterPodAffinity --------------------------------------------------------------------------

def db(name: str, node_name: str = "", **kw: Any):
    return pod(name, labels={"app": "db"}, node_name=node_name, **kw)


def test_required_pod_affinity_follows_matching_pods_topology():
    for seed in range(6):
        c = cluster(zn("a1", "a"), zn("b1", "b"), zn("b2", "b"), db("db0", "b1"),
                    with_spec(web("new"), pod_affinity=req(pterm(ZONE, app="db"))), seed=seed)
        assert placed(c, "default/new") in ("b1", "b2")


def test_required_pod_affinity_unmatched_is_unresolvable():
    c = cluster(zn("a1", "a"), zn("b1", "b"),
                with_spec(web("new"), pod_affinity=req(pterm(ZONE, app="db"))))
    assert message(c, "default/new") == (
        "0/2 nodes are available: 2 node(s) didn't match pod affinity rules. preemption: 0/2 "
        "nodes are available: 2 Preemption is not helpful for scheduling.")


def test_required_pod_affinity_first_pod_matching_itself():
    c = cluster(zn("a1", "a"), zn("x", None),
                with_spec(web("new"), pod_affinity=req(pterm(ZONE, app="web"))))
    assert placed(c, "default/new") == "a1"  # the node must still carry the topology key


def test_pod_affinity_namespaces():
    term = {**pterm(ZONE, app="db"), "namespaces": ["data"]}
    base = [zn("a1", "a"), zn("b1", "b"), db("db0", "a1"), db("db1", "b1", ns="data")]
    c = cluster(*base, with_spec(web("new"), pod_affinity=req(term)))
    assert placed(c, "default/new") == "b1"
    all_ns = {**pterm(ZONE, app="db"), "namespaceSelector": {}}
    c = cluster(zn("a1", "a"), zn("b1", "b"), db("db1", "b1", ns="data"),
                with_spec(web("new"), pod_affinity=req(all_ns)))
    assert placed(c, "default/new") == "b1"


def test_required_anti_affinity_on_zone():
    for seed in range(6):
        c = cluster(zn("a1", "a"), zn("a2", "a"), zn("b1", "b"), db("db0", "a1"),
                    with_spec(db("new"), pod_anti_affinity=req(pterm(ZONE, app="db"))),
                    seed=seed)
        assert placed(c, "default/new") == "b1"
    c = cluster(zn("a1", "a"), zn("a2", "a"), db("db0", "a1"),
                with_spec(db("new"), pod_anti_affinity=req(pterm(ZONE, app="db"))))
    assert message(c, "default/new") == (
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. preemption: "
        "0/2 nodes are available: 2 No preemption victims found for incoming pod.")


def test_existing_pods_anti_affinity_is_symmetric():
    guard = with_spec(pod("guard", labels={"app": "guard"}, node_name="a1"),
                      pod_anti_affinity=req(pterm(ZONE, app="web")))
    for seed in range(6):
        c = cluster(zn("a1", "a"), zn("a2", "a"), zn("b1", "b"), guard, web("new"), seed=seed)
        assert placed(c, "default/new") == "b1"
    c = cluster(zn("a1", "a"), zn("a2", "a"), guard, web("new"), pod("other"))
    assert placed(c, "default/other") in ("a1", "a2")
    assert message(c, "default/new") == (
        "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules. "
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")


def test_existing_anti_affinity_released_when_pod_deleted():
    guard = with_spec(pod("guard", labels={"app": "guard"}, node_name="a1"),
                      pod_anti_affinity=req(pterm(ZONE, app="web")))
    c = cluster(zn("a1", "a"), guard, web("new"))
    assert "existing pods anti-affinity" in message(c, "default/new")
    c.scheduler.forget("default/guard")
    assert c.scheduler.schedule(c.pod("default/new")).node == "a1"


def test_affinity_rules_come_before_anti_affinity_and_spread_before_both():
    p = with_spec(spread(db("new"), tsc(sel={"app": "db"})),
                  pod_affinity=req(pterm(ZONE, app="cache")),
                  pod_anti_affinity=req(pterm(ZONE, app="db")))
    c = cluster(zn("a1", "a"), zn("b1", "b"), db("db0", "a1"), db("db1", "a1"), p)
    msg = message(c, "default/new")
    assert msg.startswith("0/2 nodes are available: 1 node(s) didn't match pod affinity rules, "
                          "1 node(s) didn't match pod topology spread constraints.")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_manifest_pod_affinity_through_loader(seed):
    text = """
apiVersion: v1
kind: Pod
metadata: {name: cache, labels: {app: cache}}
spec:
  nodeName: b1
  containers: [{name: c, image: redis}]
---
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  affinity:
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector: {matchExpressions: [{key: app, operator: In, values: [cache]}]}
  containers: [{name: c, image: nginx}]
"""
    inp = read_text(text)
    c = cluster(zn("a1", "a"), zn("b1", "b"), zn("c1", "c"), *inp.objects, seed=seed)
    assert placed(c, "default/app") == "b1"


# --- InterPodAffinity scoring ------------------------------------------------------------------

def pref(weight: int, key: str, **labels: str) -> dict[str, Any]:
    return {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": weight, "podAffinityTerm": pterm(key, **labels)}]}


def placements(*objs: Any, key: str = "default/new", seeds: int = 12) -> Counter:
    return Counter(placed(cluster(*objs, seed=s), key) for s in range(seeds))


def test_without_terms_empty_nodes_tie():
    assert set(placements(zn("a1", "a"), zn("b1", "b"), zn("b2", "b"), db("db0", "b1"),
                          web("new"))) == {"a1", "b2"}


def test_preferred_pod_affinity_scores_matching_topology():
    assert placements(zn("a1", "a"), zn("b1", "b"), zn("b2", "b"), db("db0", "b1"),
                      with_spec(web("new"), pod_affinity=pref(50, ZONE, app="db"))) == {"b2": 12}


def test_preferred_pod_anti_affinity_scores_away():
    assert placements(zn("a1", "a"), zn("a2", "a"), zn("b1", "b"), db("db0", "a1"),
                      with_spec(web("new"), pod_anti_affinity=pref(5, ZONE, app="db"))
                      ) == {"b1": 12}


def test_existing_pods_terms_score_the_incoming_pod():
    fan = with_spec(pod("fan", labels={"app": "fan"}, node_name="b1"),
                    pod_affinity=req(pterm(ZONE, app="web")))
    assert placements(zn("a1", "a"), zn("b1", "b"), zn("b2", "b"), fan, web("new")) == {"b2": 12}
    shy = with_spec(pod("shy", labels={"app": "shy"}, node_name="a1"),
                    pod_anti_affinity=pref(10, ZONE, app="web"))
    assert placements(zn("a1", "a"), zn("a2", "a"), zn("b1", "b"), shy, web("new")) == {"b1": 12}
    # terms that do not name the pod change nothing
    assert set(placements(zn("a1", "a"), zn("a2", "a"), zn("b1", "b"), shy,
                          pod("new", labels={"app": "other"}))) == {"a2", "b1"}


def test_preferred_terms_matching_no_pod_do_not_change_placement():
    nodes = [zn(f"n{i}", "a" if i % 2 else "b") for i in range(6)]
    for seed in range(6):
        plain = cluster(*nodes, web("new"), seed=seed)
        prefd = cluster(*nodes, with_spec(web("new"), pod_anti_affinity=pref(9, ZONE, app="x")),
                        seed=seed)
        assert placed(plain, "default/new") == placed(prefd, "default/new")
