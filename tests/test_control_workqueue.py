"""Controller convergence is an iterative work queue (issue 13 item 4).

Scaling a Deployment down by hundreds or tens of thousands of replicas used to recurse
(delete_pod → _converge → sync_replicaset → delete_pod …) and stop half-way with a
RecursionError or NotFound. Every scale here ends converged, with exactly the pods asked for.
"""

from __future__ import annotations

import sys

import pytest
from control_factories import deployment, node, replicaset, service

from knet.control import Cluster
from knet.control.timers import Deadlines
from knet.errors import UsageError
from knet.model import ClusterConfig


def big(replicas: int, nodes: int) -> Cluster:
    return Cluster(ClusterConfig(nodes_declared=True),
                   [node(f"n{i}", pods=str(replicas // nodes + 10)) for i in range(nodes)]
                   + [deployment("web", replicas=replicas),
                      service("web", selector={"app": "web"})],
                   seed=1, system_objects=False)


def alive(c: Cluster) -> list:
    return [p for p in c.pods("default") if not p.terminating]


@pytest.mark.parametrize("replicas,nodes", [(1_000, 10), (50_000, 100)])
def test_scale_deployment_down_to_three_converges(replicas: int, nodes: int) -> None:
    c = big(replicas, nodes)
    assert len(alive(c)) == replicas
    depth = sys.getrecursionlimit()
    c.scale("Deployment", "default/web", 3, now=1.0)
    assert sys.getrecursionlimit() == depth
    pods = alive(c)
    assert len(pods) == 3
    (rs,) = c.replica_sets("default")
    assert rs.replicas == 3
    # the others terminate gracefully (30 s), then go, all at once
    assert len(c.pods("default")) == replicas
    assert c.next_deadline() == 31.0
    c.sync(31.0)
    assert sorted(p.name for p in c.pods("default")) == sorted(p.name for p in pods)
    assert c.next_deadline() is None
    # endpoints follow: exactly the three survivors
    eps = [e for s in c.endpoint_slices("default/web") for e in s.endpoints]
    assert sorted(e.target_ref.name for e in eps) == sorted(p.name for p in pods)
    # later changes still work
    c.scale("Deployment", "default/web", 5, now=40.0)
    assert len(alive(c)) == 5


def test_scale_up_then_down_repeatedly_keeps_counts_exact() -> None:
    c = Cluster(ClusterConfig(nodes_declared=True), [node("a", pods="2000"),
                                                      replicaset("rs", replicas=2)],
                seed=3, system_objects=False)
    for i, n in enumerate((900, 4, 700, 0, 650, 1)):
        c.scale("ReplicaSet", "default/rs", n, now=float(i))
        assert len(alive(c)) == n
    c.sync(1000.0)
    assert len(c.pods("default")) == 1


def test_delete_owner_of_many_pods_converges() -> None:
    c = big(2_000, 20)
    c.delete("Deployment", "default/web", now=5.0)
    assert not c.replica_sets("default") and not alive(c)
    c.sync(35.0)
    assert c.pods("default") == []


@pytest.mark.parametrize("bad", [-5, 3.9, True, 2**31, "3"])
def test_bad_replicas_refused_before_anything_changes(bad: object) -> None:
    c = big(10, 2)
    rv = c.store.resource_version
    with pytest.raises(UsageError, match="spec.replicas"):
        c.scale("Deployment", "default/web", bad, now=1.0)  # type: ignore[arg-type]
    assert c.store.resource_version == rv and len(alive(c)) == 10


def test_deadlines_order_replace_and_pop_due() -> None:
    d: Deadlines[str] = Deadlines()
    d["b"] = 5.0
    d["a"] = 5.0
    d["c"] = 1.0
    d["c"] = 9.0  # replaced: the old entry is ignored
    assert d.earliest() == 5.0 and len(d) == 3
    assert d.pop("b") == 5.0
    assert d.pop_due(6.0) == [(5.0, "a")]
    assert d.earliest() == 9.0 and "c" in d
    for i in range(1000):
        d[f"k{i}"] = float(i % 7)
        d[f"k{i}"] = 100.0 + i
    assert d.pop_due(99.0) == [(9.0, "c")] and d.earliest() == 100.0
    assert [k for _, k in d.pop_due(102.0)] == ["k0", "k1", "k2"] and len(d) == 997
