"""Scheduler: every filter, the scores that decide placement, and kube-scheduler's message."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from control_factories import (
    CP_TAINT, container, deployment, expr, node, pod, port, term,
)
from knet.control import Cluster
from knet.control.scheduler import Scheduler, pod_requests
from knet.model import ClusterConfig, ContainerPort, PreferredSchedulingTerm, Taint, Toleration


def cluster(*objs, seed: int = 0) -> Cluster:
    return Cluster(ClusterConfig(nodes_declared=True), list(objs), seed=seed,
                   system_objects=False)


def placed(c: Cluster, key: str) -> str:
    return c.pod(key).spec.node_name


def unschedulable_message(c: Cluster, key: str) -> str:
    p = c.pod(key)
    assert p.status.phase == "Pending" and not p.spec.node_name
    cond = p.status.condition("PodScheduled")
    assert cond is not None and cond.status == "False" and cond.reason == "Unschedulable"
    return cond.message


def test_message_taint_and_cpu_matches_kube_scheduler_format():
    c = cluster(node("cp", taints=(CP_TAINT,)), node("w1", cpu="1"), node("w2", cpu="1"),
                pod("big", containers=(container(cpu="2"),)))
    assert unschedulable_message(c, "default/big") == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod.")


def test_message_all_unresolvable():
    c = cluster(node("a"), node("b"), pod("p", node_selector={"disk": "ssd"}))
    assert unschedulable_message(c, "default/p") == (
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")


def test_unschedulable_node_reason_precedes_taints():
    c = cluster(node("a", unschedulable=True,
                     taints=(Taint("node.kubernetes.io/unschedulable", "NoSchedule"),)),
                pod("p"))
    assert "1 node(s) were unschedulable." in unschedulable_message(c, "default/p")


def test_memory_ephemeral_and_pod_count_reasons():
    c = cluster(node("a", memory="1Gi", pods="1"),
                pod("x"),
                pod("p", containers=(container(memory="2Gi"),)))
    msg = unschedulable_message(c, "default/p")
    assert "1 Insufficient memory, 1 Too many pods." in msg


def test_quantities():
    p = pod("p", containers=(container(cpu="500m", memory="1Gi"), container("b", cpu="0.25")))
    r = pod_requests(p)
    assert (r.cpu, r.memory) == (750, 1 << 30)
    # non-zero defaults for scoring: 100m / 200Mi for the container without memory request
    assert r.nz_memory == (1 << 30) + 200 * 1024 * 1024


def test_node_selector_and_required_affinity_operators():
    nodes = [node("a", labels={"disk": "ssd", "gen": "3"}), node("b", labels={"gen": "5"}),
             node("c", labels={"disk": "hdd"})]
    cases = {
        "sel": dict(node_selector={"disk": "ssd"}),
        "in": dict(required=(term(expr("disk", "In", "hdd")),)),
        "notin": dict(required=(term(expr("disk", "NotIn", "ssd", "hdd")),)),
        "exists": dict(required=(term(expr("gen", "Exists"), expr("disk", "Exists")),)),
        "dne": dict(required=(term(expr("disk", "DoesNotExist")),)),
        "gt": dict(required=(term(expr("gen", "Gt", "4")),)),
        "lt": dict(required=(term(expr("gen", "Lt", "4")),)),
        "fields": dict(required=(term(fields=(expr("metadata.name", "In", "c"),)),)),
        "ored": dict(required=(term(expr("gen", "Gt", "4")), term(expr("disk", "In", "hdd")))),
    }
    c = cluster(*nodes, *(pod(k, **v) for k, v in cases.items()))
    got = {k: placed(c, f"default/{k}") for k in cases}
    assert got["sel"] == "a" and got["in"] == "c" and got["notin"] == "b"
    assert got["exists"] == "a" and got["dne"] == "b" and got["gt"] == "b"
    assert got["lt"] == "a" and got["fields"] == "c" and got["ored"] in ("b", "c")


def test_empty_term_matches_nothing():
    c = cluster(node("a"), pod("p", required=(term(),)))
    assert "didn't match Pod's node affinity/selector" in unschedulable_message(c, "default/p")


def test_taints_and_tolerations():
    ns = Taint("dedicated", "NoSchedule", "gpu")
    ne = Taint("evict", "NoExecute")
    c = cluster(node("a", taints=(ns,)), node("b", taints=(ne,)),
                pod("tol-a", tolerations=(Toleration("dedicated", "Equal", "gpu", "NoSchedule"),),
                    node_selector={"kubernetes.io/hostname": "a"}),
                pod("exists-any", tolerations=(Toleration(operator="Exists"),),
                    node_selector={"kubernetes.io/hostname": "b"}),
                pod("wrong-value", tolerations=(Toleration("dedicated", "Equal", "cpu"),),
                    node_selector={"kubernetes.io/hostname": "a"}),
                pod("none"))
    assert placed(c, "default/tol-a") == "a"
    assert placed(c, "default/exists-any") == "b"
    msg = unschedulable_message(c, "default/wrong-value")
    assert "1 node(s) had untolerated taint {dedicated: gpu}" in msg
    # TaintToleration runs before NodeAffinity: node b reports its taint
    assert "1 node(s) had untolerated taint {evict: }" in msg
    none = unschedulable_message(c, "default/none")
    assert "1 node(s) had untolerated taint {dedicated: gpu}" in none
    assert "1 node(s) had untolerated taint {evict: }" in none


def test_prefer_no_schedule_taint_scores_lower():
    soft = Taint("soft", "PreferNoSchedule")
    c = cluster(node("a", taints=(soft,)), node("b"), pod("p"))
    assert placed(c, "default/p") == "b"


def test_preferred_node_affinity_weight_wins():
    pref = (PreferredSchedulingTerm(80, term(expr("zone", "In", "z2"))),
            PreferredSchedulingTerm(20, term(expr("zone", "In", "z1"))))
    for seed in range(5):
        c = cluster(node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"}),
                    pod("p", preferred=pref), seed=seed)
        assert placed(c, "default/p") == "b"


def test_host_ports_conflict():
    hp = (ContainerPort(80, "http", host_port=8080),)
    c = cluster(node("a"), pod("one", containers=(container(ports=hp),)),
                pod("two", containers=(container(ports=hp),)))
    assert placed(c, "default/one") == "a"
    assert "1 node(s) didn't have free ports for the requested pod ports." in \
        unschedulable_message(c, "default/two")


def test_required_anti_affinity_on_hostname():
    anti = {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}
    c = cluster(node("a"), node("b"),
                *(pod(f"db{i}", labels={"app": "db"}, anti_affinity=anti) for i in range(3)))
    nodes = sorted(placed(c, f"default/db{i}") for i in range(2))
    assert nodes == ["a", "b"]
    assert "2 node(s) didn't match pod anti-affinity rules" in unschedulable_message(c, "default/db2")


def test_least_allocated_prefers_emptier_node():
    c = cluster(node("a"), node("b"), pod("hog", node_name="a", containers=(container(cpu="6"),)),
                pod("p", containers=(container(cpu="1"),)))
    assert placed(c, "default/p") == "b"


def test_spread_of_same_owner_across_nodes():
    c = cluster(node("a"), node("b"), node("c"), deployment("web", replicas=6))
    counts = Counter(p.spec.node_name for p in c.pods("default"))
    assert counts == {"a": 2, "b": 2, "c": 2}


def test_node_name_bypasses_scheduler():
    c = cluster(node("a", taints=(Taint("x", "NoSchedule"),)), pod("p", node_name="a"))
    assert placed(c, "default/p") == "a" and c.pod("default/p").status.phase == "Running"


def test_pending_pod_scheduled_when_node_arrives():
    c = cluster(node("a", cpu="1"), pod("p", containers=(container(cpu="2"),)))
    assert not placed(c, "default/p")
    c.apply(node("b", cpu="4"))
    assert placed(c, "default/p") == "b"
    assert c.pod("default/p").status.condition("PodScheduled").status == "True"


def test_tie_break_is_seeded_and_uniform():
    firsts = Counter()
    for seed in range(40):
        c = cluster(node("a"), node("b"), node("c"), pod("p"), seed=seed)
        firsts[placed(c, "default/p")] += 1
    assert set(firsts) == {"a", "b", "c"}
    again = [placed(cluster(node("a"), node("b"), node("c"), pod("p"), seed=7), "default/p")
             for _ in range(3)]
    assert len(set(again)) == 1


def test_bucket_path_equals_per_node_path():
    """Pods whose constraints name nodes take the per-node path; both must agree on
    feasibility and on the spread outcome."""
    s = Scheduler(random.Random(0))
    s.set_nodes([node(f"n{i}", cpu="2") for i in range(4)])
    placed_nodes = []
    for i in range(8):
        p = pod(f"p{i}", containers=(container(cpu="1"),))
        d = s.schedule(p)
        assert d.node is not None
        s.assume(p, d.node)
        placed_nodes.append(d.node)
    assert Counter(placed_nodes) == {f"n{i}": 2 for i in range(4)}
    d = s.schedule(pod("x", containers=(container(cpu="1"),)))
    assert d.node is None and "4 Insufficient cpu" in d.message
    d2 = s.schedule(pod("y", containers=(container(cpu="1"),),
                        node_selector={"kubernetes.io/hostname": "n1"}))
    assert d2.node is None and "1 Insufficient cpu, 3 node(s) didn't match" in d2.message


def test_no_nodes_message():
    s = Scheduler(random.Random(0))
    assert s.schedule(pod("p")).message.startswith("0/0 nodes are available")


@pytest.mark.parametrize("seed", [0, 1])
def test_pod_with_host_port_and_ports_same_number_other_protocol(seed):
    hp_tcp = (ContainerPort(53, "dns", host_port=53),)
    hp_udp = (ContainerPort(53, "dns-udp", port(53, "x", "UDP").protocol, 53),)
    c = cluster(node("a"), pod("t", containers=(container(ports=hp_tcp),)),
                pod("u", containers=(container(ports=hp_udp),)), seed=seed)
    assert placed(c, "default/t") == placed(c, "default/u") == "a"
