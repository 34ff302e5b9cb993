"""StatefulSet and DaemonSet rolling updates (partition, OnDelete, maxUnavailable, maxSurge)."""

from __future__ import annotations

import pytest

from knet.control import Cluster
from knet.control.store import evolve
from knet.errors import ManifestError
from knet.manifests import read_text

NODES = "".join(f"""
apiVersion: v1
kind: Node
metadata: {{name: n{i}}}
---""" for i in range(4))


def sts(strategy: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  replicas: 4
  serviceName: db
{strategy}
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec: {{containers: [{{name: db, image: "knet/echo:v1"}}]}}
"""


def ds(strategy: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
{strategy}
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec: {{containers: [{{name: a, image: "knet/echo:v1"}}]}}
"""


def make(doc: str) -> Cluster:
    return Cluster.from_input(read_text(NODES + doc, "r.yaml"), seed=0, system_objects=False)


def set_image(c: Cluster, kind: str, key: str, image: str, now: float) -> None:
    obj = c.get(kind, key)
    spec = dict(obj.template["spec"])
    spec["containers"] = [{**spec["containers"][0], "image": image}]
    c.apply(evolve(obj, template={**obj.template, "spec": spec}), now=now)


def images(c: Cluster, prefix: str) -> dict[str, str]:
    return {p.name: p.spec.containers[0].image for p in c.pods("default")
            if p.name.startswith(prefix) and not p.terminating}


def test_statefulset_rolls_highest_ordinal_first_one_at_a_time() -> None:
    c = make(sts())
    set_image(c, "StatefulSet", "default/db", "knet/echo:v2", now=1)
    order = []
    t = 1.0
    while True:
        terminating = [p.name for p in c.pods("default") if p.terminating]
        assert len(terminating) <= 1
        order += [n for n in terminating if n not in order]
        d = c.next_deadline()
        if d is None:
            break
        t = d
        c.sync(t)
    assert order == ["db-3", "db-2", "db-1", "db-0"]
    assert set(images(c, "db-").values()) == {"knet/echo:v2"}


def test_statefulset_partition_and_on_delete() -> None:
    c = make(sts("  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}"))
    set_image(c, "StatefulSet", "default/db", "knet/echo:v2", now=1)
    c.sync(100)
    c.sync(200)
    assert images(c, "db-") == {"db-0": "knet/echo:v1", "db-1": "knet/echo:v1",
                                "db-2": "knet/echo:v2", "db-3": "knet/echo:v2"}
    c = make(sts("  updateStrategy: {type: OnDelete}"))
    set_image(c, "StatefulSet", "default/db", "knet/echo:v2", now=1)
    c.sync(100)
    assert set(images(c, "db-").values()) == {"knet/echo:v1"}  # nothing until deleted
    c.delete_pod("default/db-1", now=101, grace=0)
    assert images(c, "db-")["db-1"] == "knet/echo:v2"


@pytest.mark.parametrize("strategy,max_replaced", [
    ("", 1),  # maxUnavailable 1
    ("  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 50%}}", 2),
])
def test_daemonset_rolling_update_respects_max_unavailable(strategy: str,
                                                           max_replaced: int) -> None:
    c = make(ds(strategy))
    assert len(images(c, "agent-")) == 4
    set_image(c, "DaemonSet", "default/agent", "knet/echo:v2", now=1)
    terminating = [p for p in c.pods("default") if p.terminating]
    assert len(terminating) == max_replaced
    # the daemon controller starts the new pod only once the old one is gone
    assert sum(1 for v in images(c, "agent-").values() if v == "knet/echo:v2") == 0
    t = 1.0
    while c.next_deadline() is not None:
        t = c.next_deadline()
        c.sync(t)
    assert sorted(images(c, "agent-").values()) == ["knet/echo:v2"] * 4
    assert {p.spec.node_name for p in c.pods("default")} == {"n0", "n1", "n2", "n3"}


def test_daemonset_surge_starts_the_new_pod_before_removing_the_old() -> None:
    c = make(ds("  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, "
                "maxUnavailable: 0}}"))
    set_image(c, "DaemonSet", "default/agent", "knet/echo:v2", now=1)
    # in the pure core a new pod is Ready at once: each node in turn gets its v2 pod, and
    # its v1 pod is deleted only then; there is never a node without a ready pod
    for p in c.pods("default"):
        assert p.spec.node_name
    per_node: dict[str, list[str]] = {}
    for p in c.pods("default"):
        if not p.terminating:
            per_node.setdefault(p.spec.node_name, []).append(p.spec.containers[0].image)
    assert all(v == ["knet/echo:v2"] for v in per_node.values())
    c.sync(100)
    assert sorted(images(c, "agent-").values()) == ["knet/echo:v2"] * 4


def test_daemonset_on_delete_and_validation() -> None:
    c = make(ds("  updateStrategy: {type: OnDelete}"))
    set_image(c, "DaemonSet", "default/agent", "knet/echo:v2", now=1)
    assert set(images(c, "agent-").values()) == {"knet/echo:v1"}
    with pytest.raises(ManifestError, match="may not be 0 when `maxSurge` is 0"):
        read_text(NODES + ds("  updateStrategy: {rollingUpdate: {maxUnavailable: 0}}"), "d.yaml")


# --- Deployment status, progress deadline, history, undo ---------------------------------

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  revisionHistoryLimit: 2
  progressDeadlineSeconds: 120
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "knet/echo:v1"}]}
"""


def conditions(c: Cluster) -> dict[str, tuple[str, str]]:
    st = c.get("Deployment", "default/web").status
    return {x.type: (x.status, x.reason) for x in st.conditions}


def test_deployment_status_and_progress_deadline() -> None:
    c = make(DEPLOY)
    d = c.get("Deployment", "default/web")
    assert (d.status.replicas, d.status.updated_replicas, d.status.available_replicas) == (3, 3, 3)
    assert conditions(c) == {"Available": ("True", "MinimumReplicasAvailable"),
                             "Progressing": ("True", "NewReplicaSetAvailable")}
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    # a template no node can run: the new ReplicaSet's pod stays Pending
    obj = c.get("Deployment", "default/web")
    spec = {**obj.template["spec"], "nodeSelector": {"disk": "nvme"}}
    c.apply(evolve(obj, template={**obj.template, "spec": spec}), now=10)
    assert conditions(c)["Progressing"] == ("True", "ReplicaSetUpdated")
    assert c.next_deadline() == 130
    c.sync(130)
    prog = c.get("Deployment", "default/web").status.condition("Progressing")
    assert (prog.status, prog.reason) == ("False", "ProgressDeadlineExceeded")
    assert prog.message.endswith("has timed out progressing.")
    assert conditions(c)["Available"] == ("True", "MinimumReplicasAvailable")  # old pods serve


def test_rollout_undo_and_revision_history_limit() -> None:
    from knet.control.rollout import undo

    c = make(DEPLOY)
    for i, tag in enumerate(("v2", "v3", "v4"), start=1):
        set_image(c, "Deployment", "default/web", f"knet/echo:{tag}", now=i * 100)
        c.sync(i * 100 + 50)
    revs = sorted(int(r.metadata.annotations["deployment.kubernetes.io/revision"])
                  for r in c.replica_sets("default"))
    assert revs == [2, 3, 4]  # the current one and revisionHistoryLimit 2 old ones
    assert undo(c, "default/web", now=500) == 3
    c.sync(600)
    assert set(images(c, "web-").values()) == {"knet/echo:v3"}
    d = c.get("Deployment", "default/web")
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "5"
    assert undo(c, "default/web", to_revision=2, now=700) == 2
    c.sync(800)
    assert set(images(c, "web-").values()) == {"knet/echo:v2"}


def test_min_ready_seconds_delays_availability() -> None:
    c = make(DEPLOY.replace("  replicas: 3\n", "  replicas: 3\n  minReadySeconds: 20\n"))
    st = c.get("Deployment", "default/web").status
    assert (st.ready_replicas, st.available_replicas) == (3, 0)
    assert conditions(c)["Available"][0] == "False"
    c.sync(20)
    st = c.get("Deployment", "default/web").status
    assert st.available_replicas == 3 and conditions(c)["Available"][0] == "True"
